//! The last host goes away (its container stops). The swarm keeps a leader
//! and the other managers reachable, Gluster writes on the other hosts go
//! on, Pgpool-II keeps serving through the VIP with the lost node down. The
//! host comes back (its services started as a reboot would), an operator
//! re-provisions, and everything converges: manager reachable again, heal
//! complete with the files written meanwhile on its brick, its standby
//! streaming again.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use futures_util::future::LocalBoxFuture;
use ke2lab::probe::pgpool::PoolSummary;
use ke2lab::probe::swarm::{ManagerStatus, NodeStatus};
use ke2lab::topology::Topology;
use ke2lab::wait::{Poll, wait_for};

use super::common::{await_agreement, await_lifecheck, pool_nodes, reboot};
use super::{Options, Report, Session};
use crate::Lab;
use crate::faults::Faults;

/// What Pgpool-II 4.x logs (as the detail of "informing the node status
/// change to watchdog") when its heartbeat lifecheck loses a member.
const NO_HEARTBEAT: &str = "No heartbeat signal from node";

async fn node_loss(lab: &mut Lab) -> Result<Report> {
    lab.install().await?;
    let t = lab.topology.clone();
    let count = t.hosts.len();
    let lost = t.hosts[count - 1].name.clone();
    // The survivors' view: asked of the first host, which stays.
    let n1 = t.hosts[0].name.clone();
    let mount = &t.shared_dir.path;

    // The lifecheck must run before the fault, so that the loss is seen by
    // it and not only by the watchdog's own connections.
    await_lifecheck(lab, Duration::from_secs(240)).await?;
    let survivors: Vec<String> = t.hosts[..count - 1]
        .iter()
        .map(|h| h.name.clone())
        .collect();
    let mut seen_before = Vec::new();
    for s in &survivors {
        seen_before.push(
            lab.cluster()
                .pgpool_log(s)
                .await?
                .iter()
                .filter(|l| l.message.contains(NO_HEARTBEAT))
                .count(),
        );
    }

    let mut faults = Faults::new(lab);
    let stopped_at = faults.stop(&lost).await?;

    // Swarm: a leader and every other manager reachable; the lost node is down.
    wait_for(
        "the swarm to see the lost node down and keep a leader",
        Duration::from_secs(90),
        || async {
            match lab.cluster().swarm_nodes_from(&n1).await {
                Ok(n) => {
                    let leader = n
                        .iter()
                        .filter(|x| x.manager_status == Some(ManagerStatus::Leader))
                        .count();
                    let reachable = n
                        .iter()
                        .filter(|x| {
                            matches!(
                                x.manager_status,
                                Some(ManagerStatus::Leader | ManagerStatus::Reachable)
                            )
                        })
                        .count();
                    let down = n
                        .iter()
                        .any(|x| x.hostname == lost && x.status == NodeStatus::Down);
                    if leader == 1 && reachable == count - 1 && down {
                        Poll::Ready(())
                    } else {
                        Poll::NotYet(format!("{n:?}"))
                    }
                }
                Err(e) => Poll::NotYet(e.to_string()),
            }
        },
    )
    .await?;
    let swarm_detect = stopped_at.elapsed();

    // Gluster: writes on every other host succeed while the lost one is away.
    let mut written = Vec::new();
    for (i, s) in survivors.iter().enumerate() {
        let h = lab.host(s)?;
        let path = format!("{mount}/node-loss-{i}.bin");
        let body: Vec<u8> = (0..200_000u32).map(|x| (x * 7 + i as u32) as u8).collect();
        h.write_file(&path, &body, 0o644, "root").await?;
        written.push((path, body));
    }

    // Pgpool-II serves through the VIP; the lost node is down.
    let pool = wait_for(
        "Pgpool-II to report the lost node down",
        Duration::from_secs(90),
        || async {
            match pool_nodes(lab).await {
                Ok(n) => match n.iter().find(|x| x.hostname == lost) {
                    Some(x) if x.status == "down" => Poll::Ready(n),
                    Some(x) => Poll::NotYet(format!("{x:?}")),
                    None => Poll::NotYet("no row".into()),
                },
                Err(e) => Poll::NotYet(e.to_string()),
            }
        },
    )
    .await?;
    let pgpool_detect = stopped_at.elapsed();
    // The survivors' lifecheck reports the lost member (heartbeat deadtime
    // 30 s by default).
    for (s, before) in survivors.iter().zip(&seen_before) {
        wait_for(
            &format!("the lifecheck on `{s}` to report no heartbeat from `{lost}`"),
            Duration::from_secs(120),
            || async {
                match lab.cluster().pgpool_log(s).await {
                    Ok(lines) => {
                        let hits: Vec<_> = lines
                            .iter()
                            .filter(|l| l.message.contains(NO_HEARTBEAT))
                            .collect();
                        if hits.len() > *before {
                            Poll::Ready(())
                        } else {
                            Poll::NotYet(format!("{} lifecheck reports", hits.len()))
                        }
                    }
                    Err(e) => Poll::NotYet(e.to_string()),
                }
            },
        )
        .await?;
    }
    let lifecheck_detect = stopped_at.elapsed();
    ensure!(
        pool.iter().filter(|n| n.is_primary() && n.is_up()).count() == 1,
        "no primary while a standby is away"
    );

    // The lost host comes back; its services start as its init would start them.
    let back_at = Instant::now();
    reboot(lab, &lost).await?;
    let h3 = lab.host(&lost)?;

    // The operator re-provisions: mounts, standby and Pgpool-II repaired.
    let report = lab.install().await?;
    println!("re-provision after the node came back:\n{report}");

    wait_for(
        "the returned host to be a reachable manager again",
        Duration::from_secs(90),
        || async {
            match lab.cluster().swarm_nodes_from(&n1).await {
                Ok(n) => match n.iter().find(|x| x.hostname == lost) {
                    Some(x)
                        if x.status == NodeStatus::Ready
                            && x.manager_status == Some(ManagerStatus::Reachable) =>
                    {
                        Poll::Ready(())
                    }
                    other => Poll::NotYet(format!("{other:?}")),
                },
                Err(e) => Poll::NotYet(e.to_string()),
            }
        },
    )
    .await?;
    let rejoin = back_at.elapsed();
    wait_for(
        "Gluster heal to reach zero pending entries",
        Duration::from_secs(120),
        || async {
            match lab.cluster().heal_info_from(&n1).await {
                Ok(h)
                    if h.bricks.len() == count && h.bricks.iter().all(|b| b.pending == Some(0)) =>
                {
                    Poll::Ready(())
                }
                Ok(h) => Poll::NotYet(format!("{h:?}")),
                Err(e) => Poll::NotYet(e.to_string()),
            }
        },
    )
    .await?;
    let healed = back_at.elapsed();
    for (path, body) in &written {
        let brick_path = format!(
            "{}/{}",
            t.shared_dir.brick,
            path.trim_start_matches(mount.as_str())
                .trim_start_matches('/')
        );
        ensure!(
            h3.read_file(&brick_path).await?.as_deref() == Some(body.as_slice()),
            "`{brick_path}` on the returned host's brick differs"
        );
    }
    let (leader, primary) = await_agreement(
        lab,
        "every Pgpool-II member to agree with the watchdog leader after the return",
        Duration::from_secs(120),
    )
    .await?;
    let agreed = back_at.elapsed();
    let nodes = pool_nodes(lab).await?;
    ensure!(
        PoolSummary::of(&nodes).is_healthy(count),
        "after return: {}",
        PoolSummary::of(&nodes)
    );
    let resyncs: Vec<String> = report
        .steps
        .iter()
        .filter(|s| s.step == "recovery")
        .flat_map(|s| {
            s.changes
                .iter()
                .map(|c| format!("[{}] {}", c.host, c.summary))
        })
        .collect();
    println!(
        "node loss: swarm saw `{lost}` down after {:.1}s, Pgpool-II after {:.1}s, its lifecheck after {:.1}s; \
         after its return: manager again in {:.1}s, heal done in {:.1}s, every member agreeing with leader `{leader}` \
         (primary `{primary}`) after {:.1}s; recovery did: {resyncs:?}",
        swarm_detect.as_secs_f64(),
        pgpool_detect.as_secs_f64(),
        lifecheck_detect.as_secs_f64(),
        rejoin.as_secs_f64(),
        healed.as_secs_f64(),
        agreed.as_secs_f64()
    );
    let mut r = Report::new("");
    r.text("lost_host", lost.clone())
        .secs("swarm_detect_s", swarm_detect)
        .secs("pgpool_detect_s", pgpool_detect)
        .secs("lifecheck_detect_s", lifecheck_detect)
        .secs("rejoin_s", rejoin)
        .secs("healed_s", healed)
        .secs("agreed_s", agreed)
        .text("leader", leader)
        .text("primary", primary)
        .count("recovery_changes", resyncs.len());
    Ok(r)
}

pub fn body<'a>(s: &'a Session, t: Topology, _: &'a Options) -> LocalBoxFuture<'a, Result<Report>> {
    Box::pin(async move { s.with_lab(&t, async |lab| node_loss(lab).await).await })
}
