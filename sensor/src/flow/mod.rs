//! Flow stage: the bounded connection table.
//!
//! Every IP layer of a decoded packet belongs to one connection, found by its direction-free
//! 5-tuple. The table is allocated once ([`FlowTable::new`]) with a fixed capacity and never
//! grows: connections live in a slab, an index maps keys to slots ([`index`]), and each
//! connection sits in exactly one expiry list, so timeouts and evictions cost O(1) amortized.
//! Inactivity lists are sorted lazily (a packet does not move its connection; the sweep does
//! when it gets there), and a connection past its timeout is ended exactly when its next packet
//! arrives or the interval closes, wherever it sits. When the table is full the connection idle
//! the longest is evicted; it still gets its conn.log row.
//!
//! On a busy link nearly every lookup misses the caches; the replay loop hides that by
//! prefetching the index cell and the entry of the packets just ahead
//! ([`FlowTable::prefetch_cell`], [`FlowTable::prefetch_entry`]).
//!
//! What comes out are [`ConnSummary`] values (a connection ended, or a long-lived one reached
//! an interval boundary) and per-packet [`PacketView`]s for the analyzers.

pub mod history;
pub mod index;
pub mod key;
mod memory;
pub use memory::prefetch;
pub mod tcp;
pub mod uid;

use std::net::IpAddr;
use std::sync::Arc;

use crate::config::FlowConfig;
use crate::decode::detached::FiveTuple;
use crate::decode::{Decoded, IpLayer, MacPair, TcpSegment, Transport, TunnelKind};
use crate::stats::Stats;
use crate::ts::{Span, Ts};
use history::{mask, History, Scaled};
use index::FlowIndex;
use key::{Addr, Endpoint, FlowKey};
use tcp::{EndpointState, TcpConn};
pub use uid::{Uid, UidGen};

/// Most tunnel parents remembered per connection (Zeek's set is unbounded; two covers relays).
pub const MAX_PARENTS: usize = 2;
/// Service names a connection can carry (Zeek's analyzer names), stored as small indices.
pub const SERVICE_NAMES: &[&str] = &[
    "dns",
    "http",
    "ssl",
    "ssh",
    "ftp",
    "ftp-data",
    "smtp",
    "pop3",
    "imap",
    "ntp",
    "dhcp",
    "modbus",
    "dnp3",
    "s7comm",
    "enip",
    "bacnet",
    "teredo",
    "ayiya",
    "vxlan",
    "geneve",
    "gtpv1",
    "snmp",
    "syslog",
    "sip",
    "rdp",
    "smb",
    "krb",
    "ldap",
    "mqtt",
    "quic",
    // Spicy analyzers of the reference sensor (analyzers/ot.rs).
    "spicy_cifs",
    "spicy_dhcpv6",
    "spicy_ssdp",
    "spicy_cclink_ie_field_basic",
    "spicy_cclink_tsn_slmp",
];

/// Most confirmed services remembered per connection.
pub const MAX_SERVICES: usize = 4;

const NIL: u32 = u32::MAX;

/// Transport class of a connection, which decides its timeouts and `proto` column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Transport4 {
    #[default]
    Tcp,
    Udp,
    Icmp,
    Other,
}

impl Transport4 {
    /// Zeek's `proto` enum name.
    pub fn name(self) -> &'static str {
        match self {
            Transport4::Tcp => "tcp",
            Transport4::Udp => "udp",
            Transport4::Icmp => "icmp",
            Transport4::Other => "unknown_transport",
        }
    }
}

/// Why a connection's row is being written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowReason {
    /// Inactivity timeout, close linger, or attempt timeout.
    Expired,
    /// Pushed out of a full table.
    Evicted,
    /// End of input (replay) or shutdown.
    Flushed,
    /// Still alive at an interval boundary: an interim row, more rows follow.
    Interim,
    /// The same 5-tuple started a new connection (TCP port reuse).
    Reused,
}

/// Everything conn.log needs of one connection, at the moment of a row. Counters are deltas
/// since the connection's previous row (all of it, for the first row); `duration` is cumulative.
#[derive(Clone, Debug)]
pub struct ConnSummary {
    pub reason: RowReason,
    /// The connection's table slot: analyzers key per-connection state by it (with `uid`,
    /// since slots are reused once a connection is gone).
    pub slot: u32,
    pub ts: Ts,
    pub uid: Uid,
    pub orig_h: IpAddr,
    pub orig_p: u16,
    pub resp_h: IpAddr,
    pub resp_p: u16,
    pub transport: Transport4,
    pub ip_proto: u8,
    pub services: [Option<&'static str>; MAX_SERVICES],
    pub duration: Span,
    pub orig_bytes: u64,
    pub resp_bytes: u64,
    pub conn_state: &'static str,
    pub missed_bytes: u64,
    pub history: History,
    pub orig_pkts: u64,
    pub orig_ip_bytes: u64,
    pub resp_pkts: u64,
    pub resp_ip_bytes: u64,
    pub tunnel_parents: [Option<Uid>; MAX_PARENTS],
    pub orig_l2: Option<[u8; 6]>,
    pub resp_l2: Option<[u8; 6]>,
}

/// One packet of a connection, as the analyzers see it: delivered after the flow stage has
/// updated the connection, and only for packets whose transport checksum held (Zeek hands
/// nothing else to its analyzers).
#[derive(Clone, Copy, Debug)]
pub struct PacketView<'p, 'a> {
    pub ts: Ts,
    /// Table slot of the connection (see [`ConnSummary::slot`]).
    pub slot: u32,
    pub uid: Uid,
    /// The packet travels from originator to responder (after any role flip this packet
    /// caused).
    pub is_orig: bool,
    pub transport: Transport4,
    /// Originator address and port.
    pub orig: (IpAddr, u16),
    /// Responder address and port.
    pub resp: (IpAddr, u16),
    /// The IP layer this connection is made of (its transport holds ports, flags, payload).
    pub layer: &'p IpLayer<'a>,
    /// The whole frame: MACs, VLAN, the other layers.
    pub frame: &'p Decoded<'a>,
    /// TCP connection not seen from its handshake on (Zeek's partial status, under which its
    /// stream analyzers such as HTTP ignore the payload).
    pub partial: bool,
}

impl PacketView<'_, '_> {
    /// The transport payload as captured (empty for ICMP and other protocols' headers).
    pub fn payload(&self) -> &[u8] {
        match &self.layer.transport {
            Transport::Tcp(t) => t.payload,
            Transport::Udp(u) => u.payload,
            Transport::Icmp(i) => i.payload,
            Transport::Other { payload } => payload,
        }
    }

