//! Detection as a pipeline stage of its own thread.
//!
//! With a rule set like ET Open, matching costs more than everything else the packet path
//! does, and the sensor's boxes have two cores. So the packet thread (flow table and
//! analyzers) does not run the rules: for every packet of a connection it writes down what the
//! detector needs to see it again — where the frame is in its capture batch, the flow stage's
//! verdict on it (slot, uid, roles) — and the application-layer messages the analyzers parsed
//! from it ([`Item`]). The items of a batch travel with the batch to the detection thread,
//! which rebuilds each packet's view from the batch's decodes and runs [`Detector`] on it
//! exactly as the packet thread would have, in the same order, so alerts are the same.
//!
//! What the analyzers hand over is copied ([`HttpCopy`], [`DnsCopy`]) into the byte arena
//! of the batch's [`Work`]: the analyzers' state moves on while the detector is still behind,
//! and one arena reused from batch to batch costs no allocation per message.

use std::net::IpAddr;

use crate::analyzers::dns::wire::Parsed;
use crate::analyzers::http::parser::Version;
use crate::analyzers::http::HttpAnalyzer;
use crate::analyzers::{Record, RecordSink};
use crate::capture::reader::PacketBatch;
use crate::decode::Decoded;
use crate::flow::{PacketView, Transport4, Uid};
use crate::ts::Ts;

use super::buffers::DnsMessage;
use super::feed::{self, TxView};
use super::Detector;

/// One packet of a connection, as the flow stage saw it.
#[derive(Clone, Copy, Debug)]
pub struct PacketMeta {
    /// Index of the frame in its batch, and of the IP layer the connection is made of.
    pub index: u32,
    pub layer: u8,
    /// 1-based number of the frame in the capture (`pcap_cnt`).
    pub frame_no: u64,
    pub ts: Ts,
    pub slot: u32,
    pub uid: Uid,
    pub is_orig: bool,
    pub transport: Transport4,
    pub orig: (IpAddr, u16),
    pub resp: (IpAddr, u16),
    pub partial: bool,
}

/// Bytes in a [`Work`]'s arena.
#[derive(Clone, Copy, Debug, Default)]
pub struct ArenaRange(u32, u32);

/// A DNS message's parts the detector reads; its questions are `Work::queries[queries]`.
#[derive(Clone, Copy, Debug)]
pub struct DnsCopy {
    pub id: u16,
    pub opcode: u8,
    pub response: bool,
    queries: (u32, u32),
}

/// An HTTP transaction's parts the detector reads (see [`TxView`]), in a [`Work`]'s arena.
#[derive(Clone, Copy, Debug)]
pub struct HttpCopy {
    method: ArenaRange,
    uri: ArenaRange,
    request_version: Option<Version>,
    request_headers: ArenaRange,
    request_body: ArenaRange,
    status_code: Option<u16>,
    status_msg: Option<ArenaRange>,
    response_version: Option<Version>,
    response_headers: ArenaRange,
    response_body: ArenaRange,
}

/// Which HTTP stage an [`Item::Http`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpStage {
    RequestHeaders,
    RequestDone,
    ResponseHeaders,
    TransactionDone,
}

/// What the packet thread hands the detection thread, in packet path order.
#[derive(Clone, Copy, Debug)]
pub enum Item {
    /// A packet of a connection; the items up to the next packet are about it.
    Packet(PacketMeta),
    /// A DNS message the DNS analyzer parsed from the packet.
    Dns(DnsCopy),
    /// The HTTP analyzer is about to read the packet; `analyzer` says whether it keeps an
    /// HTTP state for the connection (the packet's own HTTP items follow).
    HttpTurn { analyzer: bool },
    /// A stage of a transaction the HTTP analyzer parsed from the packet.
    Http(HttpStage, HttpCopy),
    /// The connection ended: its detection state goes.
    ConnEnd { slot: u32, uid: Uid },
}

/// Largest arena kept for reuse (a batch of ordinary traffic needs a few hundred KiB).
const ARENA_KEEP: usize = 4 << 20;

/// Items and the bytes they refer to.
#[derive(Debug, Default)]
pub struct Work {
    pub items: Vec<Item>,
    bytes: Vec<u8>,
    /// DNS questions: name and type.
    queries: Vec<(ArenaRange, u16)>,
}

impl Work {
    fn put(&mut self, b: &[u8]) -> ArenaRange {
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(b);
        ArenaRange(start, self.bytes.len() as u32)
    }

    fn get(&self, s: ArenaRange) -> &[u8] {
        self.bytes
            .get(s.0 as usize..s.1 as usize)
            .unwrap_or_default()
    }

    /// Empties the work for reuse; an arena a burst of large HTTP messages grew is let go
    /// (work waits in a queue for reuse: kept large, each would hold its peak).
    pub fn clear(&mut self) {
        self.items.clear();
        self.queries.clear();
        if self.bytes.capacity() > ARENA_KEEP {
            self.bytes = Vec::new();
        } else {
            self.bytes.clear();
        }
    }

