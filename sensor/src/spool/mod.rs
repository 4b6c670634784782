//! Spool stage: finished interval folders become minute bundles queued for upload.
//!
//! A bundle is `<spool_dir>/realtime-YYYY-mm-dd-HH:MM:SS.tar.zst`: a flat tar (bare file names,
//! no directories, sorted by name) of the interval folder's files, compressed with zstd. This is
//! the format the OsecT cloud already ingests (reference §1.4), made reproducible: the same logs
//! always give the same bytes, so a re-bundled interval is recognisably the same upload.
//!
//! Durability protocol, chosen so that a power cut at any instant leaves either no bundle or a
//! complete one under the visible name:
//! 1. stream the tar.zst into `<spool_dir>/tmp/<name>.tar.zst.part`;
//! 2. fsync that file;
//! 3. rename it to `<spool_dir>/<name>.tar.zst` (atomic on one file system, replaces an older
//!    bundle of the same interval);
//! 4. fsync `<spool_dir>` so the rename itself survives a crash.
//!
//! A crash between 1 and 3 leaves a `.part` that [`recover`] removes at start-up; an interval
//! folder that never got its bundle is found again by [`pending_intervals`].

pub mod queue;
pub mod retention;
pub mod worker;

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read};
use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;

/// Prefix of interval folder and bundle names.
pub const INTERVAL_PREFIX: &str = "realtime-";
/// Extension of a finished bundle (after the interval name).
pub const BUNDLE_EXT: &str = ".tar.zst";
/// Extension of a bundle still being written, inside `<spool_dir>/tmp/`.
pub const PART_EXT: &str = ".part";
/// Subfolder of the spool holding bundles being written.
pub const TMP_DIR: &str = "tmp";
/// Subfolder of the spool where an uploader may keep delivered bundles; an interval with a
/// bundle there is not pending (it was bundled and sent already).
pub const SENT_DIR: &str = "sent";
/// Suffix of an interval folder the log stage is still writing.
const OPEN_SUFFIX: &str = ".tmp";
/// `chrono` format of the time part of an interval name (local wall clock of the sensor's
/// configured zone, as the reference product names them).
const NAME_TIME_FORMAT: &str = "%Y-%m-%d-%H:%M:%S";
/// Length of the time part of a name, `YYYY-mm-dd-HH:MM:SS`.
const STAMP_LEN: usize = 19;
/// Mode of every tar member: the uploaded logs are plain world-readable files (reference §1.5
/// chmods p0f-k.log to 644; Python's tarfile records the file's own mode, which is 0644 there).
const MEMBER_MODE: u32 = 0o644;
/// Write buffer between the zstd encoder and the file: big enough to make few syscalls, small
/// enough for a gateway.
const WRITE_BUF: usize = 64 * 1024;

/// Why a spool operation failed. Every variant names the path it was working on.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file-system operation on `path` failed (including ENOSPC while writing a bundle).
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// `path` is not an interval folder name of the form `realtime-YYYY-mm-dd-HH:MM:SS`.
    #[error(
        "{path}: not an interval folder name (expected realtime-YYYY-mm-dd-HH:MM:SS): {reason}"
    )]
    BadName { path: PathBuf, reason: &'static str },
    /// A file changed size while it was being bundled (the interval folder was not finished).
    #[error("{path}: file changed size while being bundled (expected {expected} bytes)")]
    FileChanged { path: PathBuf, expected: u64 },
}

