//! A majority of the hosts stops (the primary's among them; two of three),
//! leaving standbys without a majority. Nothing may act without one: each
//! surviving swarm manager refuses manager operations with Raft's
//! no-leader error, each surviving Pgpool-II watchdog has no quorum and
//! holds no VIP, and no surviving standby is promoted. The hosts come back
//! (rebooted, then the operator re-provisions): the swarm has a leader, the
//! VIP is on one host, the database is one primary with streaming
//! standbys, and every commit acknowledged before the fault is there.
//! Repeated `cycles` times.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, ensure};
use futures_util::future::LocalBoxFuture;
use ke2lab::cluster::pgpool::PgState;
use ke2lab::probe::ProbeError;
use ke2lab::probe::swarm::ManagerStatus;
use ke2lab::topology::Topology;
use ke2lab::wait::{Poll, wait_for};

use super::common::{
    await_agreement, missing, primary_of, reboot, single_vip_holder, wait_healthy, writer_target,
};
use super::{Options, Report, Session};
use crate::Lab;
use crate::faults::Faults;
use crate::measure::Summary;
use crate::writer::Writer;

/// Longer than Pgpool-II's failure detection (health check every 5 s,
/// 30 s connect timeout, 3 retries: about 47 s measured on node loss), so
/// a promotion that quorum should prevent would have happened in it.
const HOLD: Duration = Duration::from_secs(60);

/// `SELECT pg_is_in_recovery()` on the host's own PostgreSQL.
async fn in_recovery(lab: &Lab, host: &str) -> Result<bool> {
    match lab.cluster().postgres_state(host).await? {
        PgState::Standby => Ok(true),
        PgState::Primary => Ok(false),
        PgState::Down(why) => Err(anyhow!("pg_is_in_recovery() on `{host}`: {why}")),
    }
}

struct Cycle {
    no_quorum_seen: Duration,
    converged: Duration,
    acked: usize,
    lost: usize,
}

