//! Cluster tier: the walking skeleton on real container hosts. Boot the
//! document's three-node lab, install steps 1-3, and check the swarm through
//! the typed probes; then re-provision and expect zero changes.

use std::time::Duration;

use anyhow::{Result, ensure};
use ke2lab::probe::swarm::{ManagerStatus, NodeStatus, SwarmSummary};
use ke2lab::topology::Topology;
use ke2lab::wait::{Poll, wait_for};
use ke2lab_harness::Lab;
use ke2lab_harness::lab::{self, keep_on_failure};

async fn swarm_forms(lab: &mut Lab, fixture_port: u16, whole: bool) -> Result<()> {
    let install = async |lab: &mut Lab| {
        if whole {
            lab.install().await
        } else {
            lab.install_swarm().await
        }
    };
    let first = install(lab).await?;
    ensure!(
        first.changes() > 0,
        "a fresh lab must need changes:\n{first}"
    );

    let cluster = lab.cluster();
    let h1 = &lab.topology.hosts[0].name;
    let nodes = wait_for(
        "3 managers Ready, one Leader",
        Duration::from_secs(60),
        || async {
            match cluster.swarm_nodes_from(h1).await {
                Ok(n) if SwarmSummary::of(&n).is_healthy(3) => Poll::Ready(n),
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
            swarm.map(|c| c.data_path_port) == Some(fixture_port),
            "`{}` data-path port {:?}, want {fixture_port}",
            h.name,
            swarm.map(|c| c.data_path_port)
        );
    }

    let second = install(lab).await?;
    ensure!(
        second.changes() == 0,
        "re-provisioning changed things:\n{second}"
    );
    Ok(())
}

async fn scenario(fixture: &str, whole: bool) -> Result<()> {
    let topology = Topology::fixture(fixture)?.topology;
    let port = topology.data_path_port();
    let mut lab = Lab::boot(&topology, keep_on_failure()).await?;
    let run = lab.run.clone();
    let outcome = swarm_forms(&mut lab, port, whole).await;
    let docker = lab::connect().await?;
    lab.finish(outcome).await?;
    let left = lab::leftovers(&docker, Some(&run)).await?;
    ensure!(
        left.is_empty(),
        "labelled resources left after teardown: {left:?}"
    );
    Ok(())
}

#[tokio::test]
async fn three_managers_form_and_reprovision_changes_nothing() -> Result<()> {
    // The whole install: the swarm must survive the later steps too.
    scenario("three-node", true).await
}

#[tokio::test]
async fn vmxnet3_topology_gets_a_non_vxlan_data_path_port() -> Result<()> {
    // Steps 1-3 only: the data-path port is decided there.
    scenario("three-node-vmxnet3", false).await
}
