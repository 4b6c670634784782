//! Retention: the sensor's data never outgrows its budget and never fills the disk.
//!
//! The data of one interval is a unit: its folder in `log_dir` and its bundle, either waiting in
//! the spool root (unsent) or delivered in `spool/sent/`. Units are judged oldest first (names
//! are fixed-width timestamps) and removed in this order, until every limit holds:
//!
//! 1. delivered units (folder, then bundle) — by age (`max_age`, bundle mtime) and by budget;
//! 2. folders whose interval still has its unsent bundle (the bundle holds the same logs);
//! 3. unsent data, only when it alone exceeds the budget: a loss, logged as an error and counted.
//!
//! The budget is the smaller of `max_bytes` and `max_disk_percent` of the file system holding
//! the spool, measured in allocated bytes. Delivered data also goes when that file system has
//! less than [`MIN_FREE_PERCENT`] free, whatever filled it. A folder is always removed before
//! its bundle: a folder left without any bundle would be bundled and sent again after a restart.
//! The interval being written (`….tmp`) is never touched.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::queue::{bundle_interval_name, bundles_in};
use super::{interval_name, sync_dir, SpoolError, SENT_DIR};
use crate::config::RetentionConfig;
use crate::stats::Stats;

/// Below this share of free space on the spool's file system, delivered data is removed even
/// when the sensor is within its own budget: something else is filling the disk.
pub const MIN_FREE_PERCENT: u64 = 5;

/// The limits, from `[retention]`.
#[derive(Clone, Debug)]
pub struct RetentionPolicy {
    pub max_age: Option<Duration>,
    pub max_disk_percent: u8,
    pub max_bytes: Option<u64>,
}

impl From<&RetentionConfig> for RetentionPolicy {
    fn from(c: &RetentionConfig) -> Self {
        RetentionPolicy {
            max_age: (c.max_age_days > 0)
                .then(|| Duration::from_secs(u64::from(c.max_age_days) * 86_400)),
            max_disk_percent: c.max_disk_percent,
            max_bytes: (c.max_bytes > 0).then_some(c.max_bytes),
        }
    }
}

/// Size and free space of a file system, bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskSpace {
    pub total: u64,
    /// Free to an unprivileged writer (df's Avail).
    pub avail: u64,
}

/// Where retention learns the file system's size and free space; a fake in tests.
pub trait DiskProbe: Send {
    fn space(&self, path: &Path) -> io::Result<DiskSpace>;
}

/// The real file system, through statvfs(3).
pub struct Statvfs;

impl DiskProbe for Statvfs {
    fn space(&self, path: &Path) -> io::Result<DiskSpace> {
        let s = nix::sys::statvfs::statvfs(path).map_err(io::Error::from)?;
        let unit = s.fragment_size() as u64;
        Ok(DiskSpace {
            total: (s.blocks() as u64).saturating_mul(unit),
            avail: (s.blocks_available() as u64).saturating_mul(unit),
        })
    }
}

/// Bytes a file or folder (recursively) occupies on disk: allocated blocks, not apparent
/// length, since a minute folder of small logs costs a block per file.
pub fn disk_bytes(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    let own = meta.blocks().saturating_mul(512);
    if !meta.is_dir() {
        return own;
    }
    let mut sum = own;
    if let Ok(entries) = fs::read_dir(path) {
        for e in entries.flatten() {
            sum = sum.saturating_add(disk_bytes(&e.path()));
        }
    }
    sum
}

/// What one pass removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Delivered bundles removed (with their folders).
    pub sent_deleted: usize,
    /// Interval folders removed whose unsent bundle was kept.
    pub copies_deleted: usize,
    /// Units never delivered that were dropped to stay within the budget.
    pub unsent_dropped: usize,
    pub bytes_freed: u64,
    /// Limits still exceeded after everything removable was removed.
    pub still_over: bool,
}

#[derive(Debug, Default)]
struct Unit {
    folder: Option<(PathBuf, u64)>,
    unsent: Option<(PathBuf, u64)>,
    sent: Option<(PathBuf, u64, SystemTime)>,
}

impl Unit {
    fn bytes(&self) -> u64 {
        self.folder.as_ref().map_or(0, |f| f.1)
            + self.unsent.as_ref().map_or(0, |b| b.1)
            + self.sent.as_ref().map_or(0, |b| b.1)
    }
}

