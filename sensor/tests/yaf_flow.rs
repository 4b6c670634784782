//! yaf_flow.log checked field by field against flows computed here from tshark's dissection.
//!
//! Captures: `osect-pcapgen other-ip` (OSPFv2/v3, VRRP on a VLAN, ESP on a VLAN and over IPv6
//! with a routing header, PIM, IGMP with IPv4 options, SCTP, GRE opened and not, EtherIP,
//! UDP-Lite, IPv6 hop-by-hop / destination options / no next header, protocol 0 and an
//! unassigned number, a flow idle past 300 s, one alive past 1800 s) and the reference's
//! `udplite.pcap`. tshark supplies, per frame, time, MACs, VLAN, outer addresses, final IP
//! protocol and IP length; the test builds YAF's biflows from that (key VLAN + protocol +
//! address pair, idle 300 s, active 1800 s, end of file) and compares every column.
//!
//! Run: `cargo test -p osect-sensor --test yaf_flow -- --nocapture`

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

struct Pkt {
    ms: i64,
    src_mac: String,
    dst_mac: String,
    vlan: u16,
    src: String,
    dst: String,
    proto: u8,
    len: u64,
}

fn tshark_packets(cap: &Path) -> Vec<Pkt> {
    let fields = [
        "frame.time_epoch",
        "eth.src",
        "eth.dst",
        "vlan.id",
        "ip.src",
        "ip.dst",
        "ipv6.src",
        "ipv6.dst",
        "ip.proto",
        "ip.len",
        "ipv6.plen",
        "ipv6.nxt",
        "ipv6.hopopts.nxt",
        "ipv6.routing.nxt",
        "ipv6.dstopts.nxt",
        "ipv6.fraghdr.nxt",
    ];
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"])
        .arg(cap)
        .args(["-T", "fields", "-E", "occurrence=f"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd
        .output()
        .expect("running tshark (Debian package tshark)");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v = Vec::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let c: Vec<&str> = l.split('\t').collect();
        let num = |i: usize| c.get(i).and_then(|s| s.parse::<u64>().ok());
        let (s, frac) = c[0].split_once('.').unwrap();
        let ms = s.parse::<i64>().unwrap() * 1000 + frac[..3].parse::<i64>().unwrap();
        let (src, dst, proto, len) = if !c[4].is_empty() {
            (c[4], c[5], num(8).unwrap() as u8, num(9).unwrap())
        } else if !c[6].is_empty() {
            // Follow the extension-header chain to the transport protocol.
            let mut p = num(11).unwrap();
            for _ in 0..4 {
                let next = match p {
                    0 => num(12),
                    43 => num(13),
                    60 => num(14),
                    44 => num(15),
                    _ => None,
                };
                match next {
                    Some(n) => p = n,
                    None => break,
                }
            }
            (c[6], c[7], p as u8, num(10).unwrap() + 40)
        } else {
            continue;
        };
        v.push(Pkt {
            ms,
            src_mac: c[1].to_string(),
            dst_mac: c[2].to_string(),
            vlan: num(3).unwrap_or(0) as u16,
            src: src.to_string(),
            dst: dst.to_string(),
            proto,
            len,
        });
    }
    v
}

#[derive(Clone, Debug)]
struct Flow {
    start: i64,
    end: i64,
    rtt: i64,
    p: u8,
    sip: String,
    dip: String,
    smac: String,
    dmac: String,
    tag: u16,
    rtag: u16,
    pkt: u64,
    oct: u64,
    rpkt: u64,
    roct: u64,
}

fn name(p: u8) -> String {
    match p {
        2 => "igmp".into(),
        47 => "gre".into(),
        50 => "esp".into(),
        59 => "ipv6-nonxt".into(),
        89 => "ospfigp".into(),
        97 => "etherip".into(),
        103 => "pim".into(),
        112 => "vrrp".into(),
        132 => "sctp".into(),
        136 => "udplite".into(),
        253 => "Unassigned Protocol(253)".into(),
        other => format!("proto {other} (not in this test's table)"),
    }
}

/// The columns the test can state independently, keyed for comparison.
fn expected_rows(pkts: &[Pkt]) -> Vec<Vec<String>> {
    const IDLE: i64 = 300_000;
    const ACTIVE: i64 = 1_800_000;
    let mut open: BTreeMap<(u16, u8, String, String), Flow> = BTreeMap::new();
    let mut done: Vec<(Flow, &str)> = Vec::new();
    for p in pkts {
        if matches!(p.proto, 1 | 6 | 17 | 58) {
            continue;
        }
        let now = p.ms;
        // Idle flows end as time passes.
        let idle: Vec<_> = open
            .iter()
            .filter(|(_, f)| now - f.end > IDLE)
            .map(|(k, _)| k.clone())
            .collect();
        for k in idle {
            done.push((open.remove(&k).unwrap(), "idle"));
        }
        let (a, b) = if p.src <= p.dst {
            (p.src.clone(), p.dst.clone())
        } else {
            (p.dst.clone(), p.src.clone())
        };
        let key = (p.vlan, p.proto, a, b);
        if let Some(f) = open.get(&key) {
            if now - f.start > ACTIVE {
                done.push((open.remove(&key).unwrap(), "active"));
            }
        }
        let f = open.entry(key).or_insert_with(|| Flow {
            start: now,
            end: now,
            rtt: 0,
            p: p.proto,
            sip: p.src.clone(),
            dip: p.dst.clone(),
            smac: p.src_mac.clone(),
            dmac: p.dst_mac.clone(),
            tag: p.vlan,
            rtag: 0,
            pkt: 0,
            oct: 0,
            rpkt: 0,
            roct: 0,
        });
        if p.src == f.sip {
            f.pkt += 1;
            f.oct += p.len;
        } else {
            if f.rpkt == 0 {
                f.rtt = now - f.start;
                f.rtag = p.vlan;
            }
            f.rpkt += 1;
            f.roct += p.len;
        }
        f.end = now;
    }
    done.extend(open.into_values().map(|f| (f, "eof")));
    let s3 = |ms: i64| format!("{}.{:03}", ms / 1000, ms % 1000);
    done.into_iter()
        .filter(|(f, _)| f.p != 0)
        .map(|(f, why)| {
            vec![
                s3(f.start),
                s3(f.end - f.start),
                s3(f.rtt),
                name(f.p),
                f.sip,
                f.dip,
                f.smac,
                f.dmac,
                format!("{:03x}", f.tag),
                format!("{:03x}", f.rtag),
                f.pkt.to_string(),
                f.oct.to_string(),
                f.rpkt.to_string(),
                f.roct.to_string(),
                why.to_string(),
            ]
        })
        .collect()
}

/// Picks the same columns from a yaf_flow.log row, checking the fixed ones on the way.
fn actual_row(line: &str) -> Vec<String> {
    let c: Vec<&str> = line.split('\t').collect();
    assert_eq!(c.len(), 25, "{line}");
    // start-time is the ts column as a UTC date; end-time is start + duration.
    let ms = |s: &str| -> i64 {
        let (a, b) = s.split_once('.').unwrap();
        a.parse::<i64>().unwrap() * 1000 + b.parse::<i64>().unwrap()
    };
    let date = |t: i64| {
        chrono::DateTime::from_timestamp_millis(t)
            .unwrap()
            .format("%Y-%m-%d %H:%M:%S%.3f")
            .to_string()
    };
    assert_eq!(c[1], date(ms(c[0])), "{line}");
    assert_eq!(c[2], date(ms(c[0]) + ms(c[3])), "{line}");
    assert_eq!(&c[7..8], ["0"], "{line}");
    assert_eq!(&c[9..10], ["0"], "{line}");
    assert_eq!(
        &c[12..18],
        ["0", "0", "0", "0", "00000000", "00000000"],
        "{line}"
    );
    [0, 3, 4, 5, 6, 8, 10, 11, 18, 19, 20, 21, 22, 23, 24]
        .iter()
        .map(|&i| c[i].to_string())
        .collect()
}

fn replay(cap: &Path, out: &Path) -> String {
    let st = Command::new(env!("CARGO_BIN_EXE_osect-sensor"))
        .arg("replay")
        .arg(cap)
        .arg("--out")
        .arg(out)
        .output()
        .expect("running osect-sensor");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    fs::read_to_string(out.join("yaf_flow.log")).unwrap()
}

fn check(cap: &Path, out: &Path) -> usize {
    let text = replay(cap, out);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(osect_sensor::analyzers::yaf::HEADER_LINE),
        "header line"
    );
    let mut got: Vec<Vec<String>> = lines.map(actual_row).collect();
    let mut want = expected_rows(&tshark_packets(cap));
    got.sort();
    want.sort();
    println!("{}: {} flows", cap.display(), got.len());
    for r in &got {
        println!("  {}", r.join(" "));
    }
    assert_eq!(
        got,
        want,
        "{}: sensor rows vs tshark-derived rows",
        cap.display()
    );
    got.len()
}

