//! What a topology resolves to, explained: the values the install will use
//! once every default and `auto` is resolved, how many host failures each
//! quorum of the cluster survives, and the ports a firewall team must open on
//! each host. `ke2lab check` prints it as a table, or as JSON with `--json`.
//!
//! Nothing here decides anything on its own: every value comes from the code
//! the install runs ([`Topology::data_path_port`], the firewall steps' port
//! lists in [`crate::steps::firewall`], the rendered `pgpool.conf`, the
//! rendered `synchronous_standby_names`, the stack step's options), so the
//! explanation cannot drift from what is installed.
//!
//! Invariant: one source of firewall ports. The per-host table is built from
//! [`firewall::firewalls`] (the instances the install runs) and
//! [`firewall::unmanaged_openings`], never from a list of its own.

use std::fmt::{self, Write as _};
use std::net::Ipv4Addr;

use serde::Serialize;

use crate::layout::Layout;
use crate::render::pg::{self, PgParams};
use crate::steps::firewall::{self, Opening};
use crate::steps::gluster::PING_TIMEOUT;
use crate::steps::stack::StackOptions;
use crate::topology::{
    DEFAULT_DATA_PATH_PORT, DataPathPort, NginxPortMode, Nic, Platform, SharedDirKind, Topology,
    VMXNET3_DATA_PATH_PORT, Validated, Warning,
};

/// The version of the JSON document; raised when a field changes meaning or
/// goes away (new fields may appear without it).
pub const SCHEMA_VERSION: u32 = 1;

/// Gluster's default `network.ping-timeout`, which the document keeps.
const GLUSTER_DEFAULT_PING_TIMEOUT: u32 = 42;

/// A topology resolved: the document `ke2lab check --json` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Resolved {
    pub schema_version: u32,
    pub cluster: String,
    /// The validation's warnings (legal but unwise choices).
    pub warnings: Vec<Warning>,
    pub hosts: Vec<ResolvedHost>,
    pub network: NetworkView,
    pub swarm: SwarmView,
    pub shared_dir: SharedDirView,
    pub postgres: PostgresView,
    pub pgpool: PgpoolView,
    pub stack: StackView,
    pub quorums: Quorums,
    /// Per host, in `hosts` order: every port it needs open.
    pub firewall: Vec<HostFirewall>,
}

