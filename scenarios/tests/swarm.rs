//! Cluster tier: the walking skeleton, the swarm on real container hosts
//! checked through the typed probes, a re-provision changing nothing
//! (`ke2lab_harness::scenario::swarm`; also `ke2lab scenario run
//! swarm|swarm_vmxnet3`).

use anyhow::Result;
use ke2lab_harness::scenario::run_test;

#[tokio::test]
async fn three_managers_form_and_reprovision_changes_nothing() -> Result<()> {
    // The whole install: the swarm must survive the later steps too.
    run_test("swarm").await
}

#[tokio::test]
async fn vmxnet3_topology_gets_a_non_vxlan_data_path_port() -> Result<()> {
    // Steps 1-3 only: the data-path port is decided there.
    run_test("swarm_vmxnet3").await
}
