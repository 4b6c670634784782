//! The small OT-ish sample capture committed as `samples/sample.pcap`.
//!
//! About three minutes of packet time starting at 2024-06-01 00:00:30 UTC, so minute bundles
//! cut it into four intervals and the Modbus session crosses two minute boundaries. Every
//! conversation is built in its own chronological order and the whole capture is sorted by
//! timestamp at the end (ties keep build order), which keeps the builders simple.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::packet::{
    self, Ip, Link, Mac, Transport, ACK, BROADCAST, FIN, PSH, RST, SYN, TPID_8021AD, TPID_8021Q,
};
use crate::rng::XorShift;
use crate::writer::PcapWriter;

/// 2024-06-01 00:00:30 UTC: half a minute before a minute boundary.
pub const SAMPLE_START_US: u64 = 1_717_200_030 * 1_000_000;

const MSS_OPT: [u8; 4] = [2, 4, 0x05, 0xb4];

#[derive(Clone, Copy, Debug)]
struct Host {
    mac: Mac,
    ip: IpAddr,
    ttl: u8,
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn host4(mac: Mac, ip: IpAddr, ttl: u8) -> Host {
    Host { mac, ip, ttl }
}

/// Collects frames with their timestamps; sorted and written at the end.
struct Sched {
    pkts: Vec<(u64, Vec<u8>)>,
    ip_ids: HashMap<IpAddr, u16>,
    buf: Vec<u8>,
    rng: XorShift,
}

impl Sched {
    fn new(seed: u64) -> Self {
        Sched {
            pkts: Vec::new(),
            ip_ids: HashMap::new(),
            buf: Vec::new(),
            rng: XorShift::new(seed),
        }
    }

    fn us(t: f64) -> u64 {
        SAMPLE_START_US + (t * 1e6).round() as u64
    }

    /// A small random delay in seconds (LAN round trips: 0.2-1.5 ms).
    fn lan_delay(&mut self) -> f64 {
        self.rng.range(200, 1500) as f64 / 1e6
    }

    fn ip(
        &mut self,
        t: f64,
        vlans: &[(u16, u16)],
        from: Host,
        to: Host,
        tr: Transport,
        payload: &[u8],
    ) {
        let id = self
            .ip_ids
            .entry(from.ip)
            .or_insert(((from.mac[5] as u16) << 8) | 0x11);
        *id = id.wrapping_add(1);
        let ip = Ip {
            src: from.ip,
            dst: to.ip,
            ttl: from.ttl,
            id: *id,
            df: matches!(tr, Transport::Tcp { .. }),
        };
        let link = Link::new(from.mac, to.mac).with_vlans(vlans);
        packet::build(&mut self.buf, &link, &ip, &tr, payload);
        self.pkts.push((Self::us(t), self.buf.clone()));
    }

    fn udp(
        &mut self,
        t: f64,
        vlans: &[(u16, u16)],
        from: (Host, u16),
        to: (Host, u16),
        payload: &[u8],
    ) {
        self.ip(
            t,
            vlans,
            from.0,
            to.0,
            Transport::Udp {
                sport: from.1,
                dport: to.1,
            },
            payload,
        );
    }

    fn arp(&mut self, t: f64, asker: Host, target: Host) {
        let (IpAddr::V4(a), IpAddr::V4(b)) = (asker.ip, target.ip) else {
            return;
        };
        packet::build_arp(
            &mut self.buf,
            &Link::new(asker.mac, BROADCAST),
            1,
            asker.mac,
            a.octets(),
            [0; 6],
            b.octets(),
        );
        self.pkts.push((Self::us(t), self.buf.clone()));
        let t2 = t + self.lan_delay();
        packet::build_arp(
            &mut self.buf,
            &Link::new(target.mac, asker.mac),
            2,
            target.mac,
            b.octets(),
            asker.mac,
            a.octets(),
        );
        self.pkts.push((Self::us(t2), self.buf.clone()));
    }

