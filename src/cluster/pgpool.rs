//! The cluster's Pgpool-II view: the watchdog as the VIP's Pgpool-II and
//! each member see it, each member's backend list, and PostgreSQL's own
//! truth per node; and one pure function, [`decide`], that says from these
//! whether the cluster is healthy and, if not, what to do.
//!
//! Invariant: "healed" means the watchdog leader and every member. A
//! watchdog standby copies the leader's backend status only when it joins
//! as STANDBY or when the leader broadcasts the end of a failover or
//! failback that changed a node (Pgpool-II 4.6, `sync_backend_from_watchdog`
//! and `WD_FAILOVER_END`); an attach the leader ignores, a reload or
//! `auto_failback` never resync it. So a member's stale `down` is repaired
//! by restarting that member (it resyncs on rejoining), never by asking it.
//!
//! Every probe here runs under its own deadline ([`PROBE_DEADLINE`]), so a
//! partitioned or frozen member costs seconds, not the caller's whole wait.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::host::{Cmd, Host};
use crate::layout::Layout;
use crate::probe::ProbeError;
use crate::probe::pgpool::{NodeInfo, WatchdogInfo, parse_key_values, parse_node_info};
use crate::topology::Topology;

/// The limit of one `pcp_*` or `psql` call of the view.
pub const PROBE_DEADLINE: Duration = Duration::from_secs(10);

/// What PostgreSQL itself says of one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum PgState {
    /// Runs, not in recovery.
    Primary,
    /// Runs in recovery.
    Standby,
    /// Did not answer (the text says why).
    Down(String),
}

/// One row of `pg_stat_replication` on the primary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    pub application_name: String,
    pub state: String,
    pub sync_state: String,
}

/// One Pgpool-II member as it answers on its own host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// `pcp_watchdog_info` on the member's host, or why it failed.
    #[serde(with = "super::outcome")]
    pub watchdog: Result<WatchdogInfo, String>,
    /// `pcp_node_info` of every node, as this member counts them.
    #[serde(with = "super::outcome")]
    pub backends: Result<Vec<NodeInfo>, String>,
}

impl Member {
    /// The member's own watchdog state (`LEADER`, `STANDBY`, `JOINING`…).
    pub fn own_state(&self, name: &str) -> Option<&str> {
        let w = self.watchdog.as_ref().ok()?;
        w.nodes
            .iter()
            .find(|n| n.host == name)
            .map(|n| n.status_name.as_str())
    }
}

/// Everything the decision looks at, as plain data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgpoolView {
    /// Host names; a node's id is its position.
    pub hosts: Vec<String>,
    /// `pcp_watchdog_info` through the VIP (the leader answers there).
    #[serde(with = "super::outcome")]
    pub via_vip: Result<WatchdogInfo, String>,
    /// One per host, in the topology's order.
    pub members: Vec<Member>,
    /// PostgreSQL's own answer per node.
    pub pg: Vec<PgState>,
    /// `pg_stat_replication` on the primary PostgreSQL (empty without one).
    pub replicas: Vec<Replica>,
}

/// What the view says to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// The leader sees every node up, one primary and n-1 streaming
    /// standbys, PostgreSQL agrees, and every member agrees with the leader.
    Healthy { leader: usize, primary: usize },
    /// A transient state: the text says what is awaited.
    Wait { reason: String },
    /// The leader counts a streaming standby down: attach it through the
    /// leader (which decides attaches and broadcasts the failback).
    Attach { node: usize, leader: usize },
    /// The leader is right and `member` disagrees (first about `node`):
    /// resync that member.
    Resync {
        member: usize,
        leader: usize,
        node: usize,
        reason: String,
    },
    /// A state no waiting or repair may paper over.
    Error { reason: String },
}

/// Pgpool-II's `up` and `waiting` are both "attached".
fn attached(n: &NodeInfo) -> bool {
    n.is_up()
}

/// The watchdog leader: the one the VIP's Pgpool-II names, else the one a
/// majority of the answering members name with quorum.
pub fn leader_of(v: &PgpoolView) -> Option<usize> {
    let by_name = |name: &str| v.hosts.iter().position(|h| h == name);
    if let Ok(w) = &v.via_vip
        && w.quorum
        && let Some(i) = by_name(&w.leader_host)
    {
        return Some(i);
    }
    let mut votes: BTreeMap<usize, usize> = BTreeMap::new();
    for m in &v.members {
        if let Ok(w) = &m.watchdog
            && w.quorum
            && let Some(i) = by_name(&w.leader_host)
        {
            *votes.entry(i).or_default() += 1;
        }
    }
    let need = v.hosts.len() / 2 + 1;
    votes.into_iter().find(|(_, c)| *c >= need).map(|(i, _)| i)
}

