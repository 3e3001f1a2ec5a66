//! What several fault scenarios ask of a lab: typed reads through the VIP,
//! the writer's target, "a healthy database cluster", and a host's reboot.
//! `ke2lab_scenarios` re-exports all of it for the nextest scenarios.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::Lab;
use crate::faults::{Faults, Service};
use crate::writer::{TABLE, Target};
use anyhow::Result;
use ke2lab::cluster::pgpool::{Decision, decide};
use ke2lab::host::Cmd;
use ke2lab::probe::pgpool::{LIFECHECK_STARTED, PoolNode, PoolSummary};
use ke2lab::topology::Topology;
use ke2lab::wait::{Poll, wait_for};

/// Timeout of one probe's connection.
pub const T: Duration = Duration::from_secs(5);

/// Boots a lab for `topology`, runs `f` on it and finishes it on every exit
/// path (evidence on failure, faults undone, the lab removed; kept with
/// `KE2LAB_KEEP_ON_FAILURE=1`): a panic inside `f` becomes the scenario's
/// error instead of skipping the teardown.
pub async fn with_lab<T>(
    topology: &Topology,
    f: impl AsyncFnOnce(&mut Lab) -> Result<T>,
) -> Result<T> {
    let mut lab = Lab::boot(topology, crate::lab::keep_on_failure()).await?;
    let outcome = catching(f(&mut lab)).await;
    lab.finish(outcome).await
}

/// `work`'s outcome, a panic in it turned into an error.
pub async fn catching<T>(work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    use futures_util::FutureExt as _;
    std::panic::AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .unwrap_or_else(|p| {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-text panic".into());
            Err(anyhow::anyhow!("the scenario panicked: {what}"))
        })
}

/// The document's example with generated credentials, for the fault
/// scenarios: the document's passwords (`postgres`, `pgpool`) are ordinary
/// words of every log, and evidence redacted of them would be unreadable.
pub fn fault_topology() -> Result<Topology> {
    let mut t = Topology::fixture("three-node")?.topology;
    t.credentials.use_document_defaults = false;
    Ok(t)
}

/// Waits until the watchdog leader and every Pgpool-II member agree: the
/// leader sees one primary and streaming standbys, PostgreSQL says the
/// same, and no member's backend list differs from the leader's. Nothing
/// is repaired here (the re-provision does that): this is what a scenario
/// asserts. Returns the leader's and the primary's host names.
pub async fn await_agreement(lab: &Lab, what: &str, timeout: Duration) -> Result<(String, String)> {
    let (leader, primary) = wait_for(what, timeout, || async {
        let v = lab.cluster().pgpool_view().await;
        match decide(&v) {
            Decision::Healthy { leader, primary } => Poll::Ready((leader, primary)),
            other => Poll::NotYet(format!("{other:?}")),
        }
    })
    .await?;
    let names = &lab.topology.hosts;
    let (leader, primary) = (names[leader].name.clone(), names[primary].name.clone());
    lab.events.record(format!(
        "observed: every Pgpool-II member agrees with the leader `{leader}` (primary `{primary}`)"
    ));
    Ok((leader, primary))
}

/// Waits until the watchdog's lifecheck runs on every host (Pgpool-II logs
/// its start once each member it watches has sent a heartbeat; it checks
/// every ten `wd_interval`s, so this comes about 100 s after its start
/// with the document's 10 s, 20 s with the lab's `pgpool.wd_interval` 2).
pub async fn await_lifecheck(lab: &Lab, timeout: Duration) -> Result<()> {
    for spec in &lab.topology.hosts {
        let name = spec.name.clone();
        wait_for(
            &format!("the watchdog lifecheck to start on `{name}`"),
            timeout,
            || async {
                match lab.cluster().pgpool_log(&name).await {
                    Ok(lines) if lines.iter().any(|l| l.message == LIFECHECK_STARTED) => {
                        Poll::Ready(())
                    }
                    Ok(lines) => {
                        Poll::NotYet(format!("{} log lines, no lifecheck start", lines.len()))
                    }
                    Err(e) => Poll::NotYet(e.to_string()),
                }
            },
        )
        .await?;
    }
    Ok(())
}

/// `show pool_nodes` through the VIP.
pub async fn pool_nodes(lab: &Lab) -> Result<Vec<PoolNode>> {
    Ok(lab
        .cluster()
        .pool_nodes_at(lab.topology.network.vip)
        .await?)
}

