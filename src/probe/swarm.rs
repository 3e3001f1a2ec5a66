//! Swarm state from `docker node ls --format '{{json .}}'` and
//! `docker info --format '{{json .Swarm}}'`, parsed into typed structs.

use serde::{Deserialize, Serialize};

use super::ProbeError;
use crate::host::{Cmd, Host};

/// `Status` of a node in `docker node ls`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeStatus {
    Ready,
    Down,
    Disconnected,
    Unknown,
}

/// `Availability` of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Availability {
    Active,
    Pause,
    Drain,
}

/// `ManagerStatus` of a node; absent for workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ManagerStatus {
    Leader,
    Reachable,
    Unreachable,
}

/// One line of `docker node ls --format '{{json .}}'`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmNode {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Hostname")]
    pub hostname: String,
    #[serde(rename = "Status")]
    pub status: NodeStatus,
    #[serde(rename = "Availability")]
    pub availability: Availability,
    /// Docker prints an empty string for workers.
    #[serde(rename = "ManagerStatus", with = "empty_as_none")]
    pub manager_status: Option<ManagerStatus>,
    #[serde(rename = "Self")]
    pub is_self: bool,
    #[serde(rename = "EngineVersion", default)]
    pub engine_version: String,
}

/// `LocalNodeState` of `docker info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LocalNodeState {
    Inactive,
    Pending,
    Active,
    Error,
    Locked,
}

/// The part of `.Swarm.Cluster` the steps and scenarios need.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "DataPathPort", default)]
    pub data_path_port: u16,
}

/// One remote manager known to this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteManager {
    #[serde(rename = "NodeID")]
    pub node_id: String,
    #[serde(rename = "Addr")]
    pub addr: String,
}

/// `docker info --format '{{json .Swarm}}'`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmInfo {
    #[serde(rename = "NodeID", default)]
    pub node_id: String,
    #[serde(rename = "NodeAddr", default)]
    pub node_addr: String,
    #[serde(rename = "LocalNodeState")]
    pub local_node_state: LocalNodeState,
    #[serde(rename = "ControlAvailable", default)]
    pub control_available: bool,
    #[serde(rename = "Error", default)]
    pub error: String,
    #[serde(
        rename = "RemoteManagers",
        default,
        deserialize_with = "null_as_default"
    )]
    pub remote_managers: Vec<RemoteManager>,
    #[serde(rename = "Nodes", default)]
    pub nodes: u32,
    #[serde(rename = "Managers", default)]
    pub managers: u32,
    /// Present on managers only.
    #[serde(rename = "Cluster", default)]
    pub cluster: Option<ClusterInfo>,
}

impl SwarmInfo {
    pub fn is_active(&self) -> bool {
        self.local_node_state == LocalNodeState::Active
    }

    /// The swarm's cluster id, when this node knows it (a manager without
    /// a reachable Raft leader reports none, or an empty one).
    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster
            .as_ref()
            .map(|c| c.id.as_str())
            .filter(|id| !id.is_empty())
    }
}

/// Parses the JSON lines of `docker node ls`.
pub fn parse_node_ls(text: &str) -> Result<Vec<SwarmNode>, ProbeError> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|e| ProbeError::Parse {
                what: "docker node ls".into(),
                detail: format!("{e} in `{l}`"),
            })
        })
        .collect()
}

/// Parses `docker info --format '{{json .Swarm}}'`.
pub fn parse_swarm_info(text: &str) -> Result<SwarmInfo, ProbeError> {
    serde_json::from_str(text.trim()).map_err(|e| ProbeError::Parse {
        what: "docker info .Swarm".into(),
        detail: e.to_string(),
    })
}

pub fn node_ls_cmd() -> Cmd {
    Cmd::new(["docker", "node", "ls", "--format", "{{json .}}"])
}

pub fn swarm_info_cmd() -> Cmd {
    Cmd::new(["docker", "info", "--format", "{{json .Swarm}}"])
}