/// Decides from `v` alone what is healthy and what is needed.
pub fn decide(v: &PgpoolView) -> Decision {
    let n = v.hosts.len();
    let wait = |reason: String| Decision::Wait { reason };
    let name = |i: usize| v.hosts.get(i).map_or("?", String::as_str);

    // PostgreSQL's truth first: two primaries is split brain, whatever
    // Pgpool-II believes.
    let primaries: Vec<usize> = (0..n).filter(|i| v.pg[*i] == PgState::Primary).collect();
    if primaries.len() > 1 {
        let names: Vec<&str> = primaries.iter().map(|i| name(*i)).collect();
        return Decision::Error {
            reason: format!("two PostgreSQL primaries: `{}`", names.join("`, `")),
        };
    }
    let Some(&primary) = primaries.first() else {
        return wait("no PostgreSQL primary runs".into());
    };

    let Some(leader) = leader_of(v) else {
        return wait("no watchdog leader with quorum".into());
    };
    let lm = &v.members[leader];
    if lm.own_state(name(leader)) != Some("LEADER") {
        return wait(format!(
            "`{}` is named leader but reports itself {:?}",
            name(leader),
            lm.own_state(name(leader))
        ));
    }
    let lb = match &lm.backends {
        Ok(b) if b.len() == n => b,
        Ok(b) => {
            return wait(format!(
                "the leader `{}` lists {} backends, not {n}",
                name(leader),
                b.len()
            ));
        }
        Err(e) => return wait(format!("the leader `{}` did not answer: {e}", name(leader))),
    };

    // The leader against PostgreSQL.
    if lb[primary].role != "primary" {
        return wait(format!(
            "the leader counts `{}` {} while PostgreSQL's primary is `{}`",
            name(primary),
            lb[primary].role,
            name(primary)
        ));
    }
    for s in (0..n).filter(|i| *i != primary) {
        let streams = v
            .replicas
            .iter()
            .any(|r| r.application_name == v.hosts[s] && r.state == "streaming");
        if v.pg[s] != PgState::Standby || !streams {
            return wait(format!(
                "`{}` is not a streaming standby yet (PostgreSQL: {:?})",
                name(s),
                v.pg[s]
            ));
        }
        if !attached(&lb[s]) {
            return Decision::Attach { node: s, leader };
        }
        if lb[s].role != "standby" || lb[s].replication_state != "streaming" {
            return wait(format!(
                "the leader counts `{}` {} / `{}`",
                name(s),
                lb[s].role,
                lb[s].replication_state
            ));
        }
    }

    // Every member against the leader.
    for m in (0..n).filter(|i| *i != leader) {
        let mm = &v.members[m];
        match mm.own_state(name(m)) {
            Some("STANDBY") => {}
            other => {
                return wait(format!(
                    "member `{}` is {} (not STANDBY yet)",
                    name(m),
                    other.unwrap_or("not answering")
                ));
            }
        }
        let mb = match &mm.backends {
            Ok(b) if b.len() == n => b,
            Ok(b) => {
                return wait(format!("member `{}` lists {} backends", name(m), b.len()));
            }
            Err(e) => return wait(format!("member `{}` did not answer: {e}", name(m))),
        };
        for id in 0..n {
            if attached(&mb[id]) != attached(&lb[id]) || mb[id].role != lb[id].role {
                return Decision::Resync {
                    member: m,
                    leader,
                    node: id,
                    reason: format!(
                        "member `{}` counts `{}` {} {}, the leader {} {}",
                        name(m),
                        name(id),
                        mb[id].status_name,
                        mb[id].role,
                        lb[id].status_name,
                        lb[id].role
                    ),
                };
            }
        }
    }
    Decision::Healthy { leader, primary }
}

/// How long a standby may run in recovery without streaming from the
/// primary before [`StallWatch`] names it for a rebuild. Longer than a
/// standby's start takes to connect (under a second; seconds on a loaded
/// machine), short against a heal's wait. A standby the primary's WAL has
/// moved past ("requested WAL segment … has already been removed": no slot
/// or `wal_keep_size` holds it, as the document sets none) retries every
/// `wal_retrieve_retry_interval` for ever and never streams again.
pub const STALL_GRACE: Duration = Duration::from_secs(30);

