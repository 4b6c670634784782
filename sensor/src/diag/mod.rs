//! Serial-console diagnostics: `osect-sensor status` and `osect-sensor diag`.
//!
//! Someone at a gateway's serial console (often with no network and no other tools) needs one
//! command that says whether the sensor is healthy and, if not, why. Everything here only reads:
//! `/proc`, `/sys/class/net`, the sensor's own `sensor.log`, the spool folder and the file
//! system holding it. It works whether or not the sensor is running, and never touches the
//! capture or the spool, so it is safe to run at any time.
//!
//! [`Report`] gathers the facts; [`Check`]s judge them (PASS/FAIL/SKIP with the reason). Both
//! render as compact text for an 80-column console or as JSON for scripts.

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::spool::{BUNDLE_EXT, INTERVAL_PREFIX};

/// Where `status`/`diag` look for the config when none is named.
pub const DEFAULT_CONFIG: &str = "/etc/osect/sensor.toml";
/// File in the spool folder where the uploader records its attempts, one line each; the last
/// line is shown as the last upload. Optional: absent until the first upload attempt.
pub const UPLOAD_HISTORY: &str = crate::upload::history::HISTORY_FILE;
/// How much of the end of `sensor.log` is read to find the latest counters line (the sensor
/// writes one per interval, a few hundred bytes, so this spans many intervals).
const LOG_TAIL_BYTES: u64 = 64 * 1024;
/// A clock before this (2024-01-01T00:00:00Z) was never set: bundle names and log timestamps
/// would be wrong.
const SANE_CLOCK_SECS: i64 = 1_704_067_200;
/// The spool's file system must keep this share free ...
const DISK_MIN_FREE_PERCENT: u64 = 10;
/// ... and at least this many bytes, or bundles will soon fail to be written.
const DISK_MIN_FREE_BYTES: u64 = 64 << 20;
/// Counters older than this many intervals mean the running sensor stopped closing intervals.
const COUNTERS_MAX_AGE_INTERVALS: u64 = 3;

/// Facts about one network interface, from `/sys/class/net/<name>/`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkState {
    pub name: String,
    pub exists: bool,
    /// `operstate` as the kernel reports it (`up`, `down`, `unknown` for loopback, ...).
    pub operstate: String,
    /// Administratively up (IFF_UP) with a carrier.
    pub up: bool,
    pub rx_packets: u64,
    pub rx_dropped: u64,
    pub rx_errors: u64,
}

/// The latest `counters` line of `sensor.log`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counters {
    /// When it was written (the log line's timestamp).
    pub at: Option<DateTime<Utc>>,
    /// `name=value` pairs in the order written.
    pub pairs: Vec<(String, String)>,
}

impl Counters {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `YYYY-mm-ddTHH:MM:SSZ` of a Unix time.
fn fmt_unix(t: i64) -> String {
    DateTime::<Utc>::from_timestamp(t, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// `host:port` of an `https://` URL (port 443 when none is given).
pub fn host_port(url: &str) -> Option<String> {
    let rest = url.trim().strip_prefix("https://")?;
    let auth = rest.split('/').next()?;
    let auth = auth.rsplit('@').next()?;
    if auth.is_empty() {
        return None;
    }
    let has_port = if let Some(v6) = auth.strip_prefix('[') {
        v6.contains("]:")
    } else {
        auth.contains(':')
    };
    Some(if has_port {
        auth.to_string()
    } else {
        format!("{auth}:443")
    })
}

/// The interval folder being written (`realtime-...tmp`, the newest) and the data lines of
/// each log in it so far.
pub fn current_interval(log_dir: &Path) -> Option<(String, Vec<(String, u64)>)> {
    let mut open: Vec<PathBuf> = fs::read_dir(log_dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(INTERVAL_PREFIX) && n.ends_with(".tmp"))
        })
        .collect();
    open.sort();
    let dir = open.pop()?;
    let mut logs = Vec::new();
    for f in crate::analyzers::LOG_FILES {
        let n = fs::read(dir.join(f))
            .map(|b| {
                b.split(|&c| c == b'\n')
                    .filter(|l| !l.is_empty() && l[0] != b'#')
                    .count() as u64
            })
            .unwrap_or(0);
        logs.push((f.trim_end_matches(".log").to_string(), n));
    }
    Some((dir.file_name()?.to_string_lossy().into_owned(), logs))
}

/// Finished bundles waiting in the spool folder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpoolSummary {
    pub exists: bool,
    pub bundles: u64,
    pub bytes: u64,
    /// Name of the oldest bundle (names sort by interval time).
    pub oldest: Option<String>,
    pub newest: Option<String>,
}