    fn write<W: Write>(mut self, out: W) -> io::Result<u64> {
        // Stable sort: packets with equal timestamps keep their causal build order.
        self.pkts.sort_by_key(|p| p.0);
        let mut w = PcapWriter::new(out)?;
        for (ts, frame) in &self.pkts {
            w.write(*ts, frame)?;
        }
        let n = w.packets();
        w.finish()?;
        Ok(n)
    }
}

/// A TCP connection whose sequence numbers are tracked so every segment is consistent.
struct Tcp {
    c: Host,
    cp: u16,
    s: Host,
    sp: u16,
    cseq: u32,
    sseq: u32,
    vlans: Vec<(u16, u16)>,
}

impl Tcp {
    fn new(c: (Host, u16), s: (Host, u16), isn_c: u32, isn_s: u32, vlans: &[(u16, u16)]) -> Self {
        Tcp {
            c: c.0,
            cp: c.1,
            s: s.0,
            sp: s.1,
            cseq: isn_c,
            sseq: isn_s,
            vlans: vlans.to_vec(),
        }
    }

    fn seg(&mut self, sch: &mut Sched, t: f64, from_client: bool, flags: u8, payload: &[u8]) {
        let (seq, ack) = if from_client {
            (self.cseq, self.sseq)
        } else {
            (self.sseq, self.cseq)
        };
        let options: &[u8] = if flags & SYN != 0 { &MSS_OPT } else { &[] };
        let (from, to, sport, dport, window) = if from_client {
            (self.c, self.s, self.cp, self.sp, 64240)
        } else {
            (self.s, self.c, self.sp, self.cp, 29200)
        };
        let tr = Transport::Tcp {
            sport,
            dport,
            seq,
            ack: if flags & ACK != 0 { ack } else { 0 },
            flags,
            window,
            options,
        };
        let vlans = self.vlans.clone();
        sch.ip(t, &vlans, from, to, tr, payload);
        let adv = payload.len() as u32 + u32::from(flags & (SYN | FIN) != 0);
        if from_client {
            self.cseq = self.cseq.wrapping_add(adv);
        } else {
            self.sseq = self.sseq.wrapping_add(adv);
        }
    }

    /// SYN, SYN/ACK, ACK; returns the time of the final ACK.
    fn handshake(&mut self, sch: &mut Sched, t: f64) -> f64 {
        self.seg(sch, t, true, SYN, &[]);
        let t1 = t + sch.lan_delay();
        self.seg(sch, t1, false, SYN | ACK, &[]);
        let t2 = t1 + sch.lan_delay() / 4.0;
        self.seg(sch, t2, true, ACK, &[]);
        t2
    }

    /// Request from the client, response from the server, pure ACK from the client.
    fn exchange(&mut self, sch: &mut Sched, t: f64, req: &[u8], resp: &[u8]) -> f64 {
        self.seg(sch, t, true, PSH | ACK, req);
        let t1 = t + sch.lan_delay();
        self.seg(sch, t1, false, PSH | ACK, resp);
        let t2 = t1 + sch.lan_delay() / 4.0;
        self.seg(sch, t2, true, ACK, &[]);
        t2
    }

    /// Orderly close initiated by one side: FIN/ACK, FIN/ACK, ACK.
    fn close(&mut self, sch: &mut Sched, t: f64, client_first: bool) -> f64 {
        self.seg(sch, t, client_first, FIN | ACK, &[]);
        let t1 = t + sch.lan_delay();
        self.seg(sch, t1, !client_first, FIN | ACK, &[]);
        let t2 = t1 + sch.lan_delay() / 4.0;
        self.seg(sch, t2, client_first, ACK, &[]);
        t2
    }
}

// ---- payload builders -------------------------------------------------------------------

fn modbus_read_req(tid: u16, addr: u16, qty: u16) -> Vec<u8> {
    let mut v = Vec::with_capacity(12);
    v.extend_from_slice(&tid.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 6, 1, 3]);
    v.extend_from_slice(&addr.to_be_bytes());
    v.extend_from_slice(&qty.to_be_bytes());
    v
}

fn modbus_read_resp(tid: u16, regs: &[u16]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&tid.to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(&(3 + 2 * regs.len() as u16).to_be_bytes());
    v.extend_from_slice(&[1, 3, (2 * regs.len()) as u8]);
    for r in regs {
        v.extend_from_slice(&r.to_be_bytes());
    }
    v
}

fn modbus_write_single(tid: u16, addr: u16, value: u16) -> Vec<u8> {
    let mut v = Vec::with_capacity(12);
    v.extend_from_slice(&tid.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 6, 1, 6]);
    v.extend_from_slice(&addr.to_be_bytes());
    v.extend_from_slice(&value.to_be_bytes());
    v
}

