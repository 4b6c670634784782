//! Live capture end to end: `osect-sensor run` on one end of a veth pair, a corpus capture
//! replayed into the other end with tcpreplay, and the conn.log rows compared with what
//! `osect-sensor replay` writes for the same capture.
//!
//! Everything happens inside a network namespace the test creates (named with the test's pid)
//! and deletes on drop, also when an assertion fails: no traffic reaches the host's interfaces.
//! IPv6 is disabled in the namespace before the veth pair exists, so the kernel sends nothing
//! of its own (router solicitations, MLD, DAD) and the sensor sees exactly the replayed packets.
//!
//! Needs root, iproute2 (`ip netns`) and tcpreplay. Without root or `ip netns` the test prints a
//! loud SKIP and passes; with them (CI runs as root) a missing tcpreplay or corpus is a failure,
//! so a broken CI image cannot pass silently.
//!
//! What `run` must do for this test: take `--config FILE`; capture on `capture.interface`; write
//! interval folders `realtime-…/conn.log` into `output.log_dir` and their bundles
//! `realtime-….tar.zst` into `output.spool_dir`; on SIGTERM flush every open connection and
//! interval, leave no `.tmp` folder behind, and exit 0.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use osect_sensor::capture::file::CaptureFile;

/// The capture replayed: DNS/mDNS/LLMNR/NBNS, IPv6 link-local, HTTP keep-alive, S0/S1/SF/OTH,
/// 136 packets over 6.4 s.
const TRACE: &str = "corpus/zeek/cases/wikipedia-default/trace.pcap";
/// How long the sensor may take to start capturing, and to flush and exit after SIGTERM.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound for tcpreplay and `osect-sensor replay`.
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);
/// conn.log columns that legitimately differ between live capture and replay: capture time
/// (`ts`, `duration`), and connection ids (`uid`, and `tunnel_parents`, which lists uids).
const TIMING_AND_ID_COLUMNS: &[&str] = &["ts", "uid", "duration", "tunnel_parents"];
/// Zeek's conn.log columns, for a conn.log without a `#fields` line (the product's "8×#" header).
const ZEEK_CONN_FIELDS: &[&str] = &[
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "service",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "local_orig",
    "local_resp",
    "missed_bytes",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
    "tunnel_parents",
    "ip_proto",
];

/// The shared folder (corpus, specs): `../shared` next to the repository, i.e.
/// `CARGO_MANIFEST_DIR/../../shared`.
fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

fn sensor_bin() -> &'static str {
    env!("CARGO_BIN_EXE_osect-sensor")
}

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

/// Why the test cannot run here, if it cannot: not root, or no `ip netns`.
fn skip_reason() -> Option<String> {
    match sh(Command::new("id").arg("-u")) {
        Ok(uid) if uid.trim() == "0" => {}
        Ok(uid) => return Some(format!("not running as root (uid {})", uid.trim())),
        Err(e) => return Some(format!("cannot tell the user id: {e}")),
    }
    if let Err(e) = ip(&["netns", "list"]) {
        return Some(format!("`ip netns` is unavailable: {e}"));
    }
    None
}

/// A network namespace with a veth pair inside; both are deleted on drop.
struct Netns {
    name: String,
    /// The end the sensor captures on.
    sensor_if: String,
    /// The end tcpreplay sends into.
    replay_if: String,
}

impl Netns {
    /// `tag` tells apart the namespaces of tests running at once in this process.
    fn create(tag: char) -> Result<Netns, String> {
        let pid = std::process::id();
        // Interface names are limited to 15 bytes; "osl" + pid (at most 7 digits) + two letters.
        let ns = Netns {
            name: format!("osect-live-{pid}{tag}"),
            sensor_if: format!("osl{pid}{tag}s"),
            replay_if: format!("osl{pid}{tag}r"),
        };
        // A namespace of this name can only be a leftover of a killed run with the same pid.
        let _ = ip(&["netns", "del", &ns.name]);
        ip(&["netns", "add", &ns.name])?;
        // From here on, drop cleans up whatever was made.
        let n = &ns.name;
        sh(Command::new("ip")
            .args(["netns", "exec", n, "sysctl", "-qw"])
            .args([
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ]))?;
        ip(&[
            "-n",
            n,
            "link",
            "add",
            &ns.sensor_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns.replay_if,
        ])?;
        for dev in [&ns.sensor_if, &ns.replay_if] {
            ip(&["-n", n, "link", "set", dev, "up"])?;
        }
        Ok(ns)
    }

