//! The compiled rule set: rules sorted into the inspection points where they can fire, a
//! multi-pattern prefilter per inspection point and buffer, and the per-rule verification.
//!
//! Each inspection point ([`Point`]) keeps one Aho-Corasick automaton per (buffer,
//! transforms) pair over the rules' fast patterns (case-insensitive; the verification checks
//! case). A packet or transaction runs the automata over its buffers, collects the rules whose
//! fast pattern occurs, adds the rules without any usable pattern, and verifies those in rule
//! order. Rule order puts flowbit writers before readers and unsets last, so that rules
//! reading a bit set by another rule on the same packet see it, as Suricata's ordering does.

use hashbrown::HashMap;
use std::net::IpAddr;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};

use super::inspect::{self, VarSlots};
use super::literals::Literals;
use super::rule::*;
use crate::decode::{IpLayer, Transport};

/// Where rules are evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    PktTcp = 0,
    PktUdp,
    PktIcmp,
    PktOther,
    HttpRequest,
    HttpResponse,
    Dns,
    TlsClient,
    TlsServer,
}

pub const POINTS: usize = 9;

/// Which payload instances a payload list may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadSel {
    Packet,
    Stream,
    Both,
    /// What the prefilter scans: every instance's patterns, each byte once if possible.
    Prefilter,
}

/// The buffers of one inspection (a packet, a transaction).
pub trait Source {
    /// Calls `f` on each instance of `buf` (most buffers have one; `tls.certs` and the
    /// payload with its stream window may have several) until it returns true. `f`'s second
    /// argument is the stream window's already-inspected prefix length, if any.
    fn any(
        &self,
        buf: Buf,
        sel: PayloadSel,
        f: &mut dyn FnMut(&[u8], Option<usize>) -> bool,
    ) -> bool;
}

/// Packet and flow facts the header, flow and packet keywords check.
pub struct Facts<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub ip_proto: u8,
    pub layer: Option<&'a IpLayer<'a>>,
    pub payload_len: usize,
    pub to_server: bool,
    pub established: bool,
    pub app: Option<AppProto>,
    /// Protocol detection is over (a `None` app is final).
    pub app_final: bool,
    /// Payload bytes so far from the client and from the server.
    pub stream_bytes: [u64; 2],
}

/// A prefilter's multi-pattern search.
enum Scanner {
    /// Packet groups' few hundred patterns (see [`Literals`]).
    Literals(Literals),
    /// Larger sets: a point's full prefilter, the application-layer buffers.
    Ac(AhoCorasick),
}

impl Scanner {
    /// Calls `f(start, end, pattern)` for every occurrence of every pattern in `hay`.
    fn for_each(&self, hay: &[u8], f: &mut dyn FnMut(usize, usize, u32)) {
        match self {
            Scanner::Literals(l) => l.for_each(hay, &mut |i, id| f(i, i + l.len_of(id), id)),
            Scanner::Ac(ac) => {
                for m in ac.find_overlapping_iter(hay) {
                    f(m.start(), m.end(), m.pattern().as_u32());
                }
            }
        }
    }
}

/// What a prefilter is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prefer {
    /// A group's packet prefilter: the hot path (pair bitmaps, or else a DFA).
    Packet,
    /// A group's application-layer prefilter: pair bitmaps, or else what Aho-Corasick picks.
    Small,
    /// A point's full prefilter, built only when the group subsets' cache is full.
    Compact,
}

/// Longest prefix of a fast pattern the packet prefilters look for.
const PACKET_PATTERN_MAX: usize = 16;

/// Largest pattern set searched with [`Literals`]: beyond it, the pair bitmaps fill up and
/// more positions need a look-up. (Building one costs little: a DFA over a few hundred
/// patterns takes milliseconds, and packets wait for it.)
const LITERALS_MAX: usize = 512;

/// An `endswith` pattern with a dot, and its rules.
type DotEnd = (Vec<u8>, Vec<u32>);

pub struct PfSet {
    buf: Buf,
    transforms: Vec<Transform>,
    scanner: Option<Scanner>,
    /// Rules per pattern id.
    rules: Vec<Vec<u32>>,
    /// Fast patterns that must end the buffer (`endswith`: the IOC-style `dns.query` and
    /// `tls.sni` rules), lower-cased, with their rules: one hash lookup per length instead
    /// of the automaton.
    ends: HashMap<Vec<u8>, Vec<u32>>,
    end_lens: Vec<usize>,
    /// The `endswith` patterns holding a dot (domain names), by their part from the first
    /// dot on: a buffer looks up its own suffixes from each of its dots (a few look-ups per
    /// name, however many pattern lengths there are) and compares the bucket's patterns.
    dot_ends: HashMap<Vec<u8>, Vec<DotEnd>>,
    /// Names this automaton in a [`StreamCarry`] (never 0).
    id: u64,
    /// The longest pattern: how far a match can reach back from new stream bytes.
    max_len: usize,
}

