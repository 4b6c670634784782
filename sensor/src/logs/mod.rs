//! Log stage: record writers, interval folders, rotation.
//!
//! The packet path hands records over a bounded channel ([`LogMsg`]) to [`run_writer`], which
//! owns every open file: in single-folder mode (`replay --out`) one folder for the whole input;
//! in interval mode one `realtime-YYYY-mm-dd-HH:MM:SS/` folder per interval, written under a
//! `.tmp` name and renamed when complete, then handed to the spool.

pub mod sensor_log;
pub mod writer;
pub mod zeek;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use crate::analyzers::{Record, LOG_FILES};
use crate::stats::Stats;
use crate::ts::Ts;
use writer::LogFolder;
use zeek::Utf8Policy;

/// What the packet path tells the log stage. Records travel by value: boxing each would
/// allocate per record, and the channel's slots are allocated once anyway.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum LogMsg {
    /// A batch of records (batched so the packet path wakes the writer once per batch, not
    /// once per record).
    Records(Vec<Record>),
    /// Records from now on belong to the interval starting at this time.
    OpenInterval(Ts),
    /// The current interval is complete.
    CloseInterval,
    /// A line for sensor.log with the counters, at each interval.
    Counters(String),
}

/// Where the writer puts its output.
#[derive(Clone, Debug)]
pub enum OutputMode {
    /// Everything in one folder (replay without bundles).
    Single(PathBuf),
    /// One folder per interval under `log_dir`.
    Intervals { log_dir: PathBuf },
}

/// `realtime-YYYY-mm-dd-HH:MM:SS` for an interval starting at `start`, in zone `tz`.
pub fn interval_name(start: Ts, tz: &chrono_tz::Tz) -> String {
    use chrono::TimeZone;
    let t = match tz.timestamp_opt(start.secs(), 0) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => t,
        chrono::LocalResult::None => chrono_tz::UTC
            .timestamp_opt(start.secs(), 0)
            .unwrap()
            .with_timezone(tz),
    };
    format!("realtime-{}", t.format("%Y-%m-%d-%H:%M:%S"))
}

/// Runs the writer until the channel closes. Finished interval folders are sent to `done`.
/// Write errors are logged and counted, never fatal: the packet path must keep running.
///
/// Written batches go back through `spent`, records and all, for the packet path to drop and
/// reuse: records are allocated on the packet thread, and freeing them here instead makes the
/// two threads fight over the C allocator's lock on every allocation (a tenth of the packet
/// path's time). When `spent` is full or absent the batch is dropped here.
pub fn run_writer(
    rx: Receiver<LogMsg>,
    mode: OutputMode,
    utf8: Utf8Policy,
    tz: chrono_tz::Tz,
    stats: Arc<Stats>,
    done: Option<Sender<PathBuf>>,
    spent: Option<Sender<Vec<Record>>>,
) -> std::io::Result<()> {
    let mut current: Option<(LogFolder, PathBuf)> = None;
    if let OutputMode::Single(dir) = &mode {
        current = Some((LogFolder::create(dir, utf8, tz)?, dir.clone()));
    }
    for msg in rx {
        match msg {
            LogMsg::Records(batch) => {
                // Counted once per batch: the counters share cache lines with the packet
                // path's.
                let mut written = 0;
                if let Some((f, _)) = current.as_mut() {
                    for r in &batch {
                        match f.write(r.as_zeek()) {
                            Ok(()) => written += 1,
                            Err(e) => log::error!("writing {}: {e}", f.dir().display()),
                        }
                    }
                }
                Stats::add(&stats.records_written, written);
                let dropped = batch.len() as u64 - written;
                if dropped > 0 {
                    Stats::add(&stats.records_dropped, dropped);
                }
                if let Some(spent) = &spent {
                    let _ = spent.try_send(batch);
                }
            }
            LogMsg::OpenInterval(start) => {
                if let OutputMode::Intervals { log_dir } = &mode {
                    if let Some((f, final_dir)) = current.take() {
                        close_interval(f, &final_dir, &stats, done.as_ref());
                    }
                    let name = interval_name(start, &tz);
                    let final_dir = log_dir.join(&name);
                    let tmp = log_dir.join(format!("{name}.tmp"));
                    match LogFolder::create(&tmp, utf8, tz) {
                        Ok(f) => current = Some((f, final_dir)),
                        Err(e) => log::error!("creating {}: {e}", tmp.display()),
                    }
                }
            }
            LogMsg::CloseInterval => {
                if let (OutputMode::Intervals { .. }, Some((f, final_dir))) =
                    (&mode, current.take())
                {
                    close_interval(f, &final_dir, &stats, done.as_ref());
                }
            }
            LogMsg::Counters(line) => log::info!("counters {line}"),
        }
    }
    if let Some((f, final_dir)) = current.take() {
        match &mode {
            OutputMode::Single(_) => {
                f.finish(LOG_FILES)?;
            }
            OutputMode::Intervals { .. } => close_interval(f, &final_dir, &stats, done.as_ref()),
        }
    }
    Ok(())
}

fn close_interval(f: LogFolder, final_dir: &Path, stats: &Stats, done: Option<&Sender<PathBuf>>) {
    let result = f.finish(LOG_FILES).and_then(|tmp| {
        if final_dir.exists() {
            // A restart within the same interval: keep both rather than lose either.
            let mut n = 1;
            let mut alt = final_dir.with_file_name(format!("{}-{n}", file_name(final_dir)));
            while alt.exists() {
                n += 1;
                alt = final_dir.with_file_name(format!("{}-{n}", file_name(final_dir)));
            }
            std::fs::rename(&tmp, &alt)?;
            Ok(alt)
        } else {
            std::fs::rename(&tmp, final_dir)?;
            Ok(final_dir.to_path_buf())
        }
    });
    match result {
        Ok(dir) => {
            if let Some(parent) = dir.parent() {
                let _ = writer::sync_dir(parent);
            }
            Stats::inc(&stats.intervals_closed);
            if let Some(tx) = done {
                let _ = tx.send(dir);
            }
        }
        Err(e) => log::error!("closing interval {}: {e}", final_dir.display()),
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}
