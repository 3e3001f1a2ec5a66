//! Step 3: a swarm whose every host is a manager. The first host initialises
//! it with the topology's data-path port; the others join as managers with a
//! token fetched at apply time (never printed). Verification waits until all
//! nodes are Ready/Active with one Leader and the rest Reachable.

use std::time::Duration;

use async_trait::async_trait;

use super::{Cx, Plan, Planned, Step, StepError, each_host};
use crate::host::Cmd;
use crate::probe::swarm::{self as probe, SwarmInfo, SwarmSummary};
use crate::topology::Nic;
use crate::wait::{Poll, wait_for};

/// VXLAN's IANA port: the one vmxnet3 offload breaks.
pub const VXLAN_DEFAULT_PORT: u16 = 4789;

#[derive(Clone, Debug)]
pub enum Action {
    Init {
        port: u16,
    },
    /// Join the swarm of host `anchor` as a manager.
    Join {
        anchor: usize,
    },
    /// A worker already in the swarm becomes a manager.
    Promote {
        anchor: usize,
        node_id: String,
    },
}

pub struct Swarm {
    /// How long verification waits for every manager to be reachable.
    pub settle: Duration,
}

impl Default for Swarm {
    fn default() -> Self {
        Swarm {
            settle: Duration::from_secs(60),
        }
    }
}

/// The kernel driver of the NIC that carries the host's cluster address,
/// from sysfs (`/sys/class/net/<if>/device/driver`); `None` for a virtual
/// interface without a device (a container's veth, a bridge).
pub async fn nic_driver(
    h: &dyn crate::host::Host,
    address: std::net::Ipv4Addr,
) -> Result<Option<String>, StepError> {
    let links = crate::probe::net::links(h).await?;
    let Some(link) = links.iter().find(|l| l.has_ipv4(address)) else {
        return Ok(None);
    };
    let out = h
        .run(
            &Cmd::new(["readlink", "-f"])
                .arg(format!("/sys/class/net/{}/device/driver", link.ifname)),
        )
        .await?;
    let path = out.stdout_lossy();
    let path = path.trim();
    // readlink -f prints the path even when nothing is there; a driver
    // lives under /sys/bus/*/drivers/.
    if !out.success() || !path.contains("/drivers/") {
        return Ok(None);
    }
    Ok(path.rsplit('/').next().map(str::to_string))
}

/// The warning the procedure owes an operator before `swarm init` when a
/// vmxnet3 NIC meets VXLAN's default port (PROCEDURE.md step 3). A host
/// counts when the topology says so or when its NIC's driver (`drivers`,
/// read from sysfs on real hosts; `None` in the lab) is vmxnet3.
pub fn vmxnet3_warning(cx: &Cx<'_>, port: u16, drivers: &[Option<String>]) -> Option<String> {
    if port != VXLAN_DEFAULT_PORT {
        return None;
    }
    let hosts: Vec<String> = cx
        .topology
        .hosts
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            let by_driver = drivers.get(i).and_then(|d| d.as_deref()) == Some("vmxnet3");
            match (h.nic == Nic::Vmxnet3, by_driver) {
                (_, true) if h.nic != Nic::Vmxnet3 => Some(format!(
                    "`{}` (driver vmxnet3 in sysfs; the topology says `{}`)",
                    h.name, h.nic
                )),
                (true, _) | (_, true) => Some(format!("`{}`", h.name)),
                _ => None,
            }
        })
        .collect();
    (!hosts.is_empty()).then(|| {
        format!(
            "hosts {} have vmxnet3 NICs and the swarm data-path port is {VXLAN_DEFAULT_PORT}: \
             TCP across nodes will fail while ping works; use `data_path_port = \"auto\"` or another port",
            hosts.join(", ")
        )
    })
}

fn state_err(cx: &Cx<'_>, i: usize, message: String) -> StepError {
    StepError::State {
        step: "swarm",
        host: cx.name(i).to_string(),
        message,
    }
}

#[async_trait]
impl Step for Swarm {
    type Action = Action;

