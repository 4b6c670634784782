use std::path::Path;
use std::sync::Arc;

use osect_pcapgen::packet::Link;
use osect_pcapgen::raw::{frame, tcp_segment, Ip4, Ip6, IpHdr, Tcp};

use super::*;
use crate::decode::{linktype, DecodeConfig, Decoder, Frame};

const DB: &str = "\
classes = win,unix,other
[mtu]
label = Ethernet
sig = 1500
[tcp:request]
label = s:unix:Linux:3.11 and newer
sig   = *:64:0:*:mss*20,10:mss,sok,ts,nop,ws:df,id+:0
sig   = *:64:0:*:mss*20,7:mss,sok,ts,nop,ws:df,id+:0
label = g:unix:Linux:2.2.x-3.x
sig   = *:64:0:*:*,*:mss,sok,ts,nop,ws:df,id+:0
label = s:!:NMap:SYN scan
sys   = @unix,@win
sig   = *:64-:0:1460:1024,0:mss::0
label = s:win:Windows:7 or 8
sig   = *:128:0:*:8192,8:mss,nop,ws,nop,nop,sok:df,id+:0
[tcp:response]
label = s:unix:Linux:3.x
sig   = *:64:0:*:mss*10,*:mss,sok,ts,nop,ws:df:0
";

fn db() -> Arc<Database> {
    Arc::new(Database::parse(DB, Path::new("test.fp")).unwrap())
}

const LINUX_OPTS: [u8; 20] = [
    2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 1, 0, 0, 0, 0, 0, 1, 3, 3, 7,
];

fn v4(src: u8, dst: u8, ttl: u8, df: bool) -> IpHdr {
    v4_id(src, dst, ttl, df, 0x1234)
}

fn v4_id(src: u8, dst: u8, ttl: u8, df: bool, id: u16) -> IpHdr {
    IpHdr::V4(Ip4 {
        src: [10, 0, 0, src],
        dst: [10, 0, 0, dst],
        tos: 0,
        id,
        flags: if df { 0x4000 } else { 0 },
        ttl,
        options: Vec::new(),
    })
}

