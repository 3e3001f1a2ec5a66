//! Cluster tier: the primary's PostgreSQL dies while a writer commits
//! through the VIP (`ke2lab_harness::scenario::failover`; also `ke2lab
//! scenario run primary_failover_async|primary_failover_sync`).

use anyhow::Result;
use ke2lab_harness::scenario::run_test;

#[tokio::test]
async fn primary_failover_async_reports_rto_and_lost_commits() -> Result<()> {
    run_test("primary_failover_async").await
}

#[tokio::test]
async fn primary_failover_sync_loses_no_acknowledged_commit() -> Result<()> {
    run_test("primary_failover_sync").await
}
