//! Cluster tier: the last host goes away and comes back; everything
//! converges after a re-provision (`ke2lab_harness::scenario::node_loss`;
//! also `ke2lab scenario run node_loss`).

use anyhow::Result;
use ke2lab_harness::scenario::run_test;

#[tokio::test]
async fn node_loss_and_return() -> Result<()> {
    run_test("node_loss").await
}