/// Space on the file system holding the spool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskUsage {
    pub total: u64,
    pub avail: u64,
}

impl DiskUsage {
    pub fn free_percent(&self) -> u64 {
        (self.avail.saturating_mul(100))
            .checked_div(self.total)
            .unwrap_or(0)
    }
}

/// Everything `status` shows.
#[derive(Clone, Debug)]
pub struct Report {
    pub version: &'static str,
    pub now: DateTime<Utc>,
    pub slot: Option<String>,
    pub uptime_secs: Option<u64>,
    pub config_path: Option<PathBuf>,
    /// Why the config could not be used (defaults were assumed instead).
    pub config_error: Option<String>,
    pub interface: Option<String>,
    pub interval_secs: u32,
    pub spool_dir: PathBuf,
    pub sensor_log: PathBuf,
    /// Process ids of `osect-sensor run` processes.
    pub sensor_pids: Vec<u32>,
    pub link: Option<LinkState>,
    pub counters: Option<Counters>,
    pub spool: SpoolSummary,
    pub disk: Option<DiskUsage>,
    pub last_upload: Option<String>,
    /// Certificates the uploader uses (client chain, CA bundle), each with its file.
    pub certs: Vec<(PathBuf, Result<Vec<crate::support::CertFacts>, String>)>,
    /// The interval being written: its folder name and lines per log so far.
    pub current_interval: Option<(String, Vec<(String, u64)>)>,
    /// The upload endpoint (`host:port`), when upload is configured.
    pub upload_server: Option<String>,
    /// Result of the TCP reachability probe (`diag` only, see [`Report::probe_server`]).
    pub server_probe: Option<Result<String, String>>,
}

/// Where the facts are read from; tests point these at temporary folders.
#[derive(Clone, Debug)]
pub struct Sources {
    pub proc_dir: PathBuf,
    pub sys_net_dir: PathBuf,
}

impl Default for Sources {
    fn default() -> Self {
        Sources {
            proc_dir: PathBuf::from("/proc"),
            sys_net_dir: PathBuf::from("/sys/class/net"),
        }
    }
}

/// Reads the config the way the console commands do: the named file, else
/// [`DEFAULT_CONFIG`] if present, else the built-in defaults. A broken config is reported,
/// not fatal: the console must still show what it can.
pub fn load_config(path: Option<&Path>) -> (Config, Option<PathBuf>, Option<String>) {
    let path = match path {
        Some(p) => Some(p.to_path_buf()),
        None => Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.exists()),
    };
    match &path {
        None => (Config::default(), None, None),
        Some(p) => match Config::load(p) {
            Ok(c) => (c, path, None),
            Err(e) => (Config::default(), path, Some(e.to_string())),
        },
    }
}

