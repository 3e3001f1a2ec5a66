//! The whole cluster as one typed view: [`Cluster`] holds a topology, its
//! hosts and its credentials (resolved once, by the caller), answers the
//! questions callers used to wrap each their own way (the VIP's holders,
//! the watchdog, `show pool_nodes`, the stack's CA and HTTPS), and reads
//! everything at once into a [`Snapshot`]: swarm nodes and managers, Gluster
//! peers, volume, bricks, mounts and heal counts, PostgreSQL per node, the
//! Pgpool-II view with its decision, the stack's services and HTTPS when
//! deployed.
//!
//! Every probe runs under its own deadline ([`PROBE_DEADLINE`]); a probe
//! that fails becomes a [`ProbeFailure`] naming host and probe, never a
//! failed snapshot. [`verdict`] is a pure function of a snapshot: every
//! unhealthy fact, with the host it concerns.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};

use crate::cluster::pgpool::{self as view, Decision, Member, PgState, PgpoolView, Replica};
use crate::host::{Cmd, Host, TRANSPORT_GRACE};
use crate::layout::Layout;
use crate::probe::pgpool::{NodeInfo, PoolNode, WatchdogInfo, WatchdogNode};
use crate::probe::swarm::{Availability, LocalNodeState, ManagerStatus, NodeStatus};
use crate::probe::{ProbeError, gluster, http, net, stack, swarm};
use crate::topology::{Credentials, SharedDirKind, Topology};

/// The snapshot's JSON schema version (`docs/status.schema.json`): raised
/// when a field changes meaning or goes away; new fields keep it.
pub const SNAPSHOT_VERSION: u32 = 1;

/// The limit of one probe of a snapshot (one command, one connection).
pub const PROBE_DEADLINE: Duration = Duration::from_secs(10);

/// The limit of one `show pool_nodes` through Pgpool-II. A child that
/// answers its first client after a failover first discards its pooled
/// backend connections and connects anew, and one to a host cut off by a
/// partition costs Pgpool-II's `connect_timeout` (the document leaves the
/// default, 10 s). Cut at 10 s, every poll after a partition gave up just
/// before its answer, each time on another of the 32 stale children, for
/// five minutes (the partition scenario's evidence); this leaves the
/// connect timeout, the query and the client's own 5 s connection room.
pub const POOL_NODES_DEADLINE: Duration = Duration::from_secs(30);

/// What a probe may take in all: its command's deadline, then the
/// transport's grace. A guard for probes that are not one command (a TLS
/// exchange, a file read).
const PROBE_GUARD: Duration =
    Duration::from_secs(PROBE_DEADLINE.as_secs() + TRANSPORT_GRACE.as_secs() + 2);

/// One cluster: the topology, a host per topology host (same order) and
/// the credentials, resolved once by the caller. Credentials that could
/// not be resolved are kept as the reason: the questions that need a
/// password fail with it, the others (HTTPS, the swarm, Gluster) are still
/// answered, so an unreadable secrets file never blinds `status`.
#[derive(Clone)]
pub struct Cluster {
    topology: Topology,
    hosts: Vec<Arc<dyn Host>>,
    credentials: Result<Credentials, String>,
}

/// The stack's local CA certificate and the name its server certificate
/// carries: read once, then used for every HTTPS probe.
#[derive(Clone, Debug)]
pub struct StackCa {
    pub pem: Vec<u8>,
    pub server_name: String,
}

/// Everything a snapshot read, as plain data (see `docs/status.schema.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// [`SNAPSHOT_VERSION`].
    pub version: u32,
    /// The topology's cluster name.
    pub cluster: String,
    pub vip: Ipv4Addr,
    /// One per topology host, in its order.
    pub hosts: Vec<HostFacts>,
    /// The swarm as the first manager that answered sees it; `None` when
    /// none did (see `errors`).
    pub swarm: Option<SwarmFacts>,
    /// `None` when the shared directory is not Gluster's, or no host's
    /// glusterd answered (see `errors`).
    pub gluster: Option<GlusterFacts>,
    pub pgpool: PgpoolFacts,
    /// `None` when the stack is not deployed (or the swarm did not answer).
    pub stack: Option<StackFacts>,
    /// Every probe that failed, with its host.
    pub errors: Vec<ProbeFailure>,
}

