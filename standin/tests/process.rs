//! The binary as the image runs it: roles from argv[0] or the first
//! argument, exit code 2 naming a bad variable, and a clean exit 0 on
//! SIGTERM/SIGINT with its log written.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ke2_standin::uwsgi::{self, Request};

const BIN: &str = env!("CARGO_BIN_EXE_ke2-standin");

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The binary with an empty environment plus `vars`.
fn cmd(program: &Path, args: &[&str], vars: &[(&str, String)]) -> Command {
    let mut c = Command::new(program);
    c.args(args).env_clear();
    for (k, v) in vars {
        c.env(k, v);
    }
    c
}

fn output(program: &Path, args: &[&str], vars: &[(&str, String)]) -> Output {
    cmd(program, args, vars).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn version_and_usage() {
    let o = output(Path::new(BIN), &["--version"], &[]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.starts_with(&format!(
            "ke2-standin {} (test fixture",
            env!("CARGO_PKG_VERSION")
        )),
        "{out}"
    );

    let o = output(Path::new(BIN), &[], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with("ke2-standin: no role given\nusage: "),
        "{}",
        stderr(&o)
    );

    let o = output(Path::new(BIN), &["nginx"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).starts_with("ke2-standin: unknown role `nginx`"));
}

#[test]
fn a_missing_database_url_exits_2_naming_it() {
    let o = output(
        Path::new(BIN),
        &["uwsgi"],
        &[
            ("AMQP_URL", "amqp://guest:guest@mq:5672".into()),
            ("CACHE_URL", "redis://redis:6379".into()),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "uwsgi: `DATABASE_URL`: is not set (`uwsgi` needs it)\n"
    );
    assert!(o.stdout.is_empty());
}

#[test]
fn a_bad_scheme_exits_2_naming_the_variable() {
    let o = output(
        Path::new(BIN),
        &["kompirad"],
        &[
            ("DATABASE_URL", "mysql://kompira:pw@db/kompira".into()),
            ("AMQP_URL", "amqp://guest:guest@mq:5672".into()),
            ("CACHE_URL", "redis://redis:6379".into()),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with("kompirad: `DATABASE_URL`: scheme `mysql` is not supported"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("pw"));
}

#[test]
fn the_role_comes_from_the_link_name() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("jobmngrd");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let o = output(&link, &[], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "jobmngrd: `AMQP_URL`: is not set (`jobmngrd` needs it)\n"
    );
}

#[test]
fn an_unusable_log_directory_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let o = output(
        Path::new(BIN),
        &["jobmngrd"],
        &[
            ("AMQP_URL", "amqp://guest:guest@mq:5672".into()),
            ("LOGGING_DIR", file.display().to_string()),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with("jobmngrd: `LOGGING_DIR`: cannot open `"),
        "{}",
        stderr(&o)
    );
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on the pid of a child this test started and has not
    // yet waited for.
    let rc = unsafe { libc::kill(child.id() as i32, sig) };
    assert_eq!(rc, 0);
}

fn wait_for_log(path: &Path, what: &str) -> String {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(what) {
            return text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no `{what}` in {}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_exit(mut child: Child) -> (Option<i32>, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut out = String::new();
            use std::io::Read;
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            return (status.code(), out);
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("still running 10s after the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn jobmngrd_waits_for_rabbitmq_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let child = cmd(
        Path::new(BIN),
        &["jobmngrd"],
        &[
            (
                "AMQP_URL",
                format!("amqp://guest:mq-pw-123@127.0.0.1:{port}"),
            ),
            ("LOGGING_DIR", dir.path().display().to_string()),
            ("LOGGING_NAME", "jobmngrd".into()),
            ("LOGGING_STREAM", "true".into()),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let log = dir.path().join("jobmngrd.log");
    wait_for_log(&log, "attempt 1, next in 1s");
    signal(&child, libc::SIGTERM);
    let (code, stdout) = wait_exit(child);
    assert_eq!(code, Some(0));
    let text = wait_for_log(&log, "jobmngrd stopping on SIGTERM");
    assert!(text.contains(" starting as `jobmngrd` on "), "{text}");
    assert!(
        text.contains(&format!(
            "amqp amqp://guest:***@127.0.0.1:{port}: failed in "
        )),
        "{text}"
    );
    // No database, cache or secret key for jobmngrd.
    assert!(
        !text.contains("database") && !text.contains("secret key"),
        "{text}"
    );
    assert!(!text.contains("mq-pw-123"));
    // LOGGING_STREAM: the same lines on stdout.
    assert_eq!(stdout, text);
}

#[test]
fn uwsgi_serves_and_stops_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", closed_port());
    let child = cmd(
        Path::new(BIN),
        &[],
        &[
            (
                "DATABASE_URL",
                format!(
                    "pgsql://kompira:db-pw-123@127.0.0.1:{}/kompira",
                    closed_port()
                ),
            ),
            (
                "AMQP_URL",
                format!("amqp://guest:mq-pw-123@127.0.0.1:{}", closed_port()),
            ),
            ("CACHE_URL", format!("redis://127.0.0.1:{}", closed_port())),
            ("LOGGING_DIR", dir.path().display().to_string()),
            ("LOGGING_NAME", "kompira".into()),
            (
                "KOMPIRA_SECRET_KEY_FILE",
                dir.path().join("none").display().to_string(),
            ),
            ("STANDIN_LISTEN", listen.clone()),
        ],
    )
    .arg("uwsgi")
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let log = dir.path().join("kompira.log");
    wait_for_log(&log, &format!("uwsgi protocol on {listen}"));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt
        .block_on(uwsgi::send(
            listen.parse().unwrap(),
            &Request::new(uwsgi::nginx_vars("GET", "/.status"), vec![]),
            Duration::from_secs(10),
        ))
        .unwrap();
    assert_eq!(r.status, 503);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["database"]["ok"], false);
    assert_eq!(v["secret_key_present"], false);
    assert_eq!(v["secret_key_bytes"], serde_json::Value::Null);

    signal(&child, libc::SIGINT);
    let (code, stdout) = wait_exit(child);
    assert_eq!(code, Some(0));
    // LOGGING_STREAM unset: nothing on stdout.
    assert_eq!(stdout, "");
    let text = wait_for_log(&log, "uwsgi stopping on SIGINT");
    assert!(text.contains("GET /.status 503 "), "{text}");
    assert!(text.contains("/none: missing"), "{text}");
    for pw in ["db-pw-123", "mq-pw-123"] {
        assert!(!text.contains(pw), "{text}");
    }
}

#[test]
fn kompirad_checks_its_three_dependencies_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join(".secret_key");
    std::fs::write(&key, "12345").unwrap();
    let child = cmd(
        Path::new(BIN),
        &[],
        &[
            (
                "DATABASE_URL",
                format!(
                    "pgsql://kompira:db-pw-123@127.0.0.1:{}/kompira",
                    closed_port()
                ),
            ),
            (
                "AMQP_URL",
                format!("amqp://guest:mq-pw-123@127.0.0.1:{}", closed_port()),
            ),
            ("CACHE_URL", format!("redis://127.0.0.1:{}", closed_port())),
            ("LOGGING_DIR", dir.path().display().to_string()),
            ("LOGGING_NAME", "kengine".into()),
            ("KOMPIRA_SECRET_KEY_FILE", key.display().to_string()),
        ],
    )
    .arg("kompirad")
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let log = dir.path().join("kengine.log");
    for dep in ["database pgsql://", "amqp amqp://", "cache redis://"] {
        wait_for_log(&log, dep);
    }
    signal(&child, libc::SIGTERM);
    let (code, _) = wait_exit(child);
    assert_eq!(code, Some(0));
    let text = wait_for_log(&log, "kompirad stopping on SIGTERM");
    assert!(text.contains(" INFO "), "{text}");
    assert!(text.contains(".secret_key: present (5 bytes)"), "{text}");
    assert!(!text.contains("uwsgi protocol"), "{text}");
    for pw in ["db-pw-123", "mq-pw-123"] {
        assert!(!text.contains(pw), "{text}");
    }
}
