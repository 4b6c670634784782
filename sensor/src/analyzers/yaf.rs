//! yaf_flow.log: bidirectional flows of the IP protocols conn.log does not cover (everything
//! but TCP, UDP, ICMP and ICMPv6: OSPF, VRRP, ESP, PIM, IGMP, SCTP, GRE, UDP-Lite, ...),
//! with YAF's flow semantics as the reference renders them (reference §3.2, §7 item 4).
//!
//! What YAF sees is the outermost IP header: it does not decapsulate tunnels by default, so a
//! GRE or IP-in-IP carrier is a flow of protocol `gre` / `ipv4` / `ipv6` here, and what it
//! carries is not. A flow is keyed by (VLAN, protocol, address pair); its forward direction is
//! that of its first packet. Times are YAF's milliseconds. A flow ends:
//! - `idle`: no packet for more than `idle_timeout_secs` (300 s) of packet time;
//! - `active`: a packet arrives more than `active_timeout_secs` (1800 s) after the flow began
//!   (that packet starts the next flow);
//! - `eof`: end of input or shutdown;
//! - `rsrc`: pushed out of the full table (the flow idle the longest goes first).
//!
//! Rows appear in the interval in which the flow ends, as YAF writes a flow when it closes.

use std::net::IpAddr;
use std::sync::Arc;

use crate::config::YafConfig;
use crate::decode::{Decoded, Transport};
use crate::logs::zeek::{LogStyle, Row, Schema, ZeekRecord};
use crate::stats::Stats;
use crate::ts::Ts;

/// The reference's header line, kept byte for byte (spaces, `pktoct`).
pub const HEADER_LINE: &str = "#ts     start-time      end-time        duration        rtt     proto   sip     sp      dip     dp srcMacAddress    destMacAddress  iflags  uflags  riflags ruflags isn     risn    tag     rtag    pktoct      rpkt    roct    end-reason";

pub static YAF_SCHEMA: Schema = Schema {
    path: "yaf_flow",
    fields: &[
        ("ts", "time"),
        ("start-time", "string"),
        ("end-time", "string"),
        ("duration", "interval"),
        ("rtt", "interval"),
        ("proto", "string"),
        ("sip", "addr"),
        ("sp", "count"),
        ("dip", "addr"),
        ("dp", "count"),
        ("srcMacAddress", "string"),
        ("destMacAddress", "string"),
        ("iflags", "string"),
        ("uflags", "string"),
        ("riflags", "string"),
        ("ruflags", "string"),
        ("isn", "string"),
        ("risn", "string"),
        ("tag", "string"),
        ("rtag", "string"),
        ("pkt", "count"),
        ("oct", "count"),
        ("rpkt", "count"),
        ("roct", "count"),
        ("end-reason", "string"),
    ],
    style: LogStyle::HeaderLine(HEADER_LINE),
};

/// Why a flow ended (YAF's end-reason names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    Idle,
    Active,
    Eof,
    Rsrc,
}

impl EndReason {
    pub fn name(self) -> &'static str {
        match self {
            EndReason::Idle => "idle",
            EndReason::Active => "active",
            EndReason::Eof => "eof",
            EndReason::Rsrc => "rsrc",
        }
    }
}

/// One yaf_flow.log row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YafRecord {
    /// Flow start and end, milliseconds since the epoch.
    pub start_ms: i64,
    pub end_ms: i64,
    /// First reverse packet after the start, milliseconds (0 without reverse packets).
    pub rtt_ms: i64,
    pub proto: u8,
    pub sip: IpAddr,
    pub dip: IpAddr,
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub tag: u16,
    pub rtag: u16,
    pub pkt: u64,
    pub oct: u64,
    pub rpkt: u64,
    pub roct: u64,
    pub reason: EndReason,
}

/// `secs.mmm` of a millisecond count.
fn secs3(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// yafscii's `YYYY-MM-DD HH:MM:SS.mmm` in UTC.
fn date_ms(ms: i64) -> String {
    use chrono::{DateTime, Utc};
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        None => "1970-01-01 00:00:00.000".to_string(),
    }
}

