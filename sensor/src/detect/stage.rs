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
//! What the analyzers hand over is copied ([`OwnedDns`], the HTTP transaction): the
//! analyzers' state moves on while the detector is still behind.

use std::net::IpAddr;

use crate::analyzers::dns::wire::Parsed;
use crate::analyzers::http::{HttpAnalyzer, HttpTransaction};
use crate::analyzers::{Record, RecordSink};
use crate::capture::reader::PacketBatch;
use crate::decode::Decoded;
use crate::flow::{PacketView, Transport4, Uid};
use crate::ts::Ts;

use super::buffers::DnsMessage;
use super::feed;
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

/// A DNS message's parts the detector reads.
#[derive(Clone, Debug, Default)]
pub struct OwnedDns {
    pub id: u16,
    pub opcode: u8,
    pub response: bool,
    /// Question names (dotted, without the root dot) and types.
    pub queries: Vec<(Vec<u8>, u16)>,
}

impl OwnedDns {
    pub fn of(p: &Parsed) -> OwnedDns {
        OwnedDns {
            id: p.header.id,
            opcode: p.header.opcode,
            response: p.header.qr,
            queries: p
                .queries
                .iter()
                .map(|(r, t)| (p.query_text.get(r.clone()).unwrap_or_default().to_vec(), *t))
                .collect(),
        }
    }
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
#[derive(Debug)]
pub enum Item {
    /// A packet of a connection; the items up to the next packet are about it.
    Packet(PacketMeta),
    /// A DNS message the DNS analyzer parsed from the packet.
    Dns(OwnedDns),
    /// The HTTP analyzer is about to read the packet; `analyzer` says whether it keeps an
    /// HTTP state for the connection (the packet's own HTTP items follow).
    HttpTurn { analyzer: bool },
    /// A stage of a transaction the HTTP analyzer parsed from the packet.
    Http(HttpStage, Box<HttpTransaction>),
    /// The connection ended: its detection state goes.
    ConnEnd { slot: u32, uid: Uid },
}

/// The packet thread's end: items of the batch being processed, until the packet path hands
/// them over (at the end of the batch, and before anything that must come after them, such
/// as an interval boundary).
#[derive(Debug, Default)]
pub struct DetectLink {
    items: Vec<Item>,
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
    pub fn packet(&mut self, v: &PacketView<'_, '_>) {
        let layer = v
            .frame
            .layers()
            .position(|l| std::ptr::eq(l, v.layer))
            .unwrap_or(0) as u8;
        self.items.push(Item::Packet(PacketMeta {
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
        self.items.push(item);
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The items so far; the link starts over with `spare` (an emptied vector to reuse).
    pub fn take(&mut self, spare: Vec<Item>) -> Vec<Item> {
        std::mem::replace(&mut self.items, spare)
    }
}

/// The detection thread's end: the detector (none while a reload left detection off) and the
/// HTTP parsing it does on its own (see [`feed::attach_http`]).
pub struct DetectStage {
    pub detector: Option<Detector>,
    http: HttpAnalyzer,
    /// Frame decodes are rebuilt here (one per packet).
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

    /// Runs the items (of `batch`, which holds their frames; `None` when no item is a packet)
    /// through the detector; alerts go to `out`.
    pub fn process(
        &mut self,
        batch: Option<&PacketBatch>,
        items: &[Item],
        out: &mut dyn RecordSink,
    ) {
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
                            m,
                            &items[i + 1..end],
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

/// One packet and its application-layer items, as [`crate::analyzers::Analyzers`] would have
/// run them with the detector on its own thread.
fn packet(
    det: &mut Detector,
    http: &mut HttpAnalyzer,
    batch: &PacketBatch,
    m: &PacketMeta,
    items: &[Item],
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
    for it in items {
        match it {
            Item::Dns(msg) => {
                let queries: Vec<(&[u8], u16)> =
                    msg.queries.iter().map(|(q, t)| (&q[..], *t)).collect();
                let dm = DnsMessage {
                    id: msg.id,
                    opcode: msg.opcode,
                    response: msg.response,
                    queries: &queries,
                };
                det.on_dns(&v, &dm, alerts);
                for r in alerts.drain(..) {
                    out.record(r);
                }
            }
            Item::HttpTurn { analyzer } => {
                analyzer_http = feed::attach_http(det, http, &v, *analyzer, alerts);
                for r in alerts.drain(..) {
                    out.record(r);
                }
            }
            Item::Http(stage, tx) if analyzer_http => {
                feed::http_stage(det, &v, *stage, tx, alerts);
                for r in alerts.drain(..) {
                    out.record(r);
                }
            }
            _ => {}
        }
    }
}
