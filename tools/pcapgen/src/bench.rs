//! Synthetic benchmark captures: exactly `packets` packets spread over exactly `flows` flows.
//!
//! Every flow is described statelessly by `(seed, index)`: its shape, addresses and payload
//! sizes come from splitmix64, and the sequence numbers of its j-th packet have a closed form.
//! That lets the normal mode keep only a small window of active flows and the concurrent mode
//! emit "first packet of every flow, then the rest" for a million flows without storing them.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr};

use crate::packet::{self, Ip, Link, Transport, ACK, FIN, PSH, RST, SYN};
use crate::rng::{splitmix64, XorShift};
use crate::writer::PcapWriter;

/// 2024-06-03 08:00:00 UTC: a Monday morning shift start.
pub const BENCH_START_US: u64 = 1_717_401_600 * 1_000_000;

const MSS_OPT: [u8; 4] = [2, 4, 0x05, 0xb4];
const CLIENTS: u64 = 4096;
const SERVERS: u64 = 256;
const TCP_PORTS: [u16; 8] = [502, 502, 502, 80, 443, 44818, 102, 20000];
const UDP_PORTS: [u16; 8] = [53, 53, 123, 161, 2222, 47808, 514, 2222];

#[derive(Clone, Debug)]
pub struct BenchOpts {
    pub packets: u64,
    pub flows: u64,
    pub concurrent: bool,
    pub seed: u64,
    /// Average packet rate of the packet timestamps.
    pub pps: u64,
    /// Normal mode: how many flows are interleaved at any moment.
    pub active: usize,
}

#[derive(Clone, Debug, Default)]
pub struct BenchStats {
    pub packets: u64,
    pub flows: u64,
    pub tcp_flows: u64,
    pub udp_flows: u64,
    pub bytes: u64,
    pub first_us: u64,
    pub last_us: u64,
}

/// Everything about flow `i`, derived from the seed.
struct Flow {
    index: u64,
    tcp: bool,
    k: u32,
    client: Ipv4Addr,
    cport: u16,
    server: Ipv4Addr,
    sport: u16,
    isn_c: u32,
    isn_s: u32,
    lc: u32,
    ls: u32,
    /// HTTP response body length (port 80 flows only).
    body: usize,
}

fn mac_of(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x00, o[0], o[1], o[2], o[3]]
}

fn http_request(i: u64) -> String {
    format!("GET /api/v1/tags?id={i:08} HTTP/1.1\r\nHost: scada.plant.local\r\nUser-Agent: hmi-poller/2.1\r\nAccept: */*\r\n\r\n")
}

fn http_response(body_len: usize) -> String {
    let body = "x".repeat(body_len);
    format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {body_len}\r\n\r\n{body}")
}

fn dns_name(i: u64) -> String {
    format!("tag{i:08}.plant.local")
}

fn dns_message(i: u64, response: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(64);
    v.extend_from_slice(&(i as u16).to_be_bytes());
    v.extend_from_slice(if response {
        &[0x81, 0x80]
    } else {
        &[0x01, 0x00]
    });
    v.extend_from_slice(&[0, 1, 0, u8::from(response), 0, 0, 0, 0]);
    for label in dns_name(i).split('.') {
        v.push(label.len() as u8);
        v.extend_from_slice(label.as_bytes());
    }
    v.extend_from_slice(&[0, 0, 1, 0, 1]);
    if response {
        v.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 168, 50]);
        v.push((i % 250) as u8 + 1);
    }
    v
}

