//! dns.log conformance against the Zeek corpus (`shared/corpus/zeek`, see its README).
//!
//! Every case with a dns.log expectation (full `dns.log` or `dns.cut.tsv`) is replayed with
//! `--seed 1` and scored field by field by `common::zeeklog`: columns by name over those both
//! logs have (Zeek 9 adds `opcode`/`opcode_name`, the product adds `pkts`), `ts` excluded, rows
//! as a multiset, uids through one bijection per case (built together with the case's conn.log
//! when it has one, so a dns.log uid must name the same connection as in conn.log).
//!
//! `pkts`: the product merges records identical in every column but `ts` within 60 s into one
//! row counting them (reference §2.2); Zeek writes each record. The comparison therefore
//! expands an actual row with `pkts=N` into N identical rows before scoring. This keeps the
//! row count comparable and still checks the merge: a wrong `pkts` shows up as missing or
//! extra rows. (Comparing distinct rows only would hide a wrong count.)
//!
//! Run: `cargo test -p osect-sensor --test dns_conformance -- --nocapture`
//! One case: `ZEEK_CASE=dns-notify cargo test -p osect-sensor --test dns_conformance -- --nocapture`

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::zeeklog::{compare_case, CompareOptions, LogPair, LogScore, Table};

const MIN_OVERALL_PERCENT: f64 = 95.0;
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
const WORST_CASES: usize = 5;
const EXAMPLES_PER_CASE: usize = 8;

/// The product's dns.log columns, in order.
const PRODUCT_FIELDS: &str = "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto trans_id rtt \
     query qclass qclass_name qtype qtype_name rcode rcode_name AA TC RD RA Z answers TTLs \
     rejected pkts";

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/zeek")
}

fn read_text(path: &Path) -> Option<String> {
    fs::read(path)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// True if case.json's `zeek_flags` mention `-C` (Zeek ran without checksum validation).
fn ignores_checksums(case_json: &str) -> bool {
    let Some(start) = case_json.find("\"zeek_flags\"") else {
        return false;
    };
    let rest = &case_json[start..];
    let (Some(open), Some(close)) = (rest.find('['), rest.find(']')) else {
        return false;
    };
    open < close
        && rest[open..close]
            .split('"')
            .any(|s| s == "-C" || s.starts_with("-C "))
}

/// Replays one trace into `tmp/out` (Zeek-like settings); returns "ok" or what went wrong.
fn run_sensor(trace: &Path, tmp: &Path, ignore_checksums: bool) -> (PathBuf, String) {
    let out_dir = tmp.join("out");
    let config = tmp.join("zeek.toml");
    let toml = format!(
        "[conn]\nlocal_nets = [\"private\"]\n\n[decode]\nverify_checksums = {}\n",
        !ignore_checksums
    );
    if let Err(e) = fs::write(&config, toml) {
        return (out_dir, format!("cannot write config: {e}"));
    }
    let stderr_path = tmp.join("stderr.txt");
    let Ok(stderr) = fs::File::create(&stderr_path) else {
        return (out_dir, "cannot create stderr file".to_string());
    };
    let child = Command::new(env!("CARGO_BIN_EXE_osect-sensor"))
        .arg("replay")
        .arg(trace)
        .arg("--out")
        .arg(&out_dir)
        .args(["--seed", "1", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return (out_dir, format!("spawn failed: {e}")),
    };
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => break "ok".to_string(),
            Ok(Some(st)) => break format!("exit {:?}", st.code()),
            Ok(None) if started.elapsed() > RUN_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                break "timeout".to_string();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => break format!("wait failed: {e}"),
        }
    };
    if status != "ok" {
        let err = read_text(&stderr_path).unwrap_or_default();
        let first = err.lines().next().unwrap_or("").trim().to_string();
        return (out_dir, format!("{status}: {first}"));
    }
    (out_dir, status)
}

/// Repeats every row `pkts` times (see the module comment). A missing or bad count is 1.
fn expand_pkts(t: &mut Table) {
    let Some(col) = t.col("pkts") else {
        return;
    };
    let mut rows = Vec::with_capacity(t.rows.len());
    for row in t.rows.drain(..) {
        let n = row
            .get(col)
            .and_then(|c| c.as_deref())
            .and_then(|c| c.parse::<usize>().ok())
            .filter(|&n| n >= 1)
            .unwrap_or(1);
        for _ in 1..n {
            rows.push(row.clone());
        }
        rows.push(row);
    }
    t.rows = rows;
}

fn actual_table(path: &Path, what: &str) -> Table {
    match read_text(path) {
        Some(text) => {
            let mut t = Table::parse_zeek(&text);
            t.canonify();
            t
        }
        None => Table {
            problems: vec![format!("no {what} written")],
            ..Table::default()
        },
    }
}

struct CaseResult {
    case: String,
    run: String,
    score: LogScore,
    header_ok: bool,
}

