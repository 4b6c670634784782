//! Parse Zeek ASCII logs / `zeek-cut` TSV and score an actual log against an expected one,
//! following the corpus README (`shared/corpus/zeek/README.md`):
//!
//! * columns are compared by NAME over the columns both logs have (Zeek 9 has `ip_proto`, the
//!   product has `*_l2_addr`), minus ignored ones (`ts` is canonified away in the baselines;
//!   `service` depends on which analyzers were loaded);
//! * rows are a multiset: expected and actual rows are paired by a greedy maximum-agreement
//!   matching (same `id.*`/`proto` key first); unmatched rows count as all fields wrong;
//! * seeded ids (`uid`, `*_fuids`, `tunnel_parents` elements) are opaque: one bijection
//!   expected-id <-> actual-id is inferred per case, across all its logs, and an id agrees when
//!   it maps consistently;
//! * set fields are unordered, vectors (and `service`) ordered.
//!
//! Nothing here panics on malformed input: a broken line or a missing cell is a mismatch.

use std::collections::{BTreeMap, HashMap, HashSet};

/// Columns the product does not write; ignored when the actual log has no header at all.
pub const NON_PRODUCT_COLUMNS: &[&str] = &["ip_proto"];
/// Columns ignored by default when scoring.
pub const DEFAULT_IGNORED: &[&str] = &["ts", "service"];
/// Columns that pair rows before any other agreement is considered.
pub const DEFAULT_KEY: &[&str] = &["id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto"];

/// Columns whose values (or elements) are seeded, opaque ids.
const ID_COLUMNS: &[&str] = &[
    "uid",
    "fuid",
    "parent_fuid",
    "orig_fuids",
    "resp_fuids",
    "tunnel_parents",
    "conn_uids",
];
/// Unordered containers, for headerless TSV where `#types` is unknown.
const SET_COLUMNS: &[&str] = &["tunnel_parents", "proxied", "tags", "conn_uids"];
/// Ordered containers, for headerless TSV.
const VECTOR_COLUMNS: &[&str] = &[
    "service",
    "answers",
    "TTLs",
    "orig_fuids",
    "resp_fuids",
    "orig_mime_types",
    "resp_mime_types",
    "orig_filenames",
    "resp_filenames",
];

const UNSET: &str = "-";
const EMPTY: &str = "(empty)";
/// Above this many candidate row pairs, only same-key pairs are scored (keeps big logs fast).
const MAX_PAIR_CANDIDATES: usize = 4_000_000;

/// A parsed log: `#fields` names and data rows. A `None` cell is a cell the line did not have.
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub fields: Vec<String>,
    /// `#types`, parallel to `fields`; empty for TSV files.
    pub types: Vec<String>,
    /// Header lines other than `#fields`/`#types`/`#open`/`#close`, as (key, value).
    pub meta: Vec<(String, String)>,
    pub set_separator: String,
    pub rows: Vec<Vec<Option<String>>>,
    /// Things that were wrong with the text (reported, never fatal).
    pub problems: Vec<String>,
}

impl Table {
    /// Parses Zeek's ASCII writer format. Rows are split on the declared `#separator`.
    pub fn parse_zeek(text: &str) -> Table {
        let mut t = Table {
            set_separator: ",".to_string(),
            ..Table::default()
        };
        let mut sep = "\t".to_string();
        let mut saw_fields = false;
        for (n, line) in text.lines().enumerate() {
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("#separator ") {
                sep = unescape_hex(rest);
                t.meta.push(("separator".to_string(), rest.to_string()));
                continue;
            }
            if let Some(rest) = line.strip_prefix('#') {
                let (key, value) = match rest.split_once(sep.as_str()) {
                    Some((k, v)) => (k, v),
                    // `#open XXXX` (canonified: a space) or a bare key.
                    None => rest.split_once(' ').unwrap_or((rest, "")),
                };
                match key {
                    "fields" => {
                        t.fields = value.split(sep.as_str()).map(str::to_string).collect();
                        saw_fields = true;
                    }
                    "types" => t.types = value.split(sep.as_str()).map(str::to_string).collect(),
                    "open" | "close" => {}
                    _ => {
                        if key == "set_separator" {
                            t.set_separator = value.to_string();
                        }
                        t.meta.push((key.to_string(), value.to_string()));
                    }
                }
                continue;
            }
            if !saw_fields {
                t.problems
                    .push(format!("line {}: data before #fields", n + 1));
            }
            t.push_row(line.split(sep.as_str()), n + 1);
        }
        if !saw_fields {
            t.problems.push("no #fields header".to_string());
        }
        t
    }

