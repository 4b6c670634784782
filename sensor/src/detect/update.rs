//! `osect-sensor rules update`: a new rule archive is fetched over the upload channel (or
//! taken from a file), checked against its MD5, unpacked with bounds into a fresh folder,
//! test-loaded with the sensor's own loader, and only then made `current` by renaming one
//! symlink over another; the running sensor is then told with SIGHUP to re-read its rules.
//!
//! Layout of `detect.update_dir` (on the data partition):
//!
//! ```text
//! current  -> set-20240607T101500Z-1a2b3c4d     what detect.rules names (current/rules)
//! previous -> set-20240606T101500Z-99aa00ff     the set before, for `rules rollback`
//! set-.../rules/*.rules, classification.config  one unpacked archive each
//! set-.../update.info                           md5, source, rules loaded
//! rules-update.log                              one line per attempt
//! ```
//!
//! Whatever fails before the symlink rename leaves `current` as it was: the new set is built
//! in a `.tmp-<pid>` folder that is removed on the way out. Readers that resolve `current`
//! see the old set or the new one, never a half-written one, because a set folder is
//! complete before any link names it and sets are only deleted once no link names them.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use md5::{Digest, Md5};

use crate::config::{Config, DetectSection};
use crate::detect::{LoadReport, RuleSet};

pub const CURRENT: &str = "current";
pub const PREVIOUS: &str = "previous";
/// One line per attempt, in `detect.update_dir` (rotated to `.1` at 64 KiB).
pub const LOG_FILE: &str = "rules-update.log";
/// What an installed set is: key=value lines.
pub const MANIFEST: &str = "update.info";
/// Entries (files, folders, links) an archive may hold. ET Open has about a hundred.
pub const MAX_ENTRIES: usize = 10_000;
/// A new set must load at least this share (percent) of the rules the installed set loads,
/// unless `--allow-shrink`: a feed that suddenly loads half as much is broken, not leaner.
pub const MIN_SHARE_PERCENT: usize = 50;
const SET_PREFIX: &str = "set-";
const TMP_PREFIX: &str = ".tmp-";
const LOCK_FILE: &str = ".lock";
const MD5_FILE_MAX: u64 = 4096;
const LOG_MAX_BYTES: u64 = 64 << 10;

/// Checks the `detect.update_*` keys: `Err((key, message))`.
pub fn validate(d: &DetectSection) -> Result<(), (&'static str, String)> {
    if let Some(url) = &d.update_url {
        let host = url.trim().strip_prefix("https://").ok_or((
            "detect.update_url",
            format!("{url:?} must start with https:// (it comes over the upload channel)"),
        ))?;
        if host.split('/').next().unwrap_or("").is_empty() {
            return Err(("detect.update_url", format!("{url:?} has no host")));
        }
    }
    if d.update_dir.as_os_str().is_empty() {
        return Err(("detect.update_dir", "must name a folder".into()));
    }
    for (key, v) in [
        ("detect.update_max_download_mib", d.update_max_download_mib),
        ("detect.update_max_unpacked_mib", d.update_max_unpacked_mib),
    ] {
        if v == 0 || v > 4096 {
            return Err((key, format!("{v} is outside 1..=4096")));
        }
    }
    Ok(())
}

/// Why an update did not happen: the operator's call was incomplete (exit 2), or the
/// archive or the machine failed it (exit 1). Either way nothing installed changed.
#[derive(Debug)]
pub enum UpdateError {
    Usage(String),
    Failed(String),
}

impl std::fmt::Display for UpdateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpdateError::Usage(m) | UpdateError::Failed(m) => f.write_str(m),
        }
    }
}

fn failed(m: impl Into<String>) -> UpdateError {
    UpdateError::Failed(m.into())
}

/// What `rules update` was asked to do.
#[derive(Clone, Debug, Default)]
pub struct UpdateOptions {
    /// A local archive instead of `detect.update_url`.
    pub from: Option<PathBuf>,
    /// Expected MD5 (hex), instead of `<url>.md5` / `<file>.md5`.
    pub md5: Option<String>,
    /// Install without a checksum to compare with.
    pub no_checksum: bool,
    /// Install even if the new set loads far fewer rules than the installed one.
    pub allow_shrink: bool,
}

