use super::*;

#[test]
fn md5_files_in_the_usual_formats() {
    let h = "0123456789abcdef0123456789ABCDEF";
    let want = h.to_ascii_lowercase();
    for text in [
        format!("{h}\n"),
        format!("{h}  emerging.rules.tar.gz\n"),
        format!("{h} *emerging.rules.tar.gz\n"),
        format!("# sums\n\nMD5 (emerging.rules.tar.gz) = {h}\n"),
        // One sum is the archive's, whatever name it gives.
        format!("{h}  other.tar.gz\n"),
    ] {
        assert_eq!(
            parse_md5_file(&text, "emerging.rules.tar.gz").as_deref(),
            Ok(want.as_str()),
            "{text:?}"
        );
    }
    let two = format!("{}  a.tar.gz\n{h}  dir/b.tar.gz\n", "f".repeat(32));
    assert_eq!(parse_md5_file(&two, "b.tar.gz").unwrap(), want);
    assert!(parse_md5_file(&two, "c.tar.gz")
        .unwrap_err()
        .contains("none for c.tar.gz"));
    assert!(parse_md5_file("", "x").unwrap_err().contains("no MD5"));
    assert!(parse_md5_file("1234  x\n", "x")
        .unwrap_err()
        .contains("not an MD5"));
    assert!(parse_md5_file("<html>404</html>", "x").is_err());
    assert_eq!(
        parse_hex_md5(" ABCDEF0123456789abcdef0123456789\n")
            .unwrap()
            .len(),
        32
    );
    assert!(parse_hex_md5("g".repeat(32).as_str()).is_none());
}

#[test]
fn member_paths_stay_below_the_folder() {
    assert_eq!(
        member_path(Path::new("./rules/a.rules")),
        Some(PathBuf::from("rules/a.rules"))
    );
    assert_eq!(member_path(Path::new("./")), Some(PathBuf::new()));
    for bad in [
        "../a.rules",
        "rules/../../a",
        "/etc/passwd",
        "rules/x/../../../y",
    ] {
        assert_eq!(member_path(Path::new(bad)), None, "{bad}");
    }
}

#[test]
fn links_must_point_inside() {
    let ok = |at: &str, to: &str| link_stays_inside(Path::new(at), Path::new(to));
    assert!(ok("rules/a.rules", "b.rules"));
    assert!(ok("rules/a.rules", "./sub/b.rules"));
    assert!(ok("rules/a.rules", "../other/b.rules"));
    assert!(!ok("a.rules", "../b.rules"));
    assert!(!ok("rules/a.rules", "../../b.rules"));
    assert!(!ok("rules/a.rules", "/etc/passwd"));
    // `..` after a name could climb out through another link.
    assert!(!ok("rules/x/a.rules", "../s/../b"));
    assert!(!ok("rules/a.rules", ".."));
    assert!(!ok("rules/a.rules", ""));
}

#[test]
fn sensor_command_lines_and_signal_masks() {
    assert_eq!(
        config_arg(b"/usr/bin/osect-sensor\0run\0--config\0/etc/osect/sensor.toml\0"),
        Some(PathBuf::from("/etc/osect/sensor.toml"))
    );
    assert_eq!(
        config_arg(b"osect-sensor\0run\0--config=s.toml\0"),
        Some(PathBuf::from("s.toml"))
    );
    assert_eq!(config_arg(b"osect-sensor\0run\0"), None);
    assert_eq!(config_arg(b"osect-sensor\0run\0--config\0"), None);
    let st = "Name:\tosect-sensor\nSigBlk:\t0000000000000000\nSigCgt:\t0000000000000003\n";
    assert!(catches_signal(st, libc::SIGHUP));
    assert!(catches_signal(st, libc::SIGINT));
    assert!(!catches_signal(st, libc::SIGTERM));
    assert!(!catches_signal("Name:\tx\n", libc::SIGHUP));
}

