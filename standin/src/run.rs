//! The process: command line, environment, log, then the role until
//! SIGTERM or SIGINT (exit 0). Bad input exits with code 2 before anything
//! is connected.

use std::ffi::OsString;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::checks::{Backoff, Checker, Dep, Slot, watch};
use crate::config::{Config, Invocation, Role, USAGE, log_file, parse_args};
use crate::log::Logger;
use crate::server::{App, secret_key, serve};

/// Exit code for bad input: arguments or environment.
pub const EXIT_USAGE: i32 = 2;
/// Exit code for a failure at run time (the port is taken, say).
pub const EXIT_FAILURE: i32 = 1;

pub fn version() -> String {
    format!(
        "ke2-standin {} (test fixture standing in for the Kompira Enterprise image; not Kompira)",
        env!("CARGO_PKG_VERSION")
    )
}

/// The container's hostname (`ap-<node>` and the like in the swarm).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Everything `main` does, with the arguments and environment given; the
/// exit code.
pub fn main_with(args: Vec<OsString>, get: &dyn Fn(&str) -> Option<String>) -> i32 {
    let role = match parse_args(&args) {
        Ok(Invocation::Run(r)) => r,
        Ok(Invocation::Version) => {
            println!("{}", version());
            return 0;
        }
        Ok(Invocation::Help) => {
            println!("{}\n{USAGE}", version());
            return 0;
        }
        Err(e) => {
            eprintln!("ke2-standin: {e}\n{USAGE}");
            return EXIT_USAGE;
        }
    };
    let cfg = match Config::from_env(role, get) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: {e}", role.name());
            return EXIT_USAGE;
        }
    };
    let host = hostname();
    let log = match Logger::open(
        &cfg.logging_dir,
        &cfg.logging_name,
        cfg.logging_stream,
        cfg.logging_level,
        &host,
        role.name(),
    ) {
        Ok(l) => Arc::new(l.with_secrets(cfg.secrets())),
        Err(e) => {
            eprintln!(
                "{}: `LOGGING_DIR`: cannot open `{}`: {e}",
                role.name(),
                log_file(&cfg).display()
            );
            return EXIT_USAGE;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{}: cannot start the runtime: {e}", role.name());
            return EXIT_FAILURE;
        }
    };
    let code = rt.block_on(run(cfg, log.clone(), host));
    // The watchers sleep for seconds; do not wait for them.
    rt.shutdown_timeout(Duration::from_millis(100));
    let _ = std::io::stdout().flush();
    code
}

/// SIGTERM (docker's stop) and SIGINT (the `kompira` service's
/// `stop_signal`), caught from the moment this is made.
struct Stop {
    term: Signal,
    int: Signal,
}

impl Stop {
    fn new() -> std::io::Result<Stop> {
        Ok(Stop {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Completes on the first of them, naming it.
    async fn wait(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

async fn run(cfg: Config, log: Arc<Logger>, host: String) -> i32 {
    let role = cfg.role;
    // Handlers first, before anything is polled: a signal during start-up
    // must still end in exit 0, not in the default action.
    let mut stop = match Stop::new() {
        Ok(s) => s,
        Err(e) => {
            log.error(&format!("cannot catch SIGTERM/SIGINT: {e}"));
            return EXIT_FAILURE;
        }
    };
    log.info(&format!(
        "{} starting as `{}` on {host}; log file {}",
        version(),
        role.name(),
        log.path().display()
    ));
    if let Some(path) = &cfg.secret_key_file {
        match secret_key(Some(path)) {
            (true, Some(n)) => log.info(&format!(
                "secret key file {}: present ({n} bytes)",
                path.display()
            )),
            _ => log.warn(&format!("secret key file {}: missing", path.display())),
        }
    }

    let interval = cfg.check_interval;
    let listen = cfg.listen;
    let checker = Arc::new(Checker::new(cfg, &host));
    let new_slot = || -> Slot { Arc::new(Mutex::new(None)) };
    // The status page shows the watchers' latest AMQP and cache results;
    // its database result is a fresh check per request.
    let (amqp, cache) = (new_slot(), new_slot());
    for dep in checker.deps() {
        let s = match dep {
            Dep::Amqp => amqp.clone(),
            Dep::Cache => cache.clone(),
            Dep::Database => new_slot(),
        };
        tokio::spawn(watch(
            checker.clone(),
            dep,
            s,
            log.clone(),
            interval,
            Backoff::default(),
        ));
    }

    let why = if role == Role::Uwsgi {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                log.error(&format!("cannot listen on {listen}: {e}"));
                return EXIT_FAILURE;
            }
        };
        log.info(&format!("uwsgi protocol on {listen}"));
        let app = Arc::new(App::new(checker, log.clone(), host, amqp, cache));
        let mut why = "a stop signal";
        let served = serve(listener, app, async {
            why = stop.wait().await;
        })
        .await;
        if let Err(e) = served {
            log.error(&format!("server failed: {e}"));
            return EXIT_FAILURE;
        }
        why
    } else {
        stop.wait().await
    };
    log.info(&format!("{} stopping on {why}", role.name()));
    0
}
