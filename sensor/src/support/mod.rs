//! The support bundle: `osect-sensor support --out DIR` gathers what a support engineer asks
//! for first into one `.tar.gz`, in the spirit of sosreport.
//!
//! What goes in: versions, A/B slot and boot state, kernel and system facts (uname, uptime,
//! memory, disks, mounts, interfaces and their counters, routes, dmesg), the sensor's config
//! with secrets redacted, `sensor.log`, the latest counters, a spool listing, the upload
//! history, and the subject and expiry of every certificate the config names.
//!
//! What never goes in: private keys (no file whose content holds a private-key PEM block is
//! copied, and such blocks are cut out of any text collected) and secret values from the
//! config (every collected text is scrubbed of them). Everything is bounded: each item has a
//! byte cap (the tail is kept for logs) and the bundle as a whole has one, so a support request
//! on a box with a full disk cannot make things worse.
//!
//! Collection never fails as a whole: an item that cannot be read is listed in
//! `MANIFEST.txt` with the reason, because a half-broken box is exactly when this runs.

mod collect;
mod redact;

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use redact::{redact_config, Scrubber};

/// Byte cap of one collected item (logs keep their tail).
pub const ITEM_CAP: usize = 2 << 20;
/// Byte cap of everything collected, before compression.
pub const TOTAL_CAP: usize = 24 << 20;

/// Where the sensor keeps what the bundle collects.
#[derive(Clone, Debug, Default)]
pub struct SupportSources {
    /// The config file (read as text: the bundle must work even when the config is invalid).
    pub config: Option<PathBuf>,
    /// Folders holding `sensor.log` (and its rotated `sensor.log.1`).
    pub log_dirs: Vec<PathBuf>,
    /// The spool folder (bundles, `sent/`, the upload history).
    pub spool_dir: Option<PathBuf>,
    /// `upgrade.download_dir`: the firmware update history (installs, refusals, rollbacks).
    pub upgrade_dir: Option<PathBuf>,
    /// `detect.update_dir`: the rule update log (`osect-sensor rules update`).
    pub rules_dir: Option<PathBuf>,
    /// Root of the file system facts are read from (`/` on the box; a test's folder in tests).
    pub root: PathBuf,
}

/// One item of the bundle.
#[derive(Debug)]
pub struct Item {
    pub name: String,
    pub data: Vec<u8>,
    /// What happened while collecting it (truncated, unreadable, ...), for the manifest.
    pub note: Option<String>,
}

impl Item {
    fn new(name: impl Into<String>, data: Vec<u8>) -> Item {
        Item {
            name: name.into(),
            data,
            note: None,
        }
    }

    fn failed(name: impl Into<String>, why: impl std::fmt::Display) -> Item {
        Item {
            name: name.into(),
            data: Vec::new(),
            note: Some(format!("not collected: {why}")),
        }
    }
}

/// Collects every item, scrubbed and capped, in bundle order.
pub fn collect(src: &SupportSources) -> Vec<Item> {
    let config_text = src
        .config
        .as_ref()
        .map(|p| fs::read_to_string(p).map_err(|e| (p.clone(), e)));
    let (redacted, scrubber) = match &config_text {
        Some(Ok(text)) => {
            let r = redact_config(text);
            (Some(Ok(r.text)), Scrubber::new(r.secrets))
        }
        Some(Err((p, e))) => (
            Some(Err(format!("{}: {e}", p.display()))),
            Scrubber::new(vec![]),
        ),
        None => (None, Scrubber::new(vec![])),
    };

    let mut items = Vec::new();
    items.push(collect::summary(src));
    items.extend(collect::system_facts(&src.root));
    match redacted {
        Some(Ok(text)) => items.push(Item::new("sensor/config.toml", text.into_bytes())),
        Some(Err(e)) => items.push(Item::failed("sensor/config.toml", e)),
        None => items.push(Item::failed("sensor/config.toml", "no config file given")),
    }
    if let Some(Ok(text)) = &config_text {
        items.push(collect::certificates(text, src.config.as_deref()));
    }
    items.extend(collect::sensor_logs(&src.log_dirs));
    if let Some(spool) = &src.spool_dir {
        items.extend(collect::spool(spool));
    }
    if let Some(dir) = &src.upgrade_dir {
        items.push(collect::upgrade_history(dir));
    }
    if let Some(dir) = &src.rules_dir {
        items.push(collect::rules_update_log(dir));
    }

    let mut total = 0usize;
    for it in &mut items {
        it.data = scrubber.scrub(&it.data);
        if it.data.len() > ITEM_CAP {
            let cut = it.data.len() - ITEM_CAP;
            it.data.drain(..cut);
            it.note = Some(format!("truncated: first {cut} bytes dropped, tail kept"));
        }
        if total + it.data.len() > TOTAL_CAP {
            let n = it.data.len();
            it.data.clear();
            it.note = Some(format!(
                "dropped: the bundle's {TOTAL_CAP}-byte cap was reached ({n} bytes)"
            ));
        }
        total += it.data.len();
    }
    items
}

/// Writes the bundle `DIR/osect-support-<host>-<UTC time>.tar.gz` and returns its path.
pub fn write_bundle(src: &SupportSources, out_dir: &Path) -> io::Result<PathBuf> {
    let items = collect(src);
    fs::create_dir_all(out_dir)?;
    let host = collect::hostname(&src.root).unwrap_or_else(|| "unknown".into());
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let top = format!("osect-support-{host}-{stamp}");
    let path = out_dir.join(format!("{top}.tar.gz"));
    let part = out_dir.join(format!(".{top}.tar.gz.part"));
    let result = (|| {
        let f = File::create(&part)?;
        let gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let mtime = chrono::Utc::now().timestamp().max(0) as u64;
        let mut manifest = String::from("# item\tbytes\tnote\n");
        for it in &items {
            manifest.push_str(&format!(
                "{}\t{}\t{}\n",
                it.name,
                it.data.len(),
                it.note.as_deref().unwrap_or("-")
            ));
        }
        let manifest_item = Item::new("MANIFEST.txt", manifest.into_bytes());
        for it in std::iter::once(&manifest_item).chain(items.iter()) {
            let mut h = tar::Header::new_gnu();
            h.set_size(it.data.len() as u64);
            h.set_mode(0o600);
            h.set_mtime(mtime);
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut h, format!("{top}/{}", it.name), it.data.as_slice())?;
        }
        let gz = tar.into_inner()?;
        let f = gz.finish()?;
        f.sync_all()?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&part);
        return Err(e);
    }
    fs::rename(&part, &path)?;
    // Only whoever runs the command may read it: it describes the box in detail.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o600));
    }
    let _ = io::stdout().flush();
    Ok(path)
}

/// What a support engineer or the console needs to know of one certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFacts {
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
}

/// The certificates in a PEM file (other blocks, private keys included, are skipped unread).
pub fn certificate_facts(path: &Path) -> Result<Vec<CertFacts>, String> {
    let data = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(&data) {
        let pem = pem.map_err(|e| format!("{}: PEM: {e}", path.display()))?;
        if pem.label != "CERTIFICATE" {
            continue;
        }
        let c = pem
            .parse_x509()
            .map_err(|e| format!("{}: certificate {}: {e}", path.display(), out.len() + 1))?;
        out.push(CertFacts {
            subject: c.subject().to_string(),
            issuer: c.issuer().to_string(),
            serial: c.raw_serial_as_string(),
            not_before: c.validity().not_before.timestamp(),
            not_after: c.validity().not_after.timestamp(),
        });
    }
    if out.is_empty() {
        return Err(format!("{}: no certificate in this file", path.display()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
