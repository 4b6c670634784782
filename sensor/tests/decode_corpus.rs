//! The decode stage over every capture in the shared corpus.
//!
//! Every packet of `corpus/zeek/cases/*/trace.pcap` and `corpus/osect/**/*.pcap` goes through a
//! [`Decoder`]; nothing may panic. Per case the test prints how frames were decoded (IP, non-IP,
//! held fragments, drops by reason, tunnel layers) and checks the Zeek cases against their
//! expected conn.log: every logged connection's 5-tuple must be among the decoded layers (the
//! tunnelled ones included), and cases with rows must decode an IP layer for most packets.
//!
//! Run: `cargo test -p osect-sensor --test decode_corpus -- --nocapture`

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use osect_sensor::capture::file::CaptureFile;
use osect_sensor::decode::{DecodeConfig, Decoder, DropReason, Frame, Payload, Transport};
use osect_sensor::stats::Stats;

fn shared() -> PathBuf {
    std::env::var_os("OSECT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}

/// A connection's identity without direction: protocol plus the two endpoints, sorted.
type Tuple = (String, String, String);

fn tuple(proto: &str, a: (IpAddr, u16), b: (IpAddr, u16)) -> Tuple {
    let (x, y) = (format!("{} {}", a.0, a.1), format!("{} {}", b.0, b.1));
    let (lo, hi) = if x <= y { (x, y) } else { (y, x) };
    (proto.to_string(), lo, hi)
}

#[derive(Default, Debug)]
struct Tally {
    packets: u64,
    ip: u64,
    non_ip: u64,
    held: u64,
    drops: BTreeMap<String, u64>,
    kinds: BTreeMap<String, u64>,
    max_depth: usize,
    tuples: BTreeSet<Tuple>,
    /// Packets per tuple whose checksum was good (what Zeek counts in `*_pkts`).
    counted: BTreeMap<Tuple, (u64, u64)>,
    read_error: Option<String>,
}

fn decode_file(path: &Path, verify: bool) -> (Tally, Arc<Stats>) {
    let stats = Arc::new(Stats::default());
    let cfg = DecodeConfig {
        verify_checksums: verify,
        ..DecodeConfig::default()
    };
    let mut dec = Decoder::new(cfg, stats.clone());
    let mut t = Tally::default();
    let mut cf = match CaptureFile::open(path) {
        Ok(c) => c,
        Err(e) => {
            t.read_error = Some(e.to_string());
            return (t, stats);
        }
    };
    while let Some(next) = cf.next_packet() {
        let raw = match next {
            Ok(r) => r,
            Err(e) => {
                t.read_error = Some(e.to_string());
                break;
            }
        };
        t.packets += 1;
        let frame = Frame {
            ts: raw.ts,
            linktype: raw.linktype,
            data: raw.data,
            wire_len: raw.wire_len,
        };
        match dec.decode(frame) {
            Ok(d) => match d.payload {
                Payload::Ip => {
                    t.ip += 1;
                    t.max_depth = t.max_depth.max(d.depth());
                    for l in d.layers() {
                        if let Some(k) = l.encap {
                            *t.kinds.entry(format!("{k:?}")).or_default() += 1;
                        }
                        let tu = match l.transport {
                            Transport::Tcp(s) => {
                                tuple("tcp", (l.src, s.src_port), (l.dst, s.dst_port))
                            }
                            Transport::Udp(u) => {
                                tuple("udp", (l.src, u.src_port), (l.dst, u.dst_port))
                            }
                            Transport::Icmp(_) => tuple("icmp", (l.src, 0), (l.dst, 0)),
                            Transport::Other { .. } => {
                                tuple("unknown_transport", (l.src, 0), (l.dst, 0))
                            }
                        };
                        let ok = match l.transport {
                            Transport::Tcp(s) => s.checksum_ok,
                            Transport::Udp(u) => u.checksum_ok,
                            Transport::Icmp(i) => i.checksum_ok,
                            Transport::Other { .. } => true,
                        };
                        if ok {
                            let e = t.counted.entry(tu.clone()).or_default();
                            e.0 += 1;
                            e.1 += u64::from(l.ip_len);
                        }
                        t.tuples.insert(tu);
                    }
                }
                Payload::NonIp { .. } => t.non_ip += 1,
                Payload::FragmentHeld => t.held += 1,
            },
            Err(r) => *t.drops.entry(format!("{r:?}")).or_default() += 1,
        }
    }
    (t, stats)
}

/// The conn.log rows' 5-tuples with their packets (orig_pkts + resp_pkts) and IP bytes.
fn expected_tuples(conn_log: &str) -> Vec<(Tuple, (u64, u64))> {
    let mut fields: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for line in conn_log.lines() {
        if let Some(f) = line.strip_prefix("#fields\t") {
            fields = f.split('\t').collect();
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let get = |name: &str| {
            fields
                .iter()
                .position(|f| *f == name)
                .and_then(|i| cols.get(i).copied())
        };
        let (Some(oh), Some(op), Some(rh), Some(rp), Some(proto)) = (
            get("id.orig_h"),
            get("id.orig_p"),
            get("id.resp_h"),
            get("id.resp_p"),
            get("proto"),
        ) else {
            continue;
        };
        let (Ok(oh), Ok(rh)) = (oh.parse::<IpAddr>(), rh.parse::<IpAddr>()) else {
            continue;
        };
        let (op, rp) = if proto == "icmp" {
            (0, 0)
        } else {
            (op.parse().unwrap_or(0), rp.parse().unwrap_or(0))
        };
        let pkts = |n: &str| get(n).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        out.push((
            tuple(proto, (oh, op), (rh, rp)),
            (
                pkts("orig_pkts") + pkts("resp_pkts"),
                pkts("orig_ip_bytes") + pkts("resp_ip_bytes"),
            ),
        ));
    }
    out
}

fn pcaps_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            pcaps_under(&p, out);
        } else if p.extension().is_some_and(|e| e == "pcap" || e == "pcapng") {
            out.push(p);
        }
    }
}