impl SpoolError {
    fn io(path: &Path, source: io::Error) -> SpoolError {
        SpoolError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The OS error code behind this error, if any (e.g. `libc::ENOSPC`), so callers can tell a
    /// full disk from other failures and count it.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            SpoolError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// The interval name (`realtime-YYYY-mm-dd-HH:MM:SS`) of a folder path, and the interval start
/// in seconds since the epoch reading the name's wall-clock time as UTC (tar has no zone field;
/// what matters is that the value is a pure function of the name, for reproducible bundles).
fn interval_name(dir: &Path) -> Result<(&str, i64), SpoolError> {
    let bad = |reason| SpoolError::BadName {
        path: dir.to_path_buf(),
        reason,
    };
    let name = dir
        .file_name()
        .ok_or_else(|| bad("no final path component"))?;
    let name = name.to_str().ok_or_else(|| bad("not UTF-8"))?;
    let time = name
        .strip_prefix(INTERVAL_PREFIX)
        .ok_or_else(|| bad("missing realtime- prefix"))?;
    // The log stage names a second folder for the same interval `…-1`, `…-2` (a restart within
    // the interval); it is bundled under that name like any other.
    let time = match time.get(STAMP_LEN..).and_then(|s| s.strip_prefix('-')) {
        Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => &time[..STAMP_LEN],
        _ => time,
    };
    let start =
        NaiveDateTime::parse_from_str(time, NAME_TIME_FORMAT).map_err(|_| bad("bad timestamp"))?;
    Ok((name, start.and_utc().timestamp()))
}

/// Path of the finished bundle for interval `name`.
fn bundle_path(spool_dir: &Path, name: &str) -> PathBuf {
    spool_dir.join(format!("{name}{BUNDLE_EXT}"))
}

/// fsyncs a directory so that entries created, renamed or removed in it are durable.
fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| SpoolError::io(dir, e))
}

/// One regular file of the interval folder, to become one tar member.
struct Member {
    name: String,
    path: PathBuf,
}

/// The interval folder's regular files, sorted by name (byte order, which for the ASCII log
/// names is the order a listing shows). Anything else (subfolders, symlinks, sockets) is not a
/// log and is left out rather than failing the whole interval; it is reported with `log::warn!`.
fn list_members(interval_dir: &Path) -> Result<Vec<Member>, SpoolError> {
    let mut members = Vec::new();
    let entries = fs::read_dir(interval_dir).map_err(|e| SpoolError::io(interval_dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| SpoolError::io(interval_dir, e))?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(|e| SpoolError::io(&path, e))?;
        if !file_type.is_file() {
            log::warn!(
                "{}: not a regular file, left out of the bundle",
                path.display()
            );
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            log::warn!(
                "{}: file name is not UTF-8, left out of the bundle",
                path.display()
            );
            continue;
        };
        members.push(Member { name, path });
    }
    members.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(members)
}

/// Reads exactly `remaining` bytes from a file whose size was recorded in the tar header.
///
/// The tar crate copies until end of file and pads whatever it got, so a file that shrank after
/// its header was written would silently produce a corrupt archive; this reader turns that into
/// an error instead, and stops at the recorded size if the file grew. It also remembers whether
/// an error came from the input, so the caller can name the right path.
struct ExactReader {
    file: File,
    remaining: u64,
    input_failed: bool,
}

impl Read for ExactReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        match self.file.read(&mut buf[..want]) {
            Ok(0) => {
                self.input_failed = true;
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while being bundled",
                ))
            }
            Ok(n) => {
                self.remaining -= n as u64;
                Ok(n)
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.input_failed = true;
                }
                Err(e)
            }
        }
    }
}