#[derive(Default)]
pub struct PointIndex {
    pub sets: Vec<PfSet>,
    /// Rules with no pattern for the prefilter: always verified.
    pub always: Vec<u32>,
    /// How many rules can fire here.
    pub count: usize,
    /// Every rule here needs a payload pattern: a packet without payload has no candidates.
    pub payload_only: bool,
}

pub struct Compiled {
    pub rules: Vec<Rule>,
    /// Rules per point, in evaluation order.
    members: Vec<Vec<u32>>,
    pub groups: super::groups::Groups,
}

/// Patterns of one (buffer, transforms) pair and the rules of each.
type PatGroup = (
    Buf,
    Vec<Transform>,
    Vec<Vec<u8>>,
    Vec<Vec<u32>>,
    HashMap<Vec<u8>, Vec<u32>>,
);
type PatKey = (Buf, Vec<Transform>, Vec<u8>);

/// Reusable per-inspection scratch space.
#[derive(Default)]
pub struct Scratch {
    seen: Vec<u64>,
    cands: Vec<u32>,
    /// A buffer, folded, for the `endswith` look-ups.
    tail: Vec<u8>,
    /// The stream direction's carried prefilter matches, lent by the caller for a packet with
    /// a stream window.
    pub carry: Option<StreamCarry>,
}

/// Carried matches past which the next segment rescans its whole window (bounded per-flow
/// memory; the full scan is always correct).
const MAX_CARRY: usize = 64;

/// The payload prefilter's matches lying wholly in the bytes a TCP direction keeps for its
/// next stream window, so that the next segment scans only its new bytes plus the overlap a
/// pattern can span, and still finds every rule a scan of the whole window would.
#[derive(Debug, Default)]
pub struct StreamCarry {
    /// The automaton the matches come from; 0: none, the next window is scanned whole.
    set: u64,
    /// The kept tail's length the matches are placed against.
    tail_len: usize,
    /// (distance from the match's start to the tail's end, pattern id).
    hits: Vec<(u16, u32)>,
    /// This packet's scan brought the matches up to date with the new tail.
    pub fresh: bool,
}

/// Scans stream window `data` (bytes before `seen` were the kept tail) with the payload
/// automaton, reusing `carry`'s matches in the tail when they belong to this automaton and
/// tail, and leaves in `carry` the matches in the tail the next segment will keep.
fn stream_scan(
    set: &PfSet,
    scanner: &Scanner,
    data: &[u8],
    seen: usize,
    carry: &mut StreamCarry,
    add: &mut dyn FnMut(u32),
) {
    let keep_from = data.len() - data.len().min(super::STREAM_TAIL);
    let reuse = carry.set == set.id && carry.tail_len == seen;
    let from = if reuse {
        seen.saturating_sub(set.max_len.saturating_sub(1))
    } else {
        carry.hits.clear();
        0
    };
    carry.hits.retain_mut(|(dist, pid)| {
        for &ri in &set.rules[*pid as usize] {
            add(ri);
        }
        let start = seen - *dist as usize;
        *dist = (data.len() - start) as u16;
        start >= keep_from
    });
    let mut whole = true;
    scanner.for_each(&data[from..], &mut |start, end, pid| {
        let (start, end) = (start + from, end + from);
        if reuse && end <= seen {
            // Wholly in the old tail: carried.
            return;
        }
        for &ri in &set.rules[pid as usize] {
            add(ri);
        }
        if start >= keep_from {
            if carry.hits.len() < MAX_CARRY {
                carry.hits.push(((data.len() - start) as u16, pid));
            } else {
                whole = false;
            }
        }
    });
    carry.set = if whole { set.id } else { 0 };
    carry.tail_len = data.len() - keep_from;
    carry.fresh = true;
}

