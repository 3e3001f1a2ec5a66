//! ke2lab's provisioning core: the cluster description, the `Host` abstraction,
//! the procedure's steps, pure renderers and typed probes.
//!
//! Architecture invariant: nothing in this crate talks to Docker's API; every
//! machine is reached through [`host::Host`], so the same steps run over SSH on
//! real servers and over `docker exec` on the lab's container hosts.

pub mod cluster;
pub mod host;
pub mod install;
pub mod layout;
pub mod platform;
pub mod probe;
pub mod render;
pub mod steps;
pub mod topology;
pub mod wait;
