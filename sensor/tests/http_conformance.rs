//! http.log conformance against the Zeek corpus (`shared/corpus/zeek`, see its README).
//!
//! For every case with an http.log expectation (full `http.log`, or `http.cut.tsv`) the sensor
//! replays `trace.pcap` with Zeek-like settings (`-C` cases without checksum verification) and
//! http.log is scored field by field over the columns both logs have (`common::zeeklog`):
//! rows as a multiset, uids through one bijection per case, `proxied`/`tags` as sets.
//! Not scored: `ts` (canonified in the corpus) and `password`: two basic-auth cases were
//! recorded with `HTTP::default_capture_password=T`, while the product never records
//! passwords (the column is always unset). The file columns (`*_fuids`, `*_mime_types`,
//! `*_filenames`) are not product columns and so not compared.
//!
//! The test prints a table per case, the overall figure and the worst cases, and requires
//! >= 95% of the expected fields to agree overall.
//!
//! Run: `cargo test -p osect-sensor --test http_conformance -- --nocapture`
//! One case, all its mismatches: `ZEEK_CASE=http-methods ZEEK_EXAMPLES=100 cargo test -p osect-sensor --test http_conformance -- --nocapture`
//! The report is also written to `$CARGO_TARGET_TMPDIR/zeek_conformance_http.txt`.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use common::corpus::{
    case_dirs, read_text, run_sensor, write_mismatches, zeek_flags_ignore_checksums,
};
use common::zeeklog::{compare_case, CompareOptions, LogPair, LogScore, Table};

const MIN_OVERALL_PERCENT: f64 = 95.0;
const WORST_CASES: usize = 6;

struct CaseResult {
    case: String,
    run: String,
    scores: Vec<LogScore>,
}

impl CaseResult {
    fn agreed(&self) -> usize {
        self.scores.iter().map(|s| s.agreed).sum()
    }
    fn total(&self) -> usize {
        self.scores.iter().map(|s| s.total).sum()
    }
    fn percent(&self) -> f64 {
        if self.total() == 0 {
            100.0
        } else {
            100.0 * self.agreed() as f64 / self.total() as f64
        }
    }
}

/// How http.log is compared: as conn.log, minus the password column (see the module docs).
fn http_options() -> CompareOptions {
    let mut opts = CompareOptions::default();
    opts.ignore.push("password".to_string());
    opts
}

/// The expectations of one case that concern http.log.
fn http_expectations(dir: &Path) -> Vec<(String, Table)> {
    let mut out = Vec::new();
    if let Some(t) = read_text(&dir.join("http.log")) {
        out.push(("http.log".to_string(), Table::parse_zeek(&t)));
    }
    if let Some(t) = read_text(&dir.join("http.cut.tsv")) {
        out.push(("http.cut.tsv".to_string(), Table::parse_tsv(&t)));
    }
    out
}

fn report(results: &[CaseResult]) -> (String, f64) {
    let mut r = String::new();
    let _ = writeln!(
        r,
        "Zeek conformance, http.log: all common columns except ts and password are scored"
    );
    let _ = writeln!(
        r,
        "(uids through one expected<->actual bijection per case; rows as multisets)"
    );
    let _ = writeln!(r);
    let _ = writeln!(
        r,
        "{:<40} {:<14} {:>5} {:>5} {:>13} {:>7}  run",
        "case", "expectation", "exp", "act", "agreed/total", "%"
    );
    let (mut agreed, mut total) = (0usize, 0usize);
    let mut by_field: BTreeMap<String, usize> = BTreeMap::new();
    for c in results {
        for s in &c.scores {
            let _ = writeln!(
                r,
                "{:<40} {:<14} {:>5} {:>5} {:>13} {:>6.1}%  {}",
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
        let mut v: Vec<_> = by_field.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let list: Vec<String> = v.iter().map(|(f, n)| format!("{f}={n}")).collect();
        let _ = writeln!(
            r,
            "mismatches by field ('*' = unmatched row): {}",
            list.join(" ")
        );
    }
    let mut worst: Vec<&CaseResult> = results.iter().filter(|c| c.agreed() < c.total()).collect();
    worst.sort_by(|a, b| {
        a.percent()
            .total_cmp(&b.percent())
            .then(a.case.cmp(&b.case))
    });
    if !worst.is_empty() {
        let _ = writeln!(r);
        let _ = writeln!(r, "Worst {} cases:", worst.len().min(WORST_CASES));
    }
    for c in worst.iter().take(WORST_CASES) {
        let _ = writeln!(r, "* {} {:.1}% (run: {})", c.case, c.percent(), c.run);
        for s in &c.scores {
            for n in s
                .notes
                .iter()
                .filter(|n| !n.contains("missing in actual"))
                .take(4)
            {
                let _ = writeln!(r, "    note [{}]: {n}", s.name);
            }
            write_mismatches(&mut r, s);
        }
    }
    (r, overall)
}

#[test]
fn zeek_conformance_http_log() {
    let mut results = Vec::new();
    for (case, dir) in case_dirs() {
        let expectations = http_expectations(&dir);
        if expectations.is_empty() {
            continue;
        }
        let ignore_checksums =
            read_text(&dir.join("case.json")).is_some_and(|j| zeek_flags_ignore_checksums(&j));
        let tmp = tempfile::tempdir().expect("tempdir");
        let run = run_sensor(&dir.join("trace.pcap"), tmp.path(), ignore_checksums);
        let actual = match read_text(&run.out_dir.join("http.log")) {
            Some(text) => {
                let mut t = Table::parse_zeek(&text);
                t.canonify();
                t
            }
            None => Table {
                problems: vec!["no http.log written".to_string()],
                ..Table::default()
            },
        };
        let pairs: Vec<LogPair> = expectations
            .iter()
            .map(|(name, expected)| LogPair {
                name: name.clone(),
                expected,
                actual: &actual,
                opts: http_options(),
            })
            .collect();
        let scores = compare_case(&pairs);
        results.push(CaseResult {
            case,
            run: run.status,
            scores,
        });
    }
    assert!(
        !results.is_empty(),
        "no case with an http.log expectation under {}",
        common::corpus::corpus_dir().join("cases").display()
    );

    let (text, overall) = report(&results);
    println!("{text}");
    let report_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("zeek_conformance_http.txt");
    let _ = fs::write(&report_path, &text);
    assert!(
        overall >= MIN_OVERALL_PERCENT,
        "http.log conformance {overall:.2}% < {MIN_OVERALL_PERCENT}% (report above and in {})",
        report_path.display()
    );
}