/// Evaluation rank: flowbit setters first, then readers that also set, readers, rules
/// without flowbits, and unsetters last.
fn rank(r: &Rule) -> u8 {
    let reads = r
        .flowbits
        .iter()
        .any(|f| matches!(f, FlowbitOp::IsSet(_) | FlowbitOp::IsNotSet(_)));
    let sets = r
        .flowbits
        .iter()
        .any(|f| matches!(f, FlowbitOp::Set(_) | FlowbitOp::Toggle(_)));
    let unsets = r.flowbits.iter().any(|f| matches!(f, FlowbitOp::Unset(_)));
    match (sets, reads, unsets) {
        (true, false, _) => 0,
        (true, true, _) => 1,
        (false, true, _) => 2,
        (false, false, true) => 4,
        (false, false, false) => 3,
    }
}

/// The inspection points where a rule can fire.
pub fn points_of(r: &Rule) -> Vec<Point> {
    if r.uses_buf(Buf::is_http) || r.header.app == Some(AppProto::Http) && has_app_bufs(r) {
        let mut req = false;
        let mut resp = false;
        for l in &r.lists {
            match l.buf.http_side() {
                Side::Request => req = true,
                Side::Response => resp = true,
                _ => {}
            }
        }
        return if resp {
            vec![Point::HttpResponse]
        } else if req {
            vec![Point::HttpRequest]
        } else {
            match r.flow.to_server {
                Some(true) => vec![Point::HttpRequest],
                Some(false) => vec![Point::HttpResponse],
                None => vec![Point::HttpRequest, Point::HttpResponse],
            }
        };
    }
    if r.uses_buf(Buf::is_dns) {
        return vec![Point::Dns];
    }
    if r.uses_buf(Buf::is_tls) {
        return if r.uses_buf(Buf::is_tls_server) {
            vec![Point::TlsServer]
        } else {
            vec![Point::TlsClient]
        };
    }
    let app_tcp = matches!(
        r.header.app,
        Some(AppProto::Http | AppProto::Tls | AppProto::Smtp | AppProto::Ftp | AppProto::Ssh)
    );
    match r.header.proto {
        Proto::Tcp | Proto::TcpPkt | Proto::TcpStream => vec![Point::PktTcp],
        Proto::Udp => vec![Point::PktUdp],
        Proto::Icmp | Proto::Icmpv4 | Proto::Icmpv6 => vec![Point::PktIcmp],
        Proto::Ip if matches!(r.header.app, Some(AppProto::Dns | AppProto::Enip)) => {
            vec![Point::PktTcp, Point::PktUdp]
        }
        Proto::Ip if app_tcp => vec![Point::PktTcp],
        Proto::Ip => vec![
            Point::PktTcp,
            Point::PktUdp,
            Point::PktIcmp,
            Point::PktOther,
        ],
    }
}

fn has_app_bufs(r: &Rule) -> bool {
    r.lists.iter().any(|l| l.buf != Buf::Payload)
}

/// The content that goes into the prefilter: the one marked `fast_pattern`, else the
/// longest positive content. Returns (list index, bytes, whether they end the buffer).
fn fast_pattern(r: &Rule) -> Option<(usize, Vec<u8>, bool)> {
    let mut best: Option<(usize, &Content)> = None;
    for (li, l) in r.lists.iter().enumerate() {
        for m in &l.matches {
            if let Match::Content(c) = m {
                if c.negated {
                    continue;
                }
                if c.fast_pattern {
                    best = Some((li, c));
                    return best.map(|(li, c)| (li, fp_bytes(c), ends_buffer(c)));
                }
                if best.is_none_or(|(_, b)| c.pattern.len() > b.pattern.len()) {
                    best = Some((li, c));
                }
            }
        }
    }
    best.map(|(li, c)| (li, fp_bytes(c), ends_buffer(c)))
}

fn ends_buffer(c: &Content) -> bool {
    c.endswith && c.fp_chop.is_none()
}

fn fp_bytes(c: &Content) -> Vec<u8> {
    let p = match c.fp_chop {
        Some((o, l)) => &c.pattern[o..o + l],
        None => &c.pattern[..],
    };
    p.to_ascii_lowercase()
}

impl Compiled {
    /// Sorts the rules into evaluation order and builds the prefilters.
    pub fn build(mut rules: Vec<Rule>) -> Compiled {
        rules.sort_by_key(rank);
        let mut members: Vec<Vec<u32>> = vec![Vec::new(); POINTS];
        for (ri, r) in rules.iter().enumerate() {
            for p in points_of(r) {
                members[p as usize].push(ri as u32);
            }
        }
        let groups = super::groups::Groups::build(&rules, &members);
        Compiled {
            rules,
            members,
            groups,
        }
    }

