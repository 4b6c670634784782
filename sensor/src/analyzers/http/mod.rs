//! http.log: HTTP/1.x transactions over reassembled TCP streams, on any port.
//!
//! Pipeline per connection with HTTP attached (by port or by content, see
//! [`HttpAnalyzer::looks_like_http`] and `service.rs`):
//!
//! 1. [`crate::analyzers::reassembly`] rebuilds each direction's byte stream from the TCP
//!    sequence numbers (bounded out-of-order buffer; holes become content gaps);
//! 2. [`parser::HttpParser`] cuts the streams into requests and replies as Zeek's HTTP
//!    analyzer does and reports events;
//! 3. [`record::Session`] turns the events into http.log records with Zeek's pairing and
//!    timing (`main.zeek`): a transaction is written when its final reply ends, or when the
//!    connection ends.
//!
//! The analyzer confirms `http` for conn.log's `service` when a request line parses (or a
//! reply answers a request), and withdraws it on a protocol violation within the first
//! [`DPD_VIOLATION_WINDOW`] bytes, as Zeek's dynamic protocol detection does.
//!
//! # Inspecting transactions (hook for a rule engine)
//!
//! [`HttpAnalyzer::set_observer`] installs an [`HttpObserver`]. With one installed, every
//! transaction is also collected as an [`HttpTransaction`]: raw method and URI, host, user
//! agent, cookie, the raw header blocks (first [`HEADER_BLOCK_MAX`] bytes), status, and the
//! first [`BODY_SAMPLE_MAX`] bytes of each body (after chunk and gzip/deflate decoding). The
//! observer is called when the request headers are complete
//! ([`HttpObserver::request_headers`]), when the request is complete, body included
//! ([`HttpObserver::request_done`]), when the response headers are complete
//! ([`HttpObserver::response_headers`]) and when the response is complete, body included
//! ([`HttpObserver::transaction_done`]; also for transactions still open when the connection
//! ends). Without an observer nothing is collected beyond what http.log needs.
//!
//! [`HttpAnalyzer::packet_observed`] lends an observer for one packet (the rule engine, which
//! needs the packet that completed a message). A connection can also be parsed for observers
//! only ([`HttpConn::observe_only`]): one Zeek ignores (not seen from its handshake) or never
//! attached HTTP to, while a rule engine picks it up mid-stream. It writes no http.log rows,
//! confirms nothing, and its requests are the bytes of the client the observer names (the
//! rule engine's orientation, which need not be the flow stage's originator).

pub mod body;
pub mod parser;
pub mod record;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;

use super::reassembly::{Reassembler, Segment, StreamConsumer};
use super::RecordSink;
use crate::decode::tcp_flags;
use crate::flow::{ConnSummary, PacketView, Uid};
use crate::stats::Stats;
use crate::ts::Ts;

use parser::{HttpEvents, HttpParser, Version};
use record::{ConnIds, Ctx, Session};

/// Out-of-order bytes per direction that may wait for a hole to fill.
pub const MAX_HELD_BYTES: usize = 64 * 1024;
/// Zeek's `DPD::ignore_violations_after`: later violations no longer withdraw the service.
pub const DPD_VIOLATION_WINDOW: u64 = 10 * 1024;
/// Bytes of each raw header block kept for observers.
pub const HEADER_BLOCK_MAX: usize = 8 * 1024;
/// Bytes of each (decoded) body kept for observers.
pub const BODY_SAMPLE_MAX: usize = 4 * 1024;
/// Transactions collected per connection for observers while they wait for replies.
pub const MAX_OBSERVED_PENDING: usize = 16;

/// Methods that Zeek's DPD signature and the sensor accept as the start of a request.
const DPD_METHODS: &[&[u8]] = &[
    b"GET",
    b"POST",
    b"HEAD",
    b"PUT",
    b"DELETE",
    b"OPTIONS",
    b"TRACE",
    b"CONNECT",
    b"PATCH",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"SEARCH",
    b"QUERY",
];

/// The first letters of [`DPD_METHODS`].
const METHOD_INITIALS: &[u8] = b"GPHDOTCMLUSQ";

