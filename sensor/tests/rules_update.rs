//! `osect-sensor rules update` / `rules rollback`: rule archives built here with the system's
//! `tar` and `gzip` from small hand-written rules, checksummed with `md5sum`, served by a real
//! nginx on loopback over mutual TLS (the upload channel) or given as a local file. Checks
//! what an operator relies on: a good archive becomes `current` and loads; anything wrong
//! (checksum, gzip/tar, no loadable rules, members or links pointing outside, too large)
//! is refused with the installed set untouched and no leftovers.

mod upload_support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use upload_support::*;

const RULES_V1: &str = "\
# hand-written test rules
alert tcp any any -> any 502 (msg:\"OSECT TEST Modbus write single register\"; flow:to_server; content:\"|06|\"; offset:7; depth:1; classtype:policy-violation; sid:9100001; rev:1;)
alert http any any -> any any (msg:\"OSECT TEST admin path\"; flow:established,to_server; http.uri; content:\"/admin\"; classtype:web-application-attack; sid:9100002; rev:1;)
alert dns any any -> any any (msg:\"OSECT TEST lookup of a test domain\"; dns.query; content:\"bad.example\"; nocase; endswith; sid:9100003; rev:2;)
";

const RULES_V2_EXTRA: &str = "\
alert udp any any -> any 47808 (msg:\"OSECT TEST BACnet who-is\"; content:\"|10 08|\"; offset:4; depth:2; sid:9100004; rev:1;)
";

const CLASSIFICATION: &str = "\
config classification: policy-violation,Potential Corporate Privacy Violation,1
config classification: web-application-attack,Web Application Attack,1
";

/// Only a keyword the loader skips, and a malformed line: nothing loads.
const RULES_NONE_LOAD: &str = "\
alert tcp any any -> any any (msg:\"OSECT TEST xbits\"; xbits:set,seen,track ip_src; sid:9100010; rev:1;)
alert tcp any any -> (msg:\"broken header\"; sid:9100011;)
";

fn run(cmd: &mut Command) -> (i32, String) {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// `tar -czf out -C work <extra> rules` over `files` (paths below `work`, e.g.
/// `rules/a.rules`); returns the archive.
fn archive(dir: &Path, name: &str, files: &[(&str, &str)], extra: &[&str]) -> PathBuf {
    let work = dir.join(format!("{name}.work"));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(work.join("rules")).unwrap();
    for (p, text) in files {
        let p = work.join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    let out = dir.join(name);
    let (code, text) = run(Command::new("tar")
        .arg("-czf")
        .arg(&out)
        .arg("-C")
        .arg(&work)
        .args(extra)
        .arg("rules"));
    assert_eq!(code, 0, "tar: {text}");
    out
}

/// `md5sum` of a file, written beside it as `<file>.md5` (md5sum's `HEX  name` line).
fn md5_beside(file: &Path) -> String {
    let (code, text) = run(Command::new("md5sum")
        .arg(file.file_name().unwrap())
        .current_dir(file.parent().unwrap()));
    assert_eq!(code, 0, "md5sum: {text}");
    let mut side = file.as_os_str().to_owned();
    side.push(".md5");
    fs::write(PathBuf::from(side), &text).unwrap();
    text.split_whitespace().next().unwrap().to_string()
}

fn good_v1(dir: &Path) -> PathBuf {
    archive(
        dir,
        "v1.tar.gz",
        &[
            ("rules/test-ot.rules", RULES_V1),
            ("rules/classification.config", CLASSIFICATION),
        ],
        &[],
    )
}

fn good_v2(dir: &Path) -> PathBuf {
    archive(
        dir,
        "v2.tar.gz",
        &[
            ("rules/test-ot.rules", RULES_V1),
            ("rules/test-bacnet.rules", RULES_V2_EXTRA),
            ("rules/classification.config", CLASSIFICATION),
        ],
        &[],
    )
}

struct Gateway {
    _t: tempfile::TempDir,
    root: PathBuf,
    cfg: PathBuf,
    nginx: Option<(Pki, Receiver, Nginx)>,
}

impl Gateway {
    /// A sensor config whose `detect.rules` reads `<root>/rules/current/rules`; with `https`
    /// a real nginx serves `/updates/` over mutual TLS and `detect.update_url` points there.
    fn new(https: bool, detect_extra: &str) -> Option<Gateway> {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().to_path_buf();
        let mut upload = String::new();
        let mut url_line = String::new();
        let nginx = if https {
            let bin = nginx_binary()?;
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
            upload = format!(
                "[upload]\nurl = \"{}\"\ntimeout_s = 5\nca_file = \"{}\"\nclient_cert = \"{}\"\n",
                nginx.url(),
                pki.ca.display(),
                pki.client_combined.display()
            );
            url_line = format!(
                "update_url = \"{}/updates/emerging.rules.tar.gz\"\n",
                nginx.url()
            );
            Some((pki, receiver, nginx))
        } else {
            None
        };
        let cfg = root.join("sensor.toml");
        fs::write(
            &cfg,
            format!(
                "[capture]\ninterface = \"lo\"\n\
                 [output]\nlog_dir = \"{r}/logs\"\nsensor_log = \"{r}/sensor.log\"\n\
                 [spool]\ndir = \"{r}/spool\"\n{upload}\
                 [detect]\nrules = [\"{r}/rules/current/rules\"]\n\
                 classification_file = \"{r}/rules/current/rules/classification.config\"\n\
                 update_dir = \"{r}/rules\"\n{url_line}{detect_extra}\n",
                r = root.display()
            ),
        )
        .unwrap();
        Some(Gateway {
            _t: t,
            root,
            cfg,
            nginx,
        })
    }

    fn store(&self) -> PathBuf {
        self.root.join("rules")
    }

    /// Puts an archive (and its `.md5`, if given) where nginx serves the update URL.
    fn serve(&self, archive: &Path, md5_text: Option<&str>) {
        let dir = self.nginx.as_ref().unwrap().2.updates_dir();
        fs::copy(archive, dir.join("emerging.rules.tar.gz")).unwrap();
        let side = dir.join("emerging.rules.tar.gz.md5");
        match md5_text {
            Some(t) => fs::write(side, t).unwrap(),
            None => {
                let _ = fs::remove_file(side);
            }
        }
    }

    fn rules(&self, args: &[&str]) -> (i32, String) {
        run(Command::new(sensor_bin())
            .arg("rules")
            .args(args)
            .arg("--config")
            .arg(&self.cfg))
    }

    fn update(&self, args: &[&str]) -> (i32, String) {
        let mut a = vec!["update", "--no-reload"];
        a.extend_from_slice(args);
        self.rules(&a)
    }

    /// Name of the set `current` (or `previous`) points at.
    fn link(&self, name: &str) -> Option<String> {
        fs::read_link(self.store().join(name))
            .ok()
            .map(|p| p.display().to_string())
    }

    /// Every entry of the store but the log and lock: sets, links, leftovers.
    fn listing(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.store())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "rules-update.log" && n != ".lock")
            .collect();
        v.sort();
        v
    }

    /// `rules check` of the configured rules: the number loaded.
    fn loaded(&self) -> usize {
        let (code, out) = self.rules(&["check"]);
        assert_eq!(code, 0, "{out}");
        let last = out.lines().rfind(|l| l.starts_with("loaded ")).unwrap();
        last.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    fn log(&self) -> String {
        fs::read_to_string(self.store().join("rules-update.log")).unwrap_or_default()
    }
}

/// The state a refused update must leave: the same links, sets and nothing else.
fn assert_untouched(b: &Gateway, before: &[String], out: &str) {
    assert_eq!(b.listing(), before, "store changed: {out}");
    assert_eq!(b.loaded(), 3, "{out}");
}

fn install_v1_from_file(b: &Gateway) {
    let a = good_v1(&b.root);
    md5_beside(&a);
    let (code, out) = b.update(&["--from", a.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn good_archive_over_mutual_tls_becomes_current_and_rolls_back() {
    let Some(b) = Gateway::new(true, "") else {
        return;
    };
    let v1 = good_v1(&b.root);
    let sum = md5_beside(&v1);
    b.serve(&v1, Some(&format!("{sum}  emerging.rules.tar.gz\n")));
    let (code, out) = b.update(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("downloaded https://"), "{out}");
    assert!(out.contains(&format!("MD5 {sum} ok")), "{out}");
    assert!(out.contains("loaded 3 of 3 enabled rules"), "{out}");
    let first = b.link("current").unwrap();
    assert!(
        first.starts_with("set-") && first.contains(&sum[..8]),
        "{first}"
    );
    assert_eq!(b.link("previous"), None);
    assert_eq!(b.listing(), vec!["current".to_string(), first.clone()]);
    assert_eq!(b.loaded(), 3);
    let info = fs::read_to_string(b.store().join(&first).join("update.info")).unwrap();
    assert!(
        info.contains(&format!("md5={sum}")) && info.contains("loaded=3"),
        "{info}"
    );

    // The same archive again (ET's daily pull with no new release): nothing changes.
    let (code, out) = b.update(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("nothing to do"), "{out}");
    assert_eq!(b.link("current").unwrap(), first);

    // A new release: the bare-hex .md5 ET publishes; the old set is kept as previous.
    let v2 = good_v2(&b.root);
    let sum2 = md5_beside(&v2);
    b.serve(&v2, Some(&format!("{sum2}\n")));
    let (code, out) = b.update(&[]);
    assert_eq!(code, 0, "{out}");
    let second = b.link("current").unwrap();
    assert_ne!(second, first);
    assert_eq!(b.link("previous").unwrap(), first);
    assert_eq!(b.loaded(), 4);

    let (code, out) = b.rules(&["rollback", "--no-reload"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(b.link("current").unwrap(), first);
    assert_eq!(b.link("previous").unwrap(), second);
    assert_eq!(b.loaded(), 3);

    let log = b.log();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 4, "{log}");
    assert!(lines[0].contains("installed https://") && lines[0].contains("loaded 3 of 3"));
    assert!(lines[1].contains("unchanged"), "{log}");
    assert!(lines[3].contains("rolled back to"), "{log}");
}

#[test]
fn wrong_or_missing_checksum_over_https_is_refused() {
    let Some(b) = Gateway::new(true, "") else {
        return;
    };
    install_v1_from_file(&b);
    let before = b.listing();

    // A new archive whose .md5 does not match (an old sum, a damaged download).
    let v2 = good_v2(&b.root);
    let wrong = "0123456789abcdef0123456789abcdef";
    b.serve(&v2, Some(&format!("{wrong}  emerging.rules.tar.gz\n")));
    let (code, out) = b.update(&[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("MD5 mismatch") && out.contains(wrong), "{out}");
    assert_untouched(&b, &before, &out);

    // --md5 overrides the server's file, and is checked the same way.
    let (code, out) = b.update(&["--md5", wrong]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("MD5 mismatch"), "{out}");
    let (code, out) = b.update(&["--md5", "xyz"]);
    assert_eq!(code, 2, "{out}");

    // No .md5 on the server: nothing to check against, so nothing installed.
    b.serve(&v2, None);
    let (code, out) = b.update(&[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(".md5: server answered HTTP 404"), "{out}");
    assert_untouched(&b, &before, &out);
    assert_eq!(b.log().matches("refused").count(), 3, "{}", b.log());
}

#[test]
fn corrupt_or_oversized_archives_are_refused() {
    let Some(b) = Gateway::new(false, "update_max_unpacked_mib = 1\n") else {
        return;
    };
    install_v1_from_file(&b);
    let before = b.listing();

    let not_gzip = b.root.join("garbage.tar.gz");
    fs::write(&not_gzip, b"<html>502 Bad Gateway</html>\n").unwrap();
    let gzip_not_tar = b.root.join("text.tar.gz");
    let (code, text) = run(Command::new("sh").arg("-c").arg(format!(
        "head -c 3000 /dev/urandom | base64 | gzip -c > {}",
        gzip_not_tar.display()
    )));
    assert_eq!(code, 0, "{text}");
    let v2 = good_v2(&b.root);
    let bytes = fs::read(&v2).unwrap();
    let cut = b.root.join("cut.tar.gz");
    fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    // 2 MiB of zeros: a few KiB packed, over the 1 MiB unpacked cap.
    let zeros = "\0".repeat(2 << 20);
    let big = archive(
        &b.root,
        "big.tar.gz",
        &[("rules/a.rules", RULES_V1), ("rules/zeros.bin", &zeros)],
        &[],
    );
    for (a, want) in [
        (&not_gzip, "not a valid .tar.gz"),
        (&gzip_not_tar, "not a valid .tar.gz"),
        (&cut, ""),
        (&big, "unpacks to more than 1048576 bytes"),
    ] {
        md5_beside(a);
        let (code, out) = b.update(&["--from", a.to_str().unwrap()]);
        assert_eq!(code, 1, "{}: {out}", a.display());
        assert!(out.contains(want), "{}: {out}", a.display());
        assert_untouched(&b, &before, &out);
    }
}

#[test]
fn archives_without_loadable_rules_are_refused() {
    let Some(b) = Gateway::new(false, "") else {
        return;
    };
    install_v1_from_file(&b);
    let before = b.listing();
    let none = archive(
        &b.root,
        "none.tar.gz",
        &[
            ("rules/bad.rules", RULES_NONE_LOAD),
            ("rules/classification.config", CLASSIFICATION),
        ],
        &[],
    );
    let empty = archive(
        &b.root,
        "empty.tar.gz",
        &[("rules/README", "no rules")],
        &[],
    );
    // One rule where three load now: less than half, refused unless asked for.
    let shrunk = archive(
        &b.root,
        "shrunk.tar.gz",
        &[
            ("rules/one.rules", RULES_V2_EXTRA),
            ("rules/classification.config", CLASSIFICATION),
        ],
        &[],
    );
    // The config names current/rules/classification.config: a set without it would stop
    // the sensor's next load.
    let no_class = archive(
        &b.root,
        "noclass.tar.gz",
        &[("rules/test-ot.rules", RULES_V1)],
        &[],
    );
    for (a, want) in [
        (&none, "load no rule (2 enabled rule lines)"),
        (&empty, "no *.rules files"),
        (&shrunk, "less than 50 % of the 3"),
        (&no_class, "has no rules/classification.config"),
    ] {
        md5_beside(a);
        let (code, out) = b.update(&["--from", a.to_str().unwrap()]);
        assert_eq!(code, 1, "{}: {out}", a.display());
        assert!(out.contains(want), "{}: {out}", a.display());
        assert_untouched(&b, &before, &out);
    }
    let (code, out) = b.update(&["--from", shrunk.to_str().unwrap(), "--allow-shrink"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(b.loaded(), 1);
}

#[test]
fn members_and_links_pointing_outside_are_refused() {
    let Some(b) = Gateway::new(false, "") else {
        return;
    };
    install_v1_from_file(&b);
    let before = b.listing();
    let files = [
        ("rules/test-ot.rules", RULES_V1),
        ("rules/x.rules", "# x\n"),
    ];
    let dotdot = archive(
        &b.root,
        "dotdot.tar.gz",
        &files,
        &["-P", "--transform", "s,^rules/x.rules,../../escape.rules,"],
    );
    let absolute = archive(
        &b.root,
        "absolute.tar.gz",
        &files,
        &[
            "-P",
            "--transform",
            &format!("s,^rules/x.rules,{}/abs.rules,", b.root.display()),
        ],
    );
    let work = b.root.join("link.work");
    fs::create_dir_all(work.join("rules")).unwrap();
    fs::write(work.join("rules/test-ot.rules"), RULES_V1).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", work.join("rules/passwd.rules")).unwrap();
    let link = b.root.join("link.tar.gz");
    let (code, text) = run(Command::new("tar")
        .arg("-czf")
        .arg(&link)
        .arg("-C")
        .arg(&work)
        .arg("rules"));
    assert_eq!(code, 0, "{text}");
    for a in [&dotdot, &absolute, &link] {
        md5_beside(a);
        let (code, out) = b.update(&["--from", a.to_str().unwrap()]);
        assert_eq!(code, 1, "{}: {out}", a.display());
        assert!(out.contains("points outside the archive"), "{out}");
        assert_untouched(&b, &before, &out);
    }
    assert!(!b.root.join("escape.rules").exists());
    assert!(!b.root.join("abs.rules").exists());
}

#[test]
fn local_file_with_md5_beside_given_or_none() {
    let Some(b) = Gateway::new(false, "") else {
        return;
    };
    let a = good_v1(&b.root);
    let f = a.to_str().unwrap();
    // No update_url, no --from: nothing to install from.
    let (code, out) = b.update(&[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("detect.update_url is not set"), "{out}");
    // No FILE.md5 and no --md5: refused until the operator says so.
    let (code, out) = b.update(&["--from", f]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("nothing to check it against"), "{out}");
    assert!(b.link("current").is_none());
    let (code, out) = b.update(&["--from", f, "--no-checksum"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("not checked"), "{out}");
    assert_eq!(b.loaded(), 3);
    // --md5 with the right sum; FILE.md5 beside it.
    let v2 = good_v2(&b.root);
    let sum = md5_beside(&v2);
    fs::remove_file(b.root.join("v2.tar.gz.md5")).unwrap();
    let (code, out) = b.update(&["--from", v2.to_str().unwrap(), "--md5", &sum.to_uppercase()]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(b.loaded(), 4);
    let (code, out) = b.rules(&["rollback", "--no-reload"]);
    assert_eq!(code, 0, "{out}");
    md5_beside(&v2);
    let (code, out) = b.update(&["--from", v2.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(b.loaded(), 4);
}

/// A live sensor on loopback with this config is found and told (SIGHUP when it catches
/// it; a binary that does not is left running with a clear message, since SIGHUP would
/// kill it). Either way it keeps running. Needs root (live capture).
#[test]
fn the_running_sensor_is_found_and_never_killed() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: live capture needs root");
        return;
    }
    let Some(b) = Gateway::new(false, "") else {
        return;
    };
    install_v1_from_file(&b);
    let mut sensor = Command::new(sensor_bin())
        .args(["run", "--config"])
        .arg(&b.cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Running once its capture is open (sensor.log says so).
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20)
        && fs::read_to_string(b.root.join("sensor.log")).map_or(true, |l| l.lines().count() < 2)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(sensor.try_wait().unwrap().is_none(), "sensor exited");
    let pid = sensor.id();
    let v2 = good_v2(&b.root);
    md5_beside(&v2);
    let (code, out) = b.rules(&["update", "--from", v2.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("sent SIGHUP to the sensor (pid {pid})"))
            || out.contains(&format!("the running sensor (pid {pid}) does not reload")),
        "{out}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        sensor.try_wait().unwrap().is_none(),
        "the sensor died: {out}"
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let t = Instant::now();
    while sensor.try_wait().unwrap().is_none() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = sensor.kill();
    let _ = sensor.wait();
    // A config no sensor runs with: nobody is signalled.
    let other = b.root.join("other.toml");
    fs::copy(&b.cfg, &other).unwrap();
    let (code, out) = run(Command::new(sensor_bin())
        .args(["rules", "rollback", "--config"])
        .arg(&other));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("no running `osect-sensor run --config"),
        "{out}"
    );
}
