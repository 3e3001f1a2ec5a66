//! Redis over RESP: `AUTH` when `CACHE_URL` has a password, `SELECT` when
//! it names a database other than 0, then `PING`, expecting `+PONG`.

use std::fmt;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use crate::url::RedisUrl;

#[derive(Debug)]
pub enum RespError {
    Io(io::Error),
    /// The server's `-ERR ...` (or `-NOAUTH ...`) reply to a command.
    Server {
        command: &'static str,
        text: String,
    },
    Unexpected {
        command: &'static str,
        reply: String,
    },
    Timeout(Duration),
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespError::Io(e) => write!(f, "{e}"),
            RespError::Server { command, text } => write!(f, "`{command}` failed: {text}"),
            RespError::Unexpected { command, reply } => {
                write!(f, "unexpected reply to `{command}`: `{reply}`")
            }
            RespError::Timeout(d) => write!(f, "no reply within {}", crate::log::human(*d)),
        }
    }
}

impl std::error::Error for RespError {}

impl From<io::Error> for RespError {
    fn from(e: io::Error) -> Self {
        RespError::Io(e)
    }
}

/// A command as a RESP array of bulk strings.
pub fn encode_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Replies longer than this are not a simple status; stop reading.
const MAX_LINE: usize = 4096;

async fn read_line<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> Result<String, RespError> {
    let mut line = Vec::new();
    let n = (&mut *r)
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 {
        return Err(RespError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "server closed the connection",
        )));
    }
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

async fn command<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    name: &'static str,
    args: &[&[u8]],
    want: &str,
) -> Result<(), RespError> {
    s.get_mut().write_all(&encode_command(args)).await?;
    s.get_mut().flush().await?;
    let line = read_line(s).await?;
    if let Some(text) = line.strip_prefix('-') {
        return Err(RespError::Server {
            command: name,
            text: text.to_string(),
        });
    }
    if line != want {
        return Err(RespError::Unexpected {
            command: name,
            reply: line,
        });
    }
    Ok(())
}

/// `AUTH`/`SELECT` as the URL asks, then `PING` on an open stream.
pub async fn ping_on<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    url: &RedisUrl,
) -> Result<(), RespError> {
    let mut s = BufReader::new(stream);
    if let Some(pw) = &url.password {
        let mut args: Vec<&[u8]> = vec![b"AUTH"];
        if let Some(u) = &url.user {
            args.push(u.as_bytes());
        }
        args.push(pw.as_bytes());
        command(&mut s, "AUTH", &args, "+OK").await?;
    }
    if url.db != 0 {
        let db = url.db.to_string();
        command(&mut s, "SELECT", &[b"SELECT", db.as_bytes()], "+OK").await?;
    }
    command(&mut s, "PING", &[b"PING"], "+PONG").await
}

/// Connects to `url`'s host and runs [`ping_on`] within `timeout`.
pub async fn ping(url: &RedisUrl, timeout: Duration) -> Result<(), RespError> {
    let work = async {
        let s = tokio::net::TcpStream::connect((url.host.as_str(), url.port)).await?;
        s.set_nodelay(true)?;
        ping_on(s, url).await
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| RespError::Timeout(timeout))?
}
