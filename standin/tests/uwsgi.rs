//! The uwsgi protocol against packets written out byte by byte (the shape
//! nginx's `uwsgi_pass` sends), the response writer, and round trips.

use ke2_standin::uwsgi::{
    self, Header, Request, Response, UwsgiError, Vars, decode_vars, encode_vars, parse_request,
    parse_response, read_request,
};
use proptest::prelude::*;

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A POST with a body, as nginx sends it: header, then four variables
/// (lengths little-endian), then the body, then bytes of a next packet.
fn captured_post() -> Vec<u8> {
    cat(&[
        // modifier1 0, datasize 78 = 0x004e, modifier2 0
        &[0x00, 0x4e, 0x00, 0x00],
        // 2 + 14 + 2 + 4 = 22
        &[0x0e, 0x00],
        b"REQUEST_METHOD",
        &[0x04, 0x00],
        b"POST",
        // 2 + 9 + 2 + 8 = 21
        &[0x09, 0x00],
        b"PATH_INFO",
        &[0x08, 0x00],
        b"/.status",
        // 2 + 14 + 2 + 1 = 19
        &[0x0e, 0x00],
        b"CONTENT_LENGTH",
        &[0x01, 0x00],
        b"5",
        // 2 + 12 + 2 + 0 = 16
        &[0x0c, 0x00],
        b"QUERY_STRING",
        &[0x00, 0x00],
        // the body
        b"hello",
        // not part of this request
        b"\x00\x00\x00\x00",
    ])
}

#[test]
fn header_fields_and_little_endian_size() {
    let h = Header::parse([0x00, 0x34, 0x12, 0x07]);
    assert_eq!(
        h,
        Header {
            modifier1: 0,
            datasize: 0x1234,
            modifier2: 7
        }
    );
    assert_eq!(h.encode(), [0x00, 0x34, 0x12, 0x07]);
}

#[test]
fn parses_a_captured_post_with_body() {
    let pkt = captured_post();
    let (req, used) = parse_request(&pkt, 1024).unwrap();
    assert_eq!(used, 4 + 78 + 5);
    assert_eq!(req.modifier1, 0);
    assert_eq!(req.method(), "POST");
    assert_eq!(req.path(), "/.status");
    assert_eq!(req.vars.get_str("QUERY_STRING"), Some(""));
    assert_eq!(req.vars.0.len(), 4);
    assert_eq!(req.body, b"hello");
    // Encoding gives back the same bytes (without the trailing packet).
    assert_eq!(req.encode().unwrap(), pkt[..used]);
}

#[test]
fn get_with_empty_content_length_has_no_body() {
    let mut pkt = cat(&[
        &[0x00, 0x00, 0x00, 0x00],
        &[0x0e, 0x00],
        b"REQUEST_METHOD",
        &[0x03, 0x00],
        b"GET",
        &[0x0b, 0x00],
        b"REQUEST_URI",
        &[0x07, 0x00],
        b"/?a=b&c",
        &[0x0e, 0x00],
        b"CONTENT_LENGTH",
        &[0x00, 0x00],
    ]);
    let size = (pkt.len() - 4) as u16;
    pkt[1..3].copy_from_slice(&size.to_le_bytes());
    let (req, used) = parse_request(&pkt, 0).unwrap();
    assert_eq!(used, pkt.len());
    assert!(req.body.is_empty());
    // No PATH_INFO: the path is REQUEST_URI without its query.
    assert_eq!(req.path(), "/");
    assert_eq!(req.method(), "GET");
}

#[test]
fn path_prefers_path_info_and_defaults_to_root() {
    let r = Request::new(Vars::new().with("REQUEST_URI", "/a/b?x=1"), vec![]);
    assert_eq!(r.path(), "/a/b");
    assert_eq!(r.method(), "GET");
    let r = Request::new(Vars::new(), vec![]);
    assert_eq!(r.path(), "/");
    let r = Request::new(uwsgi::nginx_vars("GET", "/.status?full=1"), vec![]);
    assert_eq!(r.path(), "/.status");
    assert_eq!(r.vars.get_str("QUERY_STRING"), Some("full=1"));
}

