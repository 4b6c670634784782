//! Fuzz target for p0f-k.log: `cargo +nightly fuzz run p0f`.
//!
//! ```text
//! byte 0       n: how many of the following bytes are fingerprint database text
//! then n bytes database text (parsed on its own; a valid one replaces the built-in)
//! then repeated: [length: u8] [IP packet bytes]   (raw IP link type)
//! ```
//!
//! The database parser must return an error, never panic, on any text; the signature
//! extractor and matcher see every SYN / SYN+ACK the decoder accepts (checksums not verified,
//! so mutated headers get through), and yaf_flow.log's table sees every other protocol.

#![no_main]

use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use osect_sensor::analyzers::p0f::{Database, P0f};
use osect_sensor::analyzers::yaf::YafTable;
use osect_sensor::config::YafConfig;
use osect_sensor::decode::{linktype, DecodeConfig, Decoder, Frame};
use osect_sensor::stats::Stats;
use osect_sensor::ts::Ts;

const BUILTIN: &str = "[tcp:request]\nlabel = s:unix:Linux:3.x\n\
sig = *:64:0:*:mss*20,7:mss,sok,ts,nop,ws:df,id+:0\nlabel = g:unix:Any:\nsig = *:64-:0:*:*,*:::*\n\
[tcp:response]\nlabel = s:unix:Linux:3.x\nsig = *:64:0:*:mss*10,*:mss,sok,ts,nop,ws:df:0\n";

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (text, mut frames) = rest.split_at(usize::from(n).min(rest.len()));
    let parsed = Database::parse(&String::from_utf8_lossy(text), Path::new("fuzz.fp"));
    let db = parsed.unwrap_or_else(|_| Database::parse(BUILTIN, Path::new("builtin.fp")).unwrap());
    let stats = Arc::new(Stats::default());
    let mut p0f = P0f::new(Arc::new(db), stats.clone());
    let mut yaf = YafTable::new(
        YafConfig {
            max_flows: 4,
            ..YafConfig::default()
        },
        stats.clone(),
    );
    let mut dec = Decoder::new(
        DecodeConfig {
            verify_checksums: false,
            ..DecodeConfig::default()
        },
        stats,
    );
    let mut ts = 0i64;
    while let [len, tail @ ..] = frames {
        let (frame, next) = tail.split_at(usize::from(*len).min(tail.len()));
        frames = next;
        ts += 7_000_000;
        let f = Frame {
            ts: Ts(ts),
            linktype: linktype::RAW,
            data: frame,
            wire_len: frame.len() as u32,
        };
        if let Ok(d) = dec.decode(f) {
            if let Some(r) = p0f.on_frame(&d) {
                assert!(!r.line().contains('\n'));
            }
            yaf.on_frame(&d, &mut |r| assert_eq!(r.line().split('\t').count(), 25));
        }
    }
    yaf.finish(&mut |_| {});
});
