//! Bundles given by URL come over the uploader's channel: the same CA file, client
//! certificate and key (`[upload]`), so only the analysis service the sensor already trusts
//! (and that trusts it) can hand it an update. The signature is still what decides.
//! Rule archives (`rules update`) come the same way ([`download_to`], [`fetch_small`]).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;

/// Name of a downloaded bundle in `upgrade.download_dir`.
pub const DOWNLOAD_NAME: &str = "update.raucb";

/// Downloads `url` into `dir` (as `update.raucb`, via a `.part` file renamed once complete),
/// refusing more than `max_bytes`.
pub fn download(cfg: &Config, url: &str, dir: &Path, max_bytes: u64) -> Result<PathBuf, String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dest = dir.join(DOWNLOAD_NAME);
    // An older download would only take space the new one needs.
    let _ = fs::remove_file(&dest);
    download_to(cfg, url, &dest, max_bytes, "upgrade.max_download_mib")?;
    Ok(dest)
}

/// An HTTPS client with the `[upload]` TLS settings and timeout.
fn agent(cfg: &Config, url: &str) -> Result<ureq::Agent, String> {
    if !url.starts_with("https://") {
        return Err(format!(
            "{url}: only https:// (the upload channel's mutual TLS) is accepted"
        ));
    }
    let tls = crate::upload::tls_config(cfg).map_err(|e| e.to_string())?;
    let timeout = Duration::from_secs(u64::from(cfg.upload.timeout_s));
    Ok(ureq::AgentBuilder::new()
        .tls_config(Arc::new(tls))
        .timeout_connect(timeout)
        .timeout_read(timeout)
        .user_agent(concat!("osect-sensor/", env!("CARGO_PKG_VERSION")))
        .build())
}

fn get(agent: &ureq::Agent, url: &str) -> Result<ureq::Response, String> {
    agent.get(url).call().map_err(|e| match e {
        ureq::Error::Status(code, _) => format!("{url}: server answered HTTP {code}"),
        ureq::Error::Transport(t) => format!("{url}: {}", crate::upload::describe_transport(&t)),
    })
}

/// Downloads `url` to `dest` (via `dest.part`, renamed once complete and synced), refusing
/// more than `max_bytes`; `limit_key` names the setting in messages. Returns the size.
pub fn download_to(
    cfg: &Config,
    url: &str,
    dest: &Path,
    max_bytes: u64,
    limit_key: &str,
) -> Result<u64, String> {
    let agent = agent(cfg, url)?;
    let mut part = dest.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    let resp = get(&agent, url)?;
    if let Some(len) = resp
        .header("Content-Length")
        .and_then(|l| l.parse::<u64>().ok())
    {
        if len > max_bytes {
            return Err(format!(
                "{url}: {len} bytes is more than {limit_key} allows"
            ));
        }
    }
    let result = (|| -> io::Result<u64> {
        let mut out = File::create(&part)?;
        let mut body = resp.into_reader().take(max_bytes + 1);
        let n = io::copy(&mut body, &mut out)?;
        out.flush()?;
        out.sync_all()?;
        Ok(n)
    })();
    match result {
        Ok(n) if n > max_bytes => {
            let _ = fs::remove_file(&part);
            Err(format!(
                "{url}: more than {limit_key} ({max_bytes} bytes); not kept"
            ))
        }
        Ok(n) => {
            fs::rename(&part, dest).map_err(|e| format!("{}: {e}", dest.display()))?;
            Ok(n)
        }
        Err(e) => {
            let _ = fs::remove_file(&part);
            Err(format!("{url}: download failed: {e}"))
        }
    }
}

/// A small document (a checksum file) into memory; more than `max_bytes` is an error.
pub fn fetch_small(cfg: &Config, url: &str, max_bytes: u64) -> Result<Vec<u8>, String> {
    let resp = get(&agent(cfg, url)?, url)?;
    let mut body = Vec::new();
    resp.into_reader()
        .take(max_bytes + 1)
        .read_to_end(&mut body)
        .map_err(|e| format!("{url}: download failed: {e}"))?;
    if body.len() as u64 > max_bytes {
        return Err(format!("{url}: more than {max_bytes} bytes"));
    }
    Ok(body)
}