    fn tx(&self, c: &HttpCopy) -> TxView<'_> {
        TxView {
            method: self.get(c.method),
            uri: self.get(c.uri),
            request_version: c.request_version,
            request_headers: self.get(c.request_headers),
            request_body: self.get(c.request_body),
            status_code: c.status_code,
            status_msg: c.status_msg.map(|s| self.get(s)),
            response_version: c.response_version,
            response_headers: self.get(c.response_headers),
            response_body: self.get(c.response_body),
        }
    }
}

/// The packet thread's end: items of the batch being processed, until the packet path hands
/// them over (at the end of the batch, and before anything that must come after them, such
/// as an interval boundary).
#[derive(Debug, Default)]
pub struct DetectLink {
    work: Work,
    /// Index and number of the frame being processed.
    frame: (u32, u64),
}

impl DetectLink {
    /// The packet path is at frame `index` of its batch, number `frame_no` of the capture.
    #[inline]
    pub fn frame(&mut self, index: u32, frame_no: u64) {
        self.frame = (index, frame_no);
    }

    /// A packet of a connection (`v.frame` is the frame told by [`DetectLink::frame`]).
    // Not inlined: kept out of the analyzers' per-packet function, which runs without rules
    // too.
    #[inline(never)]
    pub fn packet(&mut self, v: &PacketView<'_, '_>) {
        let layer = v
            .frame
            .layers()
            .position(|l| std::ptr::eq(l, v.layer))
            .unwrap_or(0) as u8;
        self.work.items.push(Item::Packet(PacketMeta {
            index: self.frame.0,
            layer,
            frame_no: self.frame.1,
            ts: v.ts,
            slot: v.slot,
            uid: v.uid,
            is_orig: v.is_orig,
            transport: v.transport,
            orig: v.orig,
            resp: v.resp,
            partial: v.partial,
        }));
    }

    pub fn push(&mut self, item: Item) {
        self.work.items.push(item);
    }

    /// A DNS message the DNS analyzer parsed. Responses are not handed over: the detector
    /// inspects queries only ([`Detector::on_dns`]).
    pub fn dns(&mut self, p: &Parsed) {
        if p.header.qr {
            return;
        }
        let w = &mut self.work;
        let first = w.queries.len() as u32;
        for (r, t) in &p.queries {
            let name = w.put(p.query_text.get(r.clone()).unwrap_or_default());
            w.queries.push((name, *t));
        }
        w.items.push(Item::Dns(DnsCopy {
            id: p.header.id,
            opcode: p.header.opcode,
            response: p.header.qr,
            queries: (first, w.queries.len() as u32),
        }));
    }

    /// A stage of a transaction the HTTP analyzer parsed.
    pub fn http(&mut self, stage: HttpStage, tx: &TxView<'_>) {
        let w = &mut self.work;
        let copy = HttpCopy {
            method: w.put(tx.method),
            uri: w.put(tx.uri),
            request_version: tx.request_version,
            request_headers: w.put(tx.request_headers),
            request_body: w.put(tx.request_body),
            status_code: tx.status_code,
            status_msg: tx.status_msg.map(|m| w.put(m)),
            response_version: tx.response_version,
            response_headers: w.put(tx.response_headers),
            response_body: w.put(tx.response_body),
        };
        w.items.push(Item::Http(stage, copy));
    }

    pub fn is_empty(&self) -> bool {
        self.work.items.is_empty()
    }

    /// The work so far; the link starts over with `spare` (an emptied one to reuse).
    pub fn take(&mut self, spare: Work) -> Work {
        std::mem::replace(&mut self.work, spare)
    }
}

/// The detection thread's end: the detector (none while a reload left detection off) and the
/// HTTP parsing it does on its own (see [`feed::attach_http`]).
pub struct DetectStage {
    pub detector: Option<Detector>,
    http: HttpAnalyzer,
    /// Alerts of one application-layer message, before they go out.
    alerts: Vec<Record>,
}

impl DetectStage {
    pub fn new(detector: Option<Detector>, stats: std::sync::Arc<crate::stats::Stats>) -> Self {
        DetectStage {
            detector,
            http: HttpAnalyzer::new(stats),
            alerts: Vec::new(),
        }
    }

    /// Runs the work's items (of `batch`, which holds their frames; `None` when no item is a
    /// packet) through the detector; alerts go to `out`.
    pub fn process(&mut self, batch: Option<&PacketBatch>, work: &Work, out: &mut dyn RecordSink) {
        let items = &work.items[..];
        let Some(det) = self.detector.as_mut() else {
            return;
        };
        let mut i = 0;
        while i < items.len() {
            match &items[i] {
                Item::ConnEnd { slot, uid } => {
                    det.conn_end(*slot, *uid);
                    i += 1;
                }
                Item::Packet(m) => {
                    // The packet's own items run to the next packet or connection end.
                    let end = items[i + 1..]
                        .iter()
                        .position(|it| matches!(it, Item::Packet(_) | Item::ConnEnd { .. }))
                        .map_or(items.len(), |p| i + 1 + p);
                    if let Some(b) = batch {
                        packet(
                            det,
                            &mut self.http,
                            b,
                            (m, work, i + 1..end),
                            &mut self.alerts,
                            out,
                        );
                    }
                    i = end;
                }
                // Items without their packet cannot be seen again: skipped.
                _ => i += 1,
            }
        }
    }
}