/// Reassembled stream input, for driving the analyzer without TCP (tests, fuzzing).
#[derive(Clone, Copy, Debug)]
pub enum StreamInput<'a> {
    Data {
        is_orig: bool,
        bytes: &'a [u8],
    },
    Gap {
        is_orig: bool,
        len: u64,
    },
    Eof {
        is_orig: bool,
    },
    /// The connection ended: open messages end, pending transactions are written.
    End,
}

/// What one packet told about the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing new.
    None,
    /// The connection speaks HTTP (conn.log `service` gets `http`).
    Confirmed,
    /// It does not: the analyzer gave up and `http` leaves `service`.
    Violated,
}

/// One request/response exchange as an observer sees it.
#[derive(Clone, Debug, Default)]
pub struct HttpTransaction {
    pub method: Vec<u8>,
    /// The URI as sent (not decoded).
    pub uri: Vec<u8>,
    pub request_version: Option<Version>,
    pub response_version: Option<Version>,
    pub host: Option<Vec<u8>>,
    pub user_agent: Option<Vec<u8>>,
    pub cookie: Option<Vec<u8>>,
    /// `Name: value` lines of the request, CR LF separated, cut at [`HEADER_BLOCK_MAX`].
    pub request_headers: Vec<u8>,
    /// First [`BODY_SAMPLE_MAX`] decoded bytes of the request body.
    pub request_body: Vec<u8>,
    pub request_body_len: u64,
    pub status_code: Option<u16>,
    pub status_msg: Option<Vec<u8>>,
    pub response_headers: Vec<u8>,
    pub response_body: Vec<u8>,
    pub response_body_len: u64,
}

/// The connection a transaction travels on.
#[derive(Clone, Copy, Debug)]
pub struct HttpConnRef {
    pub uid: Uid,
    pub orig: (Option<IpAddr>, u16),
    pub resp: (Option<IpAddr>, u16),
}

/// Receives transactions as they are parsed (see the module documentation).
pub trait HttpObserver: Send {
    fn request_headers(&mut self, _conn: &HttpConnRef, _tx: &HttpTransaction) {}
    fn request_done(&mut self, _conn: &HttpConnRef, _tx: &HttpTransaction) {}
    fn response_headers(&mut self, _conn: &HttpConnRef, _tx: &HttpTransaction) {}
    fn transaction_done(&mut self, _conn: &HttpConnRef, _tx: &HttpTransaction) {}
}

/// HTTP state of one connection: both directions' stream reassembly and parsers.
#[derive(Debug)]
pub struct HttpConn {
    streams: [Reassembler; 2],
    parser: HttpParser,
    session: Session,
    ids: ConnIds,
    last_ts: Ts,
    /// The analyzer confirmed HTTP once (violations matter only afterwards).
    confirmed: bool,
    disabled: bool,
    /// Transactions collected for an observer, oldest first.
    observed: VecDeque<HttpTransaction>,
    /// Parsed for observers only, requests being this endpoint's bytes: nothing is logged.
    observe_only: Option<(IpAddr, u16)>,
}

impl Default for HttpConn {
    fn default() -> Self {
        HttpConn {
            streams: fresh_streams(),
            parser: HttpParser::new(),
            session: Session::default(),
            ids: ConnIds::default(),
            last_ts: Ts::default(),
            confirmed: false,
            disabled: false,
            observed: VecDeque::new(),
            observe_only: None,
        }
    }
}

fn fresh_streams() -> [Reassembler; 2] {
    [
        Reassembler::new(MAX_HELD_BYTES),
        Reassembler::new(MAX_HELD_BYTES),
    ]
}

impl HttpConn {
    /// Heap bytes held for parsing (line and header buffers, out-of-order segments), for
    /// memory accounting and bounds checks.
    pub fn buffered(&self) -> usize {
        self.parser.buffered()
            + self
                .streams
                .iter()
                .map(Reassembler::held_bytes)
                .sum::<usize>()
    }

