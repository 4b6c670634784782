//! Frame builder: Ethernet (+ 802.1Q / 802.1ad tags), IPv4/IPv6, TCP/UDP/ICMP/ICMPv6, ARP.
//!
//! All lengths and checksums are computed here so every generated packet is valid; the
//! sensor's checksum verification is on by default and a bad checksum would silently drop
//! traffic from the tests. Frames shorter than 60 bytes are zero-padded like on a real mirror
//! port, which also exercises the decoder's "trust the IP length, not the frame length" path.

use std::net::IpAddr;

pub const ETH_IPV4: u16 = 0x0800;
pub const ETH_IPV6: u16 = 0x86dd;
pub const ETH_ARP: u16 = 0x0806;
pub const TPID_8021Q: u16 = 0x8100;
pub const TPID_8021AD: u16 = 0x88a8;

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMP6: u8 = 58;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

/// Minimum Ethernet frame without FCS.
const MIN_FRAME: usize = 60;

pub type Mac = [u8; 6];

pub const BROADCAST: Mac = [0xff; 6];

/// Layer 2 of a frame: addresses and VLAN tags, outermost first, as (TPID, VLAN id).
#[derive(Clone, Debug, Default)]
pub struct Link {
    pub src: Mac,
    pub dst: Mac,
    pub vlans: Vec<(u16, u16)>,
}

impl Link {
    pub fn new(src: Mac, dst: Mac) -> Self {
        Link {
            src,
            dst,
            vlans: Vec::new(),
        }
    }

    pub fn with_vlans(mut self, vlans: &[(u16, u16)]) -> Self {
        self.vlans = vlans.to_vec();
        self
    }

    pub fn reversed(&self) -> Self {
        Link {
            src: self.dst,
            dst: self.src,
            vlans: self.vlans.clone(),
        }
    }
}

/// Layer 3 header values that vary per packet.
#[derive(Clone, Copy, Debug)]
pub struct Ip {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TTL (IPv4) or hop limit (IPv6).
    pub ttl: u8,
    /// IPv4 identification; ignored for IPv6.
    pub id: u16,
    /// IPv4 don't-fragment bit; ignored for IPv6.
    pub df: bool,
}

#[derive(Clone, Copy, Debug)]
pub enum Transport<'a> {
    Tcp {
        sport: u16,
        dport: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        window: u16,
        options: &'a [u8],
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    /// ICMPv4; `rest` is the 4 bytes after the checksum (id/seq for echo, unused for errors).
    Icmp {
        typ: u8,
        code: u8,
        rest: [u8; 4],
    },
    Icmp6 {
        typ: u8,
        code: u8,
        rest: [u8; 4],
    },
}

impl Transport<'_> {
    fn proto(&self) -> u8 {
        match self {
            Transport::Tcp { .. } => PROTO_TCP,
            Transport::Udp { .. } => PROTO_UDP,
            Transport::Icmp { .. } => PROTO_ICMP,
            Transport::Icmp6 { .. } => PROTO_ICMP6,
        }
    }
}

/// One's-complement sum of 16-bit big-endian words (odd trailing byte padded with zero).
fn sum16(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u16::from_be_bytes([c[0], c[1]]) as u64;
    }
    if let [b] = chunks.remainder() {
        acc += (*b as u64) << 8;
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

pub fn checksum(data: &[u8]) -> u16 {
    fold(sum16(data, 0))
}

fn push16(buf: &mut Vec<u8>, v: u16) {
    buf.extend_from_slice(&v.to_be_bytes());
}

fn push32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_be_bytes());
}

fn push_eth(buf: &mut Vec<u8>, link: &Link, ethertype: u16) {
    buf.extend_from_slice(&link.dst);
    buf.extend_from_slice(&link.src);
    for &(tpid, vid) in &link.vlans {
        push16(buf, tpid);
        push16(buf, vid & 0x0fff);
    }
    push16(buf, ethertype);
}

fn pad(buf: &mut Vec<u8>) {
    if buf.len() < MIN_FRAME {
        buf.resize(MIN_FRAME, 0);
    }
}