#[test]
fn sensors_are_found_by_their_config_file() {
    let t = tempfile::tempdir().unwrap();
    let proc_dir = t.path().join("proc");
    let etc = t.path().join("etc");
    fs::create_dir_all(&etc).unwrap();
    let cfg = etc.join("sensor.toml");
    fs::write(&cfg, "").unwrap();
    fs::write(etc.join("other.toml"), "").unwrap();
    let mk = |pid: u32, cmd: &[&str], cwd: &Path, sigcgt: &str| {
        let d = proc_dir.join(pid.to_string());
        fs::create_dir_all(&d).unwrap();
        let mut c = cmd.join("\0").into_bytes();
        c.push(0);
        fs::write(d.join("cmdline"), c).unwrap();
        fs::write(d.join("status"), format!("Name:\tx\nSigCgt:\t{sigcgt}\n")).unwrap();
        std::os::unix::fs::symlink(cwd, d.join("cwd")).unwrap();
    };
    let c = cfg.to_str().unwrap();
    mk(
        101,
        &["osect-sensor", "run", "--config", c],
        t.path(),
        "4003",
    );
    // Relative to its working folder, and without a SIGHUP handler.
    mk(
        102,
        &["/x/osect-sensor", "run", "--config", "sensor.toml"],
        &etc,
        "4002",
    );
    mk(
        103,
        &["osect-sensor", "run", "--config", "other.toml"],
        &etc,
        "4003",
    );
    mk(
        104,
        &["osect-sensor", "replay", "--config", c],
        t.path(),
        "4003",
    );
    mk(105, &["sleep", "run", "--config", c], t.path(), "4003");
    assert_eq!(
        sensors_using(&proc_dir, &cfg),
        vec![(101, true), (102, false)]
    );
}

