//! Fuzz target for the decode stage: `cargo +nightly fuzz run decode`.
//!
//! One input is a short session of frames, so that state carried between frames (fragment
//! reassembly) is exercised too:
//!
//! ```text
//! byte 0        flags: bit 0 = verify checksums, bit 1 = tiny fragment table
//! then repeated: [link type index: u8] [length: u16 LE] [frame bytes]
//! ```
//!
//! The link type index picks from every link type the decoder supports plus one it does not.
//! A final frame whose length runs past the input takes what is left. A fresh decoder per input
//! keeps every crash reproducible from its input alone.

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use osect_sensor::decode::{linktype, DecodeConfig, Decoder, Frame, Payload, MAX_LAYERS};
use osect_sensor::stats::Stats;
use osect_sensor::ts::Ts;

const LINKTYPES: [u32; 12] = [
    linktype::ETHERNET,
    linktype::RAW,
    linktype::IPV4,
    linktype::IPV6,
    linktype::NULL,
    linktype::LOOP,
    linktype::LINUX_SLL,
    linktype::LINUX_SLL2,
    linktype::NFLOG,
    linktype::IEEE802_11,
    linktype::IEEE802_11_RADIOTAP,
    147, // a link type the decoder does not know
];

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let cfg = DecodeConfig {
        verify_checksums: flags & 1 != 0,
        max_fragment_sets: if flags & 2 != 0 { 2 } else { 64 },
        max_fragment_bytes: if flags & 2 != 0 { 2048 } else { 256 * 1024 },
        fragment_timeout_secs: 30,
    };
    let mut dec = Decoder::new(cfg, Arc::new(Stats::default()));
    let mut ts = 0i64;
    while let [lt, l0, l1, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*l0, *l1])).min(tail.len());
        let (frame, next) = tail.split_at(len);
        rest = next;
        ts += 1_000_000;
        let linktype = LINKTYPES[usize::from(*lt) % LINKTYPES.len()];
        // The high bit of the type byte claims the frame was longer on the wire (snap length).
        let wire_len = frame.len() as u32 + if *lt & 0x80 != 0 { 1500 } else { 0 };
        let f = Frame {
            ts: Ts(ts),
            linktype,
            data: frame,
            wire_len,
        };
        if let Ok(d) = dec.decode(f) {
            assert!(d.depth() <= MAX_LAYERS);
            assert_eq!(d.layers().count(), d.depth());
            if matches!(d.payload, Payload::Ip) {
                assert!(d.depth() >= 1);
            }
            if let Some(inner) = d.innermost() {
                assert!(inner.encap.is_none());
            }
        }
    }
});