    /// The prefilter over the rules at `p` that `keep` admits (a header group's rules).
    pub fn index_of(&self, p: Point, keep: impl Fn(u32) -> bool) -> PointIndex {
        let kind = if (p as usize) <= Point::PktOther as usize {
            Prefer::Packet
        } else {
            Prefer::Small
        };
        build_index(
            &self.rules,
            self.members[p as usize]
                .iter()
                .copied()
                .filter(|&ri| keep(ri)),
            kind,
        )
    }

    /// The prefilter over every rule at `p` (compact: built only when the group subsets'
    /// cache is full).
    pub fn full_index(&self, p: Point) -> PointIndex {
        build_index(
            &self.rules,
            self.members[p as usize].iter().copied(),
            Prefer::Compact,
        )
    }

    pub fn rules_at(&self, p: Point) -> usize {
        self.members[p as usize].len()
    }

    /// The rules of `pi` worth verifying for these buffers, in evaluation order.
    pub fn candidates<'s>(
        &self,
        pi: &PointIndex,
        src: &dyn Source,
        sc: &'s mut Scratch,
    ) -> &'s [u32] {
        let words = self.rules.len().div_ceil(64);
        if sc.seen.len() != words {
            sc.seen = vec![0; words];
        }
        sc.cands.clear();
        if pi.count == 0 {
            return &sc.cands;
        }
        let Scratch {
            seen,
            cands,
            tail,
            carry,
        } = sc;
        let mut add = |ri: u32| {
            let (w, b) = (ri as usize / 64, ri % 64);
            if seen[w] & (1 << b) == 0 {
                seen[w] |= 1 << b;
                cands.push(ri);
            }
        };
        for &ri in &pi.always {
            add(ri);
        }
        for set in &pi.sets {
            src.any(set.buf, PayloadSel::Prefilter, &mut |data, seen_len| {
                if let (Some(sc), Some(seen_len), Some(carry)) =
                    (&set.scanner, seen_len, carry.as_mut())
                {
                    if set.buf == Buf::Payload && set.transforms.is_empty() {
                        stream_scan(set, sc, data, seen_len, carry, &mut add);
                        return false;
                    }
                }
                let data = inspect::transform(data, &set.transforms);
                if let Some(sc) = &set.scanner {
                    sc.for_each(&data, &mut |_, _, pid| {
                        for &ri in &set.rules[pid as usize] {
                            add(ri);
                        }
                    });
                }
                if !set.end_lens.is_empty() || !set.dot_ends.is_empty() {
                    // Folded once; each length looks its suffix up.
                    tail.clear();
                    tail.extend(data.iter().map(u8::to_ascii_lowercase));
                    if !set.dot_ends.is_empty() {
                        for (j, _) in tail.iter().enumerate().filter(|(_, &b)| b == b'.') {
                            let Some(bucket) = set.dot_ends.get(&tail[j..]) else {
                                continue;
                            };
                            for (pat, rules) in bucket {
                                if tail.ends_with(pat) {
                                    for &ri in rules {
                                        add(ri);
                                    }
                                }
                            }
                        }
                    }
                    for &n in set.end_lens.iter().take_while(|&&n| n <= tail.len()) {
                        let end = &tail[tail.len() - n..];
                        for &ri in set.ends.get(end).map_or(&[][..], Vec::as_slice) {
                            add(ri);
                        }
                    }
                }
                false
            });
        }
        for &ri in cands.iter() {
            seen[ri as usize / 64] &= !(1 << (ri % 64));
        }
        cands.sort_unstable();
        cands
    }
}

