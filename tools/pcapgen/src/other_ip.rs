//! Traffic of the IP protocols that conn.log leaves to yaf_flow.log: OSPF (v2 and v3), VRRP,
//! ESP, PIM, IGMP (with the router-alert IPv4 option), SCTP, GRE (decapsulable and not),
//! EtherIP, UDP-Lite, protocol 0 and an unassigned number, IPv6 with hop-by-hop, destination
//! options and routing headers, IPv6 "no next header"; VLAN tags; a flow that goes idle past
//! YAF's 300 s and comes back, and one that lives past the 1800 s active timeout.

use std::io::{self, Write};

use crate::packet::{Link, TPID_8021Q};
use crate::raw::{frame, Ip4, Ip6, IpHdr};
use crate::rng::XorShift as Rng;
use crate::writer::PcapWriter;

const BASE_US: u64 = 1_717_300_000_000_000;

fn v4(src: [u8; 4], dst: [u8; 4], ttl: u8) -> IpHdr {
    IpHdr::V4(Ip4 {
        src,
        dst,
        tos: 0,
        id: 1,
        flags: 0,
        ttl,
        options: Vec::new(),
    })
}

fn v6(src: [u8; 16], dst: [u8; 16], ext: &[u8]) -> IpHdr {
    IpHdr::V6(Ip6 {
        src,
        dst,
        traffic_class: 0,
        flow: 0,
        hop_limit: 64,
        ext: ext.to_vec(),
    })
}

fn a6(prefix: [u8; 2], last: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = prefix[0];
    a[1] = prefix[1];
    if prefix == [0xfe, 0x80] {
        a[15] = last;
    } else {
        a[2] = 0x0d;
        a[3] = 0xb8;
        a[15] = last;
    }
    a
}

fn mac(n: u8) -> [u8; 6] {
    [2, 0, 0, 0, 9, n]
}

struct Gen<W: Write> {
    w: PcapWriter<W>,
    frames: Vec<(u64, Vec<u8>)>,
    rng: Rng,
}

impl<W: Write> Gen<W> {
    /// Queues a frame at `t_ms` milliseconds after the capture start (plus a little jitter).
    fn at(&mut self, t_ms: u64, link: &Link, ip: &IpHdr, proto: u8, len: usize) {
        let mut payload = vec![0u8; len];
        self.rng.fill(&mut payload);
        let f = frame(link, ip, proto, &payload);
        let jitter = self.rng.below(900);
        self.frames.push((BASE_US + t_ms * 1000 + jitter, f));
    }

    fn at_payload(&mut self, t_ms: u64, link: &Link, ip: &IpHdr, proto: u8, payload: &[u8]) {
        let f = frame(link, ip, proto, payload);
        self.frames.push((BASE_US + t_ms * 1000, f));
    }
}

