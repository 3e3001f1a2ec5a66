//! The watchdog leader's Pgpool-II dies (SIGKILL, so it never runs its own
//! `if_down_cmd`). Another member is elected, its escalation takes the VIP
//! off the dead leader's host and brings it up on its own; clients
//! reconnecting through the VIP get in; PostgreSQL's roles do not change.
//! The killed Pgpool-II restarts, joins as a standby, and the VIP stays
//! where it is. Repeated `cycles` times.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use futures_util::future::LocalBoxFuture;
use ke2lab::cluster::DbUser;
use ke2lab::topology::Topology;
use ke2lab::wait::{Poll, wait_for};

use super::common::{
    await_agreement, await_lifecheck, pool_nodes, primary_of, single_vip_holder, wait_healthy,
};
use super::{Options, Report, Session};
use crate::Lab;
use crate::faults::{Faults, Service};
use crate::measure::Summary;

struct Cycle {
    elected: Duration,
    vip_moved: Duration,
    reconnect: Duration,
    rejoined: Duration,
}

async fn cycle(lab: &Lab, roles: &[(String, String)]) -> Result<Cycle> {
    let names: Vec<String> = lab.topology.hosts.iter().map(|h| h.name.clone()).collect();
    let cluster = lab.cluster();
    let wd = cluster
        .watchdog_info()
        .await
        .context("no host answered `pcp_watchdog_info`")?;
    let leader = wd.leader_host.clone();
    let holder = single_vip_holder(lab, "the VIP on one host", Duration::from_secs(60)).await?;
    ensure!(
        holder == leader,
        "the VIP is on `{holder}`, the leader is `{leader}`"
    );
    let witness = names.iter().find(|n| **n != leader).unwrap().clone();

    let killed_at = Faults::new(lab)
        .kill_service(&leader, Service::Pgpool)
        .await?;

    // A new leader, as the survivors see it.
    let new_leader = wait_for(
        &format!("a watchdog leader other than `{leader}` (asked on `{witness}`)"),
        Duration::from_secs(120),
        || async {
            match cluster.watchdog_info_from(&witness).await {
                Ok(w) if !w.leader_host.is_empty() && w.leader_host != leader && w.quorum => {
                    Poll::Ready(w.leader_host)
                }
                Ok(w) => Poll::NotYet(format!("{w:?}")),
                Err(e) => Poll::NotYet(e.to_string()),
            }
        },
    )
    .await?;
    let elected = killed_at.elapsed();
    lab.events
        .record(format!("observed: `{new_leader}` watchdog leader"));

    // The VIP on exactly the new leader.
    wait_for(
        &format!("the VIP on `{new_leader}` alone"),
        Duration::from_secs(60),
        || async {
            match cluster.vip_holders().await {
                Ok(h) if h == [new_leader.clone()] => Poll::Ready(()),
                Ok(h) => Poll::NotYet(format!("holders {h:?}")),
                Err(e) => Poll::NotYet(e.to_string()),
            }
        },
    )
    .await?;
    let vip_moved = killed_at.elapsed();
    lab.events
        .record(format!("observed: VIP on `{new_leader}` alone"));

    // A client reconnecting through the VIP gets in and writes.
    let t = &lab.topology;
    wait_for(
        "a client to connect and write through the VIP",
        Duration::from_secs(60),
        || async {
            let client = cluster.sql_client(
                t.network.vip,
                t.ports.pgpool,
                DbUser::Kompira,
                &t.postgres.database,
            );
            let c = match client.await {
                Ok(c) => c,
                Err(e) => return Poll::NotYet(e.to_string()),
            };
            match c
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS ke2lab_probe (at timestamptz); \
                     INSERT INTO ke2lab_probe VALUES (now())",
                )
                .await
            {
                Ok(()) => Poll::Ready(()),
                Err(e) => Poll::NotYet(e.to_string()),
            }
        },
    )
    .await?;
    let reconnect = killed_at.elapsed();

    // PostgreSQL's roles are what they were: a Pgpool-II fault is not a
    // database fault.
    let now: Vec<(String, String)> = pool_nodes(lab)
        .await?
        .iter()
        .map(|n| (n.hostname.clone(), n.pg_role.clone()))
        .collect();
    ensure!(now == roles, "roles changed: {roles:?} → {now:?}");

    // The killed Pgpool-II comes back as a standby; the VIP does not move.
    let restarted_at = Instant::now();
    Faults::new(lab)
        .start_service(&leader, Service::Pgpool)
        .await?;
    let watch = async {
        // Sampled until the member has joined and 10 s more.
        let mut joined: Option<Instant> = None;
        loop {
            let held = cluster.vip_holders().await?;
            ensure!(
                held == [new_leader.clone()],
                "the VIP flapped while `{leader}` rejoined: holders {held:?}"
            );
            if joined.is_none()
                && let Ok(w) = cluster.watchdog_info_from(&leader).await
                && w.leader_host == new_leader
                && w.quorum
                && w.nodes
                    .iter()
                    .any(|n| n.host == leader && n.status_name == "STANDBY")
            {
                joined = Some(Instant::now());
            }
            if let Some(j) = joined
                && j.elapsed() > Duration::from_secs(10)
            {
                return Ok(j.duration_since(restarted_at));
            }
            ensure!(
                restarted_at.elapsed() < Duration::from_secs(120),
                "`{leader}` did not join as a watchdog standby within 120s"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    let rejoined = watch.await?;
    lab.events
        .record(format!("observed: `{leader}` watchdog standby"));
    let (agreed_leader, _) = await_agreement(
        lab,
        &format!("every Pgpool-II member, `{leader}` too, to agree with the leader"),
        Duration::from_secs(120),
    )
    .await?;
    ensure!(
        agreed_leader == new_leader,
        "the leader moved to `{agreed_leader}` after `{leader}` rejoined"
    );
    println!(
        "pgpool leader loss: killed Pgpool-II on `{leader}`; `{new_leader}` leader after {:.1}s, \
         VIP on it alone after {:.1}s, client in after {:.1}s; `{leader}` standby {:.1}s after restart, VIP steady",
        elected.as_secs_f64(),
        vip_moved.as_secs_f64(),
        reconnect.as_secs_f64(),
        rejoined.as_secs_f64()
    );
    Ok(Cycle {
        elected,
        vip_moved,
        reconnect,
        rejoined,
    })
}

async fn leader_loss(lab: &mut Lab, o: &Options) -> Result<Report> {
    lab.install().await?;
    // Measured with the watchdog's lifecheck running, as on a real cluster.
    await_lifecheck(lab, Duration::from_secs(240)).await?;
    let nodes = wait_healthy(lab, "a healthy cluster", Duration::from_secs(60)).await?;
    ensure!(primary_of(&nodes).is_some(), "no primary");
    let roles: Vec<(String, String)> = nodes
        .iter()
        .map(|n| (n.hostname.clone(), n.pg_role.clone()))
        .collect();
    let mut done = Vec::new();
    for _ in 0..o.cycles {
        done.push(cycle(lab, &roles).await?);
    }
    let durations = |f: &dyn Fn(&Cycle) -> Duration| done.iter().map(f).collect::<Vec<_>>();
    let s = |f: &dyn Fn(&Cycle) -> Duration| Summary::of_durations(&durations(f)).unwrap();
    println!(
        "pgpool leader loss over {} cycles: new leader {}; VIP moved {}; client in {}; rejoined as standby {}",
        done.len(),
        s(&|c| c.elected),
        s(&|c| c.vip_moved),
        s(&|c| c.reconnect),
        s(&|c| c.rejoined)
    );
    let mut r = Report::new("");
    r.summary_secs("elected_s", &durations(&|c| c.elected))
        .summary_secs("vip_moved_s", &durations(&|c| c.vip_moved))
        .summary_secs("reconnect_s", &durations(&|c| c.reconnect))
        .summary_secs("rejoined_s", &durations(&|c| c.rejoined));
    Ok(r)
}

pub fn body<'a>(s: &'a Session, t: Topology, o: &'a Options) -> LocalBoxFuture<'a, Result<Report>> {
    Box::pin(async move { s.with_lab(&t, async |lab| leader_loss(lab, o).await).await })
}