    /// From now on the connection is parsed for observers only, with `client`'s bytes (its
    /// address as in the IP header) as the requests (see the module documentation). Nothing parsed so far is kept.
    pub fn observe_only(&mut self, client: (IpAddr, u16)) {
        if self.observe_only.is_none() {
            *self = HttpConn {
                observe_only: Some(client),
                ..HttpConn::default()
            };
        }
    }

    fn bytes_seen(&self) -> u64 {
        self.streams.iter().map(|s| s.delivered + s.gap_bytes).sum()
    }
}

/// The HTTP analyzer.
pub struct HttpAnalyzer {
    stats: Arc<Stats>,
    observer: Option<Box<dyn HttpObserver>>,
}

impl HttpAnalyzer {
    pub fn new(stats: Arc<Stats>) -> HttpAnalyzer {
        HttpAnalyzer {
            stats,
            observer: None,
        }
    }

    /// Installs the observer that sees every transaction from now on.
    pub fn set_observer(&mut self, observer: Box<dyn HttpObserver>) {
        self.observer = Some(observer);
    }

    /// Whether the first payload of a direction looks like HTTP: a request method at the
    /// start of the client's bytes, `HTTP/<digit>` at the start of the server's (Zeek's DPD
    /// signatures).
    pub fn looks_like_http(payload: &[u8], is_orig: bool) -> bool {
        if is_orig {
            let p = payload.trim_ascii_start();
            // Most payloads are binary: the first byte rules them out before any comparison.
            p.first().is_some_and(|&c| METHOD_INITIALS.contains(&c))
                && DPD_METHODS.iter().any(|m| p.starts_with(m))
        } else {
            payload.len() >= 6 && payload.starts_with(b"HTTP/") && payload[5].is_ascii_digit()
        }
    }

    /// One TCP packet of a connection with HTTP attached (empty segments included).
    pub fn packet(
        &mut self,
        conn: &mut HttpConn,
        v: &PacketView<'_, '_>,
        out: &mut dyn RecordSink,
    ) -> Verdict {
        let mut installed = self.observer.take();
        let verdict = self.packet_observed(
            conn,
            v,
            out,
            installed.as_deref_mut().map(|o| o as &mut dyn HttpObserver),
        );
        self.observer = installed;
        verdict
    }

    /// [`HttpAnalyzer::packet`] with `observer` (instead of the installed one) seeing what
    /// this packet completes.
    pub fn packet_observed(
        &mut self,
        conn: &mut HttpConn,
        v: &PacketView<'_, '_>,
        out: &mut dyn RecordSink,
        observer: Option<&mut dyn HttpObserver>,
    ) -> Verdict {
        let Some(seg) = v.tcp() else {
            return Verdict::None;
        };
        if conn.disabled {
            return Verdict::None;
        }
        conn.last_ts = v.ts;
        let observe_only = conn.observe_only.is_some();
        let is_orig = match conn.observe_only {
            // The packet's own addresses: the flow stage may show mapped IPv6 as IPv4.
            Some(client) => client == (v.layer.src, seg.src_port),
            None => {
                self.track_roles(conn, v);
                v.is_orig
            }
        };
        let dir = usize::from(!is_orig);
        if seg.flags & tcp_flags::ACK != 0 {
            // The peer's stream starts where this side acknowledges, if nothing better is known.
            conn.streams[1 - dir].anchor(seg.ack);
        }
        if v.partial && !observe_only {
            // Zeek's HTTP analyzer ignores connections not seen from their handshake on; the
            // streams still follow the sequence numbers.
            let segment = Segment {
                seq: seg.seq,
                flags: seg.flags,
                payload: seg.payload,
                payload_len: seg.payload_len,
            };
            conn.streams[dir].push(segment, &mut Discard);
            return Verdict::None;
        }
        let (overflows, gaps) = (conn.streams[dir].overflows, conn.streams[dir].gap_bytes);
        let HttpConn {
            streams,
            parser,
            session,
            ids,
            observed,
            ..
        } = conn;
        let mut discard = Vec::new();
        let mut ev = Events {
            ctx: Ctx {
                now: v.ts,
                ids,
                out: if observe_only { &mut discard } else { out },
                stats: &self.stats,
            },
            session,
            observer,
            observed,
            confirmed: false,
            violated: false,
        };
        let segment = Segment {
            seq: seg.seq,
            flags: seg.flags,
            payload: seg.payload,
            payload_len: seg.payload_len,
        };
        streams[dir].push(
            segment,
            &mut Feed {
                parser,
                ev: &mut ev,
                is_orig,
            },
        );
        if seg.flags & tcp_flags::RST != 0 {
            parser.abort(&mut ev);
        }
        let (confirmed, violated) = (ev.confirmed, ev.violated);
        if observe_only {
            return Verdict::None;
        }
        let s = &conn.streams[dir];
        Stats::add(
            &self.stats.http_reassembly_overflows,
            s.overflows - overflows,
        );
        Stats::add(&self.stats.http_gap_bytes, s.gap_bytes - gaps);
        conn.confirmed |= confirmed;
        // Zeek disables an analyzer only for a violation after it confirmed, and only early
        // in the connection: before confirming, bad lines are just skipped.
        if violated && conn.confirmed && conn.bytes_seen() <= DPD_VIOLATION_WINDOW {
            Stats::inc(&self.stats.http_violations);
            self.disable(conn, v.ts, out);
            return Verdict::Violated;
        }
        if confirmed {
            Verdict::Confirmed
        } else {
            Verdict::None
        }
    }

