//! Randomised robustness test: a plain `cargo test` stand-in for the cargo-fuzz target in
//! `fuzz/`. Hundreds of thousands of frames (random bytes, mutations of hand-built frames and
//! of real corpus frames, under every supported link type) go through one long-lived decoder;
//! none may panic, and the decoder's invariants must hold after each.

use std::path::Path;
use std::sync::Arc;

use super::ip::build::{ipv4, ipv4_frag, tcp, udp, v4_packet, v6_packet};
use super::ip::proto;
use super::{linktype, DecodeConfig, Decoder, Frame, Payload, Transport, MAX_LAYERS};
use crate::capture::file::CaptureFile;
use crate::stats::Stats;
use crate::ts::Ts;

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const LINKTYPES: [u32; 12] = [
    linktype::NULL,
    linktype::ETHERNET,
    linktype::RAW,
    linktype::IEEE802_11,
    linktype::LOOP,
    linktype::LINUX_SLL,
    linktype::IEEE802_11_RADIOTAP,
    linktype::IPV4,
    linktype::IPV6,
    linktype::NFLOG,
    linktype::LINUX_SLL2,
    7777,
];

const INTERESTING: [u8; 12] = [
    0, 1, 0x04, 0x06, 0x08, 0x11, 0x2f, 0x45, 0x60, 0x7f, 0x80, 0xff,
];

