//! The OT and device-discovery logs: arp, ns, dhcp2, netbios-ns, mswin-browser, dhcpv6, ssdp,
//! cclink-ief-basic, cclink-ie and the CC-Link IE TSN extras (reference §3.3–§3.4, §3.9–§3.16).
//!
//! They share one shape: a message is decoded into the log's key columns and counted in that
//! log's 60 s window ([`super::window`]); the window becomes a row when it closes. Most of them
//! need no connection: they are fed every frame ([`OtAnalyzers::on_frame`]), so a full flow
//! table or a bad checksum never hides a device from the inventory (the reference runs with
//! `ignore_checksums`). The two logs that carry a connection uid (CC-Link IE Field Basic and the
//! TSN SLMP log) take the flow stage's packets instead ([`OtAnalyzers::packet`]), which is also
//! where the UDP protocols recognised here are confirmed as conn.log services.
//!
//! A message on one of these ports or EtherTypes that does not parse (too short, a length that
//! runs past the data, a truncated option) is counted in `analyzer_weirds` and `ot_malformed`
//! and yields no row; nothing here panics on any input.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use super::window::{Agg, WindowTable, WINDOW};
use super::{AppState, Record, RecordSink};
use crate::decode::{Decoded, Payload, Transport};
use crate::flow::{PacketView, Transport4};
use crate::logs::zeek::{Row, Schema, ZeekRecord};
use crate::stats::Stats;
use crate::ts::Ts;

use super::{arp, browser, cclink_basic, cclink_ie, dhcp, dhcpv6, nbns, ns, ssdp};

/// Open windows per log. The reference keeps unbounded tables; these bounds hold a large plant
/// network's devices and CC-Link stations with room to spare, and a flood only writes rows early.
pub mod capacity {
    pub const ARP: usize = 8192;
    pub const NS: usize = 4096;
    pub const DISCOVERY: usize = 2048;
    pub const CCLINK: usize = 4096;
}

/// The key columns of one log: everything but `ts` and the counters. A key writes the whole
/// row, so each log keeps its own column order and its own counters.
pub trait OtKey: Hash + Eq + Clone + Debug + Send + 'static {
    fn schema() -> &'static Schema;
    fn write_row(&self, agg: &Agg, row: &mut Row<'_>);
}

/// A closed window: one row.
#[derive(Debug)]
pub struct Windowed<K> {
    pub key: K,
    pub agg: Agg,
}

impl<K: OtKey> ZeekRecord for Windowed<K> {
    fn schema(&self) -> &'static Schema {
        K::schema()
    }

    fn write_row(&self, row: &mut Row<'_>) {
        self.key.write_row(&self.agg, row);
    }
}

/// One log's window table.
pub struct OtLog<K> {
    table: WindowTable<K>,
}

impl<K: OtKey> OtLog<K> {
    pub fn new(cap: usize, stats: Arc<Stats>) -> OtLog<K> {
        OtLog {
            table: WindowTable::new(cap, WINDOW, stats),
        }
    }

    /// Counts one message; `due` is lowered to when this log's oldest window closes.
    pub fn add(&mut self, key: K, ts: Ts, out: &mut dyn RecordSink, due: &mut Ts) {
        if let Some((key, agg)) = self.table.add(key, ts) {
            out.record(Record::log(Windowed { key, agg }));
        }
        if let Some(t) = self.table.next_close() {
            *due = (*due).min(t);
        }
    }

    /// When this log's oldest window closes ([`NEVER`] when none is open).
    fn next_close(&self) -> Ts {
        self.table.next_close().unwrap_or(NEVER)
    }

    pub fn advance(&mut self, now: Ts, out: &mut dyn RecordSink) {
        while let Some((key, agg)) = self.table.pop_expired(now) {
            out.record(Record::log(Windowed { key, agg }));
        }
    }

    pub fn finish(&mut self, out: &mut dyn RecordSink) {
        while let Some((key, agg)) = self.table.pop_oldest() {
            out.record(Record::log(Windowed { key, agg }));
        }
    }
}