    /// Parses `zeek-cut -m` style TSV: the first line names the columns.
    pub fn parse_tsv(text: &str) -> Table {
        let mut t = Table {
            set_separator: ",".to_string(),
            ..Table::default()
        };
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.is_empty());
        match lines.next() {
            Some((_, header)) => t.fields = header.split('\t').map(str::to_string).collect(),
            None => t.problems.push("empty TSV".to_string()),
        }
        for (n, line) in lines {
            t.push_row(line.split('\t'), n + 1);
        }
        t
    }

    fn push_row<'a>(&mut self, cells: impl Iterator<Item = &'a str>, line_no: usize) {
        let mut row: Vec<Option<String>> = cells.map(|c| Some(c.to_string())).collect();
        if !self.fields.is_empty() && row.len() != self.fields.len() {
            self.problems.push(format!(
                "line {line_no}: {} cells, {} fields",
                row.len(),
                self.fields.len()
            ));
        }
        row.resize(self.fields.len().max(row.len()), None);
        self.rows.push(row);
    }

    pub fn col(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f == name)
    }

    pub fn meta(&self, key: &str) -> Option<&str> {
        self.meta
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn type_of(&self, idx: usize) -> Option<&str> {
        self.types.get(idx).map(String::as_str)
    }

    /// btest's `diff-remove-first-timestamp` on every data row: the first token matching
    /// `[0-9]{9,10}\.[0-9]{1,8}` becomes `XXXXXXXXXX.XXXXXX`.
    pub fn canonify(&mut self) {
        for row in &mut self.rows {
            for cell in row.iter_mut().flatten() {
                if let Some(c) = canonify_first_timestamp(cell) {
                    *cell = c;
                    break;
                }
            }
        }
    }
}

/// `\x09` -> TAB; anything that is not a valid `\xNN` escape is taken literally.
fn unescape_hex(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(pos) = rest.find("\\x") {
        out.push_str(&rest[..pos]);
        let hex = rest
            .get(pos + 2..pos + 4)
            .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()));
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(v) => {
                out.push(v as char);
                rest = &rest[pos + 4..];
            }
            None => {
                out.push_str("\\x");
                rest = &rest[pos + 2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The leftmost regex match of `[0-9]{9,10}\.[0-9]{1,8}` in `s`, replaced; None if none.
fn canonify_first_timestamp(s: &str) -> Option<String> {
    let b = s.as_bytes();
    for start in 0..b.len() {
        for int_len in [10usize, 9] {
            let dot = start + int_len;
            if dot >= b.len() {
                continue;
            }
            if !b[start..dot].iter().all(u8::is_ascii_digit) || b[dot] != b'.' {
                continue;
            }
            let frac = b[dot + 1..]
                .iter()
                .take(8)
                .take_while(|c| c.is_ascii_digit())
                .count();
            if frac == 0 {
                continue;
            }
            let end = dot + 1 + frac;
            return Some(format!("{}XXXXXXXXXX.XXXXXX{}", &s[..start], &s[end..]));
        }
    }
    None
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Plain,
    Set,
    Vector,
}

/// How one log of a case is compared.
#[derive(Clone, Debug)]
pub struct CompareOptions {
    /// Columns never scored.
    pub ignore: Vec<String>,
    /// Columns pairing rows first (only those present in both logs are used).
    pub key: Vec<String>,
    /// Unmatched actual rows count as wrong (full logs and cuts); false when the expectation
    /// describes only some connections (`conn.history_state.tsv`).
    pub penalize_extra_actual: bool,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            ignore: DEFAULT_IGNORED.iter().map(|s| s.to_string()).collect(),
            key: DEFAULT_KEY.iter().map(|s| s.to_string()).collect(),
            penalize_extra_actual: true,
        }
    }
}

