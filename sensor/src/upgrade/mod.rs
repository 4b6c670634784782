//! Remote upgrade by image swap: a RAUC bundle (signed root file system image) is checked
//! against the keyring in the image, written to the slot that is not running, and the boot
//! order switched to it; the gateway reboots. The new slot is on trial: it must pass its
//! health checks within `upgrade.health_timeout_secs` and then marks itself good. If it does
//! not, it reboots unmarked; each boot costs the slot one of U-Boot's attempts, and when they
//! are used up U-Boot boots the old slot again. The running slot is never written, so a bad
//! signature, a broken download or a power cut mid-write leave it as it was.
//!
//! The trial is remembered in `<download_dir>/pending` on the data partition (the slots are
//! read-only): it tells the next boot whether it is the updated slot (check it strictly) or
//! the old one after a rollback (record that).

pub mod config;
pub mod fetch;
pub mod health;
pub mod rauc;

#[cfg(test)]
mod tests;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::config::Config;
pub use config::UpgradeConfig;

/// File of the update history in `upgrade.download_dir` (for the operator and support).
pub const HISTORY_FILE: &str = "upgrade-history.log";
/// The trial marker in `upgrade.download_dir`.
pub const PENDING_FILE: &str = "pending";
/// Checks of a slot that is not on trial: it only has to run the sensor to stay bootable.
pub const ROUTINE_CHECKS: &[&str] = &["sensor"];
const HISTORY_MAX_BYTES: u64 = 64 << 10;

/// The update the data partition remembers between the install and the new slot's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// Slot written (`B`), and the one that was running (`A`).
    pub target: String,
    pub from: String,
    pub version: String,
    /// `installing` until RAUC finished, then `installed`.
    pub state: String,
}

impl Pending {
    pub fn render(&self) -> String {
        format!(
            "target={}\nfrom={}\nversion={}\nstate={}\n",
            self.target, self.from, self.version, self.state
        )
    }

    pub fn parse(text: &str) -> Option<Pending> {
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                .map(str::to_string)
        };
        Some(Pending {
            target: get("target").filter(|t| !t.is_empty())?,
            from: get("from").unwrap_or_default(),
            version: get("version").unwrap_or_default(),
            state: get("state").unwrap_or_default(),
        })
    }
}

/// Everything the upgrade needs: the config's `[upgrade]`, the booted slot, and knobs that
/// tests change.
#[derive(Clone, Debug)]
pub struct Upgrade {
    pub settings: UpgradeConfig,
    /// The slot running now (`rauc.slot=` on the kernel command line).
    pub booted: Option<String>,
    pub poll: Duration,
}

impl Upgrade {
    pub fn new(cfg: &Config) -> Upgrade {
        let cmdline = fs::read_to_string("/proc/cmdline").unwrap_or_default();
        Upgrade {
            settings: cfg.upgrade.clone(),
            booted: crate::diag::slot_from_cmdline(&cmdline),
            poll: Duration::from_secs(2),
        }
    }

    fn dir(&self) -> &Path {
        &self.settings.download_dir
    }

    /// Appends a line to the update history (bounded: rotated to `.1`). Synced: these are
    /// rare lines that matter most right before a power cut or a reboot.
    pub fn record(&self, line: &str) {
        let path = self.dir().join(HISTORY_FILE);
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
        let text = format!("{now} {line}\n");
        let _ = fs::create_dir_all(self.dir());
        if fs::metadata(&path).is_ok_and(|m| m.len() + text.len() as u64 > HISTORY_MAX_BYTES) {
            let _ = fs::rename(&path, path.with_extension("log.1"));
        }
        if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(&path) {
            let _ = f.write_all(text.as_bytes()).and_then(|()| f.sync_data());
        }
    }

    pub fn pending(&self) -> Option<Pending> {
        Pending::parse(&fs::read_to_string(self.dir().join(PENDING_FILE)).ok()?)
    }

