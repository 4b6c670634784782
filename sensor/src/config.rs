//! The sensor's one configuration file (TOML).
//!
//! Every key has a default, so an empty file is a valid configuration for `replay`; `run` needs
//! at least `capture.interface`. Unknown keys are errors (a typo must not silently fall back to
//! a default on a box nobody is watching). `docs/config.md` documents every key; keep the two in
//! step.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::decode::DecodeConfig;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub capture: CaptureConfig,
    pub decode: DecodeSection,
    pub flow: FlowConfig,
    pub conn: ConnConfig,
    pub output: OutputConfig,
    pub spool: SpoolConfig,
    pub upload: UploadConfig,
    pub retention: RetentionConfig,
    pub p0f: P0fConfig,
    pub yaf: YafConfig,
    pub detect: DetectSection,
    pub upgrade: crate::upgrade::UpgradeConfig,
    pub analyzers: AnalyzersSection,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    /// Monitoring interface for `run` (e.g. the mirror port `eth1`).
    pub interface: Option<String>,
    /// Bytes kept of each packet.
    pub snaplen: u32,
    /// Kernel capture buffer, MiB.
    pub buffer_mib: u32,
    pub promiscuous: bool,
    /// Optional BPF filter expression (tcpdump syntax).
    pub bpf_filter: Option<String>,
    /// libpcap read timeout, milliseconds: how long a quiet link may keep packets in the buffer.
    pub timeout_ms: u32,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            interface: None,
            snaplen: 65535,
            buffer_mib: 16,
            promiscuous: true,
            bpf_filter: None,
            timeout_ms: 200,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecodeSection {
    pub verify_checksums: bool,
    pub max_fragment_sets: usize,
    pub max_fragment_bytes: usize,
    pub fragment_timeout_secs: u32,
}

impl Default for DecodeSection {
    fn default() -> Self {
        let d = DecodeConfig::default();
        DecodeSection {
            verify_checksums: d.verify_checksums,
            max_fragment_sets: d.max_fragment_sets,
            max_fragment_bytes: d.max_fragment_bytes,
            fragment_timeout_secs: d.fragment_timeout_secs,
        }
    }
}