impl Report {
    pub fn gather(config_path: Option<&Path>, src: &Sources) -> Report {
        let (cfg, config_path, config_error) = load_config(config_path);
        let interface = cfg.capture.interface.clone();
        let spool_dir = cfg.spool_dir().to_path_buf();
        Report {
            version: env!("CARGO_PKG_VERSION"),
            now: Utc::now(),
            slot: fs::read_to_string(src.proc_dir.join("cmdline"))
                .ok()
                .and_then(|c| slot_from_cmdline(&c)),
            uptime_secs: fs::read_to_string(src.proc_dir.join("uptime"))
                .ok()
                .and_then(|u| parse_uptime(&u)),
            config_path,
            config_error,
            link: interface.as_deref().map(|i| read_link(&src.sys_net_dir, i)),
            interface,
            interval_secs: cfg.output.interval_secs,
            sensor_pids: sensor_pids(&src.proc_dir),
            counters: latest_counters(&cfg.output.sensor_log),
            spool: spool_summary(&spool_dir),
            disk: disk_usage(&spool_dir),
            last_upload: last_line(&spool_dir.join(UPLOAD_HISTORY)),
            certs: [&cfg.upload.client_cert, &cfg.upload.ca_file]
                .into_iter()
                .flatten()
                .map(|p| (p.clone(), crate::support::certificate_facts(p)))
                .collect(),
            current_interval: current_interval(&cfg.output.log_dir),
            upload_server: cfg.upload.endpoint().and_then(|u| host_port(&u)),
            server_probe: None,
            sensor_log: cfg.output.sensor_log,
            spool_dir,
        }
    }

    /// Tries a TCP connection to the upload server (name resolution included), so `diag` can
    /// tell "the network is down" from "the server refuses us". Only `diag` does this: `status`
    /// never touches the network.
    pub fn probe_server(&mut self, timeout: std::time::Duration) {
        use std::net::ToSocketAddrs;
        let Some(hp) = &self.upload_server else {
            return;
        };
        let r = match hp.to_socket_addrs() {
            Err(e) => Err(format!("{hp}: cannot resolve: {e}")),
            Ok(addrs) => {
                let addrs: Vec<_> = addrs.collect();
                let mut last = format!("{hp}: no address");
                let mut ok = None;
                for a in &addrs {
                    let t0 = std::time::Instant::now();
                    match std::net::TcpStream::connect_timeout(a, timeout) {
                        Ok(_) => {
                            ok = Some(format!(
                                "{hp} ({a}) accepts connections ({} ms)",
                                t0.elapsed().as_millis()
                            ));
                            break;
                        }
                        Err(e) => last = format!("{hp} ({a}): {e}"),
                    }
                }
                ok.ok_or(last)
            }
        };
        self.server_probe = Some(r);
    }

