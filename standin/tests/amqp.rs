//! The AMQP 0-9-1 handshake: frames against bytes written out from the
//! spec (frame = type, channel u16, size u32, payload, 0xCE; method =
//! class u16, method u16, arguments; all big-endian), and the client
//! against a fake broker that speaks the server's side over TCP.

use std::time::Duration;

use ke2_standin::amqp::{
    self, AmqpError, FRAME_END, Frame, Method, PROTOCOL_HEADER, Value, plain_response, read_frame,
};
use ke2_standin::url::AmqpUrl;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Connection.Start as RabbitMQ sends it, shortened to three properties.
fn start_payload() -> Vec<u8> {
    let p = cat(&[
        &[0x00, 0x0a, 0x00, 0x0a], // class 10 (connection), method 10 (start)
        &[0x00, 0x09],             // version-major 0, version-minor 9
        &[0x00, 0x00, 0x00, 0x59], // server-properties: a table of 89 bytes
        // 1 + 7 + 1 + 4 + 8 = 21
        &[0x07],
        b"product",
        b"S",
        &[0x00, 0x00, 0x00, 0x08],
        b"RabbitMQ",
        // 1 + 7 + 1 + 4 + 6 = 19
        &[0x07],
        b"version",
        b"S",
        &[0x00, 0x00, 0x00, 0x06],
        b"3.13.7",
        // 1 + 12 + 1 + (4 + 31) = 49
        &[0x0c],
        b"capabilities",
        b"F",
        &[0x00, 0x00, 0x00, 0x1f],
        &[0x1c],
        b"authentication_failure_close",
        b"t",
        &[0x01],
        // mechanisms (long string), locales (long string)
        &[0x00, 0x00, 0x00, 0x0e],
        b"AMQPLAIN PLAIN",
        &[0x00, 0x00, 0x00, 0x05],
        b"en_US",
    ]);
    assert_eq!(p.len(), 0x7e);
    p
}

fn frame_bytes(payload: &[u8]) -> Vec<u8> {
    cat(&[
        &[0x01, 0x00, 0x00],
        &(payload.len() as u32).to_be_bytes(),
        payload,
        &[0xce],
    ])
}

#[test]
fn start_decodes_from_spec_bytes_and_encodes_back() {
    let payload = start_payload();
    let m = Method::decode(&payload).unwrap();
    let Method::Start {
        version_major,
        version_minor,
        server_properties,
        mechanisms,
        locales,
    } = &m
    else {
        panic!("{m:?}")
    };
    assert_eq!((*version_major, *version_minor), (0, 9));
    assert_eq!(
        amqp::table_str(server_properties, "product"),
        Some("RabbitMQ")
    );
    assert_eq!(
        amqp::table_str(server_properties, "version"),
        Some("3.13.7")
    );
    assert_eq!(
        server_properties[2],
        (
            "capabilities".to_string(),
            Value::Table(vec![(
                "authentication_failure_close".into(),
                Value::Bool(true)
            )])
        )
    );
    assert_eq!(mechanisms, b"AMQPLAIN PLAIN");
    assert_eq!(locales, b"en_US");
    assert_eq!(m.encode(), payload);
    assert_eq!(m.frame().encode(), frame_bytes(&payload));
}

#[test]
fn client_methods_are_the_spec_bytes() {
    let tune_ok = Method::TuneOk {
        channel_max: 2047,
        frame_max: 131_072,
        heartbeat: 0,
    };
    assert_eq!(
        tune_ok.frame().encode(),
        [
            0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, // method frame, channel 0, 12 bytes
            0x00, 0x0a, 0x00, 0x1f, // 10.31 tune-ok
            0x07, 0xff, // channel-max 2047
            0x00, 0x02, 0x00, 0x00, // frame-max 131072
            0x00, 0x00, // heartbeat 0
            0xce,
        ]
    );
    assert_eq!(
        Method::Open { vhost: "/".into() }.frame().encode(),
        [
            0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, //
            0x00, 0x0a, 0x00, 0x28, // 10.40 open
            0x01, b'/', // virtual-host
            0x00, // reserved-1: empty short string
            0x00, // reserved-2: the insist bit, clear
            0xce,
        ]
    );
    assert_eq!(
        Method::Close {
            reply_code: 200,
            reply_text: "Goodbye".into(),
            class_id: 0,
            method_id: 0
        }
        .frame()
        .encode(),
        cat(&[
            &[0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x12],
            &[0x00, 0x0a, 0x00, 0x32, 0x00, 0xc8, 0x07],
            b"Goodbye",
            &[0x00, 0x00, 0x00, 0x00, 0xce],
        ])
    );
    assert_eq!(
        Method::CloseOk.frame().encode(),
        [
            0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x0a, 0x00, 0x33, 0xce
        ]
    );
    assert_eq!(plain_response("guest", "pw"), b"\0guest\0pw");
}