/// How an update ended when it did not fail.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// The archive is the one already installed (same MD5); nothing changed.
    Unchanged { set: PathBuf, md5: String },
    /// The new set is `current`.
    Installed {
        set: PathBuf,
        md5: String,
        report: LoadReport,
    },
}

/// The `detect.update_dir` of a config, with its lock.
pub struct Store {
    pub dir: PathBuf,
    _lock: File,
}

impl Store {
    /// Opens (creating) the folder and takes its lock: one update or rollback at a time.
    pub fn open(dir: &Path) -> Result<Store, UpdateError> {
        fs::create_dir_all(dir).map_err(|e| failed(format!("{}: {e}", dir.display())))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| failed(format!("{}: {e}", lock_path.display())))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
            |_| {
                failed(format!(
                    "another rules update is running on {}",
                    dir.display()
                ))
            },
        )?;
        let store = Store {
            dir: dir.to_path_buf(),
            _lock: lock,
        };
        // Left by an update that was killed; under the lock nobody else is using them.
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
        Ok(store)
    }

    /// The set folder a link names (`current`, `previous`), if any.
    pub fn link(&self, name: &str) -> Option<PathBuf> {
        let t = fs::read_link(self.dir.join(name)).ok()?;
        Some(self.dir.join(t))
    }

    /// Points `name` at `set` (a folder in the store) by renaming a new link over it.
    fn set_link(&self, name: &str, set: &Path) -> io::Result<()> {
        let rel = set.file_name().ok_or(io::ErrorKind::InvalidInput)?;
        let tmp = self.dir.join(format!(".{name}.new"));
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(rel, &tmp)?;
        fs::rename(&tmp, self.dir.join(name))?;
        File::open(&self.dir)?.sync_all()
    }

    /// Removes set folders no link names any more.
    fn collect_garbage(&self) {
        let keep: Vec<PathBuf> = [CURRENT, PREVIOUS]
            .iter()
            .filter_map(|l| self.link(l))
            .collect();
        for e in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(SET_PREFIX) && !keep.contains(&e.path()) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }

    /// Appends a line to `rules-update.log`; a full log moves to `.1` first.
    pub fn log(&self, line: &str) {
        let path = self.dir.join(LOG_FILE);
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
        let text = format!("{now} {line}\n");
        if fs::metadata(&path).is_ok_and(|m| m.len() + text.len() as u64 > LOG_MAX_BYTES) {
            let _ = fs::rename(&path, path.with_extension("log.1"));
        }
        if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(&path) {
            let _ = f.write_all(text.as_bytes()).and_then(|()| f.sync_data());
        }
    }
}

/// A work folder removed when dropped (every way out of an update).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs an update; progress goes to `out`. The attempt is logged in the store either way.
pub fn update(
    cfg: &Config,
    opts: &UpdateOptions,
    out: &mut dyn Write,
) -> Result<Outcome, UpdateError> {
    let d = &cfg.detect;
    let source = match (&opts.from, &d.update_url) {
        (Some(f), _) => f.display().to_string(),
        (None, Some(u)) => u.trim().to_string(),
        (None, None) => {
            return Err(UpdateError::Usage(
                "detect.update_url is not set: set it, or give --from FILE".into(),
            ))
        }
    };
    if let Some(h) = &opts.md5 {
        if parse_hex_md5(h).is_none() {
            return Err(UpdateError::Usage(format!(
                "--md5 {h:?}: expected 32 hex digits"
            )));
        }
    }
    let store = Store::open(&d.update_dir)?;
    let r = update_in(cfg, &store, &source, opts, out);
    match &r {
        Ok(Outcome::Unchanged { md5, .. }) => store.log(&format!("unchanged {source} md5={md5}")),
        Ok(Outcome::Installed { set, md5, report }) => store.log(&format!(
            "installed {source} md5={md5} as {} (loaded {} of {} enabled rules)",
            set.file_name().unwrap_or_default().to_string_lossy(),
            report.loaded,
            report.enabled
        )),
        Err(e) => store.log(&format!("refused {source}: {e}")),
    }
    r
}