fn dns_name(v: &mut Vec<u8>, name: &str) {
    for label in name.split('.') {
        v.push(label.len() as u8);
        v.extend_from_slice(label.as_bytes());
    }
    v.push(0);
}

/// DNS query (`answer` None) or response with zero or one A record.
fn dns(id: u16, name: &str, qtype: u16, answer: Option<Option<[u8; 4]>>) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&id.to_be_bytes());
    let (flags, an): (u16, u16) = match answer {
        None => (0x0100, 0),
        Some(None) => (0x8183, 0), // NXDOMAIN
        Some(Some(_)) => (0x8180, 1),
    };
    v.extend_from_slice(&flags.to_be_bytes());
    v.extend_from_slice(&[0, 1]);
    v.extend_from_slice(&an.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 0]);
    dns_name(&mut v, name);
    v.extend_from_slice(&qtype.to_be_bytes());
    v.extend_from_slice(&[0, 1]);
    if let Some(Some(a)) = answer {
        v.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
        v.extend_from_slice(&300u32.to_be_bytes());
        v.extend_from_slice(&[0, 4]);
        v.extend_from_slice(&a);
    }
    v
}

fn ntp(mode: u8, unix_secs: u64) -> Vec<u8> {
    let mut v = vec![0u8; 48];
    v[0] = (4 << 3) | mode; // version 4
    if mode == 4 {
        v[1] = 2; // stratum
        v[2] = 6;
        v[3] = 0xe9;
        v[12..16].copy_from_slice(&[192, 168, 10, 254]); // reference id
    } else {
        v[2] = 6;
        v[3] = 0xec;
    }
    let ntp_secs = (unix_secs + 2_208_988_800) as u32;
    v[40..44].copy_from_slice(&ntp_secs.to_be_bytes());
    v[44..48].copy_from_slice(&0x4000_0000u32.to_be_bytes());
    if mode == 4 {
        v[24..28].copy_from_slice(&ntp_secs.to_be_bytes()); // origin
        v[32..36].copy_from_slice(&ntp_secs.to_be_bytes()); // receive
    }
    v
}

/// BER TLV with a short-form length (all our SNMP messages are < 128 bytes).
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag, content.len() as u8];
    v.extend_from_slice(content);
    v
}

/// SNMPv2c GetRequest (`value` None) or GetResponse for sysDescr.0.
fn snmp(req_id: u32, value: Option<&str>) -> Vec<u8> {
    let oid = tlv(0x06, &[0x2b, 6, 1, 2, 1, 1, 1, 0]);
    let val = match value {
        None => vec![0x05, 0x00],
        Some(s) => tlv(0x04, s.as_bytes()),
    };
    let varbind = tlv(0x30, &[oid, val].concat());
    let list = tlv(0x30, &varbind);
    let mut pdu = tlv(0x02, &req_id.to_be_bytes());
    pdu.extend_from_slice(&[0x02, 1, 0, 0x02, 1, 0]);
    pdu.extend_from_slice(&list);
    let pdu = tlv(if value.is_none() { 0xa0 } else { 0xa2 }, &pdu);
    let mut msg = vec![0x02, 1, 1];
    msg.extend_from_slice(&tlv(0x04, b"public"));
    msg.extend_from_slice(&pdu);
    tlv(0x30, &msg)
}

fn enip_register_session(handle: u32) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0x0065u16.to_le_bytes());
    v.extend_from_slice(&4u16.to_le_bytes());
    v.extend_from_slice(&handle.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(b"osect\0\0\0");
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&0u16.to_le_bytes());
    v
}

fn enip_list_identity(response: bool) -> Vec<u8> {
    let mut data = Vec::new();
    if response {
        // One CIP identity item, abbreviated: vendor, device type, product code, name.
        let name = b"1756-L81E/B";
        let mut item = Vec::new();
        item.extend_from_slice(&1u16.to_le_bytes()); // encapsulation version
        item.extend_from_slice(&[0u8; 16]); // socket address
        item.extend_from_slice(&1u16.to_le_bytes()); // vendor
        item.extend_from_slice(&14u16.to_le_bytes()); // device type: PLC
        item.extend_from_slice(&166u16.to_le_bytes()); // product code
        item.extend_from_slice(&[33, 11]); // revision
        item.extend_from_slice(&0x0060u16.to_le_bytes()); // status
        item.extend_from_slice(&0x00c0_ffeeu32.to_le_bytes()); // serial
        item.push(name.len() as u8);
        item.extend_from_slice(name);
        item.push(3); // state
        data.extend_from_slice(&1u16.to_le_bytes()); // item count
        data.extend_from_slice(&0x000cu16.to_le_bytes());
        data.extend_from_slice(&(item.len() as u16).to_le_bytes());
        data.extend_from_slice(&item);
    }
    let mut v = Vec::new();
    v.extend_from_slice(&0x0063u16.to_le_bytes());
    v.extend_from_slice(&(data.len() as u16).to_le_bytes());
    v.extend_from_slice(&[0u8; 4]);
    v.extend_from_slice(&[0u8; 4]);
    v.extend_from_slice(b"listid\0\0");
    v.extend_from_slice(&[0u8; 4]);
    v.extend_from_slice(&data);
    v
}

