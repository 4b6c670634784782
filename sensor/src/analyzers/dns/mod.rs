//! dns.log: DNS, mDNS, LLMNR and NetBIOS Name Service messages over UDP and TCP.
//!
//! Zeek's DNS analysis, rebuilt from its documented behaviour (`zeek-semantics.md` §3):
//! - [`wire`] reads a message as Zeek's interpreter does and renders the `answers` strings;
//! - [`session`] pairs queries with replies per connection and transaction id;
//! - [`tcp`] frames the length-prefixed messages of DNS over TCP;
//! - [`window`] is the reference sensor's 60-second aggregation that fills `pkts`.
//!
//! The analyzer is attached per connection by the service detection (DNS ports, or a payload
//! that parses as DNS); a message that parses confirms the `dns` service.

pub mod names;
pub mod session;
pub mod tcp;
pub mod window;
pub mod wire;

use std::sync::Arc;

use super::{Record, RecordSink};
use crate::flow::uid::UID_TEXT_MAX;
use crate::flow::{ConnSummary, PacketView, Transport4};
use crate::logs::zeek::{LogStyle, Row, Schema, ZeekRecord};
use crate::stats::Stats;
use crate::ts::{Span, Ts};

use session::{ConnCtx, Info, Sessions};
use window::{Added, Windows};
use wire::{Options, Parsed};

/// Open aggregation windows (distinct rows of the last 60 s) before the oldest is written
/// early.
pub const WINDOW_CAPACITY: usize = 8192;

/// The product's dns.log columns: Zeek's `DNS::Info` (before `opcode` existed) plus `pkts`.
pub static DNS_SCHEMA: Schema = Schema {
    path: "dns",
    fields: &[
        ("ts", "time"),
        ("uid", "string"),
        ("id.orig_h", "addr"),
        ("id.orig_p", "port"),
        ("id.resp_h", "addr"),
        ("id.resp_p", "port"),
        ("proto", "enum"),
        ("trans_id", "count"),
        ("rtt", "interval"),
        ("query", "string"),
        ("qclass", "count"),
        ("qclass_name", "string"),
        ("qtype", "count"),
        ("qtype_name", "string"),
        ("rcode", "count"),
        ("rcode_name", "string"),
        ("AA", "bool"),
        ("TC", "bool"),
        ("RD", "bool"),
        ("RA", "bool"),
        ("Z", "count"),
        ("answers", "vector[string]"),
        ("TTLs", "vector[interval]"),
        ("rejected", "bool"),
        ("pkts", "int"),
    ],
    style: LogStyle::Zeek,
};

/// One dns.log row: a record and how many identical ones its window saw.
#[derive(Clone, Debug)]
pub struct DnsRecord {
    pub info: Info,
    pub pkts: u64,
}

impl ZeekRecord for DnsRecord {
    fn schema(&self) -> &'static Schema {
        &DNS_SCHEMA
    }

    fn write_row(&self, row: &mut Row<'_>) {
        let (c, t) = (&self.info.conn, &self.info.txn);
        row.time(t.ts);
        let mut uid = [0u8; UID_TEXT_MAX];
        let n = c.uid.render_ascii(b'C', &mut uid);
        row.string(&uid[..n]);
        row.addr(c.orig.0);
        row.port(c.orig.1);
        row.addr(c.resp.0);
        row.port(c.resp.1);
        row.enum_name(if c.tcp { "tcp" } else { "udp" });
        row.count(u64::from(t.trans_id));
        row.interval_opt(t.rtt());
        row.string_opt(t.query.as_deref());
        row.count_opt(t.qclass.map(u64::from));
        row.string_opt(
            t.qclass
                .map(names::class_name)
                .as_deref()
                .map(str::as_bytes),
        );
        row.count_opt(t.qtype.map(u64::from));
        let qtype_name = t.qtype.map(|q| {
            if q == 33 && c.nbns() {
                "NBSTAT".into()
            } else {
                names::qtype_name(q)
            }
        });
        row.string_opt(qtype_name.as_deref().map(str::as_bytes));
        row.count_opt(t.rcode.map(u64::from));
        row.string_opt(
            t.rcode
                .map(|r| names::rcode_name(r.into()))
                .as_deref()
                .map(str::as_bytes),
        );
        row.bool(t.aa);
        row.bool(t.tc);
        row.bool(t.rd);
        row.bool(t.ra);
        row.count(u64::from(t.z));
        if t.answers().is_empty() {
            row.unset();
            row.unset();
        } else {
            row.string_list(Some(t.answers().iter().map(|(text, _)| text)));
            let mut ttls = [Span(0); wire::MAX_ANSWERS];
            let n = t.answers().len().min(ttls.len());
            for (slot, (_, ttl)) in ttls.iter_mut().zip(t.answers().iter()) {
                *slot = Span::from_secs(ttl.into());
            }
            row.interval_list(Some(&ttls[..n]));
        }
        row.bool(t.rejected);
        row.int(self.pkts as i64);
    }
}