impl DecodeSection {
    pub fn to_decode_config(&self) -> DecodeConfig {
        DecodeConfig {
            verify_checksums: self.verify_checksums,
            max_fragment_sets: self.max_fragment_sets,
            max_fragment_bytes: self.max_fragment_bytes,
            fragment_timeout_secs: self.fragment_timeout_secs,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowConfig {
    /// Connections tracked at once; the table is allocated at start-up and never grows.
    pub max_flows: usize,
    pub tcp_inactivity_secs: u32,
    pub udp_inactivity_secs: u32,
    pub icmp_inactivity_secs: u32,
    pub other_inactivity_secs: u32,
    /// UDP connections on DNS ports (53, 137, 5353, 5355) end after this much silence (Zeek's
    /// `dns_session_timeout`).
    pub dns_inactivity_secs: u32,
    /// How long a TCP connection lingers after both sides closed or one reset.
    pub tcp_close_delay_secs: u32,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            max_flows: 65_536,
            tcp_inactivity_secs: 300,
            udp_inactivity_secs: 60,
            icmp_inactivity_secs: 60,
            other_inactivity_secs: 60,
            dns_inactivity_secs: 10,
            tcp_close_delay_secs: 5,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnConfig {
    /// Networks whose addresses count as local for `local_orig`/`local_resp`. Empty (the
    /// product default) leaves both columns unset (`-`). The word `"private"` stands for Zeek's
    /// private address space (RFC 1918 and friends), which is what Zeek >= 6 uses by default.
    pub local_nets: Vec<String>,
    /// Seed for connection uids; set it to get identical uids on every run (tests).
    pub uid_seed: Option<u64>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// Interval folders (`realtime-.../`) are written here.
    pub log_dir: PathBuf,
    /// Finished bundles (`realtime-....tar.zst`) are queued here for upload.
    pub spool_dir: PathBuf,
    /// The sensor's own log, `sensor.log`, with counters at every interval.
    pub sensor_log: PathBuf,
    /// Length of an interval, seconds.
    pub interval_secs: u32,
    /// Time zone of the bundle names (IANA name such as `Asia/Tokyo`, or `UTC`).
    pub timezone: String,
    /// zstd level of the bundles.
    pub zstd_level: i32,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            log_dir: PathBuf::from("/var/lib/osect/logs"),
            spool_dir: PathBuf::from("/var/lib/osect/spool"),
            sensor_log: PathBuf::from("/var/log/osect/sensor.log"),
            interval_secs: 60,
            timezone: "UTC".to_string(),
            zstd_level: 10,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// Where bundles wait for upload; overrides `output.spool_dir`, and is where
    /// `replay --bundles --config FILE` puts its bundles.
    pub dir: Option<PathBuf>,
}

/// Path of the upload endpoint, appended to an `upload.url` given without one.
pub const DEFAULT_UPLOAD_PATH: &str = "/paper/api/v1/createlogdata/post";

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadConfig {
    /// `https://host[:port][/path]`; unset = no upload. A URL without a path gets
    /// [`DEFAULT_UPLOAD_PATH`].
    pub url: Option<String>,
    /// PEM bundle of the CAs that may sign the server's certificate; unset = the Mozilla roots
    /// built into the binary.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain, optionally followed by its private key.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of the client certificate, when not in `client_cert`.
    pub client_key: Option<PathBuf>,
    /// `label_id` form field (tells apart sensors sharing one certificate).
    pub label_id: String,
    /// Longest a request may stall (connecting, sending, or waiting for the answer), seconds.
    pub timeout_s: u32,
    /// Bandwidth cap for bundle bodies, kilobits per second; 0 = no cap.
    pub max_rate_kbps: u32,
    /// Serial device of the LTE modem; when set, `AT` must be answered `OK` before a send.
    pub modem_device: Option<PathBuf>,
    /// Keep delivered bundles in `<spool>/sent/` for retention to age out (true), or delete
    /// them and their interval folder right after delivery (false).
    pub keep_sent: bool,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            url: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            label_id: String::new(),
            timeout_s: 180,
            max_rate_kbps: 0,
            modem_device: None,
            keep_sent: true,
        }
    }
}

/// Where p0f-k.log's fingerprint database comes from.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct P0fConfig {
    /// A database in p0f v3's `p0f.fp` format. Unset means [`DEFAULT_FP_FILE`] if it exists
    /// (p0f-k.log stays empty, with a warning, if it does not); set, it must load.
    pub fp_file: Option<PathBuf>,
    /// The loaded database (filled in by [`Config::load`] / [`Config::builtin`]).
    #[serde(skip)]
    pub database: Option<std::sync::Arc<crate::analyzers::p0f::Database>>,
}

/// Where the Debian `p0f` package (and the sensor image) install p0f's database.
pub const DEFAULT_FP_FILE: &str = "/etc/p0f/p0f.fp";

impl P0fConfig {
    /// The database file in effect and whether the operator named it.
    pub fn fp_path(&self) -> (PathBuf, bool) {
        match &self.fp_file {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from(DEFAULT_FP_FILE), false),
        }
    }
}

impl UploadConfig {
    /// The endpoint with the default path filled in (`None` when upload is off).
    pub fn endpoint(&self) -> Option<String> {
        let url = self.url.as_deref()?.trim();
        let rest = url.strip_prefix("https://").unwrap_or(url);
        Some(match rest.find('/') {
            None => format!("{url}{DEFAULT_UPLOAD_PATH}"),
            Some(i) if &rest[i..] == "/" => {
                format!("{}{DEFAULT_UPLOAD_PATH}", &url[..url.len() - 1])
            }
            Some(_) => url.to_string(),
        })
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Delivered bundles (and their interval folders) older than this are deleted; 0 = no
    /// age limit.
    pub max_age_days: u32,
    /// The file system holding the spool is kept at or below this use (df's Use%).
    pub max_disk_percent: u8,
    /// Cap on the bytes the sensor's data (interval folders and bundles) occupies; 0 = none.
    pub max_bytes: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            max_age_days: 7,
            max_disk_percent: 70,
            max_bytes: 0,
        }
    }
}

