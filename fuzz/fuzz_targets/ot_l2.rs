//! Fuzz target for the OT parsers of non-IP frames: `cargo +nightly fuzz run ot_l2`.
//!
//! Byte 0 picks the EtherType (ARP, CC-Link IE, PTP); the rest is the frame's payload. The
//! frame also goes through the whole OT analyzer stage, window tables included.

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use osect_sensor::analyzers::ot::{ports, OtAnalyzers};
use osect_sensor::analyzers::{arp, cclink_ie, Record};
use osect_sensor::decode::{Decoded, MacPair, Payload};
use osect_sensor::stats::Stats;
use osect_sensor::ts::Ts;

const ETHERTYPES: [u16; 3] = [ports::ETH_ARP, ports::ETH_CCLINK_IE, ports::ETH_PTP];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let ethertype = ETHERTYPES[usize::from(pick) % ETHERTYPES.len()];
    let _ = arp::parse(payload);
    let _ = cclink_ie::parse_frame([1; 6], [2; 6], payload);
    let _ = cclink_ie::parse_ptp([1; 6], [2; 6], payload);
    let mut d = Decoded::new(Ts::from_secs(1));
    d.macs = Some(MacPair {
        src: [1; 6],
        dst: [2; 6],
    });
    d.payload = Payload::NonIp { ethertype, payload };
    let mut ot = OtAnalyzers::new(Arc::new(Stats::default()));
    let mut out: Vec<Record> = Vec::new();
    ot.on_frame(&d, &mut out);
    ot.finish(&mut out);
    assert!(out.len() <= 1);
});