    /// `ip netns exec <ns> <program>`: the program runs inside the namespace. iproute2 execs it
    /// (no fork), so a spawned child's pid is the program's own.
    fn exec(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// The sensor end's interface index inside the namespace.
    fn sensor_ifindex(&self) -> Result<u32, String> {
        let out = ip(&[
            "-n",
            &self.name,
            "-o",
            "link",
            "show",
            "dev",
            &self.sensor_if,
        ])?;
        out.split(':')
            .next()
            .and_then(|i| i.trim().parse().ok())
            .ok_or_else(|| format!("no ifindex in {out:?}"))
    }

    /// Whether a packet socket is bound and running on the sensor end: the namespace is ours, so
    /// only the sensor's libpcap handle can have opened one. `/proc/net/packet` read from inside
    /// the namespace lists that namespace's packet sockets (columns: sk RefCnt Type Proto Iface R
    /// Rmem User Inode).
    fn capture_running(&self, ifindex: u32) -> Result<bool, String> {
        let table = sh(self.exec("cat").arg("/proc/net/packet"))?;
        Ok(table.lines().skip(1).any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() >= 6 && cols[4].parse() == Ok(ifindex) && cols[5] == "1"
        }))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the veth first frees it at once even if a process still holds the namespace.
        let _ = ip(&["-n", &self.name, "link", "del", &self.sensor_if]);
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("live_netns: cleanup of namespace {} failed: {e}", self.name);
        }
    }
}

/// A running sensor; killed (SIGKILL) on drop if it is still running.
struct Sensor {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    sensor_log: PathBuf,
}

impl Sensor {
    /// The sensor's stdout, stderr and sensor.log tail, for failure messages.
    fn output(&self) -> String {
        let tail = |p: &Path| {
            let s = fs::read_to_string(p).unwrap_or_default();
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        format!(
            "--- sensor stdout\n{}\n--- sensor stderr\n{}\n--- sensor.log (tail)\n{}",
            tail(&self.stdout),
            tail(&self.stderr),
            tail(&self.sensor_log)
        )
    }

    /// Polls `ready` until it holds, for at most [`START_TIMEOUT`]; fails (with the sensor's
    /// output) if it does not, or if the sensor exits meanwhile.
    fn wait_for(&mut self, what: &str, mut ready: impl FnMut() -> bool) {
        let end = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "osect-sensor run exited ({status}) before it could {what}\n{}",
                    self.output()
                );
            }
            if ready() {
                return;
            }
            assert!(
                Instant::now() < end,
                "osect-sensor run did not {what} within {START_TIMEOUT:?}\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits up to `limit` for the sensor to exit.
    fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(_) => return None,
            }
        }
        None
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `osect-sensor run --config CONFIG` inside the namespace and waits until its capture
/// socket runs on the sensor end.
fn start_sensor(ns: &Netns, config: &Path, dir: &Path, sensor_log: PathBuf) -> Sensor {
    let (stdout, stderr) = (dir.join("sensor.out"), dir.join("sensor.err"));
    let child = ns
        .exec(sensor_bin())
        .args(["run", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout).expect("sensor.out"))
        .stderr(fs::File::create(&stderr).expect("sensor.err"))
        .spawn()
        .expect("start osect-sensor run");
    let mut sensor = Sensor {
        child,
        stdout,
        stderr,
        sensor_log,
    };

    // Wait until the sensor's capture socket runs on its interface.
    let ifindex = ns.sensor_ifindex().unwrap_or_else(|e| panic!("{e}"));
    sensor.wait_for("start capturing", || {
        ns.capture_running(ifindex)
            .unwrap_or_else(|e| panic!("{e}"))
    });
    // The socket is bound; give libpcap a moment to finish setting up its ring.
    std::thread::sleep(Duration::from_millis(500));
    sensor
}

