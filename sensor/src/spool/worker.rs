//! The spool thread: bundles each finished interval folder, keeps retention running (at
//! start-up, before bundle writes, and at least every interval), survives a full disk, and
//! wakes the uploader when a bundle is ready.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::retention::{disk_bytes, Retention};
use super::{bundle_interval, SpoolError};
use crate::stats::Stats;

/// Retention passes closer together than this are skipped before a bundle write (after a
/// restart hundreds of intervals may be bundled in a row).
const MIN_RETENTION_GAP: Duration = Duration::from_secs(1);

pub struct SpoolWorker {
    pub spool_dir: PathBuf,
    pub zstd_level: i32,
    pub stats: Arc<Stats>,
    pub retention: Option<Retention>,
    /// Told (without blocking) after every bundle written.
    pub wake: Option<Sender<()>>,
    /// Longest time between retention passes.
    pub tick: Duration,
}

impl SpoolWorker {
    /// Bundles every folder received on `rx` until the channel closes.
    pub fn run(mut self, rx: Receiver<PathBuf>) {
        self.retain();
        let mut last = Instant::now();
        loop {
            match rx.recv_timeout(self.tick) {
                Ok(dir) => {
                    if last.elapsed() >= MIN_RETENTION_GAP {
                        self.retain();
                        last = Instant::now();
                    }
                    self.bundle(&dir);
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.retain();
                    last = Instant::now();
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
    }

    fn retain(&mut self) {
        if let Some(r) = self.retention.as_mut() {
            if let Err(e) = r.enforce(SystemTime::now()) {
                log::error!("retention: {e}");
            }
        }
    }

    /// Bundles `dir`; on ENOSPC makes room (retention, unsent data as the last resort) and
    /// tries once more.
    fn bundle(&mut self, dir: &Path) {
        let first = bundle_interval(dir, &self.spool_dir, self.zstd_level);
        let result = match first {
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                Stats::inc(&self.stats.bundle_disk_full);
                log::warn!("disk full while bundling {}: making room", dir.display());
                match self.retention.as_mut() {
                    Some(r) => {
                        // The bundle is smaller than its folder; the folder's size is room enough.
                        let need = disk_bytes(dir).max(1 << 20);
                        if let Err(e) = r.make_room(SystemTime::now(), need) {
                            log::error!("retention: {e}");
                        }
                        let again = bundle_interval(dir, &self.spool_dir, self.zstd_level);
                        if again.is_ok() {
                            Stats::inc(&self.stats.bundle_retried_ok);
                        }
                        again
                    }
                    None => Err(e),
                }
            }
            other => other,
        };
        match result {
            Ok(b) => {
                Stats::inc(&self.stats.bundles_written);
                log::info!("bundle {}", b.display());
                if let Some(w) = &self.wake {
                    let _ = w.try_send(());
                }
            }
            Err(e) => self.failed(dir, &e),
        }
    }

    fn failed(&self, dir: &Path, e: &SpoolError) {
        Stats::inc(&self.stats.bundle_errors);
        log::error!("bundling {}: {e}", dir.display());
    }
}
