//! Cluster tier: the vmxnet3 VXLAN model breaks TCP on 4789, and `auto`'s
//! port avoids it (`ke2lab_harness::scenario::vmxnet3`; also `ke2lab
//! scenario run vmxnet3`).

use anyhow::Result;
use ke2lab_harness::scenario::run_test;

#[tokio::test]
async fn vmxnet3_breaks_tcp_on_4789_and_auto_port_avoids_it() -> Result<()> {
    run_test("vmxnet3").await
}