/// The standbys in `v` that run in recovery but do not replicate from its
/// one primary: PostgreSQL answers `pg_is_in_recovery()` true on them and
/// the primary's `pg_stat_replication` has no row with their
/// `application_name` in state `streaming` or `catchup`. A standby still
/// catching up (a real server's after a long outage can take minutes) is
/// progressing, not stalled; one whose WAL is gone shows, if at all, for
/// the milliseconds before its walsender fails. Empty without exactly one
/// primary (no primary to stream from, or split brain, which [`decide`]
/// refuses).
pub fn not_streaming(v: &PgpoolView) -> Vec<usize> {
    let primaries = v.pg.iter().filter(|p| **p == PgState::Primary).count();
    if primaries != 1 {
        return Vec::new();
    }
    (0..v.hosts.len())
        .filter(|&s| v.pg[s] == PgState::Standby)
        .filter(|&s| {
            !v.replicas.iter().any(|r| {
                r.application_name == v.hosts[s]
                    && matches!(r.state.as_str(), "streaming" | "catchup")
            })
        })
        .collect()
}

/// Which standbys have not streamed for the watch's grace
/// ([`STALL_GRACE`] in the recovery step) across successive views: a
/// standby is stalled once every view since the first that showed it
/// [`not_streaming`] did so, for at least the grace. One view where it streams, is down or is the primary
/// starts it over, so a standby that restarts or reconnects is never named.
#[derive(Clone, Debug)]
pub struct StallWatch {
    grace: Duration,
    since: BTreeMap<usize, std::time::Instant>,
}

impl StallWatch {
    pub fn new(grace: Duration) -> Self {
        StallWatch {
            grace,
            since: BTreeMap::new(),
        }
    }

    /// Takes the view seen at `now`; returns the standbys stalled at `now`.
    pub fn observe(&mut self, v: &PgpoolView, now: std::time::Instant) -> Vec<usize> {
        let lagging = not_streaming(v);
        self.since.retain(|s, _| lagging.contains(s));
        for &s in &lagging {
            self.since.entry(s).or_insert(now);
        }
        self.since
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(**t) >= self.grace)
            .map(|(s, _)| *s)
            .collect()
    }

    /// Starts the node's clock over (it was just rebuilt).
    pub fn forget(&mut self, node: usize) {
        self.since.remove(&node);
    }
}

/// `pcp_*` as postgres on a host, authenticated by its `.pcppass`, against
/// the Pgpool-II at `at` (`localhost` for the host's own member).
pub fn pcp(t: &Topology, layout: &Layout, tool: &str, at: &str) -> Cmd {
    Cmd::new([
        "env".to_string(),
        format!("PCPPASSFILE={}", layout.in_home(".pcppass")),
        tool.to_string(),
    ])
    .arg("-w")
    .args_from(["-h", at, "-U", "pgpool"])
    .arg("-p")
    .arg(t.ports.pcp.to_string())
    .user("postgres")
    .deadline(PROBE_DEADLINE)
}

/// Every node as `pcp_node_info -v` (all nodes, one group each) lists them.
pub fn parse_all_node_info(text: &str) -> Result<Vec<NodeInfo>, ProbeError> {
    parse_key_values(text)
        .into_iter()
        .map(|g| {
            let body: String = g.iter().map(|(k, v)| format!("{k} : {v}\n")).collect();
            parse_node_info(&body)
        })
        .collect()
}

/// `pg_stat_replication` as one JSON row.
const REPLICAS_SQL: &str = "SELECT coalesce(json_agg(json_build_object(\
'application_name', application_name, 'state', state, 'sync_state', sync_state)), '[]') \
FROM pg_stat_replication";

pub fn parse_replicas(text: &str) -> Result<Vec<Replica>, ProbeError> {
    serde_json::from_str(text.trim()).map_err(|e| ProbeError::Parse {
        what: "pg_stat_replication".into(),
        detail: e.to_string(),
    })
}