/// yaf_flow.log's flow table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct YafConfig {
    /// Flows of other IP protocols tracked at once; when full the flow idle the longest ends
    /// with `rsrc`.
    pub max_flows: usize,
    /// A flow with no packet for longer than this ends (`idle`). YAF's default.
    pub idle_timeout_secs: u32,
    /// A flow older than this ends at its next packet (`active`). YAF's default.
    pub active_timeout_secs: u32,
}

impl Default for YafConfig {
    fn default() -> Self {
        YafConfig {
            max_flows: 4096,
            idle_timeout_secs: 300,
            active_timeout_secs: 1800,
        }
    }
}

/// The application analyzers (every log but conn.log).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyzersSection {
    /// Off: a conn.log-only sensor (decode, flows, conn.log; the service column then names only
    /// tunnels). For gateways too small for the analyzers, and to measure the foundation alone.
    pub enabled: bool,
}

impl Default for AnalyzersSection {
    fn default() -> Self {
        AnalyzersSection { enabled: true }
    }
}

/// Signature detection (Suricata rules → eve.json).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectSection {
    /// Detection runs when enabled and at least one rule file is configured.
    pub enabled: bool,
    /// Rule files, folders (their `*.rules`) or glob patterns.
    pub rules: Vec<String>,
    /// `classification.config` for alert categories and severities.
    pub classification_file: Option<PathBuf>,
    /// `$HOME_NET` in Suricata syntax, e.g. `"[10.0.0.0/8,192.168.0.0/16]"` (default: RFC 1918).
    pub home_net: Option<String>,
    /// `$EXTERNAL_NET` (default `"!$HOME_NET"`).
    pub external_net: Option<String>,
    /// Further address and port variables (`HTTP_PORTS = "[80,8080]"`).
    pub vars: std::collections::BTreeMap<String, String>,
    /// Treat TCP connections picked up without their handshake as established
    /// (Suricata's `stream.midstream`).
    pub midstream: bool,
    /// Connections with detection state at once (flowbits, stream window, TLS handshake).
    pub max_flows: usize,
    /// Threshold/detection_filter entries at once.
    pub max_threshold_entries: usize,
    /// `rules update`: `https://` URL of the rule archive (`.tar.gz`, e.g. ET Open's
    /// `emerging.rules.tar.gz`), fetched over the upload channel; its MD5 from `<url>.md5`.
    pub update_url: Option<String>,
    /// `rules update`: where rule sets are unpacked and `current`/`previous` point (on the
    /// data partition); `detect.rules` names `<update_dir>/current/rules` to use them.
    pub update_dir: PathBuf,
    /// `rules update`: largest archive a download may be, MiB.
    pub update_max_download_mib: u32,
    /// `rules update`: largest an archive may unpack to, MiB (all files together).
    pub update_max_unpacked_mib: u32,
}

impl Default for DetectSection {
    fn default() -> Self {
        DetectSection {
            enabled: true,
            rules: Vec::new(),
            classification_file: None,
            home_net: None,
            external_net: None,
            vars: Default::default(),
            midstream: false,
            max_flows: 65_536,
            max_threshold_entries: 65_536,
            update_url: None,
            update_dir: PathBuf::from("/data/osect/rules"),
            update_max_download_mib: 64,
            update_max_unpacked_mib: 256,
        }
    }
}

/// A network prefix for `local_nets`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    pub fn parse(s: &str) -> Option<Prefix> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            Some(l) => l.trim().parse::<u8>().ok().filter(|&l| l <= max)?,
            None => max,
        };
        Some(Prefix { addr, len })
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        fn masked(a: u128, len: u8, bits: u8) -> u128 {
            if len == 0 {
                0
            } else {
                a >> (bits - len)
            }
        }
        match (self.addr, ip) {
            (IpAddr::V4(p), IpAddr::V4(a)) => {
                masked(u32::from(p) as u128, self.len, 32)
                    == masked(u32::from(*a) as u128, self.len, 32)
            }
            (IpAddr::V6(p), IpAddr::V6(a)) => {
                masked(u128::from(p), self.len, 128) == masked(u128::from(*a), self.len, 128)
            }
            _ => false,
        }
    }
}

