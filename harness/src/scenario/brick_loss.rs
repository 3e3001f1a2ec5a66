//! One host's Gluster brick process and glusterd die while the other hosts
//! append to files on the shared directory. Every append must still
//! succeed; heal-info must count entries pending for the lost brick; once
//! glusterd and the brick are back, heal must reach zero and the files must
//! be byte-identical on every brick, holding exactly the acknowledged
//! lines. Repeated `cycles` times (the lost host moves along the hosts).

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use futures_util::future::LocalBoxFuture;
use ke2lab::topology::Topology;
use ke2lab::wait::{Poll, wait_for};

use super::{Options, Report, Session};
use crate::Lab;
use crate::faults::{Faults, Service};
use crate::measure::Summary;
use crate::writer::Appender;

struct Cycle {
    pending_seen: Duration,
    pending_max: u64,
    healed: Duration,
    appends: usize,
}

async fn cycle(lab: &Lab, n: usize) -> Result<Cycle> {
    let t = lab.topology.clone();
    let names: Vec<String> = t.hosts.iter().map(|h| h.name.clone()).collect();
    let lost = names[n % names.len()].clone();
    let writers: Vec<String> = names.iter().filter(|x| **x != lost).cloned().collect();
    let asker = &writers[0];
    let cluster = lab.cluster();
    let files: Vec<(String, String)> = writers
        .iter()
        .map(|w| (w.clone(), format!("brick-loss-{n}-{w}.log")))
        .collect();

    let appenders: Vec<Appender> = files
        .iter()
        .map(|(w, f)| {
            Ok(Appender::start(
                lab.host(w)?,
                format!("{}/{f}", t.shared_dir.path),
            ))
        })
        .collect::<Result<_>>()?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut faults = Faults::new(lab);
    let killed_at = faults.kill_service(&lost, Service::Brick).await?;
    faults.kill_service(&lost, Service::Glusterd).await?;

    // Heal-info, asked on a writer, counts what the lost brick misses.
    let pending_max = wait_for(
        &format!("heal-info to count entries pending for `{lost}`'s brick"),
        Duration::from_secs(60),
        || async {
            match cluster.heal_info_from(asker).await {
                Ok(h)
                    if h.total_pending() > 0
                        && h.bricks.iter().any(|b| b.host == lost && !b.connected()) =>
                {
                    Poll::Ready(h.total_pending())
                }
                Ok(h) => Poll::NotYet(format!("{h:?}")),
                Err(e) => Poll::NotYet(e.to_string()),
            }
        },
    )
    .await?;
    let pending_seen = killed_at.elapsed();
    lab.events
        .record(format!("observed: {pending_max} entries pending heal"));
    // Appends go on for a while with the brick away.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let back_at = Instant::now();
    faults.start_service(&lost, Service::Glusterd).await?;
    wait_for(
        &format!("glusterd on `{lost}` to answer"),
        Duration::from_secs(60),
        || async {
            match cluster.volume_status_from(&lost).await {
                Ok(s) => Poll::Ready(s),
                Err(e) => Poll::NotYet(e.to_string()),
            }
        },
    )
    .await?;
    faults.start_service(&lost, Service::Brick).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut reports = Vec::new();
    for a in appenders {
        reports.push(a.stop().await);
    }
    for ((w, _), r) in files.iter().zip(&reports) {
        ensure!(
            r.failed.is_empty(),
            "appends from `{w}` failed while `{lost}`'s brick was away: {:?}",
            r.failed
        );
    }

    let count = names.len();
    wait_for(
        &format!("heal to reach zero pending on {count} connected bricks"),
        Duration::from_secs(180),
        || async {
            match cluster.heal_info_from(asker).await {
                Ok(h) if h.bricks.len() == count && h.is_clean() => Poll::Ready(()),
                Ok(h) => Poll::NotYet(format!("{h:?}")),
                Err(e) => Poll::NotYet(e.to_string()),
            }
        },
    )
    .await?;
    let healed = back_at.elapsed();
    lab.events.record("observed: heal complete");

    // Byte-identical on every brick, and exactly the acknowledged lines.
    for ((w, f), r) in files.iter().zip(&reports) {
        for h in &names {
            let path = format!("{}/{f}", t.shared_dir.brick);
            let body = lab.host(h)?.read_file(&path).await?.unwrap_or_default();
            ensure!(
                body == r.content,
                "`{path}` on `{h}`'s brick: {} bytes, `{w}` had {} acknowledged bytes",
                body.len(),
                r.content.len()
            );
        }
    }
    let appends = reports.iter().map(|r| r.ok).sum();
    println!(
        "brick loss: killed the brick and glusterd on `{lost}`; {pending_max} entries pending after {:.1}s; \
         {appends} appends from {writers:?}, none failed; heal done {:.1}s after the restart; files identical on {count} bricks",
        pending_seen.as_secs_f64(),
        healed.as_secs_f64()
    );
    Ok(Cycle {
        pending_seen,
        pending_max,
        healed,
        appends,
    })
}

async fn brick_loss(lab: &mut Lab, o: &Options) -> Result<Report> {
    lab.install_shared_dir().await?;
    let mut done = Vec::new();
    for n in 0..o.cycles {
        done.push(cycle(lab, n).await?);
    }
    println!(
        "brick loss over {} cycles: pending seen {}; heal after restart {}; {} appends, none failed; pending entries max {}",
        done.len(),
        Summary::of_durations(&done.iter().map(|c| c.pending_seen).collect::<Vec<_>>()).unwrap(),
        Summary::of_durations(&done.iter().map(|c| c.healed).collect::<Vec<_>>()).unwrap(),
        done.iter().map(|c| c.appends).sum::<usize>(),
        done.iter().map(|c| c.pending_max).max().unwrap_or(0)
    );
    let mut r = Report::new("");
    r.summary_secs(
        "pending_seen_s",
        &done.iter().map(|c| c.pending_seen).collect::<Vec<_>>(),
    )
    .summary_secs(
        "healed_s",
        &done.iter().map(|c| c.healed).collect::<Vec<_>>(),
    )
    .count("appends", done.iter().map(|c| c.appends).sum())
    .count("failed_appends", 0)
    .count(
        "pending_max",
        done.iter().map(|c| c.pending_max).max().unwrap_or(0) as usize,
    );
    Ok(r)
}

pub fn body<'a>(s: &'a Session, t: Topology, o: &'a Options) -> LocalBoxFuture<'a, Result<Report>> {
    Box::pin(async move { s.with_lab(&t, async |lab| brick_loss(lab, o).await).await })
}