/// The swarm as one manager sees it; [`ProbeError::NoSwarmQuorum`] when the
/// manager has lost its majority.
pub async fn nodes(host: &dyn Host) -> Result<Vec<SwarmNode>, ProbeError> {
    let cmd = node_ls_cmd();
    let out = host.run(&cmd).await?;
    if !out.success() {
        let stderr = out.stderr_lossy();
        if is_no_leader(&stderr) {
            return Err(ProbeError::NoSwarmQuorum {
                host: host.name().to_string(),
            });
        }
        return Err(crate::host::HostError::Failed {
            host: host.name().to_string(),
            command: cmd.to_string(),
            code: out.status,
            stderr: stderr.trim_end().to_string(),
        }
        .into());
    }
    parse_node_ls(&out.stdout_lossy())
}

/// Whether an engine's error is Raft's "no leader". The API returns it as a
/// gRPC `Unknown` status whose only distinguishing part is this message
/// (moby's `swarmkit` `raft.ErrNoClusterLeader`), so the message is matched.
pub fn is_no_leader(stderr: &str) -> bool {
    stderr.contains("The swarm does not have a leader")
}

/// This host's own swarm membership.
pub async fn info(host: &dyn Host) -> Result<SwarmInfo, ProbeError> {
    let out = swarm_info_cmd().check(host).await?;
    parse_swarm_info(&out.stdout_lossy())
}

/// A summary of a node list: what a healthy three-manager swarm must show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwarmSummary {
    pub nodes: usize,
    pub ready_active: usize,
    pub leaders: Vec<String>,
    pub reachable: usize,
}

impl SwarmSummary {
    pub fn of(nodes: &[SwarmNode]) -> Self {
        SwarmSummary {
            nodes: nodes.len(),
            ready_active: nodes
                .iter()
                .filter(|n| n.status == NodeStatus::Ready && n.availability == Availability::Active)
                .count(),
            leaders: nodes
                .iter()
                .filter(|n| n.manager_status == Some(ManagerStatus::Leader))
                .map(|n| n.hostname.clone())
                .collect(),
            reachable: nodes
                .iter()
                .filter(|n| n.manager_status == Some(ManagerStatus::Reachable))
                .count(),
        }
    }

    /// All `n` nodes Ready/Active managers, one Leader, the rest Reachable.
    pub fn is_healthy(&self, n: usize) -> bool {
        self.nodes == n
            && self.ready_active == n
            && self.leaders.len() == 1
            && self.reachable == n - 1
    }
}

impl std::fmt::Display for SwarmSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} nodes, {} ready/active, leader {:?}, {} reachable",
            self.nodes, self.ready_active, self.leaders, self.reachable
        )
    }
}

mod empty_as_none {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::ManagerStatus;

