//! Cluster tier: a majority of the hosts stops, the primary's among them;
//! nothing acts without quorum, and the cluster converges on their return
//! (`ke2lab_harness::scenario::quorum_loss`; also `ke2lab scenario run
//! quorum_loss`).

use anyhow::Result;
use ke2lab_harness::scenario::run_test;

#[tokio::test]
async fn quorum_loss_acts_nowhere_and_converges_on_return() -> Result<()> {
    run_test("quorum_loss").await
}
