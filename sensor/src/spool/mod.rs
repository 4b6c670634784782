//! Spool stage: finished interval folders become minute bundles queued for upload.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Packs `interval_dir` (a `realtime-YYYY-mm-dd-HH:MM:SS/` folder) into
/// `<spool_dir>/realtime-YYYY-mm-dd-HH:MM:SS.tar.zst` atomically. (Stub.)
pub fn bundle_interval(interval_dir: &Path, spool_dir: &Path, zstd_level: i32) -> Result<PathBuf, SpoolError> {
    let _ = (interval_dir, zstd_level);
    Ok(spool_dir.to_path_buf())
}
