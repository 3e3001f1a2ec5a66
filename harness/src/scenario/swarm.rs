//! The walking skeleton: the swarm (PROCEDURE.md steps 1-3) on the
//! topology's hosts, checked through the typed probes: every host a Ready
//! manager, one leader, the same cluster and the topology's data-path port
//! everywhere; a re-provision changes nothing, and nothing labelled is left
//! after the teardown. `swarm` runs the whole install (the swarm must
//! survive the later steps too); `swarm_vmxnet3` steps 1-3 only on a
//! topology with a vmxnet3 NIC, where the data-path port must not be
//! VXLAN's 4789.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use futures_util::future::LocalBoxFuture;
use ke2lab::install::InstallReport;
use ke2lab::probe::swarm::{ManagerStatus, NodeStatus, SwarmSummary};
use ke2lab::topology::{DEFAULT_DATA_PATH_PORT, Topology};
use ke2lab::wait::{Poll, wait_for};

use super::{Options, Report, Session};
use crate::Lab;

async fn install(lab: &mut Lab, whole: bool) -> Result<InstallReport> {
    if whole {
        lab.install().await
    } else {
        lab.install_swarm().await
    }
}

async fn swarm_forms(lab: &mut Lab, whole: bool) -> Result<Report> {
    let port = lab.topology.data_path_port();
    let start = Instant::now();
    let first = install(lab, whole).await?;
    let installed = start.elapsed();
    ensure!(
        first.changes() > 0,
        "a fresh lab must need changes:\n{first}"
    );

    let cluster = lab.cluster();
    let count = lab.topology.hosts.len();
    let h1 = &lab.topology.hosts[0].name;
    let nodes = wait_for(
        &format!("{count} managers Ready, one Leader"),
        Duration::from_secs(60),
        || async {
            match cluster.swarm_nodes_from(h1).await {
                Ok(n) if SwarmSummary::of(&n).is_healthy(count) => Poll::Ready(n),
                Ok(n) => Poll::NotYet(SwarmSummary::of(&n).to_string()),
                Err(e) => Poll::NotYet(e.to_string()),
            }
        },
    )
    .await?;
    println!("swarm as probed after install:");
    for n in &nodes {
        println!(
            "  {} {:?} {:?} {:?}",
            n.hostname, n.status, n.availability, n.manager_status
        );
    }
    ensure!(nodes.iter().all(|n| n.status == NodeStatus::Ready));
    let leaders: Vec<_> = nodes
        .iter()
        .filter(|n| n.manager_status == Some(ManagerStatus::Leader))
        .collect();
    ensure!(leaders.len() == 1, "exactly one leader, got {leaders:?}");
    let leader = leaders[0].hostname.clone();
    for spec in &lab.topology.hosts {
        ensure!(
            nodes.iter().any(|n| n.hostname == spec.name),
            "host `{}` is not a swarm node",
            spec.name
        );
    }
    // Every host reports the same cluster and the topology's data-path port.
    for h in &lab.topology.hosts {
        let info = cluster.swarm_info_from(&h.name).await?;
        let swarm = info.cluster.as_ref();
        ensure!(
            info.is_active() && info.control_available,
            "`{}` is not a manager",
            h.name
        );
        ensure!(
            swarm.map(|c| c.data_path_port) == Some(port),
            "`{}` data-path port {:?}, want {port}",
            h.name,
            swarm.map(|c| c.data_path_port)
        );
    }
    if lab.topology.has_vmxnet3() {
        ensure!(
            port != DEFAULT_DATA_PATH_PORT,
            "a topology with a vmxnet3 NIC got VXLAN's data-path port {port}"
        );
    }
    println!(
        "{count} managers, leader `{leader}`, data-path port {port} on every host; install {:.1}s",
        installed.as_secs_f64()
    );

    let second = install(lab, whole).await?;
    ensure!(
        second.changes() == 0,
        "re-provisioning changed things:\n{second}"
    );
    let mut r = Report::new("");
    r.secs("install_s", installed)
        .count("first_install_changes", first.changes())
        .count("managers", nodes.len())
        .text("leader", leader)
        .count("data_path_port", usize::from(port))
        .count("reprovision_changes", second.changes());
    Ok(r)
}

/// The lab for `t`, then, once it is removed, no labelled resource of its
/// run left (with `--keep` the lab stays and nothing is checked).
async fn swarm(s: &Session, t: Topology, whole: bool) -> Result<Report> {
    let r = s
        .with_lab(&t, async |lab| swarm_forms(lab, whole).await)
        .await?;
    s.ensure_nothing_left().await?;
    Ok(r)
}

/// The whole install: the swarm must survive the later steps too.
pub fn whole<'a>(
    s: &'a Session,
    t: Topology,
    _: &'a Options,
) -> LocalBoxFuture<'a, Result<Report>> {
    Box::pin(swarm(s, t, true))
}

/// Steps 1-3 only: the data-path port is decided there.
pub fn steps_1_to_3<'a>(
    s: &'a Session,
    t: Topology,
    _: &'a Options,
) -> LocalBoxFuture<'a, Result<Report>> {
    Box::pin(swarm(s, t, false))
}