/// One host, in `hosts` order (its index is its Pgpool-II node id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResolvedHost {
    pub node_id: usize,
    pub name: String,
    pub address: Ipv4Addr,
    pub platform: Platform,
    pub nic: Nic,
    /// The VIP's interface as configured (`hosts[i].interface`, else
    /// `network.interface`); `null`: detected on the host (the link that
    /// carries its address).
    pub interface: Option<String>,
    /// What the host is at install time.
    pub roles: Vec<&'static str>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NetworkView {
    /// The hosts' subnet, `network/prefix`.
    pub subnet: String,
    pub prefix: u8,
    /// Pgpool-II's virtual IP (`delegate_ip`), added with `prefix`.
    pub vip: Ipv4Addr,
    pub cluster_hba: String,
    pub kompira_hba: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SwarmView {
    /// Every host is a manager.
    pub managers: usize,
    /// The host that runs `docker swarm init`.
    pub initial_leader: String,
    /// The data-path port as written: `"auto"` or a number.
    pub data_path_port_setting: DataPathPort,
    /// The port `docker swarm init --data-path-port` gets (UDP).
    pub data_path_port: u16,
    /// Why that port, in words.
    pub data_path_port_reason: String,
    /// The hosts with a vmxnet3 NIC.
    pub vmxnet3_hosts: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SharedDirView {
    pub kind: SharedDirKind,
    /// `SHARED_DIR`: the mount point on every host.
    pub path: String,
    /// The rest only with `kind = "gluster"` (`null` for `existing`).
    pub volume: Option<String>,
    pub brick: Option<String>,
    /// One brick per host.
    pub replica: Option<usize>,
    /// `host:brick`, in `hosts` order (the replica set's order).
    pub bricks: Option<Vec<String>>,
    /// What each host mounts (`localhost:/<volume>`).
    pub mount_source: Option<String>,
    /// The volume's `network.ping-timeout` in seconds.
    pub ping_timeout_s: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PostgresView {
    /// `hosts[0]`, the primary of a fresh install.
    pub initial_primary: String,
    pub port: u16,
    pub database: String,
    pub archive_dir: String,
    pub max_connections: u32,
    /// `asynchronous` (the document) or `synchronous`.
    pub replication: &'static str,
    /// What the install sets, `null` when asynchronous.
    pub synchronous_standby_names: Option<String>,
    /// Standbys once every host runs: all hosts but the primary.
    pub standbys: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PgpoolView {
    pub vip: Ipv4Addr,
    pub port: u16,
    pub pcp_port: u16,
    pub watchdog_port: u16,
    /// UDP.
    pub heartbeat_port: u16,
    /// Watchdog members: every host.
    pub watchdog_members: usize,
    /// The consensus settings of the rendered `pgpool.conf`, as written.
    pub consensus: Vec<Setting>,
    /// The topology's `[pgpool]` lab deviations as written in
    /// `pgpool.conf`; empty for a real server's topology.
    pub lab_deviations: Vec<Setting>,
}

/// A `key = value` line of a rendered configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Setting {
    pub key: &'static str,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StackView {
    pub swarm_replicas: u32,
    pub nginx_port_mode: NginxPortMode,
    /// The stack's directories (`setup_stack.sh`'s variables), defaults
    /// resolved.
    pub kompira_log_dir: String,
    pub kompira_var_dir: String,
    pub kompira_ssl_dir: String,
    /// Where Kompira's containers reach the database (`DATABASE_URL` without
    /// its credentials).
    pub database_host: String,
    pub database_port: u16,
}

/// How many host failures each quorum of the cluster tolerates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Quorums {
    pub swarm_raft: Quorum,
    pub pgpool_watchdog: Quorum,
    /// `null` with an `existing` shared directory (not ke2lab's volume).
    pub gluster_client: Option<Quorum>,
    /// Commits on the primary and the standbys they wait for.
    pub postgres_commit: Quorum,
}

impl Quorums {
    /// In display order, with the ones that apply.
    pub fn all(&self) -> Vec<&Quorum> {
        let mut all = vec![&self.swarm_raft, &self.pgpool_watchdog];
        all.extend(self.gluster_client.as_ref());
        all.push(&self.postgres_commit);
        all
    }
}

/// One quorum: of `members`, `needed` must be up; so `tolerates` may fail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Quorum {
    /// What votes or confirms, in words.
    pub what: &'static str,
    pub members: usize,
    pub needed: usize,
    /// Members that may be lost, whichever they are (`members - needed`).
    pub tolerates: usize,
    /// Gluster with an even replica count only: members that may be lost
    /// while the first brick (`hosts[0]`'s) stays up, Gluster's tie-break.
    pub tolerates_if_first_up: Option<usize>,
    /// The rule and where it comes from.
    pub rule: String,
}

/// The ports one host needs open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostFirewall {
    pub host: String,
    /// Whether ke2lab manages the host's firewall (firewalld on `rhel9`);
    /// elsewhere it opens nothing and the ports are the operator's.
    pub firewalld: bool,
    pub ports: Vec<FirewallPort>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FirewallPort {
    /// A port or a range (`49152-49153`).
    pub port: String,
    pub proto: &'static str,
    pub purpose: String,
    /// The firewall step that opens it on this host; `null` where ke2lab
    /// opens it nowhere (a host without firewalld, sshd, the stack's
    /// published ports).
    pub opened_by: Option<&'static str>,
}