/// The prefilter over `members` (rule indices at one point, in evaluation order): one
/// automaton per (buffer, transforms) pair over the rules' fast patterns, and the rules
/// without a usable pattern.
fn build_index(rules: &[Rule], members: impl Iterator<Item = u32>, kind: Prefer) -> PointIndex {
    let mut pi = PointIndex::default();
    // Group by (buffer, transforms), deduplicating patterns.
    let mut groups: Vec<PatGroup> = Vec::new();
    let mut index: HashMap<PatKey, (usize, usize)> = HashMap::new();
    for ri in members {
        pi.count += 1;
        let r = &rules[ri as usize];
        let Some((li, mut bytes, at_end)) = fast_pattern(r) else {
            pi.always.push(ri);
            continue;
        };
        if kind == Prefer::Packet && !at_end {
            // Verification compares the whole content; a short prefix selects as well and
            // keeps the stream window's rescan of its kept tail short.
            bytes.truncate(PACKET_PATTERN_MAX);
        }
        let l = &r.lists[li];
        let (buf, tr) = (l.buf, &l.transforms);
        let g = match groups.iter().position(|g| g.0 == buf && &g.1 == tr) {
            Some(g) => g,
            None => {
                groups.push((buf, tr.clone(), Vec::new(), Vec::new(), HashMap::new()));
                groups.len() - 1
            }
        };
        // The payload's instances (packet, stream window) end in different places.
        if at_end && buf != Buf::Payload {
            groups[g].4.entry(bytes).or_default().push(ri);
            continue;
        }
        let key = (buf, tr.clone(), bytes);
        if let Some(&(g, pid)) = index.get(&key) {
            groups[g].3[pid].push(ri);
            continue;
        }
        groups[g].2.push(key.2.clone());
        groups[g].3.push(vec![ri]);
        index.insert(key, (g, groups[g].2.len() - 1));
    }
    for (buf, transforms, patterns, rules_of, ends) in groups {
        let scanner = match (kind, patterns.len()) {
            (_, 0) => None,
            (Prefer::Packet | Prefer::Small, n) if n <= LITERALS_MAX => {
                Some(Scanner::Literals(Literals::new(&patterns)))
            }
            _ => Some(Scanner::Ac(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    .kind((kind == Prefer::Packet).then_some(AhoCorasickKind::DFA))
                    .build(&patterns)
                    .expect("literal patterns always build"),
            )),
        };
        let mut dot_ends: HashMap<Vec<u8>, Vec<DotEnd>> = HashMap::new();
        let mut plain_ends = HashMap::new();
        for (pat, rules) in ends {
            match pat.iter().position(|&b| b == b'.') {
                Some(d) => dot_ends
                    .entry(pat[d..].to_vec())
                    .or_default()
                    .push((pat, rules)),
                None => {
                    plain_ends.insert(pat, rules);
                }
            }
        }
        let ends = plain_ends;
        let mut end_lens: Vec<usize> = ends.keys().map(Vec::len).collect();
        end_lens.sort_unstable();
        end_lens.dedup();
        static SET_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        pi.sets.push(PfSet {
            buf,
            transforms,
            scanner,
            rules: rules_of,
            ends,
            end_lens,
            dot_ends,
            id: SET_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            max_len: patterns.iter().map(Vec::len).max().unwrap_or(0),
        });
    }
    pi.payload_only = pi.always.is_empty() && pi.sets.iter().all(|s| s.buf == Buf::Payload);
    pi
}

/// Header: protocol, addresses and ports (either orientation for `<>`).
pub fn header_matches(r: &Rule, f: &Facts<'_>) -> bool {
    let h = &r.header;
    let proto_ok = match h.proto {
        Proto::Ip => true,
        Proto::Tcp | Proto::TcpPkt | Proto::TcpStream => f.ip_proto == 6,
        Proto::Udp => f.ip_proto == 17,
        Proto::Icmp => f.ip_proto == 1 || f.ip_proto == 58,
        Proto::Icmpv4 => f.ip_proto == 1,
        Proto::Icmpv6 => f.ip_proto == 58,
    };
    if !proto_ok {
        return false;
    }
    if let Some(a) = h.app {
        if f.app != Some(a) {
            return false;
        }
    }
    let fwd = h.src.matches(&f.src)
        && h.dst.matches(&f.dst)
        && h.sport.matches(f.sport)
        && h.dport.matches(f.dport);
    fwd || (h.bidir
        && h.src.matches(&f.dst)
        && h.dst.matches(&f.src)
        && h.sport.matches(f.dport)
        && h.dport.matches(f.sport))
}

/// What a packet or transaction shows the rules besides its endpoints and content, fixed for
/// a connection direction until the application protocol is found: a prefilter is built per
/// key (see [`super::groups`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub to_server: bool,
    pub app: Option<AppProto>,
    /// No application protocol, and none will be found (`app` is `None`).
    pub app_none_final: bool,
}

impl FlowKey {
    pub fn of(f: &Facts<'_>) -> FlowKey {
        FlowKey {
            to_server: f.to_server,
            app: f.app,
            app_none_final: f.app.is_none() && f.app_final,
        }
    }
}

/// Whether `r` can match anything with flow key `k`: the direction, header protocol and
/// `app-layer-protocol` checks of [`verify`], decided once per key.
pub fn flow_key_admits(r: &Rule, k: &FlowKey) -> bool {
    r.flow.to_server.is_none_or(|t| t == k.to_server)
        && r.header.app.is_none_or(|a| k.app == Some(a))
        && app_layer_matches(r, k.app, k.app_none_final)
}