impl Flow {
    fn new(seed: u64, i: u64, k: u32) -> Flow {
        let h = splitmix64(seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let h2 = splitmix64(h);
        let tcp = (h & 0xff) < 166;
        let c = i % CLIENTS;
        let client = Ipv4Addr::new(10, 20, (c / 200) as u8, (c % 200) as u8 + 10);
        let cport = 1024 + ((i / CLIENTS) % 64000) as u16;
        let sidx = (h >> 8) % SERVERS;
        let server = Ipv4Addr::new(192, 168, 100 + (sidx / 100) as u8, (sidx % 100) as u8 + 10);
        let pi = ((h >> 16) & 7) as usize;
        let sport = if tcp { TCP_PORTS[pi] } else { UDP_PORTS[pi] };
        let body = 20 + ((h2 >> 24) % 600) as usize;
        let (lc, ls) = match (tcp, sport) {
            (true, 80) => (
                http_request(i).len() as u32,
                http_response(body).len() as u32,
            ),
            (false, 53) => (
                dns_message(i, false).len() as u32,
                dns_message(i, true).len() as u32,
            ),
            _ => (12 + (h2 % 180) as u32, 12 + ((h2 >> 16) % 400) as u32),
        };
        Flow {
            index: i,
            tcp,
            k,
            client,
            cport,
            server,
            sport,
            isn_c: (h2 >> 32) as u32,
            isn_s: h2 as u32,
            lc,
            ls,
            body,
        }
    }
}

/// Packet count of flow `i`: pairs of flows share `2 * base` packets with a random split, and
/// the remainder is spread over the first flows, so the total is exactly `packets`.
fn flow_len(o: &BenchOpts, i: u64) -> u32 {
    let base = o.packets / o.flows;
    let rem = o.packets % o.flows;
    let extra = u64::from(i < rem);
    let paired = !(o.flows % 2 == 1 && i == o.flows - 1);
    let k = if paired {
        let d = splitmix64(o.seed.wrapping_add(0x5151) ^ (i / 2)) % (base / 2 + 1);
        if i % 2 == 0 {
            base + d
        } else {
            base - d
        }
    } else {
        base
    };
    (k + extra) as u32
}

struct Gen<W: Write> {
    w: PcapWriter<W>,
    buf: Vec<u8>,
    payload: Vec<u8>,
    pool: Vec<u8>,
    rng: XorShift,
    now_us: u64,
    mean_us: u64,
    stats: BenchStats,
}

impl<W: Write> Gen<W> {
    fn tick(&mut self) {
        // Uniform jitter around the mean inter-packet gap; 0 gaps happen, as on real links.
        self.now_us += self.rng.below(2 * self.mean_us + 1);
    }

    fn fill(&mut self, f: &Flow, from_client: bool, len: u32) {
        self.payload.clear();
        if len == 0 {
            return;
        }
        let h2 = splitmix64(splitmix64(self.stats.packets) ^ f.index);
        match (f.tcp, f.sport) {
            (true, 80) => {
                if from_client {
                    self.payload
                        .extend_from_slice(http_request(f.index).as_bytes());
                } else {
                    self.payload
                        .extend_from_slice(http_response(f.body).as_bytes());
                }
            }
            (false, 53) => self
                .payload
                .extend_from_slice(&dns_message(f.index, !from_client)),
            _ => {
                let off = (h2 % (self.pool.len() as u64 - 1024)) as usize;
                self.payload
                    .extend_from_slice(&self.pool[off..off + len as usize]);
            }
        }
    }

    /// Emits packet `j` of flow `f`.
    fn emit(&mut self, f: &Flow, j: u32) -> io::Result<()> {
        self.tick();
        let (from_client, flags, seq, ack, len) = if f.tcp {
            tcp_packet(f, j)
        } else {
            udp_packet(f, j)
        };
        self.fill(f, from_client, len);
        let (src, dst, sp, dp) = if from_client {
            (f.client, f.server, f.cport, f.sport)
        } else {
            (f.server, f.client, f.sport, f.cport)
        };
        let link = Link::new(mac_of(src), mac_of(dst));
        let ip = Ip {
            src: IpAddr::V4(src),
            dst: IpAddr::V4(dst),
            ttl: if from_client { 128 } else { 64 },
            id: (f.index as u16).wrapping_add(j as u16),
            df: f.tcp,
        };
        let tr = if f.tcp {
            let options: &[u8] = if flags & SYN != 0 { &MSS_OPT } else { &[] };
            Transport::Tcp {
                sport: sp,
                dport: dp,
                seq,
                ack,
                flags,
                window: if from_client { 64240 } else { 29200 },
                options,
            }
        } else {
            Transport::Udp {
                sport: sp,
                dport: dp,
            }
        };
        packet::build(&mut self.buf, &link, &ip, &tr, &self.payload);
        self.w.write(self.now_us, &self.buf)?;
        if self.stats.packets == 0 {
            self.stats.first_us = self.now_us;
        }
        self.stats.packets += 1;
        self.stats.bytes += self.buf.len() as u64;
        self.stats.last_us = self.now_us;
        Ok(())
    }