/// Alerts of one message to `out` (most messages raise none).
#[inline]
fn pass_on(alerts: &mut Vec<Record>, out: &mut dyn RecordSink) {
    if !alerts.is_empty() {
        for r in alerts.drain(..) {
            out.record(r);
        }
    }
}

/// One packet and its application-layer items, as [`crate::analyzers::Analyzers`] would have
/// run them with the detector on its own thread.
/// `(m, work, own)`: the packet, the work it is in and the range of its own items there.
fn packet(
    det: &mut Detector,
    http: &mut HttpAnalyzer,
    batch: &PacketBatch,
    (m, work, own): (&PacketMeta, &Work, std::ops::Range<usize>),
    alerts: &mut Vec<Record>,
    out: &mut dyn RecordSink,
) {
    let Some(raw) = batch.packet(m.index as usize) else {
        return;
    };
    let mut d = Decoded::new(raw.ts);
    if batch
        .decoded()
        .get_into(m.index as usize, raw.data, &mut d)
        .is_err()
    {
        return;
    }
    let Some(layer) = d.layers().nth(usize::from(m.layer)) else {
        return;
    };
    let v = PacketView {
        ts: m.ts,
        slot: m.slot,
        uid: m.uid,
        is_orig: m.is_orig,
        transport: m.transport,
        orig: m.orig,
        resp: m.resp,
        layer,
        frame: &d,
        partial: m.partial,
    };
    det.frame(m.frame_no);
    det.on_packet(&v, out);
    let mut analyzer_http = false;
    for it in work.items.get(own).unwrap_or_default() {
        match it {
            Item::Dns(msg) => {
                let (a, b) = msg.queries;
                let queries: Vec<(&[u8], u16)> = work
                    .queries
                    .get(a as usize..b as usize)
                    .unwrap_or_default()
                    .iter()
                    .map(|&(q, t)| (work.get(q), t))
                    .collect();
                let dm = DnsMessage {
                    id: msg.id,
                    opcode: msg.opcode,
                    response: msg.response,
                    queries: &queries,
                };
                det.on_dns(&v, &dm, alerts);
                pass_on(alerts, out);
            }
            Item::HttpTurn { analyzer } => {
                analyzer_http = feed::attach_http(det, http, &v, *analyzer, alerts);
                pass_on(alerts, out);
            }
            Item::Http(stage, tx) if analyzer_http => {
                feed::http_stage(det, &v, *stage, &work.tx(tx), alerts);
                pass_on(alerts, out);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_copies_read_back_from_the_arena() {
        let tx = TxView {
            method: b"POST",
            uri: b"/upload?x=1",
            request_version: Some(Version::default()),
            request_headers: b"Host: plc\r\nContent-Length: 3",
            request_body: b"abc",
            status_code: Some(200),
            status_msg: Some(b"OK"),
            response_version: None,
            response_headers: b"",
            response_body: b"<html>",
        };
        let mut link = DetectLink::default();
        link.push(Item::HttpTurn { analyzer: true });
        link.http(HttpStage::TransactionDone, &tx);
        // A second message after the first: spans stay apart.
        link.http(
            HttpStage::RequestHeaders,
            &TxView {
                method: b"GET",
                ..TxView::default()
            },
        );
        assert!(!link.is_empty());
        let work = link.take(Work::default());
        assert!(link.is_empty());
        let copies: Vec<_> = work
            .items
            .iter()
            .filter_map(|it| match it {
                Item::Http(stage, c) => Some((*stage, work.tx(c))),
                _ => None,
            })
            .collect();
        assert_eq!(copies.len(), 2);
        let (stage, got) = copies[0];
        assert_eq!(stage, HttpStage::TransactionDone);
        assert_eq!(got.method, tx.method);
        assert_eq!(got.uri, tx.uri);
        assert_eq!(got.request_headers, tx.request_headers);
        assert_eq!(got.request_body, tx.request_body);
        assert_eq!(got.status_code, Some(200));
        assert_eq!(got.status_msg, Some(&b"OK"[..]));
        assert_eq!(got.response_body, tx.response_body);
        assert_eq!(got.request_version, tx.request_version);
        assert_eq!(copies[1].1.method, b"GET");
        assert!(copies[1].1.status_msg.is_none());
    }

    #[test]
    fn cleared_work_lets_a_grown_arena_go() {
        let mut w = Work::default();
        w.put(&vec![0u8; ARENA_KEEP + 1]);
        w.items.push(Item::HttpTurn { analyzer: false });
        w.clear();
        assert!(w.items.is_empty());
        assert_eq!(w.bytes.capacity(), 0);
        w.put(b"small");
        w.clear();
        assert!(w.bytes.capacity() > 0, "a small arena is kept for reuse");
    }
}