/// Sends the sensor `signal` (a `kill` name: TERM, HUP).
fn signal(sensor: &Sensor, signal: &str) {
    let pid = sensor.child.id().to_string();
    sh(Command::new("sh").args(["-c", &format!("kill -{signal} \"$1\""), "sh", &pid]))
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Lets the sensor drain its buffer (read timeout 100 ms), then stops it as systemd would; it
/// must exit 0.
fn stop_sensor(sensor: &mut Sensor) {
    std::thread::sleep(Duration::from_secs(1));
    signal(sensor, "TERM");
    match sensor.wait_exit(STOP_TIMEOUT) {
        Some(status) if status.success() => {}
        Some(status) => panic!(
            "osect-sensor run exited with {status} after SIGTERM\n{}",
            sensor.output()
        ),
        None => panic!(
            "osect-sensor run did not exit within {STOP_TIMEOUT:?} of SIGTERM\n{}",
            sensor.output()
        ),
    }
}

/// Runs a command with a time limit, output to files under `dir` (named `name.out`/`.err`);
/// `Err` carries the status and output.
fn run_bounded(mut cmd: Command, dir: &Path, name: &str) -> Result<String, String> {
    let (out, err) = (
        dir.join(format!("{name}.out")),
        dir.join(format!("{name}.err")),
    );
    let shown = format!("{cmd:?}");
    let files = (fs::File::create(&out), fs::File::create(&err));
    let (Ok(o), Ok(e)) = files else {
        return Err(format!("cannot create output files in {}", dir.display()));
    };
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(o)
        .stderr(e)
        .spawn()
        .map_err(|e| format!("{shown} could not start: {e}"))?;
    let end = Instant::now() + TOOL_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Ok(s),
            Ok(None) if Instant::now() >= end => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("timed out after {TOOL_TIMEOUT:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => break Err(e.to_string()),
        }
    };
    let text = format!(
        "{}{}",
        fs::read_to_string(&out).unwrap_or_default(),
        fs::read_to_string(&err).unwrap_or_default()
    );
    match status {
        Ok(s) if s.success() => Ok(text),
        Ok(s) => Err(format!("{shown} failed ({s}):\n{text}")),
        Err(why) => Err(format!("{shown}: {why}:\n{text}")),
    }
}

/// Packets in a capture file, read with the sensor's own reader.
fn count_packets(path: &Path) -> usize {
    let mut f = CaptureFile::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut n = 0;
    while let Some(p) = f.next_packet() {
        p.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        n += 1;
    }
    n
}

/// conn.log rows projected on the compared columns: each row is `(column, value)` pairs, so a
/// mismatch message says which value differs. Comment lines are dropped; the columns come from
/// `#fields` if the file has it, else Zeek's standard order.
fn conn_rows(text: &str, origin: &str) -> Vec<Vec<(String, String)>> {
    let fields: Vec<String> = text
        .lines()
        .find_map(|l| l.strip_prefix("#fields\t"))
        .map(|f| f.split('\t').map(str::to_string).collect())
        .unwrap_or_else(|| ZEEK_CONN_FIELDS.iter().map(|s| s.to_string()).collect());
    let mut rows = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let values: Vec<&str> = line.split('\t').collect();
        assert_eq!(
            values.len(),
            fields.len(),
            "{origin}: row has {} columns, header {}: {line:?}",
            values.len(),
            fields.len()
        );
        rows.push(
            fields
                .iter()
                .zip(values)
                .filter(|(f, _)| !TIMING_AND_ID_COLUMNS.contains(&f.as_str()))
                .map(|(f, v)| (f.clone(), v.to_string()))
                .collect(),
        );
    }
    rows
}

/// Counts of each row, for a multiset comparison.
fn multiset(rows: Vec<Vec<(String, String)>>) -> BTreeMap<Vec<(String, String)>, usize> {
    let mut m = BTreeMap::new();
    for r in rows {
        *m.entry(r).or_insert(0) += 1;
    }
    m
}