/// Zeek's `Site::private_address_space` (scripts/base/utils/site.zeek), the set Zeek >= 6
/// treats as local by default.
pub const ZEEK_PRIVATE_SPACE: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/24",
    "239.0.0.0/8",
    "240.0.0.0/4",
    "255.255.255.255/32",
    "0.0.0.0/8",
    "::/128",
    "::1/128",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/23",
    "2001:2::/48",
    "2001:db8::/32",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
];

impl ConnConfig {
    /// The parsed `local_nets`; `Err` names the entry that is not a prefix.
    pub fn local_prefixes(&self) -> Result<Vec<Prefix>, String> {
        let mut out = Vec::new();
        for n in &self.local_nets {
            if n == "private" {
                for p in ZEEK_PRIVATE_SPACE.iter().filter_map(|p| Prefix::parse(p)) {
                    out.push(p);
                    // Zeek also lists the 6to4 image (2002:V4ADDR::/16+len) of each IPv4 range.
                    if let IpAddr::V4(v4) = p.addr {
                        let six = (0x2002u128 << 112) | ((u32::from(v4) as u128) << 80);
                        out.push(Prefix {
                            addr: IpAddr::V6(six.into()),
                            len: 16 + p.len,
                        });
                    }
                }
            } else {
                out.push(
                    Prefix::parse(n).ok_or_else(|| format!("{n:?} is not an address prefix"))?,
                );
            }
        }
        Ok(out)
    }
}

impl Config {
    /// Where bundles are queued: `spool.dir`, else `output.spool_dir`.
    pub fn spool_dir(&self) -> &Path {
        self.spool.dir.as_deref().unwrap_or(&self.output.spool_dir)
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates config text; `path` is only used in messages. Data files the
    /// config names (the p0f database) are loaded too, so that a bad one stops the start.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        cfg.validate(path)?;
        cfg.load_data(path)?;
        Ok(cfg)
    }

    /// The configuration without a file: every default, data files loaded.
    pub fn builtin() -> Result<Config, ConfigError> {
        Config::parse("", Path::new("(defaults)"))
    }

