//! The upload queue: bundles in the spool root are ready to send, bundles in `sent/` were
//! delivered. A bundle changes state only by an atomic rename followed by an fsync of both
//! folders, so after a power cut it is in exactly one state; a bundle whose move was lost is
//! sent again, which the receiver tolerates (the bundle name is the idempotency key).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{interval_name, sync_dir, SpoolError, BUNDLE_EXT, SENT_DIR};

/// The interval name of a bundle file name (`realtime-….tar.zst` → `realtime-…`), if it is one.
pub fn bundle_interval_name(file_name: &str) -> Option<&str> {
    let stem = file_name.strip_suffix(BUNDLE_EXT)?;
    interval_name(Path::new(stem)).ok().map(|(n, _)| n)
}

/// Bundles named `realtime-YYYY-mm-dd-HH:MM:SS.tar.zst` directly in `dir`, oldest first (the
/// names are fixed-width timestamps, so name order is time order). A missing `dir` is empty.
pub fn bundles_in(dir: &Path) -> Result<Vec<PathBuf>, SpoolError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(SpoolError::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| SpoolError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if bundle_interval_name(name).is_some()
            && entry.file_type().map(|t| t.is_file()).unwrap_or(false)
        {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Bundles waiting for upload, oldest first.
pub fn unsent_bundles(spool_dir: &Path) -> Result<Vec<PathBuf>, SpoolError> {
    bundles_in(spool_dir)
}

/// What became of a delivered bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivered {
    /// Moved to `sent/`.
    Kept,
    /// Deleted, with its interval folder.
    Deleted,
    /// Already gone (retention dropped it while it was in flight).
    Vanished,
}

/// Records that `bundle` (in `spool_dir`) was delivered: moves it to `spool_dir/sent/` when
/// `keep`, else deletes it together with its interval folder in `log_dir` (the folder first:
/// a folder without any bundle would be bundled and sent again after a restart). Durable when
/// it returns.
pub fn mark_sent(
    spool_dir: &Path,
    bundle: &Path,
    keep: bool,
    log_dir: Option<&Path>,
) -> Result<Delivered, SpoolError> {
    let Some(file_name) = bundle.file_name() else {
        return Err(SpoolError::io(
            bundle,
            io::Error::new(io::ErrorKind::InvalidInput, "not a bundle path"),
        ));
    };
    if !bundle.exists() {
        return Ok(Delivered::Vanished);
    }
    if keep {
        let sent = spool_dir.join(SENT_DIR);
        if !sent.is_dir() {
            fs::create_dir_all(&sent).map_err(|e| SpoolError::io(&sent, e))?;
            sync_dir(spool_dir)?;
        }
        let target = sent.join(file_name);
        match fs::rename(bundle, &target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Delivered::Vanished),
            Err(e) => return Err(SpoolError::io(&target, e)),
        }
        // The new entry first: a crash between the two syncs may leave the bundle visible in
        // both folders (sent again: harmless), never in neither.
        sync_dir(&sent)?;
        sync_dir(spool_dir)?;
        Ok(Delivered::Kept)
    } else {
        let name = file_name.to_str().and_then(bundle_interval_name);
        if let (Some(log_dir), Some(name)) = (log_dir, name) {
            let folder = log_dir.join(name);
            match fs::remove_dir_all(&folder) {
                Ok(()) => sync_dir(log_dir)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(SpoolError::io(&folder, e)),
            }
        }
        match fs::remove_file(bundle) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Delivered::Vanished),
            Err(e) => return Err(SpoolError::io(bundle, e)),
        }
        sync_dir(spool_dir)?;
        Ok(Delivered::Deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_order_and_states() {
        let t = tempfile::tempdir().unwrap();
        let spool = t.path().join("spool");
        let logs = t.path().join("logs");
        assert!(unsent_bundles(&spool).unwrap().is_empty());
        fs::create_dir_all(spool.join("tmp")).unwrap();
        for n in ["12:02:00", "12:00:00", "12:01:00"] {
            fs::write(spool.join(format!("realtime-2024-01-01-{n}.tar.zst")), n).unwrap();
        }
        fs::write(spool.join("upload-history.log"), "x").unwrap();
        fs::write(spool.join("realtime-bogus.tar.zst"), "x").unwrap();
        let q = unsent_bundles(&spool).unwrap();
        let names: Vec<_> = q
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            names,
            [
                "realtime-2024-01-01-12:00:00.tar.zst",
                "realtime-2024-01-01-12:01:00.tar.zst",
                "realtime-2024-01-01-12:02:00.tar.zst"
            ]
        );
        assert_eq!(
            mark_sent(&spool, &q[0], true, None).unwrap(),
            Delivered::Kept
        );
        assert!(spool.join(SENT_DIR).join(&names[0]).is_file());
        fs::create_dir_all(logs.join("realtime-2024-01-01-12:01:00")).unwrap();
        fs::write(logs.join("realtime-2024-01-01-12:01:00/conn.log"), "").unwrap();
        assert_eq!(
            mark_sent(&spool, &q[1], false, Some(&logs)).unwrap(),
            Delivered::Deleted
        );
        assert!(!logs.join("realtime-2024-01-01-12:01:00").exists());
        assert_eq!(
            mark_sent(&spool, &q[1], true, None).unwrap(),
            Delivered::Vanished
        );
        assert_eq!(unsent_bundles(&spool).unwrap(), [q[2].clone()]);
    }
}