/// DNS state of one connection.
#[derive(Debug, Default)]
pub struct DnsConn {
    sessions: Sessions,
    /// DNS over TCP: the originator's and the responder's stream.
    tcp: Option<Box<[tcp::Stream; 2]>>,
    /// Both directions' pending messages were flushed at the first FIN or RST.
    closed: bool,
    /// Not DNS after all (a protocol violation): no more messages are read.
    disabled: bool,
}

/// The DNS analyzer: shared state (the `pkts` aggregation window) and counters.
pub struct DnsAnalyzer {
    stats: Arc<Stats>,
    windows: Windows,
    /// Latest packet time seen: windows open at this time.
    now: Ts,
    /// When the oldest window closes ([`Ts`]`(i64::MAX)` when none is open): packet time
    /// moves on every packet, windows close once a minute, so [`DnsAnalyzer::advance`] is
    /// one comparison until then.
    due: Ts,
    parsed: Parsed,
    /// Messages completed by the current TCP segment.
    tcp_msgs: Vec<Vec<u8>>,
}

impl DnsAnalyzer {
    pub fn new(stats: Arc<Stats>) -> DnsAnalyzer {
        DnsAnalyzer {
            stats,
            windows: Windows::new(WINDOW_CAPACITY),
            now: Ts::ZERO,
            due: NO_WINDOW,
            parsed: Parsed::default(),
            tcp_msgs: Vec::new(),
        }
    }

    /// Whether a payload looks like a DNS message (content detection on any port). Strict:
    /// a sane header and exactly one well-formed question, and for a whole message, every
    /// record walking to its end. Over TCP the payload starts with the 2-byte length.
    pub fn looks_like_dns(payload: &[u8], tcp: bool) -> bool {
        if !tcp {
            return wire::plausible(payload, true);
        }
        let Some((len, msg)) = payload
            .split_first_chunk::<2>()
            .map(|(l, m)| (usize::from(u16::from_be_bytes(*l)), m))
        else {
            return false;
        };
        if len < wire::HEADER_LEN || msg.len() < wire::HEADER_LEN {
            return false;
        }
        if msg.len() >= len {
            wire::plausible(&msg[..len], true)
        } else {
            wire::plausible(msg, false)
        }
    }

    /// One packet of a connection with DNS attached; true when it held a valid DNS message
    /// (Zeek's analyzer confirmation, which puts `dns` into conn.log's `service`).
    pub fn packet(
        &mut self,
        conn: &mut DnsConn,
        v: &PacketView<'_, '_>,
        out: &mut dyn RecordSink,
    ) -> bool {
        self.packet_observed(conn, v, out, None)
    }

    /// [`DnsAnalyzer::packet`], with `observer` seeing every message this packet completes
    /// (header read, questions kept as sent in [`Parsed::queries`]).
    pub fn packet_observed(
        &mut self,
        conn: &mut DnsConn,
        v: &PacketView<'_, '_>,
        out: &mut dyn RecordSink,
        mut observer: Option<&mut dyn FnMut(&Parsed)>,
    ) -> bool {
        self.now = self.now.max(v.ts);
        if conn.disabled {
            return false;
        }
        let ctx = ConnCtx {
            uid: v.uid,
            orig: v.orig,
            resp: v.resp,
            tcp: v.transport == Transport4::Tcp,
        };
        match v.transport {
            Transport4::Udp => {
                let p = v.payload();
                !p.is_empty() && self.message(conn, ctx, p, v.ts, out, observer)
            }
            Transport4::Tcp => {
                let Some(seg) = v.tcp() else {
                    return false;
                };
                let streams = conn.tcp.get_or_insert_with(Default::default);
                let dir = &mut streams[usize::from(!v.is_orig)];
                let mut msgs = std::mem::take(&mut self.tcp_msgs);
                const SYN: u8 = 0x02;
                const FIN: u8 = 0x01;
                const RST: u8 = 0x04;
                if dir
                    .segment(
                        seg.seq,
                        seg.flags & SYN != 0,
                        seg.payload,
                        seg.payload_len,
                        &mut msgs,
                    )
                    .is_err()
                {
                    Stats::inc(&self.stats.dns_tcp_gaps);
                }
                if seg.flags & (FIN | RST) != 0 && !conn.closed {
                    conn.closed = true;
                    for s in streams.iter_mut() {
                        msgs.extend(s.flush());
                    }
                }
                let mut confirmed = false;
                for m in msgs.drain(..) {
                    if conn.disabled {
                        break;
                    }
                    let obs = observer
                        .as_deref_mut()
                        .map(|o| o as &mut dyn FnMut(&Parsed));
                    confirmed |= self.message(conn, ctx, &m, v.ts, out, obs);
                }
                self.tcp_msgs = msgs;
                confirmed
            }
            _ => false,
        }
    }

