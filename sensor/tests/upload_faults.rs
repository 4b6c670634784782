//! Faults around the upload: the server down for a while (the daemon backs off and delivers
//! everything once it is back), the uploader killed with SIGKILL mid-body (the bundle stays
//! queued and is delivered by the next run), and a full disk while bundling (a real small
//! tmpfs: retention makes room, the bundle is retried once and written).
//!
//! Each test prints bundles produced, delivered, duplicated and dropped by budget.

mod upload_support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use osect_sensor::spool::retention::{Retention, RetentionPolicy, Statvfs};
use osect_sensor::spool::worker::SpoolWorker;
use osect_sensor::stats::Stats;
use osect_sensor::upload::{tls, UploadSettings, Uploader};
use upload_support::*;

/// Waits until `cond` holds, up to `limit`.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// Timestamps (seconds) of the `failed` lines of an upload history.
fn failure_times(history: &Path) -> Vec<f64> {
    fs::read_to_string(history)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(" failed "))
        .filter_map(|l| l.split(' ').next())
        .filter_map(|ts| chrono::DateTime::parse_from_rfc3339(ts).ok())
        .map(|t| t.timestamp_millis() as f64 / 1000.0)
        .collect()
}

#[test]
fn server_down_then_up_daemon_retries_and_loses_nothing() {
    let Some(bin) = nginx_binary() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let pki = Pki::generate(&root.join("pki"));
    let spool = root.join("spool");
    let produced = make_bundles(&root.join("logs"), &spool, 0, 5, 20_000);
    let port = free_port();
    let settings = UploadSettings {
        url: format!("https://127.0.0.1:{port}{UPLOAD_PATH}"),
        label_id: "line-7".into(),
        timeout: Duration::from_secs(2),
        max_rate: None,
        modem_device: None,
        modem_timeout: Duration::from_secs(1),
        keep_sent: true,
        log_dir: None,
        retry_min: Duration::from_millis(200),
        retry_max: Duration::from_millis(1600),
        idle_poll: Duration::from_millis(200),
    };
    let tls = tls::client_config(Some(&pki.ca), Some(&pki.client_combined), None).unwrap();
    let stats = Arc::new(Stats::default());
    let uploader = Uploader::new(settings, tls, &spool, stats.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let daemon = {
        let stop = stop.clone();
        std::thread::spawn(move || uploader.run(&stop, None))
    };

    // Down: nothing listens on the port for a while.
    std::thread::sleep(Duration::from_secs(3));
    let down_failures = stats.snapshot().upload_failures;
    assert_eq!(names_in(&spool).len(), produced.len(), "all still queued");

    let receiver = Receiver::start();
    let up = Instant::now();
    let _nginx = Nginx::start(
        &bin,
        &root.join("nginx"),
        &pki,
        ServerCert::Good,
        port,
        receiver.port,
    );
    let delivered = wait_for(Duration::from_secs(30), || {
        receiver.uploads().len() >= produced.len()
    });
    let after = up.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    daemon.join().unwrap();
    assert!(delivered, "everything delivered once the server is back");

    let got = receiver.uploads();
    let names: Vec<String> = got.iter().map(|u| u.file_name.clone()).collect();
    let expected: Vec<String> = produced
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, expected, "oldest first, each once");
    for u in &got {
        assert_eq!(
            u.data,
            fs::read(spool.join("sent").join(&u.file_name)).unwrap()
        );
    }
    assert!(names_in(&spool).is_empty());
    assert!(down_failures >= 3, "retried while down: {down_failures}");
    let times = failure_times(&spool.join("upload-history.log"));
    let gaps: Vec<String> = times
        .windows(2)
        .map(|w| format!("{:.2}", w[1] - w[0]))
        .collect();
    println!(
        "server down 3 s: {down_failures} failed tries, gaps between them (s): [{}] \
         (backoff 0.2 s doubling, cap 1.6 s, equal jitter); delivered {:.2} s after the \
         server came up",
        gaps.join(", "),
        after
    );
    println!(
        "bundles produced {}, delivered {}, duplicated 0, dropped by budget 0",
        produced.len(),
        got.len()
    );
}

