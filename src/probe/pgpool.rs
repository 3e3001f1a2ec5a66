//! Pgpool-II state: `show pool_nodes` rows (over the VIP with tokio-postgres,
//! from outside the hosts), `pcp_node_info -v` and `pcp_watchdog_info -v`
//! (key/value forms, parsed by key, never by position).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::ProbeError;
use crate::host::{Cmd, Host};

/// One row of `show pool_nodes`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoolNode {
    pub node_id: usize,
    pub hostname: String,
    pub port: u16,
    /// Pgpool-II's view: `up`, `down`, `waiting`, `quarantine`.
    pub status: String,
    /// What PostgreSQL itself answers: `up` or `down`.
    pub pg_status: String,
    /// Pgpool-II's role: `primary` or `standby`.
    pub role: String,
    /// PostgreSQL's own role.
    pub pg_role: String,
    /// `streaming`, or empty for the primary / a detached standby.
    pub replication_state: String,
    /// `async`, `sync`, `quorum`, `potential`, or empty.
    pub replication_sync_state: String,
}

impl PoolNode {
    /// Builds a row from column name → value, as both tokio-postgres and a
    /// `psql` header line give them.
    pub fn from_columns(cols: &BTreeMap<String, String>) -> Result<Self, ProbeError> {
        let get = |k: &str| {
            cols.get(k).cloned().ok_or_else(|| ProbeError::Parse {
                what: "show pool_nodes".into(),
                detail: format!("column `{k}` is missing"),
            })
        };
        let num = |k: &str| -> Result<u64, ProbeError> {
            get(k)?.trim().parse().map_err(|e| ProbeError::Parse {
                what: "show pool_nodes".into(),
                detail: format!("column `{k}`: {e}"),
            })
        };
        Ok(PoolNode {
            node_id: num("node_id")? as usize,
            hostname: get("hostname")?,
            port: num("port")? as u16,
            status: get("status")?,
            pg_status: get("pg_status")?,
            role: get("role")?,
            pg_role: get("pg_role")?,
            replication_state: get("replication_state")?,
            replication_sync_state: get("replication_sync_state")?,
        })
    }

    pub fn is_up(&self) -> bool {
        self.status == "up"
    }

    pub fn is_primary(&self) -> bool {
        self.role == "primary"
    }

    pub fn is_streaming_standby(&self) -> bool {
        self.is_up() && self.role == "standby" && self.replication_state == "streaming"
    }
}

/// A cluster's health as `show pool_nodes` states it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolSummary {
    pub up: usize,
    pub primaries: Vec<usize>,
    pub streaming: Vec<usize>,
}

impl PoolSummary {
    pub fn of(nodes: &[PoolNode]) -> Self {
        PoolSummary {
            up: nodes.iter().filter(|n| n.is_up()).count(),
            primaries: nodes
                .iter()
                .filter(|n| n.is_up() && n.is_primary())
                .map(|n| n.node_id)
                .collect(),
            streaming: nodes
                .iter()
                .filter(|n| n.is_streaming_standby())
                .map(|n| n.node_id)
                .collect(),
        }
    }

    /// All `n` up, exactly one primary, every other a streaming standby.
    pub fn is_healthy(&self, n: usize) -> bool {
        self.up == n && self.primaries.len() == 1 && self.streaming.len() == n - 1
    }
}

impl std::fmt::Display for PoolSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} up, primary {:?}, streaming standbys {:?}",
            self.up, self.primaries, self.streaming
        )
    }
}

/// `show pool_nodes` through Pgpool-II at `addr:port` (the VIP from outside).
pub async fn show_pool_nodes(
    addr: Ipv4Addr,
    port: u16,
    user: &str,
    password: &str,
    timeout: Duration,
) -> Result<Vec<PoolNode>, ProbeError> {
    let client = connect(addr, port, user, password, "postgres", timeout).await?;
    let msgs = client
        .simple_query("show pool_nodes")
        .await
        .map_err(|e| pg_err(addr, port, e))?;
    let mut out = Vec::new();
    for m in msgs {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = m {
            let cols = row
                .columns()
                .iter()
                .enumerate()
                .map(|(i, c)| (c.name().to_string(), row.get(i).unwrap_or("").to_string()))
                .collect();
            out.push(PoolNode::from_columns(&cols)?);
        }
    }
    Ok(out)
}