/// One log of a case: expected vs actual.
pub struct LogPair<'a> {
    pub name: String,
    pub expected: &'a Table,
    pub actual: &'a Table,
    pub opts: CompareOptions,
}

#[derive(Clone, Debug)]
pub struct Mismatch {
    /// Which row: the expected row's key columns (or "extra actual row ...").
    pub row: String,
    pub field: String,
    pub expected: String,
    pub actual: String,
}

#[derive(Clone, Debug, Default)]
pub struct LogScore {
    pub name: String,
    pub expected_rows: usize,
    pub actual_rows: usize,
    pub matched_rows: usize,
    pub scored_columns: Vec<String>,
    pub agreed: usize,
    pub total: usize,
    /// Every disagreeing field (expected vs actual).
    pub mismatches: Vec<Mismatch>,
    /// Header differences and parse problems (not scored).
    pub notes: Vec<String>,
}

impl LogScore {
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            100.0
        } else {
            100.0 * self.agreed as f64 / self.total as f64
        }
    }
}

/// A scored column: its name, where it is in each table, how to compare it.
struct Column {
    name: String,
    e: usize,
    a: Option<usize>,
    kind: Kind,
    id: bool,
}

fn kind_of(name: &str, ty: Option<&str>) -> Kind {
    match ty {
        Some(t) if t.starts_with("set[") => Kind::Set,
        Some(t) if t.starts_with("vector[") => Kind::Vector,
        Some(_) if name == "service" => Kind::Vector,
        Some(_) => Kind::Plain,
        None if SET_COLUMNS.contains(&name) => Kind::Set,
        None if VECTOR_COLUMNS.contains(&name) => Kind::Vector,
        None => Kind::Plain,
    }
}

fn columns(p: &LogPair) -> Vec<Column> {
    let header_less = p.actual.fields.is_empty();
    p.expected
        .fields
        .iter()
        .enumerate()
        .filter(|(_, n)| !p.opts.ignore.iter().any(|i| i == *n))
        .filter_map(|(e, n)| {
            let a = p.actual.col(n);
            // Without an actual header every expected product column is simply wrong.
            let scored_without_actual = header_less && !NON_PRODUCT_COLUMNS.contains(&n.as_str());
            if a.is_none() && !scored_without_actual {
                return None;
            }
            let ty = p
                .expected
                .type_of(e)
                .or_else(|| a.and_then(|a| p.actual.type_of(a)));
            Some(Column {
                name: n.clone(),
                e,
                a,
                kind: kind_of(n, ty),
                id: ID_COLUMNS.contains(&n.as_str()),
            })
        })
        .collect()
}

fn cell(row: &[Option<String>], idx: Option<usize>) -> Option<&str> {
    idx.and_then(|i| row.get(i)).and_then(|c| c.as_deref())
}

fn elements<'s>(v: &'s str, kind: Kind, set_sep: &str) -> Vec<&'s str> {
    if kind == Kind::Plain || v == UNSET || v == EMPTY {
        vec![v]
    } else {
        v.split(set_sep).collect()
    }
}

/// Expected-id -> actual-id, one-to-one.
#[derive(Default, Debug)]
pub struct IdMap {
    fwd: HashMap<String, String>,
    back: HashSet<String>,
}

impl IdMap {
    fn try_insert(&mut self, e: &str, a: &str) -> bool {
        if self.fwd.contains_key(e) || self.back.contains(a) {
            return false;
        }
        self.fwd.insert(e.to_string(), a.to_string());
        self.back.insert(a.to_string());
        true
    }

    pub fn get(&self, e: &str) -> Option<&str> {
        self.fwd.get(e).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.fwd.len()
    }
}