/// The conn.log member of a bundle.
fn bundle_conn_log(bundle: &Path) -> Result<Vec<u8>, String> {
    let file = fs::File::open(bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
    let dec = zstd::Decoder::new(file).map_err(|e| format!("{}: {e}", bundle.display()))?;
    let mut archive = tar::Archive::new(dec);
    for entry in archive
        .entries()
        .map_err(|e| format!("{}: {e}", bundle.display()))?
    {
        let mut entry = entry.map_err(|e| format!("{}: {e}", bundle.display()))?;
        if entry
            .path()
            .map(|p| p.as_os_str() == "conn.log")
            .unwrap_or(false)
        {
            let mut data = Vec::new();
            entry
                .read_to_end(&mut data)
                .map_err(|e| format!("{}: {e}", bundle.display()))?;
            return Ok(data);
        }
    }
    Err(format!("{}: no conn.log member", bundle.display()))
}

#[test]
fn live_capture_in_netns_matches_replay() {
    if let Some(why) = skip_reason() {
        eprintln!("\n################################################################");
        eprintln!("SKIP live_netns: {why}; this test needs root and iproute2 (`ip netns`).");
        eprintln!("################################################################\n");
        return;
    }
    let trace = shared_dir().join(TRACE);
    assert!(
        trace.is_file(),
        "corpus capture {} is missing (shared folder at ../shared from the repository)",
        trace.display()
    );
    if let Err(e) = sh(Command::new("tcpreplay").arg("--version")) {
        panic!("tcpreplay is needed as root (the Makefile installs it): {e}");
    }
    let expected_packets = count_packets(&trace);

    let tmp = tempfile::tempdir().expect("temporary folder");
    let (log_dir, spool_dir, sensor_log) = (
        tmp.path().join("logs"),
        tmp.path().join("spool"),
        tmp.path().join("sensor.log"),
    );
    // Declared before the sensor so that it is dropped after it: the sensor is killed first,
    // then its namespace goes.
    let ns = Netns::create('a').unwrap_or_else(|e| panic!("cannot set up the namespace: {e}"));
    let config = tmp.path().join("sensor.toml");
    fs::write(
        &config,
        format!(
            "[capture]\ninterface = {:?}\ntimeout_ms = 100\n\n\
             [output]\nlog_dir = {:?}\nspool_dir = {:?}\nsensor_log = {:?}\ninterval_secs = 60\n\n\
             [conn]\nuid_seed = 1\n",
            ns.sensor_if, log_dir, spool_dir, sensor_log
        ),
    )
    .expect("write config");

    let mut sensor = start_sensor(&ns, &config, tmp.path(), sensor_log);

    // Original timing, not --topspeed: the rows depend on packet-time gaps (TCP close delay,
    // inactivity timeouts), and live time stamps are arrival times, so the gaps must survive.
    let mut replay = ns.exec("tcpreplay");
    replay.args(["-i", &ns.replay_if]).arg(&trace);
    let report = run_bounded(replay, tmp.path(), "tcpreplay")
        .unwrap_or_else(|e| panic!("{e}\n{}", sensor.output()));
    let sent = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Successful packets:"))
        .and_then(|n| n.trim().parse::<usize>().ok());
    assert_eq!(
        sent,
        Some(expected_packets),
        "tcpreplay did not send every packet:\n{report}"
    );

    stop_sensor(&mut sensor);
    eprintln!(
        "live_netns: sensor output after SIGTERM:\n{}",
        sensor.output()
    );

    // Every interval folder, oldest first; each must have its bundle holding the same conn.log.
    let mut intervals: Vec<PathBuf> = fs::read_dir(&log_dir)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", log_dir.display(), sensor.output()))
        .map(|e| e.expect("log_dir entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("realtime-"))
        })
        .collect();
    intervals.sort();
    assert!(
        !intervals.is_empty(),
        "no interval folder in {}\n{}",
        log_dir.display(),
        sensor.output()
    );
    let mut live_text = String::new();
    for dir in &intervals {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        assert!(
            !name.ends_with(".tmp"),
            "interval {name} still open after shutdown"
        );
        let conn = fs::read(dir.join("conn.log"))
            .unwrap_or_else(|e| panic!("{}/conn.log: {e}", dir.display()));
        let bundle = spool_dir.join(format!("{name}.tar.zst"));
        let bundled = bundle_conn_log(&bundle).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            bundled == conn,
            "{}: conn.log differs from the interval folder's",
            bundle.display()
        );
        live_text.push_str(&String::from_utf8_lossy(&conn));
        live_text.push('\n');
    }

    let replay_out = tmp.path().join("replay");
    let mut cmd = Command::new(sensor_bin());
    cmd.arg("replay")
        .arg(&trace)
        .arg("--out")
        .arg(&replay_out)
        .args(["--seed", "1"]);
    run_bounded(cmd, tmp.path(), "replay").unwrap_or_else(|e| panic!("{e}"));
    let replay_text = fs::read_to_string(replay_out.join("conn.log")).expect("replay conn.log");

    let live = conn_rows(&live_text, "live conn.log");
    let offline = conn_rows(&replay_text, "replay conn.log");
    assert!(
        !offline.is_empty(),
        "replay wrote no conn.log rows for {}",
        trace.display()
    );
    let (live_n, offline_n) = (live.len(), offline.len());
    let (live, offline) = (multiset(live), multiset(offline));
    if live != offline {
        let mut msg =
            format!("live conn.log ({live_n} rows) != replay conn.log ({offline_n} rows)\n");
        for (row, n) in &live {
            let m = offline.get(row).copied().unwrap_or(0);
            if *n > m {
                msg.push_str(&format!("only live   x{}: {row:?}\n", n - m));
            }
        }
        for (row, n) in &offline {
            let m = live.get(row).copied().unwrap_or(0);
            if *n > m {
                msg.push_str(&format!("only replay x{}: {row:?}\n", n - m));
            }
        }
        panic!("{msg}\n{}", sensor.output());
    }
    eprintln!(
        "live_netns: {live_n} conn.log rows match replay over {} interval(s)",
        intervals.len()
    );
}