impl Resolved {
    /// A topology that passed validation, resolved; its warnings come along.
    pub fn of_validated(v: &Validated) -> Self {
        Resolved {
            warnings: v.warnings.clone(),
            ..Resolved::of(&v.topology)
        }
    }

    /// A topology resolved (`warnings` left empty). The topology must have
    /// passed [`Topology::validate`]: one without hosts has no primary.
    pub fn of(t: &Topology) -> Self {
        let n = t.hosts.len();
        let gluster = t.shared_dir.kind == SharedDirKind::Gluster;
        let hosts = t
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let mut roles = vec!["swarm manager"];
                if i == 0 {
                    roles.push("initial swarm leader");
                    roles.push("initial postgres primary");
                } else {
                    roles.push("postgres standby");
                }
                roles.push("pgpool watchdog member");
                if gluster {
                    roles.push("gluster brick");
                }
                ResolvedHost {
                    node_id: i,
                    name: h.name.clone(),
                    address: h.address,
                    platform: h.platform,
                    nic: h.nic,
                    interface: t.interface_for(h).map(str::to_string),
                    roles,
                }
            })
            .collect();

        let vmxnet3_hosts: Vec<String> = t
            .hosts
            .iter()
            .filter(|h| h.nic == Nic::Vmxnet3)
            .map(|h| h.name.clone())
            .collect();
        let data_path_port = t.data_path_port();
        let data_path_port_reason = match t.swarm.data_path_port {
            DataPathPort::Auto if vmxnet3_hosts.is_empty() => format!(
                "`auto`: no host has a vmxnet3 nic, so Docker's default {DEFAULT_DATA_PATH_PORT}"
            ),
            DataPathPort::Auto => format!(
                "`auto`: {} {} a vmxnet3 nic, whose VXLAN checksum offload loses TCP on \
                 {DEFAULT_DATA_PATH_PORT}, so {VMXNET3_DATA_PATH_PORT}",
                backticked(&vmxnet3_hosts),
                if vmxnet3_hosts.len() == 1 {
                    "has"
                } else {
                    "have"
                }
            ),
            DataPathPort::Port(p) => format!("explicit `swarm.data_path_port = {p}`"),
        };

        let spec = &t.shared_dir;
        let shared_dir = SharedDirView {
            kind: spec.kind,
            path: spec.path.clone(),
            volume: gluster.then(|| spec.volume.clone()),
            brick: gluster.then(|| spec.brick.clone()),
            replica: gluster.then_some(n),
            bricks: gluster.then(|| {
                t.hosts
                    .iter()
                    .map(|h| format!("{}:{}", h.name, spec.brick))
                    .collect()
            }),
            mount_source: gluster.then(|| format!("localhost:/{}", spec.volume)),
            ping_timeout_s: gluster
                .then(|| spec.ping_timeout.unwrap_or(GLUSTER_DEFAULT_PING_TIMEOUT)),
        };

        let synchronous = t.postgres.synchronous;
        let standby_names = synchronous.then(|| pg::synchronous_standby_names(t));
        let postgres = PostgresView {
            initial_primary: t.primary().name.clone(),
            port: t.ports.postgres,
            database: t.postgres.database.clone(),
            archive_dir: t.postgres.archive_dir.clone(),
            max_connections: t.postgres.max_connections,
            replication: if synchronous {
                "synchronous"
            } else {
                "asynchronous"
            },
            synchronous_standby_names: standby_names.clone(),
            standbys: n - 1,
        };

        let consensus = consensus_settings(t);
        let pgpool = PgpoolView {
            vip: t.network.vip,
            port: t.ports.pgpool,
            pcp_port: t.ports.pcp,
            watchdog_port: t.ports.watchdog,
            heartbeat_port: t.ports.heartbeat,
            watchdog_members: n,
            consensus: consensus.clone(),
            lab_deviations: t
                .pgpool
                .settings()
                .into_iter()
                .map(|(key, value)| Setting {
                    key,
                    value: value.to_string(),
                })
                .chain(t.pgpool.ranked_priorities(n).map(|value| Setting {
                    key: "wd_priority",
                    value,
                }))
                .collect(),
        };

        let opts = StackOptions::from_topology(t, "");
        let stack = StackView {
            swarm_replicas: t.stack.swarm_replicas,
            nginx_port_mode: t.stack.nginx_port_mode,
            kompira_log_dir: opts.log_dir(),
            kompira_var_dir: opts.var_dir(),
            kompira_ssl_dir: opts.ssl_dir(),
            database_host: opts.database_host.clone(),
            database_port: opts.database_port,
        };

        Resolved {
            schema_version: SCHEMA_VERSION,
            cluster: t.cluster.name.clone(),
            warnings: Vec::new(),
            hosts,
            network: NetworkView {
                subnet: t.subnet().to_string(),
                prefix: t.network.prefix,
                vip: t.network.vip,
                cluster_hba: t.network.cluster_hba.clone(),
                kompira_hba: t.network.kompira_hba.clone(),
            },
            swarm: SwarmView {
                managers: n,
                initial_leader: t.primary().name.clone(),
                data_path_port_setting: t.swarm.data_path_port,
                data_path_port,
                data_path_port_reason,
                vmxnet3_hosts,
            },
            shared_dir,
            postgres,
            pgpool,
            stack,
            quorums: Quorums {
                swarm_raft: raft(n),
                pgpool_watchdog: watchdog(n, &consensus),
                gluster_client: gluster.then(|| gluster_client(n)),
                postgres_commit: postgres_commit(n, standby_names.as_deref()),
            },
            firewall: host_firewalls(t),
        }
    }

    /// The document as pretty-printed JSON (what `check --json` prints).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the resolved document always serialises")
    }
}