fn tcp_frame(ip: &IpHdr, t: &Tcp) -> Vec<u8> {
    let l4 = tcp_segment(ip, t);
    let link = Link::new([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    frame(&link, ip, 6, &l4)
}

fn syn(sport: u16, seq: u32, opts: &[u8], win: u16) -> Tcp {
    Tcp {
        sport,
        dport: 80,
        seq,
        flags: 0x02,
        window: win,
        options: opts.to_vec(),
        ..Tcp::default()
    }
}

fn synack(dport: u16, ack: u32, opts: &[u8], win: u16) -> Tcp {
    Tcp {
        sport: 80,
        dport,
        seq: 99,
        ack,
        flags: 0x12,
        window: win,
        options: opts.to_vec(),
        ..Tcp::default()
    }
}

/// Runs frames (at the given seconds) through a decoder and the analyzer.
fn run(frames: &[(i64, Vec<u8>)]) -> (Vec<P0fRecord>, Arc<Stats>) {
    let stats = Arc::new(Stats::default());
    let mut dec = Decoder::new(DecodeConfig::default(), stats.clone());
    let mut p = P0f::new(db(), stats.clone());
    let mut out = Vec::new();
    for (t, f) in frames {
        let d = dec
            .decode(Frame {
                ts: Ts(t * 1_000_000),
                linktype: linktype::ETHERNET,
                data: f,
                wire_len: f.len() as u32,
            })
            .unwrap();
        out.extend(p.on_frame(&d));
    }
    (out, stats)
}

#[test]
fn linux_handshake_is_fingerprinted_once() {
    let s = tcp_frame(&v4(1, 2, 64, true), &syn(1000, 5, &LINUX_OPTS, 29200));
    let sa = tcp_frame(
        &v4_id(2, 1, 57, true, 0),
        &synack(1000, 6, &LINUX_OPTS, 14600),
    );
    let (recs, st) = run(&[(1, s.clone()), (1, s), (2, sa.clone()), (2, sa)]);
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert_eq!(
        recs[0].line(),
        "1.000000\tsyn\t10.0.0.1\t02:00:00:00:00:01\tLinux 3.11 and newer\t\
         4:64+0:0:1460:mss*20,7:mss,sok,ts,nop,ws:df,id+:0"
    );
    // The server's MAC is the SYN's destination.
    assert_eq!(
        recs[1].line(),
        "2.000000\tsyn+ack\t10.0.0.2\t02:00:00:00:00:02\tLinux 3.x\t\
         4:57+7:0:1460:mss*10,7:mss,sok,ts,nop,ws:df:0"
    );
    assert_eq!(st.p0f_syn.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[test]
fn generic_fuzzy_unknown_and_scanners() {
    // Window 1000 is no MSS multiple: only the generic Linux signature fits.
    let g = tcp_frame(&v4(1, 2, 64, true), &syn(1, 5, &LINUX_OPTS, 1000));
    // No DF and a TTL beyond the signature's: fuzzy.
    let f = tcp_frame(&v4(3, 2, 70, false), &syn(2, 5, &LINUX_OPTS, 29200));
    let u = tcp_frame(&v4(4, 2, 64, true), &syn(3, 5, &[1, 1, 1, 0], 29200));
    let n = tcp_frame(&v4(5, 2, 50, false), &syn(4, 5, &[2, 4, 5, 0xb4], 1024));
    let n_ack = tcp_frame(&v4(2, 5, 64, true), &synack(4, 6, &LINUX_OPTS, 14600));
    let (recs, _) = run(&[(1, g), (1, f), (1, u), (1, n), (2, n_ack)]);
    let os: Vec<&str> = recs.iter().map(|r| &*r.os).collect();
    assert_eq!(
        os,
        [
            "Linux 2.2.x-3.x",
            "Linux 3.11 and newer",
            "???",
            "NMap SYN scan"
        ]
    );
    // TTL 70 guesses 128, 58 hops: beyond p0f's 35, so `+?`.
    assert_eq!(
        recs[1].raw_sig(),
        "4:70+?:0:1460:mss*20,7:mss,sok,ts,nop,ws::0"
    );
    assert_eq!(
        recs[2].raw_sig(),
        "4:64+0:0:0:29200,0:nop,nop,nop,eol+0:df,id+:0"
    );
}

#[test]
fn synack_needs_its_syn_within_30_seconds_and_rst_resets() {
    let s = tcp_frame(&v4(1, 2, 64, true), &syn(1000, 5, &LINUX_OPTS, 29200));
    let sa = tcp_frame(&v4(2, 1, 64, true), &synack(1000, 6, &LINUX_OPTS, 14600));
    let stray = tcp_frame(&v4(2, 1, 64, true), &synack(1001, 6, &LINUX_OPTS, 14600));
    let (recs, _) = run(&[(0, s.clone()), (31, sa.clone()), (32, stray)]);
    assert_eq!(recs.len(), 1);
    let rst = tcp_frame(
        &v4(1, 2, 64, true),
        &Tcp {
            sport: 1000,
            dport: 80,
            seq: 6,
            flags: 0x04,
            ..Tcp::default()
        },
    );
    // Same SYN again after a reset: a new handshake, fingerprinted again.
    let (recs, _) = run(&[(0, s.clone()), (1, rst), (2, s.clone()), (3, sa)]);
    assert_eq!(recs.iter().filter(|r| !r.syn_ack).count(), 2);
    assert_eq!(recs.iter().filter(|r| r.syn_ack).count(), 1);
}

#[test]
fn ipv6_quirks_and_rendering() {
    let ip = IpHdr::V6(Ip6 {
        src: [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        dst: [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        traffic_class: 0x01,
        flow: 0x12345,
        hop_limit: 64,
        ext: Vec::new(),
    });
    let mut t = syn(7, 0, &[2, 4, 5, 0xa0, 3, 3, 15, 0], 1440 * 4);
    t.flags |= 0x08 | 0x20;
    t.urgent = 3;
    let (recs, _) = run(&[(1, tcp_frame(&ip, &t))]);
    assert_eq!(
        recs[0].line(),
        "1.000000\tsyn\tfe80:0:0:0:0:0:0:1\t02:00:00:00:00:01\t???\t\
         6:64+0:0:1440:mss*4,15:mss,ws,eol+0:ecn,flow,seq-,urgf+,pushf+,exws:0"
    );
    // Extension headers in front of TCP: p0f does not look, neither do we.
    let ip = IpHdr::V6(Ip6 {
        ext: vec![0],
        ..match ip {
            IpHdr::V6(h) => h,
            IpHdr::V4(_) => unreachable!(),
        }
    });
    let (recs, _) = run(&[(1, tcp_frame(&ip, &syn(8, 1, &[], 100)))]);
    assert!(recs.is_empty());
}

#[test]
fn malformed_options_are_quirks_not_errors() {
    for (opts, want) in [
        (
            &[2u8, 5, 5, 0xb4][..],
            "4:64+0:0:1460:mss*20,0:mss:df,id+,bad:0",
        ),
        (
            &[8, 10, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0][..],
            "ts,eol+1:df,id+,ts1-,ts2+:0",
        ),
        (&[30, 12, 0, 0][..], "?30:df,id+,bad:0"),
        (&[1, 30, 1, 0][..], "nop,?30:df,id+,bad:0"),
        (&[0, 9, 0, 9][..], "eol+3:df,id+,opt+:0"),
    ] {
        let (recs, st) = run(&[(1, tcp_frame(&v4(1, 2, 64, true), &syn(9, 5, opts, 29200)))]);
        assert!(
            recs[0].raw_sig().contains(want),
            "{opts:?}: {}",
            recs[0].raw_sig()
        );
        let weirds = st
            .analyzer_weirds
            .load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(weirds, u64::from(want.contains("bad")), "{opts:?}");
    }
}

/// Random and mutated frames through decoder and analyzer; random text through the
/// database parser: nothing may panic.
#[test]
fn random_input_never_panics() {
    let mut rng = osect_pcapgen::rng::XorShift::new(7);
    let stats = Arc::new(Stats::default());
    let mut dec = Decoder::new(
        DecodeConfig {
            verify_checksums: false,
            ..DecodeConfig::default()
        },
        stats.clone(),
    );
    let mut p = P0f::new(db(), stats.clone());
    let base = tcp_frame(&v4(1, 2, 64, true), &syn(1000, 5, &LINUX_OPTS, 29200));
    let mut buf = [0u8; 128];
    for i in 0..30_000u32 {
        let f: Vec<u8> = if i % 2 == 0 {
            let mut f = base.clone();
            for _ in 0..1 + rng.below(6) {
                let at = 14 + rng.below((f.len() - 14) as u64) as usize;
                f[at] = rng.next_u64() as u8;
            }
            f
        } else {
            let n = rng.below(128) as usize;
            rng.fill(&mut buf[..n]);
            buf[..n].to_vec()
        };
        if let Ok(d) = dec.decode(Frame {
            ts: Ts(i64::from(i)),
            linktype: if i % 4 == 1 {
                linktype::RAW
            } else {
                linktype::ETHERNET
            },
            data: &f,
            wire_len: f.len() as u32,
        }) {
            if let Some(r) = p.on_frame(&d) {
                let _ = r.line();
            }
        }
    }
    let words = [
        "[tcp:request]",
        "[tcp:response]",
        "label",
        "sig",
        "=",
        ":",
        ",",
        "*",
        "s",
        "g",
        "!",
        "64",
        "64-",
        "mss*",
        "mtu*",
        "%",
        "eol+",
        "?",
        "df",
        "\n",
        "4",
        "6",
        "+",
        "0",
        "999999",
    ];
    for _ in 0..5_000 {
        let mut t = String::new();
        for _ in 0..rng.below(40) {
            t.push_str(words[rng.below(words.len() as u64) as usize]);
        }
        let _ = Database::parse(&t, Path::new("fuzz.fp"));
    }
}
