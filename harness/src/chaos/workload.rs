//! The chaos run's clients and its sampler, each a task that writes what it
//! saw into the shared [`Recorder`] until told to stop. Every attempt has
//! its own deadline, so a frozen or cut-off host costs an attempt, never a
//! stuck client.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ke2lab::cluster::Cluster;
use ke2lab::cluster::pgpool::PgState;
use ke2lab::host::{Cmd, Host};
use tokio::task::JoinHandle;

use super::history::{Event, Sample, append_line};

/// The table the writers insert into.
pub const TABLE: &str = "ke2lab_chaos";
/// The directory under the shared directory the appenders write in.
pub const SHARED_DIR: &str = "ke2lab-chaos";

/// How long one SQL attempt (connecting included) may take.
const SQL_DEADLINE: Duration = Duration::from_secs(3);
/// The appenders' pace: each append is a command on the host (an exec
/// through the engine), and a faster pace loads a 2-core machine enough
/// to slow the cluster it measures.
const APPEND_EVERY: Duration = Duration::from_secs(1);
/// How long one append may take.
const APPEND_DEADLINE: Duration = Duration::from_secs(5);

/// Where the run's events go, stamped from its start.
#[derive(Clone)]
pub struct Recorder {
    start: Instant,
    events: Arc<Mutex<Vec<Event>>>,
    samples: Arc<Mutex<Vec<Sample>>>,
}

impl Recorder {
    pub fn new() -> Self {
        Recorder {
            start: Instant::now(),
            events: Arc::default(),
            samples: Arc::default(),
        }
    }