    pub fn serialize<S: Serializer>(v: &Option<ManagerStatus>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(m) => m.serialize(s),
            None => s.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ManagerStatus>, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Ok(None);
        }
        ManagerStatus::deserialize(serde::de::value::StrDeserializer::<D::Error>::new(&s)).map(Some)
    }
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manager_without_quorum_is_a_typed_error() {
        use crate::host::{Output, Recorder, Rule};
        // Captured from a lab manager whose two peers were stopped.
        let stderr = "Error response from daemon: rpc error: code = Unknown desc = The swarm does not have a leader. It's possible that too few managers are online. Make sure more than half of the managers are online.\n";
        let r = Recorder::new();
        r.rule(Rule::on(
            "a",
            "docker node ls",
            vec![Output::fail(1, stderr)],
        ));
        r.rule(Rule::on(
            "b",
            "docker node ls",
            vec![Output::fail(1, "Cannot connect to the Docker daemon\n")],
        ));
        match nodes(&r.host("a")).await {
            Err(ProbeError::NoSwarmQuorum { host }) => assert_eq!(host, "a"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            nodes(&r.host("b")).await,
            Err(ProbeError::Host(_))
        ));
    }
    use proptest::prelude::*;

    // Captured from a lab host (engine 26.1.5) right after the swarm formed.
    const NODE_LS: &str = r#"{"Availability":"Active","EngineVersion":"26.1.5+dfsg1","Hostname":"exph1","ID":"wgzgvy002lbh8uw46g7m9sguc","ManagerStatus":"Leader","Self":true,"Status":"Ready","TLSStatus":"Ready"}
{"Availability":"Active","EngineVersion":"26.1.5+dfsg1","Hostname":"exph2","ID":"lg9h8ww438nng0ietf6id0zmw","ManagerStatus":"Reachable","Self":false,"Status":"Ready","TLSStatus":"Ready"}
{"Availability":"Active","EngineVersion":"26.1.5+dfsg1","Hostname":"exph3","ID":"i871pnj49ahp38fy127rqxzqn","ManagerStatus":"Reachable","Self":false,"Status":"Ready","TLSStatus":"Ready"}
"#;
    const INFO_ACTIVE: &str = r#"{"NodeID":"lg9h8ww438nng0ietf6id0zmw","NodeAddr":"172.30.7.2","LocalNodeState":"active","ControlAvailable":true,"Error":"","RemoteManagers":[{"NodeID":"wgzgvy002lbh8uw46g7m9sguc","Addr":"172.30.7.1:2377"}],"Nodes":3,"Managers":3,"Cluster":{"ID":"m9iq63442572yseh6oy5g0u06","Version":{"Index":10},"SubnetSize":24,"DataPathPort":7789}}"#;
    const INFO_INACTIVE: &str = r#"{"NodeID":"","NodeAddr":"","LocalNodeState":"inactive","ControlAvailable":false,"Error":"","RemoteManagers":null}"#;

    #[test]
    fn parses_captured_node_ls() {
        let nodes = parse_node_ls(NODE_LS).unwrap();
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[0].manager_status, Some(ManagerStatus::Leader));
        assert!(nodes[0].is_self);
        let s = SwarmSummary::of(&nodes);
        assert!(s.is_healthy(3), "{s}");
        assert_eq!(s.leaders, vec!["exph1".to_string()]);
    }

    #[test]
    fn parses_worker_and_down_node() {
        let l = r#"{"Availability":"Drain","Hostname":"w","ID":"x","ManagerStatus":"","Self":false,"Status":"Down"}"#;
        let n = &parse_node_ls(l).unwrap()[0];
        assert_eq!(n.manager_status, None);
        assert_eq!(n.status, NodeStatus::Down);
        assert_eq!(n.availability, Availability::Drain);
        assert!(!SwarmSummary::of(std::slice::from_ref(n)).is_healthy(1));
    }

    #[test]
    fn parses_swarm_info_both_states() {
        let a = parse_swarm_info(INFO_ACTIVE).unwrap();
        assert!(a.is_active() && a.control_available);
        assert_eq!(a.cluster.as_ref().unwrap().data_path_port, 7789);
        let i = parse_swarm_info(INFO_INACTIVE).unwrap();
        assert_eq!(i.local_node_state, LocalNodeState::Inactive);
        assert!(i.cluster.is_none() && i.remote_managers.is_empty());
    }

    #[test]
    fn garbage_is_a_parse_error_naming_the_probe() {
        let e = parse_node_ls("not json").unwrap_err().to_string();
        assert!(e.contains("docker node ls"), "{e}");
    }

    fn arb_node() -> impl Strategy<Value = SwarmNode> {
        (
            "[a-z0-9]{25}",
            "[a-z][a-z0-9-]{0,20}",
            prop_oneof![
                Just(NodeStatus::Ready),
                Just(NodeStatus::Down),
                Just(NodeStatus::Disconnected),
                Just(NodeStatus::Unknown)
            ],
            prop_oneof![
                Just(Availability::Active),
                Just(Availability::Pause),
                Just(Availability::Drain)
            ],
            prop_oneof![
                Just(None),
                Just(Some(ManagerStatus::Leader)),
                Just(Some(ManagerStatus::Reachable)),
                Just(Some(ManagerStatus::Unreachable))
            ],
            any::<bool>(),
            "[0-9.]{1,10}",
        )
            .prop_map(
                |(id, hostname, status, availability, manager_status, is_self, v)| SwarmNode {
                    id,
                    hostname,
                    status,
                    availability,
                    manager_status,
                    is_self,
                    engine_version: v,
                },
            )
    }

    proptest! {
        // Rendering nodes the way docker does (one JSON object a line) and
        // parsing them back gives the same nodes.
        #[test]
        fn node_ls_round_trips(nodes in proptest::collection::vec(arb_node(), 0..8)) {
            let text: String = nodes.iter().map(|n| serde_json::to_string(n).unwrap() + "\n").collect();
            prop_assert_eq!(parse_node_ls(&text).unwrap(), nodes);
        }

        // Arbitrary input never panics the parser.
        #[test]
        fn node_ls_never_panics(s in ".{0,200}") {
            let _ = parse_node_ls(&s);
        }
    }
}
