//! Redis PING (with AUTH and SELECT when the URL asks) against an
//! in-process listener that checks the exact RESP bytes.

use std::time::Duration;

use ke2_standin::resp::{self, RespError, encode_command};
use ke2_standin::url::RedisUrl;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server that expects each request's bytes in turn and answers with
/// the paired reply; returns what it received.
async fn fake_redis(
    script: Vec<(&'static [u8], &'static [u8])>,
) -> (u16, tokio::task::JoinHandle<Vec<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        for (want, reply) in script {
            let mut buf = vec![0u8; want.len()];
            s.read_exact(&mut buf).await.unwrap();
            got.push(buf);
            s.write_all(reply).await.unwrap();
        }
        got
    });
    (port, task)
}

fn url(s: &str, port: u16) -> RedisUrl {
    RedisUrl::parse(&s.replace("PORT", &port.to_string())).unwrap()
}

const T: Duration = Duration::from_secs(5);

#[test]
fn commands_are_arrays_of_bulk_strings() {
    assert_eq!(encode_command(&[b"PING"]), b"*1\r\n$4\r\nPING\r\n");
    assert_eq!(
        encode_command(&[b"AUTH", b"pw"]),
        b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n"
    );
}

#[tokio::test]
async fn ping_expects_pong() {
    let (port, server) = fake_redis(vec![(b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n")]).await;
    resp::ping(&url("redis://127.0.0.1:PORT", port), T)
        .await
        .unwrap();
    assert_eq!(server.await.unwrap(), [b"*1\r\n$4\r\nPING\r\n".to_vec()]);
}

#[tokio::test]
async fn password_and_database_come_first() {
    let (port, server) = fake_redis(vec![
        (
            b"*3\r\n$4\r\nAUTH\r\n$7\r\nkompira\r\n$2\r\npw\r\n",
            b"+OK\r\n",
        ),
        (b"*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n", b"+OK\r\n"),
        (b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n"),
    ])
    .await;
    resp::ping(&url("redis://kompira:pw@127.0.0.1:PORT/2", port), T)
        .await
        .unwrap();
    assert_eq!(server.await.unwrap().len(), 3);
}

#[tokio::test]
async fn an_error_reply_is_reported() {
    let (port, _server) = fake_redis(vec![(
        b"*1\r\n$4\r\nPING\r\n",
        b"-NOAUTH Authentication required.\r\n",
    )])
    .await;
    let err = resp::ping(&url("redis://127.0.0.1:PORT", port), T)
        .await
        .unwrap_err();
    assert!(matches!(err, RespError::Server { .. }));
    assert_eq!(
        err.to_string(),
        "`PING` failed: NOAUTH Authentication required."
    );
}

#[tokio::test]
async fn another_reply_is_unexpected() {
    let (port, _server) = fake_redis(vec![(b"*1\r\n$4\r\nPING\r\n", b"+OK\r\n")]).await;
    let err = resp::ping(&url("redis://127.0.0.1:PORT", port), T)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "unexpected reply to `PING`: `+OK`");
}

#[tokio::test]
async fn silence_times_out_and_a_closed_port_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let u = url("redis://127.0.0.1:PORT", port);
    let err = resp::ping(&u, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "no reply within 200 ms");
    drop(listener);
    let err = resp::ping(&u, T).await.unwrap_err();
    assert!(matches!(err, RespError::Io(_)), "{err:?}");
}

#[tokio::test]
async fn a_hang_up_is_an_error() {
    let (port, _server) = fake_redis(vec![(b"*1\r\n$4\r\nPING\r\n", b"")]).await;
    let err = resp::ping(&url("redis://127.0.0.1:PORT", port), T)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "server closed the connection");
}
