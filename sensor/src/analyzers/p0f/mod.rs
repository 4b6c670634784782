//! p0f-k.log: passive OS fingerprints of TCP SYN and SYN+ACK packets (reference §3.7).
//!
//! Each SYN and the first SYN+ACK answering it get p0f v3's TCP signature ([`sig`]), matched
//! against a database in p0f's `p0f.fp` format ([`db`], [`matcher`]). As in p0f, a SYN opens
//! a short-lived handshake entry: a retransmitted SYN (same sequence number) is not
//! fingerprinted again, a SYN+ACK is fingerprinted only when its SYN was seen and only once,
//! and its MSS-relative window uses the SYN's MSS. Entries end with FIN or RST, after 30 s, or
//! when the fixed-size table is full (oldest first).

pub mod db;
pub mod matcher;
pub mod sig;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;

use crate::decode::{tcp_flags, Decoded, MacPair, Transport};
use crate::logs::zeek::{self, LogStyle, Row, Schema, ZeekRecord};
use crate::stats::Stats;
use crate::ts::Ts;

pub use db::{Database, DbError};

/// p0f-k.log has no header (reference §1.5: plain concatenation of p0f's output).
pub static P0F_SCHEMA: Schema = Schema {
    path: "p0f-k",
    fields: &[
        ("ts", "time"),
        ("mod", "string"),
        ("ip", "addr"),
        ("mac", "string"),
        ("os", "string"),
        ("raw_sig", "string"),
    ],
    style: LogStyle::Bare,
};

/// One p0f-k.log line. The signature is kept as measured and rendered by the log writer,
/// off the packet path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct P0fRecord {
    pub ts: Ts,
    /// SYN+ACK (the server) rather than SYN (the client).
    pub syn_ack: bool,
    pub ip: IpAddr,
    pub mac: [u8; 6],
    /// Label name and flavor, or `???` (shared: one string per database label).
    pub os: Arc<str>,
    pub sig: sig::PacketSig,
    /// MSS of the SYN a SYN+ACK answers (window multiples), 0 for a SYN.
    pub syn_mss: u16,
}

impl P0fRecord {
    /// `raw_sig` as p0f prints it.
    pub fn raw_sig(&self) -> String {
        sig::render(&self.sig, self.syn_mss)
    }

    /// The line as p0f-k writes it (without the newline).
    pub fn line(&self) -> String {
        let mut s = Vec::with_capacity(160);
        self.push_line(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    }

    /// [`P0fRecord::line`] appended to `out`, by hand: the log writer renders one per SYN.
    pub fn push_line(&self, out: &mut Vec<u8>) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let secs = self.ts.0.div_euclid(1_000_000);
        let us = self.ts.0.rem_euclid(1_000_000);
        if secs < 0 {
            out.push(b'-');
        }
        zeek::push_u64(out, secs.unsigned_abs());
        zeek::push_frac6(out, us.unsigned_abs());
        out.extend_from_slice(if self.syn_ack {
            b"\tsyn+ack\t"
        } else {
            b"\tsyn\t"
        });
        match self.ip {
            IpAddr::V4(a) => zeek::push_ipv4(out, a.octets()),
            // p0f prints the eight groups in full, without `::` compression, in lower-case
            // hex without leading zeros.
            IpAddr::V6(a) => {
                for (i, g) in a.segments().into_iter().enumerate() {
                    if i > 0 {
                        out.push(b':');
                    }
                    let digits = (16 - g.leading_zeros()).div_ceil(4).max(1);
                    for d in (0..digits).rev() {
                        out.push(HEX[usize::from((g >> (4 * d)) & 15)]);
                    }
                }
            }
        }
        let mut mac = [b':'; 19];
        mac[0] = b'\t';
        mac[18] = b'\t';
        for (i, b) in self.mac.iter().enumerate() {
            mac[1 + i * 3] = HEX[usize::from(b >> 4)];
            mac[2 + i * 3] = HEX[usize::from(b & 15)];
        }
        out.extend_from_slice(&mac);
        out.extend_from_slice(self.os.as_bytes());
        out.push(b'\t');
        sig::render_into(&self.sig, self.syn_mss, out);
    }
}