fn update_in(
    cfg: &Config,
    store: &Store,
    source: &str,
    opts: &UpdateOptions,
    out: &mut dyn Write,
) -> Result<Outcome, UpdateError> {
    let d = &cfg.detect;
    let work = TempDir(
        store
            .dir
            .join(format!("{TMP_PREFIX}{}", std::process::id())),
    );
    fs::create_dir(&work.0).map_err(|e| failed(format!("{}: {e}", work.0.display())))?;

    // The archive and the checksum it must have.
    let (archive, expected) = if let Some(file) = &opts.from {
        let expected = match (&opts.md5, opts.no_checksum) {
            (Some(h), _) => Some(parse_hex_md5(h).unwrap_or_default()),
            (None, true) => None,
            (None, false) => {
                let mut side = file.as_os_str().to_owned();
                side.push(".md5");
                let side = PathBuf::from(side);
                match fs::read(&side) {
                    Ok(t) => Some(
                        parse_md5_file(&String::from_utf8_lossy(&t), &base_name(source))
                            .map_err(|e| failed(format!("{}: {e}", side.display())))?,
                    ),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        return Err(UpdateError::Usage(format!(
                            "{}: nothing to check it against: give --md5 HEX, put {} beside \
                             it, or --no-checksum",
                            file.display(),
                            side.display()
                        )))
                    }
                    Err(e) => return Err(failed(format!("{}: {e}", side.display()))),
                }
            }
        };
        (file.clone(), expected)
    } else {
        let expected = match (&opts.md5, opts.no_checksum) {
            (Some(h), _) => Some(parse_hex_md5(h).unwrap_or_default()),
            (None, true) => None,
            (None, false) => {
                let url = format!("{source}.md5");
                let t =
                    crate::upgrade::fetch::fetch_small(cfg, &url, MD5_FILE_MAX).map_err(failed)?;
                Some(
                    parse_md5_file(&String::from_utf8_lossy(&t), &base_name(source))
                        .map_err(|e| failed(format!("{url}: {e}")))?,
                )
            }
        };
        let dest = work.0.join("archive.tar.gz");
        let max = u64::from(d.update_max_download_mib) << 20;
        let n = crate::upgrade::fetch::download_to(
            cfg,
            source,
            &dest,
            max,
            "detect.update_max_download_mib",
        )
        .map_err(failed)?;
        let _ = writeln!(out, "downloaded {source} ({n} bytes)");
        (dest, expected)
    };

    let actual = md5_of_file(&archive).map_err(|e| failed(format!("{source}: {e}")))?;
    match &expected {
        Some(want) if *want != actual => {
            return Err(failed(format!(
                "{source}: MD5 mismatch: the archive has {actual}, expected {want}"
            )))
        }
        Some(_) => {
            let _ = writeln!(out, "MD5 {actual} ok");
        }
        None => {
            let _ = writeln!(out, "MD5 {actual} (not checked: --no-checksum)");
        }
    }
    if let Some(cur) = store.link(CURRENT) {
        if Manifest::read(&cur).is_some_and(|m| m.md5 == actual) {
            let _ = writeln!(
                out,
                "already installed as {}; nothing to do",
                cur.file_name().unwrap_or_default().to_string_lossy()
            );
            return Ok(Outcome::Unchanged {
                set: cur,
                md5: actual,
            });
        }
    }

    let set = work.0.join("set");
    fs::create_dir(&set).map_err(|e| failed(format!("{}: {e}", set.display())))?;
    let limits = Limits {
        max_bytes: u64::from(d.update_max_unpacked_mib) << 20,
        max_entries: MAX_ENTRIES,
    };
    let unpacked =
        unpack_tar_gz(&archive, &set, &limits).map_err(|e| failed(format!("{source}: {e}")))?;
    let _ = writeln!(
        out,
        "unpacked {} entries ({} bytes)",
        unpacked.entries, unpacked.bytes
    );
    let rules_dir = arrange_rules(&set).map_err(|e| failed(format!("{source}: {e}")))?;

    // What the running set loads, to compare with (read before loading the new set, so the
    // two are never in memory together).
    let baseline = baseline(cfg, store);
    let test = test_section(d, &set, &rules_dir);
    if let Some(c) = &test.classification_file {
        if !c.is_file() {
            return Err(failed(format!(
                "{source}: has no {} but detect.classification_file names it; not installed",
                c.strip_prefix(&set).unwrap_or(c).display()
            )));
        }
    }
    let report = RuleSet::load(&test)
        .map_err(|e| failed(format!("{source}: test load: {e}")))?
        .report;
    let _ = writeln!(out, "{report}");
    if report.loaded == 0 {
        return Err(failed(format!(
            "{source}: its rules load no rule ({} enabled rule lines); not installed",
            report.enabled
        )));
    }
    if let Some((n, what)) = &baseline {
        if report.loaded * 100 < n * MIN_SHARE_PERCENT && !opts.allow_shrink {
            return Err(failed(format!(
                "{source}: loads {} rules, less than {MIN_SHARE_PERCENT} % of the {n} of {what}; \
                 not installed (--allow-shrink installs it anyway)",
                report.loaded
            )));
        }
    }
    Manifest {
        md5: actual.clone(),
        source: source.to_string(),
        loaded: report.loaded,
        enabled: report.enabled,
    }
    .write(&set)
    .map_err(|e| failed(format!("{}: {e}", set.display())))?;
    // On disk before any link names it: a power cut after the swap must not leave `current`
    // pointing at empty files.
    sync_tree(&set).map_err(|e| failed(format!("{}: {e}", set.display())))?;

    // Swap: the finished folder moves into the store, then the links turn.
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let mut final_dir = store
        .dir
        .join(format!("{SET_PREFIX}{stamp}-{}", &actual[..8]));
    for i in 2.. {
        if fs::symlink_metadata(&final_dir).is_err() {
            break;
        }
        final_dir = store
            .dir
            .join(format!("{SET_PREFIX}{stamp}-{}-{i}", &actual[..8]));
    }
    fs::rename(&set, &final_dir).map_err(|e| failed(format!("{}: {e}", final_dir.display())))?;
    let old = store.link(CURRENT);
    let swap = (|| -> io::Result<()> {
        if let Some(old) = &old {
            store.set_link(PREVIOUS, old)?;
        }
        store.set_link(CURRENT, &final_dir)
    })();
    if let Err(e) = swap {
        let _ = fs::remove_dir_all(&final_dir);
        return Err(failed(format!(
            "{}: switching the links: {e}",
            store.dir.display()
        )));
    }
    store.collect_garbage();
    let _ = writeln!(
        out,
        "installed as {} (current; previous: {})",
        final_dir.display(),
        old.as_deref()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "none".into())
    );
    if !uses_store(d) {
        let _ = writeln!(
            out,
            "note: detect.rules does not name {}/current/rules: the sensor does not use this set",
            d.update_dir.display()
        );
    }
    Ok(Outcome::Installed {
        set: final_dir,
        md5: actual,
        report,
    })
}