/// The comparison itself: timing and id columns are ignored, every other column counts, and a
/// conn.log with the product's bare `#` header lines is read in Zeek's column order.
#[test]
fn conn_row_comparison_ignores_only_timing_and_ids() {
    let zeek = "#separator \\x09\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\tip_proto\n\
        1.0\tCa\t10.0.0.1\t1\t10.0.0.2\t80\ttcp\t-\t0.5\t0\t0\tS0\t-\t-\t0\tS\t1\t40\t0\t0\t-\t6\n#close\n";
    let product = "#\n#\n#\n#\n#\n#\n#\n#\n\
        9.0\tCz\t10.0.0.1\t1\t10.0.0.2\t80\ttcp\t-\t7.25\t0\t0\tS0\t-\t-\t0\tS\t1\t40\t0\t0\tCq\t6\n#close\n";
    let a = multiset(conn_rows(zeek, "zeek"));
    assert_eq!(a, multiset(conn_rows(product, "product")));
    let other_history = product.replace("\tS\t1\t", "\tSh\t1\t");
    assert_ne!(a, multiset(conn_rows(&other_history, "changed")));
    let twice = format!("{product}{product}");
    assert_ne!(
        a,
        multiset(conn_rows(&twice, "doubled")),
        "a multiset, not a set"
    );
}

