//! The client side of the AMQP 0-9-1 connection handshake, enough to show
//! that RabbitMQ accepts `AMQP_URL`'s credentials and vhost:
//!
//! ```text
//! C: "AMQP" 0 0 9 1
//! S: Connection.Start      C: Connection.Start-Ok (PLAIN)
//! S: Connection.Tune       C: Connection.Tune-Ok
//!                          C: Connection.Open (vhost)
//! S: Connection.Open-Ok
//!                          C: Connection.Close
//! S: Connection.Close-Ok
//! ```
//!
//! A frame is type (octet), channel (short), payload size (long), payload,
//! and the end octet 0xCE; integers are big-endian. A method payload is
//! class id, method id, then the arguments. The handshake is all on
//! channel 0 and class 10 (connection).

use std::fmt;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::url::AmqpUrl;

pub const PROTOCOL_HEADER: [u8; 8] = *b"AMQP\x00\x00\x09\x01";
pub const FRAME_METHOD: u8 = 1;
pub const FRAME_HEARTBEAT: u8 = 8;
pub const FRAME_END: u8 = 0xCE;
/// The spec's frame-min-size: every peer accepts frames this large before
/// Tune has agreed on another limit.
pub const FRAME_MIN_SIZE: u32 = 4096;
pub const CLASS_CONNECTION: u16 = 10;

/// The most this client accepts for frames and channels.
const OUR_FRAME_MAX: u32 = 131_072;
const OUR_CHANNEL_MAX: u16 = 2047;

#[derive(Debug)]
pub enum AmqpError {
    Io(io::Error),
    /// The server answered the protocol header with its own: it speaks
    /// another version.
    ProtocolMismatch(Vec<u8>),
    Protocol(String),
    /// The server closed the connection with a reply code (403 for a
    /// refused login, 530 for a vhost the user may not open).
    Refused {
        code: u16,
        text: String,
        during: &'static str,
    },
    Timeout(Duration),
}

impl fmt::Display for AmqpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AmqpError::Io(e) => write!(f, "{e}"),
            AmqpError::ProtocolMismatch(h) => write!(
                f,
                "server does not speak AMQP 0-9-1; it answered with the protocol header {}",
                String::from_utf8_lossy(h).escape_debug()
            ),
            AmqpError::Protocol(m) => write!(f, "protocol error: {m}"),
            AmqpError::Refused { code, text, during } => {
                write!(f, "refused after {during}: {code} {text}")
            }
            AmqpError::Timeout(d) => write!(f, "no handshake within {}", crate::log::human(*d)),
        }
    }
}

impl std::error::Error for AmqpError {}

impl From<io::Error> for AmqpError {
    fn from(e: io::Error) -> Self {
        AmqpError::Io(e)
    }
}

fn protocol(msg: impl Into<String>) -> AmqpError {
    AmqpError::Protocol(msg.into())
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: u8,
    pub channel: u16,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.payload.len());
        out.push(self.kind);
        out.extend_from_slice(&self.channel.to_be_bytes());
        out.extend_from_slice(&(self.payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.payload);
        out.push(FRAME_END);
        out
    }
}

/// Reads one frame whose payload is at most `max` bytes.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max: u32) -> Result<Frame, AmqpError> {
    let mut head = [0u8; 7];
    r.read_exact(&mut head).await?;
    let kind = head[0];
    let channel = u16::from_be_bytes([head[1], head[2]]);
    let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]);
    if size > max {
        return Err(protocol(format!(
            "frame of {size} bytes exceeds the frame size limit {max}"
        )));
    }
    let mut payload = vec![0u8; size as usize + 1];
    r.read_exact(&mut payload).await?;
    let end = payload.pop();
    if end != Some(FRAME_END) {
        return Err(protocol(format!(
            "frame ends with {:#04x}, not {FRAME_END:#04x}",
            end.unwrap_or_default()
        )));
    }
    Ok(Frame {
        kind,
        channel,
        payload,
    })
}