/// fsync of every file and folder below `dir` (links are not followed).
fn sync_tree(dir: &Path) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let t = e.file_type()?;
        if t.is_dir() {
            sync_tree(&e.path())?;
        } else if t.is_file() {
            File::open(e.path())?.sync_all()?;
        }
    }
    File::open(dir)?.sync_all()
}

/// Makes `previous` current again (and the current one previous).
pub fn rollback(d: &DetectSection, out: &mut dyn Write) -> Result<PathBuf, UpdateError> {
    let store = Store::open(&d.update_dir)?;
    let Some(prev) = store.link(PREVIOUS).filter(|p| p.is_dir()) else {
        return Err(failed(format!(
            "{}: no previous rule set to go back to",
            d.update_dir.display()
        )));
    };
    let cur = store.link(CURRENT);
    let swap = (|| -> io::Result<()> {
        store.set_link(CURRENT, &prev)?;
        match &cur {
            Some(c) => store.set_link(PREVIOUS, c),
            None => fs::remove_file(store.dir.join(PREVIOUS)),
        }
    })();
    swap.map_err(|e| failed(format!("{}: {e}", store.dir.display())))?;
    let name = prev.file_name().unwrap_or_default().to_string_lossy();
    store.log(&format!("rolled back to {name}"));
    let _ = writeln!(out, "current is {} again", prev.display());
    Ok(prev)
}

