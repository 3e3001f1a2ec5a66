//! The uwsgi role's server in-process: requests in the uwsgi protocol, the
//! status page with a database that is down (503) and with a fake
//! PostgreSQL that answers (200), the log it writes, and the dependency
//! watchers.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ke2_standin::checks::{Backoff, Checker, Dep, Slot, watch};
use ke2_standin::config::{Config, Role};
use ke2_standin::log::{Level, Logger};
use ke2_standin::server::{App, serve};
use ke2_standin::uwsgi::{self, Request, Response, Vars};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const DB_PW: &str = "db-s3cret-pw";
const MQ_PW: &str = "mq-s3cret-pw";
const RE_PW: &str = "re-s3cret-pw";

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

struct Lab {
    dir: tempfile::TempDir,
    app: Arc<App>,
    log: Arc<Logger>,
}

/// An app with the compose environment pointing at `db_port`; AMQP and
/// Redis are closed ports. The logger has no secrets registered, so the
/// log tests see what the code writes, not what the scrubber hides.
fn lab(db_port: u16) -> Lab {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join(".secret_key");
    std::fs::write(&key, "").unwrap();
    let vars = [
        (
            "DATABASE_URL",
            format!("pgsql://kompira:{DB_PW}@127.0.0.1:{db_port}/kompira"),
        ),
        (
            "AMQP_URL",
            format!("amqp://guest:{MQ_PW}@127.0.0.1:{}", closed_port()),
        ),
        (
            "CACHE_URL",
            format!("redis://:{RE_PW}@127.0.0.1:{}", closed_port()),
        ),
        ("LOGGING_DIR", dir.path().display().to_string()),
        ("LOGGING_NAME", "kompira".into()),
        ("KOMPIRA_SECRET_KEY_FILE", key.display().to_string()),
        ("STANDIN_CHECK_TIMEOUT", "2".into()),
    ];
    let cfg = Config::from_env(Role::Uwsgi, &|k| {
        vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
    })
    .unwrap();
    let log = Arc::new(
        Logger::open(
            dir.path(),
            "kompira",
            false,
            Level::Debug,
            "ap-test",
            "uwsgi",
        )
        .unwrap(),
    );
    let checker = Arc::new(Checker::new(cfg, "ap-test"));
    let empty = || -> Slot { Arc::new(Mutex::new(None)) };
    let app = Arc::new(App::new(
        checker,
        log.clone(),
        "ap-test".into(),
        empty(),
        empty(),
    ));
    Lab { dir, app, log }
}

impl Lab {
    fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kompira.log")).unwrap_or_default()
    }

    fn assert_no_password_logged(&self) {
        let text = self.log_text();
        for pw in [DB_PW, MQ_PW, RE_PW] {
            assert!(!text.contains(pw), "`{pw}` in the log:\n{text}");
        }
    }
}

/// Starts the server on an ephemeral port; the sender stops it.
async fn start(
    app: Arc<App>,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        serve(listener, app, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    (addr, tx, task)
}

async fn get(addr: SocketAddr, method: &str, uri: &str) -> Response {
    let req = Request::new(uwsgi::nginx_vars(method, uri), vec![]);
    uwsgi::send(addr, &req, Duration::from_secs(10))
        .await
        .unwrap()
}

fn json(r: &Response) -> Value {
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&r.body)))
}

#[tokio::test]
async fn a_database_that_is_down_gives_503_with_the_status_shape() {
    let lab = lab(closed_port());
    let (addr, stop, task) = start(lab.app.clone()).await;

    for path in ["/", "/.status", "/kompira/anything?x=1"] {
        let r = get(addr, "GET", path).await;
        assert_eq!(r.status, 503, "{path}");
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        let v = json(&r);
        assert_eq!(v["service"], "kompira-standin");
        assert_eq!(v["role"], "uwsgi");
        assert_eq!(v["hostname"], "ap-test");
        assert_eq!(v["database"]["ok"], false);
        assert!(
            v["database"]["error"].as_str().unwrap().contains("refused"),
            "{v}"
        );
        assert!(
            v["database"]["url"]
                .as_str()
                .unwrap()
                .starts_with("pgsql://kompira:***@127.0.0.1:")
        );
        // Not checked by a watcher in this test.
        assert_eq!(v["amqp"]["ok"], false);
        assert_eq!(v["amqp"]["error"], "not checked yet");
        assert_eq!(v["cache"]["ok"], false);
        assert_eq!(v["secret_key_present"], true);
        assert_eq!(v["secret_key_bytes"], 0);
        assert!(!String::from_utf8_lossy(&r.body).contains("s3cret"));
    }

    stop.send(()).unwrap();
    task.await.unwrap();
    let text = lab.log_text();
    assert!(text.contains("GET /.status 503 "), "{text}");
    assert!(text.contains("GET /kompira/anything 503 "), "{text}");
    assert!(text.contains("(client 127.0.0.1 via 127.0.0.1:"), "{text}");
    lab.assert_no_password_logged();
}

