//! TCP handshakes for passive OS fingerprinting tests: SYNs and SYN+ACKs with the option
//! layouts, window sizes and TTLs of common systems, over IPv4 and IPv6, mutated with every
//! quirk p0f knows (ECN, IP ID and DF combinations, "must be zero" bits, flow labels, zero
//! sequence numbers, stray ACK numbers, urgent pointers and flags, PUSH, timestamp oddities,
//! trailing garbage after end-of-options, excessive window scaling, malformed options), plus
//! retransmitted and repeated handshakes, answers too late or without a SYN, and SYNs with
//! payload or IPv4 options. Deterministic for a given seed.

use std::io::{self, Write};

use crate::packet::{Link, TPID_8021Q};
use crate::raw::{frame, tcp_segment, Ip4, Ip6, IpHdr, Tcp};
use crate::rng::XorShift as Rng;
use crate::writer::PcapWriter;

const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;
const URG: u8 = 0x20;
const ECE: u8 = 0x40;
const CWR: u8 = 0x80;

/// An option of a layout.
#[derive(Clone, Copy, Debug)]
enum O {
    Mss,
    Ws,
    Sok,
    Ts,
    Nop,
    /// End of options (the rest of the 4-byte padding follows).
    Eol,
    Sack,
    /// Unknown kind with a total length.
    Unknown(u8, u8),
}

/// A system's SYN or SYN+ACK habits.
struct Profile {
    ttl: u8,
    df: bool,
    /// IP ID zero (Linux SYN+ACKs with DF).
    zero_id: bool,
    layout: &'static [O],
    /// Window: `Err(n)` = MSS times n, `Ok(w)` fixed.
    win: Result<u16, u16>,
    scale: u8,
}

const fn p(ttl: u8, df: bool, layout: &'static [O], win: Result<u16, u16>, scale: u8) -> Profile {
    Profile {
        ttl,
        df,
        zero_id: false,
        layout,
        win,
        scale,
    }
}

use O::*;

const LINUX: &[O] = &[Mss, Sok, Ts, Nop, Ws];
const WIN7: &[O] = &[Mss, Nop, Ws, Nop, Nop, Sok];
const WINXP: &[O] = &[Mss, Nop, Nop, Sok];
const MAC: &[O] = &[Mss, Nop, Ws, Nop, Nop, Ts, Sok, Eol];
const FREEBSD: &[O] = &[Mss, Nop, Ws, Sok, Ts];
const OPENBSD: &[O] = &[Mss, Nop, Nop, Sok, Nop, Ws, Nop, Nop, Ts];
const SOLARIS: &[O] = &[Mss, Nop, Ws, Nop, Nop, Sok];
const MSS_ONLY: &[O] = &[Mss];
const NONE: &[O] = &[];
const ODD: &[O] = &[Mss, Unknown(30, 4), Nop, Ws, Sack];
const NOPS: &[O] = &[
    Mss, Nop, Nop, Nop, Nop, Nop, Nop, Nop, Nop, Nop, Nop, Nop, Ws,
];

const CLIENTS: &[Profile] = &[
    p(64, true, LINUX, Err(20), 7),
    p(64, true, LINUX, Err(20), 10),
    p(64, true, LINUX, Err(10), 7),
    p(64, true, LINUX, Err(44), 1),
    p(64, true, LINUX, Err(4), 6),
    p(64, true, LINUX, Ok(29200), 7),
    p(128, true, WIN7, Ok(8192), 8),
    p(128, true, WIN7, Ok(64240), 8),
    p(128, true, WINXP, Ok(65535), 0),
    p(128, true, WINXP, Ok(16384), 0),
    p(64, true, MAC, Ok(65535), 6),
    p(64, true, MAC, Ok(65535), 4),
    p(64, true, MAC, Ok(65535), 2),
    p(64, true, FREEBSD, Ok(65535), 6),
    p(64, true, FREEBSD, Ok(65535), 2),
    p(64, true, OPENBSD, Ok(16384), 3),
    p(64, true, SOLARIS, Err(34), 0),
    p(64, false, MSS_ONLY, Ok(1024), 0),
    p(64, false, MSS_ONLY, Ok(4096), 0),
    p(255, false, MSS_ONLY, Ok(4128), 0),
    p(64, true, NONE, Ok(8192), 0),
    p(64, true, ODD, Ok(5840), 2),
    p(64, true, NOPS, Ok(14600), 2),
    p(32, false, WINXP, Ok(8760), 0),
];