/// Whether `detect.rules` reads the store's `current` set.
pub fn uses_store(d: &DetectSection) -> bool {
    let cur = d.update_dir.join(CURRENT);
    d.rules.iter().any(|r| Path::new(r).starts_with(&cur))
}

/// The detection settings the sensor will load once `set` is current: paths below
/// `<update_dir>/current` moved onto `set`, the others as they are. When `detect.rules` does
/// not use the store, the set's `rules/` (and its classification.config) on their own.
fn test_section(d: &DetectSection, set: &Path, rules_dir: &Path) -> DetectSection {
    let cur = d.update_dir.join(CURRENT);
    let onto_set = |p: &Path| p.strip_prefix(&cur).ok().map(|rest| set.join(rest));
    let mut t = d.clone();
    if uses_store(d) {
        t.rules = d
            .rules
            .iter()
            .map(|r| onto_set(Path::new(r)).map_or_else(|| r.clone(), |p| p.display().to_string()))
            .collect();
        if let Some(c) = d.classification_file.as_deref().and_then(onto_set) {
            t.classification_file = Some(c);
        }
    } else {
        t.rules = vec![rules_dir.display().to_string()];
        let cls = rules_dir.join("classification.config");
        if cls.is_file() {
            t.classification_file = Some(cls);
        }
    }
    t
}

/// Rules loaded by the installed set (its manifest), else by `detect.rules`.
fn baseline(cfg: &Config, store: &Store) -> Option<(usize, String)> {
    if let Some(m) = store.link(CURRENT).and_then(|c| Manifest::read(&c)) {
        return Some((m.loaded, "the installed set".into()));
    }
    if cfg.detect.rules.is_empty() {
        return None;
    }
    let rs = RuleSet::load(&cfg.detect).ok()?;
    Some((rs.report.loaded, "detect.rules".into()))
}

/// `update.info` of an installed set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub md5: String,
    pub source: String,
    pub loaded: usize,
    pub enabled: usize,
}

impl Manifest {
    pub fn read(set: &Path) -> Option<Manifest> {
        let text = fs::read_to_string(set.join(MANIFEST)).ok()?;
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                .map(str::to_string)
        };
        Some(Manifest {
            md5: get("md5")?,
            source: get("source").unwrap_or_default(),
            loaded: get("loaded")?.parse().ok()?,
            enabled: get("enabled").and_then(|v| v.parse().ok()).unwrap_or(0),
        })
    }

    fn write(&self, set: &Path) -> io::Result<()> {
        let mut f = File::create(set.join(MANIFEST))?;
        write!(
            f,
            "md5={}\nsource={}\nloaded={}\nenabled={}\ninstalled={}\n",
            self.md5,
            self.source.replace('\n', " "),
            self.loaded,
            self.enabled,
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
        )?;
        f.sync_all()
    }
}

fn base_name(source: &str) -> String {
    let s = source.split(['?', '#']).next().unwrap_or(source);
    s.rsplit('/').next().unwrap_or(s).to_string()
}

/// Lower-case hex of 32 digits, or `None`.
pub fn parse_hex_md5(s: &str) -> Option<String> {
    let s = s.trim();
    (s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| s.to_ascii_lowercase())
}