/// `` `a`, `b` and `c` ``.
fn backticked(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// A strict majority of `n`.
fn majority(n: usize) -> usize {
    n / 2 + 1
}

/// Swarm's Raft: every host is a manager, and the managers keep the swarm
/// (scheduling, joins, `docker node`/`service` commands) only while a
/// majority of them is reachable.
fn raft(n: usize) -> Quorum {
    let needed = majority(n);
    Quorum {
        what: "swarm managers (Raft)",
        members: n,
        needed,
        tolerates: n - needed,
        tolerates_if_first_up: None,
        rule: "a majority of the managers (more than half) must be reachable; every host \
               is a manager"
            .to_string(),
    }
}

/// The consensus lines of the `pgpool.conf` block the install writes. The
/// block is rendered here as the install renders it; the interface and
/// prefix only shape the VIP commands, not these lines.
fn consensus_settings(t: &Topology) -> Vec<Setting> {
    const KEYS: [&str; 4] = [
        "failover_when_quorum_exists",
        "failover_require_consensus",
        "allow_multiple_failover_requests_from_node",
        "enable_consensus_with_half_votes",
    ];
    let conf = pg::pgpool_conf(&PgParams {
        topology: t,
        layout: Layout::of(t.primary().platform),
        interface: "eth0",
        prefix: t.network.prefix,
        node: 0,
    });
    KEYS.iter()
        .filter_map(|&key| {
            conf.lines().find_map(|line| {
                let (k, v) = line.split_once('=')?;
                (k.trim() == key).then(|| Setting {
                    key,
                    value: v.trim().to_string(),
                })
            })
        })
        .collect()
}

fn setting<'a>(settings: &'a [Setting], key: &str) -> Option<&'a str> {
    settings
        .iter()
        .find(|s| s.key == key)
        .map(|s| s.value.as_str())
}