/// Whether an IP layer carries a message one of the frame-fed logs reads (the ports and
/// the ICMPv6 test of [`OtAnalyzers::on_frame`]'s reading).
fn wanted_layer(layer: &crate::decode::IpLayer<'_>) -> bool {
    match &layer.transport {
        Transport::Udp(u) => {
            matches!(
                u.dst_port,
                ports::DHCP_SERVER
                    | ports::NBNS
                    | ports::NETBIOS_DGM
                    | ports::DHCPV6_SERVER
                    | ports::SSDP
            ) || u.src_port == ports::SSDP
        }
        Transport::Icmp(i) => i.v6,
        _ => false,
    }
}

/// No window open: nothing to close.
const NEVER: Ts = Ts(i64::MAX);

/// A message that claimed to be one of ours and did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

/// What a parser makes of one message: a key to count, nothing to log (a message of the
/// protocol the log does not record), or a malformed message.
pub type Parsed<K> = Result<Option<K>, Malformed>;

/// Ports and EtherTypes.
pub mod ports {
    pub const ETH_ARP: u16 = 0x0806;
    pub const ETH_CCLINK_IE: u16 = 0x890f;
    pub const ETH_PTP: u16 = 0x88f7;
    pub const DHCP_SERVER: u16 = 67;
    pub const NBNS: u16 = 137;
    pub const NETBIOS_DGM: u16 = 138;
    pub const DHCPV6_SERVER: u16 = 547;
    pub const SSDP: u16 = 1900;
    pub const CCLINK_IEF_BASIC: u16 = 61450;
    pub const SLMP_TSN: [u16; 2] = [SLMP_TSN_0, SLMP_TSN_1];
    pub const SLMP_TSN_0: u16 = 45238;
    pub const SLMP_TSN_1: u16 = 45239;
}

/// conn.log `service` names of the UDP protocols confirmed here: Zeek's own where it has one
/// (DHCP), else the name Zeek gives a Spicy analyzer (`spicy_` + its lowercased name, reference
/// §3.1). NBNS on 137/udp is Zeek's DNS analyzer's (`dns`), confirmed by dns.rs.
pub mod service {
    pub const DHCP: &str = "dhcp";
    pub const BROWSER: &str = "spicy_cifs";
    pub const DHCPV6: &str = "spicy_dhcpv6";
    pub const SSDP: &str = "spicy_ssdp";
    pub const CCLINK_IEF_BASIC: &str = "spicy_cclink_ie_field_basic";
    pub const SLMP_TSN: &str = "spicy_cclink_tsn_slmp";
}