    /// The TCP segment, when this is TCP.
    pub fn tcp(&self) -> Option<&TcpSegment<'_>> {
        match &self.layer.transport {
            Transport::Tcp(t) => Some(t),
            _ => None,
        }
    }
}

/// Where a flow event goes: the analyzer stage implements this.
pub trait FlowSink {
    /// A connection's row is due.
    fn conn_row(&mut self, row: ConnSummary);
    /// A packet of a connection, for the protocol analyzers.
    fn packet(&mut self, _view: &PacketView<'_, '_>) {}
}

impl<F: FnMut(ConnSummary)> FlowSink for F {
    fn conn_row(&mut self, row: ConnSummary) {
        self(row)
    }
}

/// Counters already written in earlier rows of a connection.
#[derive(Clone, Copy, Debug, Default)]
struct Reported {
    orig_bytes: u64,
    resp_bytes: u64,
    orig_pkts: u64,
    orig_ip_bytes: u64,
    resp_pkts: u64,
    resp_ip_bytes: u64,
    missed_bytes: u64,
}

/// Expiry lists. Inactivity lists are ordered by `Conn::listed`, the activity time a connection
/// had when it was last put at the front; a packet only updates `seen`, and a connection is
/// moved to the front again only when the sweep reaches it while it is still active (relinking
/// on every packet cost two extra cache misses per packet for the list neighbours). Fixed-
/// deadline lists are ordered by the time the connection entered them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum List {
    TcpEstablished = 0,
    TcpHandshake,
    Udp,
    /// UDP on a DNS port: Zeek's DNS analyzer ends these after `dns_session_timeout` (10 s).
    UdpDns,
    Icmp,
    Other,
    /// SYN sent, nothing back: removed `attempt_delay` after the first SYN.
    TcpAttempt,
    /// Closed or reset: removed `close_delay` after the close.
    TcpClosing,
}

const LISTS: usize = 8;

#[derive(Clone, Copy, Debug, Default)]
struct Links {
    prev: u32,
    next: u32,
}

#[derive(Clone, Copy, Debug, Default)]
struct DirCounters {
    pkts: u64,
    ip_bytes: u64,
    /// UDP/ICMP payload bytes.
    payload: u64,
    active: bool,
    chk: Scaled,
}

/// One tracked connection.
///
/// The layout is fixed (`repr(C)`, cache-line aligned) so that what every packet needs sits
/// together: the first line holds the key, the flags and the clocks that a lookup reads, the
/// next lines the counters and history, then the TCP state; what only a conn row reads (MACs,
/// tunnel parents, list links) comes last.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Conn {
    key: FlowKey,
    /// The originator is the key's `lo` endpoint.
    orig_is_lo: bool,
    transport: Transport4,
    ip_proto: u8,
    list: List,
    /// A UDP DNS message (12 bytes or more) was seen: the DNS role check is done.
    dns_seen: bool,
    /// An interim row was written: what it reported is in [`FlowTable::reported`].
    has_reported: bool,
    /// Confirmed services, in confirmation order: 1 + index into [`SERVICE_NAMES`]; 0 = empty.
    services: [u8; MAX_SERVICES],
    /// Last packet of any kind, for inactivity.
    seen: Ts,
    /// `seen` when the connection was last put at the front of its inactivity list: its
    /// position in the list, and a lower bound of its inactivity deadline.
    listed: Ts,
    uid: Uid,
    /// End of `duration` (frozen for TCP once both sides closed).
    last: Ts,
    start: Ts,
    orig: DirCounters,
    resp: DirCounters,
    missed_bytes: u64,
    history: History,
    tcp: TcpConn,
    deadline: Ts,
    links: Links,
    /// Tunnel parent uids; `Uid(0)` is an empty slot.
    parents: [Uid; MAX_PARENTS],
    macs: Option<MacPair>,
}

/// The connection table.
pub struct FlowTable {
    cfg: FlowConfig,
    slots: Vec<Conn>,
    free: Vec<u32>,
    index: FlowIndex,
    heads: [u32; LISTS],
    tails: [u32; LISTS],
    uids: UidGen,
    tunnels: TunnelUids,
    stats: Arc<Stats>,
    now: Ts,
    /// Counters already written in interim rows, by slot. Only long-lived connections at an
    /// interval boundary have any, so they live beside the table rather than in every entry;
    /// at most one per slot.
    reported: hashbrown::HashMap<u32, Reported>,
    /// Slots `..populated` are backed with memory (or being backed, see `populate_ahead`).
    populated: usize,
    /// No list's tail is due before this: `advance` has nothing to do until then. A lower
    /// bound, lowered whenever a list gets a new tail and made exact after each sweep.
    next_deadline: Ts,
}

