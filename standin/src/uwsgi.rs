//! The uwsgi protocol, as nginx's `uwsgi_pass` speaks it.
//!
//! A request is a 4-byte header (`modifier1` u8, `datasize` u16
//! little-endian, `modifier2` u8), then `datasize` bytes of variables, each
//! key and value prefixed by its u16 little-endian length, then the request
//! body of `CONTENT_LENGTH` bytes. `modifier1` 0 is a WSGI request, the only
//! kind the Kompira image's uWSGI serves. The response is plain HTTP
//! (status line, headers, body) and ends when the server closes the
//! connection.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

pub const HEADER_LEN: usize = 4;
/// `modifier1` of a WSGI request.
pub const MODIFIER_WSGI: u8 = 0;

#[derive(Debug)]
pub enum UwsgiError {
    /// The packet ended early: in the header, the variables or the body.
    Truncated {
        part: &'static str,
        expected: usize,
        got: usize,
    },
    Malformed(String),
    UnsupportedModifier(u8),
    BadContentLength(String),
    BodyTooLarge {
        length: usize,
        max: usize,
    },
    TooLarge(String),
    Io(io::Error),
}

impl fmt::Display for UwsgiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UwsgiError::Truncated {
                part,
                expected,
                got,
            } => write!(
                f,
                "packet truncated in the {part}: expected {expected} bytes, got {got}"
            ),
            UwsgiError::Malformed(m) => write!(f, "malformed packet: {m}"),
            UwsgiError::UnsupportedModifier(m) => {
                write!(f, "modifier1 `{m}` is not served (only `0`, WSGI)")
            }
            UwsgiError::BadContentLength(v) => {
                write!(f, "`CONTENT_LENGTH` `{v}` is not a number")
            }
            UwsgiError::BodyTooLarge { length, max } => {
                write!(
                    f,
                    "request body of {length} bytes exceeds the limit of {max}"
                )
            }
            UwsgiError::TooLarge(m) => write!(f, "cannot encode: {m}"),
            UwsgiError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for UwsgiError {}

impl From<io::Error> for UwsgiError {
    fn from(e: io::Error) -> Self {
        UwsgiError::Io(e)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub modifier1: u8,
    pub datasize: u16,
    pub modifier2: u8,
}

impl Header {
    pub fn parse(b: [u8; HEADER_LEN]) -> Header {
        Header {
            modifier1: b[0],
            datasize: u16::from_le_bytes([b[1], b[2]]),
            modifier2: b[3],
        }
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let [lo, hi] = self.datasize.to_le_bytes();
        [self.modifier1, lo, hi, self.modifier2]
    }
}

/// The request's variables in their order; keys and values are bytes
/// (nginx passes the request URI undecoded).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vars(pub Vec<(Vec<u8>, Vec<u8>)>);

impl Vars {
    pub fn new() -> Vars {
        Vars(Vec::new())
    }

    pub fn with(mut self, key: &str, value: &str) -> Vars {
        self.0
            .push((key.as_bytes().to_vec(), value.as_bytes().to_vec()));
        self
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(k, _)| k == key.as_bytes())
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of `key`, when it is UTF-8.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// Decodes a variables block (the `datasize` bytes after the header).
pub fn decode_vars(block: &[u8]) -> Result<Vars, UwsgiError> {
    let mut vars = Vars::new();
    let mut pos = 0;
    let take = |what: &str, pos: &mut usize| -> Result<Vec<u8>, UwsgiError> {
        let at = *pos;
        let len_bytes = block.get(at..at + 2).ok_or_else(|| {
            UwsgiError::Malformed(format!(
                "variables end inside the length of a {what} at offset {at}"
            ))
        })?;
        let len = usize::from(u16::from_le_bytes([len_bytes[0], len_bytes[1]]));
        let data = block.get(at + 2..at + 2 + len).ok_or_else(|| {
            UwsgiError::Malformed(format!(
                "a {what} of {len} bytes at offset {at} runs past the end of the variables ({} bytes)",
                block.len()
            ))
        })?;
        *pos = at + 2 + len;
        Ok(data.to_vec())
    };
    while pos < block.len() {
        let k = take("key", &mut pos)?;
        let v = take("value", &mut pos)?;
        vars.0.push((k, v));
    }
    Ok(vars)
}

/// Encodes a variables block; every key, value and the block itself must
/// fit a u16 length.
pub fn encode_vars(vars: &Vars) -> Result<Vec<u8>, UwsgiError> {
    let mut out = Vec::new();
    for (k, v) in &vars.0 {
        for part in [k, v] {
            let len = u16::try_from(part.len()).map_err(|_| {
                UwsgiError::TooLarge(format!("a key or value of {} bytes", part.len()))
            })?;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(part);
        }
    }
    if out.len() > usize::from(u16::MAX) {
        return Err(UwsgiError::TooLarge(format!(
            "variables of {} bytes (at most 65535)",
            out.len()
        )));
    }
    Ok(out)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub modifier1: u8,
    pub modifier2: u8,
    pub vars: Vars,
    pub body: Vec<u8>,
}

impl Request {
    /// A WSGI request with these variables and body; `CONTENT_LENGTH` is
    /// the caller's to set, as nginx sets it.
    pub fn new(vars: Vars, body: Vec<u8>) -> Request {
        Request {
            modifier1: MODIFIER_WSGI,
            modifier2: 0,
            vars,
            body,
        }
    }

