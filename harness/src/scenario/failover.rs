//! The primary's PostgreSQL dies while a writer commits through the VIP. A
//! standby is promoted, the others follow it, writes go on; the old primary
//! is rebuilt as a standby by online recovery. RTO and lost acknowledged
//! commits are measured and reported (with the document's asynchronous
//! replication the loss is reported, not asserted; the synchronous variant
//! asserts none).

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, ensure};
use futures_util::future::LocalBoxFuture;
use ke2lab::probe::pgpool::{PoolNode, PoolSummary};
use ke2lab::topology::Topology;
use ke2lab::wait::{Poll, wait_for};

use super::common::{missing, pool_nodes, writer_target};
use super::{Options, Report, Session};
use crate::Lab;
use crate::faults::{Fault, Faults, Service};
use crate::measure::Summary;
use crate::writer::{Target, Writer};

/// What one fault cycle measured.
struct Cycle {
    promotion: Duration,
    followed: Duration,
    rto: Duration,
    acked: usize,
    lost: usize,
    rebuilt: Duration,
}

async fn healthy(lab: &Lab, mode: &str) -> Result<Vec<PoolNode>> {
    Ok(wait_for(
        &format!("a healthy cluster with `{mode}` standbys"),
        Duration::from_secs(60),
        || async {
            match pool_nodes(lab).await {
                Ok(n)
                    if PoolSummary::of(&n).is_healthy(lab.topology.hosts.len())
                        && n.iter()
                            .filter(|x| !x.is_primary())
                            .all(|x| x.replication_sync_state == mode) =>
                {
                    Poll::Ready(n)
                }
                Ok(n) => Poll::NotYet(format!("{n:?}")),
                Err(e) => Poll::NotYet(e.to_string()),
            }
        },
    )
    .await?)
}

/// Kills the current primary's PostgreSQL under a writer, waits for the
/// promotion and the follower, rebuilds the old primary, and counts.
async fn cycle(lab: &mut Lab, target: &Target, mode: &str) -> Result<Cycle> {
    let t = lab.topology.clone();
    let before = healthy(lab, mode).await?;
    let old = before
        .iter()
        .find(|n| n.is_primary())
        .unwrap()
        .hostname
        .clone();

    let writer = Writer::start(target.clone()).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let killed_at = Faults::new(lab)
        .kill_service(&old, Service::Postgres)
        .await?;

    let promoted = wait_for(
        "a standby to be promoted",
        Duration::from_secs(120),
        || async {
            match pool_nodes(lab).await {
                Ok(n) => match n.iter().find(|n| n.is_primary() && n.is_up()) {
                    Some(p) if p.hostname != old && p.pg_role == "primary" => {
                        Poll::Ready(p.hostname.clone())
                    }
                    _ => Poll::NotYet(PoolSummary::of(&n).to_string()),
                },
                Err(e) => Poll::NotYet(e.to_string()),
            }
        },
    )
    .await?;
    let promotion = killed_at.elapsed();
    lab.events
        .record(format!("observed: `{promoted}` promoted"));
    // Every other standby follows the new primary.
    let others: Vec<String> = t
        .hosts
        .iter()
        .map(|h| h.name.clone())
        .filter(|h| *h != old && *h != promoted)
        .collect();
    for other in &others {
        wait_for(
            &format!("`{other}` to stream from the new primary `{promoted}`"),
            Duration::from_secs(120),
            || async {
                match pool_nodes(lab).await {
                    Ok(n) => match n.iter().find(|n| n.hostname == *other) {
                        Some(o) if o.is_streaming_standby() => Poll::Ready(()),
                        Some(o) => Poll::NotYet(format!("{o:?}")),
                        None => Poll::NotYet("no row".into()),
                    },
                    Err(e) => Poll::NotYet(e.to_string()),
                }
            },
        )
        .await?;
        lab.events
            .record(format!("observed: `{other}` streaming from `{promoted}`"));
    }
    let followed = killed_at.elapsed();
    let other = others.join("`, `");
    // Writes go on through the VIP.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = writer.stop().await;
    let rto = report
        .rto_after(killed_at)
        .ok_or_else(|| anyhow!("no write succeeded after the kill"))?;

    // The old primary comes back as a standby by online recovery (a
    // re-provision finds it not running as a standby and recovers it); the
    // service is started again by that recovery, so the kill is mended.
    let rebuilt_at = Instant::now();
    lab.install().await?;
    Faults::new(lab).mended(
        &Fault::Killed(old.clone(), Service::Postgres),
        "rebuilt by online recovery",
    );
    let after = pool_nodes(lab).await?;
    ensure!(
        PoolSummary::of(&after).is_healthy(t.hosts.len()),
        "after recovery: {}",
        PoolSummary::of(&after)
    );
    let old_row = after.iter().find(|n| n.hostname == old).unwrap();
    ensure!(
        old_row.is_streaming_standby(),
        "old primary is not a streaming standby: {old_row:?}"
    );
    let rebuilt = rebuilt_at.elapsed();

    // Acknowledged commits missing on the new primary.
    let acked = report.acknowledged();
    let lost = missing(lab, &acked).await?;
    println!(
        "failover ({mode}): killed PostgreSQL on `{old}`; `{promoted}` primary after {:.1}s, `{other}` following after {:.1}s; \
         RTO {:.1}s; {} acknowledged commits, {} lost; old primary rebuilt in {:.1}s",
        promotion.as_secs_f64(),
        followed.as_secs_f64(),
        rto.as_secs_f64(),
        acked.len(),
        lost.len(),
        rebuilt.as_secs_f64()
    );
    if mode != "async" {
        ensure!(
            lost.is_empty(),
            "synchronous replication lost acknowledged commits: {lost:?}"
        );
    }
    Ok(Cycle {
        promotion,
        followed,
        rto,
        acked: acked.len(),
        lost: lost.len(),
        rebuilt,
    })
}