fn mac(m: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

impl YafRecord {
    /// The row as the reference writes it (25 tab-separated columns, no newline).
    pub fn line(&self) -> String {
        let cols: [String; 25] = [
            secs3(self.start_ms),
            date_ms(self.start_ms),
            date_ms(self.end_ms),
            secs3(self.end_ms - self.start_ms),
            secs3(self.rtt_ms),
            proto_name(self.proto),
            self.sip.to_string(),
            "0".into(),
            self.dip.to_string(),
            "0".into(),
            mac(&self.src_mac),
            mac(&self.dst_mac),
            // TCP flags, sequence numbers: nothing for the protocols this log covers.
            "0".into(),
            "0".into(),
            "0".into(),
            "0".into(),
            "00000000".into(),
            "00000000".into(),
            format!("{:03x}", self.tag),
            format!("{:03x}", self.rtag),
            self.pkt.to_string(),
            self.oct.to_string(),
            self.rpkt.to_string(),
            self.roct.to_string(),
            self.reason.name().into(),
        ];
        cols.join("\t")
    }
}

impl ZeekRecord for YafRecord {
    fn schema(&self) -> &'static Schema {
        &YAF_SCHEMA
    }

    fn write_row(&self, row: &mut Row<'_>) {
        row.verbatim(self.line().as_bytes());
    }
}

/// The protocol names of the reference's table (IANA keywords, lower case; reference §3.2).
pub fn proto_name(p: u8) -> String {
    const NAMES: [&str; 144] = [
        "hopopt",
        "icmp",
        "igmp",
        "ggp",
        "ipv4",
        "st",
        "tcp",
        "cbt",
        "egp",
        "igp",
        "bbn-rcc-mon",
        "nvp-ii",
        "pup",
        "argus (deprecated)",
        "emcon",
        "xnet",
        "chaos",
        "udp",
        "mux",
        "dcn-meas",
        "hmp",
        "prm",
        "xns-idp",
        "trunk-1",
        "trunk-2",
        "leaf-1",
        "leaf-2",
        "rdp",
        "irtp",
        "iso-tp4",
        "netblt",
        "mfe-nsp",
        "merit-inp",
        "dccp",
        "3pc",
        "idpr",
        "xtp",
        "ddp",
        "idpr-cmtp",
        "tp++",
        "il",
        "ipv6",
        "sdrp",
        "ipv6-route",
        "ipv6-frag",
        "idrp",
        "rsvp",
        "gre",
        "dsr",
        "bna",
        "esp",
        "ah",
        "i-nlsp",
        "swipe (deprecated)",
        "narp",
        "mobile",
        "tlsp",
        "skip",
        "ipv6-icmp",
        "ipv6-nonxt",
        "ipv6-opts",
        "",
        "cftp",
        "",
        "sat-expak",
        "kryptolan",
        "rvd",
        "ippc",
        "",
        "sat-mon",
        "visa",
        "ipcv",
        "cpnx",
        "cphb",
        "wsn",
        "pvp",
        "br-sat-mon",
        "sun-nd",
        "wb-mon",
        "wb-expak",
        "iso-ip",
        "vmtp",
        "secure-vmtp",
        "vines",
        "iptm",
        "nsfnet-igp",
        "dgp",
        "tcf",
        "eigrp",
        "ospfigp",
        "sprite-rpc",
        "larp",
        "mtp",
        "ax.25",
        "ipip",
        "micp (deprecated)",
        "scc-sp",
        "etherip",
        "encap",
        "",
        "gmtp",
        "ifmp",
        "pnni",
        "pim",
        "aris",
        "scps",
        "qnx",
        "a/n",
        "ipcomp",
        "snp",
        "compaq-peer",
        "ipx-in-ip",
        "vrrp",
        "pgm",
        "",
        "l2tp",
        "ddx",
        "iatp",
        "stp",
        "srp",
        "uti",
        "smp",
        "sm (deprecated)",
        "ptp",
        "isis over ipv4",
        "fire",
        "crtp",
        "crudp",
        "sscopmce",
        "iplt",
        "sps",
        "pipe",
        "sctp",
        "fc",
        "rsvp-e2e-ignore",
        "mobility header",
        "udplite",
        "mpls-in-ip",
        "manet",
        "hip",
        "shim6",
        "wesp",
        "rohc",
        "ethernet",
    ];
    match NAMES.get(usize::from(p)) {
        Some(n) if !n.is_empty() => (*n).to_string(),
        _ if p == 255 => "reserved".to_string(),
        _ => format!("Unassigned Protocol({p})"),
    }
}

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    vlan: u16,
    proto: u8,
    lo: IpAddr,
    hi: IpAddr,
}