    /// The connection ended: transactions still open are logged.
    pub fn conn_end(&mut self, conn: &mut HttpConn, row: &ConnSummary, out: &mut dyn RecordSink) {
        conn.ids.orig_l2 = row.orig_l2;
        conn.ids.resp_l2 = row.resp_l2;
        let mut discard = Vec::new();
        let out: &mut dyn RecordSink = if conn.observe_only.is_some() {
            &mut discard
        } else {
            out
        };
        let HttpConn {
            streams,
            parser,
            session,
            ids,
            observed,
            disabled,
            last_ts,
            ..
        } = conn;
        let mut ev = Events {
            ctx: Ctx {
                now: *last_ts,
                ids,
                out,
                stats: &self.stats,
            },
            session,
            observer: self
                .observer
                .as_deref_mut()
                .map(|o| o as &mut dyn HttpObserver),
            observed,
            confirmed: false,
            violated: false,
        };
        if !*disabled {
            for (dir, stream) in streams.iter_mut().enumerate() {
                stream.flush(&mut Feed {
                    parser,
                    ev: &mut ev,
                    is_orig: dir == 0,
                });
            }
            parser.abort(&mut ev);
        }
        ev.session.finalize(&mut ev.ctx);
        ev.observe_leftovers();
    }

    /// Feeds already reassembled stream input (see [`StreamInput`]); packets go through
    /// [`HttpAnalyzer::packet`] instead.
    pub fn stream(
        &mut self,
        conn: &mut HttpConn,
        now: Ts,
        input: StreamInput<'_>,
        out: &mut dyn RecordSink,
    ) -> Verdict {
        conn.last_ts = now;
        let mut ev = Events {
            ctx: Ctx {
                now,
                ids: &conn.ids,
                out,
                stats: &self.stats,
            },
            session: &mut conn.session,
            observer: self
                .observer
                .as_deref_mut()
                .map(|o| o as &mut dyn HttpObserver),
            observed: &mut conn.observed,
            confirmed: false,
            violated: false,
        };
        match input {
            StreamInput::Data { is_orig, bytes } => conn.parser.data(is_orig, bytes, &mut ev),
            StreamInput::Gap { is_orig, len } => conn.parser.gap(is_orig, len, &mut ev),
            StreamInput::Eof { is_orig } => conn.parser.eof(is_orig, &mut ev),
            StreamInput::End => {
                conn.parser.abort(&mut ev);
                ev.session.finalize(&mut ev.ctx);
                ev.observe_leftovers();
            }
        }
        match (ev.confirmed, ev.violated) {
            (_, true) => Verdict::Violated,
            (true, false) => Verdict::Confirmed,
            _ => Verdict::None,
        }
    }