/// What one host says of itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    pub name: String,
    pub address: Ipv4Addr,
    /// `docker info`'s swarm part; `None` when the probe failed.
    pub swarm: Option<LocalSwarm>,
    /// The Gluster pool as this host's glusterd sees it (itself included);
    /// `None` without Gluster or when the probe failed.
    pub gluster_peers: Option<Vec<PeerFacts>>,
    /// What is mounted at the shared directory; `None` without Gluster or
    /// when the probe failed.
    pub shared_mount: Option<MountFacts>,
    /// PostgreSQL's own answer (`pg_is_in_recovery()`).
    pub postgres: PgState,
    /// Its row of `pg_stat_replication` on the primary (standbys only).
    pub replication: Option<Replica>,
    /// Whether an interface of the host carries the VIP; `None` when the
    /// probe failed.
    pub holds_vip: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalSwarm {
    pub state: LocalNodeState,
    pub control_available: bool,
    /// The engine's swarm error, empty when none.
    pub error: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerFacts {
    /// `localhost` for the host itself.
    pub hostname: String,
    pub connected: bool,
    /// `local`, `in_cluster`, `rejected`, or glusterd's own text.
    pub state: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountFacts {
    pub path: String,
    /// A `fuse.glusterfs` mount is there.
    pub mounted: bool,
    /// The mount's source and type, empty when nothing is mounted.
    pub source: String,
    pub fstype: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmFacts {
    /// The manager that answered `docker node ls`.
    pub asked: String,
    pub nodes: Vec<SwarmNodeFacts>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmNodeFacts {
    pub hostname: String,
    pub status: NodeStatus,
    pub availability: Availability,
    /// `None` for a worker.
    pub manager: Option<ManagerStatus>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlusterFacts {
    pub volume: String,
    /// The host whose glusterd answered the volume's probes.
    pub asked: String,
    /// `false`: `volume info` knows no such volume.
    pub exists: bool,
    /// `Created`, `Started` or `Stopped`; `None` when it does not exist.
    pub state: Option<String>,
    pub replica: u32,
    /// Every brick of `volume info`, online as `volume status` says (a
    /// brick whose peer is unreachable is not listed there: offline).
    pub bricks: Vec<BrickFacts>,
    /// `volume heal info`, per brick; empty when not started.
    pub heal: Vec<HealFacts>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrickFacts {
    pub host: String,
    pub path: String,
    pub online: bool,
    pub port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealFacts {
    pub host: String,
    pub path: String,
    /// `Connected`, or why the brick could not be asked.
    pub status: String,
    /// Entries pending heal; `None` when the brick could not be asked.
    pub pending: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgpoolFacts {
    /// The watchdog leader ([`view::leader_of`]); `None` without quorum.
    pub leader: Option<String>,
    /// The watchdog's quorum as the VIP's Pgpool-II states it; `None` when
    /// the VIP did not answer.
    pub quorum: Option<bool>,
    /// The hosts whose interfaces carry the VIP (exactly one when healthy).
    pub vip_holders: Vec<String>,
    /// [`view::decide`] over `view`.
    pub decision: Decision,
    /// The whole view: every member's watchdog and backend list, the VIP's
    /// watchdog, PostgreSQL per node, `pg_stat_replication`.
    pub view: PgpoolView,
    /// `show pool_nodes` through the VIP, the clients' view; `None` when it
    /// could not be asked (see `errors`).
    pub pool_nodes: Option<Vec<PoolNode>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackFacts {
    /// The stack's namespace (`ke2`).
    pub name: String,
    pub services: Vec<ServiceFacts>,
    /// `GET /` over HTTPS on each host's 443, verified against the stack's
    /// local CA; empty when the CA could not be read (see `errors`).
    pub https: Vec<HttpsFacts>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceFacts {
    pub name: String,
    pub mode: String,
    pub image: String,
    /// `running/desired` as `docker service ls` prints it.
    pub replicas: String,
    pub converged: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpsFacts {
    pub host: String,
    /// Whether this host is meant to answer: every host when nginx
    /// publishes through the ingress mesh, only the nodes running an nginx
    /// task when it publishes in `host` mode (with fewer replicas than
    /// hosts, the others have no listener).
    pub serves: bool,
    /// The HTTP status; `None` when there was no answer.
    pub status: Option<u16>,
    /// Why there was no answer.
    pub error: Option<String>,
}

/// A probe that failed: on which host, which probe, why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeFailure {
    pub host: String,
    pub probe: String,
    pub error: String,
}

/// One unhealthy fact of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The host it concerns, when one does.
    pub host: Option<String>,
    /// `probe`, `swarm`, `gluster`, `postgres`, `pgpool` or `stack`.
    pub area: String,
    /// What is wrong, naming the host or the volume, service or VIP.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A probe's answer or why there was none, as text naming host and probe.
type Probed<T> = Result<T, String>;

/// Runs `cmd` on `h` under [`PROBE_DEADLINE`] and parses its stdout.
async fn ask<T>(
    h: &dyn Host,
    cmd: Cmd,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Probed<T> {
    let out = cmd
        .deadline(PROBE_DEADLINE)
        .check(h)
        .await
        .map_err(|e| e.to_string())?;
    parse(&out.stdout_lossy())
}

/// Gluster's `--xml` answer: the CLI's own failure verdict is the error.
fn xml<T>(
    parse: impl FnOnce(&str) -> Result<T, gluster::XmlError>,
) -> impl FnOnce(&str) -> Result<T, String> {
    move |s| parse(s).map_err(|e| e.to_string())
}

fn parsed<T>(
    parse: impl FnOnce(&str) -> Result<T, ProbeError>,
) -> impl FnOnce(&str) -> Result<T, String> {
    move |s| parse(s).map_err(|e| e.to_string())
}

/// A future bounded by [`PROBE_GUARD`].
async fn guarded<T>(what: &str, f: impl std::future::Future<Output = Probed<T>>) -> Probed<T> {
    tokio::time::timeout(PROBE_GUARD, f)
        .await
        .unwrap_or_else(|_| Err(format!("`{what}`: no answer within {PROBE_GUARD:?}")))
}

impl Cluster {
    /// `hosts` in the topology's order; `credentials` as resolved for this
    /// cluster (explicit, kept or document defaults), once.
    pub fn new(topology: Topology, hosts: Vec<Arc<dyn Host>>, credentials: Credentials) -> Self {
        Cluster {
            topology,
            hosts,
            credentials: Ok(credentials),
        }
    }

    /// A cluster whose credentials could not be resolved (`why`, e.g. an
    /// unreadable secrets file): every question that needs a password
    /// fails with `why`, every other is answered as usual.
    pub fn without_credentials(
        topology: Topology,
        hosts: Vec<Arc<dyn Host>>,
        why: impl Into<String>,
    ) -> Self {
        Cluster {
            topology,
            hosts,
            credentials: Err(why.into()),
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    pub fn hosts(&self) -> &[Arc<dyn Host>] {
        &self.hosts
    }

    /// The credentials, or why they could not be resolved.
    pub fn credentials(&self) -> Result<&Credentials, ProbeError> {
        self.credentials
            .as_ref()
            .map_err(|why| ProbeError::Unreachable {
                what: "the cluster's credentials".into(),
                detail: why.clone(),
            })
    }

    fn index_of(&self, name: &str) -> Result<usize, ProbeError> {
        self.topology
            .hosts
            .iter()
            .position(|h| h.name == name)
            .ok_or_else(|| ProbeError::Unreachable {
                what: format!("host `{name}`"),
                detail: "not a host of the topology".into(),
            })
    }

    /// The Pgpool-II view (every member, the VIP, PostgreSQL), read now.
    pub async fn pgpool_view(&self) -> PgpoolView {
        view::observe(&self.topology, &self.hosts).await
    }

    /// `pcp_watchdog_info` as the Pgpool-II of host `name` sees the cluster.
    pub async fn watchdog_info_from(&self, name: &str) -> Result<WatchdogInfo, ProbeError> {
        let i = self.index_of(name)?;
        let l = Layout::of(self.topology.hosts[i].platform);
        crate::probe::pgpool::watchdog_info(
            self.hosts[i].as_ref(),
            self.topology.ports.pcp,
            &l.in_home(".pcppass"),
        )
        .await
    }

    /// `pcp_watchdog_info` from the first host whose Pgpool-II answers.
    pub async fn watchdog_info(&self) -> Result<WatchdogInfo, ProbeError> {
        let mut last = None;
        for spec in &self.topology.hosts {
            match self.watchdog_info_from(&spec.name).await {
                Ok(w) => return Ok(w),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| ProbeError::Unreachable {
            what: "pcp_watchdog_info".into(),
            detail: "the topology has no host".into(),
        }))
    }

    /// The hosts whose interfaces carry the VIP, every host asked at once.
    pub async fn vip_holders(&self) -> Result<Vec<String>, ProbeError> {
        let vip = self.topology.network.vip;
        let held = futures_util::future::try_join_all(self.hosts.iter().map(|h| async move {
            let out = net::addr_cmd()
                .deadline(PROBE_DEADLINE)
                .check(h.as_ref())
                .await?;
            Ok::<_, ProbeError>(net::holds(&net::parse_links(&out.stdout_lossy())?, vip))
        }))
        .await?;
        Ok(self
            .topology
            .hosts
            .iter()
            .zip(held)
            .filter(|(_, held)| *held)
            .map(|(h, _)| h.name.clone())
            .collect())
    }

    /// `show pool_nodes` asked of the Pgpool-II listening at `addr` (the VIP
    /// for the clients' view, a host's address for that member's).
    /// The connection has 5 s; the whole question [`POOL_NODES_DEADLINE`]
    /// (a Pgpool-II that accepts and then waits for its backends would hold
    /// a caller's poll otherwise).
    pub async fn pool_nodes_at(&self, addr: Ipv4Addr) -> Result<Vec<PoolNode>, ProbeError> {
        let port = self.topology.ports.pgpool;
        let password = self.credentials()?.pgpool.expose();
        let ask = crate::probe::pgpool::show_pool_nodes(
            addr,
            port,
            "pgpool",
            password,
            Duration::from_secs(5),
        );
        tokio::time::timeout(POOL_NODES_DEADLINE, ask)
            .await
            .unwrap_or_else(|_| {
                Err(ProbeError::Unreachable {
                    what: format!("{addr}:{port}"),
                    detail: format!(
                        "`show pool_nodes` unanswered within {}s",
                        POOL_NODES_DEADLINE.as_secs()
                    ),
                })
            })
    }

    /// The local CA certificate (PEM) step 8 made, read from the shared SSL
    /// directory on the stack's manager, and the name its server
    /// certificate carries (the manager's host name, as `create-cert.sh`
    /// makes it).
    pub async fn stack_ca(&self) -> Result<StackCa, ProbeError> {
        use crate::steps::checkout::DEFAULT_DEST;
        use crate::steps::stack::StackOptions;
        let opts = StackOptions::from_topology(&self.topology, DEFAULT_DEST);
        let path = format!("{}/local-ca.crt", opts.ssl_dir());
        let h = &self.hosts[opts.manager];
        let out = Cmd::new(["cat", "--"])
            .arg(&path)
            .deadline(PROBE_DEADLINE)
            .check(h.as_ref())
            .await?;
        Ok(StackCa {
            pem: out.stdout,
            server_name: self.topology.hosts[opts.manager].name.clone(),
        })
    }

    /// `GET path` over HTTPS on port 443 of every host, verified against
    /// the stack's local CA; one result per host, in topology order.
    pub async fn https_each(
        &self,
        ca: &StackCa,
        path: &str,
        timeout: Duration,
    ) -> Vec<(String, Result<http::Response, ProbeError>)> {
        let (ca, server_name) = (&ca.pem, &ca.server_name);
        join_all(self.topology.hosts.iter().map(|h| async move {
            let addr = SocketAddr::from((h.address, 443));
            let r = http::https_get(addr, server_name, ca, path, timeout).await;
            (h.name.clone(), r)
        }))
        .await
    }

    /// `GET path` over plain HTTP on port 80 of every host.
    pub async fn http_each(
        &self,
        path: &str,
        timeout: Duration,
    ) -> Vec<(String, Result<http::Response, ProbeError>)> {
        join_all(self.topology.hosts.iter().map(|h| async move {
            let addr = SocketAddr::from((h.address, 80));
            let r = http::http_get(addr, &h.name, path, timeout).await;
            (h.name.clone(), r)
        }))
        .await
    }

    /// Reads everything at once. Never fails: a probe that does becomes an
    /// entry of `errors` naming its host and itself.
    pub async fn snapshot(&self) -> Snapshot {
        let t = &self.topology;
        let gluster_on = t.shared_dir.kind == SharedDirKind::Gluster;
        let mut errors = Vec::new();
        let mut note = |host: &str, probe: &str, r: &Probed<()>| {
            if let Err(e) = r {
                errors.push(ProbeFailure {
                    host: host.to_string(),
                    probe: probe.to_string(),
                    error: e.clone(),
                });
            }
        };

        let per_host = join_all(self.hosts.iter().map(|h| self.host_probes(h.as_ref())));
        let (per_host, pgpool_view, swarm, gluster_volume, pool_nodes) = tokio::join!(
            per_host,
            self.pgpool_view(),
            self.swarm_nodes(),
            async {
                if gluster_on {
                    Some(self.gluster_volume().await)
                } else {
                    None
                }
            },
            // Bounded by its own, longer deadline (see POOL_NODES_DEADLINE).
            async {
                self.pool_nodes_at(t.network.vip)
                    .await
                    .map_err(|e| e.to_string())
            },
        );

        let mut hosts = Vec::new();
        let mut vip_holders = Vec::new();
        for (i, (spec, p)) in t.hosts.iter().zip(per_host).enumerate() {
            let n = &spec.name;
            note(
                n,
                "docker info",
                &p.swarm.as_ref().map(|_| ()).map_err(Clone::clone),
            );
            note(
                n,
                "ip -j addr show",
                &p.links.as_ref().map(|_| ()).map_err(Clone::clone),
            );
            if gluster_on {
                note(
                    n,
                    "gluster pool list",
                    &p.peers.as_ref().map(|_| ()).map_err(Clone::clone),
                );
                note(
                    n,
                    "/proc/mounts",
                    &p.mount.as_ref().map(|_| ()).map_err(Clone::clone),
                );
            }
            let holds_vip = p.links.ok();
            if holds_vip == Some(true) {
                vip_holders.push(n.clone());
            }
            let replication = pgpool_view
                .replicas
                .iter()
                .find(|r| &r.application_name == n)
                .cloned();
            hosts.push(HostFacts {
                name: n.clone(),
                address: spec.address,
                swarm: p.swarm.ok(),
                gluster_peers: if gluster_on { p.peers.ok() } else { None },
                shared_mount: if gluster_on { p.mount.ok() } else { None },
                postgres: pgpool_view
                    .pg
                    .get(i)
                    .cloned()
                    .unwrap_or(PgState::Down("not asked".into())),
                replication,
                holds_vip,
            });
        }

        let swarm = match swarm {
            Ok(s) => Some(s),
            Err(failures) => {
                errors.extend(failures);
                None
            }
        };
        let gluster = gluster_volume.and_then(|(g, failures)| {
            errors.extend(failures);
            g
        });
        let stack = match &swarm {
            Some(s) => {
                let (st, failures) = self.stack(&s.asked).await;
                errors.extend(failures);
                st
            }
            None => None,
        };
        let pool_nodes = match pool_nodes {
            Ok(p) => Some(p),
            Err(e) => {
                errors.push(ProbeFailure {
                    host: format!("VIP {}", t.network.vip),
                    probe: "show pool_nodes".into(),
                    error: e,
                });
                None
            }
        };
        let leader = view::leader_of(&pgpool_view).map(|i| t.hosts[i].name.clone());
        let quorum = pgpool_view.via_vip.as_ref().ok().map(|w| w.quorum);
        Snapshot {
            version: SNAPSHOT_VERSION,
            cluster: t.cluster.name.clone(),
            vip: t.network.vip,
            hosts,
            swarm,
            gluster,
            pgpool: PgpoolFacts {
                leader,
                quorum,
                vip_holders,
                decision: view::decide(&pgpool_view),
                view: pgpool_view,
                pool_nodes,
            },
            stack,
            errors,
        }
    }

    /// What one host says of itself, its probes side by side.
    async fn host_probes(&self, h: &dyn Host) -> HostProbes {
        let t = &self.topology;
        let vip = t.network.vip;
        let path = t.shared_dir.path.clone();
        let swarm = ask(h, swarm::swarm_info_cmd(), parsed(swarm::parse_swarm_info));
        let links = ask(h, net::addr_cmd(), parsed(net::parse_links));
        // Without Gluster there is no pool to ask and no mount to expect.
        let gluster_on = t.shared_dir.kind == SharedDirKind::Gluster;
        let peers = async {
            if gluster_on {
                ask(h, gluster::pool_list_cmd(), xml(gluster::parse_pool_list)).await
            } else {
                Err("not asked".into())
            }
        };
        let mounts = async {
            if gluster_on {
                ask(h, gluster::mounts_cmd(), |s| Ok(gluster::parse_mounts(s))).await
            } else {
                Err("not asked".into())
            }
        };
        let (swarm, links, peers, mounts) = tokio::join!(swarm, links, peers, mounts);
        HostProbes {
            swarm: swarm.map(|i| LocalSwarm {
                state: i.local_node_state,
                control_available: i.control_available,
                error: i.error,
            }),
            links: links.map(|l| net::holds(&l, vip)),
            peers: peers.map(|ps| {
                ps.into_iter()
                    .map(|p| PeerFacts {
                        hostname: p.hostname,
                        connected: p.connected,
                        state: match p.state {
                            gluster::PeerState::Local => "local".into(),
                            gluster::PeerState::InCluster => "in_cluster".into(),
                            gluster::PeerState::Rejected => "rejected".into(),
                            gluster::PeerState::Other(s) => s,
                        },
                    })
                    .collect()
            }),
            mount: mounts.map(|ms| match gluster::mount_at(&ms, &path) {
                Some(m) => MountFacts {
                    path: path.clone(),
                    mounted: m.fstype == gluster::GLUSTER_FSTYPE,
                    source: m.source.clone(),
                    fstype: m.fstype.clone(),
                },
                None => MountFacts {
                    path: path.clone(),
                    mounted: false,
                    source: String::new(),
                    fstype: String::new(),
                },
            }),
        }
    }

    /// `docker node ls` from the first manager that answers; every failure
    /// on the way when none does.
    async fn swarm_nodes(&self) -> Result<SwarmFacts, Vec<ProbeFailure>> {
        let mut failures = Vec::new();
        for h in &self.hosts {
            let out = node_ls(h.as_ref()).await;
            match out {
                Ok(nodes) => {
                    return Ok(SwarmFacts {
                        asked: h.name().to_string(),
                        nodes: nodes
                            .into_iter()
                            .map(|n| SwarmNodeFacts {
                                hostname: n.hostname,
                                status: n.status,
                                availability: n.availability,
                                manager: n.manager_status,
                            })
                            .collect(),
                    });
                }
                Err(e) => failures.push(ProbeFailure {
                    host: h.name().to_string(),
                    probe: "docker node ls".into(),
                    error: e,
                }),
            }
        }
        Err(failures)
    }

    /// The volume's info, status and heal counts from the first host whose
    /// glusterd knows the volume's state.
    async fn gluster_volume(&self) -> (Option<GlusterFacts>, Vec<ProbeFailure>) {
        let volume = self.topology.shared_dir.volume.clone();
        let mut failures = Vec::new();
        let fail = |h: &dyn Host, probe: &str, e: String| ProbeFailure {
            host: h.name().to_string(),
            probe: format!("{probe} {volume}"),
            error: e,
        };
        for h in &self.hosts {
            let h = h.as_ref();
            let info = match ask(
                h,
                gluster::volume_info_cmd(&volume),
                xml(gluster::parse_volume_info),
            )
            .await
            {
                Ok(i) => i,
                Err(e) => {
                    failures.push(fail(h, "gluster volume info", e));
                    continue;
                }
            };
            let Some(info) = info else {
                let facts = GlusterFacts {
                    volume: volume.clone(),
                    asked: h.name().to_string(),
                    exists: false,
                    state: None,
                    replica: 0,
                    bricks: Vec::new(),
                    heal: Vec::new(),
                };
                return (Some(facts), failures);
            };
            let started = info.state == gluster::VolumeState::Started;
            let (status, heal) = if started {
                tokio::join!(
                    ask(
                        h,
                        gluster::volume_status_cmd(&volume),
                        xml(gluster::parse_volume_status)
                    ),
                    ask(
                        h,
                        gluster::heal_info_cmd(&volume),
                        xml(gluster::parse_heal_info)
                    ),
                )
            } else {
                (
                    Ok(gluster::VolumeStatus {
                        name: volume.clone(),
                        bricks: Vec::new(),
                        daemons: Vec::new(),
                    }),
                    Ok(gluster::HealInfo { bricks: Vec::new() }),
                )
            };
            let status = match status {
                Ok(s) => s,
                Err(e) => {
                    failures.push(fail(h, "gluster volume status", e));
                    continue;
                }
            };
            // Heal counts are a separate question: without them the bricks
            // are still known.
            let heal = match heal {
                Ok(hi) => hi.bricks,
                Err(e) => {
                    failures.push(fail(h, "gluster volume heal info", e));
                    Vec::new()
                }
            };
            let bricks = info
                .bricks
                .iter()
                .map(|b| {
                    let s = status
                        .bricks
                        .iter()
                        .find(|s| s.host == b.host && s.path == b.path);
                    BrickFacts {
                        host: b.host.clone(),
                        path: b.path.clone(),
                        online: s.is_some_and(|s| s.online),
                        port: s.and_then(|s| s.port),
                    }
                })
                .collect();
            let facts = GlusterFacts {
                volume: volume.clone(),
                asked: h.name().to_string(),
                exists: true,
                state: Some(format!("{:?}", info.state)),
                replica: info.replica_count,
                bricks,
                heal: heal
                    .into_iter()
                    .map(|b| HealFacts {
                        host: b.host,
                        path: b.path,
                        status: b.status,
                        pending: b.pending,
                    })
                    .collect(),
            };
            return (Some(facts), failures);
        }
        (None, failures)
    }

    /// The hosts whose 443 is meant to answer, asked of the swarm (the first
    /// host, a manager): every host when `ke2_nginx` publishes through the
    /// ingress mesh, else the nodes where its tasks run (`host` mode).
    pub async fn https_hosts(&self) -> Result<Vec<String>, String> {
        let service = format!("{}_nginx", crate::steps::deploy::STACK_NAME);
        let m = self.hosts[0].as_ref();
        let spec = guarded("docker service inspect", async {
            stack::endpoint_spec(m, &service)
                .await
                .map_err(|e| e.to_string())
        })
        .await?;
        let all: Vec<String> = self.topology.hosts.iter().map(|h| h.name.clone()).collect();
        if spec.ports().iter().all(|p| p.publish_mode() != "host") {
            return Ok(all);
        }
        let tasks = guarded("docker service ps", async {
            stack::tasks(m, &service).await.map_err(|e| e.to_string())
        })
        .await?;
        let running: std::collections::BTreeSet<String> = tasks
            .into_iter()
            .filter(|t| t.is_running())
            .map(|t| t.node)
            .collect();
        Ok(all.into_iter().filter(|h| running.contains(h)).collect())
    }

    /// The stack's services (asked of `manager`) and, when any is
    /// deployed, HTTPS on every host; `Ok(None)` when none is.
    async fn stack(&self, manager: &str) -> (Option<StackFacts>, Vec<ProbeFailure>) {
        let name = crate::steps::deploy::STACK_NAME;
        let Some(h) = self.hosts.iter().find(|h| h.name() == manager) else {
            return (None, Vec::new());
        };
        let services = match ask(
            h.as_ref(),
            stack::service_ls_cmd(name),
            parsed(stack::parse_service_ls),
        )
        .await
        {
            Ok(s) if s.is_empty() => return (None, Vec::new()),
            Ok(s) => s,
            Err(e) => {
                let f = ProbeFailure {
                    host: manager.to_string(),
                    probe: "docker service ls".into(),
                    error: e,
                };
                return (None, vec![f]);
            }
        };
        let services = services
            .into_iter()
            .map(|s| ServiceFacts {
                converged: s.converged(),
                name: s.name,
                mode: s.mode,
                image: s.image,
                replicas: s.replicas,
            })
            .collect();
        let ca = guarded("the stack's CA", async {
            self.stack_ca().await.map_err(|e| e.to_string())
        })
        .await;
        let mut failures = Vec::new();
        // Unknown placement: every host is held to answering.
        let serving = match self.https_hosts().await {
            Ok(hosts) => hosts,
            Err(e) => {
                failures.push(ProbeFailure {
                    host: self.topology.hosts[0].name.clone(),
                    probe: "where nginx publishes".into(),
                    error: e,
                });
                self.topology.hosts.iter().map(|h| h.name.clone()).collect()
            }
        };
        let (https, more) = match ca {
            Ok(ca) => (
                self.https_each(&ca, "/", PROBE_DEADLINE)
                    .await
                    .into_iter()
                    .map(|(host, r)| {
                        let serves = serving.contains(&host);
                        match r {
                            Ok(resp) => HttpsFacts {
                                host,
                                serves,
                                status: Some(resp.status),
                                error: None,
                            },
                            Err(e) => HttpsFacts {
                                host,
                                serves,
                                status: None,
                                error: Some(e.to_string()),
                            },
                        }
                    })
                    .collect(),
                Vec::new(),
            ),
            Err(e) => (
                Vec::new(),
                vec![ProbeFailure {
                    host: self.topology.hosts[crate::steps::stack::StackOptions::from_topology(
                        &self.topology,
                        crate::steps::checkout::DEFAULT_DEST,
                    )
                    .manager]
                        .name
                        .clone(),
                    probe: "the stack's local CA".into(),
                    error: e,
                }],
            ),
        };
        failures.extend(more);
        let facts = StackFacts {
            name: name.to_string(),
            services,
            https,
        };
        (Some(facts), failures)
    }
}

struct HostProbes {
    swarm: Probed<LocalSwarm>,
    links: Probed<bool>,
    peers: Probed<Vec<PeerFacts>>,
    mount: Probed<MountFacts>,
}

/// `docker node ls` under the probe deadline; Raft's "no leader" named as
/// such.
async fn node_ls(h: &dyn Host) -> Probed<Vec<swarm::SwarmNode>> {
    let cmd = swarm::node_ls_cmd().deadline(PROBE_DEADLINE);
    let out = h.run(&cmd).await.map_err(|e| e.to_string())?;
    if !out.success() {
        let stderr = out.stderr_lossy();
        if swarm::is_no_leader(&stderr) {
            return Err(ProbeError::NoSwarmQuorum {
                host: h.name().to_string(),
            }
            .to_string());
        }
        return Err(crate::host::HostError::Failed {
            host: h.name().to_string(),
            command: cmd.to_string(),
            code: out.status,
            stderr: crate::host::tail(stderr.trim_end(), 600),
        }
        .to_string());
    }
    swarm::parse_node_ls(&out.stdout_lossy()).map_err(|e| e.to_string())
}

/// The gist of a probe's error for a one-line finding: a failed command's
/// stderr without the command line (the snapshot keeps the whole text),
/// its first line, at most 160 characters.
pub fn brief(error: &str) -> String {
    let first = |t: &str| {
        t.lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or_default()
            .to_string()
    };
    let line = match error.find("` failed on `") {
        Some(i) if error.starts_with("command `") => match error[i..].split_once("): ") {
            // Some tools (gluster) say why on stdout: the exit code is
            // then all there is.
            Some((head, rest)) if first(rest).is_empty() => format!(
                "{}, nothing on stderr",
                head.rsplit_once('(').map_or("failed", |(_, code)| code)
            ),
            Some((_, rest)) => first(rest),
            None => first(error),
        },
        _ => first(error),
    };
    let line = line.as_str();
    match line.char_indices().nth(160) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

/// Every unhealthy fact of `s`, with the host it concerns: failed probes,
/// swarm nodes not Ready/Active or managers not reachable, Gluster peers
/// not connected, mounts missing, bricks offline, entries pending heal,
/// PostgreSQL down or not streaming, the VIP on no host or several, every
/// Pgpool-II member not answering or not in the watchdog, the decision when
/// not healthy, services not converged, HTTPS not 200. Empty: healthy.
pub fn verdict(s: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut add = |host: Option<&str>, area: &str, message: String| {
        out.push(Finding {
            host: host.map(str::to_string),
            area: area.to_string(),
            message,
        });
    };
    let names: Vec<&str> = s.hosts.iter().map(|h| h.name.as_str()).collect();
    let is_host = |n: &str| names.contains(&n);

    for e in &s.errors {
        let (host, whose) = if is_host(&e.host) {
            (Some(e.host.as_str()), format!("host `{}`", e.host))
        } else if let Some(vip) = e.host.strip_prefix("VIP ") {
            (None, format!("VIP `{vip}`"))
        } else {
            (None, format!("`{}`", e.host))
        };
        add(
            host,
            "probe",
            format!("{whose}: `{}` failed: {}", e.probe, brief(&e.error)),
        );
    }

    // Swarm: every host a Ready, Active manager; one leader.
    for h in &s.hosts {
        if let Some(l) = &h.swarm {
            if l.state != LocalNodeState::Active {
                add(
                    Some(&h.name),
                    "swarm",
                    format!(
                        "host `{}`: swarm state `{}`, not active",
                        h.name,
                        format!("{:?}", l.state).to_lowercase()
                    ),
                );
            }
            if !l.error.is_empty() {
                add(
                    Some(&h.name),
                    "swarm",
                    format!("host `{}`: swarm error: {}", h.name, l.error),
                );
            }
        }
    }
    if let Some(sw) = &s.swarm {
        for h in &s.hosts {
            let Some(n) = sw.nodes.iter().find(|n| n.hostname == h.name) else {
                add(
                    Some(&h.name),
                    "swarm",
                    format!(
                        "host `{}`: not a node of the swarm (as `{}` sees it)",
                        h.name, sw.asked
                    ),
                );
                continue;
            };
            if n.status != NodeStatus::Ready {
                add(
                    Some(&h.name),
                    "swarm",
                    format!("host `{}`: swarm node `{:?}`, not Ready", h.name, n.status),
                );
            }
            if n.availability != Availability::Active {
                add(
                    Some(&h.name),
                    "swarm",
                    format!(
                        "host `{}`: swarm node availability `{:?}`, not Active",
                        h.name, n.availability
                    ),
                );
            }
            match n.manager {
                Some(ManagerStatus::Leader | ManagerStatus::Reachable) => {}
                other => add(
                    Some(&h.name),
                    "swarm",
                    format!(
                        "host `{}`: swarm manager `{}`, not reachable",
                        h.name,
                        other.map_or("none".to_string(), |m| format!("{m:?}"))
                    ),
                ),
            }
        }
        let leaders = sw
            .nodes
            .iter()
            .filter(|n| n.manager == Some(ManagerStatus::Leader))
            .count();
        if leaders != 1 {
            add(
                None,
                "swarm",
                format!(
                    "swarm: `{leaders}` leaders (as `{}` sees it), not one",
                    sw.asked
                ),
            );
        }
    }

    // Gluster: every host sees every other connected in the pool and has
    // the volume mounted; every brick online, nothing pending heal.
    for h in &s.hosts {
        if let Some(peers) = &h.gluster_peers {
            for other in names.iter().filter(|o| **o != h.name) {
                let ok = peers.iter().any(|p| {
                    p.hostname.eq_ignore_ascii_case(other) && p.connected && p.state == "in_cluster"
                });
                if !ok {
                    let seen = peers
                        .iter()
                        .find(|p| p.hostname.eq_ignore_ascii_case(other))
                        .map_or("not in the pool".to_string(), |p| {
                            format!(
                                "`{}`{}",
                                p.state,
                                if p.connected { "" } else { ", disconnected" }
                            )
                        });
                    add(
                        Some(other),
                        "gluster",
                        format!("host `{}`: gluster peer `{other}` {seen}", h.name),
                    );
                }
            }
        }
        if let Some(m) = &h.shared_mount
            && !m.mounted
        {
            add(
                Some(&h.name),
                "gluster",
                format!(
                    "host `{}`: `{}` is not a glusterfs mount{}",
                    h.name,
                    m.path,
                    if m.fstype.is_empty() {
                        String::new()
                    } else {
                        format!(" (`{}`)", m.fstype)
                    }
                ),
            );
        }
    }
    if let Some(g) = &s.gluster {
        let v = &g.volume;
        if !g.exists {
            add(
                None,
                "gluster",
                format!("volume `{v}`: does not exist (as `{}` sees it)", g.asked),
            );
        } else if g.state.as_deref() != Some("Started") {
            add(
                None,
                "gluster",
                format!(
                    "volume `{v}`: `{}`, not started",
                    g.state.as_deref().unwrap_or("?")
                ),
            );
        }
        for b in g.bricks.iter().filter(|b| !b.online) {
            add(
                Some(&b.host),
                "gluster",
                format!("volume `{v}`: brick `{}:{}` offline", b.host, b.path),
            );
        }
        for b in &g.heal {
            match b.pending {
                Some(0) => {}
                Some(n) => add(
                    Some(&b.host),
                    "gluster",
                    format!(
                        "volume `{v}`: brick `{}:{}` has `{n}` entries pending heal",
                        b.host, b.path
                    ),
                ),
                None => add(
                    Some(&b.host),
                    "gluster",
                    format!(
                        "volume `{v}`: brick `{}:{}` not asked for heal: {}",
                        b.host, b.path, b.status
                    ),
                ),
            }
        }
    }

    // PostgreSQL: every node answers; every standby streams.
    for h in &s.hosts {
        match &h.postgres {
            PgState::Down(why) => add(
                Some(&h.name),
                "postgres",
                format!("host `{}`: PostgreSQL down: {}", h.name, brief(why)),
            ),
            PgState::Standby => match &h.replication {
                Some(r) if r.state == "streaming" => {}
                Some(r) => add(
                    Some(&h.name),
                    "postgres",
                    format!(
                        "host `{}`: PostgreSQL standby `{}`, not streaming",
                        h.name, r.state
                    ),
                ),
                None => add(
                    Some(&h.name),
                    "postgres",
                    format!(
                        "host `{}`: PostgreSQL standby not replicating from the primary",
                        h.name
                    ),
                ),
            },
            PgState::Primary => {}
        }
    }

    // Pgpool-II: the VIP on exactly one host; every member answering as
    // the watchdog's LEADER or STANDBY; then the whole view's decision.
    let p = &s.pgpool;
    if p.vip_holders.len() != 1 {
        add(
            None,
            "pgpool",
            format!(
                "VIP `{}`: held by {}",
                s.vip,
                if p.vip_holders.is_empty() {
                    "no host".to_string()
                } else {
                    format!("`{}`", p.vip_holders.join("`, `"))
                }
            ),
        );
    }
    for (name, m) in p.view.hosts.iter().zip(&p.view.members) {
        match (&m.watchdog, m.own_state(name)) {
            (Err(e), _) => add(
                Some(name),
                "pgpool",
                format!("host `{name}`: Pgpool-II does not answer: {}", brief(e)),
            ),
            (Ok(_), Some("LEADER" | "STANDBY")) => {}
            (Ok(_), other) => add(
                Some(name),
                "pgpool",
                format!(
                    "host `{name}`: Pgpool-II watchdog state `{}`, not LEADER or STANDBY",
                    other.unwrap_or("unknown")
                ),
            ),
        }
    }
    let name = |i: &usize| p.view.hosts.get(*i).cloned().unwrap_or_default();
    // The decision quotes PostgreSQL's answers whole; a finding carries
    // their gist (the snapshot keeps them whole).
    let brief_reason = |reason: &str| {
        let mut r = reason.to_string();
        for pg in &p.view.pg {
            if let PgState::Down(d) = pg {
                r = r.replace(&format!("{d:?}"), &format!("{:?}", brief(d)));
            }
        }
        r.lines().next().unwrap_or_default().to_string()
    };
    match &p.decision {
        Decision::Healthy { .. } => {}
        Decision::Wait { reason } | Decision::Error { reason } => {
            add(None, "pgpool", format!("pgpool: {}", brief_reason(reason)))
        }
        Decision::Attach { node, leader } => add(
            Some(&name(node)),
            "pgpool",
            format!(
                "pgpool: the leader `{}` counts the streaming standby `{}` down",
                name(leader),
                name(node)
            ),
        ),
        Decision::Resync { member, reason, .. } => {
            add(Some(&name(member)), "pgpool", format!("pgpool: {reason}"))
        }
    }

    // The stack: every service converged, HTTPS 200 on every host meant
    // to serve it.
    if let Some(st) = &s.stack {
        for sv in st.services.iter().filter(|sv| !sv.converged) {
            add(
                None,
                "stack",
                format!(
                    "stack `{}`: service `{}` at `{}` replicas",
                    st.name, sv.name, sv.replicas
                ),
            );
        }
        if !st.https.is_empty() && !st.https.iter().any(|h| h.serves) {
            add(
                None,
                "stack",
                format!("stack `{}`: no host publishes nginx's 443", st.name),
            );
        }
        // A host without an nginx task in `host` mode has no listener.
        for h in st.https.iter().filter(|h| h.serves) {
            match (h.status, &h.error) {
                (Some(200), _) => {}
                (Some(code), _) => add(
                    Some(&h.host),
                    "stack",
                    format!("host `{}`: HTTPS `/` answered `{code}`", h.host),
                ),
                (None, e) => add(
                    Some(&h.host),
                    "stack",
                    format!(
                        "host `{}`: HTTPS `/` unanswered: {}",
                        h.host,
                        brief(e.as_deref().unwrap_or("no answer"))
                    ),
                ),
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// A hand-built example
// ---------------------------------------------------------------------------

/// The example's hosts.
const EXAMPLE_HOSTS: [&str; 3] = ["ke2-server1", "ke2-server2", "ke2-server3"];

fn example_watchdog() -> WatchdogInfo {
    WatchdogInfo {
        total_nodes: 3,
        quorum: true,
        leader_host: EXAMPLE_HOSTS[0].into(),
        nodes: EXAMPLE_HOSTS
            .iter()
            .zip(["LEADER", "STANDBY", "STANDBY"])
            .map(|(h, s)| WatchdogNode {
                host: h.to_string(),
                status_name: s.into(),
                delegate_ip: "10.20.0.100".into(),
            })
            .collect(),
    }
}

fn example_backends() -> Vec<NodeInfo> {
    EXAMPLE_HOSTS
        .iter()
        .enumerate()
        .map(|(i, h)| NodeInfo {
            hostname: h.to_string(),
            status_name: "up".into(),
            role: if i == 0 { "primary" } else { "standby" }.into(),
            replication_state: if i == 0 { "" } else { "streaming" }.into(),
        })
        .collect()
}

fn example_replica(h: &str) -> Replica {
    Replica {
        application_name: h.into(),
        state: "streaming".into(),
        sync_state: "async".into(),
    }
}

impl Snapshot {
    /// A healthy cluster of the document's three hosts with the stack
    /// deployed, as the schema's tests and the documentation use it.
    pub fn example() -> Snapshot {
        let view = PgpoolView {
            hosts: EXAMPLE_HOSTS.iter().map(|h| h.to_string()).collect(),
            via_vip: Ok(example_watchdog()),
            members: (0..3)
                .map(|_| Member {
                    watchdog: Ok(example_watchdog()),
                    backends: Ok(example_backends()),
                })
                .collect(),
            pg: vec![PgState::Primary, PgState::Standby, PgState::Standby],
            replicas: vec![
                example_replica(EXAMPLE_HOSTS[1]),
                example_replica(EXAMPLE_HOSTS[2]),
            ],
        };
        let hosts = EXAMPLE_HOSTS
            .iter()
            .enumerate()
            .map(|(i, h)| HostFacts {
                name: h.to_string(),
                address: Ipv4Addr::new(10, 20, 0, i as u8 + 1),
                swarm: Some(LocalSwarm {
                    state: LocalNodeState::Active,
                    control_available: true,
                    error: String::new(),
                }),
                gluster_peers: Some(
                    EXAMPLE_HOSTS
                        .iter()
                        .map(|p| PeerFacts {
                            hostname: if p == h { "localhost" } else { p }.to_string(),
                            connected: true,
                            state: if p == h { "local" } else { "in_cluster" }.into(),
                        })
                        .collect(),
                ),
                shared_mount: Some(MountFacts {
                    path: "/mnt/gluster".into(),
                    mounted: true,
                    source: format!("{h}:/gvol0"),
                    fstype: "fuse.glusterfs".into(),
                }),
                postgres: view.pg[i].clone(),
                replication: (i > 0).then(|| example_replica(h)),
                holds_vip: Some(i == 0),
            })
            .collect();
        Snapshot {
            version: SNAPSHOT_VERSION,
            cluster: "ke2".into(),
            vip: Ipv4Addr::new(10, 20, 0, 100),
            hosts,
            swarm: Some(SwarmFacts {
                asked: EXAMPLE_HOSTS[0].into(),
                nodes: EXAMPLE_HOSTS
                    .iter()
                    .enumerate()
                    .map(|(i, h)| SwarmNodeFacts {
                        hostname: h.to_string(),
                        status: NodeStatus::Ready,
                        availability: Availability::Active,
                        manager: Some(if i == 0 {
                            ManagerStatus::Leader
                        } else {
                            ManagerStatus::Reachable
                        }),
                    })
                    .collect(),
            }),
            gluster: Some(GlusterFacts {
                volume: "gvol0".into(),
                asked: EXAMPLE_HOSTS[0].into(),
                exists: true,
                state: Some("Started".into()),
                replica: 3,
                bricks: EXAMPLE_HOSTS
                    .iter()
                    .map(|h| BrickFacts {
                        host: h.to_string(),
                        path: "/var/glustervol0".into(),
                        online: true,
                        port: Some(49152),
                    })
                    .collect(),
                heal: EXAMPLE_HOSTS
                    .iter()
                    .map(|h| HealFacts {
                        host: h.to_string(),
                        path: "/var/glustervol0".into(),
                        status: "Connected".into(),
                        pending: Some(0),
                    })
                    .collect(),
            }),
            pgpool: PgpoolFacts {
                leader: Some(EXAMPLE_HOSTS[0].into()),
                quorum: Some(true),
                vip_holders: vec![EXAMPLE_HOSTS[0].into()],
                decision: view::decide(&view),
                view,
                pool_nodes: Some(Vec::new()),
            },
            stack: Some(StackFacts {
                name: "ke2".into(),
                services: vec![ServiceFacts {
                    name: "ke2_nginx".into(),
                    mode: "replicated".into(),
                    image: "nginx:1.27".into(),
                    replicas: "3/3 (max 1 per node)".into(),
                    converged: true,
                }],
                https: EXAMPLE_HOSTS
                    .iter()
                    .map(|h| HttpsFacts {
                        host: h.to_string(),
                        serves: true,
                        status: Some(200),
                        error: None,
                    })
                    .collect(),
            }),
            errors: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