/// Retention over one log folder and one spool. Folder sizes are remembered between passes
/// (a closed interval folder does not change), so a pass costs a listing, not a walk.
pub struct Retention {
    policy: RetentionPolicy,
    log_dir: PathBuf,
    spool_dir: PathBuf,
    probe: Box<dyn DiskProbe>,
    folder_sizes: HashMap<String, u64>,
    stats: Arc<Stats>,
}

impl Retention {
    pub fn new(
        policy: RetentionPolicy,
        log_dir: &Path,
        spool_dir: &Path,
        probe: Box<dyn DiskProbe>,
        stats: Arc<Stats>,
    ) -> Retention {
        Retention {
            policy,
            log_dir: log_dir.to_path_buf(),
            spool_dir: spool_dir.to_path_buf(),
            probe,
            folder_sizes: HashMap::new(),
            stats,
        }
    }

    /// Applies age and budget at time `now`.
    pub fn enforce(&mut self, now: SystemTime) -> Result<RetentionReport, SpoolError> {
        self.pass(now, 0)
    }

    /// Like [`enforce`](Self::enforce), and also frees space until `need` bytes are available
    /// on the spool's file system (a bundle failed with ENOSPC and will be retried).
    pub fn make_room(&mut self, now: SystemTime, need: u64) -> Result<RetentionReport, SpoolError> {
        self.pass(now, need)
    }