/// Streams the tar.zst of `members` into `out` (the `.part` file) and fsyncs it.
fn write_bundle(
    members: &[Member],
    mtime: u64,
    out: File,
    part: &Path,
    zstd_level: i32,
) -> Result<(), SpoolError> {
    let out_err = |e| SpoolError::io(part, e);
    let mut encoder = zstd::Encoder::new(BufWriter::with_capacity(WRITE_BUF, out), zstd_level)
        .map_err(out_err)?;
    // A frame checksum lets the receiver tell a damaged upload from a good one; it costs 4 bytes.
    encoder.include_checksum(true).map_err(out_err)?;
    let mut builder = tar::Builder::new(encoder);
    for m in members {
        let file = File::open(&m.path).map_err(|e| SpoolError::io(&m.path, e))?;
        // Size from the open handle, so header and data describe the same file.
        let size = file
            .metadata()
            .map_err(|e| SpoolError::io(&m.path, e))?
            .len();
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(size);
        header.set_mode(MEMBER_MODE);
        header.set_mtime(mtime);
        header.set_uid(0);
        header.set_gid(0);
        let mut reader = ExactReader {
            file,
            remaining: size,
            input_failed: false,
        };
        if let Err(e) = builder.append_data(&mut header, &m.name, &mut reader) {
            return Err(if reader.input_failed {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    SpoolError::FileChanged {
                        path: m.path.clone(),
                        expected: size,
                    }
                } else {
                    SpoolError::io(&m.path, e)
                }
            } else {
                SpoolError::io(part, e)
            });
        }
    }
    let encoder = builder.into_inner().map_err(out_err)?;
    let buffered = encoder.finish().map_err(out_err)?;
    let file = buffered
        .into_inner()
        .map_err(|e| SpoolError::io(part, e.into_error()))?;
    file.sync_all().map_err(out_err)
}

/// Packs `interval_dir` (a finished `realtime-YYYY-mm-dd-HH:MM:SS/` folder) into
/// `<spool_dir>/realtime-YYYY-mm-dd-HH:MM:SS.tar.zst` atomically and durably, and returns the
/// bundle's path.
///
/// Members are the folder's regular files under their bare names, sorted, mode 0644, owner 0,
/// mtime = the interval start from the name; empty files are kept as empty members. The bundle
/// is streamed (memory use does not depend on the log sizes). Bundling an interval again
/// replaces its bundle atomically. On any error (ENOSPC included) the `.part` file is removed
/// and no bundle appears under the visible name; an older bundle of the same interval, if any,
/// is left as it was.
pub fn bundle_interval(
    interval_dir: &Path,
    spool_dir: &Path,
    zstd_level: i32,
) -> Result<PathBuf, SpoolError> {
    let (name, start) = interval_name(interval_dir)?;
    let members = list_members(interval_dir)?;

    let tmp_dir = spool_dir.join(TMP_DIR);
    fs::create_dir_all(&tmp_dir).map_err(|e| SpoolError::io(&tmp_dir, e))?;
    let part = tmp_dir.join(format!("{name}{BUNDLE_EXT}{PART_EXT}"));
    let out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&part)
        .map_err(|e| SpoolError::io(&part, e))?;

    // Times before 1970 cannot be in a tar header; no real interval is that old.
    let mtime = u64::try_from(start).unwrap_or(0);
    let finished = write_bundle(&members, mtime, out, &part, zstd_level);
    let bundle = bundle_path(spool_dir, name);
    let published =
        finished.and_then(|()| fs::rename(&part, &bundle).map_err(|e| SpoolError::io(&bundle, e)));
    if let Err(e) = published {
        // Best effort: the error being reported matters more than a failed clean-up, and
        // `recover` removes any `.part` left behind at the next start.
        let _ = fs::remove_file(&part);
        return Err(e);
    }
    sync_dir(spool_dir)?;
    Ok(bundle)
}