fn flow_matches(r: &Rule, f: &Facts<'_>) -> bool {
    if let Some(ts) = r.flow.to_server {
        if ts != f.to_server {
            return false;
        }
    }
    if let Some(est) = r.flow.established {
        if est != f.established {
            return false;
        }
    }
    true
}

fn app_layer_matches(r: &Rule, app: Option<AppProto>, app_final: bool) -> bool {
    r.app_layer.iter().all(|&(a, neg)| {
        if app.is_none() && !app_final {
            // Not known yet: neither `http` nor `!http` holds.
            return false;
        }
        (app == Some(a)) != neg
    })
}

fn flag_test(have: u8, bits: u8, mode: FlagMode) -> bool {
    match mode {
        FlagMode::Exact => have == bits,
        FlagMode::All => have & bits == bits,
        FlagMode::Any => have & bits != 0,
        FlagMode::Not => have & bits == 0,
    }
}

fn packet_matches(r: &Rule, f: &Facts<'_>) -> bool {
    for c in &r.packet {
        let ok = match c {
            PacketCheck::Dsize(cmp) => cmp.test(f.payload_len as u64),
            PacketCheck::StreamSize(side, cmp) => {
                let [cl, sv] = f.stream_bytes;
                match side {
                    StreamSide::Client => cmp.test(cl),
                    StreamSide::Server => cmp.test(sv),
                    StreamSide::Both => cmp.test(cl) && cmp.test(sv),
                    StreamSide::Either => cmp.test(cl) || cmp.test(sv),
                }
            }
            _ => {
                let Some(l) = f.layer else { return false };
                match c {
                    PacketCheck::Ttl(cmp) => cmp.test(l.ttl as u64),
                    PacketCheck::IpProto(p, neg) => (l.proto == *p) != *neg,
                    PacketCheck::IpId(id) => l.ip_id == *id && l.src.is_ipv4(),
                    PacketCheck::IpOpt(want) => ipv4_has_option(l, *want),
                    PacketCheck::FragBits { bits, mode } => {
                        let have = l
                            .header
                            .get(6)
                            .map(|b| {
                                let mut v = 0;
                                if b & 0x20 != 0 {
                                    v |= 1;
                                }
                                if b & 0x40 != 0 {
                                    v |= 2;
                                }
                                if b & 0x80 != 0 {
                                    v |= 4;
                                }
                                v
                            })
                            .unwrap_or(0);
                        l.src.is_ipv4() && flag_test(have, *bits, *mode)
                    }
                    PacketCheck::Itype(cmp) | PacketCheck::Icode(cmp) => match &l.transport {
                        Transport::Icmp(i) => cmp.test(if matches!(c, PacketCheck::Itype(_)) {
                            i.icmp_type
                        } else {
                            i.code
                        } as u64),
                        _ => false,
                    },
                    PacketCheck::IcmpId(v) | PacketCheck::IcmpSeq(v) => match &l.transport {
                        Transport::Icmp(i) => {
                            // Only echo request/reply carry an id and sequence number.
                            let echo =
                                matches!((i.v6, i.icmp_type), (false, 0 | 8) | (true, 128 | 129));
                            let at = if matches!(c, PacketCheck::IcmpId(_)) {
                                4
                            } else {
                                6
                            };
                            echo && i.header.get(at..at + 2) == Some(&v.to_be_bytes()[..])
                        }
                        _ => false,
                    },
                    PacketCheck::Flags { bits, mode, ignore } => match &l.transport {
                        Transport::Tcp(t) => flag_test(t.flags & !ignore, *bits & !ignore, *mode),
                        _ => false,
                    },
                    PacketCheck::Seq(v) => matches!(&l.transport, Transport::Tcp(t) if t.seq == *v),
                    PacketCheck::Ack(v) => matches!(&l.transport, Transport::Tcp(t) if t.ack == *v),
                    PacketCheck::Window(v, neg) => {
                        matches!(&l.transport, Transport::Tcp(t) if (t.window == *v) != *neg)
                    }
                    PacketCheck::Dsize(_) | PacketCheck::StreamSize(..) => true,
                }
            }
        };
        if !ok {
            return false;
        }
    }
    true
}