    /// Written durably: it must survive the power cut it is there for.
    fn set_pending(&self, p: &Pending) -> Result<(), String> {
        let path = self.dir().join(PENDING_FILE);
        let tmp = self.dir().join(format!("{PENDING_FILE}.tmp"));
        (|| -> std::io::Result<()> {
            fs::create_dir_all(self.dir())?;
            let mut f = fs::File::create(&tmp)?;
            f.write_all(p.render().as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            fs::File::open(self.dir())?.sync_all()
        })()
        .map_err(|e| format!("{}: {e}", path.display()))
    }

    fn clear_pending(&self) {
        let _ = fs::remove_file(self.dir().join(PENDING_FILE));
    }
}

/// The other slot of an A/B pair.
pub fn other_slot(slot: &str) -> Option<&'static str> {
    match slot {
        "A" => Some("B"),
        "B" => Some("A"),
        _ => None,
    }
}

/// What `upgrade FILE|URL` should do besides installing.
#[derive(Clone, Copy, Debug, Default)]
pub struct InstallOptions {
    /// Verify only (download, signature), write nothing.
    pub check_only: bool,
    pub no_reboot: bool,
}

/// `upgrade FILE|URL`. Messages for the operator go to stdout/stderr as it goes; `Err` is the
/// reason nothing (more) was done.
pub fn install(
    cfg: &Config,
    up: &Upgrade,
    source: &str,
    opts: InstallOptions,
) -> Result<(), String> {
    let s = &up.settings;
    let downloaded = source.contains("://");
    let bundle = if downloaded {
        println!(
            "osect: downloading {source} to {}",
            s.download_dir.display()
        );
        let max = u64::from(s.max_download_mib) << 20;
        fetch::download(cfg, source, &s.download_dir, max).inspect_err(|e| {
            up.record(&format!("download failed: {e}"));
        })?
    } else {
        PathBuf::from(source)
    };
    let result = install_bundle(up, &bundle, source, opts);
    if downloaded && !opts.check_only {
        let _ = fs::remove_file(&bundle);
    }
    if let Err(e) = &result {
        up.record(&format!("refused {source}: {e}"));
    }
    result
}

fn install_bundle(
    up: &Upgrade,
    bundle: &Path,
    source: &str,
    opts: InstallOptions,
) -> Result<(), String> {
    let s = &up.settings;
    if !bundle.is_file() {
        return Err(format!("{}: no such bundle file", bundle.display()));
    }
    // The signature first, with a clear answer, before anything is written.
    let info = rauc::verify(&s.rauc, &s.keyring, bundle).map_err(|e| {
        format!(
            "{}: not a valid bundle signed for this gateway: {e}",
            bundle.display()
        )
    })?;
    println!(
        "osect: {}: signature good (keyring {}), compatible {}, version {}",
        bundle.display(),
        s.keyring.display(),
        info.compatible,
        info.version
    );
    if opts.check_only {
        if source.contains("://") {
            println!("osect: downloaded bundle kept at {}", bundle.display());
        }
        return Ok(());
    }
    let from = up
        .booted
        .clone()
        .ok_or("not booted from an A/B slot (no rauc.slot= on the kernel command line)")?;
    let target = other_slot(&from).ok_or(format!("booted slot {from} is not A or B"))?;
    let mut pending = Pending {
        target: target.to_string(),
        from: from.clone(),
        version: info.version.clone(),
        state: "installing".into(),
    };
    up.set_pending(&pending)?;
    println!(
        "osect: installing version {} to slot {target} (running {from})",
        info.version
    );
    let started = Instant::now();
    if let Err(e) = rauc::install(&s.rauc, bundle) {
        up.clear_pending();
        return Err(format!("rauc install: {e}"));
    }
    let order = rauc::boot_env("BOOT_ORDER").unwrap_or_default();
    if order.split_whitespace().next() != Some(target) {
        up.clear_pending();
        return Err(format!(
            "rauc install succeeded but the boot order is {order:?}, not slot {target} first"
        ));
    }
    pending.state = "installed".into();
    up.set_pending(&pending)?;
    up.record(&format!(
        "installed version {} from {source} to slot {target} in {:.0} s (was running {from})",
        info.version,
        started.elapsed().as_secs_f64()
    ));
    println!(
        "osect: slot {target} written in {:.0} s, boot order {order}; it must pass its health checks after the reboot",
        started.elapsed().as_secs_f64()
    );
    if opts.no_reboot {
        println!("osect: --no-reboot: reboot to start slot {target}");
        return Ok(());
    }
    reboot(s)
}

