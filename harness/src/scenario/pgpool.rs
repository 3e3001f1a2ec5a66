//! PostgreSQL streaming replication behind Pgpool-II with a real watchdog
//! VIP and online recovery (PROCEDURE.md steps 5-7), checked from outside
//! the hosts through the VIP.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use futures_util::future::LocalBoxFuture;
use ke2lab::cluster::DbUser;
use ke2lab::probe::pgpool::PoolSummary;
use ke2lab::topology::Topology;
use ke2lab::wait::{Poll, wait_for};

use super::{Options, Report, Session};
use crate::Lab;
use crate::lab::memory;

async fn check(lab: &mut Lab) -> Result<Report> {
    let start = Instant::now();
    let report = lab.install().await?;
    let installed = start.elapsed();
    println!("install report (first run):\n{report}");
    let db_time: f64 = report
        .steps
        .iter()
        .skip_while(|s| s.step != "pg-packages")
        .map(|s| s.elapsed.as_secs_f64())
        .sum();
    let t = lab.topology.clone();
    let cluster = lab.cluster();
    let vip = t.network.vip;

    // show pool_nodes through the VIP, from this process (outside the hosts).
    let count = t.hosts.len();
    let nodes = wait_for(
        &format!(
            "{count} nodes up, node 0 primary, {} streaming standbys",
            count - 1
        ),
        Duration::from_secs(60),
        || async {
            match cluster.pool_nodes_at(vip).await {
                Ok(n) if PoolSummary::of(&n).is_healthy(count) => Poll::Ready(n),
                Ok(n) => Poll::NotYet(PoolSummary::of(&n).to_string()),
                Err(e) => Poll::NotYet(e.to_string()),
            }
        },
    )
    .await?;
    let ready = start.elapsed();
    println!(
        "hosts booted → {} standbys streaming and VIP answering: {:.1}s (database steps {db_time:.1}s, whole install {:.1}s)",
        count - 1,
        ready.as_secs_f64(),
        installed.as_secs_f64()
    );
    for n in &nodes {
        println!(
            "  node {} {} status={} pg_status={} role={} pg_role={} replication={} sync={}",
            n.node_id,
            n.hostname,
            n.status,
            n.pg_status,
            n.role,
            n.pg_role,
            n.replication_state,
            n.replication_sync_state
        );
    }
    ensure!(
        nodes[0].is_primary() && nodes[0].pg_role == "primary",
        "node 0 must be the primary"
    );
    for n in &nodes[1..] {
        ensure!(
            n.is_streaming_standby() && n.pg_role == "standby",
            "node {} not streaming",
            n.node_id
        );
    }

    // The VIP is on exactly one host, and that host is the watchdog leader.
    let holders = cluster.vip_holders().await?;
    ensure!(holders.len() == 1, "VIP held by {holders:?}");
    let wd = cluster
        .watchdog_info()
        .await
        .context("no host answered `pcp_watchdog_info`")?;
    ensure!(wd.quorum, "watchdog without quorum: {wd:?}");
    ensure!(
        holders == [wd.leader_host.clone()],
        "VIP on {holders:?}, leader `{}`",
        wd.leader_host
    );
    println!(
        "VIP {vip} on {holders:?}; watchdog leader `{}` with quorum",
        wd.leader_host
    );

    // A row written through the VIP is readable on every standby.
    let db = &t.postgres.database;
    let c = cluster
        .sql_client(vip, t.ports.pgpool, DbUser::Kompira, db)
        .await?;
    c.batch_execute("CREATE TABLE IF NOT EXISTS ke2lab_probe (id serial PRIMARY KEY, note text)")
        .await?;
    let token = format!("written-through-vip-{}", std::process::id());
    c.execute("INSERT INTO ke2lab_probe (note) VALUES ($1)", &[&token])
        .await?;
    for standby in &t.hosts[1..] {
        let seen = wait_for(
            &format!("the row to be readable on standby `{}`", standby.name),
            Duration::from_secs(30),
            || async {
                let q = async {
                    let s = cluster
                        .sql_client(standby.address, t.ports.postgres, DbUser::Kompira, db)
                        .await?;
                    let rows = s
                        .query(
                            "SELECT count(*) FROM ke2lab_probe WHERE note = $1",
                            &[&token],
                        )
                        .await
                        .map_err(|e| anyhow::anyhow!(e))?;
                    let in_recovery: bool =
                        s.query_one("SELECT pg_is_in_recovery()", &[]).await?.get(0);
                    anyhow::Ok((rows[0].get::<_, i64>(0), in_recovery))
                };
                match q.await {
                    Ok((1, true)) => Poll::Ready(()),
                    Ok(x) => Poll::NotYet(format!("count/in_recovery {x:?}")),
                    Err(e) => Poll::NotYet(e.to_string()),
                }
            },
        )
        .await;
        seen?;
    }

    // Re-provisioning changes nothing and leaves the cluster healthy.
    let again = lab.install().await?;
    ensure!(
        again.changes() == 0,
        "re-provisioning changed things:\n{again}"
    );
    let after = lab.cluster().pool_nodes_at(vip).await?;
    ensure!(
        PoolSummary::of(&after).is_healthy(count),
        "after re-provision: {}",
        PoolSummary::of(&after)
    );

    let mem = memory(lab).await?;
    let mib = mem.iter().map(|(_, b)| b).sum::<u64>() >> 20;
    println!("memory of the {count} hosts: {mib} MiB ({mem:?})");
    let mut r = Report::new("");
    r.secs("install_s", installed)
        .secs("ready_s", ready)
        .push_number("database_steps_s", db_time)
        .text("vip_holder", wd.leader_host.clone())
        .count("reprovision_changes", again.changes())
        .count("memory_mib", mib as usize);
    Ok(r)
}

pub fn body<'a>(s: &'a Session, t: Topology, _: &'a Options) -> LocalBoxFuture<'a, Result<Report>> {
    Box::pin(async move { s.with_lab(&t, async |lab| check(lab).await).await })
}