/// Waits for one primary and every other node a streaming standby, as
/// Pgpool-II sees them through the VIP.
pub async fn wait_healthy(lab: &Lab, what: &str, timeout: Duration) -> Result<Vec<PoolNode>> {
    let n = lab.topology.hosts.len();
    Ok(wait_for(what, timeout, || async {
        match pool_nodes(lab).await {
            Ok(nodes) if PoolSummary::of(&nodes).is_healthy(n) => Poll::Ready(nodes),
            Ok(nodes) => Poll::NotYet(PoolSummary::of(&nodes).to_string()),
            Err(e) => Poll::NotYet(e.to_string()),
        }
    })
    .await?)
}

/// The primary's host name in `nodes`.
pub fn primary_of(nodes: &[PoolNode]) -> Option<String> {
    nodes
        .iter()
        .find(|n| n.is_primary() && n.is_up())
        .map(|n| n.hostname.clone())
}

/// The application's connection through the VIP, as the writer uses it.
pub fn writer_target(lab: &Lab) -> Result<Target> {
    let t = &lab.topology;
    Ok(Target {
        addr: t.network.vip,
        port: t.ports.pgpool,
        user: "kompira".into(),
        password: lab.credentials()?.kompira.expose().to_string(),
        database: t.postgres.database.clone(),
    })
}

/// The ids table `table` holds, read through the VIP as `kompira`.
pub async fn ids_in(lab: &Lab, table: &str) -> Result<BTreeSet<i64>> {
    let c = lab.cluster().app_client().await?;
    Ok(c.query(&format!("SELECT id FROM {table}"), &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Which of `acked` the database (through the VIP, as the writer's
/// `kompira`) no longer has.
pub async fn missing(lab: &Lab, acked: &[i64]) -> Result<Vec<i64>> {
    let present = ids_in(lab, TABLE).await?;
    Ok(acked
        .iter()
        .copied()
        .filter(|id| !present.contains(id))
        .collect())
}

/// Starts a stopped host and its services as its init would on a reboot:
/// the engine (by the boot script), then glusterd, PostgreSQL, Pgpool-II.
///
/// A service that fails to start is what a failed unit is on a real boot:
/// logged, and the next one starts anyway. It happens for real: Pgpool-II's
/// `follow_primary.sh`, run for the returning old primary when the failover
/// reaches it just as it boots, stops its PostgreSQL for `pg_rewind` under
/// `pg_ctlcluster start`'s readiness probes, which then report a failed
/// start of a server that runs again, as a standby, seconds later. The
/// failures are returned (`unit`: error) and recorded in the lab's events;
/// the state they leave is for the caller's convergence check to judge.
pub async fn reboot(lab: &Lab, host: &str) -> Result<Vec<String>> {
    let mut f = Faults::new(lab);
    f.start(host).await?;
    let h = lab.host(host)?;
    wait_for(
        &format!("the docker engine of the restarted host `{host}`"),
        Duration::from_secs(60),
        || async {
            match h.run(&Cmd::new(["docker", "version"])).await {
                Ok(o) if o.success() => Poll::Ready(()),
                Ok(o) => Poll::NotYet(o.stderr_lossy()),
                Err(e) => Poll::NotYet(e.to_string()),
            }
        },
    )
    .await?;
    let mut failed = Vec::new();
    for s in [Service::Glusterd, Service::Postgres, Service::Pgpool] {
        if let Err(e) = f.start_service(host, s).await {
            let e = format!("{e:#}");
            lab.events
                .record(format!("reboot of `{host}`: a unit failed to start: {e}"));
            failed.push(format!("{s:?}: {e}"));
        }
    }
    Ok(failed)
}

/// The hosts holding the VIP, polled until exactly one does.
pub async fn single_vip_holder(lab: &Lab, what: &str, timeout: Duration) -> Result<String> {
    Ok(wait_for(what, timeout, || async {
        match lab.cluster().vip_holders().await {
            Ok(h) if h.len() == 1 => Poll::Ready(h[0].clone()),
            Ok(h) => Poll::NotYet(format!("holders {h:?}")),
            Err(e) => Poll::NotYet(e.to_string()),
        }
    })
    .await?)
}

/// `n` unpredictable bytes: xorshift64* seeded from the standard library's
/// per-process random hasher keys (the scenarios crate has no `rand`).
pub fn random_bytes(n: usize) -> Vec<u8> {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    let mut x = h.finish() | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(n);
    out
}
