//! Cluster tier: the watchdog leader's Pgpool-II dies; another member takes
//! the VIP once, clients reconnect, the killed one rejoins as a standby
//! (`ke2lab_harness::scenario::pgpool_leader_loss`; also `ke2lab scenario
//! run pgpool_leader_loss`).

use anyhow::Result;
use ke2lab_harness::scenario::run_test;

#[tokio::test]
async fn pgpool_leader_loss_moves_the_vip_once() -> Result<()> {
    run_test("pgpool_leader_loss").await
}