/// A field value of a field table, with RabbitMQ's type tags (the 0-9-1
/// errata's: `s` is a signed short, `l` a signed long-long, `x` bytes).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Bool(bool),
    I8(i8),
    U8(u8),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    F32(f32),
    F64(f64),
    Decimal(u8, u32),
    LongStr(Vec<u8>),
    Array(Vec<Value>),
    Timestamp(u64),
    Table(Table),
    Void,
    Bytes(Vec<u8>),
}

pub type Table = Vec<(String, Value)>;

/// Looks a key up in a table; a `LongStr` value as text.
pub fn table_str<'a>(t: &'a Table, key: &str) -> Option<&'a str> {
    t.iter().find(|(k, _)| k == key).and_then(|(_, v)| match v {
        Value::LongStr(s) => std::str::from_utf8(s).ok(),
        _ => None,
    })
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn shortstr(&mut self, s: &str) {
        // Short strings are at most 255 bytes; every one this client
        // writes is a constant or a vhost/user name well below that.
        let b = &s.as_bytes()[..s.len().min(255)];
        self.u8(b.len() as u8);
        self.0.extend_from_slice(b);
    }
    fn longstr(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn table(&mut self, t: &Table) {
        let mut inner = Writer(Vec::new());
        for (k, v) in t {
            inner.shortstr(k);
            inner.value(v);
        }
        self.longstr(&inner.0);
    }
    fn value(&mut self, v: &Value) {
        match v {
            Value::Bool(b) => {
                self.u8(b't');
                self.u8(u8::from(*b));
            }
            Value::I8(x) => {
                self.u8(b'b');
                self.0.extend_from_slice(&x.to_be_bytes());
            }
            Value::U8(x) => {
                self.u8(b'B');
                self.u8(*x);
            }
            Value::I16(x) => {
                self.u8(b's');
                self.0.extend_from_slice(&x.to_be_bytes());
            }
            Value::U16(x) => {
                self.u8(b'u');
                self.u16(*x);
            }
            Value::I32(x) => {
                self.u8(b'I');
                self.0.extend_from_slice(&x.to_be_bytes());
            }
            Value::U32(x) => {
                self.u8(b'i');
                self.u32(*x);
            }
            Value::I64(x) => {
                self.u8(b'l');
                self.0.extend_from_slice(&x.to_be_bytes());
            }
            Value::F32(x) => {
                self.u8(b'f');
                self.0.extend_from_slice(&x.to_be_bytes());
            }
            Value::F64(x) => {
                self.u8(b'd');
                self.0.extend_from_slice(&x.to_be_bytes());
            }
            Value::Decimal(scale, x) => {
                self.u8(b'D');
                self.u8(*scale);
                self.u32(*x);
            }
            Value::LongStr(s) => {
                self.u8(b'S');
                self.longstr(s);
            }
            Value::Array(items) => {
                self.u8(b'A');
                let mut inner = Writer(Vec::new());
                for i in items {
                    inner.value(i);
                }
                self.longstr(&inner.0);
            }
            Value::Timestamp(x) => {
                self.u8(b'T');
                self.0.extend_from_slice(&x.to_be_bytes());
            }
            Value::Table(t) => {
                self.u8(b'F');
                self.table(t);
            }
            Value::Void => self.u8(b'V'),
            Value::Bytes(b) => {
                self.u8(b'x');
                self.longstr(b);
            }
        }
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], AmqpError> {
        let s = self.b.get(self.pos..self.pos + n).ok_or_else(|| {
            protocol(format!(
                "method arguments end at byte {} where {n} more were expected",
                self.b.len()
            ))
        })?;
        self.pos += n;
        Ok(s)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], AmqpError> {
        Ok(self.take(N)?.try_into().expect("take returns N bytes"))
    }
    fn u8(&mut self) -> Result<u8, AmqpError> {
        Ok(self.arr::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, AmqpError> {
        Ok(u16::from_be_bytes(self.arr()?))
    }
    fn u32(&mut self) -> Result<u32, AmqpError> {
        Ok(u32::from_be_bytes(self.arr()?))
    }
    fn shortstr(&mut self) -> Result<String, AmqpError> {
        let n = self.u8()?;
        let b = self.take(usize::from(n))?;
        String::from_utf8(b.to_vec()).map_err(|_| protocol("a short string is not UTF-8"))
    }
    fn longstr(&mut self) -> Result<Vec<u8>, AmqpError> {
        let n = self.u32()?;
        Ok(self.take(n as usize)?.to_vec())
    }
    fn table(&mut self) -> Result<Table, AmqpError> {
        let raw = self.longstr()?;
        let mut r = Reader { b: &raw, pos: 0 };
        let mut t = Vec::new();
        while r.pos < raw.len() {
            let k = r.shortstr()?;
            let v = r.value()?;
            t.push((k, v));
        }
        Ok(t)
    }
    fn value(&mut self) -> Result<Value, AmqpError> {
        let tag = self.u8()?;
        Ok(match tag {
            b't' => Value::Bool(self.u8()? != 0),
            b'b' => Value::I8(i8::from_be_bytes(self.arr()?)),
            b'B' => Value::U8(self.u8()?),
            b's' => Value::I16(i16::from_be_bytes(self.arr()?)),
            b'u' => Value::U16(self.u16()?),
            b'I' => Value::I32(i32::from_be_bytes(self.arr()?)),
            b'i' => Value::U32(self.u32()?),
            b'l' => Value::I64(i64::from_be_bytes(self.arr()?)),
            b'f' => Value::F32(f32::from_be_bytes(self.arr()?)),
            b'd' => Value::F64(f64::from_be_bytes(self.arr()?)),
            b'D' => {
                let scale = self.u8()?;
                Value::Decimal(scale, self.u32()?)
            }
            b'S' => Value::LongStr(self.longstr()?),
            b'A' => {
                let raw = self.longstr()?;
                let mut r = Reader { b: &raw, pos: 0 };
                let mut items = Vec::new();
                while r.pos < raw.len() {
                    items.push(r.value()?);
                }
                Value::Array(items)
            }
            b'T' => Value::Timestamp(u64::from_be_bytes(self.arr()?)),
            b'F' => Value::Table(self.table()?),
            b'V' => Value::Void,
            b'x' => Value::Bytes(self.longstr()?),
            other => {
                return Err(protocol(format!(
                    "unknown field type `{}` in a table",
                    (other as char).escape_debug()
                )));
            }
        })
    }
}

/// The connection-class methods of the handshake.
#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    Start {
        version_major: u8,
        version_minor: u8,
        server_properties: Table,
        mechanisms: Vec<u8>,
        locales: Vec<u8>,
    },
    StartOk {
        client_properties: Table,
        mechanism: String,
        response: Vec<u8>,
        locale: String,
    },
    Secure {
        challenge: Vec<u8>,
    },
    Tune {
        channel_max: u16,
        frame_max: u32,
        heartbeat: u16,
    },
    TuneOk {
        channel_max: u16,
        frame_max: u32,
        heartbeat: u16,
    },
    Open {
        vhost: String,
    },
    OpenOk,
    Close {
        reply_code: u16,
        reply_text: String,
        class_id: u16,
        method_id: u16,
    },
    CloseOk,
    /// Any other class or method, undecoded.
    Other {
        class_id: u16,
        method_id: u16,
    },
}