    /// Judges the facts. A check that cannot apply (nothing configured to judge) is SKIP.
    pub fn checks(&self) -> Vec<Check> {
        let mut out = Vec::new();
        out.push(if let Some(e) = &self.config_error {
            Check::fail("config", e.clone())
        } else {
            match &self.config_path {
                Some(p) => Check::pass("config", p.display().to_string()),
                None => Check::skip("config", format!("no {DEFAULT_CONFIG}, defaults in use")),
            }
        });
        out.push(if self.sensor_pids.is_empty() {
            Check::fail("sensor", "no `osect-sensor run` process".into())
        } else {
            Check::pass(
                "sensor",
                format!("running (pid {})", join(&self.sensor_pids)),
            )
        });
        out.push(match &self.link {
            None => Check::skip("interface", "capture.interface not set".into()),
            Some(l) if !l.exists => {
                Check::fail("interface", format!("{}: no such interface", l.name))
            }
            Some(l) if !l.up => Check::fail(
                "interface",
                format!("{}: link down (operstate {})", l.name, l.operstate),
            ),
            Some(l) if l.rx_packets == 0 => Check::fail(
                "interface",
                format!("{}: up but no packets received", l.name),
            ),
            Some(l) => Check::pass(
                "interface",
                format!("{}: up, {} packets received", l.name, l.rx_packets),
            ),
        });
        let now = self.now.timestamp();
        out.push(if now < SANE_CLOCK_SECS {
            Check::fail(
                "clock",
                format!(
                    "{} is before 2024: clock not set",
                    self.now.format("%Y-%m-%dT%H:%M:%SZ")
                ),
            )
        } else {
            Check::pass("clock", self.now.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        });
        out.push(match (&self.counters, self.sensor_pids.is_empty()) {
            (None, _) => Check::skip("counters", "no counters in sensor.log yet".into()),
            (Some(_), true) => Check::skip("counters", "sensor not running".into()),
            (Some(c), false) => match c.at {
                None => Check::skip("counters", "counters line without a timestamp".into()),
                Some(at) => {
                    let age = (self.now - at).num_seconds().max(0) as u64;
                    let limit = COUNTERS_MAX_AGE_INTERVALS * u64::from(self.interval_secs);
                    if age > limit {
                        Check::fail(
                            "counters",
                            format!(
                                "last written {} ago (intervals are {} s)",
                                human_secs(age),
                                self.interval_secs
                            ),
                        )
                    } else {
                        Check::pass("counters", format!("written {} ago", human_secs(age)))
                    }
                }
            },
        });
        out.push(match (&self.disk, self.spool.exists) {
            (_, false) => Check::fail(
                "disk",
                format!("spool folder {} missing", self.spool_dir.display()),
            ),
            (None, true) => Check::fail("disk", "cannot read file system usage".into()),
            (Some(d), true) => {
                let reason = format!(
                    "{} free of {} ({}%)",
                    human_bytes(d.avail),
                    human_bytes(d.total),
                    d.free_percent()
                );
                if d.free_percent() < DISK_MIN_FREE_PERCENT || d.avail < DISK_MIN_FREE_BYTES {
                    Check::fail(
                        "disk",
                        format!(
                            "{reason}: below {DISK_MIN_FREE_PERCENT}% or {}",
                            human_bytes(DISK_MIN_FREE_BYTES)
                        ),
                    )
                } else {
                    Check::pass("disk", reason)
                }
            }
        });
        out.push(self.cert_check());
        out.push(match (&self.upload_server, &self.server_probe) {
            (None, _) => Check::skip("server", "upload.url not set".into()),
            (Some(hp), None) => Check::skip("server", format!("{hp}: not probed")),
            (Some(_), Some(Ok(m))) => Check::pass("server", m.clone()),
            (Some(_), Some(Err(e))) => Check::fail("server", e.clone()),
        });
        out.push(match &self.last_upload {
            None => Check::skip("upload", "no upload recorded".into()),
            Some(l) if looks_failed(l) => Check::fail("upload", l.clone()),
            Some(l) => Check::pass("upload", l.clone()),
        });
        out
    }

    /// The report as compact text for the serial console.
    fn cert_check(&self) -> Check {
        if self.certs.is_empty() {
            return Check::skip("certificates", "no upload certificate configured".into());
        }
        let now = self.now.timestamp();
        let mut soonest: Option<(i64, String)> = None;
        for (path, r) in &self.certs {
            match r {
                Err(e) => return Check::fail("certificates", e.clone()),
                Ok(certs) => {
                    for c in certs {
                        if c.not_after < now {
                            return Check::fail(
                                "certificates",
                                format!(
                                    "{}: {} expired {}",
                                    path.display(),
                                    c.subject,
                                    fmt_unix(c.not_after)
                                ),
                            );
                        }
                        if c.not_before > now {
                            return Check::fail(
                                "certificates",
                                format!(
                                    "{}: {} not valid before {} (clock?)",
                                    path.display(),
                                    c.subject,
                                    fmt_unix(c.not_before)
                                ),
                            );
                        }
                        if soonest.as_ref().is_none_or(|(t, _)| c.not_after < *t) {
                            soonest = Some((c.not_after, c.subject.clone()));
                        }
                    }
                }
            }
        }
        let (t, subject) = soonest.unwrap_or((now, String::new()));
        Check::pass(
            "certificates",
            format!(
                "valid; first to expire: {subject} on {} ({} days)",
                fmt_unix(t),
                (t - now) / 86400
            ),
        )
    }

    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "osect-sensor {}  slot {}  up {}  {}",
            self.version,
            self.slot.as_deref().unwrap_or("-"),
            self.uptime_secs
                .map(human_secs)
                .unwrap_or_else(|| "-".into()),
            self.now.format("%Y-%m-%dT%H:%M:%SZ")
        );
        let _ = writeln!(
            s,
            "config    {}  interface {}  interval {} s",
            self.config_path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "(defaults)".into()),
            self.interface.as_deref().unwrap_or("-"),
            self.interval_secs
        );
        if let Some(e) = &self.config_error {
            let _ = writeln!(s, "          error: {e}");
        }
        let _ = writeln!(
            s,
            "sensor    {}",
            if self.sensor_pids.is_empty() {
                "not running".to_string()
            } else {
                format!("running (pid {})", join(&self.sensor_pids))
            }
        );
        if let Some(l) = &self.link {
            if l.exists {
                let _ = writeln!(
                    s,
                    "interface {} {} ({})  rx {} packets  dropped {}  errors {}",
                    l.name,
                    if l.up { "up" } else { "down" },
                    l.operstate,
                    l.rx_packets,
                    l.rx_dropped,
                    l.rx_errors
                );
            } else {
                let _ = writeln!(s, "interface {} missing", l.name);
            }
        }
        match &self.counters {
            Some(c) => {
                let at =
                    c.at.map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                        .unwrap_or_else(|| "-".into());
                let _ = writeln!(s, "counters  {at}");
                // Wrapped so a long line stays readable on an 80-column console.
                let mut line = String::from("         ");
                for (k, v) in &c.pairs {
                    if line.len() + k.len() + v.len() + 2 > 79 {
                        let _ = writeln!(s, "{line}");
                        line = String::from("         ");
                    }
                    let _ = write!(line, " {k}={v}");
                }
                if !line.trim().is_empty() {
                    let _ = writeln!(s, "{line}");
                }
            }
            None => {
                let _ = writeln!(s, "counters  none in {}", self.sensor_log.display());
            }
        }
        let _ = writeln!(
            s,
            "spool     {}: {} bundles, {}{}",
            self.spool_dir.display(),
            self.spool.bundles,
            human_bytes(self.spool.bytes),
            self.spool
                .oldest
                .as_ref()
                .map(|o| format!(", oldest {o}"))
                .unwrap_or_default()
        );
        if let Some(d) = &self.disk {
            let _ = writeln!(
                s,
                "disk      {} free of {} ({}%)",
                human_bytes(d.avail),
                human_bytes(d.total),
                d.free_percent()
            );
        }
        let _ = writeln!(
            s,
            "upload    {}",
            self.last_upload.as_deref().unwrap_or("none recorded")
        );
        if let Some(c) = &self.counters {
            let _ = writeln!(
                s,
                "capture   dropped {} by the kernel, {} by the interface",
                c.get("capture_dropped").unwrap_or("-"),
                c.get("capture_if_dropped").unwrap_or("-")
            );
        }
        if let Some((name, logs)) = &self.current_interval {
            let mut line = format!("interval  {name}:");
            for (log, n) in logs.iter().filter(|(_, n)| *n > 0) {
                let _ = write!(line, " {log}={n}");
            }
            let _ = writeln!(s, "{line}");
        }
        for (path, r) in &self.certs {
            match r {
                Ok(certs) => {
                    for c in certs {
                        let _ = writeln!(
                            s,
                            "cert      {}: {} expires {}",
                            path.display(),
                            c.subject,
                            fmt_unix(c.not_after)
                        );
                    }
                }
                Err(e) => {
                    let _ = writeln!(s, "cert      {e}");
                }
            }
        }
        s
    }

    /// The report (and the checks, when given) as one JSON object.
    pub fn render_json(&self, checks: Option<&[Check]>) -> String {
        let mut j = Json::default();
        j.str("version", Some(self.version));
        j.str(
            "time",
            Some(&self.now.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        );
        j.str("slot", self.slot.as_deref());
        j.num("uptime_secs", self.uptime_secs);
        j.str(
            "config",
            self.config_path
                .as_ref()
                .map(|p| p.to_string_lossy())
                .as_deref(),
        );
        j.str("config_error", self.config_error.as_deref());
        j.str("interface", self.interface.as_deref());
        j.num("interval_secs", Some(u64::from(self.interval_secs)));
        j.raw(
            "sensor_pids",
            &format!(
                "[{}]",
                self.sensor_pids
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        );
        match &self.link {
            Some(l) => {
                let mut o = Json::default();
                o.str("name", Some(&l.name));
                o.bool("exists", l.exists);
                o.str("operstate", Some(&l.operstate));
                o.bool("up", l.up);
                o.num("rx_packets", Some(l.rx_packets));
                o.num("rx_dropped", Some(l.rx_dropped));
                o.num("rx_errors", Some(l.rx_errors));
                j.raw("link", &o.finish());
            }
            None => j.raw("link", "null"),
        }
        match &self.counters {
            Some(c) => {
                let mut o = Json::default();
                for (k, v) in &c.pairs {
                    match v.parse::<u64>() {
                        Ok(n) => o.num(k, Some(n)),
                        Err(_) => o.str(k, Some(v)),
                    }
                }
                let mut w = Json::default();
                w.str(
                    "at",
                    c.at.map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
                        .as_deref(),
                );
                w.raw("values", &o.finish());
                j.raw("counters", &w.finish());
            }
            None => j.raw("counters", "null"),
        }
        let mut sp = Json::default();
        sp.str("dir", Some(&self.spool_dir.to_string_lossy()));
        sp.bool("exists", self.spool.exists);
        sp.num("bundles", Some(self.spool.bundles));
        sp.num("bytes", Some(self.spool.bytes));
        sp.str("oldest", self.spool.oldest.as_deref());
        sp.str("newest", self.spool.newest.as_deref());
        j.raw("spool", &sp.finish());
        match &self.disk {
            Some(d) => {
                let mut o = Json::default();
                o.num("total_bytes", Some(d.total));
                o.num("avail_bytes", Some(d.avail));
                j.raw("disk", &o.finish());
            }
            None => j.raw("disk", "null"),
        }
        j.str("last_upload", self.last_upload.as_deref());
        let certs: Vec<String> = self
            .certs
            .iter()
            .flat_map(|(path, r)| match r {
                Ok(cs) => cs
                    .iter()
                    .map(|c| {
                        let mut o = Json::default();
                        o.str("file", Some(&path.to_string_lossy()));
                        o.str("subject", Some(&c.subject));
                        o.str("not_after", Some(&fmt_unix(c.not_after)));
                        o.finish()
                    })
                    .collect::<Vec<_>>(),
                Err(e) => {
                    let mut o = Json::default();
                    o.str("file", Some(&path.to_string_lossy()));
                    o.str("error", Some(e));
                    vec![o.finish()]
                }
            })
            .collect();
        j.raw("certificates", &format!("[{}]", certs.join(",")));
        match &self.current_interval {
            Some((name, logs)) => {
                let mut o = Json::default();
                o.str("folder", Some(name));
                let mut l = Json::default();
                for (log, n) in logs {
                    l.num(log, Some(*n));
                }
                o.raw("lines", &l.finish());
                j.raw("current_interval", &o.finish());
            }
            None => j.raw("current_interval", "null"),
        }
        if let Some(checks) = checks {
            let items: Vec<String> = checks
                .iter()
                .map(|c| {
                    let mut o = Json::default();
                    o.str("name", Some(c.name));
                    o.str("status", Some(c.status.as_str()));
                    o.str("reason", Some(&c.reason));
                    o.finish()
                })
                .collect();
            j.raw("checks", &format!("[{}]", items.join(",")));
        }
        j.finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        }
    }
}