fn reboot(s: &UpgradeConfig) -> Result<(), String> {
    println!("osect: rebooting ({})", s.reboot_command.join(" "));
    let st = Command::new(&s.reboot_command[0])
        .args(&s.reboot_command[1..])
        .status()
        .map_err(|e| format!("{}: {e}", s.reboot_command[0]))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("{}: {st}", s.reboot_command.join(" ")))
    }
}

/// What `upgrade --confirm` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not an A/B boot: nothing to confirm.
    NoSlot,
    /// Checks passed, slot marked good; `trial` when it was a fresh update.
    Good { trial: bool },
    /// Checks did not pass in time; a slot on trial reboots (unless told not to).
    Failed { trial: bool, reason: String },
}

/// `upgrade --confirm`, run by the init scripts on every boot: a slot on trial must pass the
/// configured checks, any other slot only needs the sensor up; then it is marked good.
pub fn confirm(up: &Upgrade, probe: &health::Probe, no_reboot: bool) -> Verdict {
    let Some(slot) = up.booted.clone() else {
        println!("osect: not booted from an A/B slot, nothing to confirm");
        return Verdict::NoSlot;
    };
    let s = &up.settings;
    let pending = up.pending();
    let trial = pending.as_ref().is_some_and(|p| p.target == slot);
    if let Some(p) = pending.as_ref().filter(|p| p.target != slot) {
        let what = if p.state == "installing" {
            format!(
                "the install of version {} to slot {} was interrupted",
                p.version, p.target
            )
        } else {
            format!(
                "slot {} (version {}) did not prove itself and was given up; rolled back",
                p.target, p.version
            )
        };
        println!("osect: {what}; running slot {slot}");
        up.record(&format!("{what}; running slot {slot}"));
        up.clear_pending();
    }
    let checks: Vec<String> = if trial {
        s.health_checks.clone()
    } else {
        ROUTINE_CHECKS.iter().map(|c| c.to_string()).collect()
    };
    if trial {
        println!(
            "osect: slot {slot} is on trial: {} within {} s",
            checks.join(", "),
            s.health_timeout_secs
        );
    }
    let deadline = Instant::now() + Duration::from_secs(u64::from(s.health_timeout_secs));
    // The sensor must stay up between two looks, not just have started.
    let mut seen_up = false;
    let last = loop {
        let out = health::check(probe, &checks);
        let all = out.iter().all(|o| o.ok);
        if all && seen_up {
            break out;
        }
        seen_up = all;
        if Instant::now() >= deadline {
            break out;
        }
        std::thread::sleep(up.poll);
    };
    let failed: Vec<String> = last
        .iter()
        .filter(|o| !o.ok)
        .map(|o| format!("{}: {}", o.name, o.reason))
        .collect();
    if failed.is_empty() {
        if let Err(e) = rauc::mark_good(&s.rauc, &slot) {
            let reason = format!("mark-good failed: {e}");
            println!("osect: slot {slot}: {reason}");
            return Verdict::Failed { trial, reason };
        }
        println!("osect: slot {slot} marked good");
        if trial {
            let version = pending.map(|p| p.version).unwrap_or_default();
            println!("osect: update to version {version} confirmed on slot {slot}");
            up.record(&format!("confirmed version {version} on slot {slot}"));
            up.clear_pending();
        }
        return Verdict::Good { trial };
    }
    let reason = failed.join("; ");
    println!("osect: slot {slot} failed its health check: {reason}");
    if trial {
        let left = rauc::boot_env(&format!("BOOT_{slot}_LEFT")).unwrap_or_else(|| "?".into());
        up.record(&format!(
            "slot {slot} failed its health check ({reason}); {left} boot attempts left"
        ));
        if !no_reboot {
            println!("osect: rebooting unconfirmed ({left} boot attempts left for slot {slot})");
            let _ = reboot(s);
        }
    }
    Verdict::Failed { trial, reason }
}
