//! The VMware vmxnet3 VXLAN problem. With the data-path port forced to 4789
//! and the vmxnet3 model injected, containers on different nodes ping each
//! other but TCP between them fails (the field symptom). Provisioned with
//! `data_path_port = "auto"`, the swarm uses another port and the same TCP
//! request succeeds under the same fault. Two labs, one after the other.

use std::time::Duration;

use anyhow::{Result, ensure};
use futures_util::future::LocalBoxFuture;
use ke2lab::topology::{DataPathPort, Topology};
use ke2lab::wait::{Poll, wait_for};

use super::{Options, Report, Session};
use crate::Lab;
use crate::faults::Faults;
use crate::overlay;

/// Installs the swarm, injects the vmxnet3 model on 4789, and returns
/// (ping ok, TCP answer, data-path port) from the first host to a server
/// on the second.
async fn probe_across_nodes(lab: &mut Lab) -> Result<(bool, Option<String>, u16)> {
    let report = lab.install_swarm().await?;
    let warned = report
        .steps
        .iter()
        .flat_map(|s| &s.warnings)
        .any(|w| w.contains("vmxnet3"));
    let port = lab.topology.data_path_port();
    ensure!(
        warned == (port == 4789),
        "the vmxnet3 warning must appear exactly when the port is 4789 (port {port}, warned {warned})"
    );
    let (n1, n2) = (
        lab.topology.hosts[0].name.clone(),
        lab.topology.hosts[1].name.clone(),
    );
    let (h1, h2) = (lab.host(&n1)?, lab.host(&n2)?);
    let info = lab.cluster().swarm_info_from(&n1).await?;
    let have = info.cluster.map(|c| c.data_path_port).unwrap_or(0);
    ensure!(have == port, "swarm data-path port {have}, topology {port}");
    for h in [&h1, &h2] {
        overlay::busybox_image(h.as_ref()).await?;
    }
    let ip = overlay::start_server(h1.as_ref(), h2.as_ref()).await?;
    // Without the fault, TCP across nodes works on any port.
    let baseline = wait_for(
        "TCP across nodes before the fault",
        Duration::from_secs(60),
        || async {
            match overlay::http_get(h1.as_ref(), ip).await {
                Ok(Some(b)) => Poll::Ready(b),
                Ok(None) => Poll::NotYet("no answer".into()),
                Err(e) => Poll::NotYet(e.to_string()),
            }
        },
    )
    .await?;
    ensure!(
        baseline == "ke2lab-probe-ok",
        "unexpected body `{baseline}`"
    );

    let mut faults = Faults::new(lab);
    faults.drop_vxlan_tcp(4789).await?;
    let ping = overlay::ping(h1.as_ref(), ip).await?;
    let tcp = overlay::http_get(h1.as_ref(), ip).await?;
    faults.restore_vxlan(4789).await?;
    Ok((ping, tcp, have))
}

async fn run(
    s: &Session,
    base: &Topology,
    port: DataPathPort,
) -> Result<(bool, Option<String>, u16)> {
    let mut topology = base.clone();
    topology.swarm.data_path_port = port;
    s.with_lab(&topology, async |lab| probe_across_nodes(lab).await)
        .await
}

pub fn body<'a>(s: &'a Session, t: Topology, _: &'a Options) -> LocalBoxFuture<'a, Result<Report>> {
    Box::pin(async move {
        let (ping, tcp, port) = run(s, &t, DataPathPort::Port(4789)).await?;
        println!("vmxnet3 model, data-path port {port}: ping {ping}, TCP {tcp:?}");
        ensure!(
            ping,
            "ping across nodes must still work (the field symptom)"
        );
        ensure!(
            tcp.is_none(),
            "TCP across nodes must fail on 4789 under the vmxnet3 model"
        );
        let mut r = Report::new("");
        r.text("ping_4789", ping.to_string())
            .text("tcp_4789", format!("{tcp:?}"));

        let (ping, tcp, port) = run(s, &t, DataPathPort::Auto).await?;
        println!("vmxnet3 model, data-path port {port} (auto): ping {ping}, TCP {tcp:?}");
        ensure!(port != 4789, "auto must avoid 4789 with vmxnet3 NICs");
        ensure!(ping, "ping across nodes");
        ensure!(
            tcp.as_deref() == Some("ke2lab-probe-ok"),
            "TCP across nodes must work on port {port}"
        );
        r.count("auto_port", port as usize)
            .text("ping_auto", ping.to_string())
            .text("tcp_auto", format!("{tcp:?}"));
        Ok(r)
    })
}
