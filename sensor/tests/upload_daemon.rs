//! The `run` daemon end to end: live capture on the loopback interface with one-second
//! intervals, bundles uploaded continuously through a real nginx (mutual TLS) on loopback,
//! leftovers of an earlier crash recovered, the daemon killed with SIGKILL at an arbitrary
//! point and restarted. Afterwards every interval folder's bundle has arrived at least once,
//! byte-identical to what the spool kept, and no `.part` is left.
//!
//! Needs root (capture on `lo`) and nginx; without root it prints a loud SKIP.

mod upload_support;

use std::collections::BTreeMap;
use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use upload_support::*;

fn start_run(cfg: &std::path::Path) -> Child {
    Command::new(sensor_bin())
        .args(["run", "--config"])
        .arg(cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}

#[test]
fn run_daemon_uploads_continuously_and_survives_sigkill() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: live capture on lo needs root");
        return;
    }
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
    let logs = root.join("logs");
    let spool = root.join("spool");

    // What a power cut left: an interval still open, a finished one never bundled, and its
    // half-written bundle.
    let open = logs.join("realtime-2024-06-07-10:00:00.tmp");
    let unbundled = logs.join("realtime-2024-06-07-10:01:00");
    for d in [&open, &unbundled] {
        fs::create_dir_all(d).unwrap();
        fs::write(d.join("conn.log"), b"#\n1.0\tCxyz\n").unwrap();
    }
    fs::create_dir_all(spool.join("tmp")).unwrap();
    fs::write(
        spool.join("tmp/realtime-2024-06-07-10:01:00.tar.zst.part"),
        b"half a bundle",
    )
    .unwrap();

    let cfg = write_config(
        root,
        &nginx.url(),
        &format!(
            "ca_file = \"{}\"\nclient_cert = \"{}\"\n",
            pki.ca.display(),
            pki.client_combined.display()
        ),
    );
    let mut text = fs::read_to_string(&cfg).unwrap();
    text.push_str("[capture]\ninterface = \"lo\"\n");
    text = text.replace("[output]\n", "[output]\ninterval_secs = 1\n");
    fs::write(&cfg, text).unwrap();

    let received = || {
        receiver
            .uploads()
            .iter()
            .map(|u| u.file_name.clone())
            .collect::<Vec<_>>()
    };
    let mut first = start_run(&cfg);
    let recovered = wait_for(Duration::from_secs(30), || {
        let r = received();
        r.iter().any(|n| n.contains("10:00:00"))
            && r.iter().any(|n| n.contains("10:01:00"))
            && r.len() >= 4
    });
    first.kill().unwrap(); // SIGKILL, wherever it is
    first.wait().unwrap();
    assert!(
        recovered,
        "crash leftovers and live intervals uploaded: {:?}",
        received()
    );
    let before_restart = received().len();

    let mut second = start_run(&cfg);
    assert!(
        wait_for(Duration::from_secs(30), || received().len()
            >= before_restart + 2),
        "the restarted daemon uploads again"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(second.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = second.wait().unwrap();
    assert!(status.success(), "SIGTERM: clean exit, {status}");

    // Bundles written while the daemon was stopping are still queued: one round sends them.
    let (code, err) = upload_once(&cfg);
    assert_eq!(code, 0, "{err}");

    assert!(
        fs::read_dir(spool.join("tmp")).unwrap().next().is_none(),
        "no .part left"
    );
    assert!(!open.exists() && logs.join("realtime-2024-06-07-10:00:00").exists());
    let uploads = receiver.uploads();
    let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
    for u in &uploads {
        *by_name.entry(u.file_name.clone()).or_default() += 1;
        let kept = fs::read(spool.join("sent").join(&u.file_name)).unwrap();
        assert_eq!(
            u.data, kept,
            "{}: same bytes as the spool kept",
            u.file_name
        );
        decode_bundle(&u.data);
    }
    let folders: Vec<String> = fs::read_dir(&logs)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".tmp"))
        .collect();
    for f in &folders {
        assert!(
            by_name.contains_key(&format!("{f}.tar.zst")),
            "{f} was delivered"
        );
    }
    assert!(names_in(&spool).is_empty(), "nothing left unsent");
    let duplicated = uploads.len() - by_name.len();
    println!(
        "run daemon: bundles produced {}, delivered {}, duplicated {duplicated}, dropped by budget 0",
        folders.len(),
        by_name.len()
    );
}
