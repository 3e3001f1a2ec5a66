//! The `uwsgi` role's server: the uwsgi protocol on port 8000, a status
//! page for every GET, one task per connection.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::checks::{Checker, Dep, Slot};
use crate::log::{Logger, utc_rfc3339};
use crate::uwsgi::{self, Request, Response, UwsgiError};

/// The service name in the status page; says plainly this is not Kompira.
pub const SERVICE: &str = "kompira-standin";
/// Request bodies are read and dropped; beyond this the request is refused.
pub const MAX_BODY: usize = 16 * 1024 * 1024;
/// A client that sends no complete request within this is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// At most this many status pages hold a database connection at once.
/// Pgpool-II serves a fixed number of clients (`num_init_children`, 32 by
/// default); a burst of requests must not take them all from the other
/// clients of the cluster. Requests beyond wait their turn.
const DB_CONCURRENCY: usize = 8;
/// In-flight requests get this long to finish after SIGTERM/SIGINT.
const DRAIN: Duration = Duration::from_secs(5);

pub struct App {
    pub checker: Arc<Checker>,
    pub log: Arc<Logger>,
    pub hostname: String,
    pub amqp: Slot,
    pub cache: Slot,
    db_permits: Semaphore,
}

impl App {
    pub fn new(
        checker: Arc<Checker>,
        log: Arc<Logger>,
        hostname: String,
        amqp: Slot,
        cache: Slot,
    ) -> App {
        App {
            checker,
            log,
            hostname,
            amqp,
            cache,
            db_permits: Semaphore::new(DB_CONCURRENCY),
        }
    }

    /// The status page's body and whether the database answered.
    pub async fn status(&self) -> (bool, Value) {
        let db = {
            let _permit = self.db_permits.acquire().await;
            self.checker.check(Dep::Database).await
        };
        let latest = |slot: &Slot, url: String| match slot.lock().ok().and_then(|s| s.clone()) {
            Some(o) => o.json,
            None => json!({"url": url, "ok": false, "error": "not checked yet"}),
        };
        let cfg = &self.checker.cfg;
        let cache_url = cfg
            .cache
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default();
        let (key_present, key_bytes) = secret_key(cfg.secret_key_file.as_deref());
        let body = json!({
            "service": SERVICE,
            "version": env!("CARGO_PKG_VERSION"),
            "role": cfg.role.name(),
            "hostname": self.hostname,
            "pid": std::process::id(),
            "time": utc_rfc3339(SystemTime::now()),
            "database": db.json,
            "amqp": latest(&self.amqp, cfg.amqp.to_string()),
            "cache": latest(&self.cache, cache_url),
            "secret_key_present": key_present,
            "secret_key_bytes": key_bytes,
        });
        (db.ok, body)
    }

    /// The response to one request.
    pub async fn respond(&self, req: &Request) -> Response {
        match req.method() {
            "GET" | "HEAD" => {
                let (ok, body) = self.status().await;
                let mut r = Response::new(
                    if ok { 200 } else { 503 },
                    "application/json",
                    format!("{body}\n").into_bytes(),
                );
                r.headers.push(("Cache-Control".into(), "no-store".into()));
                r
            }
            other => {
                let mut r = Response::new(
                    405,
                    "application/json",
                    format!(
                        "{}\n",
                        json!({"service": SERVICE, "error": format!("method `{other}` is not served; use GET")})
                    )
                    .into_bytes(),
                );
                r.headers.push(("Allow".into(), "GET, HEAD".into()));
                r
            }
        }
    }
}

/// Whether the secret key file exists, and its size; its content is never
/// read. The stand-in neither creates nor writes it.
pub fn secret_key(path: Option<&Path>) -> (bool, Option<u64>) {
    match path.map(std::fs::metadata) {
        Some(Ok(m)) if m.is_file() => (true, Some(m.len())),
        _ => (false, None),
    }
}

fn error_response(status: u16, message: &str) -> Response {
    Response::new(
        status,
        "application/json",
        format!("{}\n", json!({"service": SERVICE, "error": message})).into_bytes(),
    )
}

async fn handle(app: Arc<App>, mut stream: TcpStream, peer: SocketAddr) {
    let started = Instant::now();
    let read = tokio::time::timeout(READ_TIMEOUT, uwsgi::read_request(&mut stream, MAX_BODY)).await;
    let (req, resp) = match read {
        Err(_) => {
            app.log.warn(&format!(
                "{peer}: no complete request within {}s; closed",
                READ_TIMEOUT.as_secs()
            ));
            return;
        }
        // A connection opened and closed without a byte: a TCP health
        // check, not a request.
        Ok(Err(UwsgiError::Truncated {
            part: "header",
            got: 0,
            ..
        })) => return,
        // uWSGI drops a packet for another modifier without an answer.
        Ok(Err(e @ (UwsgiError::UnsupportedModifier(_) | UwsgiError::Io(_)))) => {
            app.log.warn(&format!("{peer}: {e}; closed"));
            return;
        }
        Ok(Err(e @ UwsgiError::BodyTooLarge { .. })) => {
            app.log.warn(&format!("{peer}: {e}"));
            (None, error_response(413, &e.to_string()))
        }
        Ok(Err(e)) => {
            app.log.warn(&format!("{peer}: {e}"));
            (None, error_response(400, &e.to_string()))
        }
        Ok(Ok(req)) => {
            let resp = app.respond(&req).await;
            (Some(req), resp)
        }
    };
    let head_only = req.as_ref().is_some_and(|r| r.method() == "HEAD");
    let written = async {
        stream.write_all(&resp.encode(head_only)).await?;
        stream.shutdown().await
    }
    .await;
    let (method, path, remote) = match &req {
        Some(r) => (
            r.method().to_string(),
            r.path(),
            r.vars.get_str("REMOTE_ADDR").unwrap_or("-").to_string(),
        ),
        None => ("-".into(), "-".into(), "-".into()),
    };
    let mut line = format!(
        "{method} {path} {} {} ms (client {remote} via {peer})",
        resp.status,
        started.elapsed().as_millis()
    );
    if let Err(e) = written {
        line.push_str(&format!("; response not delivered: {e}"));
    }
    app.log.info(&line);
}

/// Accepts connections on `listener` until `shutdown` completes, then lets
/// the requests in flight finish (for at most a few seconds).
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tasks.spawn(handle(app.clone(), stream, peer));
                }
                // Out of file descriptors and the like: wait, do not die.
                Err(e) => {
                    app.log.error(&format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            // Reap finished connections so the set does not grow.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(listener);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN, drain).await.is_err() {
        app.log.warn(&format!(
            "{} requests still running after {}s; dropped",
            tasks.len(),
            DRAIN.as_secs()
        ));
    }
    Ok(())
}
