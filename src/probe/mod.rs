//! Read-only, typed views of a cluster's real state. Probes parse the
//! structured forms tools offer (`--format '{{json .}}'`, `--xml`, SQL rows),
//! never free text.

pub mod gluster;
pub mod http;
pub mod net;
pub mod pgpool;
pub mod stack;
pub mod swarm;

use thiserror::Error;

use crate::host::HostError;

#[derive(Debug, Error)]
pub enum ProbeError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("cannot parse the output of `{what}`: {detail}")]
    Parse { what: String, detail: String },
    /// A swarm manager refused a manager operation because the managers it
    /// reaches are no majority (Raft has no leader).
    #[error("the swarm has no leader as `{host}` sees it (managers without quorum)")]
    NoSwarmQuorum { host: String },
    /// A network probe (e.g. a SQL connection through the VIP) got no answer.
    #[error("cannot reach `{what}`: {detail}")]
    Unreachable { what: String, detail: String },
}