const SERVERS: &[Profile] = &[
    Profile {
        zero_id: true,
        ..p(64, true, LINUX, Err(10), 7)
    },
    Profile {
        zero_id: true,
        ..p(64, true, &[Mss, Nop, Nop, Sok, Nop, Ws], Err(10), 7)
    },
    Profile {
        zero_id: true,
        ..p(64, true, &[Mss], Err(4), 0)
    },
    Profile {
        zero_id: true,
        ..p(64, true, &[Mss, Sok, Ts], Err(4), 0)
    },
    p(128, true, WIN7, Ok(8192), 8),
    p(128, true, &[Mss, Nop, Nop, Sok], Ok(65535), 0),
    p(64, true, FREEBSD, Ok(65535), 6),
    p(64, true, MAC, Ok(65535), 5),
    p(255, true, &[Mss], Ok(4128), 0),
    p(60, false, &[Mss, Nop, Ws], Ok(32768), 1),
    p(64, true, &[Mss, Nop, Nop, Ts, Nop, Ws], Err(10), 9),
    p(64, false, &[Nop, Nop, Ts, Mss], Ok(5792), 0),
];

const MSS_CHOICES: &[u16] = &[
    1460, 1460, 1460, 1440, 1380, 1360, 1452, 536, 1220, 8960, 65495, 90,
];

/// Encodes a layout; `eol_tail` is appended after an Eol (garbage makes `opt+`).
fn encode(
    layout: &[O],
    mss: u16,
    scale: u8,
    ts1: u32,
    ts2: u32,
    eol_tail: u8,
    bad_len: bool,
) -> Vec<u8> {
    let mut o = Vec::new();
    for (i, item) in layout.iter().enumerate() {
        match item {
            Mss => {
                o.extend_from_slice(&[2, if bad_len && i == 0 { 5 } else { 4 }]);
                o.extend_from_slice(&mss.to_be_bytes());
            }
            Ws => o.extend_from_slice(&[3, 3, scale]),
            Sok => o.extend_from_slice(&[4, 2]),
            Ts => {
                o.extend_from_slice(&[8, 10]);
                o.extend_from_slice(&ts1.to_be_bytes());
                o.extend_from_slice(&ts2.to_be_bytes());
            }
            Nop => o.push(1),
            Eol => {
                o.push(0);
                while o.len() % 4 != 0 {
                    o.push(eol_tail);
                }
            }
            Sack => {
                o.extend_from_slice(&[5, 10]);
                o.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]);
            }
            Unknown(k, len) => {
                o.push(*k);
                o.push(*len);
                o.resize(o.len() + usize::from(len.saturating_sub(2)), 0);
            }
        }
    }
    while o.len() % 4 != 0 {
        o.push(0);
    }
    o.truncate(40);
    o
}

/// Per-packet oddities, drawn independently.
#[derive(Clone, Copy, Debug, Default)]
struct Mutations {
    ip_ecn: bool,
    tcp_ecn: bool,
    ns_bit: bool,
    mbz: bool,
    zero_id_no_df: bool,
    flow: bool,
    zero_seq: bool,
    stray_ack: bool,
    urg_ptr: bool,
    urg_flag: bool,
    push: bool,
    zero_ts1: bool,
    nz_ts2: bool,
    eol_garbage: bool,
    exws: bool,
    bad_len: bool,
    truncated_opt: bool,
    payload: bool,
    ip_options: bool,
}

fn mutations(rng: &mut Rng) -> Mutations {
    let mut hit = |per_mille: u64| rng.below(1000) < per_mille;
    Mutations {
        ip_ecn: hit(30),
        tcp_ecn: hit(50),
        ns_bit: hit(15),
        mbz: hit(20),
        zero_id_no_df: hit(30),
        flow: hit(300),
        zero_seq: hit(20),
        stray_ack: hit(20),
        urg_ptr: hit(20),
        urg_flag: hit(15),
        push: hit(20),
        zero_ts1: hit(30),
        nz_ts2: hit(30),
        eol_garbage: hit(40),
        exws: hit(20),
        bad_len: hit(20),
        truncated_opt: hit(20),
        payload: hit(20),
        ip_options: hit(20),
    }
}

struct Side {
    v6: bool,
    addr4: [u8; 4],
    addr6: [u8; 16],
    mac: [u8; 6],
}