/// Field equality. `map` None: ids are not compared yet (matching stage); they agree never.
fn field_equal(
    e: Option<&str>,
    a: Option<&str>,
    col: &Column,
    set_sep: (&str, &str),
    map: Option<&IdMap>,
) -> bool {
    let (Some(e), Some(a)) = (e, a) else {
        return false;
    };
    if !col.id {
        return match col.kind {
            Kind::Set if e != UNSET && e != EMPTY && a != UNSET && a != EMPTY => {
                let mut x = elements(e, Kind::Set, set_sep.0);
                let mut y = elements(a, Kind::Set, set_sep.1);
                x.sort_unstable();
                y.sort_unstable();
                x == y
            }
            _ => e == a,
        };
    }
    let Some(map) = map else { return false };
    if e == UNSET || e == EMPTY || a == UNSET || a == EMPTY {
        return e == a;
    }
    let mut x: Vec<Option<&str>> = elements(e, col.kind, set_sep.0)
        .into_iter()
        .map(|id| map.get(id))
        .collect();
    let mut y: Vec<Option<&str>> = elements(a, col.kind, set_sep.1)
        .into_iter()
        .map(Some)
        .collect();
    if x.iter().any(Option::is_none) {
        return false;
    }
    if col.kind == Kind::Set {
        x.sort_unstable();
        y.sort_unstable();
    }
    x == y
}

struct Prepared<'a> {
    pair: &'a LogPair<'a>,
    cols: Vec<Column>,
    key: Vec<(usize, usize)>,
    seps: (&'a str, &'a str),
    /// Matched (expected row, actual row).
    matches: Vec<(usize, usize)>,
    /// For each match: every actual row that scored exactly as well for that expected row.
    /// Their ids share the vote, so a choice between indistinguishable rows is weak evidence.
    ties: Vec<Vec<usize>>,
}

impl<'a> Prepared<'a> {
    fn new(pair: &'a LogPair<'a>) -> Self {
        let cols = columns(pair);
        let key = pair
            .opts
            .key
            .iter()
            .filter_map(|k| Some((pair.expected.col(k)?, pair.actual.col(k)?)))
            .collect();
        let seps = (
            pair.expected.set_separator.as_str(),
            pair.actual.set_separator.as_str(),
        );
        Prepared {
            pair,
            cols,
            key,
            seps,
            matches: Vec::new(),
            ties: Vec::new(),
        }
    }

    fn agreement(&self, e: usize, a: usize, map: Option<&IdMap>) -> usize {
        let (er, ar) = (&self.pair.expected.rows[e], &self.pair.actual.rows[a]);
        self.cols
            .iter()
            .filter(|c| field_equal(cell(er, Some(c.e)), cell(ar, c.a), c, self.seps, map))
            .count()
    }

    fn key_equal(&self, e: usize, a: usize) -> bool {
        let (er, ar) = (&self.pair.expected.rows[e], &self.pair.actual.rows[a]);
        !self.key.is_empty()
            && self.key.iter().all(|&(ke, ka)| {
                cell(er, Some(ke)).is_some() && cell(er, Some(ke)) == cell(ar, Some(ka))
            })
    }

    /// Greedy maximum-agreement matching: best (same key, agreement) pairs first.
    fn rematch(&mut self, map: Option<&IdMap>) {
        let (ne, na) = (self.pair.expected.rows.len(), self.pair.actual.rows.len());
        let all_pairs = ne.saturating_mul(na) <= MAX_PAIR_CANDIDATES;
        let mut cand: Vec<(bool, usize, usize, usize)> = Vec::new();
        for e in 0..ne {
            for a in 0..na {
                let same_key = self.key_equal(e, a);
                if all_pairs || same_key {
                    cand.push((same_key, self.agreement(e, a, map), e, a));
                }
            }
        }
        cand.sort_by(|x, y| {
            (y.0, y.1)
                .cmp(&(x.0, x.1))
                .then((x.2, x.3).cmp(&(y.2, y.3)))
        });
        let (mut used_e, mut used_a) = (vec![false; ne], vec![false; na]);
        let mut score_of = HashMap::new();
        self.matches.clear();
        for &(same_key, agree, e, a) in &cand {
            if !used_e[e] && !used_a[a] {
                used_e[e] = true;
                used_a[a] = true;
                self.matches.push((e, a));
                score_of.insert(e, (same_key, agree));
            }
        }
        self.matches.sort_unstable();
        let mut ties: HashMap<usize, Vec<usize>> = HashMap::new();
        for &(same_key, agree, e, a) in &cand {
            if score_of.get(&e) == Some(&(same_key, agree)) {
                ties.entry(e).or_default().push(a);
            }
        }
        self.ties = self
            .matches
            .iter()
            .map(|(e, a)| ties.remove(e).unwrap_or_else(|| vec![*a]))
            .collect();
    }

