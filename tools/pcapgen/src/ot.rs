//! The OT/discovery test capture (`osect-pcapgen ot`): the protocols the public corpus has no
//! capture of — ARP, IPv6 neighbour discovery, DHCPv4 client requests and CC-Link IE Control
//! frames — plus a few malformed messages.
//!
//! Two parts are built to reproduce published example logs of the reference's parsers row for
//! row: the DHCPv4 requests (`mydhcp.log`: same timestamps, client, options) and the CC-Link IE
//! Control frames (`cclink-ie.log` of the CC-Link Field/Control parser: per frame type the same
//! first and last timestamp and frame count). The rest exercises the logs' semantics (asker vs.
//! answerer, 60 s windows, VLAN tags, unsolicited advertisements, group names).

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::packet::{build, build_arp, build_raw, Ip, Link, Mac, Transport, BROADCAST, TPID_8021Q};
use crate::writer::PcapWriter;

const ETH_CCLINK_IE: u16 = 0x890f;

/// Start of the ARP/NS part: 2018-10-14 01:33:20 UTC, a minute before the first DHCP request.
const T0: u64 = 1_539_480_800_000_000;

const HOST_A: Mac = [0x02, 0, 0, 0, 0, 0x0a];
const HOST_B: Mac = [0x02, 0, 0, 0, 0, 0x0b];
const ROUTER: Mac = [0x02, 0, 0, 0, 0, 0x01];
const DHCP_CLIENT: Mac = [0x32, 0x05, 0x33, 0x83, 0xb1, 0xe7];

struct Capture {
    frames: Vec<(u64, Vec<u8>)>,
}

impl Capture {
    fn push(&mut self, ts: u64, frame: Vec<u8>) {
        self.frames.push((ts, frame));
    }

    #[allow(clippy::too_many_arguments)]
    fn arp(
        &mut self,
        ts: u64,
        link: &Link,
        op: u16,
        sha: Mac,
        spa: [u8; 4],
        tha: Mac,
        tpa: [u8; 4],
    ) {
        let mut b = Vec::new();
        build_arp(&mut b, link, op, sha, spa, tha, tpa);
        self.push(ts, b);
    }

    fn udp(
        &mut self,
        ts: u64,
        link: &Link,
        src: (IpAddr, u16),
        dst: (IpAddr, u16),
        payload: &[u8],
    ) {
        let mut b = Vec::new();
        let ip = Ip {
            src: src.0,
            dst: dst.0,
            ttl: 64,
            id: (ts % 65_521) as u16,
            df: false,
        };
        let t = Transport::Udp {
            sport: src.1,
            dport: dst.1,
        };
        build(&mut b, link, &ip, &t, payload);
        self.push(ts, b);
    }

    #[allow(clippy::too_many_arguments)]
    fn nd(
        &mut self,
        ts: u64,
        link: &Link,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        typ: u8,
        flags: u8,
        target: Ipv6Addr,
        lladdr: Mac,
    ) {
        let mut b = Vec::new();
        let ip = Ip {
            src: src.into(),
            dst: dst.into(),
            ttl: 255,
            id: 0,
            df: false,
        };
        let t = Transport::Icmp6 {
            typ,
            code: 0,
            rest: [flags, 0, 0, 0],
        };
        let mut payload = target.octets().to_vec();
        // Source (NS) or target (NA) link-layer address option.
        payload.extend_from_slice(&[if typ == 135 { 1 } else { 2 }, 1]);
        payload.extend_from_slice(&lladdr);
        build(&mut b, link, &ip, &t, &payload);
        self.push(ts, b);
    }

    fn raw(&mut self, ts: u64, link: &Link, ethertype: u16, payload: &[u8]) {
        let mut b = Vec::new();
        build_raw(&mut b, link, ethertype, payload);
        self.push(ts, b);
    }
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap_or(Ipv6Addr::UNSPECIFIED)
}