impl ZeekRecord for P0fRecord {
    fn schema(&self) -> &'static Schema {
        &P0F_SCHEMA
    }

    fn write_row(&self, row: &mut Row<'_>) {
        self.push_line(row.verbatim_buf());
    }
}

/// Signatures whose match is remembered (direct-mapped).
const MATCH_CACHE: usize = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct CacheKey {
    sig: sig::PacketSig,
    response: bool,
    syn_mss: u16,
}

/// Handshake entries kept at once (p0f's default connection limit is 1000).
pub const MAX_HANDSHAKES: usize = 4096;
/// A SYN+ACK later than this after its SYN is not paired with it (p0f's `-t` default).
const HANDSHAKE_SECS: i64 = 30;

/// The two endpoints of a handshake in a fixed order, so that both directions of a
/// connection find the one entry (a new SYN replaces the entry of either direction).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    lo: End,
    hi: End,
}

/// One endpoint as plain integers: compared and hashed in a few instructions (the order
/// only has to be the same for both directions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct End {
    addr: [u64; 2],
    /// Port, and bit 16 for IPv6 (an IPv4 address and its IPv6 form stay apart).
    port: u32,
}

impl End {
    fn of((ip, port): (IpAddr, u16)) -> End {
        let (bits, v6) = match ip {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 0),
            IpAddr::V6(a) => (u128::from(a), 1 << 16),
        };
        End {
            addr: [(bits >> 64) as u64, bits as u64],
            port: u32::from(port) | v6,
        }
    }
}