    fn count_flow(&mut self, f: &Flow) {
        self.stats.flows += 1;
        if f.tcp {
            self.stats.tcp_flows += 1;
        } else {
            self.stats.udp_flows += 1;
        }
    }
}

/// (from_client, flags, seq, ack, payload length) of TCP packet `j`; see the module comment.
fn tcp_packet(f: &Flow, j: u32) -> (bool, u8, u32, u32, u32) {
    let c1 = f.isn_c.wrapping_add(1);
    let s1 = f.isn_s.wrapping_add(1);
    match (f.k, j) {
        (_, 0) => (true, SYN, f.isn_c, 0, 0),
        (2, _) => (false, RST | ACK, 0, c1, 0),
        (_, 1) => (false, SYN | ACK, f.isn_s, c1, 0),
        (_, 2) => (true, ACK, c1, s1, 0),
        _ => {
            let m = if f.k >= 6 { f.k - 6 } else { f.k - 3 };
            let d = j - 3;
            if d < m {
                let (cb, sb) = (d.div_ceil(2), d / 2);
                let cs = c1.wrapping_add(cb.wrapping_mul(f.lc));
                let ss = s1.wrapping_add(sb.wrapping_mul(f.ls));
                if d % 2 == 0 {
                    (true, PSH | ACK, cs, ss, f.lc)
                } else {
                    (false, PSH | ACK, ss, cs, f.ls)
                }
            } else {
                let cfin = c1.wrapping_add(m.div_ceil(2).wrapping_mul(f.lc));
                let sfin = s1.wrapping_add((m / 2).wrapping_mul(f.ls));
                match d - m {
                    0 => (true, FIN | ACK, cfin, sfin, 0),
                    1 => (false, FIN | ACK, sfin, cfin.wrapping_add(1), 0),
                    _ => (true, ACK, cfin.wrapping_add(1), sfin.wrapping_add(1), 0),
                }
            }
        }
    }
}

fn udp_packet(f: &Flow, j: u32) -> (bool, u8, u32, u32, u32) {
    if j % 2 == 0 {
        (true, 0, 0, 0, f.lc)
    } else {
        (false, 0, 0, 0, f.ls)
    }
}

/// Writes the benchmark capture. Requires `packets >= flows > 0`.
pub fn write_bench<W: Write>(out: W, o: &BenchOpts) -> io::Result<BenchStats> {
    if o.flows == 0 || o.packets < o.flows {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "need packets >= flows > 0",
        ));
    }
    let mut pool = vec![0u8; 64 * 1024];
    XorShift::new(o.seed ^ 0xabcdef).fill(&mut pool);
    let mut g = Gen {
        w: PcapWriter::new(out)?,
        buf: Vec::with_capacity(2048),
        payload: Vec::with_capacity(2048),
        pool,
        rng: XorShift::new(o.seed),
        now_us: BENCH_START_US,
        mean_us: (1_000_000 / o.pps.max(1)).max(1),
        stats: BenchStats::default(),
    };

    if o.concurrent {
        // Phase 1 opens every flow; phase 2 sends the remaining packets round by round, so
        // the number of open flows peaks at `flows` right after phase 1.
        let mut max_k = 0;
        for i in 0..o.flows {
            let f = Flow::new(o.seed, i, flow_len(o, i));
            max_k = max_k.max(f.k);
            g.count_flow(&f);
            g.emit(&f, 0)?;
        }
        for j in 1..max_k {
            for i in 0..o.flows {
                let k = flow_len(o, i);
                if k > j {
                    let f = Flow::new(o.seed, i, k);
                    g.emit(&f, j)?;
                }
            }
        }
    } else {
        // A window of interleaved flows; a finished flow is replaced by the next new one.
        let mut next = 0u64;
        let mut window: Vec<(Flow, u32)> = Vec::with_capacity(o.active.max(1));
        while window.len() < o.active.max(1) && next < o.flows {
            window.push((Flow::new(o.seed, next, flow_len(o, next)), 0));
            next += 1;
        }
        while !window.is_empty() {
            let slot = g.rng.below(window.len() as u64) as usize;
            let (f, j) = &mut window[slot];
            if *j == 0 {
                g.count_flow(f);
            }
            g.emit(f, *j)?;
            *j += 1;
            if *j >= f.k {
                if next < o.flows {
                    window[slot] = (Flow::new(o.seed, next, flow_len(o, next)), 0);
                    next += 1;
                } else {
                    window.swap_remove(slot);
                }
            }
        }
    }
    let stats = g.stats.clone();
    g.w.finish()?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_packet_and_flow_counts() {
        for concurrent in [false, true] {
            let o = BenchOpts {
                packets: 10_007,
                flows: 1_001,
                concurrent,
                seed: 3,
                pps: 50_000,
                active: 50,
            };
            let st = write_bench(Vec::new(), &o).unwrap();
            assert_eq!(st.packets, 10_007);
            assert_eq!(st.flows, 1_001);
        }
    }

    #[test]
    fn http_payload_matches_declared_length() {
        for i in 0..200 {
            let f = Flow::new(9, i, 10);
            if f.tcp && f.sport == 80 {
                let mut g = Gen {
                    w: PcapWriter::new(Vec::new()).unwrap(),
                    buf: Vec::new(),
                    payload: Vec::new(),
                    pool: vec![0; 4096],
                    rng: XorShift::new(1),
                    now_us: 0,
                    mean_us: 1,
                    stats: BenchStats::default(),
                };
                g.fill(&f, false, f.ls);
                assert_eq!(g.payload.len() as u32, f.ls);
            }
        }
    }
}