/// Removes `.part` files that a crash left in `<spool_dir>/tmp/` and returns how many.
///
/// Call it at start-up, before any bundling begins: a `.part` is never a usable bundle (the
/// visible bundle appears only by the final rename), and the interval it belonged to is still
/// reported by [`pending_intervals`]. A spool that does not exist yet has nothing to recover.
/// Files in `tmp/` that are not `.part` files are left alone.
pub fn recover(spool_dir: &Path) -> Result<usize, SpoolError> {
    let tmp_dir = spool_dir.join(TMP_DIR);
    let entries = match fs::read_dir(&tmp_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(SpoolError::io(&tmp_dir, e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| SpoolError::io(&tmp_dir, e))?;
        let path = entry.path();
        let is_part = path.extension() == Some(OsStr::new(&PART_EXT[1..]));
        if is_part {
            match fs::remove_file(&path) {
                Ok(()) => removed += 1,
                // Gone already (another clean-up got there first): nothing left to do.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(SpoolError::io(&path, e)),
            }
        }
    }
    if removed > 0 {
        sync_dir(&tmp_dir)?;
    }
    Ok(removed)
}

/// Finished interval folders in `log_dir` that have no bundle yet, oldest first.
///
/// An interval folder is a directory named `realtime-YYYY-mm-dd-HH:MM:SS` (one still being
/// written ends in `.tmp` and does not match). It counts as bundled when
/// `<spool_dir>/<name>.tar.zst` exists, or `<spool_dir>/sent/<name>.tar.zst` for an uploader
/// that keeps delivered bundles there. Names are fixed-width timestamps, so name order is time
/// order. A `log_dir` that does not exist yet has nothing pending.
pub fn pending_intervals(log_dir: &Path, spool_dir: &Path) -> Result<Vec<PathBuf>, SpoolError> {
    let entries = match fs::read_dir(log_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(SpoolError::io(log_dir, e)),
    };
    let sent_dir = spool_dir.join(SENT_DIR);
    let mut pending = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| SpoolError::io(log_dir, e))?;
        let path = entry.path();
        let Ok((name, _)) = interval_name(&path) else {
            continue;
        };
        if !entry
            .file_type()
            .map_err(|e| SpoolError::io(&path, e))?
            .is_dir()
        {
            continue;
        }
        let mut bundled = false;
        for candidate in [bundle_path(spool_dir, name), bundle_path(&sent_dir, name)] {
            bundled |= candidate
                .try_exists()
                .map_err(|e| SpoolError::io(&candidate, e))?;
        }
        if !bundled {
            pending.push(path);
        }
    }
    pending.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(pending)
}