#[allow(clippy::too_many_arguments)]
fn packet(
    rng: &mut Rng,
    from: &Side,
    to: &Side,
    prof: &Profile,
    m: &Mutations,
    hops: u8,
    mss: u16,
    t: Tcp,
    syn_only: bool,
    vlan: Option<u16>,
) -> Vec<u8> {
    let ttl = prof.ttl.saturating_sub(hops).max(1);
    let ip = if from.v6 {
        IpHdr::V6(Ip6 {
            src: from.addr6,
            dst: to.addr6,
            traffic_class: if m.ip_ecn { 0x02 } else { 0 },
            flow: if m.flow {
                rng.range(1, 0xfffff) as u32
            } else {
                0
            },
            hop_limit: ttl,
            ext: Vec::new(),
        })
    } else {
        let mut flags = if prof.df && !m.zero_id_no_df {
            0x4000
        } else {
            0
        };
        if m.mbz {
            flags |= 0x8000;
        }
        let id = if m.zero_id_no_df || prof.zero_id {
            0
        } else {
            rng.range(1, 0xffff) as u16
        };
        IpHdr::V4(Ip4 {
            src: from.addr4,
            dst: to.addr4,
            tos: if m.ip_ecn { 0x01 } else { 0 },
            id,
            flags,
            ttl,
            // Record-route-like option padded to 4, or 8 bytes of NOPs + EOL.
            options: if m.ip_options {
                if rng.below(2) == 0 {
                    vec![1, 1, 1, 0]
                } else {
                    vec![7, 7, 4, 0, 0, 0, 0, 0]
                }
            } else {
                Vec::new()
            },
        })
    };
    let scale = if m.exws { 15 } else { prof.scale };
    let ts1 = if m.zero_ts1 {
        0
    } else {
        rng.range(1, u32::MAX as u64) as u32
    };
    let ts2 = if m.nz_ts2 || !syn_only {
        rng.range(1, u32::MAX as u64) as u32
    } else {
        0
    };
    let mut options = encode(
        prof.layout,
        mss,
        scale,
        ts1,
        ts2,
        if m.eol_garbage { 0x5a } else { 0 },
        m.bad_len,
    );
    if m.truncated_opt && options.len() >= 4 {
        // An option whose length runs past the header.
        let n = options.len();
        options[n - 4] = 30;
        options[n - 3] = 12;
    }
    let win = match prof.win {
        Ok(w) => w,
        Err(n) => mss.saturating_mul(n),
    };
    let mut flags = t.flags;
    if m.tcp_ecn {
        flags |= if syn_only { ECE | CWR } else { ECE };
    }
    if m.urg_flag {
        flags |= URG;
    }
    if m.push {
        flags |= PSH;
    }
    let seg = Tcp {
        seq: if m.zero_seq { 0 } else { t.seq },
        ack: if m.stray_ack && syn_only {
            rng.range(1, u32::MAX as u64) as u32
        } else {
            t.ack
        },
        flags,
        reserved: if m.ns_bit { 1 } else { 0 },
        window: win,
        urgent: if m.urg_ptr || m.urg_flag { 7 } else { 0 },
        options,
        payload: if m.payload {
            b"hello".to_vec()
        } else {
            Vec::new()
        },
        ..t
    };
    let l4 = tcp_segment(&ip, &seg);
    let mut link = Link::new(from.mac, to.mac);
    if let Some(v) = vlan {
        link = link.with_vlans(&[(TPID_8021Q, v)]);
    }
    frame(&link, &ip, 6, &l4)
}