/// A client through Pgpool-II (or PostgreSQL); the connection task runs in
/// the background until the client is dropped.
pub async fn connect(
    addr: Ipv4Addr,
    port: u16,
    user: &str,
    password: &str,
    dbname: &str,
    timeout: Duration,
) -> Result<tokio_postgres::Client, ProbeError> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(addr.to_string())
        .port(port)
        .user(user)
        .password(password)
        .dbname(dbname)
        .connect_timeout(timeout);
    let (client, conn) = tokio::time::timeout(timeout, cfg.connect(tokio_postgres::NoTls))
        .await
        .map_err(|_| ProbeError::Unreachable {
            what: format!("{addr}:{port}"),
            detail: format!("no answer within {}s", timeout.as_secs()),
        })?
        .map_err(|e| pg_err(addr, port, e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

fn pg_err(addr: Ipv4Addr, port: u16, e: tokio_postgres::Error) -> ProbeError {
    // tokio-postgres never includes the password in its errors.
    let detail = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    };
    ProbeError::Unreachable {
        what: format!("{addr}:{port}"),
        detail,
    }
}

/// Parses `Key : value` lines into ordered groups; a blank line or a header
/// line without a colon starts a new group.
pub fn parse_key_values(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut groups = Vec::new();
    let mut cur = BTreeMap::new();
    for line in text.lines() {
        match line.split_once(':') {
            Some((k, v)) if !k.trim().is_empty() => {
                let k = k.trim().to_string();
                if cur.contains_key(&k) {
                    groups.push(std::mem::take(&mut cur));
                }
                cur.insert(k, v.trim().to_string());
            }
            _ => {
                if !cur.is_empty() {
                    groups.push(std::mem::take(&mut cur));
                }
            }
        }
    }
    if !cur.is_empty() {
        groups.push(cur);
    }
    groups
}

/// One node as `pcp_node_info -v` reports it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeInfo {
    pub hostname: String,
    pub status_name: String,
    pub role: String,
    pub replication_state: String,
}

impl NodeInfo {
    /// `waiting` is up for Pgpool-II: attached, no client has used it yet.
    pub fn is_up(&self) -> bool {
        self.status_name == "up" || self.status_name == "waiting"
    }
}

pub fn parse_node_info(text: &str) -> Result<NodeInfo, ProbeError> {
    let g = parse_key_values(text)
        .into_iter()
        .next()
        .unwrap_or_default();
    let get = |k: &str| {
        g.get(k).cloned().ok_or_else(|| ProbeError::Parse {
            what: "pcp_node_info".into(),
            detail: format!("no `{k}` in the output"),
        })
    };
    Ok(NodeInfo {
        hostname: get("Hostname")?,
        status_name: get("Status Name")?,
        role: get("Role")?,
        replication_state: g.get("Replication State").cloned().unwrap_or_default(),
    })
}

/// `pcp_node_info` for node `id`, run as postgres on `host` against its own
/// PCP port (the password comes from the postgres user's `.pcppass`).
pub fn node_info_cmd(pcp_port: u16, pcppass: &str, id: usize) -> Cmd {
    Cmd::new([
        "env".to_string(),
        format!("PCPPASSFILE={pcppass}"),
        "pcp_node_info".into(),
    ])
    .arg("-w")
    .args_from(["-h", "localhost", "-U", "pgpool", "-v"])
    .arg("-p")
    .arg(pcp_port.to_string())
    .arg("-n")
    .arg(id.to_string())
    .user("postgres")
    .deadline(crate::cluster::pgpool::PROBE_DEADLINE)
}

pub async fn node_info(
    host: &dyn Host,
    pcp_port: u16,
    pcppass: &str,
    id: usize,
) -> Result<NodeInfo, ProbeError> {
    let out = node_info_cmd(pcp_port, pcppass, id).check(host).await?;
    parse_node_info(&out.stdout_lossy())
}