/// Whether `name` is an interval folder that is still being written (`realtime-….tmp`).
pub fn is_open_interval_name(name: &str) -> bool {
    name.starts_with(INTERVAL_PREFIX) && name.ends_with(OPEN_SUFFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "realtime-2024-06-07-10:15:00";

    /// Makes `<root>/<name>/` holding `files` (name, contents).
    fn interval(root: &Path, name: &str, files: &[(&str, &[u8])]) -> PathBuf {
        let dir = root.join(name);
        fs::create_dir_all(&dir).unwrap();
        for (f, data) in files {
            fs::write(dir.join(f), data).unwrap();
        }
        dir
    }

    /// Decompresses and untars a bundle: (name, mode, mtime, entry type, contents) per member.
    fn read_bundle(path: &Path) -> Vec<(String, u32, u64, tar::EntryType, Vec<u8>)> {
        let dec = zstd::Decoder::new(File::open(path).unwrap()).unwrap();
        let mut ar = tar::Archive::new(dec);
        let mut out = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_str().unwrap().to_owned();
            let h = e.header().clone();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            out.push((
                name,
                h.mode().unwrap(),
                h.mtime().unwrap(),
                h.entry_type(),
                data,
            ));
        }
        out
    }

    fn tmp_entries(spool: &Path) -> Vec<String> {
        match fs::read_dir(spool.join(TMP_DIR)) {
            Ok(rd) => rd
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    #[test]
    fn round_trip_keeps_names_contents_and_empty_files() {
        let t = tempfile::tempdir().unwrap();
        let conn = b"#\n1.0\tCabc\t10.0.0.1\n".repeat(500);
        let dir = interval(
            t.path(),
            NAME,
            &[
                ("dns.log", b""),
                ("conn.log", &conn),
                ("arp.log", b"x\n"),
                ("eve.json", b""),
            ],
        );
        fs::create_dir(dir.join("subdir")).unwrap();
        let spool = t.path().join("spool");
        let bundle = bundle_interval(&dir, &spool, 10).unwrap();
        assert_eq!(bundle, spool.join(format!("{NAME}.tar.zst")));

        let members = read_bundle(&bundle);
        let names: Vec<&str> = members.iter().map(|m| m.0.as_str()).collect();
        assert_eq!(
            names,
            ["arp.log", "conn.log", "dns.log", "eve.json"],
            "flat, sorted, no subdir"
        );
        let start = NaiveDateTime::parse_from_str("2024-06-07-10:15:00", NAME_TIME_FORMAT)
            .unwrap()
            .and_utc();
        for (name, mode, mtime, kind, data) in &members {
            assert_eq!(*mode, 0o644, "{name}");
            assert_eq!(*mtime, start.timestamp() as u64, "{name}");
            assert_eq!(*kind, tar::EntryType::Regular, "{name}");
            assert_eq!(data, &fs::read(dir.join(name)).unwrap(), "{name}");
        }
        assert!(members[2].4.is_empty() && members[3].4.is_empty());
        assert!(tmp_entries(&spool).is_empty(), "no .part left");
    }

    #[test]
    fn rebundle_is_idempotent_and_replaces() {
        let t = tempfile::tempdir().unwrap();
        let dir = interval(t.path(), NAME, &[("conn.log", b"one\n"), ("dns.log", b"")]);
        let spool = t.path().join("spool");
        let first = bundle_interval(&dir, &spool, 3).unwrap();
        let bytes = fs::read(&first).unwrap();
        let again = bundle_interval(&dir, &spool, 3).unwrap();
        assert_eq!(first, again);
        assert_eq!(
            bytes,
            fs::read(&again).unwrap(),
            "same logs give the same bundle bytes"
        );

        fs::write(dir.join("conn.log"), b"two\n").unwrap();
        bundle_interval(&dir, &spool, 3).unwrap();
        let members = read_bundle(&first);
        assert_eq!(members[0].4, b"two\n");
        let visible: Vec<_> = fs::read_dir(&spool)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(visible.len(), 2, "one bundle plus tmp/: {visible:?}");
    }

    #[test]
    fn recover_removes_leftover_parts_only() {
        let t = tempfile::tempdir().unwrap();
        let spool = t.path().join("spool");
        assert_eq!(recover(&spool).unwrap(), 0, "missing spool: nothing to do");
        let tmp = spool.join(TMP_DIR);
        fs::create_dir_all(&tmp).unwrap();
        fs::write(tmp.join(format!("{NAME}.tar.zst.part")), b"half a bundle").unwrap();
        fs::write(tmp.join("realtime-2024-06-07-10:16:00.tar.zst.part"), b"").unwrap();
        fs::write(tmp.join("notes.txt"), b"keep").unwrap();
        assert_eq!(recover(&spool).unwrap(), 2);
        assert_eq!(tmp_entries(&spool), ["notes.txt"]);
        assert_eq!(recover(&spool).unwrap(), 0);

        // After recovery the interval is still pending and bundles normally.
        let logs = t.path().join("logs");
        let dir = interval(&logs, NAME, &[("conn.log", b"x")]);
        assert_eq!(
            pending_intervals(&logs, &spool).unwrap(),
            std::slice::from_ref(&dir)
        );
        bundle_interval(&dir, &spool, 1).unwrap();
        assert!(pending_intervals(&logs, &spool).unwrap().is_empty());
    }

    #[test]
    fn pending_intervals_oldest_first_without_bundled_or_open_ones() {
        let t = tempfile::tempdir().unwrap();
        let logs = t.path().join("logs");
        let spool = t.path().join("spool");
        assert!(
            pending_intervals(&logs, &spool).unwrap().is_empty(),
            "missing log_dir"
        );
        let c = interval(&logs, "realtime-2024-01-01-00:02:00", &[("conn.log", b"")]);
        let a = interval(&logs, "realtime-2023-12-31-23:59:00", &[("conn.log", b"")]);
        let b = interval(&logs, "realtime-2024-01-01-00:00:00", &[("conn.log", b"")]);
        let done = interval(&logs, "realtime-2024-01-01-00:01:00", &[("conn.log", b"")]);
        let sent = interval(&logs, "realtime-2024-01-01-00:03:00", &[("conn.log", b"")]);
        interval(
            &logs,
            "realtime-2024-01-01-00:04:00.tmp",
            &[("conn.log", b"")],
        );
        interval(&logs, "other", &[]);
        fs::write(
            logs.join("realtime-2024-01-01-00:05:00"),
            b"a file, not a folder",
        )
        .unwrap();
        bundle_interval(&done, &spool, 1).unwrap();
        let moved = bundle_interval(&sent, &spool, 1).unwrap();
        fs::create_dir_all(spool.join(SENT_DIR)).unwrap();
        fs::rename(
            &moved,
            spool.join(SENT_DIR).join(moved.file_name().unwrap()),
        )
        .unwrap();
        assert_eq!(pending_intervals(&logs, &spool).unwrap(), [a, b, c]);
        assert!(is_open_interval_name("realtime-2024-01-01-00:04:00.tmp"));
    }

    #[test]
    fn missing_interval_dir_is_an_error_naming_it() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join(NAME);
        let spool = t.path().join("spool");
        let e = bundle_interval(&dir, &spool, 10).unwrap_err();
        assert!(matches!(e, SpoolError::Io { .. }), "{e:?}");
        assert!(e.to_string().contains(&dir.display().to_string()), "{e}");
        assert!(!bundle_path(&spool, NAME).exists());

        // A file where the folder should be is an error too.
        fs::write(&dir, b"").unwrap();
        let e = bundle_interval(&dir, &spool, 10).unwrap_err();
        assert!(e.to_string().contains(NAME), "{e}");
    }

    #[test]
    fn second_folder_of_an_interval_is_bundled_under_its_own_name() {
        let t = tempfile::tempdir().unwrap();
        let name = format!("{NAME}-1");
        let dir = interval(t.path(), &name, &[("conn.log", b"after a restart\n")]);
        let spool = t.path().join("spool");
        let b = bundle_interval(&dir, &spool, 3).unwrap();
        assert_eq!(b, spool.join(format!("{name}.tar.zst")));
        assert_eq!(
            queue::bundle_interval_name(&format!("{name}.tar.zst")),
            Some(name.as_str())
        );
    }

    #[test]
    fn bad_interval_name_is_refused() {
        let t = tempfile::tempdir().unwrap();
        for name in [
            "conn",
            "realtime-2024-13-01-00:00:00",
            "realtime-2024-01-01-00:00:00.tmp",
            "realtime-2024-01-01-00:00:00-",
            "realtime-2024-01-01-00:00:00-x1",
        ] {
            let dir = interval(t.path(), name, &[("conn.log", b"")]);
            let e = bundle_interval(&dir, &t.path().join("spool"), 10).unwrap_err();
            assert!(matches!(e, SpoolError::BadName { .. }), "{name}: {e:?}");
            assert!(e.to_string().contains(name), "{e}");
        }
    }

    /// A full disk: the `.part` is pointed at `/dev/full`, whose every write fails with ENOSPC.
    #[cfg(target_os = "linux")]
    #[test]
    fn disk_full_is_an_error_and_leaves_no_bundle() {
        let t = tempfile::tempdir().unwrap();
        let dir = interval(t.path(), NAME, &[("conn.log", &[b'x'; 200_000][..])]);
        let spool = t.path().join("spool");
        // An older good bundle of the interval must survive the failed attempt.
        let good = bundle_interval(&dir, &spool, 1).unwrap();
        let before = fs::read(&good).unwrap();
        let part = spool.join(TMP_DIR).join(format!("{NAME}.tar.zst.part"));
        std::os::unix::fs::symlink("/dev/full", &part).unwrap();
        let e = bundle_interval(&dir, &spool, 1).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e:?}");
        assert!(e.to_string().contains(".part"), "{e}");
        assert!(fs::symlink_metadata(&part).is_err(), "the .part is removed");
        assert_eq!(fs::read(&good).unwrap(), before, "older bundle untouched");
    }
}