/// The MD5 a checksum file gives for `name`: a bare `HEX` (ET Open's `.md5` files), md5sum's
/// `HEX  name` / `HEX *name`, or BSD's `MD5 (name) = HEX`. A file with one sum is taken as
/// the archive's whatever name it gives; with several, the line naming `name` is used.
pub fn parse_md5_file(text: &str, name: &str) -> Result<String, String> {
    let mut sums: Vec<(String, Option<String>)> = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if let Some(rest) = l.strip_prefix("MD5 (").or_else(|| l.strip_prefix("MD5(")) {
            let (n, hex) = rest
                .rsplit_once(") = ")
                .or_else(|| rest.rsplit_once(")= "))
                .ok_or_else(|| format!("not an MD5 line: {l:?}"))?;
            let hex = parse_hex_md5(hex).ok_or_else(|| format!("not an MD5 sum: {hex:?}"))?;
            sums.push((hex, Some(n.to_string())));
            continue;
        }
        let (hex, rest) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
        let hex = parse_hex_md5(hex).ok_or_else(|| format!("not an MD5 sum: {l:?}"))?;
        let n = rest.trim_start().trim_start_matches('*');
        sums.push((hex, (!n.is_empty()).then(|| n.to_string())));
    }
    match sums.len() {
        0 => Err("no MD5 sum in it".into()),
        1 => Ok(sums.remove(0).0),
        _ => sums
            .into_iter()
            .find(|(_, n)| n.as_deref().is_some_and(|n| base_name(n) == name))
            .map(|(h, _)| h)
            .ok_or_else(|| format!("several sums, none for {name}")),
    }
}

