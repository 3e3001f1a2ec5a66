//! Cluster tier: one host's brick and glusterd die under appenders; appends
//! go on and heal completes (`ke2lab_harness::scenario::brick_loss`; also
//! `ke2lab scenario run brick_loss`).

use anyhow::Result;
use ke2lab_harness::scenario::run_test;

#[tokio::test]
async fn gluster_brick_loss_writes_go_on_and_heal() -> Result<()> {
    run_test("brick_loss").await
}
