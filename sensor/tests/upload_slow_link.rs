//! Upload over a slow mobile-like link: `osect-sensor upload --once` runs inside a network
//! namespace the test creates, behind a veth pair whose two ends are shaped with TBF (this
//! kernel has no netem; TBF gives the rate limit and a bounded queue, not a fixed extra delay).
//! The real nginx (mutual TLS) listens on the root-side veth address, with a server certificate
//! naming that address. The namespace has no route but its /30, so no packet leaves the pair.
//!
//! Checked: every bundle arrives byte-identical and oldest first; the time taken is at least
//! what the shaped rate allows (a lower bound only, proving the shaping was active); a
//! `max_rate_kbps` below the link still delivers everything; a transfer longer than
//! `timeout_s` that keeps progressing is not cut (the timeout is per stall); a link that stalls
//! completely fails the round with a timeout, the bundle stays queued, and once the link is
//! back the next round delivers it. Each test prints produced / delivered / duplicated /
//! dropped.
//!
//! Needs root and iproute2 (`ip netns`, `tc`); without them it prints a loud SKIP and passes.

mod upload_support;

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use upload_support::*;

/// The uplink (sensor → server) of a weak LTE/3G modem, and its downlink.
const UP_KBIT: u64 = 256;
const DOWN_KBIT: u64 = 1024;
/// Bytes the token bucket may send at once (a full bucket at the start of the transfer).
const BURST_BYTES: u64 = 4096;
/// Longest a packet may wait in the shaper's queue before it is dropped: the modem's buffer.
const QUEUE_LATENCY: &str = "300ms";

/// Runs a short command to completion; `Err` carries a message with its output.
fn sh(cmd: &mut Command) -> Result<String, String> {
    let shown = format!("{cmd:?}");
    match cmd.stdin(Stdio::null()).output() {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => Err(format!(
            "{shown} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => Err(format!("{shown} could not start: {e}")),
    }
}

fn ip(args: &[&str]) -> Result<String, String> {
    sh(Command::new("ip").args(args))
}

/// Why the test cannot run here, if it cannot: not root, no `ip netns`, no `tc`.
fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not running as root".into());
    }
    if let Err(e) = ip(&["netns", "list"]) {
        return Some(format!("`ip netns` is unavailable: {e}"));
    }
    if let Err(e) = sh(Command::new("tc").args(["qdisc", "show", "dev", "lo"])) {
        return Some(format!("`tc` is unavailable: {e}"));
    }
    None
}

/// A namespace holding the sensor's end of a TBF-shaped veth pair; the other end stays in the
/// root namespace. Both are deleted on drop, also when an assertion failed.
struct SlowLink {
    ns: String,
    root_if: String,
    ns_if: String,
    root_addr: Ipv4Addr,
}

/// Tells apart the links of the tests of one run (they may run in parallel).
static LINKS: AtomicU32 = AtomicU32::new(0);

impl SlowLink {
    fn create() -> Result<SlowLink, String> {
        let pid = std::process::id();
        let k = LINKS.fetch_add(1, Ordering::Relaxed);
        // Interface names are limited to 15 bytes: "osw" + pid (at most 7 digits) + k + side.
        let (ns, root_if, ns_if) = (
            format!("osect-slow-{pid}-{k}"),
            format!("osw{pid}{k}r"),
            format!("osw{pid}{k}s"),
        );
        // A namespace or link of these names can only be a leftover of a killed run with the
        // same pid.
        let _ = ip(&["netns", "del", &ns]);
        let _ = ip(&["link", "del", &root_if]);
        let (root_addr, ns_addr) = free_subnet(pid, k)?;
        let link = SlowLink {
            ns,
            root_if,
            ns_if,
            root_addr,
        };
        ip(&["netns", "add", &link.ns])?;
        // From here on, drop cleans up whatever was made.
        let n = link.ns.clone();
        sh(Command::new("ip")
            .args(["netns", "exec", &n, "sysctl", "-qw"])
            .args([
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ]))?;
        ip(&[
            "link",
            "add",
            &link.root_if,
            "type",
            "veth",
            "peer",
            "name",
            &link.ns_if,
            "netns",
            &n,
        ])?;
        ip(&[
            "addr",
            "add",
            &format!("{root_addr}/30"),
            "dev",
            &link.root_if,
        ])?;
        ip(&["link", "set", &link.root_if, "up"])?;
        ip(&[
            "-n",
            &n,
            "addr",
            "add",
            &format!("{ns_addr}/30"),
            "dev",
            &link.ns_if,
        ])?;
        ip(&["-n", &n, "link", "set", &link.ns_if, "up"])?;
        ip(&["-n", &n, "link", "set", "lo", "up"])?;
        link.shape_down(&format!("{DOWN_KBIT}kbit"), "add")?;
        link.shape_up(&format!("{UP_KBIT}kbit"), "add")?;
        Ok(link)
    }