#[derive(Clone, Copy, Debug)]
struct Flow {
    key: Key,
    sip: IpAddr,
    dip: IpAddr,
    start_ms: i64,
    end_ms: i64,
    rtt_ms: i64,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    tag: u16,
    rtag: u16,
    pkt: u64,
    oct: u64,
    rpkt: u64,
    roct: u64,
    /// Neighbours in the activity list (most recent first).
    prev: u32,
    next: u32,
}

impl Flow {
    fn record(&self, reason: EndReason) -> YafRecord {
        YafRecord {
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            rtt_ms: self.rtt_ms,
            proto: self.key.proto,
            sip: self.sip,
            dip: self.dip,
            src_mac: self.src_mac,
            dst_mac: self.dst_mac,
            tag: self.tag,
            rtag: self.rtag,
            pkt: self.pkt,
            oct: self.oct,
            rpkt: self.rpkt,
            roct: self.roct,
            reason,
        }
    }
}

/// The yaf flow table: a slab reserved at start-up, an index, and a list ordered by last
/// activity, so that idle expiry and eviction both take the list's tail.
pub struct YafTable {
    cfg: YafConfig,
    slots: Vec<Flow>,
    free: Vec<u32>,
    index: hashbrown::HashMap<Key, u32>,
    head: u32,
    tail: u32,
    /// Packet time, never going back (YAF's current time, in milliseconds: [`Self::now_ms`]).
    /// Kept as given so that the per-packet clock update is one comparison.
    now: Ts,
    stats: Arc<Stats>,
}