/// Uids of IP-in-IP and GRE tunnels, keyed by the outer address pair (both directions), kept in
/// a small fixed ring: Zeek gives such a tunnel one uid for its lifetime.
struct TunnelUids {
    ring: Vec<(Addr, Addr, Uid)>,
    next: usize,
}

impl TunnelUids {
    const CAPACITY: usize = 256;

    fn new() -> Self {
        TunnelUids {
            ring: Vec::with_capacity(Self::CAPACITY),
            next: 0,
        }
    }

    fn get(&mut self, a: IpAddr, b: IpAddr, gen: &mut UidGen) -> Uid {
        let (a, b) = (Addr::from_ip(a), Addr::from_ip(b));
        let (a, b) = if a <= b { (a, b) } else { (b, a) };
        if let Some(e) = self.ring.iter().find(|e| e.0 == a && e.1 == b) {
            return e.2;
        }
        let uid = gen.next_uid();
        if self.ring.len() < Self::CAPACITY {
            self.ring.push((a, b, uid));
        } else {
            self.ring[self.next] = (a, b, uid);
            self.next = (self.next + 1) % Self::CAPACITY;
        }
        uid
    }
}

/// The ports Zeek considers likely server ports (the union of its analyzers' well-known
/// ports), used to guess the originator of a connection whose beginning was not seen.
pub fn is_likely_server_port(port: u16, transport: Transport4) -> bool {
    match transport {
        Transport4::Tcp => matches!(
            port,
            21 | 22
                | 23
                | 25
                | 53
                | 80
                | 81
                | 88
                | 110
                | 111
                | 135
                | 139
                | 143
                | 179
                | 389
                | 443
                | 445
                | 502
                | 563
                | 585
                | 587
                | 614
                | 631
                | 636
                | 989
                | 990
                | 992
                | 993
                | 995
                | 1080
                | 1433
                | 1883
                | 2811
                | 3128
                | 3268
                | 3306
                | 3389
                | 5060
                | 5222
                | 5223
                | 5269
                | 5432
                | 5672
                | 6379
                | 6666..=6669 | 8000 | 8080 | 8883 | 8888 | 20000 | 44818 | 102 | 47808
        ),
        Transport4::Udp => crate::decode::is_likely_udp_server_port(port),
        _ => false,
    }
}

/// ICMP "ports": (type, counterpart type or code) and whether the message is one-way.
fn icmp_ports(v6: bool, icmp_type: u8, code: u8) -> (u16, u16) {
    let counterpart = if v6 {
        match icmp_type {
            128 => Some(129),
            129 => Some(128),
            133 => Some(134),
            134 => Some(133),
            135 => Some(136),
            136 => Some(135),
            130 => Some(131),
            131 => Some(130),
            139 => Some(140),
            140 => Some(139),
            144 => Some(145),
            145 => Some(144),
            _ => None,
        }
    } else {
        match icmp_type {
            8 => Some(0),
            0 => Some(8),
            13 => Some(14),
            14 => Some(13),
            15 => Some(16),
            16 => Some(15),
            10 => Some(9),
            9 => Some(10),
            17 => Some(18),
            18 => Some(17),
            _ => None,
        }
    };
    (icmp_type as u16, counterpart.unwrap_or(code) as u16)
}

/// Entries backed with memory in one step ahead of use: 2 MiB of them (see
/// `FlowTable::populate_ahead`).
const POPULATE_STRETCH: usize = {
    let n = (2 << 20) / std::mem::size_of::<Conn>();
    if n == 0 {
        1
    } else {
        n
    }
};

fn is_broadcast(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_broadcast() || v4.octets()[3] == 255,
        IpAddr::V6(_) => false,
    }
}

impl FlowTable {
    /// Reserves the whole table up front; nothing is ever reallocated. Pages count in RSS as
    /// the table fills (slots are used from the front; freed ones first), each stretch backed
    /// by the kernel on a background thread shortly before it is needed ([`Self::populate_ahead`]).
    pub fn new(cfg: FlowConfig, uid_seed: Option<u64>, stats: Arc<Stats>) -> FlowTable {
        let cap = cfg.max_flows;
        let slots: Vec<Conn> = Vec::with_capacity(cap);
        let bytes = cap * std::mem::size_of::<Conn>();
        memory::advise_huge_pages(slots.as_ptr(), bytes);
        let mut table = FlowTable {
            slots,
            free: Vec::with_capacity(cap),
            index: FlowIndex::with_capacity(cap, uid_seed),
            heads: [NIL; LISTS],
            tails: [NIL; LISTS],
            uids: UidGen::new(uid_seed),
            tunnels: TunnelUids::new(),
            stats,
            now: Ts::ZERO,
            next_deadline: Ts(i64::MAX),
            reported: hashbrown::HashMap::new(),
            populated: 0,
            cfg,
        };
        table.populate_ahead();
        table
    }

    /// Has the next stretch of the slot array backed with memory in the background (see
    /// [`memory::populate_in_background`]), so that first use of an entry costs no page fault
    /// on the packet path; at most about one stretch (2 MiB) is backed ahead of use.
    fn populate_ahead(&mut self) {
        let cap = self.cfg.max_flows;
        if self.populated >= cap {
            return;
        }
        let per = POPULATE_STRETCH;
        let end = (self.populated + per).min(cap);
        memory::populate_in_background(
            self.slots.as_ptr().wrapping_add(self.populated),
            (end - self.populated) * std::mem::size_of::<Conn>(),
        );
        self.populated = end;
    }

