//! Scripted hosts for the transcript tests: each phase of the install
//! (swarm, shared directory, database) as a `Recorder` whose answers are
//! derived from the topology alone (names, addresses, ports, paths, host
//! count), so the same script serves the document's example in the snapshot
//! tests and any generated topology in `no_defaults.rs`. Each rule answers
//! "before" until the command that changes the state ran, "after" from then
//! on; answers are per host where the hosts' views differ.
//!
//! Every test crate includes this module and uses part of it.
#![allow(dead_code)]

pub mod db;
pub mod gluster;
pub mod stack;
pub mod swarm;

use ke2lab::topology::{Platform, Topology};

/// The topology of a fixture with every host on `platform`.
pub fn on_platform(fixture: &str, platform: Platform) -> Topology {
    let mut t = Topology::fixture(fixture).unwrap().topology;
    for h in &mut t.hosts {
        h.platform = platform;
    }
    t
}
