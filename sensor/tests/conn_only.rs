//! `[analyzers] enabled = false` makes a conn.log-only sensor: the same conn rows as with
//! the analyzers on (the service column aside, which then names only tunnels) and no other
//! log gets a row. Capture: the Zeek corpus' `wikipedia-default` (DNS and HTTP).
//!
//! Run: `cargo test -p osect-sensor --test conn_only`

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TUNNEL_SERVICES: &[&str] = &["teredo", "ayiya", "vxlan", "geneve", "gtpv1"];

fn trace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/corpus/zeek/cases/wikipedia-default/trace.pcap")
}

fn replay(tmp: &Path, name: &str, toml: &str) -> PathBuf {
    let config = tmp.join(format!("{name}.toml"));
    fs::write(&config, toml).unwrap();
    let out = tmp.join(name);
    let st = Command::new(env!("CARGO_BIN_EXE_osect-sensor"))
        .arg("replay")
        .arg(trace())
        .arg("--out")
        .arg(&out)
        .args(["--seed", "1", "--config"])
        .arg(&config)
        .status()
        .unwrap();
    assert!(st.success(), "replay {name}: {st}");
    out
}

/// Data rows (not `#` lines) of every log file in `dir`, by file name.
fn rows(dir: &Path) -> Vec<(String, Vec<String>)> {
    let mut logs = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if !p.is_file() {
            continue;
        }
        let text = String::from_utf8_lossy(&fs::read(&p).unwrap()).into_owned();
        let data = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect();
        logs.push((p.file_name().unwrap().to_string_lossy().into_owned(), data));
    }
    logs.sort();
    logs
}

fn service_col(dir: &Path) -> usize {
    let text = fs::read_to_string(dir.join("conn.log")).unwrap();
    let fields = text.lines().find(|l| l.starts_with("#fields")).unwrap();
    fields.split('\t').position(|f| f == "service").unwrap() - 1
}

/// conn.log rows without the service column, sorted, and the service column's values.
fn conn_rows(dir: &Path, logs: &[(String, Vec<String>)]) -> (Vec<String>, Vec<String>) {
    let col = service_col(dir);
    let conn = &logs.iter().find(|(n, _)| n == "conn.log").unwrap().1;
    let mut rest = Vec::new();
    let mut services = Vec::new();
    for r in conn {
        let mut cells: Vec<&str> = r.split('\t').collect();
        services.push(cells.remove(col).to_string());
        rest.push(cells.join("\t"));
    }
    rest.sort();
    (rest, services)
}

#[test]
fn analyzers_off_writes_conn_log_only() {
    if !trace().exists() {
        eprintln!("skipped: {} missing", trace().display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let on = replay(tmp.path(), "on", "");
    let off = replay(tmp.path(), "off", "[analyzers]\nenabled = false\n");
    let on_logs = rows(&on);
    let off_logs = rows(&off);

    // The capture exercises the analyzers at all.
    for name in ["dns.log", "http.log"] {
        let n = on_logs
            .iter()
            .find(|(f, _)| f == name)
            .map_or(0, |l| l.1.len());
        assert!(n > 0, "analyzers on: {name} has no rows");
    }
    for (name, data) in &off_logs {
        if name != "conn.log" {
            assert!(
                data.is_empty(),
                "analyzers off: {name} has {} rows",
                data.len()
            );
        }
    }

    let (on_conn, on_services) = conn_rows(&on, &on_logs);
    let (off_conn, off_services) = conn_rows(&off, &off_logs);
    assert!(!off_conn.is_empty());
    assert_eq!(
        on_conn, off_conn,
        "conn rows differ beyond the service column"
    );
    assert!(on_services.iter().any(|s| s.contains("http")));
    for s in &off_services {
        assert!(
            s == "-" || s.split(',').all(|x| TUNNEL_SERVICES.contains(&x)),
            "analyzers off: service {s}"
        );
    }
}
