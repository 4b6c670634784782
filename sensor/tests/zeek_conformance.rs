//! conn.log conformance against the Zeek corpus (`shared/corpus/zeek`, see its README).
//!
//! For every case with a conn.log expectation (full `conn.log`, `conn.cut.tsv`, or the single
//! connection of `conn.history_state.tsv`) the sensor replays `trace.pcap` with Zeek-like
//! settings and the logs are scored field by field (`common::zeeklog`). The test prints a
//! table per case, the overall figure and the worst cases, and requires >= 95% overall.
//!
//! Run: `cargo test -p osect-sensor --test zeek_conformance -- --nocapture`
//! One case, all its mismatches: `ZEEK_CASE=vlan-qinq ZEEK_EXAMPLES=100 cargo test -p osect-sensor --test zeek_conformance -- --nocapture`
//! The report is also written to `$CARGO_TARGET_TMPDIR/zeek_conformance_conn.txt`.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use common::corpus::{
    case_dirs, corpus_dir, read_text, run_sensor, write_mismatches, zeek_flags_ignore_checksums,
};
use common::zeeklog::{compare_case, compare_one, CompareOptions, LogPair, LogScore, Table};

const MIN_OVERALL_PERCENT: f64 = 95.0;
const WORST_CASES: usize = 5;

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

/// conn.log is scored on every common column but `ts` (canonified away): `service` included.
fn conn_options() -> CompareOptions {
    CompareOptions {
        ignore: vec!["ts".to_string()],
        ..CompareOptions::default()
    }
}

/// Services that Zeek reports without a protocol script: its packet analyzers for tunnels.
const ALWAYS_LOADED_SERVICES: &[&str] = &["teredo", "ayiya", "vxlan", "geneve", "gtpv1"];

/// For a `bare` case (`zeek -b` plus the scripts named in case.json), the services Zeek could
/// confirm: only those whose protocol scripts were loaded. `None` for the default profile,
/// where every analyzer ran. The sensor always detects everything, so its `service` column is
/// narrowed to what the oracle could have seen before scoring.
fn loaded_services(case_json: &str) -> Option<Vec<String>> {
    if !case_json.contains("\"profile\": \"bare\"") {
        return None;
    }
    let mut names: Vec<String> = ALWAYS_LOADED_SERVICES
        .iter()
        .map(|s| s.to_string())
        .collect();
    for part in case_json.split("\"base/protocols/").skip(1) {
        let Some(end) = part.find('"') else { continue };
        let proto = &part[..end];
        match proto {
            "ftp" => names.extend(["ftp".to_string(), "ftp-data".to_string()]),
            "dce-rpc" => names.push("dce_rpc".to_string()),
            p => names.push(p.to_string()),
        }
    }
    Some(names)
}

/// Drops from the actual `service` cells the names the oracle could not have confirmed.
fn narrow_services(t: &mut Table, loaded: &[String]) {
    let Some(col) = t.col("service") else { return };
    for row in &mut t.rows {
        let Some(Some(cell)) = row.get_mut(col) else {
            continue;
        };
        if cell == "-" {
            continue;
        }
        let kept: Vec<&str> = cell
            .split(',')
            .filter(|n| loaded.iter().any(|l| l == n))
            .collect();
        *cell = if kept.is_empty() {
            "-".to_string()
        } else {
            kept.join(",")
        };
    }
}

/// The expectations of one case that concern conn.log, with how each is compared.
fn conn_expectations(dir: &Path) -> Vec<(String, Table, CompareOptions)> {
    let mut out = Vec::new();
    if let Some(t) = read_text(&dir.join("conn.log")) {
        out.push((
            "conn.log".to_string(),
            Table::parse_zeek(&t),
            conn_options(),
        ));
    }
    if let Some(t) = read_text(&dir.join("conn.cut.tsv")) {
        out.push((
            "conn.cut.tsv".to_string(),
            Table::parse_tsv(&t),
            conn_options(),
        ));
    }
    if let Some(t) = read_text(&dir.join("conn.history_state.tsv")) {
        // One connection out of the trace: other actual rows are not wrong.
        let opts = CompareOptions {
            penalize_extra_actual: false,
            ..conn_options()
        };
        out.push((
            "conn.history_state.tsv".to_string(),
            Table::parse_tsv(&t),
            opts,
        ));
    }
    out
}