fn tpkt(cotp_and_data: &[u8]) -> Vec<u8> {
    let mut v = vec![3, 0];
    v.extend_from_slice(&(4 + cotp_and_data.len() as u16).to_be_bytes());
    v.extend_from_slice(cotp_and_data);
    v
}

fn cotp_connect(confirm: bool) -> Vec<u8> {
    let pdu = if confirm { 0xd0 } else { 0xe0 };
    tpkt(&[
        17,
        pdu,
        0,
        if confirm { 0x44 } else { 0 },
        0,
        1,
        0,
        0xc1,
        2,
        1,
        0,
        0xc2,
        2,
        1,
        2,
        0xc0,
        1,
        0x0a,
    ])
}

fn s7_setup(ack: bool) -> Vec<u8> {
    let mut v = vec![
        2,
        0xf0,
        0x80,
        0x32,
        if ack { 3 } else { 1 },
        0,
        0,
        0,
        1,
        0,
        8,
        0,
        0,
    ];
    if ack {
        v.extend_from_slice(&[0, 0]); // error class/code
    }
    v.extend_from_slice(&[0xf0, 0, 0, 1, 0, 1, 0x01, 0xe0]);
    tpkt(&v)
}

fn http_get(host: &str, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64)\r\nAccept: text/html\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

fn http_ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nServer: lighttpd\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

// ---- the capture ------------------------------------------------------------------------