/// One health check's verdict and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub reason: String,
}

impl Check {
    fn pass(name: &'static str, reason: String) -> Check {
        Check {
            name,
            status: Status::Pass,
            reason,
        }
    }
    fn fail(name: &'static str, reason: String) -> Check {
        Check {
            name,
            status: Status::Fail,
            reason,
        }
    }
    fn skip(name: &'static str, reason: String) -> Check {
        Check {
            name,
            status: Status::Skip,
            reason,
        }
    }
}

/// The checks as console lines: `PASS interface  eth1: up, ...`.
pub fn render_checks(checks: &[Check]) -> String {
    let mut s = String::new();
    for c in checks {
        let _ = writeln!(s, "{} {:<9} {}", c.status.as_str(), c.name, c.reason);
    }
    s
}

/// The slot the boot loader chose, from the kernel command line (`rauc.slot=A`).
pub fn slot_from_cmdline(cmdline: &str) -> Option<String> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("rauc.slot="))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Whole seconds since boot, from `/proc/uptime` (`12345.67 23456.78`).
pub fn parse_uptime(text: &str) -> Option<u64> {
    let first = text.split_whitespace().next()?;
    let secs = first.split('.').next()?;
    secs.parse().ok()
}

/// The latest `counters` line in `text` (lines as the sensor log writes them:
/// `2026-01-02T03:04:05.678Z INFO  counters name=value ...`).
pub fn parse_latest_counters(text: &str) -> Option<Counters> {
    let line = text.lines().rev().find(|l| l.contains(" counters "))?;
    let (head, rest) = line.split_once(" counters ")?;
    let at = head
        .split_whitespace()
        .next()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    let pairs = rest
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Some(Counters { at, pairs })
}

