//! HTTP and HTTPS requests to the stack's nginx, as a user's browser makes
//! them: HTTPS verified against the local CA that step 8 generated (no
//! system roots, no "insecure" switch), plain HTTP to see the redirect.
//! HTTP/1.0 with `Connection: close`, so the answer is never chunked and
//! ends where the connection ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::ProbeError;

/// Answers larger than this are refused (the status page is ~1 KiB).
const MAX_RESPONSE: usize = 1 << 20;

/// One HTTP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of that (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON into `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T, ProbeError> {
        serde_json::from_slice(&self.body).map_err(|e| ProbeError::Parse {
            what: what.to_string(),
            detail: e.to_string(),
        })
    }
}

fn bad(what: &str, detail: impl Into<String>) -> ProbeError {
    ProbeError::Parse {
        what: what.to_string(),
        detail: detail.into(),
    }
}

/// Parses a whole HTTP/1.x response (status line, headers, body up to the
/// end, or `Content-Length` bytes when given).
pub fn parse_response(raw: &[u8], what: &str) -> Result<Response, ProbeError> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad(what, "no end of the header block"))?;
    let head =
        std::str::from_utf8(&raw[..end]).map_err(|_| bad(what, "header block is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(bad(
            what,
            format!("status line `{status_line}` is not HTTP/1.x"),
        ));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..600).contains(s))
        .ok_or_else(|| {
            bad(
                what,
                format!("status line `{status_line}` has no status code"),
            )
        })?;
    let mut headers = Vec::new();
    for line in lines {
        let (n, v) = line
            .split_once(':')
            .ok_or_else(|| bad(what, format!("header line `{line}` has no `:`")))?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let mut body = raw[end + 4..].to_vec();
    let resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if let Some(len) = resp.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| bad(what, format!("`Content-Length: {len}` is not a number")))?;
        if body.len() < len {
            return Err(bad(
                what,
                format!("body ended after {} of {len} bytes", body.len()),
            ));
        }
        body.truncate(len);
    }
    Ok(Response { body, ..resp })
}

/// The request line and headers sent.
pub fn request(host: &str, path: &str) -> String {
    format!(
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: ke2lab-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    host: &str,
    path: &str,
    what: &str,
) -> Result<Response, ProbeError> {
    let io = |e: std::io::Error| ProbeError::Unreachable {
        what: what.to_string(),
        detail: e.to_string(),
    };
    s.write_all(request(host, path).as_bytes())
        .await
        .map_err(io)?;
    s.flush().await.map_err(io)?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // nginx may close without TLS close_notify after `Connection: close`;
            // what arrived is the whole answer.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => break,
            Err(e) => return Err(io(e)),
        }
        if raw.len() > MAX_RESPONSE {
            return Err(bad(
                what,
                format!("answer larger than {MAX_RESPONSE} bytes"),
            ));
        }
    }
    parse_response(&raw, what)
}

async fn connect(addr: SocketAddr, what: &str, timeout: Duration) -> Result<TcpStream, ProbeError> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(ProbeError::Unreachable {
            what: what.to_string(),
            detail: e.to_string(),
        }),
        Err(_) => Err(ProbeError::Unreachable {
            what: what.to_string(),
            detail: format!("no connection within {}s", timeout.as_secs_f64()),
        }),
    }
}

/// `GET path` over plain HTTP to `addr`, with `Host: host`.
pub async fn http_get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<Response, ProbeError> {
    let what = format!("http://{host}{path} at {addr}");
    let run = async {
        let s = connect(addr, &what, timeout).await?;
        exchange(s, host, path, &what).await
    };
    tokio::time::timeout(timeout, run)
        .await
        .unwrap_or_else(|_| Err(timed_out(&what, timeout)))
}

fn timed_out(what: &str, timeout: Duration) -> ProbeError {
    ProbeError::Unreachable {
        what: what.to_string(),
        detail: format!("no complete answer within {}s", timeout.as_secs_f64()),
    }
}

/// The trust anchors of a PEM file (the local CA certificate).
pub fn roots_from_pem(ca_pem: &[u8]) -> Result<rustls::RootCertStore, ProbeError> {
    let mut roots = rustls::RootCertStore::empty();
    let mut n = 0;
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| bad("the CA certificate (PEM)", e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| bad("the CA certificate", e.to_string()))?;
        n += 1;
    }
    if n == 0 {
        return Err(bad("the CA certificate (PEM)", "no certificate in it"));
    }
    Ok(roots)
}