/// The Pgpool-II watchdog. With `enable_consensus_with_half_votes = off`
/// both the quorum and a failover's consensus need "at least one more vote
/// than half of the total votes" (Pgpool-II's `pgpool.conf.sample`); with it
/// on, half suffices in a cluster of an even count. An odd count is the
/// same either way.
fn watchdog(n: usize, consensus: &[Setting]) -> Quorum {
    let half_votes = setting(consensus, "enable_consensus_with_half_votes") == Some("on");
    let needed = if half_votes && n.is_multiple_of(2) {
        n / 2
    } else {
        majority(n)
    };
    let votes = if half_votes {
        "half of the members suffice with an even count (`enable_consensus_with_half_votes = on`)"
    } else {
        "more than half of the members alive (`enable_consensus_with_half_votes = off`)"
    };
    let failover = match setting(consensus, "failover_require_consensus") {
        Some("on") => {
            "; a failover needs as many members' votes (`failover_require_consensus = on`)"
        }
        _ => "",
    };
    Quorum {
        what: "Pgpool-II watchdog",
        members: n,
        needed,
        tolerates: n - needed,
        tolerates_if_first_up: None,
        rule: format!("quorum: {votes}{failover}"),
    }
}

/// Gluster's client quorum (AFR). The gluster step sets no
/// `cluster.quorum-type` (only the lab's `network.ping-timeout`), so AFR's
/// default holds: `auto` once a replica has more than two bricks. Quorum is
/// then more than half of the bricks up, or exactly half when the first
/// brick is among them (AFR's tie-break for even counts); without it the
/// replica set fails every operation with `ENOTCONN` (Gluster >= 3.13).
fn gluster_client(n: usize) -> Quorum {
    let needed = majority(n);
    let even = n.is_multiple_of(2);
    Quorum {
        what: "Gluster client quorum",
        members: n,
        needed,
        tolerates: n - needed,
        tolerates_if_first_up: even.then_some(n / 2),
        rule: format!(
            "`cluster.quorum-type` left at its default, `auto` for replica {n}: writes need \
             more than half of the bricks up{}; below that the mount fails every operation \
             with `ENOTCONN`",
            if even {
                ", or exactly half including the first brick"
            } else {
                ""
            }
        ),
    }
}

/// Commits on the primary. Asynchronous (the document): a commit waits for
/// no standby. Synchronous: `ANY 1 (<every host>)`, so a commit waits for one
/// standby's confirmation; only losing every standby blocks commits.
fn postgres_commit(n: usize, standby_names: Option<&str>) -> Quorum {
    let standbys = n - 1;
    match standby_names {
        None => Quorum {
            what: "PostgreSQL commits (standbys confirming)",
            members: standbys,
            needed: 0,
            tolerates: standbys,
            tolerates_if_first_up: None,
            rule: "asynchronous replication: a commit waits for no standby (a failover can \
                   lose the commits not yet streamed)"
                .to_string(),
        },
        Some(names) => Quorum {
            what: "PostgreSQL commits (standbys confirming)",
            members: standbys,
            needed: 1,
            tolerates: standbys - 1,
            tolerates_if_first_up: None,
            rule: format!(
                "`synchronous_standby_names = '{names}'` (every host, so it holds for any \
                 primary): each commit waits for one standby; losing all {standbys} standbys \
                 blocks commits"
            ),
        },
    }
}