    fn tbf(dev: &str, verb: &str, rate: &str) -> Vec<String> {
        [
            "qdisc",
            verb,
            "dev",
            dev,
            "root",
            "tbf",
            "rate",
            rate,
            "burst",
            &BURST_BYTES.to_string(),
            "latency",
            QUEUE_LATENCY,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Shapes the sensor's uplink: the egress of its end, inside the namespace.
    fn shape_up(&self, rate: &str, verb: &str) -> Result<String, String> {
        sh(Command::new("ip")
            .args(["netns", "exec", &self.ns, "tc"])
            .args(SlowLink::tbf(&self.ns_if, verb, rate)))
    }

    /// Shapes the downlink: the egress of the root-side end.
    fn shape_down(&self, rate: &str, verb: &str) -> Result<String, String> {
        sh(Command::new("tc").args(SlowLink::tbf(&self.root_if, verb, rate)))
    }

    /// The uplink shaper's counters (`tc -s qdisc show`), one line.
    fn uplink_stats(&self) -> String {
        sh(Command::new("ip")
            .args(["netns", "exec", &self.ns, "tc", "-s", "qdisc", "show"])
            .args(["dev", &self.ns_if]))
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|e| e)
    }

    /// `osect-sensor upload --once --config cfg` inside the namespace (iproute2 execs it, so
    /// the child's pid is the sensor's own).
    fn spawn_upload(&self, cfg: &Path) -> Child {
        Command::new("ip")
            .args(["netns", "exec", &self.ns, sensor_bin()])
            .args(["upload", "--once", "--config"])
            .arg(cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Runs the upload to its end: (exit code, stderr, seconds taken).
    fn upload_once(&self, cfg: &Path) -> (i32, String, f64) {
        let t = Instant::now();
        let out = self.spawn_upload(cfg).wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            t.elapsed().as_secs_f64(),
        )
    }
}

impl Drop for SlowLink {
    fn drop(&mut self) {
        // Deleting one end of a veth deletes both, at once, even if a process still holds the
        // namespace.
        let _ = ip(&["link", "del", &self.root_if]);
        if let Err(e) = ip(&["netns", "del", &self.ns]) {
            eprintln!(
                "upload_slow_link: cleanup of namespace {} failed: {e}",
                self.ns
            );
        }
    }
}

/// A /30 of 198.18.0.0/15 (set aside for benchmarking, never routed) that no interface of the
/// root namespace uses yet: (root-side address, namespace-side address).
fn free_subnet(pid: u32, k: u32) -> Result<(Ipv4Addr, Ipv4Addr), String> {
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 0));
    let subnets = 1u32 << 15;
    let first = pid.wrapping_mul(8).wrapping_add(k) % subnets;
    for i in 0..64 {
        let net = base + ((first + i) % subnets) * 4;
        let used = ip(&[
            "-o",
            "-4",
            "addr",
            "show",
            "to",
            &format!("{}/30", Ipv4Addr::from(net)),
        ])?;
        if used.trim().is_empty() {
            return Ok((Ipv4Addr::from(net + 1), Ipv4Addr::from(net + 2)));
        }
    }
    Err("no free /30 in 198.18.0.0/15".into())
}

/// Everything one test needs: link, PKI naming the root-side address, receiver, nginx there.
struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    spool: PathBuf,
    receiver: Receiver,
    nginx: Nginx,
    link: SlowLink,
    tls_keys: String,
}

fn setup() -> Option<Setup> {
    if let Some(why) = skip_reason() {
        eprintln!(
            "SKIP upload_slow_link: {why}; this test needs root and iproute2 (`ip netns`, `tc`)."
        );
        return None;
    }
    let bin = nginx_binary()?;
    let link = SlowLink::create().unwrap_or_else(|e| panic!("slow link: {e}"));
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let addr = link.root_addr.to_string();
    let pki = Pki::generate_with_server_names(&root.join("pki"), &[&addr]);
    let receiver = Receiver::start();
    let nginx = Nginx::start_on(
        &bin,
        &root.join("nginx"),
        &pki,
        ServerCert::Good,
        IpAddr::V4(link.root_addr),
        0,
        receiver.port,
    );
    let tls_keys = format!(
        "ca_file = \"{}\"\nclient_cert = \"{}\"\n",
        pki.ca.display(),
        pki.client_combined.display()
    );
    Some(Setup {
        spool: root.join("spool"),
        root,
        _tmp: tmp,
        receiver,
        nginx,
        link,
        tls_keys,
    })
}

