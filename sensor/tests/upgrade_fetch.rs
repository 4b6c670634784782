//! `osect-sensor upgrade URL|FILE` on the host: bundles made by the real `rauc bundle`, signed
//! with keys generated here by openssl, downloaded over mutual TLS from a real nginx on
//! loopback (the uploader's channel) and verified by the real `rauc info --keyring`. Installing
//! needs an A/B gateway and is tested in qemu (`make qemu-upgrade-test`).

mod upload_support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use upload_support::*;

/// `rauc` and `mksquashfs`, or a SKIP line when they cannot be had (not root, so `make deps`
/// could not install them). As root a missing one is a failure, as for nginx.
fn rauc_available() -> bool {
    let ok = ["rauc", "mksquashfs"].iter().all(|p| {
        Command::new(p)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    });
    if !ok {
        if nix::unistd::geteuid().is_root() {
            panic!("rauc/mksquashfs missing: run `make deps` (Debian rauc, squashfs-tools)");
        }
        eprintln!("SKIP: rauc is not installed and this is not root");
    }
    ok
}

fn openssl(args: &[&str]) {
    let st = Command::new("openssl")
        .args(args)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "openssl {args:?}");
}

/// A CA and a signer it certifies: (ca cert, signer cert, signer key).
fn signing_keys(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    fs::create_dir_all(dir).unwrap();
    let f = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let subj_ca = format!("/CN={name} CA");
    let subj_signer = format!("/CN={name} signer");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &subj_ca,
        "-keyout",
        &f("ca.key"),
        "-out",
        &f("ca.pem"),
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        &subj_signer,
        "-keyout",
        &f("signer.key"),
        "-out",
        &f("signer.csr"),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-days",
        "2",
        "-CA",
        &f("ca.pem"),
        "-CAkey",
        &f("ca.key"),
        "-CAcreateserial",
        "-in",
        &f("signer.csr"),
        "-out",
        &f("signer.pem"),
    ]);
    (
        dir.join("ca.pem"),
        dir.join("signer.pem"),
        dir.join("signer.key"),
    )
}

/// A verity bundle of a 2 MiB stand-in root file system image.
fn make_bundle(work: &Path, signer: &(PathBuf, PathBuf, PathBuf), out: &Path) {
    let content = work.join("content");
    let _ = fs::remove_dir_all(&content);
    fs::create_dir_all(&content).unwrap();
    // Incompressible (xorshift), so the bundle stays about as large as the image.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let image: Vec<u8> = (0..2u32 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    fs::write(content.join("rootfs.ext4"), image).unwrap();
    fs::write(
        content.join("manifest.raucm"),
        "[update]\ncompatible=osect-test\nversion=7.1\n\n[bundle]\nformat=verity\n\n\
         [image.rootfs]\nfilename=rootfs.ext4\n",
    )
    .unwrap();
    let out_ = Command::new("rauc")
        .arg("bundle")
        .arg("--cert")
        .arg(&signer.1)
        .arg("--key")
        .arg(&signer.2)
        .arg(&content)
        .arg(out)
        .output()
        .unwrap();
    assert!(
        out_.status.success(),
        "rauc bundle: {}",
        String::from_utf8_lossy(&out_.stderr)
    );
}

struct Setup {
    _t: tempfile::TempDir,
    root: PathBuf,
    pki: Pki,
    _receiver: Receiver,
    nginx: Nginx,
    keyring: PathBuf,
}