fn arp_part(c: &mut Capture) {
    let lan = Link::new(HOST_A, BROADCAST);
    let gw = [192, 168, 0, 1];
    let a = [192, 168, 0, 10];
    // Three requests and two replies in one window, then a request in the next window.
    for s in [500_000, 1_500_000, 30_000_000, 70_000_000] {
        c.arp(T0 + s, &lan, 1, HOST_A, a, [0; 6], gw);
    }
    for s in [501_000, 1_501_000] {
        c.arp(T0 + s, &Link::new(ROUTER, HOST_A), 2, ROUTER, gw, HOST_A, a);
    }
    // A VLAN-tagged request from another host.
    let tagged = Link::new(HOST_B, BROADCAST).with_vlans(&[(TPID_8021Q, 100)]);
    c.arp(
        T0 + 2_000_000,
        &tagged,
        1,
        HOST_B,
        [192, 168, 0, 11],
        [0; 6],
        gw,
    );
    // A gratuitous ARP: the router announcing its own address.
    c.arp(
        T0 + 3_000_000,
        &Link::new(ROUTER, BROADCAST),
        1,
        ROUTER,
        gw,
        [0; 6],
        gw,
    );
    // Malformed: claims Ethernet/IPv4 but with 8-byte hardware addresses (counted, no row).
    let mut bad = Vec::new();
    build_arp(&mut bad, &lan, 1, HOST_A, a, [0; 6], gw);
    bad[14 + 4] = 8;
    c.push(T0 + 4_000_000, bad);
}

fn ns_part(c: &mut Capture) {
    let a = v6("fe80::a");
    let r = v6("fe80::1");
    let solicited_node = v6("ff02::1:ff00:1");
    let to_group = Link::new(HOST_A, [0x33, 0x33, 0xff, 0, 0, 0x01]);
    for s in [5_000_000, 6_000_000] {
        c.nd(T0 + s, &to_group, a, solicited_node, 135, 0, r, HOST_A);
    }
    // Solicited, override.
    c.nd(
        T0 + 5_001_000,
        &Link::new(ROUTER, HOST_A),
        r,
        a,
        136,
        0x60,
        r,
        ROUTER,
    );
    // An unsolicited advertisement to all nodes answers nobody: no row.
    c.nd(
        T0 + 7_000_000,
        &Link::new(ROUTER, [0x33, 0x33, 0, 0, 0, 1]),
        r,
        v6("ff02::1"),
        136,
        0x20,
        r,
        ROUTER,
    );
    // Duplicate address detection: from the unspecified address.
    c.nd(
        T0 + 8_000_000,
        &Link::new(HOST_B, [0x33, 0x33, 0xff, 0, 0, 0x0b]),
        Ipv6Addr::UNSPECIFIED,
        v6("ff02::1:ff00:b"),
        135,
        0,
        v6("fe80::b"),
        HOST_B,
    );
}

/// A BOOTP request with the given DHCP options (code, data) after the message type.
fn dhcp_request(msg_type: u8, ciaddr: [u8; 4], opts: &[(u8, &[u8])]) -> Vec<u8> {
    let mut p = vec![0u8; 236];
    p[0] = 1;
    p[1] = 1;
    p[2] = 6;
    p[4..8].copy_from_slice(&0x3903_f326u32.to_be_bytes());
    p[12..16].copy_from_slice(&ciaddr);
    p[28..34].copy_from_slice(&DHCP_CLIENT);
    p.extend_from_slice(&[0x63, 0x82, 0x53, 0x63, 53, 1, msg_type]);
    for (code, data) in opts {
        p.push(*code);
        p.push(data.len() as u8);
        p.extend_from_slice(data);
    }
    p.push(255);
    p
}

fn dhcp_part(c: &mut Capture) {
    let prl: &[u8] = &[1, 3, 6, 15, 31, 33, 43, 44, 46, 47, 119, 121, 249, 252];
    let client_id: &[u8] = &[1, 0x32, 0x05, 0x33, 0x83, 0xb1, 0xe7];
    let opts: &[(u8, &[u8])] = &[
        (61, client_id),
        (12, b"DESKTOP-QVGI2E4"),
        (60, b"MSFT 5.0"),
        (55, prl),
    ];
    let bcast = Link::new(DHCP_CLIENT, BROADCAST);
    let from = (v4(0, 0, 0, 0), 68);
    let to = (v4(255, 255, 255, 255), 67);
    let t1 = 1_539_480_862_362_578;
    // DISCOVER, and its retry and the REQUEST in the same window: one row.
    c.udp(t1, &bcast, from, to, &dhcp_request(1, [0; 4], opts));
    c.udp(
        t1 + 4_000_000,
        &bcast,
        from,
        to,
        &dhcp_request(1, [0; 4], opts),
    );
    let mut offer = dhcp_request(2, [0; 4], &[]);
    offer[0] = 2;
    c.udp(
        t1 + 4_010_000,
        &Link::new(ROUTER, DHCP_CLIENT),
        (v4(192, 168, 0, 1), 67),
        (v4(192, 168, 0, 28), 68),
        &offer,
    );
    c.udp(
        t1 + 4_020_000,
        &bcast,
        from,
        to,
        &dhcp_request(3, [0; 4], opts),
    );
    // A request whose last option runs past the datagram: counted, no row.
    let mut cut = dhcp_request(1, [0; 4], &[(12, b"TRUNCATED-HOST")]);
    cut.truncate(cut.len() - 6);
    c.udp(
        t1 + 20_000_000,
        &Link::new(HOST_B, BROADCAST),
        from,
        to,
        &cut,
    );
    // The renewal a day later, unicast from the leased address.
    let t2 = 1_539_567_778_980_630;
    c.udp(
        t2,
        &Link::new(DHCP_CLIENT, ROUTER),
        (v4(192, 168, 0, 28), 68),
        (v4(192, 168, 0, 1), 67),
        &dhcp_request(3, [192, 168, 0, 28], opts),
    );
}