async fn failover(lab: &mut Lab, synchronous: bool, o: &Options) -> Result<Report> {
    lab.install().await?;
    let target = writer_target(lab)?;
    // The replication mode is the one asked for: `ANY 1 (...)` shows as
    // `quorum` on the standbys, the document's default as `async`. Pgpool-II
    // refreshes it with its streaming-replication check (every 10 s).
    let mode = if synchronous { "quorum" } else { "async" };
    let mut done = Vec::new();
    for _ in 0..o.cycles {
        done.push(cycle(lab, &target, mode).await?);
    }
    let s =
        |f: &dyn Fn(&Cycle) -> f64| Summary::of(&done.iter().map(f).collect::<Vec<_>>()).unwrap();
    println!(
        "failover ({mode}) over {} cycles: RTO {}; promotion {}; follower streaming {}; rebuilt {}; \
         lost {} of {} acknowledged",
        done.len(),
        s(&|c| c.rto.as_secs_f64()),
        s(&|c| c.promotion.as_secs_f64()),
        s(&|c| c.followed.as_secs_f64()),
        s(&|c| c.rebuilt.as_secs_f64()),
        done.iter().map(|c| c.lost).sum::<usize>(),
        done.iter().map(|c| c.acked).sum::<usize>(),
    );
    let mut r = Report::new("");
    r.text("mode", mode)
        .summary(
            "rto_s",
            &done.iter().map(|c| c.rto.as_secs_f64()).collect::<Vec<_>>(),
        )
        .summary(
            "promotion_s",
            &done
                .iter()
                .map(|c| c.promotion.as_secs_f64())
                .collect::<Vec<_>>(),
        )
        .summary(
            "followed_s",
            &done
                .iter()
                .map(|c| c.followed.as_secs_f64())
                .collect::<Vec<_>>(),
        )
        .summary(
            "rebuilt_s",
            &done
                .iter()
                .map(|c| c.rebuilt.as_secs_f64())
                .collect::<Vec<_>>(),
        )
        .count("acked", done.iter().map(|c| c.acked).sum())
        .count("lost", done.iter().map(|c| c.lost).sum());
    Ok(r)
}

/// The document's asynchronous replication: the loss is reported.
pub fn asynchronous<'a>(
    s: &'a Session,
    t: Topology,
    o: &'a Options,
) -> LocalBoxFuture<'a, Result<Report>> {
    Box::pin(async move {
        s.with_lab(&t, async |lab| failover(lab, false, o).await)
            .await
    })
}

/// Synchronous replication: no acknowledged commit may be lost.
pub fn synchronous<'a>(
    s: &'a Session,
    t: Topology,
    o: &'a Options,
) -> LocalBoxFuture<'a, Result<Report>> {
    Box::pin(async move {
        s.with_lab(&t, async |lab| failover(lab, true, o).await)
            .await
    })
}
