//! The items of the support bundle, each read defensively: a missing file or command is a
//! note in the manifest, never an error.

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Item, SupportSources, ITEM_CAP};

/// How long one diagnostic command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Most files listed from one spool folder.
const MAX_LISTED: usize = 2000;
/// Name of the uploader's history file inside the spool folder.
pub const UPLOAD_HISTORY: &str = "upload-history.log";

fn under(root: &Path, abs: &str) -> PathBuf {
    root.join(abs.trim_start_matches('/'))
}

/// Reads at most the last `cap` bytes of a file.
fn read_tail(path: &Path, cap: usize) -> std::io::Result<(Vec<u8>, bool)> {
    let mut f = fs::File::open(path)?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let truncated = len > cap as u64;
    if truncated {
        f.seek(SeekFrom::Start(len - cap as u64))?;
    }
    let mut buf = Vec::with_capacity(cap.min(len as usize));
    f.take(cap as u64).read_to_end(&mut buf)?;
    Ok((buf, truncated))
}

fn file_item(name: &str, path: &Path) -> Item {
    match read_tail(path, ITEM_CAP) {
        Ok((data, truncated)) => Item {
            name: name.to_string(),
            data,
            note: truncated.then(|| "truncated: tail kept".to_string()),
        },
        Err(e) => Item::failed(name, format!("{}: {e}", path.display())),
    }
}

/// Runs a command with a time limit; its stdout (and stderr) become the item.
fn command_item(name: &str, program: &str, args: &[&str]) -> Item {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return Item::failed(name, format!("{program}: {e}")),
    };
    // Read on threads so a chatty command cannot block on a full pipe while we wait.
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.take(ITEM_CAP as u64 * 2).read_to_end(&mut v);
        }
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.take(64 * 1024).read_to_end(&mut v);
        }
        v
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() > COMMAND_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => break None,
        }
    };
    let mut data = t_out.join().unwrap_or_default();
    let errs = t_err.join().unwrap_or_default();
    if !errs.is_empty() {
        data.extend_from_slice(b"\n--- stderr ---\n");
        data.extend_from_slice(&errs);
    }
    let note = match status {
        Some(s) if s.success() => None,
        Some(s) => Some(format!("{program} exited with {s}")),
        None => Some(format!("{program} timed out after {COMMAND_TIMEOUT:?}")),
    };
    Item {
        name: name.to_string(),
        data,
        note,
    }
}

pub fn hostname(root: &Path) -> Option<String> {
    fs::read_to_string(under(root, "/proc/sys/kernel/hostname"))
        .or_else(|_| fs::read_to_string(under(root, "/etc/hostname")))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The A/B slot this system booted from, from the kernel command line (`rauc.slot=`).
pub fn booted_slot(cmdline: &str) -> Option<&str> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("rauc.slot="))
}