/// A CC-Link IE frame of `len` bytes: frame type, data type, then the header fields.
fn cclink(frame_type: u8, src_node: u16, proto: u8, len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = frame_type;
    p[6..8].copy_from_slice(&src_node.to_be_bytes());
    p[8] = proto;
    p
}

fn cclink_part(c: &mut Capture) {
    let link = Link::new([0, 0x11, 0x11, 0x11, 0x11, 0x11], [0, 0, 0, 0, 0, 1]);
    // (frame type, first, last, frames): the control frames of the published example.
    let control: [(u8, u64, u64, u64); 9] = [
        (0x04, 1_667_903_833_066_101, 1_667_903_833_134_207, 61),
        (0x02, 1_667_903_833_065_821, 1_667_903_833_129_023, 48),
        (0x01, 1_667_903_833_064_742, 1_667_903_833_133_590, 61),
        (0x00, 1_667_903_833_065_511, 1_667_903_833_134_085, 62),
        (0x2f, 1_667_903_833_067_818, 1_667_903_833_131_018, 53),
        (0x24, 1_667_903_833_068_939, 1_667_903_833_133_957, 57),
        (0x03, 1_667_903_833_065_083, 1_667_903_833_133_231, 61),
        (0x05, 1_667_903_833_064_936, 1_667_903_833_132_990, 40),
        (0x06, 1_667_903_833_066_240, 1_667_903_833_133_351, 57),
    ];
    for (t, first, last, n) in control {
        for i in 0..n {
            let ts = first + (last - first) * i / (n - 1);
            c.raw(ts, &link, ETH_CCLINK_IE, &cclink(t, 1, 0, 64));
        }
    }
    let t = 1_667_903_833_200_000;
    // Field-family frames of the Control protocol (protocol byte 0).
    let mut token = cclink(0x15, 2, 0, 64);
    token[2..4].copy_from_slice(&5u16.to_be_bytes());
    c.raw(t, &link, ETH_CCLINK_IE, &token);
    let mut run = cclink(0x25, 2, 0, 64);
    run[2..4].copy_from_slice(&5u16.to_be_bytes());
    run[4] = 0x13;
    run[36] = 0x08;
    c.raw(t + 1_000, &link, ETH_CCLINK_IE, &run);
    let mut persuasion = cclink(0x10, 2, 0, 64);
    persuasion[5] = 0x02;
    c.raw(t + 2_000, &link, ETH_CCLINK_IE, &persuasion);
    // A VLAN-tagged cyclic frame of the Field protocol.
    let tagged = link.clone().with_vlans(&[(TPID_8021Q, 10)]);
    let mut cyclic = cclink(0x83, 3, 1, 64);
    cyclic[2..4].copy_from_slice(&3u16.to_be_bytes());
    c.raw(t + 3_000, &tagged, ETH_CCLINK_IE, &cyclic);
}

/// Writes the capture; returns the number of frames.
pub fn write_ot<W: Write>(out: W) -> io::Result<u64> {
    let mut c = Capture { frames: Vec::new() };
    arp_part(&mut c);
    ns_part(&mut c);
    dhcp_part(&mut c);
    cclink_part(&mut c);
    c.frames.sort_by_key(|f| f.0);
    let mut w = PcapWriter::new(out)?;
    for (ts, frame) in &c.frames {
        w.write(*ts, frame)?;
    }
    let n = w.packets();
    w.finish()?;
    Ok(n)
}
