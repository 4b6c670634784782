//! Deterministic generator of classic pcap captures for the sensor's tests and benchmarks.
//!
//! Everything here is computed from a seed with our own small PRNG, so a given command line
//! always writes byte-identical files (the committed `samples/sample.pcap` can be regenerated
//! and diffed). No external data is read.

pub mod bench;
pub mod handshakes;
pub mod ot;
pub mod other_ip;
pub mod packet;
pub mod raw;
pub mod rng;
pub mod sample;
pub mod writer;