    /// A violation: parsing stops for good; what was open is ended.
    fn disable(&mut self, conn: &mut HttpConn, now: Ts, out: &mut dyn RecordSink) {
        conn.disabled = true;
        let mut ev = Events {
            ctx: Ctx {
                now,
                ids: &conn.ids,
                out,
                stats: &self.stats,
            },
            session: &mut conn.session,
            observer: self
                .observer
                .as_deref_mut()
                .map(|o| o as &mut dyn HttpObserver),
            observed: &mut conn.observed,
            confirmed: false,
            violated: false,
        };
        conn.parser.stop(&mut ev);
        conn.streams = fresh_streams();
    }

    /// Keeps addresses and MACs in the connection's current roles.
    fn track_roles(&self, conn: &mut HttpConn, v: &PacketView<'_, '_>) {
        let ids = &mut conn.ids;
        let orig = (Some(v.orig.0), v.orig.1);
        if ids.orig.0.is_some() && ids.orig != orig {
            // The flow stage swapped the roles: so do the streams.
            conn.streams.swap(0, 1);
            std::mem::swap(&mut ids.orig_l2, &mut ids.resp_l2);
        }
        if ids.orig.0.is_none() {
            if let Some(m) = v.frame.macs {
                let (o, r) = if v.is_orig {
                    (m.src, m.dst)
                } else {
                    (m.dst, m.src)
                };
                ids.orig_l2 = Some(o);
                ids.resp_l2 = Some(r);
            }
        }
        ids.uid = v.uid;
        ids.orig = orig;
        ids.resp = (Some(v.resp.0), v.resp.1);
    }
}

/// Takes stream bytes nobody parses.
struct Discard;

impl StreamConsumer for Discard {
    fn data(&mut self, _bytes: &[u8]) {}
    fn gap(&mut self, _len: u64) {}
}

/// Feeds one direction's reassembled stream into the parser.
struct Feed<'a, 'b, 'c> {
    parser: &'a mut HttpParser,
    ev: &'a mut Events<'b, 'c>,
    is_orig: bool,
}

impl StreamConsumer for Feed<'_, '_, '_> {
    fn data(&mut self, bytes: &[u8]) {
        self.parser.data(self.is_orig, bytes, self.ev);
    }
    fn gap(&mut self, len: u64) {
        self.parser.gap(self.is_orig, len, self.ev);
    }
    fn eof(&mut self) {
        self.parser.eof(self.is_orig, self.ev);
    }
}

/// Parser events of one connection, turned into records and observer calls.
struct Events<'b, 'c> {
    ctx: Ctx<'b>,
    session: &'b mut Session,
    observer: Option<&'c mut dyn HttpObserver>,
    observed: &'b mut VecDeque<HttpTransaction>,
    confirmed: bool,
    violated: bool,
}

fn append_capped(buf: &mut Vec<u8>, data: &[u8], cap: usize) {
    let room = cap.saturating_sub(buf.len());
    buf.extend_from_slice(&data[..data.len().min(room)]);
}

impl Events<'_, '_> {
    fn conn_ref(&self) -> HttpConnRef {
        HttpConnRef {
            uid: self.ctx.ids.uid,
            orig: self.ctx.ids.orig,
            resp: self.ctx.ids.resp,
        }
    }

    /// The transaction a message of this direction belongs to: requests fill the newest,
    /// replies the oldest.
    fn observed_tx(&mut self, is_orig: bool) -> Option<&mut HttpTransaction> {
        self.observer.as_ref()?;
        if self.observed.is_empty() {
            self.observed.push_back(HttpTransaction::default());
        }
        if is_orig {
            self.observed.back_mut()
        } else {
            self.observed.front_mut()
        }
    }

    fn observe_leftovers(&mut self) {
        let conn = self.conn_ref();
        if let Some(obs) = self.observer.as_mut() {
            for tx in self.observed.drain(..) {
                obs.transaction_done(&conn, &tx);
            }
        }
    }
}