impl Method {
    pub fn ids(&self) -> (u16, u16) {
        match self {
            Method::Start { .. } => (10, 10),
            Method::StartOk { .. } => (10, 11),
            Method::Secure { .. } => (10, 20),
            Method::Tune { .. } => (10, 30),
            Method::TuneOk { .. } => (10, 31),
            Method::Open { .. } => (10, 40),
            Method::OpenOk => (10, 41),
            Method::Close { .. } => (10, 50),
            Method::CloseOk => (10, 51),
            Method::Other {
                class_id,
                method_id,
            } => (*class_id, *method_id),
        }
    }

    pub fn name(&self) -> String {
        match self.ids() {
            (10, 10) => "Connection.Start".into(),
            (10, 11) => "Connection.Start-Ok".into(),
            (10, 20) => "Connection.Secure".into(),
            (10, 30) => "Connection.Tune".into(),
            (10, 31) => "Connection.Tune-Ok".into(),
            (10, 40) => "Connection.Open".into(),
            (10, 41) => "Connection.Open-Ok".into(),
            (10, 50) => "Connection.Close".into(),
            (10, 51) => "Connection.Close-Ok".into(),
            (c, m) => format!("method {c}.{m}"),
        }
    }

    /// The method payload: class id, method id, arguments.
    pub fn encode(&self) -> Vec<u8> {
        let (c, m) = self.ids();
        let mut w = Writer(Vec::new());
        w.u16(c);
        w.u16(m);
        match self {
            Method::Start {
                version_major,
                version_minor,
                server_properties,
                mechanisms,
                locales,
            } => {
                w.u8(*version_major);
                w.u8(*version_minor);
                w.table(server_properties);
                w.longstr(mechanisms);
                w.longstr(locales);
            }
            Method::StartOk {
                client_properties,
                mechanism,
                response,
                locale,
            } => {
                w.table(client_properties);
                w.shortstr(mechanism);
                w.longstr(response);
                w.shortstr(locale);
            }
            Method::Secure { challenge } => w.longstr(challenge),
            Method::Tune {
                channel_max,
                frame_max,
                heartbeat,
            }
            | Method::TuneOk {
                channel_max,
                frame_max,
                heartbeat,
            } => {
                w.u16(*channel_max);
                w.u32(*frame_max);
                w.u16(*heartbeat);
            }
            Method::Open { vhost } => {
                w.shortstr(vhost);
                // reserved-1 (capabilities, a short string) and reserved-2
                // (insist, one bit in its own octet).
                w.shortstr("");
                w.u8(0);
            }
            // reserved-1 (known-hosts).
            Method::OpenOk => w.shortstr(""),
            Method::Close {
                reply_code,
                reply_text,
                class_id,
                method_id,
            } => {
                w.u16(*reply_code);
                w.shortstr(reply_text);
                w.u16(*class_id);
                w.u16(*method_id);
            }
            Method::CloseOk | Method::Other { .. } => {}
        }
        w.0
    }