fn md5_of_file(p: &Path) -> io::Result<String> {
    let mut f = File::open(p)?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Bounds on what an archive may unpack to.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// File bytes, all files together.
    pub max_bytes: u64,
    pub max_entries: usize,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Unpacked {
    pub entries: usize,
    pub bytes: u64,
}

/// An archive member path as a path below the unpack folder: relative, no `..`, no root.
/// `None` for anything that could land outside.
pub fn member_path(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Whether a symlink at member path `at` pointing to `target` stays inside the unpack
/// folder: relative, and `..` only at the start, no more of them than `at` is deep. (`..`
/// after a name could climb out through another link; nothing is ever written through a
/// link, and every link obeys this rule, so following them always stays inside.)
pub fn link_stays_inside(at: &Path, target: &Path) -> bool {
    let depth = at.parent().map_or(0, |p| p.components().count());
    let mut ups = 0;
    let mut named = false;
    for c in target.components() {
        match c {
            Component::ParentDir if !named => ups += 1,
            Component::Normal(_) => named = true,
            Component::CurDir => {}
            _ => return false,
        }
    }
    named && ups <= depth
}

/// A reader that fails once more than its budget has been read (a gzip bomb).
struct Capped<R> {
    inner: R,
    left: u64,
    hit: Arc<AtomicBool>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            self.hit.store(true, Ordering::Relaxed);
            return Err(io::Error::other("unpacked size limit reached"));
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Unpacks a `.tar.gz` into the empty folder `dest`: regular files, folders, and links that
/// stay inside; nothing else. Files are created new (a second member of the same name is
/// refused) with default permissions; owners and modes in the archive are ignored.
pub fn unpack_tar_gz(archive: &Path, dest: &Path, limits: &Limits) -> Result<Unpacked, String> {
    let f = File::open(archive).map_err(|e| format!("{}: {e}", archive.display()))?;
    let hit = Arc::new(AtomicBool::new(false));
    // Headers and padding come on top of the file bytes: 2 KiB per entry is generous.
    let budget = limits.max_bytes + (limits.max_entries as u64 + 16) * 2048;
    let gz = flate2::read::GzDecoder::new(io::BufReader::new(f));
    let mut ar = tar::Archive::new(Capped {
        inner: gz,
        left: budget,
        hit: hit.clone(),
    });
    let r = unpack_entries(&mut ar, dest, limits);
    if hit.load(Ordering::Relaxed) {
        return Err(format!(
            "unpacks to more than {} bytes; refused",
            limits.max_bytes
        ));
    }
    r
}

fn unpack_entries<R: Read>(
    ar: &mut tar::Archive<R>,
    dest: &Path,
    limits: &Limits,
) -> Result<Unpacked, String> {
    use tar::EntryType as T;
    let corrupt = |e: io::Error| format!("not a valid .tar.gz: {e}");
    let mut done = Unpacked::default();
    for entry in ar.entries().map_err(corrupt)? {
        let mut e = entry.map_err(corrupt)?;
        done.entries += 1;
        if done.entries > limits.max_entries {
            return Err(format!("more than {} entries; refused", limits.max_entries));
        }
        let raw = e.path().map_err(corrupt)?.into_owned();
        let shown = raw.display().to_string();
        let rel = member_path(&raw)
            .ok_or_else(|| format!("member {shown:?} points outside the archive; refused"))?;
        let kind = e.header().entry_type();
        if matches!(kind, T::XGlobalHeader) {
            continue;
        }
        if rel.as_os_str().is_empty() {
            if kind.is_dir() {
                continue;
            }
            return Err(format!("member {shown:?} has no name; refused"));
        }
        make_parents(dest, &rel).map_err(|m| format!("member {shown:?}: {m}; refused"))?;
        let target = dest.join(&rel);
        let size = e.size();
        match kind {
            T::Directory => match fs::symlink_metadata(&target) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(format!("member {shown:?}: a folder over a file; refused")),
                Err(_) => fs::create_dir(&target).map_err(|e| format!("{shown}: {e}"))?,
            },
            T::Regular | T::Continuous => {
                done.bytes += size;
                if done.bytes > limits.max_bytes {
                    return Err(format!(
                        "unpacks to more than {} bytes; refused",
                        limits.max_bytes
                    ));
                }
                let mut out = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&target)
                    .map_err(|e| format!("member {shown:?}: {e}; refused"))?;
                let n = io::copy(&mut (&mut e).take(size), &mut out).map_err(corrupt)?;
                if n != size {
                    return Err(format!("member {shown:?} is cut short; archive truncated"));
                }
            }
            T::Symlink => {
                let to = e
                    .link_name()
                    .map_err(corrupt)?
                    .ok_or_else(|| format!("link {shown:?} has no target"))?
                    .into_owned();
                if !link_stays_inside(&rel, &to) {
                    return Err(format!(
                        "link {shown:?} -> {:?} points outside the archive; refused",
                        to.display().to_string()
                    ));
                }
                std::os::unix::fs::symlink(&to, &target)
                    .map_err(|e| format!("link {shown:?}: {e}; refused"))?;
            }
            T::Link => {
                // A hard link names an earlier member: copied, so the set owns its files.
                let to = e
                    .link_name()
                    .map_err(corrupt)?
                    .ok_or_else(|| format!("link {shown:?} has no target"))?
                    .into_owned();
                let src = member_path(&to).map(|p| dest.join(p));
                let ok = src
                    .as_ref()
                    .and_then(|s| fs::symlink_metadata(s).ok())
                    .is_some_and(|m| m.is_file());
                if !ok || fs::symlink_metadata(&target).is_ok() {
                    return Err(format!(
                        "hard link {shown:?} -> {:?} does not name an earlier file; refused",
                        to.display().to_string()
                    ));
                }
                let n = fs::copy(src.unwrap_or_default(), &target)
                    .map_err(|e| format!("{shown}: {e}"))?;
                done.bytes += n;
                if done.bytes > limits.max_bytes {
                    return Err(format!(
                        "unpacks to more than {} bytes; refused",
                        limits.max_bytes
                    ));
                }
            }
            other => {
                return Err(format!(
                    "member {shown:?} is a {other:?} entry; only files, folders and links \
                     are allowed; refused"
                ))
            }
        }
    }
    Ok(done)
}

/// Creates the folders above member `rel`; an existing link or file on the way is refused
/// (nothing is written through a link).
fn make_parents(dest: &Path, rel: &Path) -> Result<(), String> {
    let mut p = dest.to_path_buf();
    let Some(parent) = rel.parent() else {
        return Ok(());
    };
    for c in parent.components() {
        p.push(c);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err("its folder is a link or a file".into()),
            Err(_) => fs::create_dir(&p).map_err(|e| e.to_string())?,
        }
    }
    Ok(())
}

