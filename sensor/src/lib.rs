//! osect-sensor: watches an OT network from a mirror port and turns what it sees into
//! Zeek-compatible logs, bundled every minute for upload.
//!
//! The packet's journey is one-way, one module per stage:
//! [`capture`] → [`decode`] → [`flow`] → [`analyzers`] → [`logs`] → [`spool`] → [`upload`].
//! A stage uses only the stages to its left and the shared types ([`ts`], [`stats`],
//! [`config`]). [`pipeline`] wires them together for `replay` and `run`.

// No unsafe code, with one audited exception: the memory advice in `flow::hugepages` (a
// system call that cannot affect memory safety). Parsers in particular never use it.
#![deny(unsafe_code)]

pub mod analyzers;
pub mod capture;
pub mod config;
pub mod decode;
pub mod detect;
pub mod diag;
pub mod flow;
pub mod logs;
pub mod pipeline;
pub mod spool;
pub mod stats;
pub mod support;
pub mod ts;
pub mod upgrade;
pub mod upload;