/// SIGHUP makes `run` read its rule files again and swap the new set in while capturing: the
/// alerts afterwards come from the new rules only, and no packet is lost across a reload (a
/// second one lands in the middle of the traffic).
#[test]
fn rules_reload_on_sighup_without_losing_packets() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIP live_netns rules reload: {why}");
        return;
    }
    let trace = shared_dir().join(TRACE);
    assert!(
        trace.is_file(),
        "corpus capture {} is missing",
        trace.display()
    );
    let expected_packets = count_packets(&trace);
    let tmp = tempfile::tempdir().expect("temporary folder");
    let (log_dir, spool_dir, sensor_log) = (
        tmp.path().join("logs"),
        tmp.path().join("spool"),
        tmp.path().join("sensor.log"),
    );
    let rules = tmp.path().join("local.rules");
    // Nothing in the capture goes to port 9: this rule never fires.
    let before = "alert udp any any -> any 9 (msg:\"reload test: old set\"; sid:9100001; rev:1;)\n";
    let after = "alert udp any any -> any 53 (msg:\"reload test: new set\"; sid:9100002; rev:1;)\n";
    fs::write(&rules, before).expect("write rules");
    let ns = Netns::create('b').unwrap_or_else(|e| panic!("cannot set up the namespace: {e}"));
    let config = tmp.path().join("sensor.toml");
    fs::write(
        &config,
        format!(
            "[capture]\ninterface = {:?}\ntimeout_ms = 100\n\n\
             [output]\nlog_dir = {:?}\nspool_dir = {:?}\nsensor_log = {:?}\ninterval_secs = 60\n\n\
             [detect]\nrules = [{:?}]\n",
            ns.sensor_if, log_dir, spool_dir, sensor_log, rules
        ),
    )
    .expect("write config");
    let mut sensor = start_sensor(&ns, &config, tmp.path(), sensor_log.clone());

    // Wait for the `n`th "rules: reloaded" line in sensor.log; it reports the one rule.
    let reloaded = |sensor: &mut Sensor, n: usize| {
        let mut line = String::new();
        sensor.wait_for(&format!("log reload {n}"), || {
            let log = fs::read_to_string(&sensor_log).unwrap_or_default();
            match log
                .lines()
                .filter(|l| l.contains("rules: reloaded"))
                .nth(n - 1)
            {
                Some(l) => {
                    line = l.to_string();
                    true
                }
                None => false,
            }
        });
        assert!(line.contains("reloaded 1 of 1 enabled rules"), "{line}");
    };
    fs::write(&rules, after).expect("rewrite rules");
    signal(&sensor, "HUP");
    reloaded(&mut sensor, 1);

    let mut replay = ns.exec("tcpreplay");
    replay.args(["-i", &ns.replay_if]).arg(&trace);
    let replaying = std::thread::spawn({
        let dir = tmp.path().to_path_buf();
        move || run_bounded(replay, &dir, "tcpreplay")
    });
    // The capture lasts 6.4 s at its original pace: reload again in the middle of it.
    std::thread::sleep(Duration::from_secs(2));
    signal(&sensor, "HUP");
    reloaded(&mut sensor, 2);
    replaying
        .join()
        .expect("tcpreplay thread")
        .unwrap_or_else(|e| panic!("{e}\n{}", sensor.output()));
    stop_sensor(&mut sensor);

    let log = fs::read_to_string(&sensor_log).unwrap_or_default();
    let stopped = log
        .lines()
        .rev()
        .find(|l| l.contains("stopped: "))
        .unwrap_or_else(|| panic!("no final counters line\n{}", sensor.output()));
    let counter = |name: &str| {
        stopped
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("no {name} in {stopped}"))
    };
    assert_eq!(counter("rules_reloaded"), 2, "{stopped}");
    assert_eq!(counter("rules_reload_failed"), 0, "{stopped}");
    assert_eq!(
        counter("packets_read"),
        expected_packets,
        "every replayed packet was read across the reloads\n{stopped}"
    );
    let mut sids = BTreeMap::new();
    for e in fs::read_dir(&log_dir).expect("log_dir").flatten() {
        let eve = fs::read_to_string(e.path().join("eve.json")).unwrap_or_default();
        for line in eve.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("eve.json line");
            *sids
                .entry(v["alert"]["signature_id"].as_u64().unwrap_or(0))
                .or_insert(0usize) += 1;
        }
    }
    assert!(
        sids.get(&9100002).copied().unwrap_or(0) > 0,
        "the reloaded rule fired: {sids:?}\n{}",
        sensor.output()
    );
    assert_eq!(
        sids.keys().copied().collect::<Vec<_>>(),
        vec![9100002],
        "{sids:?}"
    );
    eprintln!("live_netns: alerts after reloads by sid: {sids:?}");
}
