//! Firewall openings with firewalld (rhel9): ports, and firewalld's named
//! services where the procedure opens one (`glusterfs`, `postgresql`).
//! Debian hosts have no firewall by default and the procedure manages none
//! there, so on them the step has nothing to plan. One instance per purpose
//! (swarm, gluster, postgres).
//!
//! The port lists are pure functions of the [`Topology`], each port with why
//! it is open: the steps open them, and `ke2lab check`
//! ([`crate::cluster::resolved`]) explains them from the same lists, so what
//! a firewall team is told is what the install opens.

use async_trait::async_trait;

use super::{Cx, Plan, Planned, Step, StepError, each_host};
use crate::host::{Cmd, Host};
use crate::topology::{
    NginxPortMode, SWARM_GOSSIP_PORT, SWARM_MANAGEMENT_PORT, SharedDirKind, Topology,
};

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

/// A port a host needs open, and what listens there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opening {
    pub port: Port,
    pub purpose: String,
}

impl Opening {
    fn new(port: Port, purpose: impl Into<String>) -> Self {
        Opening {
            port,
            purpose: purpose.into(),
        }
    }
}

/// The swarm's openings (step 2): management, gossip and the data path, which
/// is the topology's chosen data-path port instead of 4789 when it differs.
pub fn swarm_openings(data_path_port: u16) -> Vec<Opening> {
    vec![
        Opening::new(
            Port::tcp(SWARM_MANAGEMENT_PORT),
            "swarm cluster management (Raft between managers)",
        ),
        Opening::new(Port::tcp(SWARM_GOSSIP_PORT), "swarm node gossip"),
        Opening::new(Port::udp(SWARM_GOSSIP_PORT), "swarm node gossip"),
        Opening::new(
            Port::udp(data_path_port),
            "swarm overlay data path (VXLAN, `swarm.data_path_port`)",
        ),
    ]
}

/// The swarm's ports (step 2), as [`swarm_openings`] lists them.
pub fn swarm_ports(data_path_port: u16) -> Vec<Port> {
    swarm_openings(data_path_port)
        .into_iter()
        .map(|o| o.port)
        .collect()
}

/// Step 5 item 6: PostgreSQL, Pgpool-II, PCP, watchdog and heartbeat.
pub fn database_openings(t: &Topology) -> Vec<Opening> {
    let p = &t.ports;
    vec![
        Opening::new(
            Port::tcp(p.postgres),
            "PostgreSQL (replication, Pgpool-II's backends)",
        ),
        Opening::new(
            Port::tcp(p.pgpool),
            "Pgpool-II (Kompira's database clients, on the VIP and each host)",
        ),
        Opening::new(Port::tcp(p.pcp), "Pgpool-II's PCP (control commands)"),
        Opening::new(Port::tcp(p.watchdog), "Pgpool-II watchdog"),
        Opening::new(Port::udp(p.heartbeat), "Pgpool-II watchdog heartbeat"),
    ]
}

/// glusterd's first brick port (`base-port` of `glusterd.vol`); each brick
/// process on a host takes the next free port from here.
pub const GLUSTER_FIRST_BRICK_PORT: u16 = 49152;

/// What a firewalld service that a step opens stands for on a host of `t`.
/// For `glusterfs` that is glusterd's ports and one port per brick on the
/// host: the volume has one brick on every host, so its brick process
/// listens on the first brick port (the service itself opens a whole range
/// of them).
pub fn service_openings(service: &str, t: &Topology) -> Vec<Opening> {
    match service {
        "glusterfs" => vec![
            Opening::new(Port::tcp(24007), "glusterd management (peers, mounts)"),
            Opening::new(Port::tcp(24008), "glusterd management (RDMA)"),
            Opening::new(
                Port::tcp(GLUSTER_FIRST_BRICK_PORT),
                format!(
                    "Gluster brick `{}` of volume `{}` (one port per brick, from {GLUSTER_FIRST_BRICK_PORT} up)",
                    t.shared_dir.brick, t.shared_dir.volume
                ),
            ),
        ],
        // Only services some step opens are described; a step that opens
        // another must describe it here (`tests/resolved.rs` checks).
        _ => Vec::new(),
    }
}

/// Ports the cluster needs on every host that no firewall step opens: sshd
/// (the procedure's firewalld zone already allows it) and the stack's
/// published ports, which Docker publishes itself.
pub fn unmanaged_openings(t: &Topology) -> Vec<Opening> {
    let nginx = match t.stack.nginx_port_mode {
        NginxPortMode::Ingress => "every host (`ingress`: the routing mesh)",
        NginxPortMode::Host => "hosts that run an nginx task (`host` mode)",
    };
    vec![
        Opening::new(
            Port::tcp(22),
            "sshd (`ke2lab install`; postgres's ssh between hosts for failover and online recovery)",
        ),
        Opening::new(
            Port::tcp(80),
            format!("nginx HTTP, redirected to HTTPS, on {nginx}"),
        ),
        Opening::new(Port::tcp(443), format!("nginx HTTPS (Kompira) on {nginx}")),
        Opening::new(
            Port::tcp(5671),
            "RabbitMQ AMQPS (the ke2-docker stack publishes it, `ingress`)",
        ),
    ]
}

/// Opens `ports` and `services` permanently and reloads, on hosts with
/// firewalld.
pub struct Firewall {
    pub purpose: &'static str,
    pub ports: Vec<Opening>,
    /// firewalld service names (`firewall-cmd --get-services`).
    pub services: Vec<&'static str>,
}

impl Firewall {
    /// Step 5 item 6: PostgreSQL, Pgpool-II, PCP, watchdog and heartbeat.
    pub fn for_database(cx: &Cx<'_>) -> Self {
        Self::database(cx.topology)
    }

    /// [`Firewall::for_database`] of a topology.
    pub fn database(t: &Topology) -> Self {
        Firewall {
            purpose: "pg-firewall",
            ports: database_openings(t),
            services: Vec::new(),
        }
    }

    pub fn for_swarm(cx: &Cx<'_>) -> Self {
        Self::swarm(cx.topology)
    }

    /// [`Firewall::for_swarm`] of a topology.
    pub fn swarm(t: &Topology) -> Self {
        Firewall {
            purpose: "firewall",
            ports: swarm_openings(t.data_path_port()),
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

    /// What this instance opens on a host of `t`: its ports, then what its
    /// services stand for.
    pub fn openings(&self, t: &Topology) -> Vec<Opening> {
        let mut all = self.ports.clone();
        for s in &self.services {
            all.extend(service_openings(s, t));
        }
        all
    }
}

/// The firewall instances the install runs for `t`, in its order
/// (`install::install`: the swarm's, Gluster's when the shared directory is
/// a Gluster volume, the database's).
pub fn firewalls(t: &Topology) -> Vec<Firewall> {
    let mut all = vec![Firewall::swarm(t)];
    if t.shared_dir.kind == SharedDirKind::Gluster {
        all.push(Firewall::for_gluster());
    }
    all.push(Firewall::database(t));
    all
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

    /// Changes and reloads the host's firewalld.
    fn host_wide(&self) -> bool {
        true
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
                    .map(|o| &o.port)
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