/// Builds a complete Ethernet frame carrying `payload` over `t` over `ip` into `buf`
/// (cleared first, so one buffer can be reused for millions of packets).
pub fn build(buf: &mut Vec<u8>, link: &Link, ip: &Ip, t: &Transport, payload: &[u8]) {
    buf.clear();
    let proto = t.proto();
    let v6 = ip.src.is_ipv6();
    push_eth(buf, link, if v6 { ETH_IPV6 } else { ETH_IPV4 });
    let ip_off = buf.len();
    let l4_len = match t {
        Transport::Tcp { options, .. } => 20 + options.len(),
        _ => 8,
    } + payload.len();

    // The pseudo-header sum is kept aside; the L4 checksum is patched in at the end.
    let mut pseudo = 0u64;
    match (ip.src, ip.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            buf.push(0x45);
            buf.push(0);
            push16(buf, (20 + l4_len) as u16);
            push16(buf, ip.id);
            push16(buf, if ip.df { 0x4000 } else { 0 });
            buf.push(ip.ttl);
            buf.push(proto);
            push16(buf, 0);
            buf.extend_from_slice(&s.octets());
            buf.extend_from_slice(&d.octets());
            let c = checksum(&buf[ip_off..ip_off + 20]);
            buf[ip_off + 10..ip_off + 12].copy_from_slice(&c.to_be_bytes());
            if proto != PROTO_ICMP {
                pseudo = sum16(&s.octets(), 0);
                pseudo = sum16(&d.octets(), pseudo);
                pseudo += proto as u64 + l4_len as u64;
            }
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            push32(buf, 0x6000_0000);
            push16(buf, l4_len as u16);
            buf.push(proto);
            buf.push(ip.ttl);
            buf.extend_from_slice(&s.octets());
            buf.extend_from_slice(&d.octets());
            pseudo = sum16(&s.octets(), 0);
            pseudo = sum16(&d.octets(), pseudo);
            pseudo += proto as u64 + l4_len as u64;
        }
        _ => panic!("packet::build: mixed IPv4/IPv6 addresses"),
    }

    let l4_off = buf.len();
    let ck_off = match *t {
        Transport::Tcp {
            sport,
            dport,
            seq,
            ack,
            flags,
            window,
            options,
        } => {
            push16(buf, sport);
            push16(buf, dport);
            push32(buf, seq);
            push32(buf, ack);
            buf.push((((20 + options.len()) / 4) as u8) << 4);
            buf.push(flags);
            push16(buf, window);
            push16(buf, 0);
            push16(buf, 0);
            buf.extend_from_slice(options);
            l4_off + 16
        }
        Transport::Udp { sport, dport } => {
            push16(buf, sport);
            push16(buf, dport);
            push16(buf, l4_len as u16);
            push16(buf, 0);
            l4_off + 6
        }
        Transport::Icmp { typ, code, rest } | Transport::Icmp6 { typ, code, rest } => {
            buf.push(typ);
            buf.push(code);
            push16(buf, 0);
            buf.extend_from_slice(&rest);
            l4_off + 2
        }
    };
    buf.extend_from_slice(payload);
    let mut c = fold(sum16(&buf[l4_off..], pseudo));
    if proto == PROTO_UDP && c == 0 {
        // 0 means "no checksum" in UDP; the all-ones form carries the same value.
        c = 0xffff;
    }
    buf[ck_off..ck_off + 2].copy_from_slice(&c.to_be_bytes());
    pad(buf);
}

/// ARP over Ethernet/IPv4. `op` 1 = request, 2 = reply.
pub fn build_arp(
    buf: &mut Vec<u8>,
    link: &Link,
    op: u16,
    sha: Mac,
    spa: [u8; 4],
    tha: Mac,
    tpa: [u8; 4],
) {
    buf.clear();
    push_eth(buf, link, ETH_ARP);
    push16(buf, 1);
    push16(buf, ETH_IPV4);
    buf.push(6);
    buf.push(4);
    push16(buf, op);
    buf.extend_from_slice(&sha);
    buf.extend_from_slice(&spa);
    buf.extend_from_slice(&tha);
    buf.extend_from_slice(&tpa);
    pad(buf);
}

/// Any other Ethernet payload (CC-Link IE, PTP, ...), padded to the minimum frame.
pub fn build_raw(buf: &mut Vec<u8>, link: &Link, ethertype: u16, payload: &[u8]) {
    buf.clear();
    push_eth(buf, link, ethertype);
    buf.extend_from_slice(payload);
    pad(buf);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn ipv4_and_tcp_checksums_verify() {
        let mut buf = Vec::new();
        let link = Link::new([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let ip = Ip {
            src: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2)),
            ttl: 64,
            id: 7,
            df: true,
        };
        let t = Transport::Tcp {
            sport: 1000,
            dport: 502,
            seq: 1,
            ack: 2,
            flags: PSH | ACK,
            window: 1024,
            options: &[],
        };
        build(&mut buf, &link, &ip, &t, b"hello");
        // A header whose checksum is right sums to 0 after complement.
        assert_eq!(checksum(&buf[14..34]), 0);
        let mut pseudo = sum16(&buf[26..34], 0) + PROTO_TCP as u64 + 25;
        pseudo = sum16(&buf[34..59], pseudo);
        assert_eq!(fold(pseudo), 0);
        assert_eq!(buf.len(), 60);
    }
}
