//! Fuzz target for the DNS analyzer's parsing: `cargo +nightly fuzz run dns`.
//!
//! One input is a conversation on one connection, so that state carried between messages
//! (query/reply pairing, the pending tables, TCP framing, the `pkts` windows) is exercised too:
//!
//! ```text
//! byte 0        flags: bit 0 = NetBIOS port, bit 1 = multicast responder, bit 2 = TCP
//! then repeated: [direction and time step: u8] [length: u16 LE] [bytes]
//! ```
//!
//! Over UDP each chunk is one message; over TCP each chunk is a segment of the direction's
//! stream (bit 7 of the first byte makes it a retransmission of the previous segment's
//! sequence number, bit 6 skips ahead: a gap). A final chunk whose length runs past the input
//! takes what is left.

#![no_main]

use libfuzzer_sys::fuzz_target;
use osect_sensor::analyzers::dns::session::{ConnCtx, Sessions};
use osect_sensor::analyzers::dns::tcp::Stream;
use osect_sensor::analyzers::dns::window::Windows;
use osect_sensor::analyzers::dns::wire::{self, Options, Parsed, MAX_ANSWERS};
use osect_sensor::flow::Uid;
use osect_sensor::ts::Ts;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let tcp = flags & 4 != 0;
    let conn = ConnCtx {
        uid: Uid(1),
        orig: ("192.0.2.1".parse().unwrap(), 40000),
        resp: (
            if flags & 2 != 0 {
                "224.0.0.251".parse().unwrap()
            } else {
                "192.0.2.2".parse().unwrap()
            },
            if flags & 1 != 0 { 137 } else { 53 },
        ),
        tcp,
    };
    let opt = Options {
        netbios: flags & 1 != 0,
    };
    let mut sessions = Sessions::default();
    let mut windows = Windows::new(8);
    let mut parsed = Parsed::default();
    let mut streams = [Stream::default(), Stream::default()];
    let mut seqs = [1000u32, 5000u32];
    let mut last = [1000u32, 5000u32];
    let mut ts = 0i64;
    let mut msgs: Vec<Vec<u8>> = Vec::new();
    let mut rows = 0u64;
    while let [ctl, l0, l1, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*l0, *l1])).min(tail.len());
        let (chunk, next) = tail.split_at(len);
        rest = next;
        ts += i64::from(*ctl & 0x3f) * 100_000;
        if tcp {
            let dir = usize::from(*ctl & 0x20 != 0);
            let seq = if *ctl & 0x80 != 0 {
                last[dir]
            } else {
                seqs[dir]
            };
            let seq = if *ctl & 0x40 != 0 {
                seq.wrapping_add(7)
            } else {
                seq
            };
            let _ = streams[dir].segment(seq, false, chunk, chunk.len() as u32, &mut msgs);
            last[dir] = seq;
            seqs[dir] = seq.wrapping_add(chunk.len() as u32);
        } else {
            msgs.push(chunk.to_vec());
        }
        for m in msgs.drain(..) {
            let _ = wire::plausible(&m, true);
            let _ = wire::plausible(&m, false);
            if !wire::parse(&m, opt, &mut parsed) {
                continue;
            }
            assert!(parsed.answers <= MAX_ANSWERS);
            for r in &parsed.replies {
                assert!(r.owner.end <= parsed.text.len() && r.text.end <= parsed.text.len());
            }
            sessions.message(conn, Ts(ts), &parsed, &mut |info| {
                windows.add(info, Ts(ts), &mut |_, _| rows += 1);
            });
        }
        windows.expire(Ts(ts), &mut |_, _| rows += 1);
    }
    for s in &mut streams {
        let _ = s.flush();
    }
    sessions.finish(conn, &mut |info| {
        windows.add(info, Ts(ts), &mut |_, _| rows += 1);
    });
    windows.drain(&mut |_, pkts| {
        assert!(pkts >= 1);
        rows += 1;
    });
    assert!(windows.is_empty());
    let _ = rows;
});