    pub fn frame(&self) -> Frame {
        Frame {
            kind: FRAME_METHOD,
            channel: 0,
            payload: self.encode(),
        }
    }

    pub fn decode(payload: &[u8]) -> Result<Method, AmqpError> {
        let mut r = Reader { b: payload, pos: 0 };
        let class_id = r.u16()?;
        let method_id = r.u16()?;
        let m = match (class_id, method_id) {
            (10, 10) => Method::Start {
                version_major: r.u8()?,
                version_minor: r.u8()?,
                server_properties: r.table()?,
                mechanisms: r.longstr()?,
                locales: r.longstr()?,
            },
            (10, 11) => Method::StartOk {
                client_properties: r.table()?,
                mechanism: r.shortstr()?,
                response: r.longstr()?,
                locale: r.shortstr()?,
            },
            (10, 20) => Method::Secure {
                challenge: r.longstr()?,
            },
            (10, 30) | (10, 31) => {
                let (channel_max, frame_max, heartbeat) = (r.u16()?, r.u32()?, r.u16()?);
                if method_id == 30 {
                    Method::Tune {
                        channel_max,
                        frame_max,
                        heartbeat,
                    }
                } else {
                    Method::TuneOk {
                        channel_max,
                        frame_max,
                        heartbeat,
                    }
                }
            }
            (10, 40) => {
                let vhost = r.shortstr()?;
                r.shortstr()?;
                r.u8()?;
                Method::Open { vhost }
            }
            (10, 41) => {
                r.shortstr()?;
                Method::OpenOk
            }
            (10, 50) => Method::Close {
                reply_code: r.u16()?,
                reply_text: r.shortstr()?,
                class_id: r.u16()?,
                method_id: r.u16()?,
            },
            (10, 51) => Method::CloseOk,
            _ => {
                return Ok(Method::Other {
                    class_id,
                    method_id,
                });
            }
        };
        if r.pos != payload.len() {
            return Err(protocol(format!(
                "{} carries {} bytes after its arguments",
                m.name(),
                payload.len() - r.pos
            )));
        }
        Ok(m)
    }
}