/// The watchdog cluster as `pcp_watchdog_info -v` reports it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WatchdogInfo {
    pub total_nodes: usize,
    pub quorum: bool,
    /// The leader's host name (empty when there is none).
    pub leader_host: String,
    pub nodes: Vec<WatchdogNode>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WatchdogNode {
    pub host: String,
    pub status_name: String,
    pub delegate_ip: String,
}

pub fn parse_watchdog_info(text: &str) -> Result<WatchdogInfo, ProbeError> {
    let groups = parse_key_values(text);
    let err = |d: &str| ProbeError::Parse {
        what: "pcp_watchdog_info".into(),
        detail: d.to_string(),
    };
    let cluster = groups
        .iter()
        .find(|g| g.contains_key("Total Nodes"))
        .ok_or_else(|| err("no cluster section"))?;
    let total_nodes = cluster["Total Nodes"]
        .parse()
        .map_err(|_| err("`Total Nodes` is not a number"))?;
    let quorum = cluster
        .get("Quorum state")
        .is_some_and(|q| q.contains("QUORUM EXIST") || q.contains("QUORUM IS ON THE EDGE"));
    let leader_host = cluster.get("Leader Host Name").cloned().unwrap_or_default();
    let nodes = groups
        .iter()
        .filter(|g| g.contains_key("Node Name") && g.contains_key("Status Name"))
        .map(|g| WatchdogNode {
            host: g.get("Host Name").cloned().unwrap_or_default(),
            status_name: g["Status Name"].clone(),
            delegate_ip: g.get("Delegate IP").cloned().unwrap_or_default(),
        })
        .collect();
    Ok(WatchdogInfo {
        total_nodes,
        quorum,
        leader_host,
        nodes,
    })
}

pub fn watchdog_info_cmd(pcp_port: u16, pcppass: &str) -> Cmd {
    Cmd::new([
        "env".to_string(),
        format!("PCPPASSFILE={pcppass}"),
        "pcp_watchdog_info".into(),
    ])
    .arg("-w")
    .args_from(["-h", "localhost", "-U", "pgpool", "-v"])
    .arg("-p")
    .arg(pcp_port.to_string())
    .user("postgres")
    .deadline(crate::cluster::pgpool::PROBE_DEADLINE)
}

pub async fn watchdog_info(
    host: &dyn Host,
    pcp_port: u16,
    pcppass: &str,
) -> Result<WatchdogInfo, ProbeError> {
    let out = watchdog_info_cmd(pcp_port, pcppass).check(host).await?;
    parse_watchdog_info(&out.stdout_lossy())
}

/// One line of Pgpool-II's own log (`logging_collector`):
/// `2026-12-01 07:38:03.831: life_check pid 2001: LOG:  watchdog: lifecheck started`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub time: String,
    pub process: String,
    pub pid: u32,
    pub level: String,
    pub message: String,
}

/// The lines of a Pgpool-II log that have its prefix (continuations such
/// as `DETAIL:` lines of the same entry are lines of their own there).
pub fn parse_log(text: &str) -> Vec<LogLine> {
    text.lines().filter_map(parse_log_line).collect()
}

fn parse_log_line(line: &str) -> Option<LogLine> {
    // The time is `YYYY-MM-DD HH:MM:SS.mmm`, then `: `.
    let (time, rest) = line.split_at_checked(23)?;
    let rest = rest.strip_prefix(": ")?;
    let (who, rest) = rest.split_once(": ")?;
    let (process, pid) = who.rsplit_once(" pid ")?;
    let (level, message) = rest.split_once(':')?;
    Some(LogLine {
        time: time.to_string(),
        process: process.to_string(),
        pid: pid.trim().parse().ok()?,
        level: level.trim().to_string(),
        message: message.trim().to_string(),
    })
}

/// The lifecheck process's start, as Pgpool-II 4.x logs it once every
/// member it checks has answered.
pub const LIFECHECK_STARTED: &str = "watchdog: lifecheck started";