    fn load_data(&mut self, path: &Path) -> Result<(), ConfigError> {
        let (fp, explicit) = self.p0f.fp_path();
        if !explicit && !fp.exists() {
            return Ok(());
        }
        let db = crate::analyzers::p0f::Database::load(&fp).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: "p0f.fp_file",
            message: e.to_string(),
        })?;
        self.p0f.database = Some(std::sync::Arc::new(db));
        Ok(())
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |key: &'static str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        };
        if self.flow.max_flows == 0 || self.flow.max_flows > (1 << 26) {
            return Err(bad(
                "flow.max_flows",
                format!("{} is outside 1..=67108864", self.flow.max_flows),
            ));
        }
        if self.output.interval_secs == 0
            || self.output.interval_secs > 86_400
            || 86_400 % self.output.interval_secs != 0
        {
            return Err(bad(
                "output.interval_secs",
                format!(
                    "{} must divide a day (e.g. 60, 300, 3600)",
                    self.output.interval_secs
                ),
            ));
        }
        if !(1..=22).contains(&self.output.zstd_level) {
            return Err(bad(
                "output.zstd_level",
                format!("{} is outside 1..=22", self.output.zstd_level),
            ));
        }
        if self.output.timezone != "UTC" && self.output.timezone.parse::<chrono_tz::Tz>().is_err() {
            return Err(bad(
                "output.timezone",
                format!("{:?} is not a known time zone", self.output.timezone),
            ));
        }
        if self.capture.snaplen < 64 || self.capture.snaplen > 262_144 {
            return Err(bad(
                "capture.snaplen",
                format!("{} is outside 64..=262144", self.capture.snaplen),
            ));
        }
        if self.decode.max_fragment_sets == 0 {
            return Err(bad("decode.max_fragment_sets", "must be at least 1".into()));
        }
        for (key, v) in [
            ("flow.tcp_inactivity_secs", self.flow.tcp_inactivity_secs),
            ("flow.udp_inactivity_secs", self.flow.udp_inactivity_secs),
            ("flow.icmp_inactivity_secs", self.flow.icmp_inactivity_secs),
            (
                "flow.other_inactivity_secs",
                self.flow.other_inactivity_secs,
            ),
            ("flow.dns_inactivity_secs", self.flow.dns_inactivity_secs),
        ] {
            if v == 0 {
                return Err(bad(key, "must be at least 1".into()));
            }
        }
        self.conn
            .local_prefixes()
            .map_err(|m| bad("conn.local_nets", m))?;
        if self.detect.max_flows == 0 || self.detect.max_threshold_entries == 0 {
            return Err(bad(
                "detect.max_flows",
                "detect.max_flows and detect.max_threshold_entries must be at least 1".into(),
            ));
        }
        crate::detect::vars_of(&self.detect).map_err(|m| bad("detect.home_net", m))?;
        crate::detect::update::validate(&self.detect).map_err(|(k, m)| bad(k, m))?;
        if self.yaf.max_flows == 0 || self.yaf.max_flows > (1 << 24) {
            return Err(bad(
                "yaf.max_flows",
                format!("{} is outside 1..=16777216", self.yaf.max_flows),
            ));
        }
        for (key, v) in [
            ("yaf.idle_timeout_secs", self.yaf.idle_timeout_secs),
            ("yaf.active_timeout_secs", self.yaf.active_timeout_secs),
        ] {
            if v == 0 {
                return Err(bad(key, "must be at least 1".into()));
            }
        }
        if let Err((key, message)) = self.upgrade.validate() {
            return Err(bad(key, message));
        }
        self.validate_upload(path)
    }

    fn validate_upload(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |key: &'static str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        };
        let up = &self.upload;
        if let Some(url) = &up.url {
            // Plain HTTP would send the logs in clear and skip the server's authentication.
            let host = url
                .trim()
                .strip_prefix("https://")
                .ok_or_else(|| bad("upload.url", format!("{url:?} must start with https://")))?;
            if host.split('/').next().unwrap_or("").is_empty() {
                return Err(bad("upload.url", format!("{url:?} has no host")));
            }
        }
        if up.client_key.is_some() && up.client_cert.is_none() {
            return Err(bad(
                "upload.client_key",
                "set, but upload.client_cert is not".into(),
            ));
        }
        if up.timeout_s == 0 || up.timeout_s > 3600 {
            return Err(bad(
                "upload.timeout_s",
                format!("{} is outside 1..=3600", up.timeout_s),
            ));
        }
        if up.label_id.contains(['\r', '\n']) {
            return Err(bad("upload.label_id", "must be one line".into()));
        }
        let r = &self.retention;
        if !(1..=99).contains(&r.max_disk_percent) {
            return Err(bad(
                "retention.max_disk_percent",
                format!("{} is outside 1..=99", r.max_disk_percent),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(s, Path::new("test.toml"))
    }

    #[test]
    fn empty_file_is_all_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.flow.max_flows, 65_536);
        assert_eq!(c.output.interval_secs, 60);
        assert!(c.decode.verify_checksums);
    }

    #[test]
    fn unknown_key_is_named() {
        let e = parse("[flow]\nmax_flow = 3\n").unwrap_err().to_string();
        assert!(e.contains("max_flow"), "{e}");
    }

    #[test]
    fn bad_value_is_named() {
        let e = parse("[output]\ninterval_secs = 7\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("output.interval_secs"), "{e}");
        let e = parse("[conn]\nlocal_nets = [\"10.0.0.0/33\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("conn.local_nets"), "{e}");
        let e = parse("[output]\ntimezone = \"Mars/Olympus\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("output.timezone"), "{e}");
    }

    #[test]
    fn upload_and_retention_keys() {
        let c = parse("").unwrap();
        assert_eq!(c.upload.endpoint(), None);
        assert_eq!(c.upload.timeout_s, 180);
        assert!(c.upload.keep_sent);
        assert_eq!(c.retention.max_age_days, 7);
        assert_eq!(c.retention.max_disk_percent, 70);
        assert_eq!(c.spool_dir(), Path::new("/var/lib/osect/spool"));
        let c = parse(
            "[spool]\ndir = \"/s\"\n[upload]\nurl = \"https://h.example:8443\"\nlabel_id = \"L1\"\n\
             max_rate_kbps = 64\n[retention]\nmax_bytes = 1000\n",
        )
        .unwrap();
        assert_eq!(c.spool_dir(), Path::new("/s"));
        assert_eq!(
            c.upload.endpoint().unwrap(),
            "https://h.example:8443/paper/api/v1/createlogdata/post"
        );
        let c = parse("[upload]\nurl = \"https://h/\"\n").unwrap();
        assert_eq!(
            c.upload.endpoint().unwrap(),
            "https://h/paper/api/v1/createlogdata/post"
        );
        let c = parse("[upload]\nurl = \"https://h/x/y\"\n").unwrap();
        assert_eq!(c.upload.endpoint().unwrap(), "https://h/x/y");
        for (text, key) in [
            ("[upload]\nurl = \"http://h/\"\n", "upload.url"),
            ("[upload]\nurl = \"https:///x\"\n", "upload.url"),
            ("[upload]\nclient_key = \"/k\"\n", "upload.client_key"),
            ("[upload]\ntimeout_s = 0\n", "upload.timeout_s"),
            (
                "[retention]\nmax_disk_percent = 100\n",
                "retention.max_disk_percent",
            ),
            ("[upload]\nverify = false\n", "verify"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn p0f_database_explicit_must_load() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.fp");
        let e = parse(&format!("[p0f]\nfp_file = {:?}\n", missing))
            .unwrap_err()
            .to_string();
        assert!(e.contains("p0f.fp_file") && e.contains("none.fp"), "{e}");
        let bad = dir.path().join("bad.fp");
        std::fs::write(&bad, "[tcp:request]\nlabel = s:unix:X:\nsig = 4:64:0\n").unwrap();
        let e = parse(&format!("[p0f]\nfp_file = {:?}\n", bad))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.fp, line 3"), "{e}");
        let good = dir.path().join("good.fp");
        std::fs::write(
            &good,
            "[tcp:request]\nlabel = s:unix:X:\nsig = 4:64:0:*:*,*:::0\n",
        )
        .unwrap();
        let c = parse(&format!("[p0f]\nfp_file = {:?}\n", good)).unwrap();
        assert_eq!(c.p0f.database.unwrap().request.len(), 1);
    }

    #[test]
    fn yaf_limits_are_checked() {
        let e = parse("[yaf]\nmax_flows = 0\n").unwrap_err().to_string();
        assert!(e.contains("yaf.max_flows"), "{e}");
        let c = parse("[yaf]\nidle_timeout_secs = 60\n").unwrap();
        assert_eq!(
            (c.yaf.idle_timeout_secs, c.yaf.active_timeout_secs),
            (60, 1800)
        );
    }

    #[test]
    fn detect_section() {
        let c = parse(
            "[detect]\nrules = [\"a.rules\"]\nhome_net = \"[10.0.0.0/8]\"\nvars = { HTTP_PORTS = \"[80,8080]\" }\nmidstream = true\n",
        )
        .unwrap();
        assert_eq!(c.detect.rules, vec!["a.rules".to_string()]);
        assert!(c.detect.midstream);
        let e = parse("[detect]\nhome_net = \"[10.0.0.0/33]\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("detect.home_net"), "{e}");
        let e = parse("[detect]\nrule = []\n").unwrap_err().to_string();
        assert!(e.contains("rule"), "{e}");
    }

    #[test]
    fn prefixes_match() {
        let p = Prefix::parse("10.0.0.0/8").unwrap();
        assert!(p.contains(&"10.1.2.3".parse().unwrap()));
        assert!(!p.contains(&"11.1.2.3".parse().unwrap()));
        let p = Prefix::parse("fe80::/10").unwrap();
        assert!(p.contains(&"fe80::1".parse().unwrap()));
        assert!(!p.contains(&"10.1.2.3".parse().unwrap()));
        let c = ConnConfig {
            local_nets: vec!["private".into()],
            uid_seed: None,
        };
        let ps = c.local_prefixes().unwrap();
        assert!(ps
            .iter()
            .any(|p| p.contains(&"224.0.0.251".parse().unwrap())));
        assert!(!ps.iter().any(|p| p.contains(&"ff02::fb".parse().unwrap())));
    }
}
