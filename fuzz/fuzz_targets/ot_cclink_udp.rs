//! Fuzz target for the CC-Link parsers over UDP (IE Field Basic, TSN SLMP):
//! `cargo +nightly fuzz run ot_cclink_udp`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use osect_sensor::analyzers::{cclink_basic, cclink_ie};

fuzz_target!(|data: &[u8]| {
    let _ = cclink_basic::parse_payload(data);
    let _ = cclink_ie::parse_slmp_payload(data);
});