    /// Reads one message and applies it to the connection's sessions; true if it parsed.
    fn message(
        &mut self,
        conn: &mut DnsConn,
        ctx: ConnCtx,
        m: &[u8],
        ts: Ts,
        out: &mut dyn RecordSink,
        observer: Option<&mut dyn FnMut(&Parsed)>,
    ) -> bool {
        let stats = &*self.stats;
        Stats::inc(&stats.dns_messages);
        let opt = Options {
            netbios: ctx.resp.1 == 137,
            keep_queries: observer.is_some(),
        };
        let parsed_header = wire::parse(m, opt, &mut self.parsed);
        let p = &self.parsed;
        if let (true, false, Some(obs)) = (parsed_header, p.violation, observer) {
            obs(p);
        }
        if p.weirds != 0 {
            Stats::inc(&stats.dns_malformed);
            Stats::inc(&stats.analyzer_weirds);
        }
        if !parsed_header {
            return false;
        }
        if p.violation {
            // Zeek's DPD disables an analyzer on a violation: the rest is not DNS.
            conn.disabled = true;
        }
        let h = p.header;
        if !session::tracked(h.opcode) {
            if !opt.netbios {
                Stats::inc(&stats.dns_unknown_opcodes);
            }
            return p.confirmed;
        }
        let (windows, now) = (&mut self.windows, self.now);
        let overflow = conn.sessions.message(ctx, ts, p, &mut |info| {
            add_to_window(windows, stats, info, now, out)
        });
        self.due = next_close(&self.windows);
        if overflow {
            Stats::inc(&stats.dns_pending_overflows);
        }
        p.confirmed
    }

    /// The connection ended: unanswered queries and unpaired replies are logged.
    pub fn conn_end(&mut self, conn: &mut DnsConn, row: &ConnSummary, out: &mut dyn RecordSink) {
        let ctx = ConnCtx {
            uid: row.uid,
            orig: (row.orig_h, row.orig_p),
            resp: (row.resp_h, row.resp_p),
            tcp: row.transport == Transport4::Tcp,
        };
        self.end_sessions(conn, ctx, out);
    }

    fn end_sessions(&mut self, conn: &mut DnsConn, ctx: ConnCtx, out: &mut dyn RecordSink) {
        let (windows, now, stats) = (&mut self.windows, self.now, &*self.stats);
        conn.sessions.finish(ctx, &mut |info| {
            add_to_window(windows, stats, info, now, out)
        });
        self.due = next_close(&self.windows);
    }

    /// Packet time moved on: aggregation windows that ended are written.
    #[inline]
    pub fn advance(&mut self, now: Ts, out: &mut dyn RecordSink) {
        self.now = self.now.max(now);
        if self.now >= self.due {
            self.expire(out);
        }
    }

    #[cold]
    #[inline(never)]
    fn expire(&mut self, out: &mut dyn RecordSink) {
        let stats = &*self.stats;
        self.windows
            .expire(self.now, &mut |info, pkts| write(stats, info, pkts, out));
        self.due = next_close(&self.windows);
    }

    /// End of input: every window is written.
    pub fn finish(&mut self, out: &mut dyn RecordSink) {
        let stats = &*self.stats;
        self.windows
            .drain(&mut |info, pkts| write(stats, info, pkts, out));
        self.due = NO_WINDOW;
    }
}

/// The analyzer's `due` when no window is open.
const NO_WINDOW: Ts = Ts(i64::MAX);

fn next_close(windows: &Windows) -> Ts {
    windows.next_close().unwrap_or(NO_WINDOW)
}

fn add_to_window(
    windows: &mut Windows,
    stats: &Stats,
    info: Info,
    now: Ts,
    out: &mut dyn RecordSink,
) {
    let added = windows.add(info, now, &mut |old, pkts| {
        Stats::inc(&stats.window_evictions);
        write(stats, old, pkts, out)
    });
    if added == Added::Merged {
        Stats::inc(&stats.dns_rows_merged);
    }
}

fn write(stats: &Stats, info: Info, pkts: u64, out: &mut dyn RecordSink) {
    Stats::inc(&stats.dns_rows);
    out.record(Record::Dns(DnsRecord { info, pkts }));
}

#[cfg(test)]
mod tests;