    pub fn method(&self) -> &str {
        self.vars.get_str("REQUEST_METHOD").unwrap_or("GET")
    }

    /// `PATH_INFO` (nginx's `$document_uri`), else `REQUEST_URI` without
    /// its query, else `/`.
    pub fn path(&self) -> String {
        if let Some(p) = self.vars.get("PATH_INFO").filter(|p| !p.is_empty()) {
            return String::from_utf8_lossy(p).into_owned();
        }
        match self.vars.get("REQUEST_URI").filter(|p| !p.is_empty()) {
            Some(uri) => {
                let uri = String::from_utf8_lossy(uri);
                uri.split('?').next().unwrap_or("/").to_string()
            }
            None => "/".to_string(),
        }
    }

    pub fn encode(&self) -> Result<Vec<u8>, UwsgiError> {
        let vars = encode_vars(&self.vars)?;
        let header = Header {
            modifier1: self.modifier1,
            datasize: vars.len() as u16,
            modifier2: self.modifier2,
        };
        let mut out = header.encode().to_vec();
        out.extend_from_slice(&vars);
        out.extend_from_slice(&self.body);
        Ok(out)
    }
}

/// `CONTENT_LENGTH`: absent or empty (nginx sends it empty without a body)
/// is 0.
pub fn content_length(vars: &Vars) -> Result<usize, UwsgiError> {
    match vars.get("CONTENT_LENGTH") {
        None => Ok(0),
        Some(v) => {
            let s = String::from_utf8_lossy(v);
            let t = s.trim();
            if t.is_empty() {
                Ok(0)
            } else {
                t.parse()
                    .map_err(|_| UwsgiError::BadContentLength(s.into_owned()))
            }
        }
    }
}

fn check_modifier(h: &Header) -> Result<(), UwsgiError> {
    if h.modifier1 == MODIFIER_WSGI {
        Ok(())
    } else {
        Err(UwsgiError::UnsupportedModifier(h.modifier1))
    }
}

/// Parses one request from a buffer holding all of it; returns the request
/// and the bytes it took.
pub fn parse_request(buf: &[u8], max_body: usize) -> Result<(Request, usize), UwsgiError> {
    let head: [u8; HEADER_LEN] = buf
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(UwsgiError::Truncated {
            part: "header",
            expected: HEADER_LEN,
            got: buf.len(),
        })?;
    let h = Header::parse(head);
    check_modifier(&h)?;
    let end_vars = HEADER_LEN + usize::from(h.datasize);
    let block = buf.get(HEADER_LEN..end_vars).ok_or(UwsgiError::Truncated {
        part: "variables",
        expected: usize::from(h.datasize),
        got: buf.len() - HEADER_LEN,
    })?;
    let vars = decode_vars(block)?;
    let len = content_length(&vars)?;
    if len > max_body {
        return Err(UwsgiError::BodyTooLarge {
            length: len,
            max: max_body,
        });
    }
    let body = buf
        .get(end_vars..end_vars + len)
        .ok_or(UwsgiError::Truncated {
            part: "body",
            expected: len,
            got: buf.len() - end_vars,
        })?;
    Ok((
        Request {
            modifier1: h.modifier1,
            modifier2: h.modifier2,
            vars,
            body: body.to_vec(),
        },
        end_vars + len,
    ))
}

/// Reads until `buf` is full or the stream ends; the count read.
async fn read_full<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]).await? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Reads one request from a stream.
pub async fn read_request<R: AsyncRead + Unpin>(
    r: &mut R,
    max_body: usize,
) -> Result<Request, UwsgiError> {
    let mut head = [0u8; HEADER_LEN];
    let got = read_full(r, &mut head).await?;
    if got < HEADER_LEN {
        return Err(UwsgiError::Truncated {
            part: "header",
            expected: HEADER_LEN,
            got,
        });
    }
    let h = Header::parse(head);
    check_modifier(&h)?;
    let mut block = vec![0u8; usize::from(h.datasize)];
    let got = read_full(r, &mut block).await?;
    if got < block.len() {
        return Err(UwsgiError::Truncated {
            part: "variables",
            expected: block.len(),
            got,
        });
    }
    let vars = decode_vars(&block)?;
    let len = content_length(&vars)?;
    if len > max_body {
        return Err(UwsgiError::BodyTooLarge {
            length: len,
            max: max_body,
        });
    }
    let mut body = vec![0u8; len];
    let got = read_full(r, &mut body).await?;
    if got < len {
        return Err(UwsgiError::Truncated {
            part: "body",
            expected: len,
            got,
        });
    }
    Ok(Request {
        modifier1: h.modifier1,
        modifier2: h.modifier2,
        vars,
        body,
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The bytes on the wire: status line, headers (with `Content-Length`
    /// unless given), blank line, body. `head_only` leaves out the body, as
    /// a response to `HEAD` does, keeping its length header.
    pub fn encode(&self, head_only: bool) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (k, v) in &self.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if self.header("Content-Length").is_none() {
            out.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// Parses an HTTP response as this server writes it (and as nginx reads
/// it); `Content-Length`, when present, must match the body.
pub fn parse_response(bytes: &[u8]) -> Result<Response, UwsgiError> {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| UwsgiError::Malformed("no end of the response head".into()))?;
    let head = std::str::from_utf8(&bytes[..end])
        .map_err(|_| UwsgiError::Malformed("response head is not UTF-8".into()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (proto, code) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !proto.starts_with("HTTP/") {
        return Err(UwsgiError::Malformed(format!(
            "status line `{status_line}` is not HTTP"
        )));
    }
    let status = code
        .parse()
        .map_err(|_| UwsgiError::Malformed(format!("status `{code}` is not a number")))?;
    let mut headers = Vec::new();
    for l in lines {
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| UwsgiError::Malformed(format!("header line `{l}` has no `:`")))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let body = bytes[end + 4..].to_vec();
    let r = Response {
        status,
        headers,
        body,
    };
    if let Some(cl) = r.header("Content-Length") {
        let n: usize = cl
            .parse()
            .map_err(|_| UwsgiError::Malformed(format!("`Content-Length` `{cl}`")))?;
        if n != r.body.len() {
            return Err(UwsgiError::Truncated {
                part: "response body",
                expected: n,
                got: r.body.len(),
            });
        }
    }
    Ok(r)
}

/// The variables nginx's `uwsgi_params` sends for a bodiless request.
pub fn nginx_vars(method: &str, uri: &str) -> Vars {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    Vars::new()
        .with("QUERY_STRING", query)
        .with("REQUEST_METHOD", method)
        .with("CONTENT_TYPE", "")
        .with("CONTENT_LENGTH", "")
        .with("REQUEST_URI", uri)
        .with("PATH_INFO", path)
        .with("DOCUMENT_ROOT", "/etc/nginx/html")
        .with("SERVER_PROTOCOL", "HTTP/1.1")
        .with("REQUEST_SCHEME", "https")
        .with("HTTPS", "on")
        .with("REMOTE_ADDR", "127.0.0.1")
        .with("REMOTE_PORT", "40000")
        .with("SERVER_PORT", "443")
        .with("SERVER_NAME", "0.0.0.0")
}

/// A uwsgi client, for tests of a running server (here and in the cluster
/// tier): sends `req`, reads the response to the end of the connection.
pub async fn send(
    addr: SocketAddr,
    req: &Request,
    timeout: Duration,
) -> Result<Response, UwsgiError> {
    let work = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(&req.encode()?).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        parse_response(&buf)
    };
    tokio::time::timeout(timeout, work).await.map_err(|_| {
        UwsgiError::Io(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no response from `{addr}` within {}s", timeout.as_secs()),
        ))
    })?
}