#[test]
fn server_methods_decode() {
    assert_eq!(
        Method::decode(&[
            0x00, 0x0a, 0x00, 0x1e, 0x07, 0xff, 0x00, 0x02, 0x00, 0x00, 0x00, 0x3c
        ])
        .unwrap(),
        Method::Tune {
            channel_max: 2047,
            frame_max: 131_072,
            heartbeat: 60
        }
    );
    assert_eq!(
        Method::decode(&[0x00, 0x0a, 0x00, 0x29, 0x00]).unwrap(),
        Method::OpenOk
    );
    let close = cat(&[
        &[0x00, 0x0a, 0x00, 0x32, 0x01, 0x93, 0x0e],
        b"ACCESS_REFUSED",
        &[0x00, 0x0a, 0x00, 0x0b],
    ]);
    assert_eq!(
        Method::decode(&close).unwrap(),
        Method::Close {
            reply_code: 403,
            reply_text: "ACCESS_REFUSED".into(),
            class_id: 10,
            method_id: 11
        }
    );
    // Short arguments and trailing bytes are errors, not guesses.
    assert!(Method::decode(&[0x00, 0x0a, 0x00, 0x1e, 0x07]).is_err());
    assert!(Method::decode(&[0x00, 0x0a, 0x00, 0x29, 0x00, 0x00]).is_err());
    assert_eq!(
        Method::decode(&[0x00, 0x14, 0x00, 0x0a]).unwrap(),
        Method::Other {
            class_id: 20,
            method_id: 10
        }
    );
}

#[test]
fn every_field_type_round_trips() {
    let table = vec![
        ("b".to_string(), Value::Bool(false)),
        ("i8".into(), Value::I8(-3)),
        ("u8".into(), Value::U8(250)),
        ("i16".into(), Value::I16(-300)),
        ("u16".into(), Value::U16(60_000)),
        ("i32".into(), Value::I32(-70_000)),
        ("u32".into(), Value::U32(4_000_000_000)),
        ("i64".into(), Value::I64(-1 << 40)),
        ("f32".into(), Value::F32(1.5)),
        ("f64".into(), Value::F64(-2.25)),
        ("dec".into(), Value::Decimal(2, 12345)),
        ("s".into(), Value::LongStr(b"text".to_vec())),
        (
            "arr".into(),
            Value::Array(vec![Value::Void, Value::U8(1), Value::LongStr(vec![])]),
        ),
        ("ts".into(), Value::Timestamp(1_700_000_000)),
        (
            "t".into(),
            Value::Table(vec![("x".into(), Value::Bytes(vec![0, 1]))]),
        ),
    ];
    let m = Method::StartOk {
        client_properties: table,
        mechanism: "PLAIN".into(),
        response: b"\0u\0p".to_vec(),
        locale: "en_US".into(),
    };
    assert_eq!(Method::decode(&m.encode()).unwrap(), m);
}

#[tokio::test]
async fn frames_read_and_check_their_end() {
    let good = frame_bytes(&[0x00, 0x0a, 0x00, 0x33]);
    let mut r: &[u8] = &good;
    assert_eq!(
        read_frame(&mut r, 4096).await.unwrap(),
        Frame {
            kind: 1,
            channel: 0,
            payload: vec![0x00, 0x0a, 0x00, 0x33]
        }
    );
    let mut bad = good.clone();
    *bad.last_mut().unwrap() = 0x00;
    let mut r: &[u8] = &bad;
    assert_eq!(
        read_frame(&mut r, 4096).await.unwrap_err().to_string(),
        "protocol error: frame ends with 0x00, not 0xce"
    );
    let mut r: &[u8] = &good;
    assert!(read_frame(&mut r, 3).await.is_err());
    assert_eq!(FRAME_END, 0xce);
}

