//! Cluster questions, asked in one place: what the cluster's members say of
//! each other and of PostgreSQL, as typed data, and what that means. The
//! steps' verifies, the harness and the scenarios ask here rather than
//! wrapping the probes each their own way.

pub mod pgpool;
pub mod resolved;