/// SASL PLAIN's response: authorization id (empty), user, password, each
/// after a NUL.
pub fn plain_response(user: &str, password: &str) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(user.as_bytes());
    out.push(0);
    out.extend_from_slice(password.as_bytes());
    out
}

/// What the server said about itself, and what was agreed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerInfo {
    pub product: Option<String>,
    pub version: Option<String>,
    pub cluster_name: Option<String>,
    pub channel_max: u16,
    pub frame_max: u32,
    pub heartbeat: u16,
}

/// The client's properties; `connection_name` shows in RabbitMQ's
/// management UI and `rabbitmqctl list_connections`.
pub fn client_properties(connection_name: &str) -> Table {
    vec![
        ("product".into(), Value::LongStr(b"ke2-standin".to_vec())),
        (
            "version".into(),
            Value::LongStr(env!("CARGO_PKG_VERSION").as_bytes().to_vec()),
        ),
        ("platform".into(), Value::LongStr(b"Rust".to_vec())),
        (
            "information".into(),
            Value::LongStr(b"test fixture standing in for Kompira Enterprise".to_vec()),
        ),
        (
            "connection_name".into(),
            Value::LongStr(connection_name.as_bytes().to_vec()),
        ),
        // Without this capability RabbitMQ answers a refused login by
        // closing the socket; with it, by Connection.Close 403, which
        // tells a refused login from a broken network.
        (
            "capabilities".into(),
            Value::Table(vec![(
                "authentication_failure_close".into(),
                Value::Bool(true),
            )]),
        ),
    ]
}

struct Conn<'s, S> {
    s: &'s mut S,
    frame_max: u32,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<'_, S> {
    async fn send(&mut self, m: &Method) -> Result<(), AmqpError> {
        self.s.write_all(&m.frame().encode()).await?;
        self.s.flush().await?;
        Ok(())
    }

    /// The next method on channel 0, heartbeats skipped. A server's
    /// Connection.Close is answered with Close-Ok and returned as
    /// `Refused`; `after` names what the client sent last.
    async fn recv(&mut self, after: &'static str) -> Result<Method, AmqpError> {
        loop {
            let f = match read_frame(self.s, self.frame_max).await {
                Err(AmqpError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(protocol(format!(
                        "server closed the connection after {after}"
                    )));
                }
                other => other?,
            };
            match f.kind {
                FRAME_HEARTBEAT => continue,
                FRAME_METHOD if f.channel == 0 => {}
                k => {
                    return Err(protocol(format!(
                        "unexpected frame type {k} on channel {} after {after}",
                        f.channel
                    )));
                }
            }
            let m = Method::decode(&f.payload)?;
            if let Method::Close {
                reply_code,
                reply_text,
                ..
            } = m
            {
                // Best effort: the server may already have gone.
                let _ = self.send(&Method::CloseOk).await;
                return Err(AmqpError::Refused {
                    code: reply_code,
                    text: reply_text,
                    during: after,
                });
            }
            return Ok(m);
        }
    }
}

fn unexpected(m: &Method, wanted: &str) -> AmqpError {
    protocol(format!("expected {wanted}, got {}", m.name()))
}