#[test]
fn yaf_flows_match_tshark() {
    let tmp = tempfile::tempdir().unwrap();
    let gen = tmp.path().join("other-ip.pcap");
    osect_pcapgen::other_ip::write_other_ip(
        std::io::BufWriter::new(fs::File::create(&gen).unwrap()),
        1,
    )
    .unwrap();
    let n = check(&gen, &tmp.path().join("gen"));
    assert!(n >= 18, "{n} flows");
    let text = fs::read_to_string(tmp.path().join("gen/yaf_flow.log")).unwrap();
    for reason in ["\tidle", "\tactive", "\teof"] {
        assert!(text.contains(reason), "no flow ended with {reason}");
    }
    for proto in [
        "ospfigp",
        "vrrp",
        "esp",
        "pim",
        "igmp",
        "sctp",
        "udplite",
        "gre",
        "etherip",
        "ipv6-nonxt",
    ] {
        assert!(text.contains(&format!("\t{proto}\t")), "no {proto} flow");
    }
    assert!(
        !text.contains("\thopopt\t"),
        "protocol 0 rows are dropped like the reference"
    );

    let udplite = shared()
        .join("corpus/osect/OsecT/osect_sensor/sh_tests/ot_tools/yaf/data/init/udplite.pcap");
    let n = check(&udplite, &tmp.path().join("udplite"));
    assert!(n >= 1);
}
