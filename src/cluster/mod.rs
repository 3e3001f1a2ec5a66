//! Cluster questions, asked in one place: what the cluster's members say of
//! each other and of PostgreSQL, as typed data, and what that means. The
//! steps' verifies, the harness and the scenarios ask here rather than
//! wrapping the probes each their own way.
//!
//! [`Cluster`] is the whole view of one cluster (topology, hosts and
//! credentials resolved once): [`Cluster::snapshot`] reads every fact under
//! its own deadline into one serde [`Snapshot`], and [`verdict`] lists, as a
//! pure function of it, every unhealthy fact with the host it concerns.

pub mod ask;
pub mod pgpool;
pub mod resolved;
pub mod snapshot;

pub use ask::DbUser;
pub use snapshot::{Cluster, Finding, ProbeFailure, Snapshot, StackCa, verdict};

/// `Result<T, String>` as JSON: `{"ok": T}` or `{"error": "why"}`, so a
/// probe that failed reads as what it is in a snapshot or an artifact.
pub(crate) mod outcome {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize)]
    #[serde(rename_all = "lowercase")]
    enum Borrowed<'a, T> {
        Ok(&'a T),
        Error(&'a str),
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Owned<T> {
        Ok(T),
        Error(String),
    }

    pub fn serialize<S: Serializer, T: Serialize>(
        r: &Result<T, String>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match r {
            Ok(v) => Borrowed::Ok(v),
            Err(e) => Borrowed::Error(e.as_str()),
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Result<T, String>, D::Error> {
        Ok(match Owned::<T>::deserialize(d)? {
            Owned::Ok(v) => Ok(v),
            Owned::Error(e) => Err(e),
        })
    }
}