impl YafTable {
    pub fn new(cfg: YafConfig, stats: Arc<Stats>) -> YafTable {
        let cap = cfg.max_flows.max(1);
        YafTable {
            slots: Vec::with_capacity(cap),
            free: Vec::with_capacity(cap),
            index: hashbrown::HashMap::with_capacity(cap),
            head: NIL,
            tail: NIL,
            now: Ts(i64::MIN),
            stats,
            cfg,
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn now_ms(&self) -> i64 {
        self.now.0.div_euclid(1000)
    }

    fn idle_ms(&self) -> i64 {
        i64::from(self.cfg.idle_timeout_secs) * 1000
    }

    fn active_ms(&self) -> i64 {
        i64::from(self.cfg.active_timeout_secs) * 1000
    }

    /// Counts a frame whose outermost IP layer is not TCP/UDP/ICMP; finished flows go to `out`.
    #[inline]
    pub fn on_frame(&mut self, frame: &Decoded<'_>, out: &mut impl FnMut(YafRecord)) {
        let Some(layer) = frame.layers().next() else {
            return;
        };
        if !matches!(layer.transport, Transport::Other { .. }) {
            return;
        }
        self.count(frame, layer, out);
    }

    /// [`YafTable::on_frame`] for a frame of one of YAF's own protocols (rare: kept out of
    /// line so that the test every frame passes stays cheap).
    #[inline(never)]
    fn count(
        &mut self,
        frame: &Decoded<'_>,
        layer: &crate::decode::IpLayer<'_>,
        out: &mut impl FnMut(YafRecord),
    ) {
        // Reordered captures: a packet from the past counts at the current time.
        self.expire(frame.ts, out);
        let ms = self.now_ms();
        let vlan = frame.vlan.unwrap_or(0);
        let (lo, hi) = if layer.src <= layer.dst {
            (layer.src, layer.dst)
        } else {
            (layer.dst, layer.src)
        };
        let key = Key {
            vlan,
            proto: layer.proto,
            lo,
            hi,
        };
        let mut slot = self.index.get(&key).copied();
        if let Some(i) = slot {
            let f = &self.slots[i as usize];
            let reason = if ms - f.start_ms > self.active_ms() {
                Some(EndReason::Active)
            } else if ms - f.end_ms > self.idle_ms() {
                Some(EndReason::Idle)
            } else {
                None
            };
            if let Some(r) = reason {
                self.close(i, r, out);
                slot = None;
            }
        }
        let i = match slot {
            Some(i) => {
                self.unlink(i);
                i
            }
            None => {
                let macs = frame.macs.unwrap_or_default();
                let i = self.allocate(out);
                self.slots[i as usize] = Flow {
                    key,
                    sip: layer.src,
                    dip: layer.dst,
                    start_ms: ms,
                    end_ms: ms,
                    rtt_ms: 0,
                    src_mac: macs.src,
                    dst_mac: macs.dst,
                    tag: vlan,
                    rtag: 0,
                    pkt: 0,
                    oct: 0,
                    rpkt: 0,
                    roct: 0,
                    prev: NIL,
                    next: NIL,
                };
                self.index.insert(key, i);
                Stats::inc(&self.stats.yaf_flows);
                i
            }
        };
        let f = &mut self.slots[i as usize];
        let len = u64::from(layer.ip_len);
        if layer.src == f.sip && layer.dst == f.dip {
            f.pkt += 1;
            f.oct += len;
        } else {
            if f.rpkt == 0 {
                f.rtt_ms = ms - f.start_ms;
                f.rtag = vlan;
            }
            f.rpkt += 1;
            f.roct += len;
        }
        f.end_ms = ms;
        self.link_front(i);
    }

    /// Packet time moved to `now`: flows idle for longer than the idle timeout end.
    #[inline]
    pub fn advance(&mut self, now: Ts, out: &mut impl FnMut(YafRecord)) {
        if self.tail == NIL {
            // No flow to end (the common case: these protocols are rare); only the clock.
            self.now = self.now.max(now);
            return;
        }
        self.expire(now, out);
    }

    #[inline(never)]
    fn expire(&mut self, now: Ts, out: &mut impl FnMut(YafRecord)) {
        self.now = self.now.max(now);
        let now_ms = self.now_ms();
        while self.tail != NIL {
            let t = self.tail;
            if now_ms - self.slots[t as usize].end_ms > self.idle_ms() {
                self.close(t, EndReason::Idle, out);
            } else {
                break;
            }
        }
    }

    /// End of input: every flow ends with `eof`, least recently active first.
    pub fn finish(&mut self, out: &mut impl FnMut(YafRecord)) {
        while self.tail != NIL {
            self.close(self.tail, EndReason::Eof, out);
        }
    }

    fn allocate(&mut self, out: &mut impl FnMut(YafRecord)) -> u32 {
        if self.index.len() >= self.cfg.max_flows.max(1) && self.tail != NIL {
            Stats::inc(&self.stats.yaf_flows_evicted);
            self.close(self.tail, EndReason::Rsrc, out);
        }
        if let Some(i) = self.free.pop() {
            return i;
        }
        self.slots.push(Flow {
            key: Key {
                vlan: 0,
                proto: 0,
                lo: IpAddr::V4(0.into()),
                hi: IpAddr::V4(0.into()),
            },
            sip: IpAddr::V4(0.into()),
            dip: IpAddr::V4(0.into()),
            start_ms: 0,
            end_ms: 0,
            rtt_ms: 0,
            src_mac: [0; 6],
            dst_mac: [0; 6],
            tag: 0,
            rtag: 0,
            pkt: 0,
            oct: 0,
            rpkt: 0,
            roct: 0,
            prev: NIL,
            next: NIL,
        });
        (self.slots.len() - 1) as u32
    }

    fn close(&mut self, i: u32, reason: EndReason, out: &mut impl FnMut(YafRecord)) {
        self.unlink(i);
        let f = self.slots[i as usize];
        self.index.remove(&f.key);
        self.free.push(i);
        if f.key.proto == 0 {
            // The reference's awk script loses protocol 0 rows (reference §3.2, §7 item 4).
            Stats::inc(&self.stats.yaf_hopopt_dropped);
            return;
        }
        out(f.record(reason));
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let f = &self.slots[i as usize];
            (f.prev, f.next)
        };
        if prev != NIL {
            self.slots[prev as usize].next = next;
        } else if self.head == i {
            self.head = next;
        }
        if next != NIL {
            self.slots[next as usize].prev = prev;
        } else if self.tail == i {
            self.tail = prev;
        }
        let f = &mut self.slots[i as usize];
        f.prev = NIL;
        f.next = NIL;
    }

    fn link_front(&mut self, i: u32) {
        let old = self.head;
        {
            let f = &mut self.slots[i as usize];
            f.prev = NIL;
            f.next = old;
        }
        if old != NIL {
            self.slots[old as usize].prev = i;
        } else {
            self.tail = i;
        }
        self.head = i;
    }
}

#[cfg(test)]
mod tests;