/// Writes `flows` handshakes (and their retransmissions and oddities); returns packets written.
/// With `vlans` false the frames that would carry an 802.1Q tag are written untagged and
/// everything else is byte-identical (for tools that cannot read tagged frames).
pub fn write_handshakes<W: Write>(out: W, flows: u32, seed: u64, vlans: bool) -> io::Result<u64> {
    let mut w = PcapWriter::new(out)?;
    let mut rng = Rng::new(seed);
    let mut t_us: u64 = 1_717_200_000_000_000;
    let mut pending: Vec<(u64, Vec<u8>)> = Vec::new();
    for i in 0..flows {
        t_us += 20_000 + rng.below(30_000);
        // Late answers due by now go out first (at the current time, keeping time monotonic).
        let mut i_due = 0;
        while i_due < pending.len() {
            if pending[i_due].0 <= t_us {
                let (_, f) = pending.remove(i_due);
                w.write(t_us, &f)?;
            } else {
                i_due += 1;
            }
        }
        let v6 = rng.below(5) == 0;
        let cli = Side {
            v6,
            addr4: [10, 1, (i >> 8) as u8, i as u8],
            addr6: [
                0xfd,
                0,
                0,
                0,
                0,
                0,
                0,
                1,
                0,
                0,
                0,
                0,
                0,
                0,
                (i >> 8) as u8,
                i as u8,
            ],
            mac: [2, 0, 0, 1, (i >> 8) as u8, i as u8],
        };
        let srv_n = rng.below(64) as u8;
        let srv = Side {
            v6,
            addr4: [192, 168, 7, srv_n],
            addr6: [0xfd, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, srv_n],
            mac: [2, 0, 0, 2, 0, srv_n],
        };
        let vlan = (rng.below(10) == 0 && vlans).then_some(100);
        let cp = &CLIENTS[rng.below(CLIENTS.len() as u64) as usize];
        let sp = &SERVERS[rng.below(SERVERS.len() as u64) as usize];
        let mss = MSS_CHOICES[rng.below(MSS_CHOICES.len() as u64) as usize];
        let smss = if rng.below(4) == 0 {
            MSS_CHOICES[rng.below(MSS_CHOICES.len() as u64) as usize]
        } else {
            mss.min(1460)
        };
        let hops = match rng.below(10) {
            0..=5 => 0,
            6 | 7 => rng.below(20) as u8,
            _ => rng.below(60) as u8,
        };
        let sport = 20_000u16.wrapping_add(i as u16);
        let dport = [80u16, 443, 502, 102, 44818, 22][rng.below(6) as usize];
        let seq = rng.next_u64() as u32 | 1;
        let cm = mutations(&mut rng);
        let sm = mutations(&mut rng);
        let syn = Tcp {
            sport,
            dport,
            seq,
            flags: SYN,
            ..Tcp::default()
        };
        let syn_frame = packet(
            &mut rng,
            &cli,
            &srv,
            cp,
            &cm,
            hops,
            mss,
            syn.clone(),
            true,
            vlan,
        );
        let event = rng.below(100);
        if event < 3 {
            // A SYN+ACK without a SYN: p0f pairs nothing with it.
        } else {
            w.write(t_us, &syn_frame)?;
        }
        if (3..8).contains(&event) {
            // Retransmitted SYN (same sequence number).
            w.write(t_us + 1_000, &syn_frame)?;
        }
        let ack = seq.wrapping_add(1);
        let synack_seq = rng.next_u64() as u32;
        let sa = Tcp {
            sport: dport,
            dport: sport,
            seq: synack_seq,
            ack,
            flags: SYN | ACK,
            ..Tcp::default()
        };
        let sa_frame = packet(
            &mut rng,
            &srv,
            &cli,
            sp,
            &sm,
            hops / 2,
            smss,
            sa,
            false,
            vlan,
        );
        match event {
            8..=11 => {} // no answer
            // A slow answer (25 s: still inside the 30 s pairing window).
            12..=13 => pending.push((t_us + 25_000_000, sa_frame)),
            _ => {
                w.write(t_us + 2_000, &sa_frame)?;
                if (14..17).contains(&event) {
                    // Repeated SYN+ACK.
                    w.write(t_us + 3_000, &sa_frame)?;
                }
            }
        }
        if (17..20).contains(&event) {
            // Reset, then the same ports again with a new SYN (fingerprinted again).
            let rst = Tcp {
                sport,
                dport,
                seq: ack,
                flags: RST,
                ..Tcp::default()
            };
            let f = packet(
                &mut rng,
                &cli,
                &srv,
                cp,
                &Mutations::default(),
                hops,
                mss,
                rst,
                false,
                vlan,
            );
            w.write(t_us + 4_000, &f)?;
            let again = Tcp {
                seq: seq.wrapping_add(100_000),
                ..syn.clone()
            };
            let f = packet(&mut rng, &cli, &srv, cp, &cm, hops, mss, again, true, vlan);
            w.write(t_us + 5_000, &f)?;
        }
        if (20..23).contains(&event) {
            // A new SYN with another sequence number on the same ports.
            let again = Tcp {
                seq: seq.wrapping_add(7),
                ..syn.clone()
            };
            let f = packet(&mut rng, &cli, &srv, cp, &cm, hops, mss, again, true, vlan);
            w.write(t_us + 6_000, &f)?;
        }
    }
    for (due, f) in pending {
        w.write(due.max(t_us + 1), &f)?;
    }
    let n = w.packets();
    w.finish()?;
    Ok(n)
}
