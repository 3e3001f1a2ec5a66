//! Cluster tier: the primary's host, also the VIP holder, is cut from the
//! others while a writer commits through the VIP; the majority takes over,
//! the minority lets the VIP go, the repair converges
//! (`ke2lab_harness::scenario::partition`; also `ke2lab scenario run
//! partition_async|partition_sync`).

use anyhow::Result;
use ke2lab_harness::scenario::run_test;

#[tokio::test]
async fn partition_primary_isolated_async_counts_lost_writes() -> Result<()> {
    run_test("partition_async").await
}

#[tokio::test]
async fn partition_primary_isolated_sync_no_split_brain() -> Result<()> {
    run_test("partition_sync").await
}