    pub fn ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    pub fn push(&self, e: Event) {
        self.events.lock().unwrap().push(e);
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap().clone()
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

/// The running tasks; [`Workloads::stop`] ends them all.
pub struct Workloads {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Workloads {
    pub async fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// What the workloads need of the lab.
pub struct Plan {
    pub cluster: Arc<Cluster>,
    pub hosts: Vec<Arc<dyn Host>>,
    /// Host name by address, to name the server `inet_server_addr()` gives.
    pub addresses: Vec<(Ipv4Addr, String)>,
    pub writers: u32,
    pub sample_every: Duration,
    /// The appenders' directory: `<shared path>/ke2lab-chaos/<tag>`.
    pub shared_path: String,
    pub tag: String,
}

/// Creates the table and the appenders' directory, then starts every
/// client and the sampler.
pub async fn start(plan: Plan, rec: &Recorder) -> anyhow::Result<Workloads> {
    let c = plan.cluster.app_client().await?;
    c.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {TABLE} (id bigint PRIMARY KEY, client int, at timestamptz DEFAULT now())"
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
    let dir = format!("{}/{SHARED_DIR}/{}", plan.shared_path, plan.tag);
    Cmd::new(["mkdir", "-p"])
        .arg(dir.clone())
        .deadline(APPEND_DEADLINE)
        .check(plan.hosts[0].as_ref())
        .await?;

    let stop = Arc::new(AtomicBool::new(false));
    let ids = Arc::new(AtomicI64::new(next));
    let names = Arc::new(plan.addresses);
    let mut tasks = Vec::new();
    for client in 0..plan.writers {
        tasks.push(tokio::spawn(writer(
            plan.cluster.clone(),
            client,
            ids.clone(),
            names.clone(),
            rec.clone(),
            stop.clone(),
        )));
    }
    tasks.push(tokio::spawn(reader(
        plan.cluster.clone(),
        names.clone(),
        rec.clone(),
        stop.clone(),
    )));
    for h in &plan.hosts {
        tasks.push(tokio::spawn(appender(
            h.clone(),
            format!("{dir}/{}.log", h.name()),
            rec.clone(),
            stop.clone(),
        )));
    }
    tasks.push(tokio::spawn(sampler(
        plan.cluster.clone(),
        plan.sample_every,
        rec.clone(),
        stop.clone(),
    )));
    Ok(Workloads { stop, tasks })
}

/// The path, under the shared directory, of host `host`'s appender file.
pub fn shared_file(tag: &str, host: &str) -> String {
    format!("{SHARED_DIR}/{tag}/{host}.log")
}

fn name_of(names: &[(Ipv4Addr, String)], addr: &str) -> String {
    names
        .iter()
        .find(|(a, _)| a.to_string() == addr)
        .map(|(_, n)| n.clone())
        .unwrap_or_else(|| addr.to_string())
}

fn brief(e: impl std::fmt::Display) -> String {
    let s = e.to_string();
    s.chars().take(160).collect()
}

/// Inserts numbered rows through the VIP, one at a time, recording each
/// attempt and who acknowledged it. A failed attempt drops the connection
/// (the next connects again, as an application's pool would) and its id
/// is never reused: it may have committed with its answer lost, and
/// "acknowledged" must stay exact.
async fn writer(
    cluster: Arc<Cluster>,
    client: u32,
    ids: Arc<AtomicI64>,
    names: Arc<Vec<(Ipv4Addr, String)>>,
    rec: Recorder,
    stop: Arc<AtomicBool>,
) {
    let mut conn: Option<tokio_postgres::Client> = None;
    let sql = format!(
        "INSERT INTO {TABLE} (id, client) VALUES ($1, $2) RETURNING host(inet_server_addr())"
    );
    while !stop.load(Ordering::SeqCst) {
        let id = ids.fetch_add(1, Ordering::SeqCst);
        let t_ms = rec.ms();
        let attempt = tokio::time::timeout(SQL_DEADLINE, async {
            if conn.is_none() {
                conn = Some(cluster.app_client().await.map_err(brief)?);
            }
            let c = conn.as_ref().expect("connected above");
            let row = c
                .query_one(&sql, &[&id, &(client as i32)])
                .await
                .map_err(brief)?;
            let addr: Option<String> = row.get(0);
            Ok::<_, String>(addr)
        })
        .await
        .unwrap_or_else(|_| Err("no answer within 3 s".into()));
        let end_ms = rec.ms();
        match attempt {
            Ok(addr) => rec.push(Event::Write {
                t_ms,
                end_ms,
                client,
                id,
                ok: true,
                server: Some(addr.map_or_else(|| "local".into(), |a| name_of(&names, &a))),
                error: None,
            }),
            Err(e) => {
                conn = None;
                rec.push(Event::Write {
                    t_ms,
                    end_ms,
                    client,
                    id,
                    ok: false,
                    server: None,
                    error: Some(e),
                });
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Counts the rows through the VIP every 500 ms: reads go on where
/// Pgpool-II balances them (a standby's answer names that standby).
async fn reader(
    cluster: Arc<Cluster>,
    names: Arc<Vec<(Ipv4Addr, String)>>,
    rec: Recorder,
    stop: Arc<AtomicBool>,
) {
    let mut conn: Option<tokio_postgres::Client> = None;
    let sql = format!("SELECT count(*), host(inet_server_addr()) FROM {TABLE}");
    while !stop.load(Ordering::SeqCst) {
        let t_ms = rec.ms();
        let attempt = tokio::time::timeout(SQL_DEADLINE, async {
            if conn.is_none() {
                conn = Some(cluster.app_client().await.map_err(brief)?);
            }
            let row = conn
                .as_ref()
                .expect("connected above")
                .query_one(&sql, &[])
                .await
                .map_err(brief)?;
            let n: i64 = row.get(0);
            let addr: Option<String> = row.get(1);
            Ok::<_, String>((n, addr))
        })
        .await
        .unwrap_or_else(|_| Err("no answer within 3 s".into()));
        let end_ms = rec.ms();
        let ok = attempt.is_ok();
        let (rows, server) = match attempt {
            Ok((n, a)) => (Some(n), a.map(|a| name_of(&names, &a))),
            Err(_) => {
                conn = None;
                (None, None)
            }
        };
        rec.push(Event::Read {
            t_ms,
            end_ms,
            ok,
            server,
            rows,
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Appends numbered lines to its host's file on the shared directory,
/// through that host's own mount, every [`APPEND_EVERY`].
async fn appender(host: Arc<dyn Host>, path: String, rec: Recorder, stop: Arc<AtomicBool>) {
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let t_ms = rec.ms();
        let line = format!("{}\n", append_line(host.name(), n));
        let ok = Cmd::sh("printf '%s' \"$1\" >> \"$2\"")
            .arg(line)
            .arg(path.clone())
            .deadline(APPEND_DEADLINE)
            .check(host.as_ref())
            .await
            .is_ok();
        rec.push(Event::Append {
            t_ms,
            host: host.name().to_string(),
            n,
            ok,
        });
        n += 1;
        tokio::time::sleep(APPEND_EVERY).await;
    }
}

/// Every `every`, asks each host at once who carries the VIP, whether its
/// PostgreSQL is a primary and whom its watchdog names leader. A host that
/// does not answer is listed as such, never counted as holding anything.
async fn sampler(cluster: Arc<Cluster>, every: Duration, rec: Recorder, stop: Arc<AtomicBool>) {
    let names: Vec<String> = cluster
        .topology()
        .hosts
        .iter()
        .map(|h| h.name.clone())
        .collect();
    while !stop.load(Ordering::SeqCst) {
        let began = Instant::now();
        let t_ms = rec.ms();
        let answers = futures_util::future::join_all(names.iter().map(|n| {
            let cluster = cluster.clone();
            async move {
                let (vip, pg, wd) = tokio::join!(
                    cluster.holds_vip(n),
                    cluster.postgres_state(n),
                    cluster.watchdog_info_from(n)
                );
                (n.clone(), vip, pg, wd)
            }
        }))
        .await;
        let mut s = Sample {
            t_ms,
            ..Default::default()
        };
        for (n, vip, pg, wd) in answers {
            match vip {
                Ok(true) => s.vip.push(n.clone()),
                Ok(false) => {}
                Err(_) => s.unanswered.push(n.clone()),
            }
            if let Ok(PgState::Primary) = pg {
                s.primaries.push(n.clone());
            }
            if let Ok(w) = wd {
                s.leaders.insert(n.clone(), w.leader_host.clone());
            }
        }
        rec.samples.lock().unwrap().push(s);
        if let Some(rest) = every.checked_sub(began.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
}