#[test]
fn killed_mid_upload_bundle_stays_queued_and_is_delivered_next_time() {
    let Some(bin) = nginx_binary() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let pki = Pki::generate(&root.join("pki"));
    let receiver = Receiver::start();
    let nginx = Nginx::start(
        &bin,
        &root.join("nginx"),
        &pki,
        ServerCert::Good,
        0,
        receiver.port,
    );
    let spool = root.join("spool");
    let produced = make_bundles(&root.join("logs"), &spool, 0, 2, 400_000);
    let size = fs::metadata(&produced[0]).unwrap().len();
    let tls_keys = format!(
        "ca_file = \"{}\"\nclient_cert = \"{}\"\n",
        pki.ca.display(),
        pki.client_combined.display()
    );
    // 400 kbit/s = 50 kB/s: the first bundle takes seconds, so the kill lands mid-body.
    let cfg = write_config(
        root,
        &nginx.url(),
        &format!("{tls_keys}max_rate_kbps = 400\n"),
    );
    let mut child = Command::new(sensor_bin())
        .args(["upload", "--once", "--config"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(10), || receiver.requests() > 0));
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(receiver.uploads().is_empty(), "no complete upload");
    assert_eq!(names_in(&spool).len(), 2, "both still queued");
    assert!(names_in(&spool.join("sent")).is_empty());

    let cfg = write_config(root, &nginx.url(), &tls_keys);
    let (code, err) = upload_once(&cfg);
    assert_eq!(code, 0, "{err}");
    let got = receiver.uploads();
    assert_eq!(got.len(), 2);
    for (u, p) in got.iter().zip(&produced) {
        assert_eq!(u.file_name, p.file_name().unwrap().to_string_lossy());
        assert_eq!(
            u.data,
            fs::read(spool.join("sent").join(&u.file_name)).unwrap()
        );
    }
    println!(
        "killed mid-body of a {size}-byte bundle; bundles produced 2, delivered 2, duplicated 0, dropped by budget 0"
    );
}

/// A tmpfs of `size` mounted on `dir`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// `n` bytes that zstd cannot shrink.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn full_disk_while_bundling_makes_room_and_retries_once() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: mounting a small tmpfs needs root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&t.path().join("disk"), "16m") else {
        eprintln!("SKIP: cannot mount a tmpfs here (no CAP_SYS_ADMIN?)");
        return;
    };
    let logs = disk.0.join("logs");
    let spool = disk.0.join("spool");
    // Three older intervals, bundled and not yet sent (a link down for a while): folder + bundle.
    for m in 0..3u32 {
        let dir = logs.join(format!("realtime-2024-06-07-10:{m:02}:00"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("conn.log"), noise(1 << 20, u64::from(m) + 1)).unwrap();
        osect_sensor::spool::bundle_interval(&dir, &spool, 1).unwrap();
    }
    let new = logs.join("realtime-2024-06-07-10:03:00");
    fs::create_dir_all(&new).unwrap();
    let content = noise(1 << 20, 99);
    fs::write(new.join("conn.log"), &content).unwrap();
    // Something else fills the disk up to 200 kB free.
    let avail = statvfs_avail(&disk.0);
    let filler = avail.saturating_sub(200 << 10);
    fs::write(disk.0.join("other-program.bin"), vec![0u8; filler as usize]).unwrap();

    let stats = Arc::new(Stats::default());
    let retention = Retention::new(
        RetentionPolicy {
            max_age: Some(Duration::from_secs(7 * 86_400)),
            max_disk_percent: 70,
            max_bytes: None,
        },
        &logs,
        &spool,
        Box::new(Statvfs),
        stats.clone(),
    );
    let worker = SpoolWorker {
        spool_dir: spool.clone(),
        zstd_level: 1,
        stats: stats.clone(),
        retention: Some(retention),
        wake: None,
        tick: Duration::from_secs(60),
    };
    let (tx, rx) = crossbeam_channel::bounded(4);
    let h = std::thread::spawn(move || worker.run(rx));
    tx.send(new.clone()).unwrap();
    drop(tx);
    h.join().unwrap();

    let s = stats.snapshot();
    assert_eq!(s.bundle_disk_full, 1, "{s:?}");
    assert_eq!(s.bundle_retried_ok, 1, "{s:?}");
    assert_eq!(s.bundles_written, 1);
    assert_eq!(
        s.retention_unsent_dropped, 0,
        "room came from folder copies"
    );
    let bundles = names_in(&spool);
    assert_eq!(bundles.len(), 4, "every unsent bundle kept: {bundles:?}");
    let members =
        decode_bundle(&fs::read(spool.join("realtime-2024-06-07-10:03:00.tar.zst")).unwrap());
    assert_eq!(members, vec![("conn.log".to_string(), content)]);
    assert!(
        !logs.join("realtime-2024-06-07-10:00:00").exists(),
        "oldest copy made room"
    );
    assert!(
        fs::read_dir(spool.join("tmp")).unwrap().next().is_none(),
        "no .part left"
    );
    println!(
        "disk full: {} ENOSPC, {} retried ok, {} bytes freed; bundles produced 4, kept 4, dropped by budget 0",
        s.bundle_disk_full, s.bundle_retried_ok, s.retention_bytes_freed
    );
}

fn statvfs_avail(p: &Path) -> u64 {
    use osect_sensor::spool::retention::DiskProbe;
    Statvfs.space(p).unwrap().avail
}