/// Every OT and discovery log.
pub struct OtAnalyzers {
    arp: OtLog<arp::ArpKey>,
    ns: OtLog<ns::NsKey>,
    dhcp: OtLog<dhcp::DhcpKey>,
    nbns: OtLog<nbns::NbnsKey>,
    browser: OtLog<browser::BrowserKey>,
    dhcpv6: OtLog<dhcpv6::Dhcpv6Key>,
    ssdp: OtLog<ssdp::SsdpKey>,
    cclink_basic: OtLog<cclink_basic::BasicKey>,
    slmp: OtLog<cclink_ie::SlmpKey>,
    cclink_ie: OtLog<cclink_ie::IeKey>,
    tsn: OtLog<cclink_ie::TsnKey>,
    ptp: OtLog<cclink_ie::PtpKey>,
    /// Bits of the service names in [`crate::flow::SERVICE_NAMES`], found once.
    service_bits: [(u64, &'static str); 5],
    /// No window of any log closes before this time: [`OtAnalyzers::advance`] runs per
    /// packet and has nothing to do before it.
    due: Ts,
    stats: Arc<Stats>,
}

/// The bit [`AppState::confirm`] sets for a service name (0 if the name is not listed).
fn service_bit(name: &str) -> u64 {
    crate::flow::SERVICE_NAMES
        .iter()
        .position(|n| *n == name)
        .map_or(0, |i| 1 << i)
}

impl OtAnalyzers {
    pub fn new(stats: Arc<Stats>) -> OtAnalyzers {
        use capacity::*;
        let s = || stats.clone();
        OtAnalyzers {
            arp: OtLog::new(ARP, s()),
            ns: OtLog::new(NS, s()),
            dhcp: OtLog::new(DISCOVERY, s()),
            nbns: OtLog::new(DISCOVERY, s()),
            browser: OtLog::new(DISCOVERY, s()),
            dhcpv6: OtLog::new(DISCOVERY, s()),
            ssdp: OtLog::new(DISCOVERY, s()),
            cclink_basic: OtLog::new(CCLINK, s()),
            slmp: OtLog::new(CCLINK, s()),
            cclink_ie: OtLog::new(CCLINK, s()),
            tsn: OtLog::new(CCLINK, s()),
            ptp: OtLog::new(CCLINK, s()),
            service_bits: [
                service::CCLINK_IEF_BASIC,
                service::SLMP_TSN,
                service::BROWSER,
                service::DHCPV6,
                service::SSDP,
            ]
            .map(|n| (service_bit(n), n)),
            due: NEVER,
            stats,
        }
    }

    fn counted<K>(&self, p: Parsed<K>) -> Option<K> {
        match p {
            Ok(Some(k)) => {
                Stats::inc(&self.stats.ot_messages);
                Some(k)
            }
            Ok(None) => None,
            Err(Malformed) => {
                Stats::inc(&self.stats.ot_malformed);
                Stats::inc(&self.stats.analyzer_weirds);
                None
            }
        }
    }

    /// Every decoded frame: the logs that need no connection. Most frames are nothing any
    /// of these logs wants; they are turned away by EtherType or port before any work.
    #[inline]
    pub fn on_frame(&mut self, f: &Decoded<'_>, out: &mut dyn RecordSink) {
        let wanted = match f.payload {
            Payload::NonIp { ethertype, .. } => matches!(
                ethertype,
                ports::ETH_ARP | ports::ETH_CCLINK_IE | ports::ETH_PTP
            ),
            Payload::Ip => f.layers().any(wanted_layer),
            Payload::FragmentHeld => false,
        };
        if wanted {
            self.read_frame(f, out);
        }
    }

    #[inline(never)]
    fn read_frame(&mut self, f: &Decoded<'_>, out: &mut dyn RecordSink) {
        let ts = f.ts;
        let (src_mac, dst_mac) = match f.macs {
            Some(m) => (Some(m.src), Some(m.dst)),
            None => (None, None),
        };
        match f.payload {
            Payload::NonIp { ethertype, payload } => {
                // CC-Link IE and PTP only mean something between stations: without an
                // Ethernet header there is nothing to key them by.
                let macs = f.macs;
                match ethertype {
                    ports::ETH_ARP => {
                        if let Some(k) = self.counted(arp::parse(payload)) {
                            self.arp.add(k, ts, out, &mut self.due);
                        }
                    }
                    ports::ETH_CCLINK_IE => {
                        let Some(m) = macs else { return };
                        match cclink_ie::parse_frame(m.src, m.dst, payload) {
                            Ok(Some(cclink_ie::IeFrame::Ie(k))) => {
                                Stats::inc(&self.stats.ot_messages);
                                self.cclink_ie.add(k, ts, out, &mut self.due);
                            }
                            Ok(Some(cclink_ie::IeFrame::Tsn(k))) => {
                                Stats::inc(&self.stats.ot_messages);
                                self.tsn.add(k, ts, out, &mut self.due);
                            }
                            Ok(None) => {}
                            Err(e) => {
                                self.counted::<()>(Err(e));
                            }
                        }
                    }
                    ports::ETH_PTP => {
                        let Some(m) = macs else { return };
                        if let Some(k) = self.counted(cclink_ie::parse_ptp(m.src, m.dst, payload)) {
                            self.ptp.add(k, ts, out, &mut self.due);
                        }
                    }
                    _ => {}
                }
            }
            Payload::Ip => {
                for layer in f.layers() {
                    match &layer.transport {
                        Transport::Udp(u) => {
                            let src = layer.src;
                            let p = u.payload;
                            let (sp, dp) = (u.src_port, u.dst_port);
                            if dp == ports::DHCP_SERVER {
                                if let Some(k) = self.counted(dhcp::parse(src, p)) {
                                    self.dhcp.add(k, ts, out, &mut self.due);
                                }
                            }
                            if dp == ports::NBNS {
                                if let Some(k) = self.counted(nbns::parse(src, src_mac, p)) {
                                    self.nbns.add(k, ts, out, &mut self.due);
                                }
                            }
                            if dp == ports::NETBIOS_DGM {
                                if let Some(k) = self.counted(browser::parse(src, src_mac, p)) {
                                    self.browser.add(k, ts, out, &mut self.due);
                                }
                            }
                            if dp == ports::DHCPV6_SERVER {
                                if let Some(k) = self.counted(dhcpv6::parse(src, src_mac, p)) {
                                    self.dhcpv6.add(k, ts, out, &mut self.due);
                                }
                            }
                            if dp == ports::SSDP || sp == ports::SSDP {
                                let dir = if dp == ports::SSDP {
                                    ssdp::Direction::ToPort
                                } else {
                                    ssdp::Direction::FromPort
                                };
                                if let Some(k) = self.counted(ssdp::parse(src, src_mac, p, dir)) {
                                    self.ssdp.add(k, ts, out, &mut self.due);
                                }
                            }
                        }
                        Transport::Icmp(i) if i.v6 => {
                            let parsed = ns::parse(
                                i.icmp_type,
                                (layer.src, src_mac),
                                (layer.dst, dst_mac),
                                i.payload,
                            );
                            if let Some(k) = self.counted(parsed) {
                                self.ns.add(k, ts, out, &mut self.due);
                            }
                        }
                        _ => {}
                    }
                }
            }
            Payload::FragmentHeld => {}
        }
    }

    /// A packet of a connection: the logs keyed by uid, and service confirmation.
    #[inline]
    pub fn packet(&mut self, st: &mut AppState, v: &PacketView<'_, '_>, out: &mut dyn RecordSink) {
        if v.transport != Transport4::Udp {
            return;
        }
        // Every port the reading below looks at, on either side.
        let ours = |port: u16| {
            matches!(
                port,
                ports::CCLINK_IEF_BASIC
                    | ports::NETBIOS_DGM
                    | ports::DHCPV6_SERVER
                    | ports::SSDP
                    | ports::SLMP_TSN_0
                    | ports::SLMP_TSN_1
            )
        };
        if ours(v.orig.1) || ours(v.resp.1) {
            self.udp_packet(st, v, out);
        }
    }

    #[inline(never)]
    fn udp_packet(&mut self, st: &mut AppState, v: &PacketView<'_, '_>, out: &mut dyn RecordSink) {
        let p = v.payload();
        let on = |port: u16| v.orig.1 == port || v.resp.1 == port;
        let [basic, slmp, browser, dhcpv6, ssdp] = self.service_bits;
        let confirm = |st: &mut AppState, (bit, name): (u64, &str)| {
            if st.services & bit == 0 {
                st.confirm(name);
            }
        };
        if on(ports::CCLINK_IEF_BASIC) {
            if let Some(k) = self.counted(cclink_basic::parse(v, p)) {
                confirm(st, basic);
                self.cclink_basic.add(k, v.ts, out, &mut self.due);
            }
        }
        if ports::SLMP_TSN.iter().any(|&port| on(port)) {
            if let Some(k) = self.counted(cclink_ie::parse_slmp(v, p)) {
                confirm(st, slmp);
                self.slmp.add(k, v.ts, out, &mut self.due);
            }
        }
        // The logs themselves were fed by on_frame; here only the service is confirmed, once.
        let (src, dst) = if v.is_orig {
            (v.orig.1, v.resp.1)
        } else {
            (v.resp.1, v.orig.1)
        };
        let candidate = if dst == ports::NETBIOS_DGM {
            Some((browser, browser::looks_valid as fn(&[u8]) -> bool))
        } else if dst == ports::DHCPV6_SERVER {
            Some((dhcpv6, dhcpv6::looks_valid as fn(&[u8]) -> bool))
        } else if dst == ports::SSDP || src == ports::SSDP {
            Some((ssdp, ssdp::looks_valid as fn(&[u8]) -> bool))
        } else {
            None
        };
        if let Some((svc, valid)) = candidate {
            if st.services & svc.0 == 0 && valid(p) {
                confirm(st, svc);
            }
        }
    }

    /// Packet time moved on: windows that ended are written.
    pub fn advance(&mut self, now: Ts, out: &mut dyn RecordSink) {
        if now < self.due {
            return;
        }
        self.advance_all(now, out);
    }

    #[cold]
    #[inline(never)]
    fn advance_all(&mut self, now: Ts, out: &mut dyn RecordSink) {
        self.arp.advance(now, out);
        self.ns.advance(now, out);
        self.dhcp.advance(now, out);
        self.nbns.advance(now, out);
        self.browser.advance(now, out);
        self.dhcpv6.advance(now, out);
        self.ssdp.advance(now, out);
        self.cclink_basic.advance(now, out);
        self.slmp.advance(now, out);
        self.cclink_ie.advance(now, out);
        self.tsn.advance(now, out);
        self.ptp.advance(now, out);
        self.due = self.next_close();
    }

    /// The earliest time any open window closes.
    fn next_close(&self) -> Ts {
        [
            self.arp.next_close(),
            self.ns.next_close(),
            self.dhcp.next_close(),
            self.nbns.next_close(),
            self.browser.next_close(),
            self.dhcpv6.next_close(),
            self.ssdp.next_close(),
            self.cclink_basic.next_close(),
            self.slmp.next_close(),
            self.cclink_ie.next_close(),
            self.tsn.next_close(),
            self.ptp.next_close(),
        ]
        .into_iter()
        .min()
        .unwrap_or(NEVER)
    }

    /// End of input: every open window is written.
    pub fn finish(&mut self, out: &mut dyn RecordSink) {
        self.arp.finish(out);
        self.ns.finish(out);
        self.dhcp.finish(out);
        self.nbns.finish(out);
        self.browser.finish(out);
        self.dhcpv6.finish(out);
        self.ssdp.finish(out);
        self.cclink_basic.finish(out);
        self.slmp.finish(out);
        self.cclink_ie.finish(out);
        self.tsn.finish(out);
        self.ptp.finish(out);
        self.due = NEVER;
    }
}

// -- helpers shared by the OT logs --

/// `aa:bb:cc:dd:ee:ff`, lower case (Zeek's MAC rendering).
pub fn mac_text(m: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(m.len() * 3);
    for (i, b) in m.iter().enumerate() {
        if i > 0 {
            out.push(b':');
        }
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0xf)]);
    }
    out
}