    fn inventory(&mut self) -> Result<BTreeMap<String, Unit>, SpoolError> {
        let mut units: BTreeMap<String, Unit> = BTreeMap::new();
        let mut seen = HashMap::new();
        match fs::read_dir(&self.log_dir) {
            Ok(entries) => {
                for e in entries {
                    let e = e.map_err(|err| SpoolError::io(&self.log_dir, err))?;
                    let path = e.path();
                    // `interval_name` refuses `….tmp`: the interval being written is not ours.
                    let Ok((name, _)) = interval_name(&path) else {
                        continue;
                    };
                    if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        continue;
                    }
                    let size = match self.folder_sizes.get(name) {
                        Some(&s) => s,
                        None => disk_bytes(&path),
                    };
                    seen.insert(name.to_owned(), size);
                    units.entry(name.to_owned()).or_default().folder = Some((path.clone(), size));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(SpoolError::io(&self.log_dir, e)),
        }
        self.folder_sizes = seen;
        for (dir, sent) in [
            (self.spool_dir.clone(), false),
            (self.spool_dir.join(SENT_DIR), true),
        ] {
            for path in bundles_in(&dir)? {
                let Ok(meta) = fs::metadata(&path) else {
                    continue;
                };
                let size = meta.blocks().saturating_mul(512);
                let Some(name) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(bundle_interval_name)
                else {
                    continue;
                };
                let unit = units.entry(name.to_owned()).or_default();
                if sent {
                    let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                    unit.sent = Some((path, size, mtime));
                } else {
                    unit.unsent = Some((path, size));
                }
            }
        }
        Ok(units)
    }

    fn pass(&mut self, now: SystemTime, need: u64) -> Result<RetentionReport, SpoolError> {
        let mut units = self.inventory()?;
        let mut report = RetentionReport::default();

        if let Some(max_age) = self.policy.max_age {
            let expired: Vec<String> = units
                .iter()
                .filter(|(_, u)| {
                    u.sent
                        .as_ref()
                        .is_some_and(|s| now.duration_since(s.2).unwrap_or_default() > max_age)
                })
                .map(|(n, _)| n.clone())
                .collect();
            for name in expired {
                self.remove_sent(&name, &mut units, &mut report)?;
            }
        }

        let total = self
            .probe
            .space(&self.spool_dir)
            .map_err(|e| SpoolError::io(&self.spool_dir, e))?
            .total;
        let pct_budget = total / 100 * u64::from(self.policy.max_disk_percent);
        let budget = self
            .policy
            .max_bytes
            .map_or(pct_budget, |m| m.min(pct_budget));
        let mut used: u64 = units.values().map(Unit::bytes).sum();

        // 1. Delivered units, while over budget, short of free space, or short of `need`.
        let sent: Vec<String> = units
            .iter()
            .filter(|(_, u)| u.sent.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        for name in sent {
            if !(used > budget || self.short_of_space(need, true)?) {
                break;
            }
            used -= self.remove_sent(&name, &mut units, &mut report)?;
        }
        // 2. Folder copies of unsent bundles.
        let copies: Vec<String> = units
            .iter()
            .filter(|(_, u)| u.unsent.is_some() && u.folder.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        for name in copies {
            if !(used > budget || self.short_of_space(need, false)?) {
                break;
            }
            let unit = units.get_mut(&name).expect("listed above");
            if let Some((path, size)) = unit.folder.take() {
                self.remove(&path, true)?;
                report.copies_deleted += 1;
                report.bytes_freed += size;
                used -= size;
            }
        }
        // 3. Unsent data: the last resort.
        let rest: Vec<String> = units
            .iter()
            .filter(|(_, u)| u.bytes() > 0)
            .map(|(n, _)| n.clone())
            .collect();
        for name in rest {
            if !(used > budget || self.short_of_space(need, false)?) {
                break;
            }
            let unit = units.remove(&name).expect("listed above");
            let bytes = unit.bytes();
            if let Some((path, _)) = &unit.folder {
                self.remove(path, true)?;
            }
            if let Some((path, _)) = &unit.unsent {
                self.remove(path, false)?;
            }
            if let Some((path, _, _)) = &unit.sent {
                self.remove(path, false)?;
            }
            used -= bytes;
            report.unsent_dropped += 1;
            report.bytes_freed += bytes;
            Stats::inc(&self.stats.retention_unsent_dropped);
            log::error!(
                "retention: dropped {name} ({bytes} bytes) before it was delivered: the spool \
                 is over its budget of {budget} bytes or the disk is full"
            );
        }
        report.still_over = used > budget || self.short_of_space(need, false)?;
        Stats::add(&self.stats.retention_bytes_freed, report.bytes_freed);
        if report.sent_deleted + report.copies_deleted > 0 {
            log::info!(
                "retention: removed {} delivered interval(s) and {} folder copies, {} bytes; \
                 data now {used} bytes (budget {budget})",
                report.sent_deleted,
                report.copies_deleted,
                report.bytes_freed
            );
        }
        Ok(report)
    }

    /// Whether the spool's file system lacks `need` bytes, or (when `floor`) is below
    /// [`MIN_FREE_PERCENT`] free.
    fn short_of_space(&self, need: u64, floor: bool) -> Result<bool, SpoolError> {
        if need == 0 && !floor {
            return Ok(false);
        }
        let s = self
            .probe
            .space(&self.spool_dir)
            .map_err(|e| SpoolError::io(&self.spool_dir, e))?;
        Ok(s.avail < need || (floor && s.avail < s.total / 100 * MIN_FREE_PERCENT))
    }

    /// Removes a delivered unit's bundle and its folder (unless an unsent bundle of the same
    /// interval still needs it); returns the bytes freed.
    fn remove_sent(
        &mut self,
        name: &str,
        units: &mut BTreeMap<String, Unit>,
        report: &mut RetentionReport,
    ) -> Result<u64, SpoolError> {
        let Some(unit) = units.get_mut(name) else {
            return Ok(0);
        };
        let mut freed = 0;
        if unit.unsent.is_none() {
            if let Some((path, size)) = unit.folder.take() {
                self.remove(&path, true)?;
                freed += size;
            }
        }
        if let Some((path, size, _)) = unit.sent.take() {
            self.remove(&path, false)?;
            freed += size;
            report.sent_deleted += 1;
            Stats::inc(&self.stats.retention_sent_deleted);
        }
        report.bytes_freed += freed;
        Ok(freed)
    }

    /// Removes a folder or file and makes the removal durable; already gone is fine.
    fn remove(&mut self, path: &Path, dir: bool) -> Result<(), SpoolError> {
        let r = if dir {
            fs::remove_dir_all(path)
        } else {
            fs::remove_file(path)
        };
        match r {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(SpoolError::io(path, e)),
        }
        if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            self.folder_sizes.remove(name);
        }
        match path.parent() {
            Some(parent) => sync_dir(parent),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A file system of `total` bytes whose only user is the test's folder.
    struct FakeDisk {
        total: u64,
        root: PathBuf,
        other: Arc<Mutex<u64>>,
    }

    impl DiskProbe for FakeDisk {
        fn space(&self, _: &Path) -> io::Result<DiskSpace> {
            let used = disk_bytes(&self.root) + *self.other.lock().unwrap();
            Ok(DiskSpace {
                total: self.total,
                avail: self.total.saturating_sub(used),
            })
        }
    }

    struct Fixture {
        _t: tempfile::TempDir,
        logs: PathBuf,
        spool: PathBuf,
        root: PathBuf,
    }

    fn fixture() -> Fixture {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().to_path_buf();
        let logs = root.join("logs");
        let spool = root.join("spool");
        fs::create_dir_all(spool.join(SENT_DIR)).unwrap();
        fs::create_dir_all(&logs).unwrap();
        Fixture {
            _t: t,
            logs,
            spool,
            root,
        }
    }

    fn name(minute: u32) -> String {
        format!("realtime-2024-01-01-10:{minute:02}:00")
    }

    /// Interval `minute`: a folder with `size` bytes of log, and a bundle unsent or sent with
    /// mtime `age` before `now`.
    fn unit(f: &Fixture, minute: u32, size: usize, sent: bool, now: SystemTime, age: Duration) {
        let n = name(minute);
        fs::create_dir_all(f.logs.join(&n)).unwrap();
        fs::write(f.logs.join(&n).join("conn.log"), vec![b'x'; size]).unwrap();
        let dir = if sent {
            f.spool.join(SENT_DIR)
        } else {
            f.spool.clone()
        };
        let b = dir.join(format!("{n}.tar.zst"));
        fs::write(&b, vec![b'z'; size / 4]).unwrap();
        let file = fs::File::options().write(true).open(&b).unwrap();
        file.set_modified(now - age).unwrap();
    }

    fn state(f: &Fixture, minute: u32) -> (bool, bool, bool) {
        let n = name(minute);
        (
            f.logs.join(&n).exists(),
            f.spool.join(format!("{n}.tar.zst")).exists(),
            f.spool.join(SENT_DIR).join(format!("{n}.tar.zst")).exists(),
        )
    }

    fn retention(f: &Fixture, policy: RetentionPolicy, total: u64) -> (Retention, Arc<Stats>) {
        let stats = Arc::new(Stats::default());
        let probe = FakeDisk {
            total,
            root: f.root.clone(),
            other: Arc::new(Mutex::new(0)),
        };
        (
            Retention::new(policy, &f.logs, &f.spool, Box::new(probe), stats.clone()),
            stats,
        )
    }

    const DAY: Duration = Duration::from_secs(86_400);
    const BIG: u64 = 1 << 40;

    #[test]
    fn age_removes_only_old_delivered_units() {
        let f = fixture();
        let now = SystemTime::now();
        unit(&f, 0, 1000, true, now, 9 * DAY);
        unit(&f, 1, 1000, true, now, 8 * DAY);
        unit(&f, 2, 1000, true, now, DAY);
        unit(&f, 3, 1000, false, now, 30 * DAY);
        fs::create_dir_all(f.logs.join(format!("{}.tmp", name(4)))).unwrap();
        let policy = RetentionPolicy {
            max_age: Some(7 * DAY),
            max_disk_percent: 70,
            max_bytes: None,
        };
        let (mut r, stats) = retention(&f, policy, BIG);
        let rep = r.enforce(now).unwrap();
        assert_eq!(rep.sent_deleted, 2);
        assert_eq!(rep.unsent_dropped, 0);
        assert_eq!(state(&f, 0), (false, false, false));
        assert_eq!(state(&f, 1), (false, false, false));
        assert_eq!(state(&f, 2), (true, false, true));
        assert_eq!(
            state(&f, 3),
            (true, true, false),
            "unsent is never aged out"
        );
        assert!(f.logs.join(format!("{}.tmp", name(4))).exists());
        assert_eq!(stats.snapshot().retention_sent_deleted, 2);
        // A fake clock a week later takes the rest of the delivered data.
        let rep = r.enforce(now + 7 * DAY).unwrap();
        assert_eq!(rep.sent_deleted, 1);
        assert_eq!(state(&f, 2), (false, false, false));
    }

    #[test]
    fn byte_budget_removes_oldest_delivered_then_copies_then_unsent() {
        let f = fixture();
        let now = SystemTime::now();
        for m in 0..4 {
            unit(&f, m, 40_000, true, now, Duration::ZERO);
        }
        for m in 4..8 {
            unit(&f, m, 40_000, false, now, Duration::ZERO);
        }
        let unit_bytes = disk_bytes(&f.logs.join(name(0)))
            + disk_bytes(&f.spool.join(SENT_DIR).join(format!("{}.tar.zst", name(0))));
        let all = 8 * unit_bytes;
        // Room for 6 units: the two oldest delivered go, nothing else.
        let policy = |max| RetentionPolicy {
            max_age: None,
            max_disk_percent: 99,
            max_bytes: Some(max),
        };
        let (mut r, _) = retention(&f, policy(6 * unit_bytes), BIG);
        let rep = r.enforce(now).unwrap();
        assert_eq!(
            (rep.sent_deleted, rep.copies_deleted, rep.unsent_dropped),
            (2, 0, 0)
        );
        assert_eq!(state(&f, 1), (false, false, false));
        assert_eq!(state(&f, 2), (true, false, true));
        assert!(all - rep.bytes_freed <= 6 * unit_bytes);

        // Room for the unsent bundles without their folders: all delivered data and the
        // folder copies go, every unsent bundle stays.
        let bundle = disk_bytes(&f.spool.join(format!("{}.tar.zst", name(4))));
        let (mut r, stats) = retention(&f, policy(4 * bundle), BIG);
        let rep = r.enforce(now).unwrap();
        assert_eq!(
            (rep.sent_deleted, rep.copies_deleted, rep.unsent_dropped),
            (2, 4, 0)
        );
        for m in 4..8 {
            assert_eq!(state(&f, m), (false, true, false), "minute {m}");
        }
        assert_eq!(stats.snapshot().retention_unsent_dropped, 0);

        // A budget below the unsent data: the oldest unsent go, loudly.
        let (mut r, stats) = retention(&f, policy(2 * bundle), BIG);
        let rep = r.enforce(now).unwrap();
        assert_eq!(rep.unsent_dropped, 2);
        assert_eq!(stats.snapshot().retention_unsent_dropped, 2);
        assert_eq!(state(&f, 5), (false, false, false));
        assert_eq!(state(&f, 6), (false, true, false));
        assert!(!rep.still_over);
    }

    #[test]
    fn percent_budget_and_free_space_floor() {
        let f = fixture();
        let now = SystemTime::now();
        for m in 0..10 {
            unit(&f, m, 40_000, m < 6, now, Duration::ZERO);
        }
        let used = disk_bytes(&f.logs) + disk_bytes(&f.spool);
        // The data is ~half of a disk twice its size; a 30 % budget takes delivered units.
        let policy = RetentionPolicy {
            max_age: None,
            max_disk_percent: 30,
            max_bytes: None,
        };
        let (mut r, _) = retention(&f, policy.clone(), used * 2);
        let rep = r.enforce(now).unwrap();
        assert!(rep.sent_deleted > 0 && rep.unsent_dropped == 0, "{rep:?}");
        assert!(disk_bytes(&f.logs) + disk_bytes(&f.spool) <= used * 2 * 30 / 100 + 8192);
        assert_eq!(state(&f, 0), (false, false, false), "oldest first");

        // Within budget, but another program filled the disk: delivered data goes, unsent
        // stays.
        let other = Arc::new(Mutex::new(0));
        let total = used * 10;
        let probe = FakeDisk {
            total,
            root: f.root.clone(),
            other: other.clone(),
        };
        let stats = Arc::new(Stats::default());
        let policy = RetentionPolicy {
            max_disk_percent: 90,
            ..policy
        };
        let mut r = Retention::new(policy, &f.logs, &f.spool, Box::new(probe), stats);
        *other.lock().unwrap() = total - disk_bytes(&f.root) - 1000;
        let rep = r.enforce(now).unwrap();
        assert_eq!(rep.unsent_dropped, 0);
        for m in 0..6 {
            assert!(!state(&f, m).2, "minute {m} delivered data removed");
        }
        for m in 6..10 {
            assert_eq!(state(&f, m), (true, true, false));
        }

        // ENOSPC: room for a bundle is made even from unsent data, oldest first.
        *other.lock().unwrap() = total - disk_bytes(&f.root) - 1000;
        let rep = r.make_room(now, 60_000).unwrap();
        assert!(rep.copies_deleted >= 1, "{rep:?}");
        assert!(!rep.still_over);
        assert_eq!(state(&f, 9), (true, true, false), "newest kept");
    }

    #[test]
    fn statvfs_reads_the_real_file_system() {
        let t = tempfile::tempdir().unwrap();
        let s = Statvfs.space(t.path()).unwrap();
        assert!(s.total > 0 && s.avail <= s.total);
        assert!(Statvfs.space(&t.path().join("missing")).is_err());
    }
}
