//! Firewall openings with firewalld (rhel9). Debian hosts have no firewall
//! by default and the procedure manages none there, so on them the step has
//! nothing to plan. One instance per purpose (swarm, gluster, postgres).

use async_trait::async_trait;

use super::{Cx, Plan, Planned, Step, StepError, each_host};
use crate::host::Cmd;

/// A port (or port range) and protocol, as firewalld spells it: `7946/udp`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub port: String,
    pub proto: &'static str,
}

impl Port {
    pub fn tcp(p: u16) -> Self {
        Port {
            port: p.to_string(),
            proto: "tcp",
        }
    }

    pub fn udp(p: u16) -> Self {
        Port {
            port: p.to_string(),
            proto: "udp",
        }
    }

    pub fn spec(&self) -> String {
        format!("{}/{}", self.port, self.proto)
    }
}

/// The swarm's ports (step 2): management, gossip and the data path, which is
/// the topology's chosen data-path port instead of 4789 when it differs.
pub fn swarm_ports(data_path_port: u16) -> Vec<Port> {
    vec![
        Port::tcp(2377),
        Port::tcp(7946),
        Port::udp(7946),
        Port::udp(data_path_port),
    ]
}

/// Opens `ports` permanently and reloads, on hosts with firewalld.
pub struct Firewall {
    pub purpose: &'static str,
    pub ports: Vec<Port>,
}

impl Firewall {
    /// Step 5 item 6: PostgreSQL, Pgpool-II, PCP, watchdog and heartbeat.
    pub fn for_database(cx: &Cx<'_>) -> Self {
        let p = &cx.topology.ports;
        Firewall {
            purpose: "pg-firewall",
            ports: vec![
                Port::tcp(p.postgres),
                Port::tcp(p.pgpool),
                Port::tcp(p.pcp),
                Port::tcp(p.watchdog),
                Port::udp(p.heartbeat),
            ],
        }
    }

    pub fn for_swarm(cx: &Cx<'_>) -> Self {
        Firewall {
            purpose: "firewall",
            ports: swarm_ports(cx.topology.data_path_port()),
        }
    }
}

#[async_trait]
impl Step for Firewall {
    /// The ports missing on that host.
    type Action = Vec<Port>;

    fn name(&self) -> &'static str {
        self.purpose
    }

    async fn plan(&self, cx: &Cx<'_>) -> Result<Plan<Vec<Port>>, StepError> {
        let open = each_host(cx, |i, h| async move {
            if !cx.topology.hosts[i].platform.has_firewalld() {
                return Ok(None);
            }
            let out = Cmd::new(["firewall-cmd", "--permanent", "--list-ports"])
                .check(h)
                .await?;
            Ok(Some(
                out.stdout_lossy()
                    .split_whitespace()
                    .map(str::to_string)
                    .collect::<Vec<_>>(),
            ))
        })
        .await?;
        let mut plan = Plan::default();
        for (i, open) in open.into_iter().enumerate() {
            let Some(open) = open else { continue };
            let missing: Vec<Port> = self
                .ports
                .iter()
                .filter(|p| !open.contains(&p.spec()))
                .cloned()
                .collect();
            if !missing.is_empty() {
                let list = missing.iter().map(Port::spec).collect::<Vec<_>>().join(" ");
                plan.push(i, format!("open {list} in firewalld"), missing);
            }
        }
        Ok(plan)
    }

    async fn apply(&self, cx: &Cx<'_>, item: &Planned<Vec<Port>>) -> Result<(), StepError> {
        let host = cx.host(item.host);
        for p in &item.action {
            Cmd::new(["firewall-cmd", "--permanent"])
                .arg(format!("--add-port={}", p.spec()))
                .check(host)
                .await?;
        }
        Cmd::new(["firewall-cmd", "--reload"]).check(host).await?;
        Ok(())
    }
}