/// Versions, host, time, slot and boot state on one page.
pub fn summary(src: &SupportSources) -> Item {
    let root = &src.root;
    let mut s = String::new();
    let _ = writeln!(s, "osect-sensor {}", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(
        s,
        "collected: {}",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
    );
    let _ = writeln!(s, "host: {}", hostname(root).unwrap_or_else(|| "-".into()));
    if let Ok(v) = fs::read_to_string(under(root, "/proc/version")) {
        let _ = writeln!(s, "kernel: {}", v.trim());
    }
    if let Ok(u) = fs::read_to_string(under(root, "/proc/uptime")) {
        if let Some(secs) = u
            .split_whitespace()
            .next()
            .and_then(|x| x.parse::<f64>().ok())
        {
            let secs = secs as u64;
            let _ = writeln!(
                s,
                "uptime: {}d {:02}h{:02}m{:02}s",
                secs / 86400,
                secs / 3600 % 24,
                secs / 60 % 60,
                secs % 60
            );
        }
    }
    let cmdline = fs::read_to_string(under(root, "/proc/cmdline")).unwrap_or_default();
    let _ = writeln!(
        s,
        "booted slot: {}",
        booted_slot(&cmdline).unwrap_or("- (no rauc.slot= on the kernel command line)")
    );
    if let Some(c) = &src.config {
        let _ = writeln!(s, "config: {}", c.display());
    }
    if let Some(d) = &src.spool_dir {
        let _ = writeln!(s, "spool: {}", d.display());
    }
    Item::new("summary.txt", s.into_bytes())
}

/// Kernel and system facts: files under `root` and a few standard commands.
pub fn system_facts(root: &Path) -> Vec<Item> {
    let mut items = Vec::new();
    for (name, path) in [
        ("system/os-release", "/etc/os-release"),
        ("system/version", "/proc/version"),
        ("system/cmdline", "/proc/cmdline"),
        ("system/uptime", "/proc/uptime"),
        ("system/loadavg", "/proc/loadavg"),
        ("system/meminfo", "/proc/meminfo"),
        ("system/cpuinfo", "/proc/cpuinfo"),
        ("system/mounts", "/proc/mounts"),
        ("system/partitions", "/proc/partitions"),
        ("system/diskstats", "/proc/diskstats"),
        ("network/dev", "/proc/net/dev"),
        ("network/route", "/proc/net/route"),
        ("network/ipv6_route", "/proc/net/ipv6_route"),
        ("network/if_inet6", "/proc/net/if_inet6"),
        ("system/boot-history.log", "/data/boot-history.log"),
    ] {
        let p = under(root, path);
        if p.exists() {
            items.push(file_item(name, &p));
        }
    }
    items.push(interfaces(root));
    items.push(processes(root));
    for (name, prog, args) in [
        ("system/uname", "uname", &["-a"][..]),
        ("system/df", "df", &["-P"][..]),
        ("system/free", "free", &[][..]),
        ("system/dmesg", "dmesg", &[][..]),
        ("network/ip-addr", "ip", &["addr"][..]),
        ("network/ip-link-stats", "ip", &["-s", "link"][..]),
        ("network/ip-route", "ip", &["route"][..]),
        ("network/ip6-route", "ip", &["-6", "route"][..]),
        ("boot/fw_printenv", "fw_printenv", &[][..]),
        ("boot/rauc-status", "rauc", &["status", "--detailed"][..]),
    ] {
        items.push(command_item(name, prog, args));
    }
    items
}

/// Every process with its state and resident memory, from /proc (busybox and procps `ps`
/// disagree on options; /proc does not).
fn processes(root: &Path) -> Item {
    let dir = under(root, "/proc");
    let Ok(rd) = fs::read_dir(&dir) else {
        return Item::failed("system/processes", format!("{}: unreadable", dir.display()));
    };
    let mut pids: Vec<u32> = rd
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    let mut s = String::from("pid\tstate\trss_kib\tcommand\n");
    for pid in pids {
        let p = dir.join(pid.to_string());
        let status = fs::read_to_string(p.join("status")).unwrap_or_default();
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| "-".into())
        };
        let cmd = fs::read(p.join("cmdline"))
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .replace('\0', " ")
                    .trim()
                    .to_string()
            })
            .unwrap_or_default();
        let cmd = if cmd.is_empty() {
            format!("[{}]", field("Name:"))
        } else {
            cmd
        };
        let rss = field("VmRSS:").trim_end_matches(" kB").to_string();
        let _ = writeln!(s, "{pid}\t{}\t{rss}\t{cmd}", field("State:"));
    }
    Item::new("system/processes", s.into_bytes())
}

/// Every interface under /sys/class/net with its state and counters.
fn interfaces(root: &Path) -> Item {
    let dir = under(root, "/sys/class/net");
    let Ok(rd) = fs::read_dir(&dir) else {
        return Item::failed(
            "network/interfaces",
            format!("{}: unreadable", dir.display()),
        );
    };
    let mut names: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    names.sort();
    let mut s = String::new();
    for p in names {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let _ = writeln!(s, "[{name}]");
        for attr in ["operstate", "address", "mtu", "speed", "carrier", "flags"] {
            if let Ok(v) = fs::read_to_string(p.join(attr)) {
                let _ = writeln!(s, "{attr} = {}", v.trim());
            }
        }
        if let Ok(rd) = fs::read_dir(p.join("statistics")) {
            let mut stats: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            stats.sort();
            for st in stats {
                if let Ok(v) = fs::read_to_string(&st) {
                    let n = st
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let _ = writeln!(s, "statistics.{n} = {}", v.trim());
                }
            }
        }
        s.push('\n');
    }
    Item::new("network/interfaces", s.into_bytes())
}

/// Keys of the config whose values name certificate files.
fn cert_paths(config_text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in config_text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let k = k.trim();
        if matches!(
            k,
            "client_cert" | "ca_file" | "cert_file" | "server_ca" | "ca_cert"
        ) || k.ends_with("_cert")
        {
            let v = v.trim().trim_matches(['"', '\'']).to_string();
            if !v.is_empty() {
                out.push(v);
            }
        }
    }
    out
}