/// A MAC column: unset when the link had no Ethernet header.
pub fn write_mac(row: &mut Row<'_>, m: Option<[u8; 6]>) {
    match m {
        Some(m) => row.string(&mac_text(&m)),
        None => row.unset(),
    }
}

/// The bytes without C0 control characters and DEL (how the reference cleans names).
pub fn strip_controls(s: &[u8]) -> Box<[u8]> {
    s.iter()
        .copied()
        .filter(|&b| b >= 0x20 && b != 0x7f)
        .collect()
}

/// Big-endian u16 at `i`, if there.
pub fn be16(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

/// Big-endian u32 at `i`, if there.
pub fn be32(b: &[u8], i: usize) -> Option<u32> {
    let s = b.get(i..i.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::MacPair;
    use std::net::IpAddr;

    /// xorshift64*: deterministic noise for the robustness loops.
    struct Noise(u64);

    impl Noise {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }

        /// Random bytes, or a valid message cut short and with a few bytes changed.
        fn message(&mut self, seeds: &[Vec<u8>]) -> Vec<u8> {
            if self.below(3) == 0 || seeds.is_empty() {
                let len = self.below(300);
                return (0..len).map(|_| self.next() as u8).collect();
            }
            let mut m = seeds[self.below(seeds.len())].clone();
            let keep = self.below(m.len() + 1);
            if self.below(2) == 0 {
                m.truncate(keep);
            }
            for _ in 0..self.below(4) {
                if !m.is_empty() {
                    let i = self.below(m.len());
                    m[i] = self.next() as u8;
                }
            }
            m
        }
    }

    fn seeds() -> Vec<Vec<u8>> {
        vec![
            crate::analyzers::dhcp::tests::request(&[(12, b"host"), (55, &[1, 3]), (60, b"x")]),
            crate::analyzers::nbns::tests::registration(b"HOST           \x00", false),
            crate::analyzers::browser::tests::announcement(b"HMI", b"c\0"),
            crate::analyzers::dhcpv6::tests::solicit(b"\x04host\x03lan\x00"),
            b"NOTIFY * HTTP/1.1\r\nSERVER: x\r\n\r\n".to_vec(),
            [
                &[
                    0x50u8, 0, 0, 0xff, 0xff, 3, 0, 0x2c, 0, 0, 0, 0x70, 0x0e, 0, 0,
                ][..],
                &[0; 20],
            ]
            .concat(),
            [&[0x68u8, 0][..], &[0; 16], &[0x93, 0x0e, 1, 0, 0, 0]].concat(),
            [&[0x22u8, 0x05, 0, 0, 0x13, 0, 0, 1, 1][..], &[0; 60]].concat(),
            [&[0xc2u8, 0, 1, 1][..], &[0; 200]].concat(),
            vec![
                0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0,
                2,
            ],
        ]
    }

    #[test]
    fn random_and_mangled_messages_never_panic() {
        let mut n = Noise(0x5eed_0001);
        let seeds = seeds();
        let ip4: IpAddr = "10.0.0.1".parse().unwrap();
        let ip6: IpAddr = "fe80::1".parse().unwrap();
        let mac = Some([2, 0, 0, 0, 0, 1]);
        for _ in 0..20_000 {
            let m = n.message(&seeds);
            let _ = dhcp::parse(ip4, &m);
            let _ = nbns::parse(ip4, mac, &m);
            let _ = browser::parse(ip4, mac, &m);
            let _ = browser::looks_valid(&m);
            let _ = dhcpv6::parse(ip6, mac, &m);
            let _ = dhcpv6::looks_valid(&m);
            let _ = ssdp::parse(ip4, mac, &m, ssdp::Direction::ToPort);
            let _ = ssdp::parse(ip4, mac, &m, ssdp::Direction::FromPort);
            let _ = ssdp::looks_valid(&m);
            let _ = cclink_basic::parse_payload(&m);
            let _ = cclink_ie::parse_slmp_payload(&m);
            let _ = cclink_ie::parse_frame([1; 6], [2; 6], &m);
            let _ = cclink_ie::parse_ptp([1; 6], [2; 6], &m);
            let _ = arp::parse(&m);
            let _ = ns::parse(
                m.first().copied().unwrap_or(135),
                (ip6, mac),
                (ip6, None),
                &m,
            );
        }
    }

    fn frame(ethertype: u16, payload: &[u8]) -> Decoded<'_> {
        let mut d = Decoded::new(Ts::from_secs(1_000));
        d.macs = Some(MacPair {
            src: [2, 0, 0, 0, 0, 1],
            dst: [2, 0, 0, 0, 0, 2],
        });
        d.payload = Payload::NonIp { ethertype, payload };
        d
    }

    #[test]
    fn malformed_frames_are_counted() {
        let stats = Arc::new(Stats::default());
        let mut ot = OtAnalyzers::new(stats.clone());
        let mut out: Vec<Record> = Vec::new();
        ot.on_frame(&frame(ports::ETH_ARP, &[0, 1, 8, 0]), &mut out);
        ot.on_frame(&frame(ports::ETH_CCLINK_IE, &[0x42, 0, 0]), &mut out);
        ot.on_frame(&frame(ports::ETH_PTP, &[]), &mut out);
        ot.on_frame(&frame(ports::ETH_CCLINK_IE, &[0x7e; 20]), &mut out);
        ot.finish(&mut out);
        let s = stats.snapshot();
        assert_eq!(
            (s.ot_malformed, s.analyzer_weirds, s.ot_messages),
            (3, 3, 0)
        );
        assert!(out.is_empty());
    }

    #[test]
    fn a_flood_of_keys_stays_bounded_and_is_counted() {
        let stats = Arc::new(Stats::default());
        let mut ot = OtAnalyzers::new(stats.clone());
        let mut out: Vec<Record> = Vec::new();
        let keys = capacity::ARP + 100;
        for i in 0..keys {
            let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1];
            arp.extend_from_slice(&(i as u32).to_be_bytes());
            arp.extend_from_slice(&[0; 10]);
            ot.on_frame(&frame(ports::ETH_ARP, &arp), &mut out);
        }
        assert_eq!(out.len(), 100, "the oldest windows were written early");
        assert_eq!(stats.snapshot().window_evictions, 100);
        ot.finish(&mut out);
        assert_eq!(out.len(), keys);
        assert_eq!(stats.snapshot().ot_messages, keys as u64);
    }

    #[test]
    fn helpers() {
        assert_eq!(
            mac_text(&[0, 0x0c, 0x29, 0xa8, 0xc1, 0xf0]),
            b"00:0c:29:a8:c1:f0"
        );
        assert_eq!(&*strip_controls(b"a\x00b\x1fc\x7f d"), b"abc d");
        assert_eq!(be16(&[1, 2, 3], 1), Some(0x0203));
        assert_eq!(be16(&[1, 2, 3], 2), None);
        assert_eq!(be32(&[1, 2, 3, 4], 0), Some(0x01020304));
        assert_eq!(be32(&[1, 2, 3, 4], usize::MAX), None);
    }
}