async fn cycle(lab: &mut Lab) -> Result<Cycle> {
    let nodes = wait_healthy(lab, "a healthy cluster", Duration::from_secs(120)).await?;
    let primary = primary_of(&nodes).ok_or_else(|| anyhow!("no primary"))?;
    let names: Vec<String> = lab.topology.hosts.iter().map(|h| h.name.clone()).collect();
    // At most half the hosts survive (one of three, two of four, two of
    // five), all of them standbys: no strict majority for the swarm's Raft
    // or the watchdog.
    let survivors: Vec<String> = names
        .iter()
        .filter(|n| **n != primary)
        .take(names.len() / 2)
        .cloned()
        .collect();
    let stopped: Vec<String> = names
        .iter()
        .filter(|n| !survivors.contains(n))
        .cloned()
        .collect();
    let survivor = survivors[0].clone();

    // Commits acknowledged before the fault.
    let target = writer_target(lab)?;
    let writer = Writer::start(target.clone()).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = writer.stop().await.acknowledged();

    let mut f = Faults::new(lab);
    let mut at = None;
    for h in &stopped {
        at.get_or_insert(f.stop(h).await?);
    }
    let stopped_at = at.unwrap();

    // Each survivor's manager refuses manager operations, typed.
    for survivor in &survivors {
        wait_for(
            &format!("the swarm manager on `{survivor}` to report no leader"),
            Duration::from_secs(60),
            || async {
                match lab.cluster().swarm_nodes_from(survivor).await {
                    Err(ProbeError::NoSwarmQuorum { .. }) => Poll::Ready(()),
                    other => Poll::NotYet(format!("{other:?}")),
                }
            },
        )
        .await?;
        lab.events.record(format!(
            "observed: `{survivor}` swarm manager without leader"
        ));
    }
    let no_quorum_seen = stopped_at.elapsed();

    // For longer than a failover would take: no quorum, no VIP, no promotion.
    let hold_from = Instant::now();
    let cluster = lab.cluster();
    let mut samples = 0;
    while hold_from.elapsed() < HOLD {
        for survivor in &survivors {
            let wd = cluster.watchdog_info_from(survivor).await?;
            ensure!(!wd.quorum, "`{survivor}`'s watchdog claims quorum: {wd:?}");
            let held = cluster.holds_vip(survivor).await?;
            ensure!(!held, "`{survivor}` holds the VIP without quorum");
            ensure!(
                in_recovery(lab, survivor).await?,
                "`{survivor}` promoted itself without quorum"
            );
        }
        samples += 1;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    lab.events.record(format!(
        "observed: {samples} samples over {}s without quorum, VIP or promotion on {survivors:?}",
        HOLD.as_secs()
    ));

    // Both come back; the operator re-provisions.
    let back_at = Instant::now();
    for h in &stopped {
        reboot(lab, h).await?;
    }
    let count = names.len();
    wait_for(
        &format!("the swarm to have a leader and {count} reachable managers"),
        Duration::from_secs(120),
        || async {
            match lab.cluster().swarm_nodes_from(&survivor).await {
                Ok(n)
                    if n.iter()
                        .filter(|x| {
                            matches!(
                                x.manager_status,
                                Some(ManagerStatus::Leader | ManagerStatus::Reachable)
                            )
                        })
                        .count()
                        == count =>
                {
                    Poll::Ready(())
                }
                other => Poll::NotYet(format!("{other:?}")),
            }
        },
    )
    .await?;
    lab.install().await?;
    let after = wait_healthy(
        lab,
        "one primary and streaming standbys after the return",
        Duration::from_secs(180),
    )
    .await?;
    let holder = single_vip_holder(lab, "the VIP on one host", Duration::from_secs(60)).await?;
    await_agreement(
        lab,
        "every Pgpool-II member to agree with the watchdog leader after the return",
        Duration::from_secs(180),
    )
    .await?;
    let converged = back_at.elapsed();
    let lost = missing(lab, &before).await?;
    println!(
        "quorum loss: stopped {stopped:?}; {survivors:?}'s managers without leader after {:.1}s; \
         {samples} samples over {}s: no quorum, no VIP, no promotion; after the return: converged in {:.1}s \
         (primary `{}`, VIP on `{holder}`); {} of {} commits acknowledged before the fault missing",
        no_quorum_seen.as_secs_f64(),
        HOLD.as_secs(),
        converged.as_secs_f64(),
        primary_of(&after).unwrap_or_default(),
        lost.len(),
        before.len()
    );
    ensure!(lost.is_empty(), "acknowledged commits lost: {lost:?}");
    Ok(Cycle {
        no_quorum_seen,
        converged,
        acked: before.len(),
        lost: lost.len(),
    })
}

async fn quorum_loss(lab: &mut Lab, o: &Options) -> Result<Report> {
    lab.install().await?;
    let mut done = Vec::new();
    for _ in 0..o.cycles {
        done.push(cycle(lab).await?);
    }
    println!(
        "quorum loss over {} cycles: no-leader error after {}; converged after the return {}; lost {} of {} acknowledged",
        done.len(),
        Summary::of_durations(&done.iter().map(|c| c.no_quorum_seen).collect::<Vec<_>>()).unwrap(),
        Summary::of_durations(&done.iter().map(|c| c.converged).collect::<Vec<_>>()).unwrap(),
        done.iter().map(|c| c.lost).sum::<usize>(),
        done.iter().map(|c| c.acked).sum::<usize>()
    );
    let mut r = Report::new("");
    r.summary_secs(
        "no_leader_s",
        &done.iter().map(|c| c.no_quorum_seen).collect::<Vec<_>>(),
    )
    .summary_secs(
        "converged_s",
        &done.iter().map(|c| c.converged).collect::<Vec<_>>(),
    )
    .count("acked", done.iter().map(|c| c.acked).sum())
    .count("lost", done.iter().map(|c| c.lost).sum());
    Ok(r)
}

pub fn body<'a>(s: &'a Session, t: Topology, o: &'a Options) -> LocalBoxFuture<'a, Result<Report>> {
    Box::pin(async move { s.with_lab(&t, async |lab| quorum_loss(lab, o).await).await })
}