    /// Adds this log's id co-occurrences to the votes: each matched expected row spreads
    /// weight 1 over its tied actual rows; a set of n and m ids spreads it over all n*m pairs
    /// (the true pairs accumulate weight from several rows, the false ones do not).
    fn vote(&self, votes: &mut BTreeMap<(String, String), f64>) {
        for (&(e, _), tied) in self.matches.iter().zip(&self.ties) {
            let er = &self.pair.expected.rows[e];
            let w_row = 1.0 / tied.len().max(1) as f64;
            for &a in tied {
                let ar = &self.pair.actual.rows[a];
                for c in self.cols.iter().filter(|c| c.id) {
                    let (Some(ev), Some(av)) = (cell(er, Some(c.e)), cell(ar, c.a)) else {
                        continue;
                    };
                    if [ev, av].iter().any(|v| *v == UNSET || *v == EMPTY) {
                        continue;
                    }
                    let x = elements(ev, c.kind, self.seps.0);
                    let y = elements(av, c.kind, self.seps.1);
                    if c.kind == Kind::Vector && x.len() == y.len() {
                        for (i, j) in x.iter().zip(&y) {
                            *votes.entry((i.to_string(), j.to_string())).or_default() += w_row;
                        }
                    } else {
                        let w = w_row / (x.len() * y.len()) as f64;
                        for i in &x {
                            for j in &y {
                                *votes.entry((i.to_string(), j.to_string())).or_default() += w;
                            }
                        }
                    }
                }
            }
        }
    }
}

fn build_map(preps: &[Prepared]) -> IdMap {
    let mut votes = BTreeMap::new();
    for p in preps {
        p.vote(&mut votes);
    }
    let mut ranked: Vec<((String, String), f64)> = votes.into_iter().collect();
    // Heaviest evidence first; the stable sort keeps BTreeMap order for ties (deterministic).
    ranked.sort_by(|x, y| y.1.total_cmp(&x.1));
    let mut map = IdMap::default();
    for ((e, a), _) in ranked {
        map.try_insert(&e, &a);
    }
    map
}

fn row_label(t: &Table, row: usize, key: &[(usize, usize)], actual: bool) -> String {
    let r = &t.rows[row];
    let parts: Vec<&str> = key
        .iter()
        .map(|&(e, a)| cell(r, Some(if actual { a } else { e })).unwrap_or("?"))
        .collect();
    if parts.is_empty() {
        format!("row {}", row + 1)
    } else {
        format!("row {} [{}]", row + 1, parts.join(" "))
    }
}

fn header_notes(p: &LogPair) -> Vec<String> {
    let mut notes = Vec::new();
    for key in [
        "separator",
        "set_separator",
        "empty_field",
        "unset_field",
        "path",
    ] {
        if let Some(ev) = p.expected.meta(key) {
            let av = p.actual.meta(key);
            if av != Some(ev) {
                notes.push(format!("#{key}: expected {ev:?}, actual {av:?}"));
            }
        }
    }
    for (i, f) in p.expected.fields.iter().enumerate() {
        match p.actual.col(f) {
            None if !NON_PRODUCT_COLUMNS.contains(&f.as_str()) && !p.actual.fields.is_empty() => {
                notes.push(format!("column {f} missing in actual"))
            }
            Some(j) => {
                if let (Some(et), Some(at)) = (p.expected.type_of(i), p.actual.type_of(j)) {
                    if et != at {
                        notes.push(format!("#types {f}: expected {et}, actual {at}"));
                    }
                }
            }
            None => {}
        }
    }
    notes.extend(p.expected.problems.iter().map(|s| format!("expected: {s}")));
    notes.extend(p.actual.problems.iter().map(|s| format!("actual: {s}")));
    notes
}

