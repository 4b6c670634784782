//! Is the booted slot working? The checks a slot on trial must pass before it marks itself
//! good: the capture service runs, it wrote a bundle since boot, and (when an upload server
//! is configured) a bundle went out since boot — the whole path from packet to analysis
//! service, with this slot's kernel, binary and libraries.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::diag;
use crate::upload::history::HISTORY_FILE;

/// Where the checks look; the real system's by default, folders of a test otherwise.
#[derive(Clone, Debug)]
pub struct Probe {
    pub proc_dir: PathBuf,
    pub spool_dir: PathBuf,
    pub upload_configured: bool,
    /// When this boot started (files older than this do not count).
    pub boot_time: SystemTime,
}

impl Probe {
    /// The running system: `/proc`, boot time from `/proc/uptime`.
    pub fn system(spool_dir: &Path, upload_configured: bool) -> Probe {
        let up = fs::read_to_string("/proc/uptime")
            .ok()
            .and_then(|t| diag::parse_uptime(&t))
            .unwrap_or(0);
        Probe {
            proc_dir: PathBuf::from("/proc"),
            spool_dir: spool_dir.to_path_buf(),
            upload_configured,
            boot_time: SystemTime::now() - Duration::from_secs(up),
        }
    }
}

/// One check's outcome: passed (or skipped), with why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub name: String,
    pub ok: bool,
    pub reason: String,
}

/// Runs the named checks once.
pub fn check(probe: &Probe, names: &[String]) -> Vec<Outcome> {
    names
        .iter()
        .map(|n| {
            let (ok, reason) = match n.as_str() {
                "sensor" => sensor_up(probe),
                "bundle" => bundle_written(probe),
                "upload" => upload_done(probe),
                other => (false, format!("unknown check {other}")),
            };
            Outcome {
                name: n.clone(),
                ok,
                reason,
            }
        })
        .collect()
}

fn sensor_up(p: &Probe) -> (bool, String) {
    match diag::sensor_pids(&p.proc_dir).as_slice() {
        [] => (false, "osect-sensor run is not running".into()),
        pids => (true, format!("running (pid {})", pids[0])),
    }
}

/// Newest bundle file (`*.tar.zst`) in the spool or its `sent/` folder written since boot.
fn bundle_written(p: &Probe) -> (bool, String) {
    let mut newest: Option<(SystemTime, String)> = None;
    for dir in [p.spool_dir.clone(), p.spool_dir.join("sent")] {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".tar.zst") {
                continue;
            }
            let Ok(m) = e.metadata().and_then(|m| m.modified()) else {
                continue;
            };
            if m >= p.boot_time && newest.as_ref().is_none_or(|(t, _)| m > *t) {
                newest = Some((m, name));
            }
        }
    }
    match newest {
        Some((_, name)) => (true, format!("{name} written since boot")),
        None => (
            false,
            format!("no bundle in {} since boot", p.spool_dir.display()),
        ),
    }
}

/// A `sent` line in the upload history stamped after boot.
fn upload_done(p: &Probe) -> (bool, String) {
    if !p.upload_configured {
        return (true, "skipped: upload.url is not set".into());
    }
    let boot: chrono::DateTime<chrono::Utc> = p.boot_time.into();
    let text = fs::read_to_string(p.spool_dir.join(HISTORY_FILE)).unwrap_or_default();
    let sent = text.lines().rev().find(|l| {
        let mut w = l.split_whitespace();
        let (Some(ts), Some("sent")) = (w.next(), w.next()) else {
            return false;
        };
        chrono::DateTime::parse_from_rfc3339(ts).is_ok_and(|t| t >= boot)
    });
    match sent {
        Some(l) => (
            true,
            l.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        ),
        None => (false, "no bundle delivered since boot".into()),
    }
}