/// `GET path` over HTTPS to `addr`, the server verified as `server_name`
/// against `ca_pem` only. A certificate that does not chain to that CA, or
/// does not name `server_name`, fails the request.
pub async fn https_get(
    addr: SocketAddr,
    server_name: &str,
    ca_pem: &[u8],
    path: &str,
    timeout: Duration,
) -> Result<Response, ProbeError> {
    let what = format!("https://{server_name}{path} at {addr}");
    let roots = roots_from_pem(ca_pem)?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad("the TLS client configuration", e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|e| bad("the server name", format!("`{server_name}`: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let run = async {
        let tcp = connect(addr, &what, timeout).await?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| ProbeError::Unreachable {
                what: what.clone(),
                detail: format!("TLS handshake: {e}"),
            })?;
        exchange(tls, server_name, path, &what).await
    };
    tokio::time::timeout(timeout, run)
        .await
        .unwrap_or_else(|_| Err(timed_out(&what, timeout)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_a_redirect() {
        let raw = b"HTTP/1.1 301 Moved Permanently\r\nServer: nginx/1.26.3\r\nContent-Type: text/html\r\nContent-Length: 5\r\nLocation: https://ke2-server1/.status\r\nConnection: close\r\n\r\nhello+extra";
        let r = parse_response(raw, "t").unwrap();
        assert_eq!(r.status, 301);
        assert_eq!(r.header("Location"), Some("https://ke2-server1/.status"));
        assert_eq!(r.body, b"hello");
    }

    #[test]
    fn body_to_the_end_without_length() {
        let r = parse_response(b"HTTP/1.0 200 OK\r\nA: b\r\n\r\n{\"ok\":true}", "t").unwrap();
        assert_eq!(r.status, 200);
        #[derive(serde::Deserialize)]
        struct Ok_ {
            ok: bool,
        }
        assert!(r.json::<Ok_>("status page").unwrap().ok);
    }

    #[test]
    fn refuses_what_is_not_http() {
        for (raw, msg) in [
            (&b"SSH-2.0-OpenSSH\r\n"[..], "no end of the header block"),
            (b"FOO 200 OK\r\n\r\n", "is not HTTP/1.x"),
            (b"HTTP/1.1 abc\r\n\r\n", "has no status code"),
            (b"HTTP/1.1 200 OK\r\nbroken\r\n\r\n", "has no `:`"),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab",
                "body ended after 2 of 9 bytes",
            ),
        ] {
            let e = parse_response(raw, "t").unwrap_err().to_string();
            assert!(e.contains(msg), "{e}");
        }
    }

    #[test]
    fn request_is_http_1_0_and_closes() {
        let r = request("ke2-server1", "/.status");
        assert!(r.starts_with("GET /.status HTTP/1.0\r\nHost: ke2-server1\r\n"));
        assert!(r.ends_with("Connection: close\r\n\r\n"));
    }

    #[test]
    fn pem_without_certificate_is_refused() {
        let e = roots_from_pem(b"not a pem").unwrap_err().to_string();
        assert!(e.contains("no certificate"), "{e}");
    }

    /// A TLS server on loopback with a certificate set made by the core's
    /// `create-cert.sh` equivalent; answers one request with `answer`.
    async fn tls_server(
        hostname: &str,
        answer: &'static [u8],
    ) -> (SocketAddr, String, tokio::task::JoinHandle<()>) {
        use crate::render::cert::{CertParams, Existing, KeyType, generate};
        let mut params = CertParams::for_host("/x", hostname);
        params.ca.key_type = KeyType::EcdsaP256;
        params.server.key_type = KeyType::EcdsaP256;
        let set = generate(&params, &Existing::default(), std::time::SystemTime::now()).unwrap();
        let ca = set.ca.unwrap().cert;
        let server = set.server.unwrap();
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(server.cert.as_bytes())
                .map(|c| c.unwrap())
                .collect();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(server.key.expose().as_bytes())
            .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                let mut buf = vec![0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let _ = tls.write_all(answer).await;
                let _ = tls.shutdown().await;
            }
        });
        (addr, ca, task)
    }

    #[tokio::test]
    async fn https_verifies_against_the_generated_ca() {
        let (addr, ca, task) = tls_server(
            "ke2-server1",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        )
        .await;
        let t = Duration::from_secs(10);
        let r = https_get(addr, "ke2-server1", ca.as_bytes(), "/", t)
            .await
            .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));

        // A name the certificate does not carry is refused.
        let e = https_get(addr, "other-host", ca.as_bytes(), "/", t)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("TLS handshake"), "{e}");

        // So is a CA that did not sign it.
        let (_, other_ca, other) = tls_server("ke2-server1", b"").await;
        let e = https_get(addr, "ke2-server1", other_ca.as_bytes(), "/", t)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("TLS handshake"), "{e}");
        task.abort();
        other.abort();
    }

    #[tokio::test]
    async fn http_reads_to_the_end() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"GET /x HTTP/1.0\r\nHost: h\r\n"));
            s.write_all(b"HTTP/1.1 301 Moved\r\nLocation: https://h/x\r\n\r\n")
                .await
                .unwrap();
        });
        let r = http_get(addr, "h", "/x", Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(r.status, 301);
        assert_eq!(r.header("location"), Some("https://h/x"));
        task.await.unwrap();
    }

    proptest! {
        #[test]
        fn parse_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_response(&raw, "t");
        }

        #[test]
        fn headers_and_body_round_trip(
            status in 100u16..600,
            value in "[a-zA-Z0-9/._-]{0,40}",
            body in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut raw = format!("HTTP/1.1 {status} X\r\nX-Test: {value}\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
            raw.extend_from_slice(&body);
            let r = parse_response(&raw, "t").unwrap();
            prop_assert_eq!(r.status, status);
            prop_assert_eq!(r.header("x-test"), Some(value.as_str()));
            prop_assert_eq!(r.body, body);
        }
    }
}
