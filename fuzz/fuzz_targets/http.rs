//! Fuzz target for the HTTP analyzer: `cargo +nightly fuzz run http`.
//!
//! One input is one connection's two byte streams, cut into operations:
//!
//! ```text
//! byte 0        flags: bit 0 = install an observer (exercises transaction capture)
//! then repeated: [op: u8] [len: u16 LE] [bytes]
//!   op bit 0    direction: 0 = client, 1 = server
//!   op bits 1-2 0 = stream data, 1 = content gap of `len` bytes (no bytes follow),
//!               2 = end of that direction, 3 = TCP segment at sequence offset `len`
//!               (through the reassembler; its payload is the next `op >> 3` * 16 bytes)
//! ```
//!
//! The connection ends after the last operation. A fresh analyzer per input keeps every
//! crash reproducible from its input alone.

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use osect_sensor::analyzers::http::{
    HttpAnalyzer, HttpConn, HttpConnRef, HttpObserver, HttpTransaction, StreamInput,
};
use osect_sensor::analyzers::reassembly::{Reassembler, Segment, StreamConsumer};
use osect_sensor::analyzers::Record;
use osect_sensor::stats::Stats;
use osect_sensor::ts::Ts;

struct Sink;

impl HttpObserver for Sink {
    fn request_headers(&mut self, _c: &HttpConnRef, tx: &HttpTransaction) {
        assert!(tx.request_headers.len() <= osect_sensor::analyzers::http::HEADER_BLOCK_MAX);
    }
    fn transaction_done(&mut self, _c: &HttpConnRef, tx: &HttpTransaction) {
        assert!(tx.response_body.len() <= osect_sensor::analyzers::http::BODY_SAMPLE_MAX);
    }
}

struct Feed<'a> {
    an: &'a mut HttpAnalyzer,
    conn: &'a mut HttpConn,
    out: &'a mut Vec<Record>,
    is_orig: bool,
}

impl StreamConsumer for Feed<'_> {
    fn data(&mut self, bytes: &[u8]) {
        let input = StreamInput::Data {
            is_orig: self.is_orig,
            bytes,
        };
        self.an.stream(self.conn, Ts(0), input, self.out);
    }
    fn gap(&mut self, len: u64) {
        let input = StreamInput::Gap {
            is_orig: self.is_orig,
            len,
        };
        self.an.stream(self.conn, Ts(0), input, self.out);
    }
    fn eof(&mut self) {
        let input = StreamInput::Eof {
            is_orig: self.is_orig,
        };
        self.an.stream(self.conn, Ts(0), input, self.out);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let mut an = HttpAnalyzer::new(Arc::new(Stats::default()));
    if flags & 1 != 0 {
        an.set_observer(Box::new(Sink));
    }
    let mut conn = HttpConn::default();
    let mut out: Vec<Record> = Vec::new();
    let mut streams = [Reassembler::new(4096), Reassembler::new(4096)];
    while let [op, l0, l1, tail @ ..] = rest {
        let arg = u16::from_le_bytes([*l0, *l1]);
        let is_orig = op & 1 == 0;
        let kind = (op >> 1) & 3;
        let take = match kind {
            0 => usize::from(arg),
            3 => usize::from(op >> 3) * 16,
            _ => 0,
        }
        .min(tail.len());
        let (bytes, next) = tail.split_at(take);
        rest = next;
        let input = match kind {
            0 => StreamInput::Data { is_orig, bytes },
            1 => StreamInput::Gap {
                is_orig,
                len: u64::from(arg),
            },
            2 => StreamInput::Eof { is_orig },
            _ => {
                let s = &mut streams[usize::from(!is_orig)];
                s.anchor(0);
                s.push(
                    Segment {
                        seq: u32::from(arg),
                        flags: 0,
                        payload: bytes,
                        payload_len: bytes.len() as u32,
                    },
                    &mut Feed {
                        an: &mut an,
                        conn: &mut conn,
                        out: &mut out,
                        is_orig,
                    },
                );
                continue;
            }
        };
        an.stream(&mut conn, Ts(0), input, &mut out);
        assert!(conn.buffered() < 1 << 20);
    }
    an.stream(&mut conn, Ts(1), StreamInput::End, &mut out);
});
