//! `upload-history.log` in the spool: one line per delivery or failed attempt, for the support
//! bundle. Append-only and bounded: past [`MAX_BYTES`] it is rotated to `.1`, so it never
//! holds more than twice that.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the history file in the spool folder.
pub const HISTORY_FILE: &str = "upload-history.log";
/// Size at which the history is rotated.
pub const MAX_BYTES: u64 = 256 << 10;

pub struct History {
    path: PathBuf,
    max_bytes: u64,
}

impl History {
    pub fn new(spool_dir: &Path) -> History {
        History {
            path: spool_dir.join(HISTORY_FILE),
            max_bytes: MAX_BYTES,
        }
    }

    /// Appends `line` with a UTC timestamp. Best effort: the history is informative, and a
    /// failure to write it must not hold up deliveries.
    pub fn record(&self, line: &str) {
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
        let text = format!("{now} {line}\n");
        if fs::metadata(&self.path).is_ok_and(|m| m.len() + text.len() as u64 > self.max_bytes) {
            let _ = fs::rename(&self.path, self.path.with_extension("log.1"));
        }
        if let Ok(mut f) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
        {
            let _ = f.write_all(text.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_and_rotates() {
        let t = tempfile::tempdir().unwrap();
        let mut h = History::new(t.path());
        h.max_bytes = 200;
        for i in 0..20 {
            h.record(&format!("sent realtime-2024-01-01-00:{i:02}:00.tar.zst"));
        }
        let cur = fs::read_to_string(t.path().join(HISTORY_FILE)).unwrap();
        let old = fs::read_to_string(t.path().join("upload-history.log.1")).unwrap();
        assert!(cur.len() <= 200 && old.len() <= 200);
        assert!(cur.ends_with("00:19:00.tar.zst\n"), "{cur}");
        assert!(cur.lines().all(|l| l.contains(" sent realtime-")));
    }
}