/// The latest counters in `sensor.log`, or in its rotated predecessor right after a rotation.
pub fn latest_counters(sensor_log: &Path) -> Option<Counters> {
    [sensor_log.to_path_buf(), sensor_log.with_extension("log.1")]
        .iter()
        .find_map(|p| tail(p, LOG_TAIL_BYTES).and_then(|t| parse_latest_counters(&t)))
}

/// The last `max` bytes of a file as text (a cut first line is dropped).
fn tail(path: &Path, max: u64) -> Option<String> {
    let mut f = fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let start = len.saturating_sub(max);
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut buf = Vec::with_capacity((len - start) as usize);
    f.take(max).read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    if start > 0 {
        Some(
            text.split_once('\n')
                .map(|(_, r)| r.to_string())
                .unwrap_or_default(),
        )
    } else {
        Some(text)
    }
}

/// The last non-empty line of a small history file, cut to a console line.
pub fn last_line(path: &Path) -> Option<String> {
    let text = tail(path, 4096)?;
    let line = text.lines().rev().map(str::trim).find(|l| !l.is_empty())?;
    Some(line.chars().take(200).collect())
}

/// Whether an upload history line records a failure. The uploader's exact format is its own;
/// a failed attempt is expected to say so in words.
fn looks_failed(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    ["fail", "error", "refused", "timeout", "timed out"]
        .iter()
        .any(|w| l.contains(w))
}