    fn name(&self) -> &'static str {
        "swarm"
    }

    async fn plan(&self, cx: &Cx<'_>) -> Result<Plan<Action>, StepError> {
        let infos: Vec<SwarmInfo> =
            each_host(cx, |_, h| async move { Ok(probe::info(h).await?) }).await?;
        let port = cx.topology.data_path_port();
        let mut plan = Plan::default();
        // The anchor is the first host that already manages a swarm and
        // knows its cluster; a re-run after a partial install continues from
        // it. A manager cut off from the Raft majority reports no cluster
        // (or an empty one) until it catches up, so it cannot anchor.
        let managers: Vec<usize> = (0..infos.len())
            .filter(|&i| infos[i].is_active() && infos[i].control_available)
            .collect();
        let anchor = managers
            .iter()
            .copied()
            .find(|&i| infos[i].cluster_id().is_some());
        if anchor.is_none()
            && let Some(&m) = managers.first()
        {
            return Err(state_err(
                cx,
                m,
                "the swarm manager knows no cluster (no Raft leader reachable); \
                 re-run once a majority of managers is back"
                    .into(),
            ));
        }
        let (anchor, cluster_id) = match anchor {
            Some(a) => {
                // 0 means "not set", which the engine treats as 4789.
                let have = match infos[a].cluster.as_ref().map_or(0, |c| c.data_path_port) {
                    0 => VXLAN_DEFAULT_PORT,
                    p => p,
                };
                if have != port {
                    return Err(state_err(
                        cx,
                        a,
                        format!(
                            "the swarm uses data-path port `{have}` but the topology asks for `{port}`; \
                             the port can only be chosen at `docker swarm init` (leave the swarm to change it)"
                        ),
                    ));
                }
                (a, infos[a].cluster_id().map(str::to_string))
            }
            None => {
                let drivers = each_host(cx, |i, h| async move {
                    nic_driver(h, cx.topology.hosts[i].address).await
                })
                .await?;
                if let Some(w) = vmxnet3_warning(cx, port, &drivers) {
                    plan.warnings.push(w);
                }
                plan.push(
                    0,
                    format!("initialise the swarm (data-path port {port})"),
                    Action::Init { port },
                );
                (0, None)
            }
        };
        let anchor_node_ids: Vec<&str> = infos[anchor]
            .remote_managers
            .iter()
            .map(|m| m.node_id.as_str())
            .collect();
        for (i, info) in infos.iter().enumerate() {
            if i == anchor {
                continue;
            }
            if !info.is_active() {
                plan.push(i, "join the swarm as a manager", Action::Join { anchor });
                continue;
            }
            let same = match (&cluster_id, info.cluster_id()) {
                (Some(a), Some(b)) => a == b,
                // A worker has no cluster info; it belongs to the anchor's
                // swarm when the anchor's manager list names its manager.
                (Some(_), None) => info
                    .remote_managers
                    .iter()
                    .any(|m| anchor_node_ids.contains(&m.node_id.as_str())),
                (None, _) => false,
            };
            if !same {
                return Err(state_err(
                    cx,
                    i,
                    format!(
                        "the host is in another swarm (node `{}`); run `docker swarm leave --force` on it first",
                        info.node_id
                    ),
                ));
            }
            if !info.control_available {
                plan.push(
                    i,
                    "promote the worker to manager",
                    Action::Promote {
                        anchor,
                        node_id: info.node_id.clone(),
                    },
                );
            }
        }
        Ok(plan)
    }

    async fn apply(&self, cx: &Cx<'_>, item: &Planned<Action>) -> Result<(), StepError> {
        let host = cx.host(item.host);
        let spec = &cx.topology.hosts[item.host];
        match &item.action {
            Action::Init { port } => {
                Cmd::new(["docker", "swarm", "init", "--advertise-addr"])
                    .arg(spec.address.to_string())
                    .arg("--data-path-port")
                    .arg(port.to_string())
                    .check(host)
                    .await?;
            }
            Action::Join { anchor } => {
                let a = cx.host(*anchor);
                let token = Cmd::new(["docker", "swarm", "join-token", "-q", "manager"])
                    .check(a)
                    .await?
                    .stdout_lossy()
                    .trim()
                    .to_string();
                Cmd::new(["docker", "swarm", "join", "--token"])
                    .secret_arg(token)
                    .arg("--advertise-addr")
                    .arg(spec.address.to_string())
                    .arg(format!("{}:2377", cx.topology.hosts[*anchor].address))
                    .check(host)
                    .await?;
            }
            Action::Promote { anchor, node_id } => {
                Cmd::new(["docker", "node", "promote"])
                    .arg(node_id.clone())
                    .check(cx.host(*anchor))
                    .await?;
            }
        }
        Ok(())
    }

    async fn verify(&self, cx: &Cx<'_>) -> Result<(), StepError> {
        let n = cx.hosts.len();
        let names: Vec<&str> = cx.topology.hosts.iter().map(|h| h.name.as_str()).collect();
        let first = cx.host(0);
        wait_for(
            &format!("{n} swarm managers Ready with one Leader"),
            self.settle,
            || async {
                match probe::nodes(first).await {
                    Ok(nodes) => {
                        let s = SwarmSummary::of(&nodes);
                        let all_named =
                            names.iter().all(|h| nodes.iter().any(|x| x.hostname == *h));
                        if s.is_healthy(n) && all_named {
                            Poll::Ready(())
                        } else {
                            Poll::NotYet(s.to_string())
                        }
                    }
                    Err(e) => Poll::NotYet(e.to_string()),
                }
            },
        )
        .await?;
        Ok(())
    }
}