/// How the fake broker behaves after Start-Ok.
#[derive(Clone, Copy, PartialEq)]
enum Broker {
    Accept,
    RefuseLogin,
    /// What RabbitMQ does for a refused login without the client's
    /// `authentication_failure_close` capability.
    HangUpAfterStartOk,
    RefuseVhost,
}

/// What the client sent, raw frames and decoded.
struct Seen {
    frames: Vec<Vec<u8>>,
    methods: Vec<Method>,
}

async fn next(s: &mut TcpStream, seen: &mut Seen) -> Method {
    let f = read_frame(s, 131_072)
        .await
        .expect("a frame from the client");
    seen.frames.push(f.encode());
    let m = Method::decode(&f.payload).unwrap();
    seen.methods.push(m.clone());
    m
}

async fn fake_broker(listener: TcpListener, how: Broker) -> Seen {
    let (mut s, _) = listener.accept().await.unwrap();
    let mut seen = Seen {
        frames: vec![],
        methods: vec![],
    };
    let mut header = [0u8; 8];
    s.read_exact(&mut header).await.unwrap();
    assert_eq!(header, PROTOCOL_HEADER);
    s.write_all(&frame_bytes(&start_payload())).await.unwrap();
    next(&mut s, &mut seen).await; // Start-Ok
    match how {
        Broker::RefuseLogin => {
            let close = Method::Close {
                reply_code: 403,
                reply_text: "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile.".into(),
                class_id: 10,
                method_id: 11,
            };
            s.write_all(&close.frame().encode()).await.unwrap();
            next(&mut s, &mut seen).await; // Close-Ok
            return seen;
        }
        Broker::HangUpAfterStartOk => return seen,
        _ => {}
    }
    // A heartbeat before Tune: the client must skip it.
    s.write_all(&[0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xce])
        .await
        .unwrap();
    let tune = Method::Tune {
        channel_max: 2047,
        frame_max: 131_072,
        heartbeat: 60,
    };
    s.write_all(&tune.frame().encode()).await.unwrap();
    next(&mut s, &mut seen).await; // Tune-Ok
    next(&mut s, &mut seen).await; // Open
    if how == Broker::RefuseVhost {
        let close = Method::Close {
            reply_code: 530,
            reply_text: "NOT_ALLOWED - vhost kompira not found".into(),
            class_id: 10,
            method_id: 40,
        };
        s.write_all(&close.frame().encode()).await.unwrap();
        next(&mut s, &mut seen).await; // Close-Ok
        return seen;
    }
    s.write_all(&Method::OpenOk.frame().encode()).await.unwrap();
    next(&mut s, &mut seen).await; // Close
    s.write_all(&Method::CloseOk.frame().encode())
        .await
        .unwrap();
    seen
}

async fn run(how: Broker, url: &str) -> (Result<amqp::ServerInfo, AmqpError>, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let broker = tokio::spawn(fake_broker(listener, how));
    let url = AmqpUrl::parse(&url.replace("PORT", &port.to_string())).unwrap();
    let result = amqp::check(&url, "ke2-standin test@host", Duration::from_secs(5)).await;
    (result, broker.await.unwrap())
}