/// Reads `/sys/class/net/<name>/`; `exists` is false when the interface is not there.
pub fn read_link(sys_net: &Path, name: &str) -> LinkState {
    let dir = sys_net.join(name);
    let read = |f: &str| {
        fs::read_to_string(dir.join(f))
            .ok()
            .map(|s| s.trim().to_string())
    };
    let num = |f: &str| {
        read(&format!("statistics/{f}"))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    if !dir.exists() {
        return LinkState {
            name: name.to_string(),
            ..LinkState::default()
        };
    }
    const IFF_UP: u64 = 0x1;
    let flags = read("flags")
        .and_then(|f| u64::from_str_radix(f.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0);
    // `flags` holds only what was configured; whether the link works is `carrier` (which the
    // kernel refuses to report while the interface is administratively down).
    let carrier = read("carrier").as_deref() == Some("1");
    LinkState {
        name: name.to_string(),
        exists: true,
        operstate: read("operstate").unwrap_or_else(|| "unknown".into()),
        up: flags & IFF_UP != 0 && carrier,
        rx_packets: num("rx_packets"),
        rx_dropped: num("rx_dropped"),
        rx_errors: num("rx_errors"),
    }
}

/// Counts the finished bundles directly in the spool folder (not `tmp/` or `sent/`).
pub fn spool_summary(dir: &Path) -> SpoolSummary {
    let Ok(entries) = fs::read_dir(dir) else {
        return SpoolSummary::default();
    };
    let mut s = SpoolSummary {
        exists: true,
        ..SpoolSummary::default()
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with(INTERVAL_PREFIX) && name.ends_with(BUNDLE_EXT)) {
            continue;
        }
        let Ok(md) = e.metadata() else { continue };
        if !md.is_file() {
            continue;
        }
        s.bundles += 1;
        s.bytes += md.len();
        if s.oldest.as_ref().is_none_or(|o| name < *o) {
            s.oldest = Some(name.clone());
        }
        if s.newest.as_ref().is_none_or(|n| name > *n) {
            s.newest = Some(name);
        }
    }
    s
}

/// Size and free space (for unprivileged users) of the file system holding `dir`.
pub fn disk_usage(dir: &Path) -> Option<DiskUsage> {
    let v = rustix::fs::statvfs(dir).ok()?;
    Some(DiskUsage {
        total: v.f_blocks.saturating_mul(v.f_frsize),
        avail: v.f_bavail.saturating_mul(v.f_frsize),
    })
}

/// Process ids of `osect-sensor run ...` (not this process, not other subcommands).
pub fn sensor_pids(proc_dir: &Path) -> Vec<u32> {
    let me = std::process::id();
    let mut pids = Vec::new();
    let Ok(entries) = fs::read_dir(proc_dir) else {
        return pids;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if is_sensor_run(&cmdline) {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids
}

/// Whether a NUL-separated `/proc/<pid>/cmdline` is `.../osect-sensor run ...`.
pub fn is_sensor_run(cmdline: &[u8]) -> bool {
    let mut args = cmdline.split(|&b| b == 0);
    let prog = args.next().unwrap_or_default();
    let base = prog.rsplit(|&b| b == b'/').next().unwrap_or_default();
    base == b"osect-sensor" && args.next() == Some(b"run".as_slice())
}

/// `1h02m03s`, `4m05s`, `6s`: compact for the console.
pub fn human_secs(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h:02}h{m:02}m")
    } else if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// `512 B`, `1.5 KiB`, `12.0 MiB`, ...
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

fn join(pids: &[u32]) -> String {
    pids.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// A flat JSON object written field by field (the report is small and fixed; no need for a
/// serializer dependency).
#[derive(Default)]
struct Json {
    out: String,
}

impl Json {
    fn key(&mut self, k: &str) {
        self.out.push(if self.out.is_empty() { '{' } else { ',' });
        push_json_str(&mut self.out, k);
        self.out.push(':');
    }
    fn str(&mut self, k: &str, v: Option<&str>) {
        self.key(k);
        match v {
            Some(v) => push_json_str(&mut self.out, v),
            None => self.out.push_str("null"),
        }
    }
    fn num(&mut self, k: &str, v: Option<u64>) {
        self.key(k);
        match v {
            Some(v) => {
                let _ = write!(self.out, "{v}");
            }
            None => self.out.push_str("null"),
        }
    }
    fn bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.out.push_str(if v { "true" } else { "false" });
    }
    fn raw(&mut self, k: &str, v: &str) {
        self.key(k);
        self.out.push_str(v);
    }
    fn finish(mut self) -> String {
        if self.out.is_empty() {
            self.out.push('{');
        }
        self.out.push('}');
        self.out
    }
}

fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests;