    /// Connections currently tracked.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.cfg.max_flows
    }

    /// Bytes of one table entry (for the README's sizing note and the benchmark).
    pub fn entry_size() -> usize {
        std::mem::size_of::<Conn>()
    }

    /// Packet time as far as the table has seen it.
    pub fn now(&self) -> Ts {
        self.now
    }

    /// Look-ahead, first stage, for a packet a couple of places ahead: starts loading its index
    /// cell and returns its key's hash for [`FlowTable::prefetch_entry`]. Only a hint: the
    /// packet is looked up for real when it is processed.
    #[inline]
    pub fn prefetch_cell(&self, t: &FiveTuple) -> u64 {
        let (key, _) = FlowKey::new(
            Endpoint {
                addr: Addr::from_ip(t.src),
                port: t.src_port,
            },
            Endpoint {
                addr: Addr::from_ip(t.dst),
                port: t.dst_port,
            },
            t.proto,
        );
        let hash = self.index.hash(&key);
        self.index.prefetch_home(hash);
        hash
    }

    /// Look-ahead, second stage, for the next packet: its cell has arrived by now, so start
    /// loading the entry it names (the lines a lookup and the counters touch; all of them
    /// for TCP, whose state spans the rest of the entry).
    #[inline]
    pub fn prefetch_entry(&self, hash: u64, tcp: bool) {
        let Some(i) = self.index.first_candidate(hash) else {
            return;
        };
        let Some(c) = self.slots.get(i as usize) else {
            return;
        };
        memory::prefetch(&c.key);
        memory::prefetch(&c.uid);
        memory::prefetch(&c.resp);
        if tcp {
            memory::prefetch(&c.history);
            let t = &c.tcp;
            memory::prefetch(&t.orig);
            memory::prefetch(&t.resp);
            memory::prefetch(&c.deadline);
        }
    }

    /// Processes every IP layer of a decoded packet. Returns the uid of the innermost layer's
    /// connection, if any, for the analyzers.
    pub fn process(&mut self, pkt: &Decoded<'_>, sink: &mut impl FlowSink) -> Option<Uid> {
        self.advance(pkt.ts, sink);
        let mut parent: Option<Uid> = None;
        let mut uid = None;
        let mut prev_encap: Option<TunnelKind> = None;
        let mut prev_layer: Option<&IpLayer<'_>> = None;
        for layer in pkt.layers() {
            if let (Some(kind), Some(outer)) = (prev_encap, prev_layer) {
                if !kind.is_udp() {
                    parent = Some(self.tunnels.get(outer.src, outer.dst, &mut self.uids));
                }
            }
            // IP-in-IP and GRE carriers are not connections of their own (Zeek's packet
            // analyzers); UDP tunnel carriers are.
            // IPv6 "no next header" (59) carries nothing: no connection, as in Zeek.
            if !matches!(layer.encap, Some(k) if !k.is_udp()) && layer.proto != 59 {
                uid = self.process_layer(pkt, layer, parent, sink);
            }
            prev_encap = layer.encap;
            prev_layer = Some(layer);
            if let (Some(kind), Some(u)) = (layer.encap, uid) {
                if kind.is_udp() {
                    parent = Some(u);
                }
            }
        }
        uid
    }

    fn process_layer(
        &mut self,
        pkt: &Decoded<'_>,
        layer: &IpLayer<'_>,
        parent: Option<Uid>,
        sink: &mut impl FlowSink,
    ) -> Option<Uid> {
        let (transport, sport, dport) = match &layer.transport {
            Transport::Tcp(t) => (Transport4::Tcp, t.src_port, t.dst_port),
            Transport::Udp(u) => (Transport4::Udp, u.src_port, u.dst_port),
            Transport::Icmp(i) => {
                let (a, b) = icmp_ports(i.v6, i.icmp_type, i.code);
                (Transport4::Icmp, a, b)
            }
            Transport::Other { .. } => (Transport4::Other, 0, 0),
        };
        let src = Endpoint {
            addr: Addr::from_ip(layer.src),
            port: sport,
        };
        let dst = Endpoint {
            addr: Addr::from_ip(layer.dst),
            port: dport,
        };
        let (key, src_is_lo) = FlowKey::new(src, dst, layer.proto);
        let hash = self.index.hash(&key);
        let ts = pkt.ts;

        let mut slot = {
            let slots = &self.slots;
            self.index.find(hash, |i| slots[i as usize].key == key)
        };

        // Past its inactivity timeout but not swept yet (the lists are sorted lazily): it ends
        // here, exactly as if the sweep had reached it, and this packet starts a new one.
        if let Some(i) = slot {
            if self.idle_past_timeout(i, self.now) {
                self.remove(i, RowReason::Expired, sink);
                slot = None;
            }
        }

        // A new SYN on a finished TCP connection starts a new one.
        if let (Some(i), Transport::Tcp(seg)) = (slot, &layer.transport) {
            if self.slots[i as usize].tcp.is_reuse(seg) {
                self.remove(i, RowReason::Reused, sink);
                slot = None;
            }
        }

        let i = match slot {
            Some(i) => i,
            None => {
                let i = self.allocate(sink);
                let orig_is_lo = self.decide_originator(layer, src_is_lo, transport, sport, dport);
                let uid = self.uids.next_uid();
                let c = &mut self.slots[i as usize];
                *c = Conn::blank();
                c.key = key;
                c.orig_is_lo = orig_is_lo;
                c.transport = transport;
                c.ip_proto = layer.proto;
                c.uid = uid;
                c.start = ts;
                c.last = ts;
                c.seen = ts;
                c.macs = pkt.macs.map(|m| {
                    if src_is_lo == orig_is_lo {
                        m
                    } else {
                        MacPair {
                            src: m.dst,
                            dst: m.src,
                        }
                    }
                });
                if orig_is_lo != src_is_lo {
                    // Roles decided against the first packet's direction: Zeek notes the flip.
                    c.history.flip();
                }
                let list = match transport {
                    Transport4::Tcp => List::TcpHandshake,
                    Transport4::Udp => {
                        let resp_port = if orig_is_lo == src_is_lo {
                            dport
                        } else {
                            sport
                        };
                        if matches!(resp_port, 53 | 137 | 5353 | 5355) {
                            List::UdpDns
                        } else {
                            List::Udp
                        }
                    }
                    Transport4::Icmp => List::Icmp,
                    Transport4::Other => List::Other,
                };
                c.list = list;
                self.index.insert(hash, i);
                self.relink_front(i);
                Stats::inc(&self.stats.flows_created);
                i
            }
        };

        if let Some(p) = parent {
            let c = &mut self.slots[i as usize];
            if !c.parents.contains(&p) {
                if let Some(s) = c.parents.iter_mut().find(|s| **s == Uid(0)) {
                    *s = p;
                }
            }
        }
        if let Some(name) = layer.encap.and_then(|k| k.service_name()) {
            self.add_service(i, name);
        }

        let is_orig = src_is_lo == self.slots[i as usize].orig_is_lo;
        match &layer.transport {
            Transport::Tcp(seg) => self.tcp_packet(i, seg, is_orig, layer.ip_len, ts),
            Transport::Udp(u) => {
                let c = &mut self.slots[i as usize];
                let d = if is_orig { &mut c.orig } else { &mut c.resp };
                c.seen = ts;
                if !u.checksum_ok {
                    if d.chk.hit() {
                        c.history.add(b'C', is_orig);
                    }
                } else {
                    c.last = ts;
                    d.pkts += 1;
                    d.ip_bytes += layer.ip_len as u64;
                    d.payload += u.payload_len as u64;
                    d.active = true;
                    c.history.check(mask::UDP_DATA, b'D', is_orig);
                    if !c.dns_seen && u.payload.len() >= 12 {
                        c.dns_seen = true;
                        dns_reply_first(c, u.payload, is_orig);
                    }
                }
            }
            Transport::Icmp(m) => {
                let c = &mut self.slots[i as usize];
                c.seen = ts;
                if m.checksum_ok {
                    let d = if is_orig { &mut c.orig } else { &mut c.resp };
                    c.last = ts;
                    d.pkts += 1;
                    d.ip_bytes += layer.ip_len as u64;
                    d.payload += m.payload_len as u64;
                    d.active = true;
                }
            }
            Transport::Other { .. } => {
                let c = &mut self.slots[i as usize];
                let d = if is_orig { &mut c.orig } else { &mut c.resp };
                c.seen = ts;
                c.last = ts;
                d.pkts += 1;
                d.ip_bytes += layer.ip_len as u64;
                d.active = true;
            }
        }
        let checksum_ok = match &layer.transport {
            Transport::Tcp(t) => t.checksum_ok,
            Transport::Udp(u) => u.checksum_ok,
            Transport::Icmp(m) => m.checksum_ok,
            Transport::Other { .. } => true,
        };
        let c = &self.slots[i as usize];
        if checksum_ok {
            let (o, r) = if c.orig_is_lo {
                (c.key.lo, c.key.hi)
            } else {
                (c.key.hi, c.key.lo)
            };
            sink.packet(&PacketView {
                ts,
                slot: i,
                uid: c.uid,
                is_orig: src_is_lo == c.orig_is_lo,
                transport: c.transport,
                orig: (o.addr.to_ip(), o.port),
                resp: (r.addr.to_ip(), r.port),
                layer,
                frame: pkt,
                partial: c.transport == Transport4::Tcp && c.tcp.is_partial(),
            });
        }
        Some(c.uid)
    }

    /// Zeek's originator guess for a connection's first packet.
    fn decide_originator(
        &self,
        layer: &IpLayer<'_>,
        src_is_lo: bool,
        transport: Transport4,
        sport: u16,
        dport: u16,
    ) -> bool {
        let flip = match &layer.transport {
            Transport::Tcp(t) => {
                let syn = t.flags & crate::decode::tcp_flags::SYN != 0;
                let ack = t.flags & crate::decode::tcp_flags::ACK != 0;
                if !syn || ack {
                    if is_likely_server_port(sport, transport) {
                        if is_likely_server_port(dport, transport) {
                            !syn && sport < dport
                        } else {
                            true
                        }
                    } else {
                        false
                    }
                } else {
                    false
                }
            }
            Transport::Udp(_) => {
                is_likely_server_port(sport, transport) && !is_likely_server_port(dport, transport)
            }
            _ => false,
        };
        // Never make a broadcast address the originator.
        let flip = flip && !is_broadcast(&layer.src);
        if flip {
            !src_is_lo
        } else {
            src_is_lo
        }
    }

    fn tcp_packet(&mut self, i: u32, seg: &TcpSegment<'_>, is_orig: bool, ip_len: u32, ts: Ts) {
        let c = &mut self.slots[i as usize];
        c.seen = ts;
        if !seg.checksum_ok {
            c.tcp.checksum_error(is_orig, &mut c.history);
            return;
        }
        let out = c.tcp.process(seg, is_orig, &mut c.history);
        let mut is_orig = is_orig;
        if out.flipped {
            c.orig_is_lo = !c.orig_is_lo;
            std::mem::swap(&mut c.orig, &mut c.resp);
            if let Some(m) = &mut c.macs {
                std::mem::swap(&mut m.src, &mut m.dst);
            }
            is_orig = !is_orig;
        }
        if out.touch {
            c.last = ts;
        }
        c.missed_bytes += out.gap_bytes;
        let d = if is_orig { &mut c.orig } else { &mut c.resp };
        d.pkts += 1;
        d.ip_bytes += ip_len as u64;
        d.active = true;

        // Timers: attempt, close linger, or inactivity by handshake state.
        let attempt = matches!(
            c.tcp.orig.state,
            EndpointState::SynSent | EndpointState::SynAckSent
        ) && c.tcp.resp.state == EndpointState::Inactive;
        let target = if c.list == List::TcpClosing {
            List::TcpClosing
        } else if out.close_complete {
            c.deadline = ts.plus(Span::from_secs(self.cfg.tcp_close_delay_secs as i64));
            List::TcpClosing
        } else if attempt {
            if c.list != List::TcpAttempt {
                c.deadline = c.start.plus(Span::from_secs(5));
            }
            List::TcpAttempt
        } else if c.tcp.orig.state.is_established_like() || c.tcp.resp.state.is_established_like() {
            List::TcpEstablished
        } else {
            List::TcpHandshake
        };
        self.move_to(i, target);
    }

    fn add_service(&mut self, i: u32, name: &'static str) {
        let Some(id) = SERVICE_NAMES.iter().position(|n| *n == name) else {
            debug_assert!(false, "service {name} missing from SERVICE_NAMES");
            return;
        };
        let id = id as u8 + 1;
        let c = &mut self.slots[i as usize];
        if c.services.contains(&id) {
            return;
        }
        if let Some(s) = c.services.iter_mut().find(|s| **s == 0) {
            *s = id;
        }
    }

    /// Puts `i` at the front of `list` when it changes lists. Staying in its list it keeps its
    /// place: fixed lists keep their order, and inactivity lists are re-sorted lazily by the
    /// sweep ([`FlowTable::advance`]).
    fn move_to(&mut self, i: u32, list: List) {
        if self.slots[i as usize].list == list {
            return;
        }
        self.unlink(i);
        self.slots[i as usize].list = list;
        self.relink_front(i);
    }

    /// Puts `i` at the front of its list with `listed` brought up to `seen`.
    fn relink_front(&mut self, i: u32) {
        let c = &mut self.slots[i as usize];
        c.listed = c.seen;
        let list = c.list;
        self.link_front(i, list);
    }

    fn link_front(&mut self, i: u32, list: List) {
        let l = list as usize;
        let head = self.heads[l];
        self.slots[i as usize].links = Links {
            prev: NIL,
            next: head,
        };
        if head != NIL {
            self.slots[head as usize].links.prev = i;
        } else {
            self.tails[l] = i;
            self.lower_next_deadline(i);
        }
        self.heads[l] = i;
    }

    fn unlink(&mut self, i: u32) {
        let Links { prev, next } = self.slots[i as usize].links;
        let l = self.slots[i as usize].list as usize;
        if prev != NIL {
            self.slots[prev as usize].links.next = next;
        } else {
            self.heads[l] = next;
        }
        if next != NIL {
            self.slots[next as usize].links.prev = prev;
        } else {
            self.tails[l] = prev;
            if prev != NIL {
                self.lower_next_deadline(prev);
            }
        }
        self.slots[i as usize].links = Links {
            prev: NIL,
            next: NIL,
        };
    }

    fn timeout_of(&self, list: List) -> Option<Span> {
        let s = |v: u32| Some(Span::from_secs(v as i64));
        match list {
            List::TcpEstablished => s(self.cfg.tcp_inactivity_secs),
            List::TcpHandshake => s(self.cfg.udp_inactivity_secs),
            List::Udp => s(self.cfg.udp_inactivity_secs),
            List::UdpDns => s(self.cfg.dns_inactivity_secs),
            List::Icmp => s(self.cfg.icmp_inactivity_secs),
            List::Other => s(self.cfg.other_inactivity_secs),
            List::TcpAttempt | List::TcpClosing => None,
        }
    }

    /// Where `i` sits in its list: a lower bound of [`FlowTable::real_deadline`].
    fn deadline_of(&self, i: u32) -> Ts {
        let c = &self.slots[i as usize];
        match self.timeout_of(c.list) {
            Some(t) => c.listed.plus(t),
            None => c.deadline,
        }
    }

    /// When `i` is due: inactivity counted from its last packet, or its fixed deadline.
    fn real_deadline(&self, i: u32) -> Ts {
        let c = &self.slots[i as usize];
        match self.timeout_of(c.list) {
            Some(t) => c.seen.plus(t),
            None => c.deadline,
        }
    }

    /// `i` sits in an inactivity list and has been idle for its whole timeout at `now`.
    fn idle_past_timeout(&self, i: u32, now: Ts) -> bool {
        self.timeout_of(self.slots[i as usize].list).is_some() && self.real_deadline(i) <= now
    }

    /// Connections whose list position is older than their last packet go back to the front
    /// until every tail is in its true place (before picking an eviction victim).
    fn settle_tails(&mut self) {
        for l in 0..LISTS {
            loop {
                let t = self.tails[l];
                if t == NIL {
                    break;
                }
                let c = &self.slots[t as usize];
                if self.timeout_of(c.list).is_none() || c.seen <= c.listed {
                    break;
                }
                self.unlink(t);
                self.relink_front(t);
            }
        }
    }

    /// `i` became the tail of its list.
    fn lower_next_deadline(&mut self, i: u32) {
        let d = self.deadline_of(i);
        if d < self.next_deadline {
            self.next_deadline = d;
        }
    }

    /// Moves packet time forward, ending every connection whose deadline has passed.
    pub fn advance(&mut self, now: Ts, sink: &mut impl FlowSink) {
        if now > self.now {
            self.now = now;
        }
        let now = self.now;
        if now < self.next_deadline {
            return;
        }
        for l in 0..LISTS {
            loop {
                let tail = self.tails[l];
                if tail == NIL || self.deadline_of(tail) > now {
                    break;
                }
                if self.real_deadline(tail) > now {
                    // Active since it was listed: back to the front, in its new place.
                    self.unlink(tail);
                    self.relink_front(tail);
                    continue;
                }
                let keep_going = self.expire(tail);
                if keep_going {
                    self.remove(tail, RowReason::Expired, sink);
                }
            }
        }
        self.next_deadline = (0..LISTS)
            .filter(|&l| self.tails[l] != NIL)
            .map(|l| self.deadline_of(self.tails[l]))
            .min()
            .unwrap_or(Ts(i64::MAX));
    }

    /// Zeek's attempt timer only removes a connection still waiting for an answer; otherwise
    /// the connection moves to the list its state calls for. True = remove it.
    fn expire(&mut self, i: u32) -> bool {
        let c = &self.slots[i as usize];
        if c.list == List::TcpAttempt {
            let still_attempt = matches!(
                c.tcp.orig.state,
                EndpointState::SynSent | EndpointState::SynAckSent
            ) && c.tcp.resp.state == EndpointState::Inactive;
            if !still_attempt {
                self.move_to(i, List::TcpEstablished);
                return false;
            }
        }
        true
    }

    /// Ends every connection already past its deadline at `now`, wherever it sits in its
    /// list. The lazily sorted lists can hide such a connection behind a tail that is not due
    /// yet; at an interval boundary this full pass puts every row in the interval its
    /// connection really ended in.
    pub fn expire_exact(&mut self, now: Ts, sink: &mut impl FlowSink) {
        self.advance(now, sink);
        let due: Vec<u32> = (0..self.slots.len() as u32)
            .filter(|&i| self.slots[i as usize].uid != Uid(0) && self.idle_past_timeout(i, now))
            .collect();
        for i in due {
            self.remove(i, RowReason::Expired, sink);
        }
    }

    /// Ends every connection (end of input, shutdown).
    pub fn flush_all(&mut self, sink: &mut impl FlowSink) {
        // Oldest first, so rows come out roughly in time order.
        let mut all: Vec<u32> = (0..self.slots.len() as u32)
            .filter(|&i| self.slots[i as usize].uid != Uid(0))
            .collect();
        all.sort_by_key(|&i| self.slots[i as usize].start);
        for i in all {
            self.remove(i, RowReason::Flushed, sink);
        }
    }

    /// Interim rows at an interval boundary for connections older than `min_age`.
    pub fn interim_rows(&mut self, boundary: Ts, min_age: Span, sink: &mut impl FlowSink) {
        let mut due: Vec<u32> = (0..self.slots.len() as u32)
            .filter(|&i| {
                let c = &self.slots[i as usize];
                c.uid != Uid(0) && c.start <= boundary.plus(Span(-min_age.0))
            })
            .collect();
        due.sort_by_key(|&i| self.slots[i as usize].start);
        for i in due {
            let row = self.summary(i, RowReason::Interim);
            Stats::inc(&self.stats.flows_interim_rows);
            sink.conn_row(row);
        }
    }

    /// Takes a free slot, evicting the longest-idle connection when none is left.
    fn allocate(&mut self, sink: &mut impl FlowSink) -> u32 {
        if let Some(i) = self.free.pop() {
            return i;
        }
        if self.slots.len() < self.cfg.max_flows {
            // Within the reserved capacity: never reallocates.
            self.slots.push(Conn::blank());
            if self.slots.len() + POPULATE_STRETCH / 4 >= self.populated {
                self.populate_ahead();
            }
            return (self.slots.len() - 1) as u32;
        }
        self.settle_tails();
        let victim = (0..LISTS)
            .filter_map(|l| {
                let t = self.tails[l];
                (t != NIL).then(|| (self.slots[t as usize].seen, t))
            })
            .min()
            .map(|(_, t)| t)
            .expect("a full table has connections in its lists");
        Stats::inc(&self.stats.flows_evicted);
        self.remove(victim, RowReason::Evicted, sink);
        self.free.pop().expect("removal frees a slot")
    }

    fn remove(&mut self, i: u32, reason: RowReason, sink: &mut impl FlowSink) {
        let row = self.summary(i, reason);
        self.unlink(i);
        let key = self.slots[i as usize].key;
        let hash = self.index.hash(&key);
        self.index.remove(hash, i);
        self.slots[i as usize].uid = Uid(0);
        self.free.push(i);
        if reason != RowReason::Evicted {
            Stats::inc(&self.stats.flows_expired);
        }
        sink.conn_row(row);
    }

    /// The row for slot `i`, counters as deltas since its last row; marks them reported.
    fn summary(&mut self, i: u32, reason: RowReason) -> ConnSummary {
        let c = &mut self.slots[i as usize];
        let (orig_ep, resp_ep) = if c.orig_is_lo {
            (c.key.lo, c.key.hi)
        } else {
            (c.key.hi, c.key.lo)
        };
        let (orig_bytes, resp_bytes) = match c.transport {
            Transport4::Tcp => (c.tcp.orig_size(), c.tcp.resp_size()),
            Transport4::Udp | Transport4::Icmp => (c.orig.payload, c.resp.payload),
            Transport4::Other => (0, 0),
        };
        let duration = c.last.since(c.start);
        let conn_state = conn_state(c, orig_bytes, resp_bytes);
        let r = if c.has_reported {
            self.reported.get(&i).copied().unwrap_or_default()
        } else {
            Reported::default()
        };
        let row = ConnSummary {
            reason,
            slot: i,
            ts: c.start,
            uid: c.uid,
            orig_h: orig_ep.addr.to_ip(),
            orig_p: orig_ep.port,
            resp_h: resp_ep.addr.to_ip(),
            resp_p: resp_ep.port,
            transport: c.transport,
            ip_proto: c.ip_proto,
            services: c
                .services
                .map(|id| id.checked_sub(1).map(|i| SERVICE_NAMES[i as usize])),
            duration,
            orig_bytes: orig_bytes.saturating_sub(r.orig_bytes),
            resp_bytes: resp_bytes.saturating_sub(r.resp_bytes),
            conn_state,
            missed_bytes: c.missed_bytes.saturating_sub(r.missed_bytes),
            history: c.history,
            orig_pkts: c.orig.pkts - r.orig_pkts,
            orig_ip_bytes: c.orig.ip_bytes - r.orig_ip_bytes,
            resp_pkts: c.resp.pkts - r.resp_pkts,
            resp_ip_bytes: c.resp.ip_bytes - r.resp_ip_bytes,
            tunnel_parents: c.parents.map(|u| (u != Uid(0)).then_some(u)),
            orig_l2: c.macs.map(|m| m.src),
            resp_l2: c.macs.map(|m| m.dst),
        };
        if reason == RowReason::Interim {
            c.has_reported = true;
            self.reported.insert(
                i,
                Reported {
                    orig_bytes,
                    resp_bytes,
                    orig_pkts: c.orig.pkts,
                    orig_ip_bytes: c.orig.ip_bytes,
                    resp_pkts: c.resp.pkts,
                    resp_ip_bytes: c.resp.ip_bytes,
                    missed_bytes: c.missed_bytes,
                },
            );
        } else if c.has_reported {
            // The connection's last row: its slot is about to be freed.
            c.has_reported = false;
            self.reported.remove(&i);
        }
        row
    }
}