impl Key {
    /// The key of the handshake from `cli` to `srv`, and whether `cli` is its `lo` end.
    fn of(cli: (IpAddr, u16), srv: (IpAddr, u16)) -> (Key, bool) {
        let (cli, srv) = (End::of(cli), End::of(srv));
        if cli <= srv {
            (Key { lo: cli, hi: srv }, true)
        } else {
            (Key { lo: srv, hi: cli }, false)
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Handshake {
    started: Ts,
    /// Sequence number of the SYN.
    seq: u32,
    syn_mss: u16,
    macs: MacPair,
    /// The client (the SYN's sender) is the key's `lo` end.
    cli_lo: bool,
    acked: bool,
    /// Position in the age queue (entries are found there by generation).
    gen: u64,
}

/// The p0f analyzer: database plus handshake table.
pub struct P0f {
    db: Arc<Database>,
    /// `os` of each label, rendered once.
    os_names: Vec<Arc<str>>,
    unknown: Arc<str>,
    /// Recent signatures and what they matched: a network has few distinct stacks, and the
    /// database scan is the costly part of a SYN.
    cache: Vec<Option<(CacheKey, Option<matcher::Match>)>>,
    table: hashbrown::HashMap<Key, Handshake>,
    /// Keys in the order their entries were created; stale positions are skipped.
    ages: VecDeque<(Key, u64)>,
    next_gen: u64,
    stats: Arc<Stats>,
}

impl P0f {
    pub fn new(db: Arc<Database>, stats: Arc<Stats>) -> P0f {
        P0f {
            os_names: db.labels.iter().map(|l| Arc::from(l.os_text())).collect(),
            unknown: Arc::from("???"),
            cache: vec![None; MATCH_CACHE],
            db,
            table: hashbrown::HashMap::with_capacity(MAX_HANDSHAKES),
            ages: VecDeque::with_capacity(2 * MAX_HANDSHAKES),
            next_gen: 0,
            stats,
        }
    }

    /// Looks at the innermost TCP segment of a frame; a SYN or SYN+ACK yields a record.
    /// Only SYN, SYN+ACK, FIN and RST segments mean anything here; the rest (nearly every
    /// packet) leave after a flag test.
    #[inline]
    pub fn on_frame(&mut self, frame: &Decoded<'_>) -> Option<P0fRecord> {
        let layer = frame.innermost()?;
        let Transport::Tcp(seg) = &layer.transport else {
            return None;
        };
        if seg.flags & (tcp_flags::SYN | tcp_flags::FIN | tcp_flags::RST) == 0 {
            return None;
        }
        self.handshake_segment(frame, layer, seg)
    }

    #[inline(never)]
    fn handshake_segment(
        &mut self,
        frame: &Decoded<'_>,
        layer: &crate::decode::IpLayer<'_>,
        seg: &crate::decode::TcpSegment<'_>,
    ) -> Option<P0fRecord> {
        let kind = seg.flags & (tcp_flags::SYN | tcp_flags::ACK | tcp_flags::FIN | tcp_flags::RST);
        let src = (layer.src, seg.src_port);
        let dst = (layer.dst, seg.dst_port);
        match kind {
            tcp_flags::SYN => {
                let (key, cli_lo) = Key::of(src, dst);
                if let Some(h) = self.table.get(&key) {
                    if h.cli_lo == cli_lo && !self.expired(h, frame.ts) && h.seq == seg.seq {
                        // A retransmitted SYN: p0f fingerprints a handshake once.
                        return None;
                    }
                    self.table.remove(&key);
                }
                let s = self.signature(layer, seg)?;
                let m = self.find(&s, false, 0);
                let non_os = m.is_some_and(|m| self.db.labels[m.label].class.is_none());
                if !non_os {
                    // Scanners (NMap, ...) get no handshake: p0f drops their flows.
                    self.insert(
                        key,
                        Handshake {
                            started: frame.ts,
                            seq: seg.seq,
                            syn_mss: s.mss,
                            macs: frame.macs.unwrap_or_default(),
                            cli_lo,
                            acked: false,
                            gen: 0,
                        },
                        frame.ts,
                    );
                }
                Stats::inc(&self.stats.p0f_syn);
                Some(self.record(
                    frame.ts,
                    false,
                    layer.src,
                    frame.macs.map(|m| m.src),
                    &s,
                    m,
                    0,
                ))
            }
            k if k == tcp_flags::SYN | tcp_flags::ACK => {
                let (key, cli_lo) = Key::of(dst, src);
                let now = frame.ts;
                let e = self.table.get_mut(&key).filter(|e| e.cli_lo == cli_lo)?;
                if now.0 - e.started.0 > HANDSHAKE_SECS * 1_000_000 {
                    self.table.remove(&key);
                    return None;
                }
                if e.acked {
                    return None;
                }
                e.acked = true;
                let h = *e;
                let s = self.signature(layer, seg)?;
                let m = self.find(&s, true, h.syn_mss);
                Stats::inc(&self.stats.p0f_syn_ack);
                Some(self.record(
                    frame.ts,
                    true,
                    layer.src,
                    // p0f-k takes the server's MAC from the SYN (its destination).
                    Some(h.macs.dst),
                    &s,
                    m,
                    h.syn_mss,
                ))
            }
            _ => {
                if kind & (tcp_flags::FIN | tcp_flags::RST) != 0 && !self.table.is_empty() {
                    self.table.remove(&Key::of(src, dst).0);
                }
                None
            }
        }
    }

    /// The database match of a signature, through the cache.
    fn find(&mut self, s: &sig::PacketSig, response: bool, syn_mss: u16) -> Option<matcher::Match> {
        // Only whether a timestamp is present matters to matching, not its value.
        let key = CacheKey {
            sig: sig::PacketSig {
                ts1: u32::from(s.ts1 != 0),
                ..*s
            },
            response,
            syn_mss,
        };
        let slot = cache_slot(&key);
        if let Some((k, m)) = &self.cache[slot] {
            if *k == key {
                return *m;
            }
        }
        let m = matcher::find(&self.db, s, response, syn_mss);
        self.cache[slot] = Some((key, m));
        m
    }

    fn expired(&self, h: &Handshake, now: Ts) -> bool {
        now.0 - h.started.0 > HANDSHAKE_SECS * 1_000_000
    }

    fn signature(
        &self,
        layer: &crate::decode::IpLayer<'_>,
        seg: &crate::decode::TcpSegment<'_>,
    ) -> Option<sig::PacketSig> {
        match sig::extract(layer, seg) {
            Ok(s) => {
                if s.quirks & sig::quirk::OPT_BAD != 0 {
                    // Still fingerprinted (`bad` is part of the signature, as in p0f).
                    Stats::inc(&self.stats.analyzer_weirds);
                }
                Some(s)
            }
            Err(sig::NoSig::Skip) => None,
            Err(sig::NoSig::Malformed) => {
                Stats::inc(&self.stats.analyzer_weirds);
                Stats::inc(&self.stats.p0f_malformed);
                None
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        ts: Ts,
        syn_ack: bool,
        ip: IpAddr,
        mac: Option<[u8; 6]>,
        s: &sig::PacketSig,
        m: Option<matcher::Match>,
        syn_mss: u16,
    ) -> P0fRecord {
        if m.is_none() {
            Stats::inc(&self.stats.p0f_unknown);
        }
        P0fRecord {
            ts,
            syn_ack,
            ip,
            mac: mac.unwrap_or_default(),
            os: m.map_or_else(|| self.unknown.clone(), |m| self.os_names[m.label].clone()),
            sig: *s,
            syn_mss,
        }
    }

    fn insert(&mut self, key: Key, mut h: Handshake, now: Ts) {
        if self.ages.len() >= 2 * MAX_HANDSHAKES {
            // Drop positions of entries already gone (closed, replaced): amortised O(1).
            let table = &self.table;
            self.ages
                .retain(|(k, g)| table.get(k).is_some_and(|e| e.gen == *g));
        }
        while self.table.len() >= MAX_HANDSHAKES {
            let Some((old, gen)) = self.ages.pop_front() else {
                break;
            };
            if let Some(e) = self.table.get(&old).filter(|e| e.gen == gen).copied() {
                self.table.remove(&old);
                if !self.expired(&e, now) {
                    Stats::inc(&self.stats.p0f_handshakes_evicted);
                }
            }
        }
        self.next_gen += 1;
        h.gen = self.next_gen;
        self.table.insert(key, h);
        self.ages.push_back((key, h.gen));
    }
}

/// The cache slot of a signature: a multiplicative hash of the fields that tell stacks
/// apart (equal keys are checked in full on a hit, so collisions only cost a lookup).
fn cache_slot(k: &CacheKey) -> usize {
    let s = &k.sig;
    let mut kinds = 0u64;
    for (i, &kind) in s.layout.kinds().iter().take(8).enumerate() {
        kinds |= u64::from(kind) << (8 * i);
    }
    let fields = u64::from(s.win)
        | u64::from(s.mss) << 16
        | u64::from(s.ttl) << 32
        | u64::from(s.wscale) << 40
        | u64::from(s.olen) << 48
        | u64::from(s.ver) << 56;
    let more = u64::from(s.quirks)
        | u64::from(k.syn_mss) << 32
        | u64::from(s.tot_hdr) << 48
        | u64::from(k.response) << 63
        | u64::from(s.payload) << 62
        | u64::from(s.ts1 != 0) << 61
        | u64::from(s.eol_pad) << 53;
    const M: u64 = 0x9e37_79b9_7f4a_7c15;
    let h = (fields.wrapping_mul(M) ^ more).wrapping_mul(M) ^ kinds;
    let h = h.wrapping_mul(M);
    (h >> 32) as usize % MATCH_CACHE
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod line_tests;