#[test]
fn malformed_and_short_packets_are_refused_with_reasons() {
    let msg = |bytes: &[u8]| parse_request(bytes, 16).unwrap_err().to_string();
    assert_eq!(
        msg(&[0x00, 0x10]),
        "packet truncated in the header: expected 4 bytes, got 2"
    );
    assert_eq!(
        msg(&[]),
        "packet truncated in the header: expected 4 bytes, got 0"
    );
    let pkt = captured_post();
    assert_eq!(
        msg(&pkt[..14]),
        "packet truncated in the variables: expected 78 bytes, got 10"
    );
    // The body is 5 bytes; only 2 arrived.
    assert_eq!(
        parse_request(&pkt[..4 + 78 + 2], 16)
            .unwrap_err()
            .to_string(),
        "packet truncated in the body: expected 5 bytes, got 2"
    );
    // A key claims 5 bytes where 2 remain.
    assert_eq!(
        msg(&[0x00, 0x04, 0x00, 0x00, 0x05, 0x00, b'a', b'b']),
        "malformed packet: a key of 5 bytes at offset 0 runs past the end of the variables (4 bytes)"
    );
    // The block ends in the middle of a value's length.
    assert_eq!(
        msg(&[0x00, 0x04, 0x00, 0x00, 0x01, 0x00, b'a', 0x02]),
        "malformed packet: variables end inside the length of a value at offset 3"
    );
    // Another modifier1 (5 = PSGI) is not a WSGI request.
    assert_eq!(
        msg(&[0x05, 0x00, 0x00, 0x00]),
        "modifier1 `5` is not served (only `0`, WSGI)"
    );
    let bad_len = Request::new(Vars::new().with("CONTENT_LENGTH", "five"), vec![]);
    assert_eq!(
        msg(&bad_len.encode().unwrap()),
        "`CONTENT_LENGTH` `five` is not a number"
    );
    let big = Request::new(Vars::new().with("CONTENT_LENGTH", "17"), vec![0; 17]);
    assert!(matches!(
        parse_request(&big.encode().unwrap(), 16),
        Err(UwsgiError::BodyTooLarge {
            length: 17,
            max: 16
        })
    ));
}

#[test]
fn encoding_refuses_what_a_u16_cannot_carry() {
    let long = "x".repeat(70_000);
    let v = Vars::new().with("K", &long);
    assert_eq!(
        encode_vars(&v).unwrap_err().to_string(),
        "cannot encode: a key or value of 70000 bytes"
    );
    let many = (0..3000).fold(Vars::new(), |v, i| {
        v.with(&format!("KEY{i:05}"), "value-value")
    });
    assert!(
        encode_vars(&many)
            .unwrap_err()
            .to_string()
            .contains("at most 65535")
    );
}

#[tokio::test]
async fn reads_from_a_stream_like_from_a_buffer() {
    let pkt = captured_post();
    let mut stream: &[u8] = &pkt;
    let req = read_request(&mut stream, 1024).await.unwrap();
    assert_eq!(req, parse_request(&pkt, 1024).unwrap().0);
    // The next packet's bytes stay unread.
    assert_eq!(stream, b"\x00\x00\x00\x00");

    let mut short: &[u8] = &pkt[..4 + 78 + 3];
    assert_eq!(
        read_request(&mut short, 1024)
            .await
            .unwrap_err()
            .to_string(),
        "packet truncated in the body: expected 5 bytes, got 3"
    );
    let mut empty: &[u8] = &[];
    assert!(matches!(
        read_request(&mut empty, 1024).await,
        Err(UwsgiError::Truncated {
            part: "header",
            got: 0,
            ..
        })
    ));
}

#[test]
fn response_writer_bytes() {
    let r = Response::new(503, "application/json", b"{\"ok\":false}".to_vec());
    assert_eq!(
        r.encode(false),
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"ok\":false}"
    );
    // HEAD: the same head, no body.
    assert_eq!(
        r.encode(true),
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n"
    );
    let mut ok = Response::new(200, "text/plain", b"hi".to_vec());
    ok.headers.push(("Cache-Control".into(), "no-store".into()));
    let bytes = ok.encode(false);
    assert!(bytes.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert_eq!(parse_response(&bytes).unwrap(), {
        let mut want = ok.clone();
        want.headers.push(("Content-Length".into(), "2".into()));
        want
    });
}

#[test]
fn response_parser_refusals() {
    assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
    assert!(parse_response(b"SPDY 200 OK\r\n\r\n").is_err());
    assert_eq!(
        parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")
            .unwrap_err()
            .to_string(),
        "packet truncated in the response body: expected 5 bytes, got 2"
    );
}

fn vars_strategy() -> impl Strategy<Value = Vars> {
    prop::collection::vec(
        (
            prop::collection::vec(any::<u8>(), 0..40),
            prop::collection::vec(any::<u8>(), 0..200),
        ),
        0..30,
    )
    .prop_map(Vars)
}

proptest! {
    #[test]
    fn vars_round_trip(vars in vars_strategy()) {
        let block = encode_vars(&vars).unwrap();
        prop_assert_eq!(decode_vars(&block).unwrap(), vars);
    }

    #[test]
    fn requests_round_trip(vars in vars_strategy(), body in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut vars = vars;
        // The server reads the body by CONTENT_LENGTH; put it first so no
        // generated key shadows it.
        vars.0.insert(0, (b"CONTENT_LENGTH".to_vec(), body.len().to_string().into_bytes()));
        let req = Request::new(vars, body);
        let bytes = req.encode().unwrap();
        let (back, used) = parse_request(&bytes, 1 << 20).unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(back, req);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_vars(&bytes);
        let _ = parse_request(&bytes, 1 << 20);
        let _ = parse_response(&bytes);
    }
}