#[tokio::test]
async fn the_client_completes_the_handshake() {
    let (result, seen) = run(Broker::Accept, "amqp://guest:s3cret@127.0.0.1:PORT").await;
    let info = result.unwrap();
    assert_eq!(info.product.as_deref(), Some("RabbitMQ"));
    assert_eq!(info.version.as_deref(), Some("3.13.7"));
    assert_eq!(
        (info.channel_max, info.frame_max, info.heartbeat),
        (2047, 131_072, 0)
    );

    let names: Vec<String> = seen.methods.iter().map(Method::name).collect();
    assert_eq!(
        names,
        [
            "Connection.Start-Ok",
            "Connection.Tune-Ok",
            "Connection.Open",
            "Connection.Close"
        ]
    );
    let Method::StartOk {
        client_properties,
        mechanism,
        response,
        locale,
    } = &seen.methods[0]
    else {
        unreachable!()
    };
    assert_eq!(mechanism, "PLAIN");
    assert_eq!(response, b"\0guest\0s3cret");
    assert_eq!(locale, "en_US");
    assert_eq!(
        amqp::table_str(client_properties, "connection_name"),
        Some("ke2-standin test@host")
    );
    assert!(client_properties.contains(&(
        "capabilities".into(),
        Value::Table(vec![(
            "authentication_failure_close".into(),
            Value::Bool(true)
        )])
    )));
    // The last three frames, byte for byte.
    assert_eq!(
        seen.frames[1],
        [
            0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x0a, 0x00, 0x1f, 0x07, 0xff, 0x00,
            0x02, 0x00, 0x00, 0x00, 0x00, 0xce
        ]
    );
    assert_eq!(
        seen.frames[2],
        [
            0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x0a, 0x00, 0x28, 0x01, b'/', 0x00,
            0x00, 0xce
        ]
    );
    assert_eq!(
        seen.frames[3],
        cat(&[
            &[
                0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x12, 0x00, 0x0a, 0x00, 0x32, 0x00, 0xc8, 0x07
            ],
            b"Goodbye",
            &[0x00, 0x00, 0x00, 0x00, 0xce]
        ])
    );
}

#[tokio::test]
async fn a_vhost_in_the_url_is_opened() {
    let (result, seen) = run(Broker::Accept, "amqp://u:p@127.0.0.1:PORT/kompira").await;
    result.unwrap();
    assert_eq!(
        seen.methods[2],
        Method::Open {
            vhost: "kompira".into()
        }
    );
}

#[tokio::test]
async fn a_refused_login_is_a_403_and_answered_with_close_ok() {
    let (result, seen) = run(Broker::RefuseLogin, "amqp://guest:wrong@127.0.0.1:PORT").await;
    let err = result.unwrap_err();
    assert!(
        matches!(err, AmqpError::Refused { code: 403, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "refused after Connection.Start-Ok: 403 ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile."
    );
    assert_eq!(seen.methods.last(), Some(&Method::CloseOk));
    assert!(!err.to_string().contains("wrong"));
}

#[tokio::test]
async fn a_hang_up_after_start_ok_is_named() {
    let (result, _) = run(
        Broker::HangUpAfterStartOk,
        "amqp://guest:wrong@127.0.0.1:PORT",
    )
    .await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "protocol error: server closed the connection after Connection.Start-Ok"
    );
}

#[tokio::test]
async fn a_refused_vhost_is_a_530() {
    let (result, seen) = run(Broker::RefuseVhost, "amqp://u:p@127.0.0.1:PORT/kompira").await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "refused after Connection.Open: 530 NOT_ALLOWED - vhost kompira not found"
    );
    assert_eq!(seen.methods.last(), Some(&Method::CloseOk));
}

#[tokio::test]
async fn another_protocol_version_is_named() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut header = [0u8; 8];
        s.read_exact(&mut header).await.unwrap();
        // An AMQP 1.0 broker answers with its own header and hangs up.
        s.write_all(b"AMQP\x00\x01\x00\x00").await.unwrap();
    });
    let url = AmqpUrl::parse(&format!("amqp://u:p@127.0.0.1:{port}")).unwrap();
    let err = amqp::check(&url, "t", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err, AmqpError::ProtocolMismatch(_)), "{err:?}");
}

#[tokio::test]
async fn a_silent_server_times_out_and_a_closed_port_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = AmqpUrl::parse(&format!("amqp://u:p@127.0.0.1:{port}")).unwrap();
    let err = amqp::check(&url, "t", Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "no handshake within 300 ms");
    drop(listener);
    let err = amqp::check(&url, "t", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err, AmqpError::Io(_)), "{err:?}");
}
