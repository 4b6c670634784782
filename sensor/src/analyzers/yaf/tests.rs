use std::sync::Arc;

use osect_pcapgen::packet::{Link, TPID_8021Q};
use osect_pcapgen::raw::{frame, Ip4, IpHdr};

use super::*;
use crate::decode::{linktype, DecodeConfig, Decoder, Frame};

fn ip(a: u8, b: u8) -> IpHdr {
    IpHdr::V4(Ip4 {
        src: [10, 0, 0, a],
        dst: [10, 0, 0, b],
        tos: 0,
        id: 1,
        flags: 0,
        ttl: 64,
        options: Vec::new(),
    })
}

/// (milliseconds, src, dst, proto, payload length, vlan)
type Pkt = (i64, u8, u8, u8, usize, Option<u16>);

fn run(cfg: YafConfig, pkts: &[Pkt], end_ms: Option<i64>) -> (Vec<YafRecord>, Arc<Stats>) {
    let stats = Arc::new(Stats::default());
    let mut dec = Decoder::new(DecodeConfig::default(), stats.clone());
    let mut t = YafTable::new(cfg, stats.clone());
    let mut out = Vec::new();
    for &(ms, a, b, proto, len, vlan) in pkts {
        let mut link = Link::new([2, 0, 0, 0, 0, a], [2, 0, 0, 0, 0, b]);
        if let Some(v) = vlan {
            link = link.with_vlans(&[(TPID_8021Q, v)]);
        }
        let f = frame(&link, &ip(a, b), proto, &vec![0u8; len]);
        let d = dec
            .decode(Frame {
                ts: Ts(ms * 1000 + 250),
                linktype: linktype::ETHERNET,
                data: &f,
                wire_len: f.len() as u32,
            })
            .unwrap();
        t.advance(d.ts, &mut |r| out.push(r));
        t.on_frame(&d, &mut |r| out.push(r));
    }
    match end_ms {
        Some(ms) => t.advance(Ts(ms * 1000), &mut |r| out.push(r)),
        None => t.finish(&mut |r| out.push(r)),
    }
    (out, stats)
}

#[test]
fn biflow_row_renders_like_the_reference() {
    let (recs, _) = run(
        YafConfig::default(),
        &[
            (1_711_000_221_719, 1, 2, 50, 100, Some(100)),
            (1_711_000_221_760, 2, 1, 50, 60, Some(100)),
            (1_711_000_222_000, 1, 2, 50, 100, Some(100)),
        ],
        None,
    );
    assert_eq!(recs.len(), 1);
    assert_eq!(
        recs[0].line(),
        "1711000221.719\t2024-03-21 05:50:21.719\t2024-03-21 05:50:22.000\t0.281\t0.041\tesp\t\
         10.0.0.1\t0\t10.0.0.2\t0\t02:00:00:00:00:01\t02:00:00:00:00:02\t0\t0\t0\t0\t\
         00000000\t00000000\t064\t064\t2\t240\t1\t80\teof"
    );
}

#[test]
fn idle_active_and_vlan_keys() {
    let cfg = YafConfig {
        idle_timeout_secs: 300,
        active_timeout_secs: 1800,
        ..YafConfig::default()
    };
    let (recs, _) = run(
        cfg,
        &[
            // Idle: 300 s of silence is not yet idle, 300.001 s is.
            (0, 1, 2, 89, 10, None),
            (300_000, 1, 2, 89, 10, None),
            (600_001, 1, 2, 89, 10, None),
            // Another VLAN is another flow.
            (600_002, 1, 2, 89, 10, Some(7)),
            // Active: every 100 s from 700 s; the packet past 1800 s starts a new flow.
            (700_000, 3, 4, 112, 10, None),
        ],
        Some(800_000),
    );
    let got: Vec<(u8, i64, u64, &str)> = recs
        .iter()
        .map(|r| (r.proto, r.start_ms, r.pkt, r.reason.name()))
        .collect();
    assert_eq!(got, [(89, 0, 2, "idle")]);

    let mut pkts: Vec<Pkt> = (0..20)
        .map(|k| (k * 100_000, 3, 4, 112, 10, None))
        .collect();
    pkts.push((1_900_000, 4, 3, 112, 10, None));
    let (recs, _) = run(cfg_default(), &pkts, None);
    let got: Vec<(i64, i64, u64, u64, &str)> = recs
        .iter()
        .map(|r| (r.start_ms, r.end_ms, r.pkt, r.rpkt, r.reason.name()))
        .collect();
    assert_eq!(
        got,
        [
            (0, 1_800_000, 19, 0, "active"),
            (1_900_000, 1_900_000, 1, 1, "eof")
        ]
    );
    // The continuation's forward direction is its own first packet's.
    assert_eq!(recs[1].sip.to_string(), "10.0.0.3");
}

fn cfg_default() -> YafConfig {
    YafConfig::default()
}

#[test]
fn full_table_evicts_the_longest_idle_with_rsrc() {
    let cfg = YafConfig {
        max_flows: 2,
        ..YafConfig::default()
    };
    let (recs, st) = run(
        cfg,
        &[
            (0, 1, 2, 50, 10, None),
            (10, 3, 4, 50, 10, None),
            (20, 1, 2, 50, 10, None),
            (30, 5, 6, 50, 10, None),
        ],
        None,
    );
    let got: Vec<(String, &str)> = recs
        .iter()
        .map(|r| (r.sip.to_string(), r.reason.name()))
        .collect();
    assert_eq!(
        got,
        [
            ("10.0.0.3".to_string(), "rsrc"),
            ("10.0.0.1".to_string(), "eof"),
            ("10.0.0.5".to_string(), "eof")
        ]
    );
    assert_eq!(
        st.yaf_flows_evicted
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn transports_of_conn_log_and_protocol_zero_are_not_rows() {
    let (recs, st) = run(
        YafConfig::default(),
        &[(0, 1, 2, 0, 8, None), (1, 1, 2, 253, 8, None)],
        None,
    );
    assert_eq!(recs.len(), 1);
    assert_eq!(
        recs[0].line().split('\t').nth(5),
        Some("Unassigned Protocol(253)")
    );
    assert_eq!(
        st.yaf_hopopt_dropped
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn protocol_names_follow_the_reference_table() {
    for (p, n) in [
        (2, "igmp"),
        (13, "argus (deprecated)"),
        (50, "esp"),
        (61, "Unassigned Protocol(61)"),
        (84, "iptm"),
        (89, "ospfigp"),
        (103, "pim"),
        (112, "vrrp"),
        (124, "isis over ipv4"),
        (132, "sctp"),
        (135, "mobility header"),
        (136, "udplite"),
        (143, "ethernet"),
        (144, "Unassigned Protocol(144)"),
        (252, "Unassigned Protocol(252)"),
        (254, "Unassigned Protocol(254)"),
        (255, "reserved"),
    ] {
        assert_eq!(proto_name(p), n, "{p}");
    }
}