/// The whole handshake on an open stream, then a clean Connection.Close.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    url: &AmqpUrl,
    connection_name: &str,
) -> Result<ServerInfo, AmqpError> {
    s.write_all(&PROTOCOL_HEADER).await?;
    s.flush().await?;
    // A server that does not speak 0-9-1 answers with its own header
    // instead of a frame; both start with at least 8 bytes.
    let mut first = [0u8; 8];
    match s.read_exact(&mut first).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            return Err(protocol(
                "server closed the connection after the protocol header",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    if first.starts_with(b"AMQP") {
        return Err(AmqpError::ProtocolMismatch(first.to_vec()));
    }
    // The 8 bytes are the Start frame's head plus its first payload byte.
    let mut chained = first.as_slice().chain(&mut *s);
    let start_frame = read_frame(&mut chained, FRAME_MIN_SIZE).await?;
    if start_frame.kind != FRAME_METHOD {
        return Err(protocol(format!(
            "expected a method frame, got frame type {}",
            start_frame.kind
        )));
    }
    let start = Method::decode(&start_frame.payload)?;
    let Method::Start {
        version_major,
        version_minor,
        server_properties,
        mechanisms,
        ..
    } = &start
    else {
        return Err(unexpected(&start, "Connection.Start"));
    };
    if (*version_major, *version_minor) != (0, 9) {
        return Err(protocol(format!(
            "server offers AMQP {version_major}-{version_minor}, not 0-9"
        )));
    }
    let mechs = String::from_utf8_lossy(mechanisms);
    if !mechs.split_whitespace().any(|m| m == "PLAIN") {
        return Err(protocol(format!(
            "server offers no PLAIN authentication (offers `{mechs}`)"
        )));
    }
    let info_from = |t: &Table| {
        (
            table_str(t, "product").map(str::to_string),
            table_str(t, "version").map(str::to_string),
            table_str(t, "cluster_name").map(str::to_string),
        )
    };
    let (product, version, cluster_name) = info_from(server_properties);

    let mut c = Conn {
        s,
        frame_max: FRAME_MIN_SIZE,
    };
    c.send(&Method::StartOk {
        client_properties: client_properties(connection_name),
        mechanism: "PLAIN".into(),
        response: plain_response(&url.user, &url.password),
        locale: "en_US".into(),
    })
    .await?;
    let tune = c.recv("Connection.Start-Ok").await?;
    let Method::Tune {
        channel_max,
        frame_max,
        ..
    } = tune
    else {
        return Err(unexpected(&tune, "Connection.Tune"));
    };
    // 0 means "no limit" from the server; take ours then, else the lower.
    let channel_max = match channel_max {
        0 => OUR_CHANNEL_MAX,
        n => n.min(OUR_CHANNEL_MAX),
    };
    let frame_max = match frame_max {
        0 => OUR_FRAME_MAX,
        n => n.clamp(FRAME_MIN_SIZE, OUR_FRAME_MAX),
    };
    // No heartbeats: the connection is closed right after Open-Ok.
    let heartbeat = 0;
    c.send(&Method::TuneOk {
        channel_max,
        frame_max,
        heartbeat,
    })
    .await?;
    c.frame_max = frame_max;
    c.send(&Method::Open {
        vhost: url.vhost.clone(),
    })
    .await?;
    let open_ok = c.recv("Connection.Open").await?;
    if open_ok != Method::OpenOk {
        return Err(unexpected(&open_ok, "Connection.Open-Ok"));
    }
    c.send(&Method::Close {
        reply_code: 200,
        reply_text: "Goodbye".into(),
        class_id: 0,
        method_id: 0,
    })
    .await?;
    let close_ok = c.recv("Connection.Close").await?;
    if close_ok != Method::CloseOk {
        return Err(unexpected(&close_ok, "Connection.Close-Ok"));
    }
    Ok(ServerInfo {
        product,
        version,
        cluster_name,
        channel_max,
        frame_max,
        heartbeat,
    })
}

/// Connects to `url`'s host and runs [`handshake`] within `timeout`.
pub async fn check(
    url: &AmqpUrl,
    connection_name: &str,
    timeout: Duration,
) -> Result<ServerInfo, AmqpError> {
    let work = async {
        let mut s = tokio::net::TcpStream::connect((url.host.as_str(), url.port)).await?;
        s.set_nodelay(true)?;
        handshake(&mut s, url, connection_name).await
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| AmqpError::Timeout(timeout))?
}
