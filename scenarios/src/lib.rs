//! Cluster-tier scenarios live in `tests/`; what several of them ask of a
//! lab lives in the harness (`ke2lab_harness::scenario::common`), so that
//! `ke2lab scenario` runs the same code, and is re-exported here.

pub use ke2lab_harness::scenario::common::*;
