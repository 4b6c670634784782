//! The sensor's own log: `log` records to stderr and to `sensor.log`, size-bounded.
//!
//! `sensor.log` is rotated to `sensor.log.1` when it passes [`MAX_BYTES`], so the box never
//! fills its disk with its own diagnostics.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Size at which `sensor.log` is rotated.
pub const MAX_BYTES: u64 = 4 << 20;

struct Inner {
    path: Option<PathBuf>,
    file: Option<File>,
    written: u64,
}

pub struct SensorLog {
    inner: Mutex<Inner>,
    level: log::LevelFilter,
}

static LOGGER: std::sync::OnceLock<SensorLog> = std::sync::OnceLock::new();

/// Installs the logger. `path` None logs to stderr only. Safe to call once per process;
/// later calls only change nothing.
pub fn init(path: Option<&Path>, level: log::LevelFilter) {
    let logger = LOGGER.get_or_init(|| SensorLog {
        inner: Mutex::new(Inner {
            path: None,
            file: None,
            written: 0,
        }),
        level,
    });
    if let Some(p) = path {
        if let Some(parent) = p.parent() {
            let _ = fs::create_dir_all(parent);
        }
        let mut inner = logger.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.file = OpenOptions::new().create(true).append(true).open(p).ok();
        inner.written = inner
            .file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.len())
            .unwrap_or(0);
        inner.path = Some(p.to_path_buf());
    }
    let _ = log::set_logger(logger);
    log::set_max_level(level);
}

impl log::Log for SensorLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= self.level
    }

    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
        let line = format!("{now} {:<5} {}\n", r.level(), r.args());
        let _ = std::io::stderr().write_all(line.as_bytes());
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.written + line.len() as u64 > MAX_BYTES {
            if let Some(p) = inner.path.clone() {
                let _ = fs::rename(&p, p.with_extension("log.1"));
                inner.file = OpenOptions::new().create(true).append(true).open(&p).ok();
                inner.written = 0;
            }
        }
        if let Some(f) = inner.file.as_mut() {
            if f.write_all(line.as_bytes()).is_ok() {
                inner.written += line.len() as u64;
            }
        }
    }

    fn flush(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = inner.file.as_mut() {
            let _ = f.flush();
        }
    }
}