/// Every host's ports, from the firewall steps' own lists: sshd first, then
/// what each firewall instance opens, then the stack's published ports.
fn host_firewalls(t: &Topology) -> Vec<HostFirewall> {
    let unmanaged = firewall::unmanaged_openings(t);
    let (sshd, stack) = unmanaged.split_at(1);
    t.hosts
        .iter()
        .map(|h| {
            let firewalld = h.platform.has_firewalld();
            let row = |o: &Opening, step: Option<&'static str>| FirewallPort {
                port: o.port.port.clone(),
                proto: o.port.proto,
                purpose: o.purpose.clone(),
                opened_by: step.filter(|_| firewalld),
            };
            let mut ports: Vec<FirewallPort> = sshd.iter().map(|o| row(o, None)).collect();
            for fw in firewall::firewalls(t) {
                ports.extend(fw.openings(t).iter().map(|o| row(o, Some(fw.purpose))));
            }
            ports.extend(stack.iter().map(|o| row(o, None)));
            HostFirewall {
                host: h.name.clone(),
                firewalld,
                ports,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The text rendering
// ---------------------------------------------------------------------------

/// Left-aligned columns two spaces apart, each as wide as its widest cell,
/// indented by two; no trailing spaces.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::from("  ");
        for (cell, w) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<w$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `key  value` lines, keys padded to one width.
fn pairs(items: &[(&str, String)]) -> String {
    let width = items.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in items {
        let _ = writeln!(out, "  {k:<width$}  {v}");
    }
    out
}

fn or_dash<T: fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

impl fmt::Display for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.hosts.len();
        writeln!(f, "cluster `{}`: {n} hosts", self.cluster)?;
        let rows: Vec<Vec<String>> = self
            .hosts
            .iter()
            .map(|h| {
                vec![
                    h.node_id.to_string(),
                    h.name.clone(),
                    h.address.to_string(),
                    h.platform.to_string(),
                    h.nic.to_string(),
                    h.interface.clone().unwrap_or_else(|| "(detect)".into()),
                    h.roles.join(", "),
                ]
            })
            .collect();
        f.write_str(&table(
            &[
                "node",
                "host",
                "address",
                "platform",
                "nic",
                "vip iface",
                "roles",
            ],
            &rows,
        ))?;

        writeln!(f, "\nnetwork")?;
        let net = &self.network;
        f.write_str(&pairs(&[
            ("subnet", net.subnet.clone()),
            (
                "vip",
                format!("{}/{} (Pgpool-II `delegate_ip`)", net.vip, net.prefix),
            ),
            ("cluster hba", net.cluster_hba.clone()),
            ("kompira hba", net.kompira_hba.clone()),
        ]))?;

        writeln!(f, "\nswarm")?;
        let s = &self.swarm;
        f.write_str(&pairs(&[
            ("managers", format!("{} (every host)", s.managers)),
            ("initial leader", s.initial_leader.clone()),
            (
                "data-path port",
                format!("{}/udp ({})", s.data_path_port, s.data_path_port_reason),
            ),
        ]))?;

        writeln!(f, "\nshared directory")?;
        let d = &self.shared_dir;
        let mut items = vec![
            ("kind", d.kind.to_string()),
            ("path", format!("{} (`SHARED_DIR`, on every host)", d.path)),
        ];
        if d.kind == SharedDirKind::Gluster {
            items.push((
                "volume",
                format!(
                    "{}, replica {}",
                    or_dash(d.volume.as_ref()),
                    or_dash(d.replica)
                ),
            ));
            items.push((
                "brick",
                format!("{} on every host", or_dash(d.brick.as_ref())),
            ));
            items.push((
                "mount",
                format!("{} on {}", or_dash(d.mount_source.as_ref()), d.path),
            ));
            let ping = d.ping_timeout_s.unwrap_or(GLUSTER_DEFAULT_PING_TIMEOUT);
            let note = if ping == GLUSTER_DEFAULT_PING_TIMEOUT {
                "Gluster's default".to_string()
            } else {
                format!("lab deviation, Gluster's default is {GLUSTER_DEFAULT_PING_TIMEOUT}s")
            };
            items.push((
                "ping timeout",
                format!("{ping}s (`{PING_TIMEOUT}`, {note})"),
            ));
        } else {
            items.push((
                "volume",
                "none (an existing file server mounted on every host)".into(),
            ));
        }
        f.write_str(&pairs(&items))?;

        writeln!(f, "\npostgres")?;
        let p = &self.postgres;
        f.write_str(&pairs(&[
            (
                "initial primary",
                format!("{} (node 0), {} standbys", p.initial_primary, p.standbys),
            ),
            ("port", p.port.to_string()),
            ("database", p.database.clone()),
            ("archive dir", format!("{} (on each host)", p.archive_dir)),
            ("max connections", p.max_connections.to_string()),
            (
                "replication",
                match &p.synchronous_standby_names {
                    Some(names) => format!("synchronous (`synchronous_standby_names = '{names}'`)"),
                    None => "asynchronous (the document's streaming replication)".into(),
                },
            ),
        ]))?;

        writeln!(f, "\npgpool")?;
        let g = &self.pgpool;
        let consensus: Vec<String> = g
            .consensus
            .iter()
            .map(|s| format!("{} = {}", s.key, s.value))
            .collect();
        f.write_str(&pairs(&[
            ("vip", g.vip.to_string()),
            ("port", g.port.to_string()),
            ("pcp port", g.pcp_port.to_string()),
            ("watchdog port", g.watchdog_port.to_string()),
            ("heartbeat port", format!("{}/udp", g.heartbeat_port)),
            (
                "watchdog",
                format!("{} members (every host)", g.watchdog_members),
            ),
            ("consensus", consensus.join(", ")),
            (
                "lab deviations",
                if g.lab_deviations.is_empty() {
                    "none (the document's settings)".into()
                } else {
                    g.lab_deviations
                        .iter()
                        .map(|s| format!("{} = {}", s.key, s.value))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            ),
        ]))?;

        writeln!(f, "\nstack")?;
        let k = &self.stack;
        f.write_str(&pairs(&[
            ("swarm replicas", k.swarm_replicas.to_string()),
            ("nginx port mode", k.nginx_port_mode.to_string()),
            ("KOMPIRA_LOG_DIR", k.kompira_log_dir.clone()),
            ("KOMPIRA_VAR_DIR", k.kompira_var_dir.clone()),
            ("KOMPIRA_SSL_DIR", k.kompira_ssl_dir.clone()),
            (
                "database",
                format!(
                    "{}:{} (`DATABASE_HOST`: each node's own Pgpool-II)",
                    k.database_host, k.database_port
                ),
            ),
        ]))?;

        writeln!(f, "\nhost failures tolerated")?;
        let rows: Vec<Vec<String>> = self
            .quorums
            .all()
            .into_iter()
            .map(|q| {
                let tolerates = match q.tolerates_if_first_up {
                    Some(first) => format!("{} ({first} if hosts[0] stays up)", q.tolerates),
                    None => q.tolerates.to_string(),
                };
                vec![
                    q.what.to_string(),
                    q.members.to_string(),
                    q.needed.to_string(),
                    tolerates,
                    q.rule.clone(),
                ]
            })
            .collect();
        f.write_str(&table(
            &["quorum", "members", "needed", "tolerates", "rule"],
            &rows,
        ))?;

        writeln!(f, "\nports to open")?;
        let rows: Vec<Vec<String>> = self
            .firewall
            .iter()
            .flat_map(|h| {
                h.ports.iter().map(|p| {
                    vec![
                        h.host.clone(),
                        p.port.clone(),
                        p.proto.to_string(),
                        p.opened_by.unwrap_or("-").to_string(),
                        p.purpose.clone(),
                    ]
                })
            })
            .collect();
        f.write_str(&table(
            &["host", "port", "proto", "opened by", "purpose"],
            &rows,
        ))?;
        let unmanaged: Vec<&str> = self
            .firewall
            .iter()
            .filter(|h| !h.firewalld)
            .map(|h| h.host.as_str())
            .collect();
        if !unmanaged.is_empty() {
            writeln!(
                f,
                "  ke2lab manages no firewall on {} (no firewalld): open these where a \
                 firewall filters",
                backticked(&unmanaged.iter().map(|h| h.to_string()).collect::<Vec<_>>())
            )?;
        }
        if !self.warnings.is_empty() {
            writeln!(f, "\nwarnings")?;
            for w in &self.warnings {
                writeln!(f, "  {w}")?;
            }
        }
        Ok(())
    }
}