impl Setup {
    /// A config with `timeout_s` and the extra `[upload]` keys.
    fn config(&self, timeout_s: u32, extra: &str) -> PathBuf {
        let cfg = write_config(
            &self.root,
            &self.nginx.url(),
            &format!("{}timeout_s = {timeout_s}\n{extra}", self.tls_keys),
        );
        // write_config put timeout_s = 5 before ours; keep only the last one.
        let text = fs::read_to_string(&cfg)
            .unwrap()
            .replacen("timeout_s = 5\n", "", 1);
        fs::write(&cfg, text).unwrap();
        cfg
    }

    /// Every upload so far is one of `produced`, byte-identical to the copy in `spool/sent/`,
    /// and decodes; returns (delivered distinct, duplicated).
    fn check_delivered(&self, produced: &[PathBuf]) -> (usize, usize) {
        let got = self.receiver.uploads();
        let mut distinct = std::collections::BTreeSet::new();
        for u in &got {
            assert!(
                produced
                    .iter()
                    .any(|p| p.file_name().unwrap().to_string_lossy() == u.file_name),
                "unexpected upload {}",
                u.file_name
            );
            assert_eq!(u.label_id, "line-7");
            let sent = fs::read(self.spool.join("sent").join(&u.file_name)).unwrap();
            assert!(u.data == sent, "{} arrived altered", u.file_name);
            assert!(!decode_bundle(&u.data).is_empty());
            distinct.insert(u.file_name.clone());
        }
        (distinct.len(), got.len() - distinct.len())
    }
}