fn eth(et: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    f.extend_from_slice(&et.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Hand-built frames that reach every decoder path.
fn seeds() -> Vec<(u32, Vec<u8>)> {
    let a = [10, 0, 0, 1];
    let b = [10, 0, 0, 2];
    let a6 = [0x20, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
    let b6 = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    let inner = v4_packet(a, b, proto::TCP, tcp(1, 80, 0x02, b"GET / HTTP/1.1\r\n"));
    let inner6 = v6_packet(a6, b6, proto::UDP, udp(53, 53, b"dns"));
    let mut inner_eth = vec![1; 12];
    inner_eth.extend_from_slice(&[0x08, 0x00]);
    inner_eth.extend_from_slice(&inner);
    let carrier = |port: u16, hdr: &[u8], body: &[u8]| {
        let mut p = hdr.to_vec();
        p.extend_from_slice(body);
        eth(0x0800, &v4_packet(a, b, proto::UDP, udp(40000, port, &p)))
    };
    let mut gre = vec![0x30, 0, 0x08, 0x00, 0, 0, 0, 1, 0, 0, 0, 2];
    gre.extend_from_slice(&inner);
    let mut v = vec![
        (linktype::ETHERNET, eth(0x0800, &inner)),
        (linktype::ETHERNET, eth(0x86dd, &inner6)),
        (linktype::ETHERNET, eth(0x0806, &[0, 1, 8, 0, 6, 4, 0, 1])),
        (
            linktype::ETHERNET,
            eth(0x0800, &ipv4(a, b, proto::IPIP, &inner)),
        ),
        (
            linktype::ETHERNET,
            eth(0x0800, &ipv4(a, b, proto::IPV6, &inner6)),
        ),
        (
            linktype::ETHERNET,
            eth(0x0800, &ipv4(a, b, proto::GRE, &gre)),
        ),
        (
            linktype::ETHERNET,
            eth(0x0800, &ipv4_frag(a, b, proto::UDP, 9, 0, true, &[0; 64])),
        ),
        (
            linktype::ETHERNET,
            eth(0x0800, &ipv4_frag(a, b, proto::UDP, 9, 64, false, &[0; 16])),
        ),
        (
            linktype::ETHERNET,
            carrier(4789, &[8, 0, 0, 0, 0, 0, 1, 0], &inner_eth),
        ),
        (
            linktype::ETHERNET,
            carrier(6081, &[0, 0, 0x65, 0x58, 0, 0, 1, 0], &inner_eth),
        ),
        (
            linktype::ETHERNET,
            carrier(3544, &[0, 0, 1, 2, 3, 4, 5, 6], &inner6),
        ),
        (
            linktype::ETHERNET,
            carrier(2152, &[0x30, 0xff, 0, 40, 0, 0, 0, 1], &inner),
        ),
        (
            linktype::ETHERNET,
            carrier(4754, &[0, 0, 0x08, 0x00], &inner),
        ),
        (
            linktype::ETHERNET,
            carrier(5072, &[0x01, 0x00, 0x01, 4, 0, 0, 0, 0, 1, 2], &inner),
        ),
        (linktype::RAW, inner.clone()),
        (linktype::NULL, [&[2, 0, 0, 0][..], &inner].concat()),
        (
            linktype::LINUX_SLL,
            [
                &[0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 8, 0][..],
                &inner,
            ]
            .concat(),
        ),
        (
            linktype::NFLOG,
            [&[2, 0, 0, 1, 4, 0, 1, 0][..], &[44, 0, 9, 0], &inner[..40]].concat(),
        ),
    ];
    let mut wifi = vec![0x08, 0x02, 0, 0];
    wifi.extend_from_slice(&[1; 18]);
    wifi.extend_from_slice(&[0, 0, 0xaa, 0xaa, 3, 0, 0, 0, 8, 0]);
    wifi.extend_from_slice(&inner);
    v.push((linktype::IEEE802_11, wifi.clone()));
    v.push((
        linktype::IEEE802_11_RADIOTAP,
        [&[0, 0, 8, 0, 0, 0, 0, 0][..], &wifi].concat(),
    ));
    v
}

/// A few hundred frames from each corpus capture, when the shared corpus is present.
fn corpus_frames(limit_per_file: usize) -> Vec<(u32, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/zeek/cases");
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(&root) else {
        return out;
    };
    let mut dirs: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    dirs.sort();
    for d in dirs {
        let Ok(mut cf) = CaptureFile::open(&d.join("trace.pcap")) else {
            continue;
        };
        let mut n = 0;
        while let Some(Ok(p)) = cf.next_packet() {
            out.push((p.linktype, p.data.to_vec()));
            n += 1;
            if n == limit_per_file {
                break;
            }
        }
    }
    out
}

fn mutate(rng: &mut Rng, buf: &mut Vec<u8>, pool: &[(u32, Vec<u8>)]) {
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        match rng.below(8) {
            0 | 1 => {
                if !buf.is_empty() {
                    let i = rng.below(buf.len());
                    buf[i] ^= 1 << rng.below(8);
                }
            }
            2 => {
                if !buf.is_empty() {
                    let i = rng.below(buf.len());
                    buf[i] = INTERESTING[rng.below(INTERESTING.len())];
                }
            }
            3 => {
                let n = rng.below(buf.len() + 1);
                buf.truncate(n);
            }
            4 => {
                let extra = rng.below(64);
                for _ in 0..extra {
                    buf.push(rng.next() as u8);
                }
            }
            5 => {
                // Length-like fields: write a big-endian 16-bit value somewhere.
                if buf.len() >= 2 {
                    let i = rng.below(buf.len() - 1);
                    let v = [0u16, 1, 7, 8, 20, 40, 1500, 0x7fff, 0xffff][rng.below(9)];
                    buf[i..i + 2].copy_from_slice(&v.to_be_bytes());
                }
            }
            6 => {
                // Splice in a piece of another frame.
                let (_, other) = &pool[rng.below(pool.len())];
                if !other.is_empty() && !buf.is_empty() {
                    let from = rng.below(other.len());
                    let len = rng.below(other.len() - from + 1);
                    let at = rng.below(buf.len());
                    let end = (at + len).min(buf.len());
                    let n = end - at;
                    buf[at..end].copy_from_slice(&other[from..from + n]);
                }
            }
            _ => {
                let i = rng.below(buf.len() + 1);
                buf.insert(i, rng.next() as u8);
            }
        }
    }
}

fn check_invariants(d: &super::Decoded<'_>, data_len: usize) {
    assert!(d.depth() <= MAX_LAYERS);
    let n = d.layers().count();
    assert_eq!(n, d.depth());
    if matches!(d.payload, Payload::Ip) {
        assert!(n >= 1);
    }
    for (i, l) in d.layers().enumerate() {
        if l.encap.is_some() {
            assert!(i + 1 < n, "encap set on the innermost layer");
        }
        let captured = match l.transport {
            Transport::Tcp(s) => s.payload.len() + s.options.len(),
            Transport::Udp(u) => u.payload.len(),
            Transport::Icmp(i) => i.payload.len(),
            Transport::Other { payload } => payload.len(),
        };
        assert!(captured <= data_len.max(65535));
    }
}

#[test]
fn random_and_mutated_frames_never_panic() {
    let iterations: usize = std::env::var("DECODE_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let mut pool = seeds();
    pool.extend(corpus_frames(40));
    let stats = Arc::new(Stats::default());
    let cfg = DecodeConfig {
        verify_checksums: true,
        max_fragment_sets: 64,
        max_fragment_bytes: 128 * 1024,
        fragment_timeout_secs: 5,
    };
    let mut dec = Decoder::new(cfg.clone(), stats.clone());
    let mut lax = Decoder::new(
        DecodeConfig {
            verify_checksums: false,
            ..cfg
        },
        stats.clone(),
    );
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut buf = Vec::with_capacity(1 << 18);
    let mut detached = super::detached::DecodedBatch::default();
    let mut ok = 0u64;
    for i in 0..iterations {
        let lt;
        buf.clear();
        if rng.below(10) == 0 {
            lt = LINKTYPES[rng.below(LINKTYPES.len())];
            let max = if rng.below(100) == 0 { 256 * 1024 } else { 200 };
            let n = rng.below(max);
            for _ in 0..n {
                buf.push(rng.next() as u8);
            }
        } else {
            let (l, f) = &pool[rng.below(pool.len())];
            buf.extend_from_slice(f);
            mutate(&mut rng, &mut buf, &pool);
            lt = if rng.below(20) == 0 {
                LINKTYPES[rng.below(LINKTYPES.len())]
            } else {
                *l
            };
        }
        let wire = buf.len() as u32
            + if rng.below(8) == 0 {
                rng.below(2000) as u32
            } else {
                0
            };
        let frame = Frame {
            ts: Ts(i as i64 * 1000),
            linktype: lt,
            data: &buf,
            wire_len: wire,
        };
        let d = if i % 2 == 0 { &mut dec } else { &mut lax };
        if let Ok(decoded) = d.decode(frame) {
            check_invariants(&decoded, buf.len());
            if i % 4 < 2 {
                // What the packet thread gets back from the reader thread is the same decode.
                detached.clear();
                detached.push(&buf, Ok(&decoded));
                let back = detached.get(0, &buf).expect("an Ok entry");
                assert_eq!(format!("{back:?}"), format!("{decoded:?}"), "frame {i}");
            }
            ok += 1;
        }
    }
    for d in [&dec, &lax] {
        let (sets, bytes) = d.fragment_usage();
        assert!(sets <= 64 && bytes <= 128 * 1024);
    }
    // The mutations are mild enough that plenty of frames still decode.
    assert!(
        ok > iterations as u64 / 10,
        "only {ok} of {iterations} decoded"
    );
    let s = stats.snapshot();
    println!("{iterations} frames, {ok} decoded; {}", s.to_line());
}
