//! The fault scenarios as library functions, shared by the nextest
//! scenarios (`scenarios/tests/`) and `ke2lab scenario`.

pub mod common;
