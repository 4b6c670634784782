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
use std::path::Path;

use common::corpus::{
    case_dirs, read_text, run_sensor, zeek_flags_ignore_checksums as ignores_checksums,
};
use common::zeeklog::{compare_case, CompareOptions, LogPair, LogScore, Table};

const MIN_OVERALL_PERCENT: f64 = 95.0;
const WORST_CASES: usize = 5;
const EXAMPLES_PER_CASE: usize = 8;

/// The product's dns.log columns, in order.
const PRODUCT_FIELDS: &str = "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto trans_id rtt \
     query qclass qclass_name qtype qtype_name rcode rcode_name AA TC RD RA Z answers TTLs \
     rejected pkts";

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
    let mut results = Vec::new();
    for (case, dir) in case_dirs() {
        let (name, expected) = if let Some(t) = read_text(&dir.join("dns.log")) {
            ("dns.log", Table::parse_zeek(&t))
        } else if let Some(t) = read_text(&dir.join("dns.cut.tsv")) {
            ("dns.cut.tsv", Table::parse_tsv(&t))
        } else {
            continue;
        };
        let ignore = read_text(&dir.join("case.json")).is_some_and(|j| ignores_checksums(&j));
        let tmp = tempfile::tempdir().expect("tempdir");
        let common::corpus::Run {
            out_dir: out,
            status: run,
        } = run_sensor(&dir.join("trace.pcap"), tmp.path(), ignore);
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