/// psql on a host's own PostgreSQL (its socket and port), under a deadline.
pub fn psql(t: &Topology, layout: &Layout, sql: &str) -> Cmd {
    Cmd::new(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(layout.socket_dir)
        .arg("-p")
        .arg(t.ports.postgres.to_string())
        .arg("-d")
        .arg("postgres")
        .arg("-c")
        .arg(sql)
        .user("postgres")
        .deadline(PROBE_DEADLINE)
}

async fn answer(h: &dyn Host, cmd: &Cmd) -> Result<String, String> {
    match cmd.check(h).await {
        Ok(o) => Ok(o.stdout_lossy()),
        Err(e) => Err(e.to_string()),
    }
}

async fn member(t: &Topology, h: &dyn Host, i: usize) -> (Member, PgState) {
    let l = Layout::of(t.hosts[i].platform);
    let wd = pcp(t, l, "pcp_watchdog_info", "localhost").arg("-v");
    let nodes = pcp(t, l, "pcp_node_info", "localhost").arg("-v");
    let (wd, nodes, pg) = tokio::join!(answer(h, &wd), answer(h, &nodes), pg_state(t, h, i));
    let watchdog =
        wd.and_then(|s| crate::probe::pgpool::parse_watchdog_info(&s).map_err(|e| e.to_string()));
    let backends = nodes.and_then(|s| parse_all_node_info(&s).map_err(|e| e.to_string()));
    (Member { watchdog, backends }, pg)
}

/// PostgreSQL's own answer on topology host `i` (`pg_is_in_recovery()`
/// over its socket, under the probe deadline).
pub(crate) async fn pg_state(t: &Topology, h: &dyn Host, i: usize) -> PgState {
    let l = Layout::of(t.hosts[i].platform);
    let rec = answer(h, &psql(t, l, "SELECT pg_is_in_recovery()")).await;
    match rec.as_deref().map(str::trim) {
        Ok("f") => PgState::Primary,
        Ok("t") => PgState::Standby,
        Ok(other) => PgState::Down(format!("answered `{other}`")),
        Err(e) => PgState::Down(e.clone()),
    }
}

/// Reads the whole view: every host at once, then the VIP's watchdog and
/// the primary's replication.
pub async fn observe(t: &Topology, hosts: &[std::sync::Arc<dyn Host>]) -> PgpoolView {
    let per_host = futures_util::future::join_all(
        hosts
            .iter()
            .enumerate()
            .map(|(i, h)| member(t, h.as_ref(), i)),
    )
    .await;
    let (members, pg): (Vec<Member>, Vec<PgState>) = per_host.into_iter().unzip();
    let vip = t.network.vip.to_string();
    // Asked from the first host whose own member answers: the VIP is a
    // network path, so a host that cannot reach it says so in the result.
    let asker = members.iter().position(|m| m.watchdog.is_ok()).unwrap_or(0);
    let l = Layout::of(t.hosts[asker].platform);
    let via_vip = answer(
        hosts[asker].as_ref(),
        &pcp(t, l, "pcp_watchdog_info", &vip).arg("-v"),
    )
    .await
    .and_then(|s| crate::probe::pgpool::parse_watchdog_info(&s).map_err(|e| e.to_string()));
    let replicas = match pg.iter().position(|p| *p == PgState::Primary) {
        Some(p) => {
            let l = Layout::of(t.hosts[p].platform);
            answer(hosts[p].as_ref(), &psql(t, l, REPLICAS_SQL))
                .await
                .and_then(|s| parse_replicas(&s).map_err(|e| e.to_string()))
                .unwrap_or_default()
        }
        None => Vec::new(),
    };
    PgpoolView {
        hosts: t.hosts.iter().map(|h| h.name.clone()).collect(),
        via_vip,
        members,
        pg,
        replicas,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::pgpool::WatchdogNode;

    const HOSTS: [&str; 3] = ["s1", "s2", "s3"];

    fn node(host: &str, status: &str, role: &str, repl: &str) -> NodeInfo {
        NodeInfo {
            hostname: host.into(),
            status_name: status.into(),
            role: role.into(),
            replication_state: repl.into(),
        }
    }

    /// Node 0 primary, 1 and 2 streaming, as everyone sees it.
    fn backends() -> Vec<NodeInfo> {
        vec![
            node("s1", "up", "primary", ""),
            node("s2", "up", "standby", "streaming"),
            node("s3", "waiting", "standby", "streaming"),
        ]
    }

    fn wd(leader: &str, states: [&str; 3]) -> WatchdogInfo {
        WatchdogInfo {
            total_nodes: 3,
            quorum: !leader.is_empty(),
            leader_host: leader.into(),
            nodes: HOSTS
                .iter()
                .zip(states)
                .map(|(h, s)| WatchdogNode {
                    host: h.to_string(),
                    status_name: s.into(),
                    delegate_ip: "10.0.0.100".into(),
                })
                .collect(),
        }
    }

    fn healthy() -> PgpoolView {
        let w = wd("s1", ["LEADER", "STANDBY", "STANDBY"]);
        PgpoolView {
            hosts: HOSTS.iter().map(|h| h.to_string()).collect(),
            via_vip: Ok(w.clone()),
            members: (0..3)
                .map(|_| Member {
                    watchdog: Ok(w.clone()),
                    backends: Ok(backends()),
                })
                .collect(),
            pg: vec![PgState::Primary, PgState::Standby, PgState::Standby],
            replicas: ["s2", "s3"]
                .iter()
                .map(|a| Replica {
                    application_name: a.to_string(),
                    state: "streaming".into(),
                    sync_state: "async".into(),
                })
                .collect(),
        }
    }

    fn set_status(v: &mut PgpoolView, member: usize, node: usize, status: &str) {
        v.members[member].backends.as_mut().unwrap()[node].status_name = status.into();
    }

    #[test]
    fn table_of_cases() {
        type Case = (&'static str, fn(&mut PgpoolView), Decision);
        let cases: Vec<Case> = vec![
            (
                "healthy",
                |_| {},
                Decision::Healthy {
                    leader: 0,
                    primary: 0,
                },
            ),
            (
                "the leader shows a streaming standby down: attach through the leader",
                |v| set_status(v, 0, 2, "down"),
                Decision::Attach { node: 2, leader: 0 },
            ),
            (
                "a member stale while the leader is right: resync that member",
                |v| set_status(v, 1, 2, "down"),
                Decision::Resync {
                    member: 1,
                    leader: 0,
                    node: 2,
                    reason: "member `s2` counts `s3` down standby, the leader waiting standby"
                        .into(),
                },
            ),
            (
                "a member not STANDBY yet: wait",
                |v| {
                    v.members[2].watchdog = Ok(wd("s1", ["LEADER", "STANDBY", "JOINING"]));
                    set_status(v, 2, 1, "down");
                },
                Decision::Wait {
                    reason: "member `s3` is JOINING (not STANDBY yet)".into(),
                },
            ),
            (
                "no leader: wait",
                |v| {
                    let none = wd("", ["STANDBY", "STANDBY", "STANDBY"]);
                    v.via_vip = Err("no answer".into());
                    for m in &mut v.members {
                        m.watchdog = Ok(none.clone());
                    }
                },
                Decision::Wait {
                    reason: "no watchdog leader with quorum".into(),
                },
            ),
            (
                "two primaries: error",
                |v| v.pg[2] = PgState::Primary,
                Decision::Error {
                    reason: "two PostgreSQL primaries: `s1`, `s3`".into(),
                },
            ),
            (
                "the VIP does not answer: the members' majority names the leader",
                |v| v.via_vip = Err("timed out".into()),
                Decision::Healthy {
                    leader: 0,
                    primary: 0,
                },
            ),
            (
                "a standby not streaming yet: wait, whatever Pgpool-II says",
                |v| v.replicas.retain(|r| r.application_name != "s2"),
                Decision::Wait {
                    reason: "`s2` is not a streaming standby yet (PostgreSQL: Standby)".into(),
                },
            ),
            (
                "PostgreSQL down on a standby: wait for its recovery",
                |v| v.pg[1] = PgState::Down("no server".into()),
                Decision::Wait {
                    reason: "`s2` is not a streaming standby yet (PostgreSQL: Down(\"no server\"))"
                        .into(),
                },
            ),
            (
                "a member unreachable: wait",
                |v| {
                    v.members[2].watchdog = Err("deadline".into());
                    v.members[2].backends = Err("deadline".into());
                },
                Decision::Wait {
                    reason: "member `s3` is not answering (not STANDBY yet)".into(),
                },
            ),
            (
                "failover in progress: the leader still counts the old primary",
                |v| {
                    v.pg = vec![
                        PgState::Down("gone".into()),
                        PgState::Primary,
                        PgState::Standby,
                    ];
                },
                Decision::Wait {
                    reason: "the leader counts `s2` standby while PostgreSQL's primary is `s2`"
                        .into(),
                },
            ),
            (
                "the leader is another host",
                |v| {
                    let w = wd("s2", ["STANDBY", "LEADER", "STANDBY"]);
                    v.via_vip = Ok(w.clone());
                    for m in &mut v.members {
                        m.watchdog = Ok(w.clone());
                    }
                },
                Decision::Healthy {
                    leader: 1,
                    primary: 0,
                },
            ),
            (
                "the stale member is the primary's host while another leads",
                |v| {
                    let w = wd("s2", ["STANDBY", "LEADER", "STANDBY"]);
                    v.via_vip = Ok(w.clone());
                    for m in &mut v.members {
                        m.watchdog = Ok(w.clone());
                    }
                    set_status(v, 0, 2, "down");
                },
                Decision::Resync {
                    member: 0,
                    leader: 1,
                    node: 2,
                    reason: "member `s1` counts `s3` down standby, the leader waiting standby"
                        .into(),
                },
            ),
        ];
        for (what, change, want) in cases {
            let mut v = healthy();
            change(&mut v);
            assert_eq!(decide(&v), want, "{what}");
        }
    }

    #[test]
    fn not_streaming_names_a_running_standby_the_primary_does_not_stream_to() {
        let mut v = healthy();
        assert_eq!(not_streaming(&v), Vec::<usize>::new());
        // Catching up is progress; starting up (or no row) is not.
        v.replicas[1].state = "catchup".into();
        assert_eq!(not_streaming(&v), Vec::<usize>::new());
        v.replicas[1].state = "startup".into();
        assert_eq!(not_streaming(&v), vec![2]);
        v.replicas.truncate(1);
        assert_eq!(not_streaming(&v), vec![2]);
        // A standby that does not run is the plan's rebuild, not a stall.
        v.pg[2] = PgState::Down("no server".into());
        assert_eq!(not_streaming(&v), Vec::<usize>::new());
        // No primary, or two: nothing to stream from, nothing named.
        let mut v = healthy();
        v.replicas.clear();
        v.pg[0] = PgState::Down("no server".into());
        assert_eq!(not_streaming(&v), Vec::<usize>::new());
        v.pg[0] = PgState::Primary;
        v.pg[1] = PgState::Primary;
        assert_eq!(not_streaming(&v), Vec::<usize>::new());
    }

    #[test]
    fn a_stall_is_named_only_after_its_grace_without_a_break() {
        let t0 = std::time::Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut w = StallWatch::new(Duration::from_secs(30));
        let mut stalled = healthy();
        stalled.replicas.truncate(1);
        assert_eq!(w.observe(&stalled, at(0)), Vec::<usize>::new());
        assert_eq!(w.observe(&stalled, at(29)), Vec::<usize>::new());
        assert_eq!(w.observe(&stalled, at(30)), vec![2]);
        // One view where it streams starts the clock over.
        assert_eq!(w.observe(&healthy(), at(31)), Vec::<usize>::new());
        assert_eq!(w.observe(&stalled, at(32)), Vec::<usize>::new());
        assert_eq!(w.observe(&stalled, at(61)), Vec::<usize>::new());
        assert_eq!(w.observe(&stalled, at(62)), vec![2]);
        // So does a view where it is down (restarting).
        let mut down = stalled.clone();
        down.pg[2] = PgState::Down("no server".into());
        assert_eq!(w.observe(&down, at(63)), Vec::<usize>::new());
        assert_eq!(w.observe(&stalled, at(64)), Vec::<usize>::new());
        // And a rebuild.
        assert_eq!(w.observe(&stalled, at(94)), vec![2]);
        w.forget(2);
        assert_eq!(w.observe(&stalled, at(95)), Vec::<usize>::new());
    }

    #[test]
    fn parses_all_nodes_of_one_call() {
        let one = include_str!("../../tests/fixtures/pgpool/node_info_v_standby.txt");
        let text = format!("{}{}", one, one.replace("ke2-server2", "ke2-server3"));
        let all = parse_all_node_info(&text).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].hostname, "ke2-server3");
        assert!(all.iter().all(|n| n.replication_state == "streaming"));
    }

    #[test]
    fn parses_replicas() {
        let r = parse_replicas(
            r#"[{"application_name":"s2","state":"streaming","sync_state":"quorum"}]"#,
        )
        .unwrap();
        assert_eq!(r[0].sync_state, "quorum");
        assert_eq!(parse_replicas("[]\n").unwrap(), vec![]);
        assert!(parse_replicas("ERROR").is_err());
    }
}