/// Every file of Pgpool-II's log directory, oldest first.
pub fn log_cmd(log_dir: &str) -> Cmd {
    Cmd::sh("cat \"$1\"/*.log 2>/dev/null; true")
        .arg(log_dir)
        .deadline(crate::cluster::pgpool::PROBE_DEADLINE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_log_lines() {
        let text = "2026-12-01 07:38:03.831: life_check pid 2001: LOG:  watchdog: lifecheck started\n\
                    2026-12-01 07:40:01.002: life_check pid 2001: DETAIL:  node id :1 status = \"NODE DEAD\" message:\"No heartbeat signal from node\"\n\
                    garbage\n";
        let l = parse_log(text);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].process, "life_check");
        assert_eq!(l[0].pid, 2001);
        assert_eq!(l[0].level, "LOG");
        assert_eq!(l[0].message, LIFECHECK_STARTED);
        assert_eq!(l[1].level, "DETAIL");
        assert!(l[1].message.contains("No heartbeat signal from node"));
    }

    #[test]
    fn pool_node_from_columns() {
        let cols: BTreeMap<String, String> = [
            ("node_id", "1"),
            ("hostname", "ke2-server2"),
            ("port", "5432"),
            ("status", "up"),
            ("pg_status", "up"),
            ("lb_weight", "0.333333"),
            ("role", "standby"),
            ("pg_role", "standby"),
            ("select_cnt", "0"),
            ("load_balance_node", "false"),
            ("replication_delay", "0"),
            ("replication_state", "streaming"),
            ("replication_sync_state", "async"),
            ("last_status_change", "2026-11-27 21:10:00"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let n = PoolNode::from_columns(&cols).unwrap();
        assert!(n.is_streaming_standby());
        assert_eq!(n.node_id, 1);
        let mut missing = cols.clone();
        missing.remove("pg_role");
        let e = PoolNode::from_columns(&missing).unwrap_err().to_string();
        assert!(e.contains("`pg_role`"), "{e}");
    }

    #[test]
    fn parses_captured_watchdog_info() {
        let w = parse_watchdog_info(include_str!(
            "../../tests/fixtures/pgpool/watchdog_info_v.txt"
        ))
        .unwrap();
        assert_eq!(w.total_nodes, 3);
        assert!(w.quorum);
        assert_eq!(w.leader_host, "ke2-server1");
        let names: Vec<_> = w
            .nodes
            .iter()
            .map(|n| (n.host.as_str(), n.status_name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("ke2-server1", "LEADER"),
                ("ke2-server2", "STANDBY"),
                ("ke2-server3", "STANDBY")
            ]
        );
        assert_eq!(w.nodes[0].delegate_ip, "172.22.199.100");
    }

    #[test]
    fn parses_captured_node_info() {
        let n = parse_node_info(include_str!(
            "../../tests/fixtures/pgpool/node_info_v_standby.txt"
        ))
        .unwrap();
        assert_eq!(n.hostname, "ke2-server2");
        assert!(n.is_up());
        assert_eq!(
            (n.role.as_str(), n.replication_state.as_str()),
            ("standby", "streaming")
        );
        assert!(parse_node_info("garbage").is_err());
    }

    #[test]
    fn watchdog_without_quorum() {
        let text = include_str!("../../tests/fixtures/pgpool/watchdog_info_v.txt")
            .replace("QUORUM EXIST", "QUORUM ABSENT")
            .replace(
                "Leader Host Name         : ke2-server1",
                "Leader Host Name         : ",
            );
        let w = parse_watchdog_info(&text).unwrap();
        assert!(!w.quorum);
        assert_eq!(w.leader_host, "");
    }

    #[test]
    fn key_values_split_into_groups() {
        let g = parse_key_values("A : 1\nB : x:y\n\nHeader\nA : 2\n");
        assert_eq!(g.len(), 2);
        assert_eq!(g[0]["B"], "x:y");
        assert_eq!(g[1]["A"], "2");
    }
}