impl EndpointState {
    fn is_established_like(self) -> bool {
        !matches!(
            self,
            EndpointState::Inactive | EndpointState::SynSent | EndpointState::SynAckSent
        )
    }
}

impl Conn {
    fn blank() -> Conn {
        Conn {
            key: FlowKey::default(),
            orig_is_lo: true,
            transport: Transport4::Tcp,
            ip_proto: 0,
            uid: Uid(0),
            start: Ts::ZERO,
            last: Ts::ZERO,
            seen: Ts::ZERO,
            listed: Ts::ZERO,
            deadline: Ts::ZERO,
            list: List::Other,
            links: Links {
                prev: NIL,
                next: NIL,
            },
            tcp: TcpConn::default(),
            orig: DirCounters::default(),
            resp: DirCounters::default(),
            missed_bytes: 0,
            history: History::default(),
            macs: None,
            parents: [Uid(0); MAX_PARENTS],
            services: [0; MAX_SERVICES],
            has_reported: false,
            dns_seen: false,
        }
    }
}

/// Zeek's DNS analyzer (attached by port: 53, 137, 5353, 5355) makes the sender of the first
/// DNS message the responder when that message is a reply from the originator, unless the
/// responder is a multicast group (zeek-semantics §2.6; corpus `dns-reply-seen-first`).
fn dns_reply_first(c: &mut Conn, payload: &[u8], is_orig: bool) {
    let resp = if c.orig_is_lo { c.key.hi } else { c.key.lo };
    let is_reply = payload.get(2).is_some_and(|b| b & 0x80 != 0);
    if !is_orig
        || !is_reply
        || !matches!(resp.port, 53 | 137 | 5353 | 5355)
        || resp.addr.to_ip().is_multicast()
    {
        return;
    }
    c.orig_is_lo = !c.orig_is_lo;
    std::mem::swap(&mut c.orig, &mut c.resp);
    if let Some(m) = &mut c.macs {
        std::mem::swap(&mut m.src, &mut m.dst);
    }
    c.history.flip();
}

