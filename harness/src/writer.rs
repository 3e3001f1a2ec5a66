//! A client that writes numbered rows through the VIP without pause and
//! remembers every commit the server acknowledged, so a fault scenario can
//! measure the write outage (RTO) and count acknowledged commits that the
//! cluster lost.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use ke2lab::probe::pgpool::connect;
use tokio::task::JoinHandle;

/// Where and as whom the writer connects.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: Ipv4Addr,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub database: String,
}

/// One write attempt.
#[derive(Clone, Copy, Debug)]
pub struct Attempt {
    pub at: Instant,
    pub id: i64,
    pub ok: bool,
}

/// What the writer saw.
#[derive(Clone, Debug, Default)]
pub struct WriterReport {
    pub attempts: Vec<Attempt>,
}

impl WriterReport {
    pub fn acknowledged(&self) -> Vec<i64> {
        self.attempts
            .iter()
            .filter(|a| a.ok)
            .map(|a| a.id)
            .collect()
    }

    /// From `fault` to the first acknowledged write after the last failed
    /// one that followed it: how long writes were impossible.
    pub fn rto_after(&self, fault: Instant) -> Option<Duration> {
        let after: Vec<&Attempt> = self.attempts.iter().filter(|a| a.at >= fault).collect();
        let last_fail = after.iter().rposition(|a| !a.ok)?;
        after[last_fail..]
            .iter()
            .find(|a| a.ok)
            .map(|a| a.at.duration_since(fault))
    }
}

/// A running writer; `stop` ends it and returns the report.
pub struct Writer {
    stop: Arc<AtomicBool>,
    task: JoinHandle<WriterReport>,
}

pub const TABLE: &str = "ke2lab_writer";

impl Writer {
    pub async fn start(target: Target) -> Result<Writer> {
        let c = connect(
            target.addr,
            target.port,
            &target.user,
            &target.password,
            &target.database,
            Duration::from_secs(10),
        )
        .await?;
        c.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {TABLE} (id bigint PRIMARY KEY, at timestamptz DEFAULT now())"
        ))
        .await?;
        let next: i64 = c
            .query_one(
                &format!("SELECT coalesce(max(id), 0) + 1 FROM {TABLE}"),
                &[],
            )
            .await?
            .get(0);
        drop(c);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move { run(target, next, flag).await });
        Ok(Writer { stop, task })
    }

    pub async fn stop(self) -> WriterReport {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap_or_default()
    }
}

async fn run(t: Target, mut id: i64, stop: Arc<AtomicBool>) -> WriterReport {
    let mut report = WriterReport::default();
    let mut client = None;
    let timeout = Duration::from_secs(2);
    while !stop.load(Ordering::SeqCst) {
        if client.is_none() {
            client = connect(t.addr, t.port, &t.user, &t.password, &t.database, timeout)
                .await
                .ok();
        }
        let ok = match &client {
            Some(c) => matches!(
                tokio::time::timeout(
                    timeout,
                    c.execute(&format!("INSERT INTO {TABLE} (id) VALUES ($1)"), &[&id]),
                )
                .await,
                Ok(Ok(1))
            ),
            None => false,
        };
        report.attempts.push(Attempt {
            at: Instant::now(),
            id,
            ok,
        });
        if ok {
            id += 1;
        } else {
            // A failed write may still have committed (the answer was
            // lost); a new id keeps "acknowledged" exact.
            id += 1;
            client = None;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    report
}

/// A client that appends numbered lines to a file (on the shared directory)
/// from one host, without pause, and keeps every line whose append returned
/// success: what the file must hold on every brick once healed.
pub struct Appender {
    stop: Arc<AtomicBool>,
    task: JoinHandle<AppendReport>,
}

/// What an appender saw.
#[derive(Clone, Debug, Default)]
pub struct AppendReport {
    /// The file's expected content: every acknowledged line, in order.
    pub content: Vec<u8>,
    pub ok: usize,
    /// Appends that failed, with the error seen.
    pub failed: Vec<(usize, String)>,
}

impl Appender {
    pub fn start(host: std::sync::Arc<dyn ke2lab::host::Host>, path: String) -> Appender {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut r = AppendReport::default();
            let mut i = 0usize;
            while !flag.load(Ordering::SeqCst) {
                let line = format!("{} {i}\n", host.name());
                let cmd = ke2lab::host::Cmd::sh("printf '%s' \"$1\" >> \"$2\"")
                    .arg(line.clone())
                    .arg(path.clone());
                match cmd.check(host.as_ref()).await {
                    Ok(_) => {
                        r.ok += 1;
                        r.content.extend_from_slice(line.as_bytes());
                    }
                    Err(e) => r.failed.push((i, e.to_string())),
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            r
        });
        Appender { stop, task }
    }

    pub async fn stop(self) -> AppendReport {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap_or_default()
    }
}
