//! Firewall openings with firewalld (rhel9): ports, and firewalld's named
//! services where the procedure opens one (`glusterfs`, `postgresql`).
//! Debian hosts have no firewall by default and the procedure manages none
//! there, so on them the step has nothing to plan. One instance per purpose
//! (swarm, gluster, postgres).

use async_trait::async_trait;

use super::{Cx, Plan, Planned, Step, StepError, each_host};
use crate::host::{Cmd, Host};

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

/// Opens `ports` and `services` permanently and reloads, on hosts with
/// firewalld.
pub struct Firewall {
    pub purpose: &'static str,
    pub ports: Vec<Port>,
    /// firewalld service names (`firewall-cmd --get-services`).
    pub services: Vec<&'static str>,
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
            services: Vec::new(),
        }
    }

    pub fn for_swarm(cx: &Cx<'_>) -> Self {
        Firewall {
            purpose: "firewall",
            ports: swarm_ports(cx.topology.data_path_port()),
            services: Vec::new(),
        }
    }

    /// Step 4: firewalld's `glusterfs` service (glusterd's 24007-24008/tcp
    /// and the brick ports).
    pub fn for_gluster() -> Self {
        Firewall {
            purpose: "gluster-fw",
            ports: Vec::new(),
            services: vec!["glusterfs"],
        }
    }
}

/// What is missing on one host.
#[derive(Clone, Debug, Default)]
pub struct Missing {
    pub ports: Vec<Port>,
    pub services: Vec<&'static str>,
}

/// The words of a `firewall-cmd --permanent --list-…` answer.
async fn listed(h: &dyn Host, what: &str) -> Result<Vec<String>, StepError> {
    let out = Cmd::new(["firewall-cmd", "--permanent"])
        .arg(format!("--list-{what}"))
        .check(h)
        .await?;
    Ok(out
        .stdout_lossy()
        .split_whitespace()
        .map(str::to_string)
        .collect())
}

#[async_trait]
impl Step for Firewall {
    /// The ports and services missing on that host.
    type Action = Missing;

    fn name(&self) -> &'static str {
        self.purpose
    }

    async fn plan(&self, cx: &Cx<'_>) -> Result<Plan<Missing>, StepError> {
        let open = each_host(cx, |i, h| async move {
            if !cx.topology.hosts[i].platform.has_firewalld() {
                return Ok(None);
            }
            // Only what this instance manages is listed, so the swarm's
            // transcript stays as it was before services existed.
            let ports = if self.ports.is_empty() {
                Vec::new()
            } else {
                listed(h, "ports").await?
            };
            let services = if self.services.is_empty() {
                Vec::new()
            } else {
                listed(h, "services").await?
            };
            Ok(Some((ports, services)))
        })
        .await?;
        let mut plan = Plan::default();
        for (i, open) in open.into_iter().enumerate() {
            let Some((ports, services)) = open else {
                continue;
            };
            let missing = Missing {
                ports: self
                    .ports
                    .iter()
                    .filter(|p| !ports.contains(&p.spec()))
                    .cloned()
                    .collect(),
                services: self
                    .services
                    .iter()
                    .filter(|s| !services.iter().any(|o| o == *s))
                    .copied()
                    .collect(),
            };
            let mut words: Vec<String> = missing.ports.iter().map(Port::spec).collect();
            words.extend(missing.services.iter().map(|s| format!("service {s}")));
            if !words.is_empty() {
                plan.push(i, format!("open {} in firewalld", words.join(" ")), missing);
            }
        }
        Ok(plan)
    }

    async fn apply(&self, cx: &Cx<'_>, item: &Planned<Missing>) -> Result<(), StepError> {
        let host = cx.host(item.host);
        for p in &item.action.ports {
            Cmd::new(["firewall-cmd", "--permanent"])
                .arg(format!("--add-port={}", p.spec()))
                .check(host)
                .await?;
        }
        for s in &item.action.services {
            Cmd::new(["firewall-cmd", "--permanent"])
                .arg(format!("--add-service={s}"))
                .check(host)
                .await?;
        }
        Cmd::new(["firewall-cmd", "--reload"]).check(host).await?;
        Ok(())
    }
}
