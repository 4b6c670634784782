//! Helpers shared by the integration tests (`mod common;`).

// Each test binary compiles this module separately and uses only part of it.
#![allow(dead_code)]

pub mod corpus;
pub mod zeeklog;
