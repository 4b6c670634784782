use std::io::Read;

use super::*;

const KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n";

#[test]
fn secret_keys_urls_and_inline_keys_are_redacted() {
    let cfg = format!(
        "[upload]\nurl = \"https://bob:s3cretPass@cloud.example/paper\"\nkey_passphrase = \"hunter2-XYZ\"\nlabel_id = \"42\"\ninline = '''\n{KEY_PEM}'''\n[x]\napi_token = 'tok-123456'\n"
    );
    let r = redact_config(&cfg);
    for s in [
        "s3cretPass",
        "hunter2-XYZ",
        "tok-123456",
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7",
    ] {
        assert!(!r.text.contains(s), "{s} left in:\n{}", r.text);
    }
    assert!(r.text.contains("label_id = \"42\""), "{}", r.text);
    assert!(
        r.text.contains("https://<redacted>@cloud.example/paper"),
        "{}",
        r.text
    );
    assert!(r.secrets.iter().any(|s| s == "hunter2-XYZ"));
    // The same values anywhere else (a log quoting them) are scrubbed too.
    let sc = Scrubber::new(r.secrets);
    let log = b"2026 upload failed for https://bob:s3cretPass@cloud.example with hunter2-XYZ";
    let clean = String::from_utf8(sc.scrub(log)).unwrap();
    assert!(
        !clean.contains("s3cretPass") && !clean.contains("hunter2-XYZ"),
        "{clean}"
    );
}