#[tokio::test]
async fn other_methods_head_and_bad_packets() {
    let lab = lab(closed_port());
    let (addr, stop, task) = start(lab.app.clone()).await;

    let r = get(addr, "POST", "/.status").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET, HEAD"));

    // HEAD: the status and length of a GET, no body.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = Request::new(uwsgi::nginx_vars("HEAD", "/"), vec![]);
    s.write_all(&req.encode().unwrap()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8(buf).unwrap();
    assert!(
        text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\n"), "{text}");

    // A request with a body is read whole before the answer.
    let body = vec![b'x'; 100_000];
    let vars = uwsgi::nginx_vars("PUT", "/upload");
    let vars = Vars(
        vars.0
            .into_iter()
            .map(|(k, v)| {
                if k == b"CONTENT_LENGTH" {
                    (k, body.len().to_string().into_bytes())
                } else {
                    (k, v)
                }
            })
            .collect(),
    );
    let r = uwsgi::send(addr, &Request::new(vars, body), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(r.status, 405);

    // A vars block that lies about a length: 400 with the reason.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&[0x00, 0x04, 0x00, 0x00, 0x09, 0x00, b'a', b'b'])
        .await
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let r = uwsgi::parse_response(&buf).unwrap();
    assert_eq!(r.status, 400);
    assert!(
        json(&r)["error"]
            .as_str()
            .unwrap()
            .contains("runs past the end")
    );

    // Another modifier1: closed without an answer, as uWSGI does.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&[0x05, 0x00, 0x00, 0x00]).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    assert!(buf.is_empty());

    // Connect and close without a byte: no log line.
    drop(TcpStream::connect(addr).await.unwrap());

    stop.send(()).unwrap();
    task.await.unwrap();
    let text = lab.log_text();
    assert!(text.contains("POST /.status 405 "), "{text}");
    assert!(text.contains("HEAD / 503 "), "{text}");
    assert!(text.contains("PUT /upload 405 "), "{text}");
    assert!(text.contains("- - 400 "), "{text}");
    assert!(text.contains("modifier1 `5` is not served"), "{text}");
    assert_eq!(text.lines().count(), 6, "{text}");
}

#[tokio::test]
async fn many_connections_at_once() {
    let lab = lab(closed_port());
    let (addr, stop, task) = start(lab.app.clone()).await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..64 {
        set.spawn(async move { get(addr, "GET", &format!("/.status?n={i}")).await.status });
    }
    let mut n = 0;
    while let Some(s) = set.join_next().await {
        assert_eq!(s.unwrap(), 503);
        n += 1;
    }
    assert_eq!(n, 64);
    stop.send(()).unwrap();
    task.await.unwrap();
    assert_eq!(lab.log_text().matches("GET /.status 503").count(), 64);
}

/// A PostgreSQL that asks for a cleartext password, checks it and the
/// status query, and answers as a primary at 10.0.0.2:5432 would.
async fn fake_postgres(listener: TcpListener) -> Vec<String> {
    let (mut s, _) = listener.accept().await.unwrap();
    let mut seen = Vec::new();
    // Startup (or SSLRequest, answered "no" and followed by the startup).
    let startup = loop {
        let len = s.read_u32().await.unwrap() as usize;
        let mut body = vec![0u8; len - 4];
        s.read_exact(&mut body).await.unwrap();
        if body[..4] == 80_877_103u32.to_be_bytes() {
            s.write_all(b"N").await.unwrap();
            continue;
        }
        break body;
    };
    let params: Vec<String> = startup[4..]
        .split(|b| *b == 0)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    seen.push(params.join(" "));
    // AuthenticationCleartextPassword
    s.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]).await.unwrap();
    loop {
        let tag = s.read_u8().await.unwrap();
        let len = s.read_u32().await.unwrap() as usize;
        let mut body = vec![0u8; len - 4];
        s.read_exact(&mut body).await.unwrap();
        let text = String::from_utf8_lossy(&body)
            .trim_end_matches('\0')
            .to_string();
        match tag {
            b'p' => {
                seen.push(format!("password {text}"));
                let mut out = vec![b'R', 0, 0, 0, 8, 0, 0, 0, 0]; // AuthenticationOk
                out.extend_from_slice(&[b'K', 0, 0, 0, 12, 0, 0, 0, 7, 0, 0, 0, 9]);
                out.extend_from_slice(&[b'Z', 0, 0, 0, 5, b'I']);
                s.write_all(&out).await.unwrap();
            }
            b'Q' => {
                seen.push(format!("query {text}"));
                s.write_all(&query_answer()).await.unwrap();
            }
            b'X' => break,
            other => panic!("unexpected message `{}`", other as char),
        }
    }
    seen
}

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn query_answer() -> Vec<u8> {
    let mut desc = 4u16.to_be_bytes().to_vec();
    for (name, oid) in [
        ("host", 25u32),
        ("inet_server_port", 23),
        ("pg_is_in_recovery", 16),
        ("now", 25),
    ] {
        desc.extend_from_slice(name.as_bytes());
        desc.push(0);
        desc.extend_from_slice(&0u32.to_be_bytes()); // table oid
        desc.extend_from_slice(&0u16.to_be_bytes()); // column number
        desc.extend_from_slice(&oid.to_be_bytes());
        desc.extend_from_slice(&(-1i16).to_be_bytes()); // type size
        desc.extend_from_slice(&(-1i32).to_be_bytes()); // type modifier
        desc.extend_from_slice(&0u16.to_be_bytes()); // text format
    }
    let mut row = 4u16.to_be_bytes().to_vec();
    for v in ["10.0.0.2", "5432", "f", "2026-01-02 03:04:05.678+09"] {
        row.extend_from_slice(&(v.len() as u32).to_be_bytes());
        row.extend_from_slice(v.as_bytes());
    }
    [
        message(b'T', &desc),
        message(b'D', &row),
        message(b'C', b"SELECT 1\0"),
        message(b'Z', b"I"),
    ]
    .concat()
}

#[tokio::test]
async fn a_database_that_answers_gives_200() {
    let pg = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pg_port = pg.local_addr().unwrap().port();
    let fake = tokio::spawn(fake_postgres(pg));
    let lab = lab(pg_port);
    let (addr, stop, task) = start(lab.app.clone()).await;

    let r = get(addr, "GET", "/.status").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = json(&r);
    let db = &v["database"];
    assert_eq!(db["ok"], true, "{v}");
    assert_eq!(db["server_addr"], "10.0.0.2");
    assert_eq!(db["server_port"], 5432);
    assert_eq!(db["in_recovery"], false);
    assert_eq!(db["now"], "2026-01-02 03:04:05.678+09");
    assert_eq!(
        db["url"],
        format!("pgsql://kompira:***@127.0.0.1:{pg_port}/kompira")
    );
    assert!(db["elapsed_ms"].is_u64() && db["checked_at"].is_string());

    let seen = fake.await.unwrap();
    assert!(seen[0].contains("user kompira"), "{seen:?}");
    assert!(seen[0].contains("database kompira"), "{seen:?}");
    assert!(
        seen[0].contains("application_name ke2-standin uwsgi@ap-test"),
        "{seen:?}"
    );
    assert_eq!(seen[1], format!("password {DB_PW}"));
    assert_eq!(seen[2], format!("query {}", ke2_standin::pg::QUERY));
    assert_eq!(seen.len(), 3);

    stop.send(()).unwrap();
    task.await.unwrap();
    assert!(lab.log_text().contains("GET /.status 200 "));
    lab.assert_no_password_logged();
}

#[tokio::test]
async fn watchers_log_failures_with_backoff_then_recovery() {
    let lab = lab(closed_port());
    let checker = lab.app.checker.clone();
    let port = checker.cfg.cache.as_ref().unwrap().port;
    let backoff = Backoff {
        first: Duration::from_millis(50),
        max: Duration::from_millis(200),
    };
    let cache: Slot = lab.app.cache.clone();
    let amqp: Slot = lab.app.amqp.clone();
    let w1 = tokio::spawn(watch(
        checker.clone(),
        Dep::Cache,
        cache.clone(),
        lab.log.clone(),
        Duration::from_millis(100),
        backoff,
    ));
    let w2 = tokio::spawn(watch(
        checker.clone(),
        Dep::Amqp,
        amqp.clone(),
        lab.log.clone(),
        Duration::from_millis(100),
        backoff,
    ));
    let until = |what: &'static str| {
        let lab = &lab;
        async move {
            for _ in 0..200 {
                if lab.log_text().contains(what) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            panic!("no `{what}` in the log:\n{}", lab.log_text());
        }
    };
    until("attempt 3, next in 200 ms").await;

    // Redis comes up on the same port (AUTH, then PING, on every check).
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 256];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let reply: &[u8] = if buf[..n].windows(4).any(|w| w == b"AUTH") {
                        b"+OK\r\n"
                    } else {
                        b"+PONG\r\n"
                    };
                    let _ = s.write_all(reply).await;
                }
            });
        }
    });
    until("failed attempts").await;

    // The status page shows the watchers' latest results.
    let (_, v) = lab.app.status().await;
    assert_eq!(v["cache"]["ok"], true, "{v}");
    assert_eq!(v["cache"]["reply"], "PONG");
    assert_eq!(v["amqp"]["ok"], false);
    assert!(
        v["amqp"]["error"].as_str().unwrap().contains("refused"),
        "{v}"
    );
    w1.abort();
    w2.abort();

    let text = lab.log_text();
    let cache_url = format!("redis://:***@127.0.0.1:{port}/0");
    assert!(
        text.contains(&format!(
            "WARNING ap-test uwsgi[{}]: cache {cache_url}: failed in ",
            std::process::id()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("cache {cache_url}: ok in ")),
        "{text}"
    );
    assert!(text.contains("(PONG); up after "), "{text}");
    // Once up, steady checks log nothing more.
    let ok_lines = text
        .lines()
        .filter(|l| l.contains("cache") && l.contains(": ok in"))
        .count();
    assert_eq!(ok_lines, 1, "{text}");
    assert!(text.contains("amqp amqp://guest:***@127.0.0.1:"), "{text}");
    lab.assert_no_password_logged();
}