/// Compares all logs of one case with one id bijection; returns one score per log.
pub fn compare_case(pairs: &[LogPair]) -> Vec<LogScore> {
    let mut preps: Vec<Prepared> = pairs.iter().map(Prepared::new).collect();
    // Round 1 pairs rows without ids; round 2 re-pairs with the inferred id map, which
    // separates rows that differ only by ids (e.g. tunnels referring to their parents).
    for p in &mut preps {
        p.rematch(None);
    }
    let mut map = build_map(&preps);
    for p in &mut preps {
        p.rematch(Some(&map));
    }
    map = build_map(&preps);

    preps
        .iter()
        .map(|p| {
            let (et, at) = (p.pair.expected, p.pair.actual);
            let mut s = LogScore {
                name: p.pair.name.clone(),
                expected_rows: et.rows.len(),
                actual_rows: at.rows.len(),
                matched_rows: p.matches.len(),
                scored_columns: p.cols.iter().map(|c| c.name.clone()).collect(),
                notes: header_notes(p.pair),
                ..LogScore::default()
            };
            let n = p.cols.len();
            let (mut used_e, mut used_a) = (vec![false; et.rows.len()], vec![false; at.rows.len()]);
            for &(e, a) in &p.matches {
                used_e[e] = true;
                used_a[a] = true;
                let (er, ar) = (&et.rows[e], &at.rows[a]);
                for c in &p.cols {
                    let (ev, av) = (cell(er, Some(c.e)), cell(ar, c.a));
                    s.total += 1;
                    if field_equal(ev, av, c, p.seps, Some(&map)) {
                        s.agreed += 1;
                    } else {
                        let shown_e = match (c.id, ev) {
                            (true, Some(v)) if v != UNSET && v != EMPTY => {
                                let m: Vec<&str> = elements(v, c.kind, p.seps.0)
                                    .into_iter()
                                    .map(|id| map.get(id).unwrap_or("<unmapped>"))
                                    .collect();
                                format!("{v} (=> {})", m.join(","))
                            }
                            _ => ev.unwrap_or("<missing>").to_string(),
                        };
                        s.mismatches.push(Mismatch {
                            row: row_label(et, e, &p.key, false),
                            field: c.name.clone(),
                            expected: shown_e,
                            actual: av.unwrap_or("<missing>").to_string(),
                        });
                    }
                }
            }
            for e in (0..et.rows.len()).filter(|&e| !used_e[e]) {
                s.total += n;
                s.mismatches.push(Mismatch {
                    row: row_label(et, e, &p.key, false),
                    field: "*".to_string(),
                    expected: "row".to_string(),
                    actual: "<no matching row>".to_string(),
                });
            }
            if p.pair.opts.penalize_extra_actual {
                for a in (0..at.rows.len()).filter(|&a| !used_a[a]) {
                    s.total += n;
                    s.mismatches.push(Mismatch {
                        row: format!("extra actual {}", row_label(at, a, &p.key, true)),
                        field: "*".to_string(),
                        expected: "<no row>".to_string(),
                        actual: "row".to_string(),
                    });
                }
            }
            s
        })
        .collect()
}

/// Convenience for a single log.
pub fn compare_one(name: &str, expected: &Table, actual: &Table, opts: CompareOptions) -> LogScore {
    let pair = LogPair {
        name: name.to_string(),
        expected,
        actual,
        opts,
    };
    compare_case(std::slice::from_ref(&pair))
        .pop()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonifier_matches_btest() {
        assert_eq!(
            canonify_first_timestamp("1300475167.096535").as_deref(),
            Some("XXXXXXXXXX.XXXXXX")
        );
        assert_eq!(
            canonify_first_timestamp("x 123456789.1 y").as_deref(),
            Some("x XXXXXXXXXX.XXXXXX y")
        );
        assert_eq!(canonify_first_timestamp("0.000435"), None);
        assert_eq!(unescape_hex("\\x09"), "\t");
    }
}