/// Builds the sample and writes it; returns the packet count.
pub fn write_sample<W: Write>(out: W, seed: u64) -> io::Result<u64> {
    let mut s = Sched::new(seed);
    let none: &[(u16, u16)] = &[];

    // Plant LAN 192.168.10.0/24 (untagged).
    let gw = host4(
        [0x00, 0x1b, 0x1b, 0x0a, 0x00, 0x01],
        v4(192, 168, 10, 1),
        64,
    ); // router, DNS, NTP
    let hmi = host4(
        [0x00, 0x0c, 0x29, 0x3e, 0x10, 0x10],
        v4(192, 168, 10, 10),
        128,
    );
    let plc = host4(
        [0x00, 0x1b, 0x1b, 0x6b, 0x20, 0x20],
        v4(192, 168, 10, 20),
        30,
    );
    let rio = host4(
        [0x00, 0x1d, 0x9c, 0x21, 0x21, 0x21],
        v4(192, 168, 10, 21),
        64,
    ); // remote I/O
    let ews = host4(
        [0x3c, 0x52, 0x82, 0x30, 0x30, 0x30],
        v4(192, 168, 10, 30),
        128,
    );
    let hist = host4(
        [0x00, 0x50, 0x56, 0x40, 0x40, 0x40],
        v4(192, 168, 10, 40),
        64,
    );
    let web = host4(
        [0x00, 0x80, 0xf4, 0x50, 0x50, 0x50],
        v4(192, 168, 10, 50),
        64,
    );
    let ghost = host4(
        [0x00, 0x1b, 0x1b, 0x0a, 0x00, 0x01],
        v4(192, 168, 10, 99),
        64,
    ); // routed: gw's MAC

    // ARP: the HMI resolves the PLC before polling; later the EWS resolves the gateway.
    s.arp(0.0, hmi, plc);
    s.arp(119.5, ews, gw);

    // Long-lived Modbus/TCP polling session HMI -> PLC:502 (2 s cycle, > 2 minutes).
    let mut mb = Tcp::new((hmi, 50123), (plc, 502), 0x1c2d_3e4f, 0x0bad_cafe, none);
    let mut t = mb.handshake(&mut s, 0.5);
    let mut tid: u16 = 1;
    let mut reg = 1200u16;
    t += 0.5;
    while t < 171.0 {
        if tid % 10 == 0 {
            // Every 10th cycle the HMI writes a setpoint; the PLC echoes the request.
            let w = modbus_write_single(tid, 40, 750 + tid);
            mb.exchange(&mut s, t, &w, &w);
        } else {
            reg = reg.wrapping_add((s.rng.below(7) as u16).wrapping_sub(3));
            let regs: Vec<u16> = (0..10).map(|i| reg.wrapping_add(i * 3)).collect();
            mb.exchange(
                &mut s,
                t,
                &modbus_read_req(tid, 0, 10),
                &modbus_read_resp(tid, &regs),
            );
        }
        tid += 1;
        t = 1.0 + 2.0 * tid as f64 - 2.0 + s.lan_delay();
    }
    mb.close(&mut s, t, true);

    // DNS lookups by the HMI (answered, then NXDOMAIN) and later by the EWS.
    s.udp(
        2.0,
        none,
        (hmi, 53001),
        (gw, 53),
        &dns(0x1a2b, "plc1.plant.local", 1, None),
    );
    s.udp(
        2.0012,
        none,
        (gw, 53),
        (hmi, 53001),
        &dns(
            0x1a2b,
            "plc1.plant.local",
            1,
            Some(Some([192, 168, 10, 20])),
        ),
    );
    s.udp(
        2.3,
        none,
        (hmi, 53002),
        (gw, 53),
        &dns(0x1a2c, "hmi-backup.plant.local", 1, None),
    );
    s.udp(
        2.3009,
        none,
        (gw, 53),
        (hmi, 53002),
        &dns(0x1a2c, "hmi-backup.plant.local", 1, Some(None)),
    );
    s.udp(
        150.0,
        none,
        (ews, 61000),
        (gw, 53),
        &dns(0x7001, "historian.plant.local", 1, None),
    );
    s.udp(
        150.0011,
        none,
        (gw, 53),
        (ews, 61000),
        &dns(
            0x7001,
            "historian.plant.local",
            1,
            Some(Some([192, 168, 10, 40])),
        ),
    );

    // NTP: the PLC syncs twice, two minutes apart (two separate UDP connections).
    for t in [5.0, 125.0] {
        let unix = SAMPLE_START_US / 1_000_000 + t as u64;
        s.udp(t, none, (plc, 123), (gw, 123), &ntp(3, unix));
        s.udp(t + 0.0008, none, (gw, 123), (plc, 123), &ntp(4, unix));
    }

    // ICMP echo: the EWS pings the PLC four times.
    for i in 0..4u16 {
        let t = 8.0 + i as f64;
        let mut data = [0u8; 32];
        for (k, b) in data.iter_mut().enumerate() {
            *b = b'a' + (k % 23) as u8;
        }
        let rest = |seq: u16| [0, 1, (seq >> 8) as u8, seq as u8];
        s.ip(
            t,
            none,
            ews,
            plc,
            Transport::Icmp {
                typ: 8,
                code: 0,
                rest: rest(i + 1),
            },
            &data,
        );
        s.ip(
            t + 0.0004,
            none,
            plc,
            ews,
            Transport::Icmp {
                typ: 0,
                code: 0,
                rest: rest(i + 1),
            },
            &data,
        );
    }

    // HTTP GET from the EWS to the switch's web UI; client closes.
    let body = "<html><head><title>Status</title></head><body><h1>RUGGED-SW01</h1><table>\
<tr><td>Uptime</td><td>41d 03:12</td></tr><tr><td>Ports up</td><td>7/8</td></tr>\
<tr><td>Firmware</td><td>5.7.1</td></tr></table></body></html>\n";
    let mut http = Tcp::new((ews, 51000), (web, 80), 0x4000_1000, 0x7000_2000, none);
    let t = http.handshake(&mut s, 12.0);
    let t = http.exchange(
        &mut s,
        t + 0.001,
        &http_get("192.168.10.50", "/status.html"),
        &http_ok(body),
    );
    http.close(&mut s, t + 0.01, true);

    // Rejected connection: telnet to the PLC answered with RST/ACK.
    let mut rej = Tcp::new((ews, 51001), (plc, 23), 0x5555_0001, 0, none);
    rej.seg(&mut s, 20.0, true, SYN, &[]);
    rej.seg(&mut s, 20.0006, false, RST | ACK, &[]);

    // Unanswered SYN (host down): the original and two retransmissions with the same ISN.
    for t in [21.0, 22.0, 24.0] {
        let mut g = Tcp::new((ews, 51002), (ghost, 445), 0x6666_0001, 0, none);
        g.seg(&mut s, t, true, SYN, &[]);
    }

    // SNMP to the PLC, which has no agent: ICMP port unreachable quoting the datagram.
    let req = snmp(0x0101_0101, None);
    s.udp(30.0, none, (ews, 51500), (plc, 161), &req);
    {
        let mut orig = Vec::new();
        let ip = Ip {
            src: ews.ip,
            dst: plc.ip,
            ttl: ews.ttl,
            id: 0x3131,
            df: false,
        };
        packet::build(
            &mut orig,
            &Link::new(ews.mac, plc.mac),
            &ip,
            &Transport::Udp {
                sport: 51500,
                dport: 161,
            },
            &req,
        );
        let ip_len = u16::from_be_bytes([orig[16], orig[17]]) as usize;
        let quoted = orig[14..14 + ip_len].to_vec();
        s.ip(
            30.0007,
            none,
            plc,
            ews,
            Transport::Icmp {
                typ: 3,
                code: 3,
                rest: [0; 4],
            },
            &quoted,
        );
    }

    // One-way cyclic UDP: remote I/O produces to the PLC every 250 ms for 30 s (no replies).
    for i in 0..120u32 {
        let t = 40.0 + i as f64 * 0.25;
        let mut p = vec![0x02, 0x00, 0x02, 0x80, 0x08, 0x00];
        p.extend_from_slice(&0x0001_0042u32.to_le_bytes());
        p.extend_from_slice(&i.to_le_bytes());
        p.extend_from_slice(&[0xb1, 0x00, 0x0a, 0x00]);
        p.extend_from_slice(&(i as u16).to_le_bytes());
        p.extend_from_slice(&[0x01, 0x00, 0x00, 0x00, (i & 0xff) as u8, 0x5a, 0xa5, 0x00]);
        s.udp(t, none, (rio, 2222), (plc, 2222), &p);
    }

    // IPv6 on the same LAN: neighbour discovery, ping, and an SSH session.
    {
        let v6 = |s: &str| IpAddr::V6(s.parse::<Ipv6Addr>().expect("valid literal"));
        let ews6 = Host {
            mac: ews.mac,
            ip: v6("fd00:10::30"),
            ttl: 64,
        };
        let ews_ll = Host {
            mac: ews.mac,
            ip: v6("fe80::3e52:82ff:fe30:3030"),
            ttl: 255,
        };
        let srv6 = Host {
            mac: web.mac,
            ip: v6("fd00:10::50"),
            ttl: 64,
        };
        let srv6_nd = Host { ttl: 255, ..srv6 };
        let solicited = Host {
            mac: [0x33, 0x33, 0xff, 0x00, 0x00, 0x50],
            ip: v6("ff02::1:ff00:50"),
            ttl: 255,
        };
        let target: [u8; 16] = match srv6.ip {
            IpAddr::V6(a) => a.octets(),
            IpAddr::V4(_) => unreachable!(),
        };
        let mut ns = target.to_vec();
        ns.extend_from_slice(&[1, 1]);
        ns.extend_from_slice(&ews.mac);
        s.ip(
            50.0,
            none,
            ews_ll,
            solicited,
            Transport::Icmp6 {
                typ: 135,
                code: 0,
                rest: [0; 4],
            },
            &ns,
        );
        let mut na = target.to_vec();
        na.extend_from_slice(&[2, 1]);
        na.extend_from_slice(&web.mac);
        let ews_ll_dst = Host { ttl: 255, ..ews_ll };
        s.ip(
            50.0005,
            none,
            srv6_nd,
            ews_ll_dst,
            Transport::Icmp6 {
                typ: 136,
                code: 0,
                rest: [0x60, 0, 0, 0],
            },
            &na,
        );

        for i in 0..2u16 {
            let t = 50.01 + i as f64;
            let rest = [0x0b, 0xad, 0, (i + 1) as u8];
            let data = [0x42u8; 24];
            s.ip(
                t,
                none,
                ews6,
                srv6,
                Transport::Icmp6 {
                    typ: 128,
                    code: 0,
                    rest,
                },
                &data,
            );
            s.ip(
                t + 0.0003,
                none,
                srv6,
                ews6,
                Transport::Icmp6 {
                    typ: 129,
                    code: 0,
                    rest,
                },
                &data,
            );
        }

        let mut ssh = Tcp::new((ews6, 51100), (srv6, 22), 0x0102_0304, 0x0a0b_0c0d, none);
        let t = ssh.handshake(&mut s, 53.0);
        let t = ssh.exchange(
            &mut s,
            t + 0.002,
            b"SSH-2.0-PuTTY_Release_0.80\r\n",
            b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n",
        );
        ssh.close(&mut s, t + 0.5, true);
    }

    // Line 2 on 802.1Q VLAN 100: EtherNet/IP explicit session and a DNS lookup.
    {
        let vlan: &[(u16, u16)] = &[(TPID_8021Q, 100)];
        let gw2 = host4(
            [0x00, 0x1b, 0x1b, 0x0a, 0x00, 0x02],
            v4(192, 168, 20, 1),
            64,
        );
        let hmi2 = host4(
            [0x00, 0x0c, 0x29, 0x3e, 0x20, 0x10],
            v4(192, 168, 20, 10),
            128,
        );
        let plc2 = host4(
            [0x00, 0x00, 0xbc, 0x20, 0x20, 0x20],
            v4(192, 168, 20, 20),
            64,
        );
        let mut enip = Tcp::new((hmi2, 50500), (plc2, 44818), 0x2020_0001, 0x3030_0001, vlan);
        let t = enip.handshake(&mut s, 70.0);
        let t = enip.exchange(
            &mut s,
            t + 0.001,
            &enip_register_session(0),
            &enip_register_session(0x0200_1a2b),
        );
        let t = enip.exchange(
            &mut s,
            t + 0.05,
            &enip_list_identity(false),
            &enip_list_identity(true),
        );
        enip.close(&mut s, t + 0.2, false);
        s.udp(
            71.0,
            vlan,
            (hmi2, 53100),
            (gw2, 53),
            &dns(0x2b3c, "plc2.line2.plant.local", 1, None),
        );
        s.udp(
            71.0009,
            vlan,
            (gw2, 53),
            (hmi2, 53100),
            &dns(
                0x2b3c,
                "plc2.line2.plant.local",
                1,
                Some(Some([192, 168, 20, 20])),
            ),
        );
    }

    // QinQ (802.1ad outer 200, 802.1Q inner 30): SNMP poll of a field switch.
    {
        let qinq: &[(u16, u16)] = &[(TPID_8021AD, 200), (TPID_8021Q, 30)];
        let nms = host4(
            [0x00, 0x50, 0x56, 0x30, 0x30, 0x05],
            v4(192, 168, 30, 5),
            64,
        );
        let sw = host4(
            [0x00, 0x80, 0xf4, 0x30, 0x30, 0x01],
            v4(192, 168, 30, 1),
            64,
        );
        s.udp(
            80.0,
            qinq,
            (nms, 50000),
            (sw, 161),
            &snmp(0x2222_0001, None),
        );
        s.udp(
            80.0021,
            qinq,
            (sw, 161),
            (nms, 50000),
            &snmp(0x2222_0001, Some("RUGGED-SW02 field switch")),
        );
    }

    // Historian reads the PLC over ISO-on-TCP (102): COTP connect, S7 setup, PLC closes.
    {
        let mut s7 = Tcp::new((hist, 49900), (plc, 102), 0x7777_0001, 0x8888_0001, none);
        let t = s7.handshake(&mut s, 95.0);
        let t = s7.exchange(&mut s, t + 0.001, &cotp_connect(false), &cotp_connect(true));
        let t = s7.exchange(&mut s, t + 0.001, &s7_setup(false), &s7_setup(true));
        s7.close(&mut s, t + 35.0, false);
    }

    // A last ping to the gateway near the end of the capture.
    s.ip(
        160.0,
        none,
        hmi,
        gw,
        Transport::Icmp {
            typ: 8,
            code: 0,
            rest: [0, 2, 0, 1],
        },
        &[0x61; 32],
    );
    s.ip(
        160.0003,
        none,
        gw,
        hmi,
        Transport::Icmp {
            typ: 0,
            code: 0,
            rest: [0, 2, 0, 1],
        },
        &[0x61; 32],
    );

    s.write(out)
}