fn names(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn total_bytes(paths: &[PathBuf]) -> u64 {
    paths.iter().map(|p| fs::metadata(p).unwrap().len()).sum()
}

/// Least time `bytes` of upload can take through the uplink shaper: everything beyond a full
/// bucket goes at the token rate. Headers, TLS and TCP only add to it.
fn shaped_floor(bytes: u64) -> f64 {
    bytes.saturating_sub(BURST_BYTES) as f64 * 8.0 / (UP_KBIT * 1000) as f64
}

#[test]
fn slow_link_delivers_every_bundle_oldest_first_also_under_a_lower_rate_cap() {
    let Some(s) = setup() else {
        return;
    };
    // Four bundles over the shaped uplink alone.
    let first = make_bundles(&s.root.join("logs"), &s.spool, 0, 4, 60_000);
    let bytes = total_bytes(&first);
    let (code, err, secs) = s.link.upload_once(&s.config(30, ""));
    assert_eq!(code, 0, "{err}");
    let got: Vec<String> = s
        .receiver
        .uploads()
        .iter()
        .map(|u| u.file_name.clone())
        .collect();
    assert_eq!(got, names(&first), "oldest first, each once");
    let floor = shaped_floor(bytes);
    assert!(
        secs >= floor,
        "{bytes} bytes took {secs:.2} s, less than the {floor:.2} s the {UP_KBIT} kbit/s \
         shaper allows: the link was not shaped"
    );
    let shaper = s.link.uplink_stats();
    println!(
        "slow link {UP_KBIT} kbit/s up, {DOWN_KBIT} kbit/s down (tbf, burst {BURST_BYTES} B, \
         queue {QUEUE_LATENCY}): 4 bundles, {bytes} bytes in {secs:.2} s ({:.0} kbit/s; \
         floor {floor:.2} s); uplink shaper: {shaper}",
        bytes as f64 * 8.0 / secs / 1000.0
    );

    // The sensor's own cap below the link rate: the cap paces the body, still all delivered.
    let cap_kbit = UP_KBIT / 2;
    let second = make_bundles(&s.root.join("logs"), &s.spool, 4, 2, 60_000);
    let bytes2 = total_bytes(&second);
    let (code, err, secs2) = s
        .link
        .upload_once(&s.config(30, &format!("max_rate_kbps = {cap_kbit}\n")));
    assert_eq!(code, 0, "{err}");
    let all: Vec<PathBuf> = first.iter().chain(&second).cloned().collect();
    let got: Vec<String> = s
        .receiver
        .uploads()
        .iter()
        .map(|u| u.file_name.clone())
        .collect();
    assert_eq!(got, names(&all), "oldest first, each once");
    let floor2 = bytes2 as f64 * 8.0 / (cap_kbit * 1000) as f64;
    assert!(
        secs2 >= floor2,
        "{bytes2} bytes took {secs2:.2} s, less than the {floor2:.2} s a {cap_kbit} kbit/s cap allows"
    );
    println!(
        "max_rate_kbps = {cap_kbit} on the {UP_KBIT} kbit/s link: 2 bundles, {bytes2} bytes in \
         {secs2:.2} s ({:.0} kbit/s; floor {floor2:.2} s)",
        bytes2 as f64 * 8.0 / secs2 / 1000.0
    );
    let (delivered, duplicated) = s.check_delivered(&all);
    assert!(names_in(&s.spool).is_empty(), "nothing left queued");
    println!(
        "bundles produced {}, delivered {delivered}, duplicated {duplicated}, dropped by budget 0",
        all.len()
    );
    assert_eq!(delivered, all.len());
}

#[test]
fn steady_transfer_longer_than_the_timeout_is_not_cut() {
    let Some(s) = setup() else {
        return;
    };
    let timeout_s = 3;
    let produced = make_bundles(&s.root.join("logs"), &s.spool, 0, 1, 400_000);
    let bytes = total_bytes(&produced);
    let floor = shaped_floor(bytes);
    assert!(
        floor > 2.0 * f64::from(timeout_s),
        "the bundle must take well over timeout_s on this link ({floor:.2} s)"
    );
    let (code, err, secs) = s.link.upload_once(&s.config(timeout_s, ""));
    assert_eq!(
        code, 0,
        "a transfer that keeps progressing was cut after {secs:.2} s: {err}"
    );
    assert!(
        secs >= floor,
        "{secs:.2} s < floor {floor:.2} s: not shaped"
    );
    let (delivered, duplicated) = s.check_delivered(&produced);
    println!(
        "timeout_s = {timeout_s}: one {bytes}-byte bundle took {secs:.2} s over the \
         {UP_KBIT} kbit/s link (floor {floor:.2} s) and was not cut"
    );
    println!(
        "bundles produced 1, delivered {delivered}, duplicated {duplicated}, dropped by budget 0"
    );
    assert_eq!(delivered, 1);
}

#[test]
fn stalled_link_times_out_keeps_the_bundle_and_delivers_it_once_restored() {
    let Some(s) = setup() else {
        return;
    };
    let timeout_s = 3;
    let produced = make_bundles(&s.root.join("logs"), &s.spool, 0, 1, 300_000);
    let bytes = total_bytes(&produced);
    let cfg = s.config(timeout_s, "");
    let started = Instant::now();
    let child = s.link.spawn_upload(&cfg);
    // The request has reached the server (nginx streams the body through as it comes), so the
    // transfer is under way: now the link stops carrying anything (8 bit/s, a bucket smaller
    // than one packet).
    let t = Instant::now();
    while s.receiver.requests() == 0 && t.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(s.receiver.requests() > 0, "the upload never started");
    std::thread::sleep(Duration::from_millis(300));
    s.link.shape_up("8bit", "change").unwrap();
    let stalled_at = started.elapsed().as_secs_f64();
    let out = child.wait_with_output().unwrap();
    let secs = started.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(0),
        "a stalled link cannot deliver: {err}"
    );
    assert!(
        err.contains("timed out"),
        "the reason names the timeout: {err}"
    );
    assert!(s.receiver.uploads().is_empty(), "nothing complete arrived");
    assert_eq!(
        names_in(&s.spool),
        names(&produced),
        "the bundle stays queued"
    );
    assert!(names_in(&s.spool.join("sent")).is_empty());
    let history = fs::read_to_string(s.spool.join("upload-history.log")).unwrap();
    assert!(history.contains(" failed "), "{history}");
    let reason = err
        .lines()
        .find(|l| l.contains("not delivered"))
        .and_then(|l| l.split(": not delivered: ").nth(1))
        .unwrap_or("")
        .to_string();
    println!(
        "stalled link: {bytes}-byte bundle, link stalled {stalled_at:.2} s in, the round failed \
         {:.2} s later (timeout_s = {timeout_s}): {reason}",
        secs - stalled_at
    );

    // The link comes back: the next round delivers the bundle.
    s.link
        .shape_up(&format!("{UP_KBIT}kbit"), "change")
        .unwrap();
    let (code, err, secs) = s.link.upload_once(&cfg);
    assert_eq!(code, 0, "{err}");
    let (delivered, duplicated) = s.check_delivered(&produced);
    assert_eq!(names_in(&s.spool.join("sent")), names(&produced));
    assert!(names_in(&s.spool).is_empty());
    println!("link restored: delivered in {secs:.2} s");
    println!(
        "bundles produced 1, delivered {delivered}, duplicated {duplicated}, dropped by budget 0"
    );
    assert_eq!(delivered, 1);
}