fn ipv4_has_option(l: &IpLayer<'_>, want: Option<u8>) -> bool {
    if !l.src.is_ipv4() || l.header.len() <= 20 {
        return false;
    }
    let mut o = &l.header[20..];
    while let Some(&t) = o.first() {
        if want.is_none_or(|w| w == t) {
            return true;
        }
        match t {
            0 => return false,
            1 => o = &o[1..],
            _ => {
                let Some(&len) = o.get(1) else { return false };
                if len < 2 || len as usize > o.len() {
                    return false;
                }
                o = &o[len as usize..];
            }
        }
    }
    false
}

fn flowbits_match(r: &Rule, bits: &[u32]) -> bool {
    r.flowbits.iter().all(|op| match op {
        FlowbitOp::IsSet(ids) => ids.iter().any(|i| bits.contains(i)),
        FlowbitOp::IsNotSet(ids) => ids.iter().any(|i| !bits.contains(i)),
        _ => true,
    })
}

/// Most flowbits one connection holds (bounded storage; setting more is counted).
pub const MAX_FLOWBITS: usize = 32;

/// Applies a matched rule's flowbit writes; false when a set was refused (table full).
pub fn flowbits_apply(r: &Rule, bits: &mut Vec<u32>) -> bool {
    let mut ok = true;
    for op in &r.flowbits {
        match op {
            FlowbitOp::Set(i) if !bits.contains(i) => {
                if bits.len() >= MAX_FLOWBITS {
                    ok = false;
                } else {
                    bits.push(*i);
                }
            }
            FlowbitOp::Unset(i) => bits.retain(|b| b != i),
            FlowbitOp::Toggle(i) => {
                if let Some(p) = bits.iter().position(|b| b == i) {
                    bits.swap_remove(p);
                } else if bits.len() < MAX_FLOWBITS {
                    bits.push(*i);
                }
            }
            _ => {}
        }
    }
    ok
}

/// Which payload instances a rule's payload lists may inspect.
fn payload_sel(r: &Rule) -> PayloadSel {
    if r.flow.only_stream || r.header.proto == Proto::TcpStream {
        PayloadSel::Stream
    } else if r.flow.no_stream || r.header.proto == Proto::TcpPkt {
        PayloadSel::Packet
    } else {
        PayloadSel::Both
    }
}

