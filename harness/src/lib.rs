//! ke2lab's harness: builds the host image without a registry, boots
//! container "hosts", and hands them to the provisioning core as `Host`s.
//!
//! Architecture invariant: no provisioning logic lives here; installing is
//! always `ke2lab::install` on the hosts this crate provides.

pub mod argv_watch;
pub mod artifacts;
pub mod chaos;
pub mod console;
pub mod container_host;
pub mod engine;
pub mod events;
pub mod faults;
pub mod image;
pub mod lab;
pub mod measure;
pub mod overlay;
pub mod owner;
pub mod paths;
pub mod scenario;
pub mod standin;
pub mod status;
pub mod writer;

/// Every container, network and volume the harness creates carries this
/// label with the run id, so that `ke2lab down --all` can reap any leftover.
pub const RUN_LABEL: &str = "ke2lab.run";
/// The topology host name of a host container.
pub const HOST_LABEL: &str = "ke2lab.host";
/// Where the run keeps its state (remapped topology, ssh key).
pub const STATE_LABEL: &str = "ke2lab.state";

pub use container_host::ContainerHost;
pub use lab::Lab;