/// The set's rule folder `rules/` (as in ET Open's archive). An archive with its `*.rules`
/// at the top gets them (and `classification.config`) moved into `rules/`.
pub fn arrange_rules(set: &Path) -> Result<PathBuf, String> {
    let rules = set.join("rules");
    let is_rules = |p: &Path| p.extension().is_some_and(|e| e == "rules");
    let count = |dir: &Path| {
        fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| is_rules(&e.path()))
            .count()
    };
    match fs::symlink_metadata(&rules) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err("rules is not a folder".into()),
        Err(_) => {
            if count(set) == 0 {
                return Err("no rules/ folder and no *.rules files in the archive".into());
            }
            fs::create_dir(&rules).map_err(|e| e.to_string())?;
            for e in fs::read_dir(set).map_err(|e| e.to_string())?.flatten() {
                let p = e.path();
                if is_rules(&p) || e.file_name() == "classification.config" {
                    fs::rename(&p, rules.join(e.file_name())).map_err(|e| e.to_string())?;
                }
            }
        }
    }
    if count(&rules) == 0 {
        return Err("no *.rules files in its rules/ folder".into());
    }
    Ok(rules)
}

/// A running `osect-sensor run` and what `rules update` did about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SensorReload {
    /// Sent SIGHUP.
    Signalled(u32),
    /// Runs with this config but does not catch SIGHUP (an older binary): it would die of
    /// it, so it is left alone and must be restarted.
    NoHandler(u32),
    /// Sending failed.
    Failed(u32, String),
}

/// The `osect-sensor run` processes (under `proc_dir`) started with `config`, each with
/// whether it catches SIGHUP.
pub fn sensors_using(proc_dir: &Path, config: &Path) -> Vec<(u32, bool)> {
    let want = fs::canonicalize(config).unwrap_or_else(|_| config.to_path_buf());
    let mut out = Vec::new();
    for pid in crate::diag::sensor_pids(proc_dir) {
        let dir = proc_dir.join(pid.to_string());
        let Ok(cmdline) = fs::read(dir.join("cmdline")) else {
            continue;
        };
        let Some(arg) = config_arg(&cmdline) else {
            continue;
        };
        let path = if arg.is_absolute() {
            arg
        } else {
            match fs::read_link(dir.join("cwd")) {
                Ok(cwd) => cwd.join(arg),
                Err(_) => continue,
            }
        };
        let path = fs::canonicalize(&path).unwrap_or(path);
        if path != want {
            continue;
        }
        let catches = fs::read_to_string(dir.join("status"))
            .ok()
            .is_some_and(|s| catches_signal(&s, libc::SIGHUP));
        out.push((pid, catches));
    }
    out
}

/// Tells every sensor running with `config` to reload its rules.
pub fn reload_sensors(proc_dir: &Path, config: &Path) -> Vec<SensorReload> {
    sensors_using(proc_dir, config)
        .into_iter()
        .map(|(pid, catches)| {
            if !catches {
                return SensorReload::NoHandler(pid);
            }
            let Ok(raw) = i32::try_from(pid) else {
                return SensorReload::Failed(pid, "pid out of range".into());
            };
            match nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(raw),
                nix::sys::signal::Signal::SIGHUP,
            ) {
                Ok(()) => SensorReload::Signalled(pid),
                Err(e) => SensorReload::Failed(pid, e.to_string()),
            }
        })
        .collect()
}

/// The `--config` value of an `osect-sensor run` command line (NUL-separated).
pub fn config_arg(cmdline: &[u8]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let mut args = cmdline.split(|&b| b == 0).skip(2);
    while let Some(a) = args.next() {
        if a == b"--config" {
            return args
                .next()
                .filter(|v| !v.is_empty())
                .map(|v| PathBuf::from(std::ffi::OsStr::from_bytes(v)));
        }
        if let Some(v) = a.strip_prefix(b"--config=") {
            return Some(PathBuf::from(std::ffi::OsStr::from_bytes(v)));
        }
    }
    None
}

/// Whether `/proc/<pid>/status` text says the process catches signal `sig` (`SigCgt`).
pub fn catches_signal(status: &str, sig: i32) -> bool {
    let Some(mask) = status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
    else {
        return false;
    };
    (1..=64).contains(&sig) && mask & (1u64 << (sig - 1)) != 0
}

#[cfg(test)]
mod tests;
