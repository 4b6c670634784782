//! RAUC does the bundle work: signature check (`rauc info --keyring`), writing the inactive
//! slot and switching the boot order (`rauc install`), and `rauc status mark-good`. The boot
//! loader's slot state is read back with `fw_printenv` (RAUC's U-Boot backend keeps it there).

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::process::{Command, Stdio};

/// What `rauc info` says about a bundle whose signature checked out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BundleInfo {
    pub compatible: String,
    pub version: String,
    /// Image file names by slot class (`rootfs` -> `rootfs.ext4`).
    pub images: Vec<(String, String)>,
}

/// Parses `rauc info --output-format=shell`: `NAME='value'` lines (values quoted for sh).
pub fn parse_info_shell(text: &str) -> BundleInfo {
    let vars: BTreeMap<&str, String> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), unquote_sh(v.trim())))
        .collect();
    let get = |k: &str| vars.get(k).cloned().unwrap_or_default();
    let mut images = Vec::new();
    for (k, class) in &vars {
        if let Some(n) = k.strip_prefix("RAUC_IMAGE_CLASS_") {
            images.push((class.clone(), get(&format!("RAUC_IMAGE_NAME_{n}"))));
        }
    }
    BundleInfo {
        compatible: get("RAUC_MF_COMPATIBLE"),
        version: get("RAUC_MF_VERSION"),
        images,
    }
}

/// `'it'\''s'` -> `it's`; unquoted text as is.
fn unquote_sh(v: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => quoted = !quoted,
            '\\' if !quoted => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// Why RAUC refused or failed, in its own words (last lines of its stderr).
fn gist(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        // RAUC's progress notes ("rauc-Message: ... Reading bundle") are not the reason.
        .filter(|l| !l.is_empty() && !l.contains("-Message: "))
        .collect();
    let tail = &lines[lines.len().saturating_sub(3)..];
    if tail.is_empty() {
        "no message".into()
    } else {
        tail.join(" / ")
    }
}

fn spawn_error(program: &str, e: io::Error) -> String {
    if e.kind() == io::ErrorKind::NotFound {
        format!("{program}: not installed (RAUC is needed for upgrades)")
    } else {
        format!("{program}: cannot start it: {e}")
    }
}

/// Checks the bundle's signature against `keyring` (and that the bundle is whole enough to
/// read its manifest); `Err` has RAUC's reason.
pub fn verify(rauc: &str, keyring: &Path, bundle: &Path) -> Result<BundleInfo, String> {
    let out = Command::new(rauc)
        .arg("info")
        .arg("--keyring")
        .arg(keyring)
        .arg("--output-format=shell")
        .arg(bundle)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| spawn_error(rauc, e))?;
    if !out.status.success() {
        return Err(gist(&out.stderr));
    }
    Ok(parse_info_shell(&String::from_utf8_lossy(&out.stdout)))
}

/// `rauc install`: RAUC checks the signature again, writes the inactive slot and makes it
/// the first in the boot order. Its progress goes to our stdout (the console).
pub fn install(rauc: &str, bundle: &Path) -> Result<(), String> {
    let out = Command::new(rauc)
        .arg("install")
        .arg(bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| spawn_error(rauc, e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(gist(&out.stderr))
    }
}

/// Resets the booted slot's boot attempts: `rauc status mark-good`, or without RAUC the
/// same U-Boot variable RAUC would write.
pub fn mark_good(rauc: &str, slot: &str) -> Result<(), String> {
    match Command::new(rauc)
        .args(["status", "mark-good"])
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(gist(&out.stderr)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let out = Command::new("fw_setenv")
                .arg(format!("BOOT_{slot}_LEFT"))
                .arg("3")
                .output()
                .map_err(|e| spawn_error("fw_setenv", e))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(gist(&out.stderr))
            }
        }
        Err(e) => Err(spawn_error(rauc, e)),
    }
}

/// A U-Boot variable of the slot state (`BOOT_ORDER`), `None` when unset or unreadable.
pub fn boot_env(name: &str) -> Option<String> {
    let out = Command::new("fw_printenv")
        .arg("-n")
        .arg(name)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
