//! Cluster tier: PostgreSQL streaming replication behind Pgpool-II with a
//! real watchdog VIP and online recovery, checked through the VIP
//! (`ke2lab_harness::scenario::pgpool`; also `ke2lab scenario run pgpool`).

use anyhow::Result;
use ke2lab_harness::scenario::run_test;

#[tokio::test]
async fn primary_with_two_streaming_standbys_behind_the_vip() -> Result<()> {
    run_test("pgpool").await
}
