//! The primary's host, also the VIP holder, is cut from the other hosts
//! (both ways, packets dropped) while a writer commits through the VIP. The
//! majority side must end with exactly one primary and the VIP; the
//! minority side must give the VIP up; acknowledged writes that are lost
//! are counted. After the repair the old primary must not come back as a
//! second primary, and a re-provision converges to one primary and
//! streaming standbys (the old primary rebuilt). Run with the document's
//! asynchronous replication (loss and minority writes reported) and with
//! synchronous replication (no acknowledged write lost, the minority
//! accepts none). Repeated `cycles` times.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use futures_util::future::LocalBoxFuture;
use ke2lab::cluster::DbUser;
use ke2lab::probe::pgpool::PoolSummary;
use ke2lab::probe::swarm::SwarmSummary;
use ke2lab::topology::Topology;
use ke2lab::wait::{Poll, wait_for};

use super::common::{
    await_agreement, await_lifecheck, missing, pool_nodes, primary_of, single_vip_holder,
    wait_healthy, writer_target,
};
use super::{Options, Report, Session};
use crate::Lab;
use crate::faults::{Fault, Faults, Service};
use crate::measure::Summary;
use crate::writer::{TABLE, Writer};

/// What a write through the minority's own Pgpool-II did.
#[derive(Debug, PartialEq, Eq)]
enum MinorityWrite {
    /// The server acknowledged the commit.
    Acknowledged,
    /// Refused, or no answer in time: not acknowledged.
    NotAcknowledged(String),
}

async fn write_through(lab: &Lab, host: &str) -> Result<MinorityWrite> {
    let t = &lab.topology;
    let addr = t.host(host).ok_or_else(|| anyhow!("no `{host}`"))?.address;
    let db = &t.postgres.database;
    let client = lab
        .cluster()
        .sql_client(addr, t.ports.pgpool, DbUser::Kompira, db);
    let c = match client.await {
        Ok(c) => c,
        Err(e) => return Ok(MinorityWrite::NotAcknowledged(e.to_string())),
    };
    // A negative id: never one of the writer's.
    let sql = format!(
        "INSERT INTO {TABLE} (id) VALUES (-1 * (extract(epoch from now()) * 1000)::bigint)"
    );
    let insert = c.execute(&sql, &[]);
    Ok(
        match tokio::time::timeout(Duration::from_secs(10), insert).await {
            Ok(Ok(1)) => MinorityWrite::Acknowledged,
            Ok(Ok(n)) => MinorityWrite::NotAcknowledged(format!("{n} rows")),
            Ok(Err(e)) => MinorityWrite::NotAcknowledged(e.to_string()),
            Err(_) => MinorityWrite::NotAcknowledged("no answer in 10s".into()),
        },
    )
}

/// Makes the watchdog leader (and so the VIP holder) the primary's host, as
/// the document's fresh install usually leaves it: while it is elsewhere,
/// that leader's Pgpool-II is restarted so another member is elected.
/// Returns the primary's host.
pub async fn align_leader_with_primary(lab: &Lab) -> Result<String> {
    let cluster = lab.cluster();
    for _ in 0..8 {
        let nodes = wait_healthy(lab, "a healthy cluster", Duration::from_secs(120)).await?;
        let primary = primary_of(&nodes).ok_or_else(|| anyhow!("no primary"))?;
        let leader = cluster
            .watchdog_info()
            .await
            .context("no host answered `pcp_watchdog_info`")?
            .leader_host;
        if leader == primary {
            single_vip_holder(lab, "the VIP on the leader", Duration::from_secs(60)).await?;
            return Ok(primary);
        }
        let mut f = Faults::new(lab);
        f.kill_service(&leader, Service::Pgpool).await?;
        let witness = primary.clone();
        wait_for(
            &format!("a watchdog leader other than `{leader}`"),
            Duration::from_secs(120),
            || async {
                match cluster.watchdog_info_from(&witness).await {
                    Ok(w) if w.quorum && !w.leader_host.is_empty() && w.leader_host != leader => {
                        Poll::Ready(())
                    }
                    Ok(w) => Poll::NotYet(format!("{w:?}")),
                    Err(e) => Poll::NotYet(e.to_string()),
                }
            },
        )
        .await?;
        f.start_service(&leader, Service::Pgpool).await?;
        wait_for(
            &format!("`{leader}` to rejoin the watchdog"),
            Duration::from_secs(120),
            || async {
                match cluster.watchdog_info_from(&leader).await {
                    Ok(w)
                        if w.quorum
                            && w.nodes
                                .iter()
                                .any(|n| n.host == leader && n.status_name == "STANDBY") =>
                    {
                        Poll::Ready(())
                    }
                    Ok(w) => Poll::NotYet(format!("{w:?}")),
                    Err(e) => Poll::NotYet(e.to_string()),
                }
            },
        )
        .await?;
    }
    bail!("the watchdog leader never settled on the primary's host")
}

