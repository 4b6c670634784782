//! Detection on its own thread (`detect/stage.rs`, `pipeline/detect_thread.rs`): alerts keep
//! their place among the packet thread's interval boundaries and counters.

use std::path::{Path, PathBuf};

use osect_sensor::config::Config;
use osect_sensor::pipeline;

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/sample.pcap")
}

/// `cfg` with `rules` (rule file text) written into `dir` and loaded.
fn with_rules(mut cfg: Config, dir: &Path, rules: &str) -> Config {
    let path = dir.join("test.rules");
    std::fs::write(&path, rules).unwrap();
    cfg.detect.rules = vec![path.display().to_string()];
    cfg
}

/// The sample's Modbus/TCP polls (every 2 s for over two minutes) alert in every minute; the
/// whole capture is one reader batch, so the minute boundaries fall in the middle of a batch's
/// detection items. Every alert must land in the interval folder of its packet's minute.
#[test]
fn alerts_land_in_their_packets_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = with_rules(
        Config::default(),
        tmp.path(),
        "alert tcp any any -> any 502 (msg:\"modbus poll\"; flow:to_server; dsize:>0; sid:1;)\n",
    );
    let out = tmp.path().join("out");
    let report = pipeline::replay(&[sample()], &out, &cfg, true).unwrap();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(out.join("logs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 3, "intervals: {dirs:?}");
    let mut total = 0;
    let mut per_dir = Vec::new();
    for d in &dirs {
        // realtime-2024-06-01-00:01:00 -> 2024-06-01T00:01
        let name = d.file_name().unwrap().to_string_lossy().into_owned();
        let stamp = name.strip_prefix("realtime-").unwrap();
        let minute = format!("{}T{}", &stamp[..10], &stamp[11..16]);
        let eve = std::fs::read_to_string(d.join("eve.json")).unwrap_or_default();
        let mut n = 0;
        for line in eve.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let ts = v["timestamp"].as_str().unwrap();
            assert!(
                ts.starts_with(&minute),
                "alert at {ts} written into interval {name}"
            );
            n += 1;
        }
        per_dir.push(n);
        total += n;
    }
    assert!(
        per_dir.iter().all(|&n| n > 0),
        "alerts per interval: {per_dir:?}"
    );
    assert_eq!(total as u64, report.stats.detect_alerts);
    assert_eq!(report.stats.packets_read, 464);
}

/// The same capture with and without rules writes the same protocol logs: detection reads the
/// analyzers' transactions, it never changes what they log.
#[test]
fn rules_do_not_change_the_other_logs() {
    let tmp = tempfile::tempdir().unwrap();
    // Fixed connection uids, so that both runs name connections alike.
    let mut plain_cfg = Config::default();
    plain_cfg.conn.uid_seed = Some(1);
    let plain = tmp.path().join("plain");
    pipeline::replay(&[sample()], &plain, &plain_cfg, false).unwrap();
    let mut cfg = with_rules(
        plain_cfg.clone(),
        tmp.path(),
        concat!(
            "alert http any any -> any any (msg:\"uri\"; http.uri; content:\"/\"; sid:1;)\n",
            "alert dns any any -> any any (msg:\"query\"; dns.query; content:\".\"; sid:2;)\n",
            "alert tcp any any -> any any (msg:\"payload\"; dsize:>0; sid:3;)\n",
        ),
    );
    cfg.detect.midstream = true;
    let with = tmp.path().join("with");
    let report = pipeline::replay(&[sample()], &with, &cfg, false).unwrap();
    assert!(report.stats.detect_alerts > 0);
    let body = |p: &Path| -> String {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with("#open") && !l.starts_with("#close"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for e in std::fs::read_dir(&plain).unwrap().flatten() {
        let name = e.file_name();
        if name == "eve.json" {
            continue;
        }
        assert_eq!(
            body(&e.path()),
            body(&with.join(&name)),
            "{} differs with rules loaded",
            name.to_string_lossy()
        );
    }
}

/// A capture of many reader batches: each goes to the detection thread with its work and must
/// come back to the reader (which has only a few), or the replay stops short. Run on a thread
/// with a deadline, so that a lost batch fails here instead of hanging the suite.
#[test]
fn batches_come_back_from_the_detection_thread() {
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("many-batches.pcap");
    let opts = osect_pcapgen::bench::BenchOpts {
        packets: 60_000,
        flows: 6_000,
        concurrent: false,
        seed: 1,
        pps: 50_000,
        active: 1000,
    };
    let file = std::io::BufWriter::new(std::fs::File::create(&pcap).unwrap());
    osect_pcapgen::bench::write_bench(file, &opts).unwrap();
    // Several times the reader's window buffers of about half a megabyte.
    assert!(std::fs::metadata(&pcap).unwrap().len() > 8 << 20);
    let cfg = with_rules(
        Config::default(),
        tmp.path(),
        concat!(
            "alert dns any any -> any any (msg:\"plant\"; dns.query; content:\"plant.local\"; endswith; sid:1;)\n",
            "alert http any any -> any any (msg:\"tags\"; http.uri; content:\"/api/v1/tags\"; sid:2;)\n",
        ),
    );
    let out = tmp.path().join("out");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(pipeline::replay(&[pcap], &out, &cfg, false).map(|r| r.stats));
    });
    let stats = rx
        .recv_timeout(std::time::Duration::from_secs(300))
        .expect("replay with rules did not finish: a capture batch was not given back")
        .unwrap();
    assert_eq!(stats.packets_read, 60_000);
    assert!(
        stats.detect_alerts > 1000,
        "alerts: {}",
        stats.detect_alerts
    );
}