impl HttpEvents for Events<'_, '_> {
    fn request(&mut self, method: &[u8], raw_uri: &[u8], uri: &[u8], version: Version) {
        self.session.request(&mut self.ctx, method, uri);
        if self.observer.is_some() {
            if self.observed.len() >= MAX_OBSERVED_PENDING {
                self.observed.pop_front();
            }
            self.observed.push_back(HttpTransaction {
                method: method.to_vec(),
                uri: raw_uri.to_vec(),
                request_version: Some(version),
                ..HttpTransaction::default()
            });
        }
    }

    fn reply(&mut self, version: Version, code: u16, reason: Option<&[u8]>) {
        self.session.reply(&mut self.ctx, version, code, reason);
        if let Some(tx) = self.observed_tx(false) {
            tx.response_version = Some(version);
            tx.status_code = Some(code);
            tx.status_msg = reason.map(<[u8]>::to_vec);
            tx.response_headers.clear();
            tx.response_body.clear();
        }
    }

    fn header(&mut self, is_orig: bool, name: &[u8], value: &[u8]) {
        self.session.header(&mut self.ctx, is_orig, name, value);
        self.cut_header(is_orig, name, value);
    }

    fn cut_header(&mut self, is_orig: bool, name: &[u8], value: &[u8]) {
        if let Some(tx) = self.observed_tx(is_orig) {
            let block = if is_orig {
                &mut tx.request_headers
            } else {
                &mut tx.response_headers
            };
            if block.capacity() == 0 {
                // A typical header block at once, rather than growing line by line.
                block.reserve(512.min(HEADER_BLOCK_MAX));
            }
            append_capped(block, name, HEADER_BLOCK_MAX);
            append_capped(block, b": ", HEADER_BLOCK_MAX);
            append_capped(block, value, HEADER_BLOCK_MAX);
            append_capped(block, b"\r\n", HEADER_BLOCK_MAX);
            if is_orig {
                let field = if name.eq_ignore_ascii_case(b"host") {
                    Some(&mut tx.host)
                } else if name.eq_ignore_ascii_case(b"user-agent") {
                    Some(&mut tx.user_agent)
                } else if name.eq_ignore_ascii_case(b"cookie") {
                    Some(&mut tx.cookie)
                } else {
                    None
                };
                if let Some(f) = field {
                    *f = Some(value[..value.len().min(HEADER_BLOCK_MAX)].to_vec());
                }
            }
        }
    }

    fn headers_done(&mut self, is_orig: bool) {
        let conn = self.conn_ref();
        let tx = if is_orig {
            self.observed.back()
        } else {
            self.observed.front()
        };
        if let (Some(obs), Some(tx)) = (self.observer.as_mut(), tx) {
            if is_orig {
                obs.request_headers(&conn, tx);
            } else {
                obs.response_headers(&conn, tx);
            }
        }
    }

    fn body(&mut self, is_orig: bool, data: &[u8]) {
        if let Some(tx) = self.observed_tx(is_orig) {
            let sample = if is_orig {
                &mut tx.request_body
            } else {
                &mut tx.response_body
            };
            append_capped(sample, data, BODY_SAMPLE_MAX);
        }
    }

    fn message_done(&mut self, is_orig: bool, body_len: u64) {
        self.session.message_done(&mut self.ctx, is_orig, body_len);
        let conn = self.conn_ref();
        let Some(tx) = self.observed_tx(is_orig) else {
            return;
        };
        if is_orig {
            tx.request_body_len = body_len;
            if let (Some(obs), Some(tx)) = (self.observer.as_mut(), self.observed.back()) {
                obs.request_done(&conn, tx);
            }
            return;
        }
        tx.response_body_len = body_len;
        if tx.status_code.is_some_and(|c| (100..200).contains(&c)) {
            return;
        }
        if let (Some(obs), Some(tx)) = (self.observer.as_mut(), self.observed.pop_front()) {
            obs.transaction_done(&conn, &tx);
        }
    }

    fn confirm(&mut self) {
        self.confirmed = true;
    }

    fn violation(&mut self) {
        self.violated = true;
        Stats::inc(&self.ctx.stats.analyzer_weirds);
    }

    fn weird(&mut self, _what: &'static str) {
        Stats::inc(&self.ctx.stats.http_weirds);
    }
}