/// Subject, issuer and validity of every certificate in the files the config names; the
/// files themselves (which may also hold a key) are never copied.
pub fn certificates(config_text: &str, config_path: Option<&Path>) -> Item {
    let base = config_path.and_then(Path::parent).unwrap_or(Path::new("."));
    let now = chrono::Utc::now().timestamp();
    let mut s = String::new();
    for p in cert_paths(config_text) {
        let path = base.join(&p);
        let _ = writeln!(s, "[{}]", path.display());
        match super::certificate_facts(&path) {
            Ok(certs) => {
                for c in certs {
                    let fmt_t = |t: i64| {
                        chrono::DateTime::from_timestamp(t, 0)
                            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                            .unwrap_or_else(|| t.to_string())
                    };
                    let _ = writeln!(s, "subject = {}", c.subject);
                    let _ = writeln!(s, "issuer = {}", c.issuer);
                    let _ = writeln!(s, "serial = {}", c.serial);
                    let _ = writeln!(s, "not_before = {}", fmt_t(c.not_before));
                    let _ = writeln!(s, "not_after = {}", fmt_t(c.not_after));
                    let days = (c.not_after - now).div_euclid(86400);
                    let _ = writeln!(
                        s,
                        "expires_in_days = {days}{}\n",
                        if days < 0 {
                            " (EXPIRED)"
                        } else if days < 30 {
                            " (expires soon)"
                        } else {
                            ""
                        }
                    );
                }
            }
            Err(e) => {
                let _ = writeln!(s, "{e}\n");
            }
        }
    }
    if s.is_empty() {
        s.push_str("the config names no certificate file\n");
    }
    Item::new("sensor/certificates.txt", s.into_bytes())
}

/// `sensor.log` (and its rotated predecessor) from each log folder, plus the latest counters.
pub fn sensor_logs(dirs: &[PathBuf]) -> Vec<Item> {
    let mut items = Vec::new();
    let mut counters: Option<String> = None;
    for (i, d) in dirs.iter().enumerate() {
        for name in ["sensor.log.1", "sensor.log"] {
            let p = d.join(name);
            if !p.exists() {
                continue;
            }
            let item = file_item(&format!("sensor/logs{i}/{name}"), &p);
            if name == "sensor.log" {
                let text = String::from_utf8_lossy(&item.data);
                if let Some(l) = text.lines().rev().find(|l| l.contains("packets_read=")) {
                    counters = Some(l.to_string());
                }
            }
            items.push(item);
        }
    }
    if items.is_empty() {
        items.push(Item::failed("sensor/sensor.log", "no sensor.log found"));
    }
    let c = counters.unwrap_or_else(|| "no counters line found in sensor.log".into());
    items.push(Item::new(
        "sensor/counters.txt",
        format!("{c}\n").into_bytes(),
    ));
    items
}

/// The spool: what is waiting, what was sent, what is half-written, and the upload history.
pub fn spool(dir: &Path) -> Vec<Item> {
    let mut s = String::new();
    let mut total_bytes = 0u64;
    for sub in ["", "sent", "tmp"] {
        let d = if sub.is_empty() {
            dir.to_path_buf()
        } else {
            dir.join(sub)
        };
        let Ok(rd) = fs::read_dir(&d) else { continue };
        let mut files: Vec<(String, u64, i64)> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
            .map(|e| {
                let m = e.metadata().ok();
                let mtime = m
                    .as_ref()
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs() as i64);
                (
                    e.file_name().to_string_lossy().into_owned(),
                    m.map_or(0, |m| m.len()),
                    mtime,
                )
            })
            .collect();
        files.sort();
        let bytes: u64 = files.iter().map(|f| f.1).sum();
        total_bytes += bytes;
        let label = if sub.is_empty() { "spool" } else { sub };
        let _ = writeln!(s, "[{label}] {} files, {bytes} bytes", files.len());
        // The newest entries matter most when the list is long.
        let skip = files.len().saturating_sub(MAX_LISTED);
        if skip > 0 {
            let _ = writeln!(s, "({skip} oldest not listed)");
        }
        for (name, size, mtime) in files.iter().skip(skip) {
            let t = chrono::DateTime::from_timestamp(*mtime, 0)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_default();
            let _ = writeln!(s, "{name}\t{size}\t{t}");
        }
        s.push('\n');
    }
    let _ = writeln!(s, "total {total_bytes} bytes");
    let mut items = vec![Item::new("spool/listing.txt", s.into_bytes())];
    let hist = dir.join(UPLOAD_HISTORY);
    if hist.exists() {
        items.push(file_item("spool/upload-history.log", &hist));
    } else {
        items.push(Item::failed(
            "spool/upload-history.log",
            "no upload history yet",
        ));
    }
    items
}

/// The firmware update history (`osect-sensor upgrade`): installs, refusals, trials, rollbacks.
pub fn upgrade_history(dir: &Path) -> Item {
    let name = "boot/upgrade-history.log";
    let hist = dir.join(crate::upgrade::HISTORY_FILE);
    if hist.exists() {
        file_item(name, &hist)
    } else {
        Item::failed(name, "no firmware update recorded yet")
    }
}

/// The rule update log (`osect-sensor rules update`/`rollback`): installs, refusals, rollbacks.
pub fn rules_update_log(dir: &Path) -> Item {
    let name = "sensor/rules-update.log";
    let log = dir.join(crate::detect::update::LOG_FILE);
    if log.exists() {
        file_item(name, &log)
    } else {
        Item::failed(name, "no rule update recorded yet")
    }
}