fn report(results: &[CaseResult]) -> (String, f64) {
    let mut r = String::new();
    let _ = writeln!(
        r,
        "Zeek conformance, conn.log: all common columns except ts are scored (service narrowed to the loaded analyzers in bare cases)"
    );
    let _ = writeln!(r, "(uids and tunnel_parents through one expected<->actual bijection per case; rows as multisets)");
    let _ = writeln!(r);
    let _ = writeln!(
        r,
        "{:<40} {:<22} {:>5} {:>5} {:>13} {:>7}  run",
        "case", "expectation", "exp", "act", "agreed/total", "%"
    );
    let (mut agreed, mut total) = (0usize, 0usize);
    let mut by_field: BTreeMap<String, usize> = BTreeMap::new();
    for c in results {
        for s in &c.scores {
            let _ = writeln!(
                r,
                "{:<40} {:<22} {:>5} {:>5} {:>13} {:>6.1}%  {}",
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
    let mean = results.iter().map(CaseResult::percent).sum::<f64>() / results.len().max(1) as f64;
    let _ = writeln!(r);
    let _ = writeln!(
        r,
        "OVERALL {agreed}/{total} fields = {overall:.2}% (target >= {MIN_OVERALL_PERCENT}%); mean of {} cases {mean:.2}%",
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
            for n in s.notes.iter().take(4) {
                let _ = writeln!(r, "    note [{}]: {n}", s.name);
            }
            write_mismatches(&mut r, s);
        }
    }
    (r, overall)
}

#[test]
fn zeek_conformance_conn_log() {
    let mut results = Vec::new();
    for (case, dir) in case_dirs() {
        let expectations = conn_expectations(&dir);
        if expectations.is_empty() {
            continue;
        }
        let case_json = read_text(&dir.join("case.json")).unwrap_or_default();
        let ignore_checksums = zeek_flags_ignore_checksums(&case_json);
        let loaded = loaded_services(&case_json);
        let tmp = tempfile::tempdir().expect("tempdir");
        let run = run_sensor(&dir.join("trace.pcap"), tmp.path(), ignore_checksums);
        let actual = match read_text(&run.out_dir.join("conn.log")) {
            Some(text) => {
                let mut t = Table::parse_zeek(&text);
                t.canonify();
                if let Some(loaded) = &loaded {
                    narrow_services(&mut t, loaded);
                }
                t
            }
            None => Table {
                problems: vec!["no conn.log written".to_string()],
                ..Table::default()
            },
        };
        let pairs: Vec<LogPair> = expectations
            .iter()
            .map(|(name, expected, opts)| LogPair {
                name: name.clone(),
                expected,
                actual: &actual,
                opts: opts.clone(),
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
        "no case with a conn.log expectation under {}",
        corpus_dir().join("cases").display()
    );

    let (text, overall) = report(&results);
    println!("{text}");
    let report_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("zeek_conformance_conn.txt");
    let _ = fs::write(&report_path, &text);
    assert!(
        overall >= MIN_OVERALL_PERCENT,
        "conn.log conformance {overall:.2}% < {MIN_OVERALL_PERCENT}% (report above and in {})",
        report_path.display()
    );
}

// ---- comparator self-tests --------------------------------------------------------------

/// A hand-written Zeek 9 style conn.log: tunnels with parents (one parent is a row, one is
/// not), a two-parent set, and two rows that differ only by their ids.
const SAMPLE: &str = "#separator \\x09
#set_separator\t,
#empty_field\t(empty)
#unset_field\t-
#path\tconn
#open XXXX-XX-XX-XX-XX-XX
#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\tip_proto
#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]\tcount
XXXXXXXXXX.XXXXXX\tCq1w2e3r4t5y6u7i8\t10.0.0.1\t40000\t10.0.0.2\t502\ttcp\t-\t12.500000\t120\t200\tSF\tT\tT\t0\tShADadFf\t20\t1000\t18\t1100\t-\t6
XXXXXXXXXX.XXXXXX\tCa9s8d7f6g5h4j3k2\t10.0.0.1\t40001\t10.0.0.2\t23\ttcp\t-\t0.000600\t0\t0\tREJ\tT\tT\t0\tSr\t1\t44\t1\t40\t-\t6
XXXXXXXXXX.XXXXXX\tCz1x2c3v4b5n6m7q8\t10.0.0.1\t40002\t10.0.0.9\t445\ttcp\t-\t3.000000\t0\t0\tS0\tT\tT\t0\tS\t3\t132\t0\t0\t-\t6
XXXXXXXXXX.XXXXXX\tCp0o9i8u7y6t5r4e3\t192.0.2.1\t3544\t10.0.0.1\t3544\tudp\tteredo\t5.000000\t300\t300\tSF\tF\tT\t0\tDd\t3\t384\t3\t384\t-\t17
XXXXXXXXXX.XXXXXX\tCl1k2j3h4g5f6d7s8\t2001:db8::1\t51000\t2001:db8::2\t80\ttcp\thttp\t1.000000\t100\t500\tSF\tF\tF\t0\tShADadFf\t6\t500\t5\t900\tCp0o9i8u7y6t5r4e3\t6
XXXXXXXXXX.XXXXXX\tCm1n2b3v4c5x6z7a8\t2001:db8::1\t128\t2001:db8::2\t129\ticmp\t-\t1.000000\t64\t64\tOTH\tF\tF\t0\t-\t2\t176\t2\t176\tCp0o9i8u7y6t5r4e3,CGREaaaaaaaaaaaa1\t1
XXXXXXXXXX.XXXXXX\tCd1d2d3d4d5d6d7d8\t10.0.0.3\t53\t10.0.0.4\t53\tudp\tdns\t-\t-\t-\tS0\tT\tT\t0\tD\t1\t70\t0\t0\tCGREaaaaaaaaaaaa1\t17
XXXXXXXXXX.XXXXXX\tCe1e2e3e4e5e6e7e8\t10.0.0.3\t53\t10.0.0.4\t53\tudp\tdns\t-\t-\t-\tS0\tT\tT\t0\tD\t1\t70\t0\t0\tCGREbbbbbbbbbbbb2\t17
#close XXXX-XX-XX-XX-XX-XX
";

fn is_header(line: &str) -> bool {
    line.starts_with('#')
}

/// Applies `f(column name, cell) -> new cell` to every data cell.
fn edit_cells(text: &str, mut f: impl FnMut(usize, &str, &str) -> String) -> String {
    let fields: Vec<String> = text
        .lines()
        .find_map(|l| l.strip_prefix("#fields\t"))
        .map(|l| l.split('\t').map(str::to_string).collect())
        .unwrap_or_default();
    let mut out = String::new();
    let mut row = 0;
    for line in text.lines() {
        if is_header(line) {
            out.push_str(line);
        } else {
            let cells: Vec<String> = line
                .split('\t')
                .enumerate()
                .map(|(i, c)| f(row, fields.get(i).map_or("", String::as_str), c))
                .collect();
            out.push_str(&cells.join("\t"));
            row += 1;
        }
        out.push('\n');
    }
    out
}

/// Renames every id consistently (as a different seed would).
fn rename_uids(text: &str) -> String {
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut rename = |id: &str| -> String {
        let n = names.len();
        names
            .entry(id.to_string())
            .or_insert_with(|| format!("CRenamed{n:09}"))
            .clone()
    };
    edit_cells(text, |_, name, cell| match name {
        "uid" | "tunnel_parents" if cell != "-" && cell != "(empty)" => cell
            .split(',')
            .map(&mut rename)
            .collect::<Vec<_>>()
            .join(","),
        _ => cell.to_string(),
    })
}

/// Reverses the data rows, then rotates them by one, keeping the header.
fn shuffle_rows(text: &str) -> String {
    let header: Vec<&str> = text
        .lines()
        .filter(|l| is_header(l) && !l.starts_with("#close"))
        .collect();
    let mut rows: Vec<&str> = text.lines().filter(|l| !is_header(l)).collect();
    rows.reverse();
    if !rows.is_empty() {
        rows.rotate_left(1);
    }
    let mut out = header.join("\n");
    out.push('\n');
    for r in rows {
        out.push_str(r);
        out.push('\n');
    }
    out.push_str("#close XXXX-XX-XX-XX-XX-XX\n");
    out
}

fn score(expected: &str, actual: &str) -> LogScore {
    compare_one(
        "conn.log",
        &Table::parse_zeek(expected),
        &Table::parse_zeek(actual),
        CompareOptions::default(),
    )
}

fn assert_perfect(s: &LogScore, what: &str) {
    assert!(s.total > 0, "{what}: nothing scored");
    assert_eq!(s.agreed, s.total, "{what}: {:?}", s.mismatches);
}

/// Our sample plus every corpus conn.log that is present (the self-tests do not need it).
fn sample_logs() -> Vec<(String, String)> {
    let mut v = vec![("embedded sample".to_string(), SAMPLE.to_string())];
    if let Ok(rd) = fs::read_dir(corpus_dir().join("cases")) {
        let mut paths: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path().join("conn.log")))
            .collect();
        paths.sort();
        for p in paths {
            if let Some(t) = read_text(&p) {
                v.push((p.display().to_string(), t));
            }
        }
    }
    v
}

#[test]
fn comparator_identity_is_perfect() {
    for (name, log) in sample_logs() {
        let s = score(&log, &log);
        assert_perfect(&s, &name);
        assert_eq!(s.matched_rows, s.expected_rows, "{name}");
        // ts and service are not scored; uid is.
        assert!(!s.scored_columns.iter().any(|c| c == "ts" || c == "service"));
        assert!(s.scored_columns.iter().any(|c| c == "uid"));
    }
}

#[test]
fn comparator_renamed_uids_is_perfect() {
    for (name, log) in sample_logs() {
        let renamed = rename_uids(&log);
        assert_ne!(renamed, log, "{name}: rename changed nothing");
        assert_perfect(&score(&log, &renamed), &name);
    }
}

#[test]
fn comparator_shuffled_rows_is_perfect() {
    for (name, log) in sample_logs() {
        assert_perfect(&score(&log, &shuffle_rows(&log)), &name);
        assert_perfect(&score(&log, &rename_uids(&shuffle_rows(&log))), &name);
    }
}

#[test]
fn comparator_one_changed_field_loses_exactly_one() {
    for (name, log) in sample_logs() {
        for field in ["history", "orig_bytes", "id.resp_p", "local_orig"] {
            let changed = edit_cells(&log, |row, col, cell| {
                if row == 0 && col == field {
                    format!("{cell}9")
                } else {
                    cell.to_string()
                }
            });
            let s = score(&log, &shuffle_rows(&changed));
            assert_eq!(s.agreed + 1, s.total, "{name} {field}: {:?}", s.mismatches);
            assert_eq!(s.mismatches.len(), 1);
            assert_eq!(s.mismatches[0].field, field);
        }
    }
}

#[test]
fn comparator_set_order_does_not_matter() {
    let swapped = SAMPLE.replace(
        "Cp0o9i8u7y6t5r4e3,CGREaaaaaaaaaaaa1",
        "CGREaaaaaaaaaaaa1,Cp0o9i8u7y6t5r4e3",
    );
    assert_ne!(swapped, SAMPLE);
    assert_perfect(&score(SAMPLE, &swapped), "swapped set");
}

#[test]
fn comparator_inconsistent_uids_lose() {
    // Two different connections logged with the same uid: only one can map.
    let collapsed = SAMPLE.replace("Ca9s8d7f6g5h4j3k2", "Cq1w2e3r4t5y6u7i8");
    let s = score(SAMPLE, &collapsed);
    assert_eq!(s.agreed + 1, s.total, "{:?}", s.mismatches);
    assert_eq!(s.mismatches[0].field, "uid");
    // A tunnel parent pointing at the wrong connection.
    let wrong_parent = SAMPLE.replace("80\ttcp\thttp\t1.000000\t100\t500\tSF\tF\tF\t0\tShADadFf\t6\t500\t5\t900\tCp0o9i8u7y6t5r4e3", "80\ttcp\thttp\t1.000000\t100\t500\tSF\tF\tF\t0\tShADadFf\t6\t500\t5\t900\tCq1w2e3r4t5y6u7i8");
    assert_ne!(wrong_parent, SAMPLE);
    let s = score(SAMPLE, &wrong_parent);
    assert_eq!(s.agreed + 1, s.total, "{:?}", s.mismatches);
    assert_eq!(s.mismatches[0].field, "tunnel_parents");
}

#[test]
fn comparator_missing_and_extra_rows_cost_whole_rows() {
    let t = Table::parse_zeek(SAMPLE);
    let per_row = score(SAMPLE, SAMPLE).scored_columns.len();
    let first_row = SAMPLE.lines().find(|l| !is_header(l)).unwrap().to_string();
    let missing = SAMPLE.replacen(&format!("{first_row}\n"), "", 1);
    let s = score(SAMPLE, &missing);
    assert_eq!(s.total, t.rows.len() * per_row);
    assert_eq!(s.agreed, s.total - per_row);
    let extra = SAMPLE.replace(
        "#close",
        &format!("{}\n#close", first_row.replace("40000", "40009")),
    );
    let s = score(SAMPLE, &extra);
    assert_eq!(s.total, (t.rows.len() + 1) * per_row);
    assert_eq!(s.agreed, t.rows.len() * per_row);
}

#[test]
fn comparator_by_column_name_over_common_columns() {
    // The product's columns: no ip_proto, two l2 address columns at the end, other order.
    let product = edit_cells(SAMPLE, |_, _, c| c.to_string())
        .lines()
        .map(|l| {
            let mut cells: Vec<&str> = l.split('\t').collect();
            if l.starts_with("#fields") || l.starts_with("#types") || !is_header(l) {
                cells.pop();
                let extra = if l.starts_with("#fields") {
                    ["orig_l2_addr", "resp_l2_addr"]
                } else if l.starts_with("#types") {
                    ["string", "string"]
                } else {
                    ["00:00:00:00:00:01", "00:00:00:00:00:02"]
                };
                cells.extend(extra);
                // Swap id.orig_h and id.resp_p (header lines carry their `#key` as cell 0).
                let o = usize::from(is_header(l));
                cells.swap(2 + o, 5 + o);
            }
            cells.join("\t")
        })
        .collect::<Vec<_>>()
        .join("\n");
    let s = score(SAMPLE, &product);
    assert_perfect(&s, "product columns");
    assert!(!s
        .scored_columns
        .iter()
        .any(|c| c == "ip_proto" || c.ends_with("_l2_addr")));
}

#[test]
fn comparator_partial_expectations() {
    let actual = rename_uids(SAMPLE);
    let history_state = Table::parse_tsv("history\tconn_state\nSr\tREJ\n");
    let opts = CompareOptions {
        penalize_extra_actual: false,
        ..CompareOptions::default()
    };
    let s = compare_one(
        "conn.history_state.tsv",
        &history_state,
        &Table::parse_zeek(&actual),
        opts.clone(),
    );
    assert_eq!((s.agreed, s.total), (2, 2), "{:?}", s.mismatches);
    let wrong = Table::parse_tsv("history\tconn_state\nSR\tRSTOS0\n");
    let s = compare_one(
        "conn.history_state.tsv",
        &wrong,
        &Table::parse_zeek(&actual),
        opts,
    );
    assert_eq!(s.total, 2);
    assert!(s.agreed < 2);
    // zeek-cut output: service is not scored, uid goes through the bijection.
    let cut = Table::parse_tsv("uid\tservice\thistory\nCl1k2j3h4g5f6d7s8\thttp\tShADadFf\n");
    let one_row = SAMPLE
        .lines()
        .filter(|l| is_header(l) || l.contains("Cl1k2j3h4g5f6d7s8\t"))
        .collect::<Vec<_>>()
        .join("\n");
    let s = compare_one(
        "conn.cut.tsv",
        &cut,
        &Table::parse_zeek(&rename_uids(&one_row)),
        CompareOptions::default(),
    );
    assert_eq!((s.agreed, s.total), (2, 2), "{:?}", s.mismatches);
}

#[test]
fn comparator_survives_malformed_logs() {
    let junk = [
        "",
        "garbage\n",
        "#fields\tuid\n",
        "#fields\tts\tuid\tproto\n1\t2\n3\t4\t5\t6\t7\n",
        "#separator \\xZZ\n#fields\tuid\n\\x\n",
        "\u{fffd}\u{fffd}\t\t\t\n#types\n",
    ];
    for j in junk {
        let s = score(SAMPLE, j);
        assert!(s.agreed < s.total, "junk {j:?} scored perfect");
        let s = score(j, SAMPLE);
        assert!(s.total >= s.agreed);
        let _ = compare_one(
            "x",
            &Table::parse_tsv(j),
            &Table::parse_zeek(SAMPLE),
            CompareOptions::default(),
        );
    }
    // An actual log with no header at all: every expected product column counts as wrong.
    let s = score(SAMPLE, "");
    assert_eq!(s.agreed, 0);
    assert!(s.total > 0);
}

#[test]
fn case_json_flag_scan() {
    assert!(zeek_flags_ignore_checksums(
        "{\"zeek_flags\": [\n \"-C (ignore checksums)\"\n ]}"
    ));
    assert!(!zeek_flags_ignore_checksums(
        "{\"zeek_flags\": [],\n \"x\": [\"-C\"]}"
    ));
    assert!(!zeek_flags_ignore_checksums("{"));
}