fn report(results: &[CaseResult]) -> (String, f64) {
    let mut r = String::new();
    let _ = writeln!(
        r,
        "Zeek conformance, dns.log: common columns except ts; rows with pkts=N count N times"
    );
    let _ = writeln!(r);
    let _ = writeln!(
        r,
        "{:<30} {:<13} {:>5} {:>5} {:>13} {:>7}  run",
        "case", "expectation", "exp", "act", "agreed/total", "%"
    );
    let (mut agreed, mut total) = (0, 0);
    let mut by_field: BTreeMap<String, usize> = BTreeMap::new();
    for c in results {
        let s = &c.score;
        let _ = writeln!(
            r,
            "{:<30} {:<13} {:>5} {:>5} {:>13} {:>6.1}%  {}",
            c.case,
            s.name,
            s.expected_rows,
            s.actual_rows,
            format!("{}/{}", s.agreed, s.total),
            s.percent(),
            c.run
        );
        agreed += s.agreed;
        total += s.total;
        for m in &s.mismatches {
            *by_field.entry(m.field.clone()).or_default() += 1;
        }
    }
    let overall = if total == 0 {
        0.0
    } else {
        100.0 * agreed as f64 / total as f64
    };
    let _ = writeln!(r);
    let _ = writeln!(
        r,
        "OVERALL {agreed}/{total} fields = {overall:.2}% (target >= {MIN_OVERALL_PERCENT}%) over {} cases",
        results.len()
    );
    if !by_field.is_empty() {
        let list: Vec<String> = by_field.iter().map(|(f, n)| format!("{f}={n}")).collect();
        let _ = writeln!(
            r,
            "mismatches by field ('*' = unmatched row): {}",
            list.join(" ")
        );
    }
    let mut worst: Vec<&CaseResult> = results
        .iter()
        .filter(|c| c.score.agreed < c.score.total)
        .collect();
    worst.sort_by(|a, b| a.score.percent().total_cmp(&b.score.percent()));
    if !worst.is_empty() {
        let _ = writeln!(r, "\nWorst {} cases:", worst.len().min(WORST_CASES));
    }
    for c in worst.iter().take(WORST_CASES) {
        let _ = writeln!(r, "* {} {:.1}% (run: {})", c.case, c.score.percent(), c.run);
        for n in c.score.notes.iter().take(4) {
            let _ = writeln!(r, "    note: {n}");
        }
        for m in c.score.mismatches.iter().take(EXAMPLES_PER_CASE) {
            let _ = writeln!(
                r,
                "    {} {}: expected {:?} | actual {:?}",
                m.row, m.field, m.expected, m.actual
            );
        }
    }
    (r, overall)
}

#[test]
fn zeek_conformance_dns_log() {
    let cases_dir = corpus_dir().join("cases");
    assert!(
        cases_dir.is_dir(),
        "Zeek conformance corpus not found at {} (<repo>/../shared/corpus/zeek/cases)",
        cases_dir.display()
    );
    let only = std::env::var("ZEEK_CASE").ok().filter(|s| !s.is_empty());
    let mut dirs: Vec<PathBuf> = fs::read_dir(&cases_dir)
        .expect("read corpus cases dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();

    let mut results = Vec::new();
    for dir in dirs {
        let case = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if only.as_deref().is_some_and(|o| o != case) {
            continue;
        }
        let (name, expected) = if let Some(t) = read_text(&dir.join("dns.log")) {
            ("dns.log", Table::parse_zeek(&t))
        } else if let Some(t) = read_text(&dir.join("dns.cut.tsv")) {
            ("dns.cut.tsv", Table::parse_tsv(&t))
        } else {
            continue;
        };
        let ignore = read_text(&dir.join("case.json")).is_some_and(|j| ignores_checksums(&j));
        let tmp = tempfile::tempdir().expect("tempdir");
        let (out, run) = run_sensor(&dir.join("trace.pcap"), tmp.path(), ignore);
        let mut actual = actual_table(&out.join("dns.log"), "dns.log");
        let header_ok = actual.fields.join(" ") == PRODUCT_FIELDS
            && actual.meta("path") == Some("dns")
            && actual.types.len() == actual.fields.len();
        expand_pkts(&mut actual);

        let mut pairs = vec![LogPair {
            name: name.to_string(),
            expected: &expected,
            actual: &actual,
            opts: CompareOptions::default(),
        }];
        // conn.log joins the comparison only to tie uids to connections; it is not scored here.
        let expected_conn = read_text(&dir.join("conn.log")).map(|t| Table::parse_zeek(&t));
        let actual_conn = actual_table(&out.join("conn.log"), "conn.log");
        if let Some(ec) = &expected_conn {
            pairs.push(LogPair {
                name: "conn.log".to_string(),
                expected: ec,
                actual: &actual_conn,
                opts: CompareOptions::default(),
            });
        }
        let score = compare_case(&pairs).swap_remove(0);
        results.push(CaseResult {
            case,
            run,
            score,
            header_ok,
        });
    }
    assert!(!results.is_empty(), "no case with a dns.log expectation");

    let (text, overall) = report(&results);
    println!("{text}");
    let report_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("zeek_conformance_dns.txt");
    let _ = fs::write(&report_path, &text);
    let bad_headers: Vec<&str> = results
        .iter()
        .filter(|c| !c.header_ok)
        .map(|c| c.case.as_str())
        .collect();
    assert!(
        bad_headers.is_empty(),
        "dns.log header is not the product's in {bad_headers:?}"
    );
    assert!(
        overall >= MIN_OVERALL_PERCENT,
        "dns.log conformance {overall:.2}% < {MIN_OVERALL_PERCENT}% (report above and in {})",
        report_path.display()
    );
}

#[test]
fn pkts_expansion() {
    let mut t = Table::parse_tsv("uid\tquery\tpkts\nC1\ta\t3\nC2\tb\t1\nC3\tc\t-\n");
    expand_pkts(&mut t);
    let queries: Vec<&str> = t.rows.iter().map(|r| r[1].as_deref().unwrap()).collect();
    assert_eq!(queries, ["a", "a", "a", "b", "c"]);
    // Without a pkts column nothing changes.
    let mut t = Table::parse_tsv("uid\tquery\nC1\ta\n");
    expand_pkts(&mut t);
    assert_eq!(t.rows.len(), 1);
}