#[test]
fn private_key_blocks_are_cut_from_any_text() {
    let text = format!(
        "before\n{KEY_PEM}after\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    );
    let out = String::from_utf8(redact::cut_private_keys(text.as_bytes())).unwrap();
    assert!(!out.contains("MIIEvQ"), "{out}");
    assert!(out.contains("before\n<redacted>\nafter"), "{out}");
    assert!(out.contains("BEGIN CERTIFICATE"), "{out}");
    // Unterminated block: everything after it goes.
    let out = redact::cut_private_keys(b"x -----BEGIN EC PRIVATE KEY-----\nabc");
    assert_eq!(out, b"x <redacted>");
}

#[test]
fn broken_config_is_still_redacted() {
    let r = redact_config("[upload\npassword = \"pw-778899\nnot toml at all = = =\n");
    assert!(!r.text.contains("pw-778899"), "{}", r.text);
}

#[test]
fn slot_from_cmdline() {
    assert_eq!(
        collect::booted_slot("console=ttyAMA0 root=/dev/vda2 rauc.slot=A quiet"),
        Some("A")
    );
    assert_eq!(collect::booted_slot("root=/dev/sda1"), None);
}

#[test]
fn bundle_holds_the_items_and_no_secret() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    std::fs::create_dir_all(root.join("proc/net")).unwrap();
    std::fs::create_dir_all(root.join("sys/class/net/eth0/statistics")).unwrap();
    std::fs::write(root.join("proc/cmdline"), "root=/dev/vda2 rauc.slot=B\n").unwrap();
    std::fs::write(root.join("proc/meminfo"), "MemTotal: 1024 kB\n").unwrap();
    std::fs::write(root.join("proc/sys_hostname_unused"), "").unwrap();
    std::fs::write(root.join("sys/class/net/eth0/operstate"), "up\n").unwrap();
    std::fs::write(
        root.join("sys/class/net/eth0/statistics/rx_packets"),
        "12345\n",
    )
    .unwrap();

    let logs = t.path().join("log");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(
        logs.join("sensor.log"),
        "2026-11-28 INFO started\n2026-11-28 INFO counters packets_read=77 bytes_read=999\n2026-11-28 ERROR upload auth with hunter2-XYZ failed\n",
    )
    .unwrap();
    let spool = t.path().join("spool");
    std::fs::create_dir_all(spool.join("sent")).unwrap();
    std::fs::write(spool.join("realtime-2026-11-28-10:00:00.tar.zst"), b"abc").unwrap();
    std::fs::write(
        spool.join("sent/realtime-2026-11-28-09:59:00.tar.zst"),
        b"abcd",
    )
    .unwrap();
    std::fs::write(
        spool.join(collect::UPLOAD_HISTORY),
        "2026-11-28T09:59:30Z sent realtime-2026-11-28-09:59:00.tar.zst 200\n",
    )
    .unwrap();

    let upgrade_dir = t.path().join("upgrade");
    std::fs::create_dir_all(&upgrade_dir).unwrap();
    std::fs::write(
        upgrade_dir.join(crate::upgrade::HISTORY_FILE),
        "2026-11-28T09:00:00Z confirmed version 2 on slot B\n",
    )
    .unwrap();

    // A certificate the config names, in a file that also holds the private key.
    let cert = rcgen::generate_simple_self_signed(vec!["sensor.example".into()]).unwrap();
    let combined = format!("{}{}", cert.cert.pem(), cert.key_pair.serialize_pem());
    let key_body: String = cert
        .key_pair
        .serialize_pem()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    std::fs::write(t.path().join("client.pem"), &combined).unwrap();
    let config = t.path().join("sensor.toml");
    std::fs::write(
        &config,
        "[upload]\nclient_cert = \"client.pem\"\nkey_passphrase = \"hunter2-XYZ\"\n",
    )
    .unwrap();

    let rules_dir = t.path().join("rules");
    std::fs::create_dir_all(&rules_dir).unwrap();
    std::fs::write(
        rules_dir.join(crate::detect::update::LOG_FILE),
        "2026-11-28T08:00:00Z installed set-x md5 0123 loaded 3 of 3\n",
    )
    .unwrap();

    let src = SupportSources {
        config: Some(config),
        log_dirs: vec![logs],
        spool_dir: Some(spool),
        upgrade_dir: Some(upgrade_dir),
        rules_dir: Some(rules_dir),
        root,
    };
    let out = t.path().join("out");
    let path = write_bundle(&src, &out).unwrap();
    assert!(path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .ends_with(".tar.gz"));

    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(
        std::fs::File::open(&path).unwrap(),
    ));
    let mut files = std::collections::BTreeMap::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut s = Vec::new();
        e.read_to_end(&mut s).unwrap();
        let short = name.split_once('/').unwrap().1.to_string();
        files.insert(short, String::from_utf8_lossy(&s).into_owned());
    }
    for must in [
        "MANIFEST.txt",
        "summary.txt",
        "system/meminfo",
        "system/uname",
        "network/interfaces",
        "sensor/config.toml",
        "sensor/certificates.txt",
        "sensor/logs0/sensor.log",
        "sensor/counters.txt",
        "spool/listing.txt",
        "spool/upload-history.log",
        "boot/upgrade-history.log",
        "sensor/rules-update.log",
    ] {
        assert!(
            files.contains_key(must),
            "{must} missing; have {:?}",
            files.keys()
        );
    }
    assert!(files["summary.txt"].contains("booted slot: B"));
    assert!(files["boot/upgrade-history.log"].contains("confirmed version 2 on slot B"));
    assert!(files["sensor/rules-update.log"].contains("installed set-x"));
    assert!(files["network/interfaces"].contains("statistics.rx_packets = 12345"));
    assert!(files["sensor/counters.txt"].contains("packets_read=77"));
    assert!(files["spool/listing.txt"].contains("realtime-2026-11-28-10:00:00.tar.zst\t3"));
    assert!(files["spool/listing.txt"].contains("[sent] 1 files, 4 bytes"));
    assert!(
        files["sensor/certificates.txt"].contains("expires_in_days"),
        "{}",
        files["sensor/certificates.txt"]
    );
    assert!(
        files["sensor/certificates.txt"].contains("CN=rcgen self signed cert"),
        "{}",
        files["sensor/certificates.txt"]
    );
    for (name, body) in &files {
        assert!(!body.contains("hunter2-XYZ"), "secret in {name}");
        assert!(!body.contains(&key_body), "private key in {name}");
        assert!(
            !body.contains("PRIVATE KEY-----\n"),
            "private key block in {name}"
        );
    }
}