/// Verifies every condition of a rule except thresholds; flowbits are read, not written.
pub fn verify(r: &Rule, f: &Facts<'_>, src: &dyn Source, bits: &[u32]) -> bool {
    if !header_matches(r, f)
        || !flow_matches(r, f)
        || !app_layer_matches(r, f.app, f.app_final)
        || !flowbits_match(r, bits)
        || !packet_matches(r, f)
    {
        return false;
    }
    let sel = payload_sel(r);
    let mut vars: VarSlots = [0; 8];
    for l in &r.lists {
        let ok = src.any(l.buf, sel, &mut |data, new_from| {
            if l.transforms.is_empty() {
                inspect::inspect(&l.matches, data, &mut vars, new_from)
            } else {
                let t = inspect::transform(data, &l.transforms);
                inspect::inspect(&l.matches, &t, &mut vars, None)
            }
        });
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::buffers::{DnsMessage, DnsSource, PacketSource};
    use crate::detect::parse::{parse_rule, Names};
    use crate::detect::vars::Vars;

    fn compiled(rules: &[&str]) -> Compiled {
        let mut names = Names::default();
        let rules = rules
            .iter()
            .map(|r| parse_rule(r, &Vars::default(), &mut names).unwrap())
            .collect();
        Compiled::build(rules)
    }

    fn dns_candidates(c: &Compiled, name: &[u8]) -> Vec<u32> {
        let queries = [(name, 1u16)];
        let msg = DnsMessage {
            queries: &queries,
            ..DnsMessage::default()
        };
        let src = DnsSource {
            msg: &msg,
            packet: PacketSource::default(),
        };
        let mut sc = Scratch::default();
        c.candidates(&c.full_index(Point::Dns), &src, &mut sc)
            .to_vec()
    }

    #[test]
    fn stream_carry_finds_what_a_whole_window_scan_finds() {
        let c = compiled(&[
            r#"alert tcp any any -> any any (content:"ab"; content:"q"; sid:1;)"#,
            r#"alert tcp any any -> any any (content:"abcab"; sid:2;)"#,
            r#"alert tcp any any -> any any (content:"c"; sid:3;)"#,
            r#"alert tcp any any -> any any (content:"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"; sid:4;)"#,
            r#"alert tcp any any -> any any (content:"cab"; nocase; sid:5;)"#,
        ]);
        // The full prefilter (Aho-Corasick) and a group's (pair bitmaps, cut patterns).
        for pi in [
            c.full_index(Point::PktTcp),
            c.index_of(Point::PktTcp, |_| true),
        ] {
            stream_carry_agrees(&c, &pi);
        }
    }

    fn stream_carry_agrees(c: &Compiled, pi: &PointIndex) {
        let (mut whole, mut carried) = (Scratch::default(), Scratch::default());
        let mut carry = StreamCarry::default();
        let mut tail: Vec<u8> = Vec::new();
        let (mut rng, mut reused) = (7u32, 0);
        let mut next = || {
            rng = rng.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            rng >> 16
        };
        for _ in 0..400 {
            let len = 1 + next() as usize % 300;
            let seg: Vec<u8> = (0..len)
                .map(|_| b"abcbqxyzwv"[next() as usize % 10])
                .collect();
            let mut window = tail.clone();
            window.extend_from_slice(&seg);
            let src = PacketSource {
                payload: &seg,
                stream: (!tail.is_empty()).then_some((&window[..], tail.len())),
                payload_new: true,
                ..PacketSource::default()
            };
            let want = c.candidates(pi, &src, &mut whole).to_vec();
            reused += usize::from(carry.set != 0);
            carried.carry = (!tail.is_empty()).then(|| std::mem::take(&mut carry));
            assert_eq!(c.candidates(pi, &src, &mut carried), &want[..]);
            carry = carried.carry.take().filter(|c| c.fresh).unwrap_or_default();
            carry.fresh = false;
            tail = window[window.len() - window.len().min(super::super::STREAM_TAIL)..].to_vec();
        }
        assert!(reused > 200, "{reused}");
    }

    #[test]
    fn flow_keys_rule_out_direction_and_protocol() {
        let c = compiled(&[
            r#"alert tcp any any -> any any (flow:to_client; content:"abc"; sid:1;)"#,
            r#"alert smtp any any -> any any (content:"abc"; sid:2;)"#,
            r#"alert tcp any any -> any any (app-layer-protocol:!http; content:"abc"; sid:3;)"#,
            r#"alert tcp any any -> any any (content:"abc"; sid:4;)"#,
        ]);
        let admitted = |to_server, app, app_none_final| -> Vec<u32> {
            let k = FlowKey {
                to_server,
                app,
                app_none_final,
            };
            let mut v: Vec<u32> = c
                .rules
                .iter()
                .filter(|r| flow_key_admits(r, &k))
                .map(|r| r.sid)
                .collect();
            v.sort_unstable();
            v
        };
        assert_eq!(admitted(true, None, false), [4]);
        assert_eq!(admitted(false, None, false), [1, 4]);
        assert_eq!(admitted(true, None, true), [3, 4]);
        assert_eq!(admitted(true, Some(AppProto::Smtp), false), [2, 3, 4]);
        assert_eq!(admitted(true, Some(AppProto::Http), false), [4]);
    }

    #[test]
    fn buffer_ends_are_looked_up_not_scanned() {
        let c = compiled(&[
            r#"alert dns any any -> any any (dns.query; dotprefix; content:".evil.example"; endswith; nocase; sid:1;)"#,
            r#"alert dns any any -> any any (dns.query; content:"bad.test"; bsize:8; sid:2;)"#,
            r#"alert dns any any -> any any (dns.query; content:"mid"; sid:3;)"#,
            r#"alert dns any any -> any any (dns.query; content:"ad.test"; endswith; sid:4;)"#,
            r#"alert dns any any -> any any (dns.query; content:"nodot"; endswith; sid:5;)"#,
        ]);
        let sid =
            |v: Vec<u32>| -> Vec<u32> { v.iter().map(|&i| c.rules[i as usize].sid).collect() };
        let idx = c.full_index(Point::Dns);
        assert_eq!(
            idx.sets
                .iter()
                .map(|s| s.ends.len() + s.dot_ends.len())
                .sum::<usize>(),
            3
        );
        assert_eq!(idx.sets.iter().map(|s| s.dot_ends.len()).sum::<usize>(), 2);
        assert_eq!(sid(dns_candidates(&c, b"a.EVIL.example")), [1]);
        assert!(sid(dns_candidates(&c, b"evil.example.org")).is_empty());
        assert_eq!(sid(dns_candidates(&c, b"bad.test")), [2, 4]);
        assert_eq!(sid(dns_candidates(&c, b"a.b.xnodot")), [5]);
        assert!(sid(dns_candidates(&c, b"ad.testx")).is_empty());
        assert_eq!(sid(dns_candidates(&c, b"x.mid.y")), [3]);
    }
}
