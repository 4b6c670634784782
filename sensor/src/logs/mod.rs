//! Log stage: record writers, interval folders, rotation.

pub mod zeek;
