//! Cluster tier: the GlusterFS shared directory and the `SHARED_DIR` layout
//! on real container hosts, a re-provision changing nothing
//! (`ke2lab_harness::scenario::gluster`; also `ke2lab scenario run
//! gluster`).

use anyhow::Result;
use ke2lab_harness::scenario::run_test;

#[tokio::test]
async fn gluster_replica_3_shared_dir_and_reprovision_changes_nothing() -> Result<()> {
    run_test("gluster").await
}