/// Writes the capture; returns the number of packets.
pub fn write_other_ip<W: Write>(out: W, seed: u64) -> io::Result<u64> {
    let mut g = Gen {
        w: PcapWriter::new(out)?,
        frames: Vec::new(),
        rng: Rng::new(seed),
    };
    let plain = |a: u8, b: u8| Link::new(mac(a), mac(b));
    let mcast4 = |last: u8| [1, 0, 0x5e, 0, 0, last];

    // OSPFv2 hellos from two routers to 224.0.0.5, and a unicast exchange between them.
    for k in 0..6 {
        let l = Link::new(mac(1), mcast4(5));
        g.at(
            k * 10_000,
            &l,
            &v4([10, 0, 0, 1], [224, 0, 0, 5], 1),
            89,
            44,
        );
        let l = Link::new(mac(2), mcast4(5));
        g.at(
            k * 10_000 + 3_000,
            &l,
            &v4([10, 0, 0, 2], [224, 0, 0, 5], 1),
            89,
            44,
        );
    }
    for k in 0..4 {
        g.at(
            20_000 + k * 40,
            &plain(1, 2),
            &v4([10, 0, 0, 1], [10, 0, 0, 2], 1),
            89,
            32 + 20 * k as usize,
        );
        g.at(
            20_015 + k * 40,
            &plain(2, 1),
            &v4([10, 0, 0, 2], [10, 0, 0, 1], 1),
            89,
            52,
        );
    }
    // VRRP adverts on VLAN 20.
    for k in 0..5 {
        let l = Link::new(mac(3), mcast4(18)).with_vlans(&[(TPID_8021Q, 20)]);
        g.at(
            1_000 + k * 1_000,
            &l,
            &v4([10, 20, 0, 2], [224, 0, 0, 18], 255),
            112,
            20,
        );
    }
    // ESP both ways on VLAN 100.
    for k in 0..6 {
        let l = plain(4, 5).with_vlans(&[(TPID_8021Q, 100)]);
        g.at(
            2_000 + k * 500,
            &l,
            &v4([10, 2, 0, 1], [10, 2, 0, 2], 64),
            50,
            100 + 10 * k as usize,
        );
        let l = plain(5, 4).with_vlans(&[(TPID_8021Q, 100)]);
        g.at(
            2_120 + k * 500,
            &l,
            &v4([10, 2, 0, 2], [10, 2, 0, 1], 64),
            50,
            90,
        );
    }
    // PIM hellos.
    for k in 0..3 {
        g.at(
            3_000 + k * 30_000,
            &Link::new(mac(6), mcast4(13)),
            &v4([10, 3, 0, 1], [224, 0, 0, 13], 1),
            103,
            26,
        );
    }
    // IGMPv3 report with the router-alert option (IPv4 header of 24 bytes).
    let igmp = IpHdr::V4(Ip4 {
        src: [10, 4, 0, 5],
        dst: [224, 0, 0, 22],
        tos: 0xc0,
        id: 0,
        flags: 0x4000,
        ttl: 1,
        options: vec![0x94, 0x04, 0, 0],
    });
    for k in 0..2 {
        g.at(
            4_000 + k * 2_000,
            &Link::new(mac(7), mcast4(22)),
            &igmp,
            2,
            16,
        );
    }
    // SCTP association set-up and data.
    for (k, (fwd, len)) in [
        (true, 100),
        (false, 292),
        (true, 280),
        (false, 16),
        (true, 64),
    ]
    .iter()
    .enumerate()
    {
        let t = 5_000 + 7 * k as u64;
        if *fwd {
            g.at(
                t,
                &plain(8, 9),
                &v4([10, 5, 0, 1], [10, 5, 0, 2], 64),
                132,
                *len,
            );
        } else {
            g.at(
                t,
                &plain(9, 8),
                &v4([10, 5, 0, 2], [10, 5, 0, 1], 64),
                132,
                *len,
            );
        }
    }
    // OSPFv3 over IPv6 with hop-by-hop and destination options headers.
    for k in 0..3 {
        let l = Link::new(mac(10), [0x33, 0x33, 0, 0, 0, 5]);
        g.at(
            6_000 + k * 10_000,
            &l,
            &v6(
                a6([0xfe, 0x80], 1),
                [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5],
                &[0, 60],
            ),
            89,
            40,
        );
    }
    // ESP over IPv6 behind a routing header, both ways.
    for k in 0..3 {
        g.at(
            7_000 + k * 100,
            &plain(11, 12),
            &v6(a6([0x20, 0x01], 1), a6([0x20, 0x01], 2), &[43]),
            50,
            120,
        );
        g.at(
            7_030 + k * 100,
            &plain(12, 11),
            &v6(a6([0x20, 0x01], 2), a6([0x20, 0x01], 1), &[43]),
            50,
            120,
        );
    }
    // IPv6 "no next header" after a hop-by-hop header.
    g.at(
        8_000,
        &plain(13, 14),
        &v6(a6([0x20, 0x01], 3), a6([0x20, 0x01], 4), &[0]),
        59,
        0,
    );
    // UDP-Lite both ways.
    for k in 0..4 {
        let mut p = vec![0x04, 0xd2, 0x16, 0x2e, 0, 8, 0, 0];
        p.extend_from_slice(b"udplite!");
        g.at_payload(
            9_000 + k * 200,
            &plain(15, 16),
            &v4([10, 9, 0, 1], [10, 9, 0, 2], 64),
            136,
            &p,
        );
        let p2 = [0x16u8, 0x2e, 0x04, 0xd2, 0, 8, 0, 0];
        g.at_payload(
            9_050 + k * 200,
            &plain(16, 15),
            &v4([10, 9, 0, 2], [10, 9, 0, 1], 64),
            136,
            &p2,
        );
    }
    // GRE with a payload type the decoder does not open, and GRE carrying IPv4 (opened).
    for k in 0..2 {
        let mut p = vec![0, 0, 0x12, 0x34];
        p.extend_from_slice(&[0xab; 28]);
        g.at_payload(
            10_000 + k * 100,
            &plain(17, 18),
            &v4([10, 10, 0, 1], [10, 10, 0, 2], 64),
            47,
            &p,
        );
        let inner = frame(
            &Link::new([0; 6], [0; 6]),
            &v4([192, 168, 0, 1], [192, 168, 0, 2], 64),
            253,
            &[1, 2, 3, 4],
        );
        let mut p = vec![0, 0, 0x08, 0x00];
        p.extend_from_slice(&inner[14..14 + 24]);
        g.at_payload(
            10_050 + k * 100,
            &plain(18, 17),
            &v4([10, 10, 0, 2], [10, 10, 0, 1], 64),
            47,
            &p,
        );
    }
    // EtherIP, protocol 0 (dropped like the reference) and an unassigned protocol.
    g.at(
        11_000,
        &plain(19, 20),
        &v4([10, 11, 0, 1], [10, 11, 0, 2], 64),
        97,
        60,
    );
    g.at(
        11_100,
        &plain(19, 20),
        &v4([10, 11, 0, 1], [10, 11, 0, 2], 64),
        0,
        8,
    );
    g.at(
        11_200,
        &plain(19, 20),
        &v4([10, 11, 0, 1], [10, 11, 0, 2], 64),
        253,
        8,
    );
    // Idle: ESP with a 400 s gap (two flows, the first ends idle).
    for t in [12_000u64, 22_000, 422_000, 432_000] {
        g.at(
            t,
            &plain(21, 22),
            &v4([10, 12, 0, 1], [10, 12, 0, 2], 64),
            50,
            80,
        );
    }
    // Active: ESP every 120 s for 2000 s, answered each time.
    let mut t = 13_000u64;
    while t < 2_013_000 {
        g.at(
            t,
            &plain(23, 24),
            &v4([10, 13, 0, 1], [10, 13, 0, 2], 64),
            50,
            70,
        );
        g.at(
            t + 40,
            &plain(24, 23),
            &v4([10, 13, 0, 2], [10, 13, 0, 1], 64),
            50,
            70,
        );
        t += 120_000;
    }
    let mut frames = std::mem::take(&mut g.frames);
    frames.sort_by_key(|(t, _)| *t);
    for (t, f) in &frames {
        g.w.write(*t, f)?;
    }
    let n = g.w.packets();
    g.w.finish()?;
    Ok(n)
}
