//! The `[upgrade]` section of the config file (docs/config.md).

use std::path::PathBuf;

use serde::Deserialize;

/// Health checks a slot on trial can be asked to pass.
pub const HEALTH_CHECKS: &[&str] = &["sensor", "bundle", "upload"];

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpgradeConfig {
    /// CA certificates (PEM) a bundle's signer must chain to: the keyring in the image.
    pub keyring: PathBuf,
    /// Where a bundle given by URL is downloaded (on the data partition: the slots are full).
    pub download_dir: PathBuf,
    /// Largest bundle a download may be, MiB (the data partition also holds the spool).
    pub max_download_mib: u32,
    /// The RAUC program.
    pub rauc: String,
    /// Command (program and arguments) that reboots the gateway into the new slot.
    pub reboot_command: Vec<String>,
    /// How long a freshly updated slot has to pass its health checks, seconds; after that it
    /// reboots without marking itself good, and U-Boot's boot counter decides.
    pub health_timeout_secs: u32,
    /// Which checks a freshly updated slot must pass: `sensor` (the capture service is up),
    /// `bundle` (a bundle was written since boot), `upload` (one was delivered since boot;
    /// skipped when `upload.url` is unset).
    pub health_checks: Vec<String>,
}

impl Default for UpgradeConfig {
    fn default() -> Self {
        UpgradeConfig {
            keyring: PathBuf::from("/etc/rauc/keyring.pem"),
            download_dir: PathBuf::from("/data/osect/upgrade"),
            max_download_mib: 512,
            rauc: "rauc".into(),
            reboot_command: vec!["reboot".into()],
            health_timeout_secs: 300,
            health_checks: HEALTH_CHECKS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl UpgradeConfig {
    /// `Err((key, message))` for a value that cannot work.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if let Some(c) = self
            .health_checks
            .iter()
            .find(|c| !HEALTH_CHECKS.contains(&c.as_str()))
        {
            return Err((
                "upgrade.health_checks",
                format!("{c:?} is not one of {}", HEALTH_CHECKS.join(", ")),
            ));
        }
        if self.health_timeout_secs == 0 {
            return Err(("upgrade.health_timeout_secs", "must be at least 1".into()));
        }
        if self.reboot_command.is_empty() {
            return Err(("upgrade.reboot_command", "must name a program".into()));
        }
        if self.max_download_mib == 0 {
            return Err(("upgrade.max_download_mib", "must be at least 1".into()));
        }
        Ok(())
    }
}