fn setup() -> Option<Setup> {
    let bin = nginx_binary()?;
    if !rauc_available() {
        return None;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().to_path_buf();
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
    let ours = signing_keys(&root.join("ours"), "osect test");
    let theirs = signing_keys(&root.join("theirs"), "someone else");
    let updates = nginx.updates_dir();
    make_bundle(&root, &ours, &updates.join("good.raucb"));
    make_bundle(&root, &theirs, &updates.join("foreign.raucb"));
    Some(Setup {
        _t: t,
        root,
        keyring: ours.0,
        pki,
        _receiver: receiver,
        nginx,
    })
}

/// A config uploading to (and so downloading from) nginx; `client` is the `[upload]` TLS part.
fn config(s: &Setup, client: &str, extra: &str) -> PathBuf {
    let p = s.root.join("sensor.toml");
    fs::write(
        &p,
        format!(
            "[spool]\ndir = \"{r}/spool\"\n[upload]\nurl = \"{url}\"\ntimeout_s = 5\n\
             ca_file = \"{ca}\"\n{client}\n[upgrade]\nkeyring = \"{k}\"\n\
             download_dir = \"{r}/upgrade\"\n{extra}\n",
            r = s.root.display(),
            url = s.nginx.url(),
            ca = s.pki.ca.display(),
            k = s.keyring.display(),
        ),
    )
    .unwrap();
    p
}

fn upgrade(cfg: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(sensor_bin())
        .arg("upgrade")
        .args(args)
        .arg("--config")
        .arg(cfg)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn client(s: &Setup) -> String {
    format!("client_cert = \"{}\"", s.pki.client_combined.display())
}

#[test]
fn a_bundle_comes_over_mutual_tls_and_its_signature_is_checked_by_rauc() {
    let Some(s) = setup() else { return };
    let cfg = config(&s, &client(&s), "");
    let url = format!("{}/updates/good.raucb", s.nginx.url());
    let (code, out) = upgrade(&cfg, &["--check", &url]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("signature good") && out.contains("version 7.1"),
        "{out}"
    );
    let got = fs::read(s.root.join("upgrade/update.raucb")).unwrap();
    let served = fs::read(s.nginx.updates_dir().join("good.raucb")).unwrap();
    assert!(
        got == served,
        "downloaded bundle differs from the served one"
    );

    // Installing needs a slot to install beside: verified first, then refused, nothing pending.
    let (code, out) = upgrade(&cfg, &[&url, "--no-reboot"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("signature good"), "{out}");
    assert!(out.contains("not booted from an A/B slot"), "{out}");
    assert!(!s.root.join("upgrade/pending").exists());
    assert!(
        !s.root.join("upgrade/update.raucb").exists(),
        "download removed after use"
    );
    let hist = fs::read_to_string(s.root.join("upgrade/upgrade-history.log")).unwrap();
    assert!(hist.contains("refused https://"), "{hist}");
}

#[test]
fn bundles_signed_by_another_ca_or_cut_short_are_refused() {
    let Some(s) = setup() else { return };
    let cfg = config(&s, &client(&s), "");
    let (code, out) = upgrade(
        &cfg,
        &[
            "--check",
            &format!("{}/updates/foreign.raucb", s.nginx.url()),
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("not a valid bundle signed for this gateway"),
        "{out}"
    );

    let good = s.nginx.updates_dir().join("good.raucb");
    let bytes = fs::read(&good).unwrap();
    let cut = s.root.join("cut.raucb");
    fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (code, out) = upgrade(&cfg, &["--check", cut.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("not a valid bundle signed for this gateway"),
        "{out}"
    );
    // The intact file passes the same check.
    let (code, out) = upgrade(&cfg, &["--check", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn no_client_certificate_missing_files_and_oversize_downloads_fail_cleanly() {
    let Some(s) = setup() else { return };
    let url = format!("{}/updates/good.raucb", s.nginx.url());
    // nginx wants a client certificate: without one it answers 400 and nothing is kept.
    let cfg = config(&s, "", "");
    let (code, out) = upgrade(&cfg, &["--check", &url]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("HTTP 400"), "{out}");
    assert!(!s.root.join("upgrade/update.raucb").exists());

    let cfg = config(&s, &client(&s), "");
    let (code, out) = upgrade(
        &cfg,
        &["--check", &format!("{}/updates/none.raucb", s.nginx.url())],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("HTTP 404"), "{out}");
    let hist = fs::read_to_string(s.root.join("upgrade/upgrade-history.log")).unwrap();
    assert!(hist.contains("download failed: https://"), "{hist}");

    // The bundle is about 2 MiB; allow 1.
    let cfg = config(&s, &client(&s), "max_download_mib = 1");
    let (code, out) = upgrade(&cfg, &["--check", &url]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("max_download_mib"), "{out}");
    let left: Vec<_> = fs::read_dir(s.root.join("upgrade"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.iter()
            .all(|n| n != "update.raucb" && n != "update.raucb.part"),
        "{left:?}"
    );
}
