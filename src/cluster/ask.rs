//! The questions a caller asks of one named host of a [`Cluster`] (what a
//! scenario must ask a particular member: "the survivors' view of the
//! swarm", "heal-info as a writer sees it"), and the database clients
//! with the cluster's own credentials. Typed answers; every command runs
//! under [`PROBE_DEADLINE`] (Gluster's volume-wide questions under
//! [`GLUSTER_DEADLINE`]; a frozen or partitioned host costs seconds,
//! never a caller's whole wait), every connection under [`CONNECT`].
//!
//! The probes themselves (`crate::probe`) stay the core's: the steps'
//! verifies call them directly; the harness and the scenarios ask here
//! (`tests/architecture.rs` holds them to it).

use std::net::Ipv4Addr;
use std::time::Duration;

use async_trait::async_trait;

use crate::cluster::Cluster;
use crate::cluster::pgpool::{PgState, pg_state};
use crate::cluster::snapshot::PROBE_DEADLINE;
use crate::host::{Cmd, Host, HostError, Output};
use crate::layout::Layout;
use crate::probe::gluster::{HealInfo, MountEntry, Peer, Volume, VolumeStatus};
use crate::probe::net::Link;
use crate::probe::pgpool::LogLine;
use crate::probe::stack::{Container, ContainerMount, EndpointSpec, RabbitmqCluster, Task};
use crate::probe::swarm::{SwarmInfo, SwarmNode};
use crate::probe::{ProbeError, gluster, net, pgpool, stack, swarm};

/// The limit of one `gluster volume status` or `heal info`: glusterd asks
/// every brick's process and waits for each, and a brick whose host just
/// went away costs its RPC's connect time; cut at [`PROBE_DEADLINE`], a
/// poll right after a fault would give up just before the answer.
pub const GLUSTER_DEADLINE: Duration = Duration::from_secs(30);

/// The limit of one `rabbitmqctl cluster_status`: the tool starts an
/// Erlang node of its own to ask the broker, seconds before any answer.
pub const RABBITMQCTL_DEADLINE: Duration = Duration::from_secs(30);

/// The limit of one database connection a caller opens through
/// [`Cluster::sql_client`].
pub const CONNECT: Duration = Duration::from_secs(5);

/// A database role whose password the cluster's credentials hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbUser {
    /// The application's role (`kompira`).
    Kompira,
    /// The superuser (`postgres`).
    Postgres,
    /// Pgpool-II's health-check and `show pool_nodes` role (`pgpool`).
    Pgpool,
}

impl DbUser {
    pub fn name(self) -> &'static str {
        match self {
            DbUser::Kompira => "kompira",
            DbUser::Postgres => "postgres",
            DbUser::Pgpool => "pgpool",
        }
    }
}

/// A host whose every command runs under at most `limit` (a command's own,
/// shorter deadline stays): lets the core's probes, written for the steps
/// with the default deadline, answer a caller's question under the probe
/// deadline without a second copy of each.
struct Within<'a> {
    host: &'a dyn Host,
    limit: Duration,
}

#[async_trait]
impl Host for Within<'_> {
    fn name(&self) -> &str {
        self.host.name()
    }

    async fn run(&self, cmd: &Cmd) -> Result<Output, HostError> {
        match cmd.deadline_of() {
            Some(d) if d <= self.limit => self.host.run(cmd).await,
            _ => self.host.run(&cmd.clone().deadline(self.limit)).await,
        }
    }
}