struct Cycle {
    majority_primary: Duration,
    vip_on_majority: Duration,
    minority_released: Duration,
    routed_again: Duration,
    converged: Duration,
    acked: usize,
    lost: usize,
    minority_write: MinorityWrite,
}

async fn cycle(lab: &mut Lab, synchronous: bool) -> Result<Cycle> {
    let old = align_leader_with_primary(lab).await?;
    let names: Vec<String> = lab.topology.hosts.iter().map(|h| h.name.clone()).collect();
    let majority: Vec<String> = names.iter().filter(|n| **n != old).cloned().collect();
    let t = lab.topology.clone();

    let target = writer_target(lab)?;
    let writer = Writer::start(target.clone()).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let maj: Vec<&str> = majority.iter().map(String::as_str).collect();
    let cut_at = Faults::new(lab).partition(&[&old], &maj).await?;

    // Watched together, each time taken when first seen: the majority with
    // exactly one primary of its own (as its Pgpool-II sees it, asked on a
    // majority host's address: the VIP may be ambiguous), the VIP on exactly
    // one majority host, the minority without the VIP.
    let m0 = t.host(&majority[0]).unwrap().address;
    let (mut majority_primary, mut vip_on_majority, mut minority_released) = (None, None, None);
    let mut new = String::new();
    let cluster = lab.cluster();
    let mut last = String::new();
    while majority_primary.is_none() || vip_on_majority.is_none() || minority_released.is_none() {
        ensure!(
            cut_at.elapsed() < Duration::from_secs(400),
            "the partition did not settle in 400s: primary {majority_primary:?}, VIP {vip_on_majority:?}, \
             released {minority_released:?}; last seen: {last}"
        );
        if majority_primary.is_none() {
            match cluster.pool_nodes_at(m0).await {
                Ok(n) => {
                    let up: Vec<_> = n.iter().filter(|x| x.is_primary() && x.is_up()).collect();
                    match up.as_slice() {
                        [p] if p.hostname != old && p.pg_role == "primary" => {
                            new = p.hostname.clone();
                            majority_primary = Some(cut_at.elapsed());
                            lab.events
                                .record(format!("observed: `{new}` primary on the majority side"));
                        }
                        _ => last = PoolSummary::of(&n).to_string(),
                    }
                }
                Err(e) => last = e.to_string(),
            }
        }
        if vip_on_majority.is_none() {
            match cluster.vip_holders_among(&majority).await {
                Ok(h) if h.len() == 1 => {
                    vip_on_majority = Some(cut_at.elapsed());
                    lab.events
                        .record(format!("observed: VIP on `{}` of the majority", h[0]));
                }
                Ok(h) => last = format!("majority holders {h:?}"),
                Err(e) => last = e.to_string(),
            }
        }
        if minority_released.is_none() {
            match cluster.holds_vip(&old).await {
                Ok(false) => {
                    minority_released = Some(cut_at.elapsed());
                    lab.events
                        .record(format!("observed: `{old}` released the VIP"));
                }
                Ok(true) => {}
                Err(e) => last = e.to_string(),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (majority_primary, vip_on_majority, minority_released) = (
        majority_primary.unwrap(),
        vip_on_majority.unwrap(),
        minority_released.unwrap(),
    );

    // A client of the minority's own Pgpool-II.
    let minority_write = write_through(lab, &old).await?;
    lab.events.record(format!(
        "observed: write through `{old}`'s Pgpool-II: {minority_write:?}"
    ));
    if synchronous {
        ensure!(
            !matches!(minority_write, MinorityWrite::Acknowledged),
            "the isolated old primary acknowledged a write with synchronous replication"
        );
    }

    let report = writer.stop().await;
    let repaired_at = Instant::now();
    Faults::new(lab).repair().await?;

    // The watchdog becomes one cluster again. Its split-brain resolution
    // may keep either leader (the isolated old one wins when it counts
    // more standbys at that moment), and every member copies the winner's
    // backend status; if that names the old primary, the leader's
    // `detach_false_primary` detaches it (no standby follows it). Either
    // way, Pgpool-II must end up routing to the majority's primary alone,
    // and the old primary must not stay a second one in its view.
    let cluster = lab.cluster();
    let (winner, _nodes) = wait_for(
        &format!("one watchdog cluster routing to `{new}` alone after the repair"),
        Duration::from_secs(120),
        || async {
            let w = match cluster.watchdog_info_from(&old).await {
                Ok(w) if w.quorum && !w.leader_host.is_empty() => w,
                Ok(w) => return Poll::NotYet(format!("{w:?}")),
                Err(e) => return Poll::NotYet(e.to_string()),
            };
            match pool_nodes(lab).await {
                Ok(n) => {
                    let routed: Vec<_> = n
                        .iter()
                        .filter(|x| x.is_primary() && x.is_up())
                        .map(|x| x.hostname.clone())
                        .collect();
                    if routed == [new.clone()] {
                        Poll::Ready((w.leader_host, n))
                    } else {
                        Poll::NotYet(format!("leader `{}`, routed to {routed:?}", w.leader_host))
                    }
                }
                Err(e) => Poll::NotYet(e.to_string()),
            }
        },
    )
    .await?;
    let routed_again = repaired_at.elapsed();
    lab.events.record(format!(
        "observed: after the repair `{winner}` leads; Pgpool-II routes to `{new}` alone after {:.1}s",
        routed_again.as_secs_f64()
    ));

    // The operator checks the swarm is whole again, then re-provisions: the
    // old primary is rebuilt as a standby.
    let count = t.hosts.len();
    wait_for(
        &format!("the swarm to have {count} reachable managers after the repair"),
        Duration::from_secs(120),
        || async {
            match cluster.swarm_nodes_from(&old).await {
                Ok(n) if SwarmSummary::of(&n).is_healthy(count) => Poll::Ready(()),
                Ok(n) => Poll::NotYet(SwarmSummary::of(&n).to_string()),
                Err(e) => Poll::NotYet(e.to_string()),
            }
        },
    )
    .await?;
    lab.install().await?;
    Faults::new(lab).mended(
        &Fault::Partition(vec![old.clone()], majority.clone()),
        "repaired",
    );
    let after = wait_healthy(
        lab,
        &format!(
            "one primary and {} streaming standbys after the repair",
            count - 1
        ),
        Duration::from_secs(180),
    )
    .await?;
    ensure!(
        primary_of(&after).as_deref() == Some(new.as_str()),
        "the primary moved again: {after:?}"
    );
    let (_, agreed_primary) = await_agreement(
        lab,
        "every Pgpool-II member to agree with the watchdog leader after the repair",
        Duration::from_secs(180),
    )
    .await?;
    ensure!(
        agreed_primary == new,
        "the members agree on primary `{agreed_primary}`, not `{new}`"
    );
    let converged = repaired_at.elapsed();

    let acked = report.acknowledged();
    let lost = missing(lab, &acked).await?;
    println!(
        "partition ({}): cut `{old}` from {majority:?}; `{new}` primary after {:.1}s, VIP on the majority after {:.1}s, \
         released by `{old}` after {:.1}s; write through `{old}`'s Pgpool-II: {minority_write:?}; \
         after the repair `{winner}` leads and Pgpool-II routes to `{new}` alone after {:.1}s, \
         converged {:.1}s after the repair; {} of {} acknowledged writes lost",
        if synchronous {
            "synchronous"
        } else {
            "asynchronous"
        },
        majority_primary.as_secs_f64(),
        vip_on_majority.as_secs_f64(),
        minority_released.as_secs_f64(),
        routed_again.as_secs_f64(),
        converged.as_secs_f64(),
        lost.len(),
        acked.len()
    );
    if synchronous {
        ensure!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    }
    Ok(Cycle {
        majority_primary,
        vip_on_majority,
        minority_released,
        routed_again,
        converged,
        acked: acked.len(),
        lost: lost.len(),
        minority_write,
    })
}

async fn partition(lab: &mut Lab, synchronous: bool, o: &Options) -> Result<Report> {
    lab.install().await?;
    // Measured with the watchdog's lifecheck running, as on a real cluster.
    await_lifecheck(lab, Duration::from_secs(240)).await?;
    let mut done = Vec::new();
    for _ in 0..o.cycles {
        done.push(cycle(lab, synchronous).await?);
    }
    let mode = if synchronous {
        "synchronous"
    } else {
        "asynchronous"
    };
    let durations = |f: &dyn Fn(&Cycle) -> Duration| done.iter().map(f).collect::<Vec<_>>();
    let s = |f: &dyn Fn(&Cycle) -> Duration| Summary::of_durations(&durations(f)).unwrap();
    let minority_acked = done
        .iter()
        .filter(|c| c.minority_write == MinorityWrite::Acknowledged)
        .count();
    println!(
        "partition ({mode}) over {} cycles: majority primary {}; VIP on the majority {}; minority released the VIP {}; \
         converged after repair {}; lost {} of {} acknowledged; minority acknowledged a write in {minority_acked} of {} cycles",
        done.len(),
        s(&|c| c.majority_primary),
        s(&|c| c.vip_on_majority),
        s(&|c| c.minority_released),
        s(&|c| c.converged),
        done.iter().map(|c| c.lost).sum::<usize>(),
        done.iter().map(|c| c.acked).sum::<usize>(),
        done.len()
    );
    let mut r = Report::new("");
    r.text("mode", mode)
        .summary_secs("majority_primary_s", &durations(&|c| c.majority_primary))
        .summary_secs("vip_on_majority_s", &durations(&|c| c.vip_on_majority))
        .summary_secs("minority_released_s", &durations(&|c| c.minority_released))
        .summary_secs("routed_again_s", &durations(&|c| c.routed_again))
        .summary_secs("converged_s", &durations(&|c| c.converged))
        .count("acked", done.iter().map(|c| c.acked).sum())
        .count("lost", done.iter().map(|c| c.lost).sum())
        .count("minority_acknowledged_cycles", minority_acked);
    Ok(r)
}

/// The document's asynchronous replication: the loss and the minority's
/// writes are reported.
pub fn asynchronous<'a>(
    s: &'a Session,
    t: Topology,
    o: &'a Options,
) -> LocalBoxFuture<'a, Result<Report>> {
    Box::pin(async move {
        s.with_lab(&t, async |lab| partition(lab, false, o).await)
            .await
    })
}

/// Synchronous replication: no acknowledged write lost, none accepted by
/// the minority.
pub fn synchronous<'a>(
    s: &'a Session,
    t: Topology,
    o: &'a Options,
) -> LocalBoxFuture<'a, Result<Report>> {
    Box::pin(async move {
        s.with_lab(&t, async |lab| partition(lab, true, o).await)
            .await
    })
}