/// Zeek's `conn_state` decision table (see zeek-semantics §2.3).
fn conn_state(c: &Conn, orig_size: u64, resp_size: u64) -> &'static str {
    use EndpointState as S;
    match c.transport {
        Transport4::Tcp => {
            let os = c.tcp.orig.state;
            let rs = c.tcp.resp.state;
            let o_inactive = matches!(os, S::Inactive | S::Partial);
            let r_inactive = matches!(rs, S::Inactive | S::Partial);
            if rs == S::Reset {
                if matches!(os, S::SynSent | S::SynAckSent)
                    || (os == S::Reset && orig_size == 0 && resp_size == 0)
                {
                    return "REJ";
                }
                if o_inactive {
                    return "RSTRH";
                }
                return "RSTR";
            }
            if os == S::Reset {
                if r_inactive {
                    if rstos0_history(c.history.as_bytes()) {
                        return "RSTOS0";
                    }
                    return "OTH";
                }
                return "RSTO";
            }
            if rs == S::Closed && os == S::Closed {
                return "SF";
            }
            if os == S::Closed {
                return if r_inactive { "SH" } else { "S2" };
            }
            if rs == S::Closed {
                return if o_inactive { "SHR" } else { "S3" };
            }
            if os == S::SynSent && rs == S::Inactive {
                return "S0";
            }
            if os == S::Established && rs == S::Established {
                return "S1";
            }
            "OTH"
        }
        Transport4::Udp => match (c.orig.active, c.resp.active) {
            (true, true) => "SF",
            (true, false) => "S0",
            (false, true) => "SHR",
            (false, false) => "OTH",
        },
        _ => "OTH",
    }
}

/// Matches `/^\^?S[^HAFGIQ]*R.*/` (case-sensitive, anchored at both ends by Zeek's `==`).
fn rstos0_history(h: &[u8]) -> bool {
    let h = h.strip_prefix(b"^").unwrap_or(h);
    let Some(rest) = h.strip_prefix(b"S") else {
        return false;
    };
    for &b in rest {
        match b {
            b'R' => return true,
            b'H' | b'A' | b'F' | b'G' | b'I' | b'Q' => return false,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests;