fn summary(t: &Tally) -> String {
    let drops: Vec<String> = t.drops.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let kinds: Vec<String> = t.kinds.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "pkts={} ip={} non_ip={} held={} drops[{}] tunnels[{}] max_depth={}{}",
        t.packets,
        t.ip,
        t.non_ip,
        t.held,
        drops.join(" "),
        kinds.join(" "),
        t.max_depth,
        t.read_error
            .as_ref()
            .map(|e| format!(" read_error={e}"))
            .unwrap_or_default()
    )
}

#[test]
fn zeek_cases_decode_to_the_logged_connections() {
    let cases = shared().join("corpus/zeek/cases");
    let Ok(rd) = fs::read_dir(&cases) else {
        eprintln!("corpus not found at {}; skipping", cases.display());
        return;
    };
    let mut dirs: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut failures = Vec::new();
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let case_json = fs::read_to_string(dir.join("case.json")).unwrap_or_default();
        let verify = !case_json.contains("-C (ignore checksums)");
        let (t, stats) = decode_file(&dir.join("trace.pcap"), verify);
        let s = stats.snapshot();
        let frags = if s.fragments_seen > 0 {
            format!(
                " frags seen={} reassembled={} dropped={}",
                s.fragments_seen, s.fragments_reassembled, s.fragments_dropped
            )
        } else {
            String::new()
        };
        println!("{name:40} {}{frags}", summary(&t));
        let Ok(conn) = fs::read_to_string(dir.join("conn.log")) else {
            continue;
        };
        let expected = expected_tuples(&conn);
        let missing: Vec<&Tuple> = expected
            .iter()
            .map(|e| &e.0)
            .filter(|e| !t.tuples.contains(*e))
            .collect();
        // Packet counts per connection: informative only, since the flow stage decides which
        // packets Zeek counts, but a decapsulation mistake shows up here first.
        let mut want: BTreeMap<&Tuple, (u64, u64)> = BTreeMap::new();
        for (tu, (n, b)) in &expected {
            let e = want.entry(tu).or_default();
            e.0 += n;
            e.1 += b;
        }
        let mut matched = 0;
        let total = want.len();
        for (tu, n) in want {
            if t.counted.get(tu).copied().unwrap_or((0, 0)) == n {
                matched += 1;
            }
            let got = t.counted.get(tu).copied().unwrap_or((0, 0));
            if got != n {
                println!("    note: {tu:?} zeek (pkts, ip bytes)={n:?} decoded={got:?}");
            }
        }
        println!("    {matched}/{total} conn.log connections match in packets and IP bytes");
        if !missing.is_empty() {
            failures.push(format!(
                "{name}: {} of {} conn.log rows not decoded, e.g. {:?}",
                missing.len(),
                expected.len(),
                &missing[..missing.len().min(3)]
            ));
        }
        // Non-IP frames and held fragments are legitimate; drops should be rare.
        let dropped: u64 = t.drops.values().sum();
        if !expected.is_empty() && (t.ip + t.non_ip + t.held) * 10 < t.packets * 9 {
            failures.push(format!(
                "{name}: only {} of {} packets decoded ({} dropped)",
                t.ip, t.packets, dropped
            ));
        }
    }
    for f in &failures {
        println!("FAIL {f}");
    }
    assert!(failures.is_empty(), "{} cases failed", failures.len());
}

#[test]
fn osect_captures_decode_without_panic() {
    let mut files = Vec::new();
    pcaps_under(&shared().join("corpus/osect"), &mut files);
    for f in &files {
        let (t, stats) = decode_file(f, false);
        let rel = f.strip_prefix(shared()).unwrap_or(f);
        println!("{:80} {}", rel.display(), summary(&t));
        let s = stats.snapshot();
        assert_eq!(s.non_ip_frames, t.non_ip);
        let dropped: u64 = t.drops.values().sum();
        assert!(dropped <= t.packets);
    }
    let _ = DropReason::Malformed;
}