/// A .tar.gz of (name, entry) built with the tar crate (the integration test uses the
/// system's tar).
enum Member<'a> {
    File(&'a [u8]),
    Dir,
    Symlink(&'a str),
    HardLink(&'a str),
    Fifo,
}

fn tar_gz(dir: &Path, members: &[(&str, Member)]) -> PathBuf {
    let p = dir.join("a.tar.gz");
    let gz = flate2::write::GzEncoder::new(File::create(&p).unwrap(), Default::default());
    let mut b = tar::Builder::new(gz);
    for (name, m) in members {
        let mut h = tar::Header::new_gnu();
        // Set raw so that `..` and absolute names get in (the builder refuses them).
        let raw = name.as_bytes();
        h.as_old_mut().name[..raw.len()].copy_from_slice(raw);
        h.set_mode(0o644);
        let (kind, data): (tar::EntryType, &[u8]) = match m {
            Member::File(d) => (tar::EntryType::Regular, d),
            Member::Dir => (tar::EntryType::Directory, b""),
            Member::Symlink(t) | Member::HardLink(t) => {
                h.set_link_name(t).unwrap();
                let k = if matches!(m, Member::Symlink(_)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                };
                (k, b"")
            }
            Member::Fifo => (tar::EntryType::Fifo, b""),
        };
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap();
    p
}

const LIMITS: Limits = Limits {
    max_bytes: 1 << 20,
    max_entries: 100,
};

fn unpack(members: &[(&str, Member)]) -> (tempfile::TempDir, Result<Unpacked, String>) {
    let t = tempfile::tempdir().unwrap();
    let a = tar_gz(t.path(), members);
    let dest = t.path().join("out");
    fs::create_dir(&dest).unwrap();
    let r = unpack_tar_gz(&a, &dest, &LIMITS);
    (t, r)
}

#[test]
fn unpacks_files_folders_and_inside_links() {
    let (t, r) = unpack(&[
        ("rules/", Member::Dir),
        (
            "rules/a.rules",
            Member::File(b"alert ip any any -> any any (sid:1;)\n"),
        ),
        ("rules/b.rules", Member::Symlink("a.rules")),
        ("rules/c.rules", Member::HardLink("rules/a.rules")),
        ("./LICENSE", Member::File(b"text")),
    ]);
    let u = r.unwrap();
    assert_eq!(u.entries, 5);
    let out = t.path().join("out");
    let a = fs::read(out.join("rules/a.rules")).unwrap();
    assert_eq!(fs::read(out.join("rules/b.rules")).unwrap(), a);
    assert_eq!(fs::read(out.join("rules/c.rules")).unwrap(), a);
    assert!(fs::symlink_metadata(out.join("rules/c.rules"))
        .unwrap()
        .is_file());
    assert_eq!(arrange_rules(&out).unwrap(), out.join("rules"));
}

#[test]
fn refuses_what_could_escape_or_explode() {
    let cases: Vec<(Vec<(&str, Member)>, &str)> = vec![
        (
            vec![("../evil.rules", Member::File(b"x"))],
            "points outside",
        ),
        (
            vec![("/tmp/evil.rules", Member::File(b"x"))],
            "points outside",
        ),
        (
            vec![("rules/a", Member::Symlink("/etc/passwd"))],
            "points outside",
        ),
        (
            vec![("rules/a", Member::Symlink("../../x"))],
            "points outside",
        ),
        (vec![("a", Member::HardLink("/etc/passwd"))], "hard link"),
        (vec![("a", Member::Fifo)], "Fifo"),
        // Nothing is written through a link, even one pointing inside.
        (
            vec![
                ("d/", Member::Dir),
                ("l", Member::Symlink("d")),
                ("l/x.rules", Member::File(b"x")),
            ],
            "link or a file",
        ),
        (
            vec![("a", Member::File(b"1")), ("a", Member::File(b"2"))],
            "exists",
        ),
        (
            vec![("big", Member::File(&[0u8; (1 << 20) + 1]))],
            "more than 1048576 bytes",
        ),
    ];
    for (members, want) in cases {
        let (_t, r) = unpack(&members);
        let e = r.unwrap_err();
        assert!(e.contains(want), "{want}: {e}");
    }
    let many: Vec<(String, Member)> = (0..101)
        .map(|i| (format!("f{i}"), Member::File(b"")))
        .collect();
    let refs: Vec<(&str, Member)> = many
        .iter()
        .map(|(n, _)| (n.as_str(), Member::File(b"")))
        .collect();
    let (_t, r) = unpack(&refs);
    assert!(r.unwrap_err().contains("more than 100 entries"));
}

#[test]
fn corrupt_archives_are_errors() {
    let t = tempfile::tempdir().unwrap();
    let dest = t.path().join("out");
    fs::create_dir(&dest).unwrap();
    let p = t.path().join("x.tar.gz");
    fs::write(&p, b"this is not gzip at all").unwrap();
    let e = unpack_tar_gz(&p, &dest, &LIMITS).unwrap_err();
    assert!(e.contains("not a valid .tar.gz"), "{e}");
    let a = tar_gz(t.path(), &[("a.rules", Member::File(&[b'a'; 5000]))]);
    let bytes = fs::read(&a).unwrap();
    fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    assert!(unpack_tar_gz(&p, &dest, &LIMITS).is_err());
}

#[test]
fn rules_at_the_top_are_moved_into_rules() {
    let t = tempfile::tempdir().unwrap();
    let s = t.path();
    fs::write(s.join("a.rules"), "x").unwrap();
    fs::write(s.join("classification.config"), "x").unwrap();
    fs::write(s.join("README"), "x").unwrap();
    let r = arrange_rules(s).unwrap();
    assert!(r.join("a.rules").is_file() && r.join("classification.config").is_file());
    assert!(s.join("README").is_file());
    let empty = tempfile::tempdir().unwrap();
    assert!(arrange_rules(empty.path())
        .unwrap_err()
        .contains("no rules/"));
}

#[test]
fn update_keys_are_checked() {
    let parse = |s: &str| Config::parse(s, Path::new("t.toml"));
    let c = parse("").unwrap();
    assert_eq!(c.detect.update_dir, Path::new("/data/osect/rules"));
    assert_eq!(c.detect.update_url, None);
    let c = parse("[detect]\nupdate_url = \"https://rules.example/et/emerging.rules.tar.gz\"\nupdate_dir = \"/d/r\"\nrules = [\"/d/r/current/rules\"]\n").unwrap();
    assert!(uses_store(&c.detect));
    for (text, key) in [
        (
            "[detect]\nupdate_url = \"http://x/a.tar.gz\"\n",
            "detect.update_url",
        ),
        (
            "[detect]\nupdate_url = \"https:///a.tar.gz\"\n",
            "detect.update_url",
        ),
        (
            "[detect]\nupdate_max_download_mib = 0\n",
            "detect.update_max_download_mib",
        ),
        (
            "[detect]\nupdate_max_unpacked_mib = 5000\n",
            "detect.update_max_unpacked_mib",
        ),
    ] {
        let e = parse(text).unwrap_err().to_string();
        assert!(e.contains(key), "{text}: {e}");
    }
}