impl Cluster {
    /// Host `name` of the topology, bounded by [`PROBE_DEADLINE`].
    fn bounded(&self, name: &str) -> Result<Within<'_>, ProbeError> {
        self.bounded_by(name, PROBE_DEADLINE)
    }

    fn bounded_by(&self, name: &str, limit: Duration) -> Result<Within<'_>, ProbeError> {
        let i = self.position(name)?;
        Ok(Within {
            host: self.hosts()[i].as_ref(),
            limit,
        })
    }

    fn position(&self, name: &str) -> Result<usize, ProbeError> {
        self.topology()
            .hosts
            .iter()
            .position(|h| h.name == name)
            .ok_or_else(|| ProbeError::Unreachable {
                what: name.to_string(),
                detail: "not a host of the topology".into(),
            })
    }

    /// `docker node ls` on host `name`: the swarm as that manager sees it;
    /// [`ProbeError::NoSwarmQuorum`] when it has lost its majority.
    pub async fn swarm_nodes_from(&self, name: &str) -> Result<Vec<SwarmNode>, ProbeError> {
        swarm::nodes(&self.bounded(name)?).await
    }

    /// `docker info`'s swarm part on host `name`: its own membership, the
    /// counts it sees and the cluster's data-path port.
    pub async fn swarm_info_from(&self, name: &str) -> Result<SwarmInfo, ProbeError> {
        swarm::info(&self.bounded(name)?).await
    }

    /// The trusted Gluster pool as host `name`'s glusterd sees it.
    pub async fn gluster_peers_from(&self, name: &str) -> Result<Vec<Peer>, ProbeError> {
        gluster::pool_list(&self.bounded(name)?).await
    }

    /// `gluster volume info` of the topology's volume, asked of host
    /// `name`; `None` when it does not exist.
    pub async fn volume_from(&self, name: &str) -> Result<Option<Volume>, ProbeError> {
        let volume = self.topology().shared_dir.volume.clone();
        self.volume_named_from(name, &volume).await
    }

    /// `gluster volume info VOLUME` asked of host `name` (another volume
    /// than the topology's: e.g. that the document's default is absent).
    pub async fn volume_named_from(
        &self,
        name: &str,
        volume: &str,
    ) -> Result<Option<Volume>, ProbeError> {
        gluster::volume_info(&self.bounded(name)?, volume).await
    }

    /// `gluster volume status` of the topology's volume, asked of host
    /// `name` (a brick whose peer it cannot reach is not listed).
    pub async fn volume_status_from(&self, name: &str) -> Result<VolumeStatus, ProbeError> {
        let volume = &self.topology().shared_dir.volume;
        gluster::volume_status(&self.bounded_by(name, GLUSTER_DEADLINE)?, volume).await
    }

    /// `gluster volume heal info` of the topology's volume, asked of host
    /// `name`: entries pending per brick.
    pub async fn heal_info_from(&self, name: &str) -> Result<HealInfo, ProbeError> {
        let volume = &self.topology().shared_dir.volume;
        gluster::heal_info(&self.bounded_by(name, GLUSTER_DEADLINE)?, volume).await
    }

    /// Host `name`'s mount table (`/proc/mounts`).
    pub async fn mounts_on(&self, name: &str) -> Result<Vec<MountEntry>, ProbeError> {
        gluster::mounts(&self.bounded(name)?).await
    }

    /// Host `name`'s links and addresses (`ip -j addr show`).
    pub async fn links_of(&self, name: &str) -> Result<Vec<Link>, ProbeError> {
        net::links(&self.bounded(name)?).await
    }

    /// Whether an interface of host `name` carries the VIP.
    pub async fn holds_vip(&self, name: &str) -> Result<bool, ProbeError> {
        let vip = self.topology().network.vip;
        Ok(net::holds(&self.links_of(name).await?, vip))
    }

    /// Which of `names` carry the VIP, asked at once: one side of a
    /// partition, when the other side's hosts must not be waited for.
    pub async fn vip_holders_among(&self, names: &[String]) -> Result<Vec<String>, ProbeError> {
        let held =
            futures_util::future::try_join_all(names.iter().map(|n| self.holds_vip(n))).await?;
        Ok(names
            .iter()
            .zip(held)
            .filter(|(_, held)| *held)
            .map(|(n, _)| n.clone())
            .collect())
    }

    /// Whether host `name` opens a TCP connection to `addr:port` within
    /// `timeout_s` seconds (a dropped SYN answers "no"); an error only when
    /// the host itself cannot be asked.
    pub async fn tcp_connects_from(
        &self,
        name: &str,
        addr: Ipv4Addr,
        port: u16,
        timeout_s: u32,
    ) -> Result<bool, ProbeError> {
        net::tcp_connects(&self.bounded(name)?, addr, port, timeout_s).await
    }

    /// The lines of host `name`'s Pgpool-II log (every file of its log
    /// directory, oldest first).
    pub async fn pgpool_log(&self, name: &str) -> Result<Vec<LogLine>, ProbeError> {
        let i = self.position(name)?;
        let l = Layout::of(self.topology().hosts[i].platform);
        let out = pgpool::log_cmd(l.pgpool_log_dir)
            .check(&self.bounded(name)?)
            .await?;
        Ok(pgpool::parse_log(&out.stdout_lossy()))
    }

    /// PostgreSQL's own answer on host `name` (`pg_is_in_recovery()`):
    /// primary, standby, or down with the reason.
    pub async fn postgres_state(&self, name: &str) -> Result<PgState, ProbeError> {
        let i = self.position(name)?;
        Ok(pg_state(self.topology(), self.hosts()[i].as_ref(), i).await)
    }

    /// The application's connection: through the VIP to Pgpool-II, as
    /// `kompira`, to the topology's database (what Kompira and the
    /// scenarios' writers use).
    pub async fn app_client(&self) -> Result<tokio_postgres::Client, ProbeError> {
        let t = self.topology();
        self.sql_client(
            t.network.vip,
            t.ports.pgpool,
            DbUser::Kompira,
            &t.postgres.database,
        )
        .await
    }

    /// The copy host `name` stores of file `rel` (a path under the shared
    /// directory): its brick's copy for a Gluster volume (what replication
    /// put on that host's disk, not what the mount shows), the mount's for
    /// an existing share. `None` when the host has no such file.
    pub async fn shared_copy_on(
        &self,
        name: &str,
        rel: &str,
    ) -> Result<Option<Vec<u8>>, ProbeError> {
        let sd = &self.topology().shared_dir;
        let root = match sd.kind {
            crate::topology::SharedDirKind::Gluster => &sd.brick,
            crate::topology::SharedDirKind::Existing => &sd.path,
        };
        let path = format!(
            "{}/{}",
            root.trim_end_matches('/'),
            rel.trim_start_matches('/')
        );
        // Exit 44 means "absent", so that any other failure stays one.
        let cmd = Cmd::sh("if [ -e \"$1\" ]; then cat -- \"$1\"; else exit 44; fi")
            .arg(path.clone())
            .deadline(PROBE_DEADLINE);
        let out = self.bounded(name)?.run(&cmd).await?;
        match out.status {
            0 => Ok(Some(out.stdout)),
            44 => Ok(None),
            _ => Err(ProbeError::Unreachable {
                what: format!("`{path}` on `{name}`"),
                detail: out.stderr_lossy(),
            }),
        }
    }

    /// Whether host `name`'s kernel has IPVS (loaded or loadable).
    pub async fn has_ipvs_on(&self, name: &str) -> Result<bool, ProbeError> {
        stack::has_ipvs(&self.bounded(name)?).await
    }

    /// Service `service`'s endpoint spec (full name, `ke2_nginx`), asked of
    /// manager `name`.
    pub async fn endpoint_spec_from(
        &self,
        name: &str,
        service: &str,
    ) -> Result<EndpointSpec, ProbeError> {
        stack::endpoint_spec(&self.bounded(name)?, service).await
    }

    /// The tasks of service `service` the swarm wants running, with their
    /// nodes, asked of manager `name`.
    pub async fn service_tasks_from(
        &self,
        name: &str,
        service: &str,
    ) -> Result<Vec<Task>, ProbeError> {
        stack::tasks(&self.bounded(name)?, service).await
    }

    /// The running containers of service `service` on host `name`.
    pub async fn service_containers_on(
        &self,
        name: &str,
        service: &str,
    ) -> Result<Vec<Container>, ProbeError> {
        stack::service_containers(&self.bounded(name)?, service).await
    }

    /// The mounts of container `container` on host `name`.
    pub async fn container_mounts_on(
        &self,
        name: &str,
        container: &str,
    ) -> Result<Vec<ContainerMount>, ProbeError> {
        stack::container_mounts(&self.bounded(name)?, container).await
    }

    /// The RabbitMQ cluster as the stack's rabbitmq task on host `name`
    /// sees it.
    pub async fn rabbitmq_cluster_from(&self, name: &str) -> Result<RabbitmqCluster, ProbeError> {
        let h = self.bounded_by(name, RABBITMQCTL_DEADLINE)?;
        stack::rabbitmq_cluster(&h, crate::steps::deploy::STACK_NAME).await
    }

    /// A database client as `user`, with the cluster's password for it, to
    /// `addr:port` (the VIP or a host's Pgpool-II port, a host's PostgreSQL
    /// port) and `database`; the connection under [`CONNECT`]. What the
    /// caller then runs is its own (a workload, a typed query).
    pub async fn sql_client(
        &self,
        addr: Ipv4Addr,
        port: u16,
        user: DbUser,
        database: &str,
    ) -> Result<tokio_postgres::Client, ProbeError> {
        let c = self.credentials()?;
        let password = match user {
            DbUser::Kompira => &c.kompira,
            DbUser::Postgres => &c.postgres,
            DbUser::Pgpool => &c.pgpool,
        };
        pgpool::connect(
            addr,
            port,
            user.name(),
            password.expose(),
            database,
            CONNECT,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::topology::Topology;

    /// A host that answers every command with `answer` and keeps each
    /// command's deadline.
    struct Seen {
        name: String,
        answer: String,
        deadlines: Mutex<Vec<Option<Duration>>>,
    }

    #[async_trait]
    impl Host for Seen {
        fn name(&self) -> &str {
            &self.name
        }
        async fn run(&self, cmd: &Cmd) -> Result<Output, HostError> {
            self.deadlines.lock().unwrap().push(cmd.deadline_of());
            Ok(Output::ok(self.answer.clone()))
        }
    }

    fn cluster(answer: &str) -> (Cluster, Vec<Arc<Seen>>) {
        let t = Topology::fixture("three-node").unwrap().topology;
        let seen: Vec<Arc<Seen>> = t
            .hosts
            .iter()
            .map(|h| {
                Arc::new(Seen {
                    name: h.name.clone(),
                    answer: answer.into(),
                    deadlines: Mutex::new(Vec::new()),
                })
            })
            .collect();
        let hosts = seen.iter().map(|s| s.clone() as Arc<dyn Host>).collect();
        (
            Cluster::without_credentials(t, hosts, "secrets.toml unreadable"),
            seen,
        )
    }

    #[tokio::test]
    async fn a_host_question_runs_under_the_probe_deadline_on_that_host() {
        let info = r#"{"NodeID":"n1","NodeAddr":"10.20.0.2","LocalNodeState":"active","ControlAvailable":true,"Error":"","RemoteManagers":[],"Nodes":3,"Managers":3,"Cluster":{"ID":"c","DataPathPort":4789}}"#;
        let (c, seen) = cluster(info);
        let i = c.swarm_info_from("ke2-server2").await.unwrap();
        assert_eq!(i.managers, 3);
        assert!(seen[0].deadlines.lock().unwrap().is_empty());
        assert_eq!(*seen[1].deadlines.lock().unwrap(), [Some(PROBE_DEADLINE)]);
        // Gluster's volume-wide questions get their own, longer limit; a
        // command's own shorter deadline stays (`log_cmd` has one).
        let _ = c.heal_info_from("ke2-server3").await;
        let _ = c.pgpool_log("ke2-server3").await;
        assert_eq!(
            *seen[2].deadlines.lock().unwrap(),
            [
                Some(GLUSTER_DEADLINE),
                Some(crate::cluster::pgpool::PROBE_DEADLINE)
            ]
        );
    }

    #[tokio::test]
    async fn an_unknown_host_is_named() {
        let (c, _) = cluster("");
        let e = c.swarm_nodes_from("nosuch").await.unwrap_err().to_string();
        assert_eq!(e, "cannot reach `nosuch`: not a host of the topology");
    }

    #[tokio::test]
    async fn without_credentials_only_the_password_questions_fail_with_the_reason() {
        let (c, _) = cluster("");
        let vip = c.topology().network.vip;
        for e in [
            c.pool_nodes_at(vip).await.unwrap_err().to_string(),
            c.sql_client(vip, 9999, DbUser::Kompira, "ke2")
                .await
                .map(|_| ())
                .unwrap_err()
                .to_string(),
        ] {
            assert_eq!(
                e,
                "cannot reach `the cluster's credentials`: secrets.toml unreadable"
            );
        }
        // No password needed: asked as usual.
        assert!(c.stack_ca().await.is_ok());
    }
}
