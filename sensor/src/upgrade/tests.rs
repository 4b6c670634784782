use std::fs;
use std::time::{Duration, SystemTime};

use super::health::{check, Probe};
use super::*;

#[test]
fn rauc_info_shell_output_is_read() {
    let text = "RAUC_MF_COMPATIBLE='osect-sensor-qemu-aarch64-virt'\n\
                RAUC_MF_VERSION='2.0 it'\\''s'\n\
                RAUC_MF_BUNDLE_FORMAT='verity'\n\
                RAUC_IMAGES='1'\n\
                RAUC_IMAGE_NAME_1='rootfs.ext4'\n\
                RAUC_IMAGE_CLASS_1='rootfs'\n";
    let info = rauc::parse_info_shell(text);
    assert_eq!(info.compatible, "osect-sensor-qemu-aarch64-virt");
    assert_eq!(info.version, "2.0 it's");
    assert_eq!(info.images, vec![("rootfs".into(), "rootfs.ext4".into())]);
}

#[test]
fn pending_marker_round_trips_and_rejects_garbage() {
    let p = Pending {
        target: "B".into(),
        from: "A".into(),
        version: "2".into(),
        state: "installed".into(),
    };
    assert_eq!(Pending::parse(&p.render()), Some(p));
    assert_eq!(Pending::parse("garbage\n"), None);
    assert_eq!(Pending::parse("target=\n"), None);
    assert_eq!(other_slot("A"), Some("B"));
    assert_eq!(other_slot("B"), Some("A"));
    assert_eq!(other_slot("C"), None);
}

struct Fake {
    _t: tempfile::TempDir,
    probe: Probe,
    up: Upgrade,
}

/// A system with a /proc (optionally running the sensor), a spool and an upgrade folder.
fn fake(slot: &str, sensor_running: bool) -> Fake {
    let t = tempfile::tempdir().unwrap();
    let proc_dir = t.path().join("proc");
    fs::create_dir_all(proc_dir.join("4242")).unwrap();
    let cmd: &[u8] = if sensor_running {
        b"/usr/bin/osect-sensor\0run\0--config\0/etc/osect/sensor.toml\0"
    } else {
        b"/bin/sh\0"
    };
    fs::write(proc_dir.join("4242/cmdline"), cmd).unwrap();
    let spool = t.path().join("spool");
    fs::create_dir_all(&spool).unwrap();
    let probe = Probe {
        proc_dir,
        spool_dir: spool,
        upload_configured: false,
        boot_time: SystemTime::now() - Duration::from_secs(60),
    };
    let mut settings = UpgradeConfig {
        download_dir: t.path().join("upgrade"),
        health_timeout_secs: 1,
        // Stands in for RAUC's mark-good: a program that succeeds.
        rauc: "true".into(),
        ..UpgradeConfig::default()
    };
    settings.reboot_command = vec!["false".into()];
    let up = Upgrade {
        settings,
        booted: Some(slot.into()),
        poll: Duration::from_millis(50),
    };
    Fake { _t: t, probe, up }
}

#[test]
fn health_checks_see_the_sensor_and_fresh_bundles_only() {
    let f = fake("A", true);
    let names: Vec<String> = ["sensor", "bundle", "upload"].map(String::from).to_vec();
    let out = check(&f.probe, &names);
    assert!(out[0].ok, "{out:?}");
    assert!(!out[1].ok, "no bundle yet: {out:?}");
    assert!(out[2].ok && out[2].reason.starts_with("skipped"), "{out:?}");

    // A bundle from before the boot does not count; one written now does.
    let old = f
        .probe
        .spool_dir
        .join("realtime-2020-01-01-00:00:00.tar.zst");
    fs::write(&old, b"x").unwrap();
    let f_old = fs::File::options().write(true).open(&old).unwrap();
    f_old
        .set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    assert!(!check(&f.probe, &names)[1].ok);
    fs::create_dir_all(f.probe.spool_dir.join("sent")).unwrap();
    fs::write(
        f.probe
            .spool_dir
            .join("sent/realtime-2026-01-01-00:01:00.tar.zst"),
        b"x",
    )
    .unwrap();
    let out = check(&f.probe, &names);
    assert!(out[1].ok && out[1].reason.contains("00:01:00"), "{out:?}");

    // Upload: a delivery logged after boot counts, one before does not.
    let mut p = f.probe.clone();
    p.upload_configured = true;
    let hist = p.spool_dir.join(crate::upload::history::HISTORY_FILE);
    fs::write(
        &hist,
        "2020-01-01T00:00:00.000Z sent old.tar.zst 10 bytes in 0.1 s\n",
    )
    .unwrap();
    assert!(!check(&p, &names)[2].ok);
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
    fs::write(
        &hist,
        format!("{now} failed x\n{now} sent new.tar.zst 10 bytes in 0.1 s\n"),
    )
    .unwrap();
    let out = check(&p, &names);
    assert!(
        out[2].ok && out[2].reason.contains("new.tar.zst"),
        "{out:?}"
    );
}

#[test]
fn a_slot_on_trial_must_pass_every_configured_check() {
    let f = fake("B", true);
    f.up.set_pending(&Pending {
        target: "B".into(),
        from: "A".into(),
        version: "2".into(),
        state: "installed".into(),
    })
    .unwrap();
    // No bundle since boot: the trial fails (the reboot command fails too; no reboot here).
    let v = confirm(&f.up, &f.probe, true);
    assert!(
        matches!(&v, Verdict::Failed { trial: true, reason } if reason.contains("bundle")),
        "{v:?}"
    );
    assert!(f.up.pending().is_some(), "still on trial");
    let hist = fs::read_to_string(f.up.dir().join(HISTORY_FILE)).unwrap();
    assert!(hist.contains("slot B failed its health check"), "{hist}");

    fs::write(
        f.probe
            .spool_dir
            .join("realtime-2026-01-01-00:01:00.tar.zst"),
        b"x",
    )
    .unwrap();
    assert_eq!(
        confirm(&f.up, &f.probe, true),
        Verdict::Good { trial: true }
    );
    assert!(f.up.pending().is_none(), "trial over");
    let hist = fs::read_to_string(f.up.dir().join(HISTORY_FILE)).unwrap();
    assert!(hist.contains("confirmed version 2 on slot B"), "{hist}");
}

#[test]
fn the_old_slot_after_a_rollback_records_it_and_needs_only_the_sensor() {
    let f = fake("A", true);
    f.up.set_pending(&Pending {
        target: "B".into(),
        from: "A".into(),
        version: "3".into(),
        state: "installed".into(),
    })
    .unwrap();
    assert_eq!(
        confirm(&f.up, &f.probe, true),
        Verdict::Good { trial: false }
    );
    assert!(f.up.pending().is_none());
    let hist = fs::read_to_string(f.up.dir().join(HISTORY_FILE)).unwrap();
    assert!(
        hist.contains("slot B (version 3) did not prove itself"),
        "{hist}"
    );

    // Without the sensor a routine boot is not marked good, and nothing reboots.
    let f = fake("A", false);
    let v = confirm(&f.up, &f.probe, false);
    assert!(matches!(&v, Verdict::Failed { trial: false, .. }), "{v:?}");
}

#[test]
fn files_that_are_not_bundles_are_refused_before_anything_is_written() {
    let f = fake("A", true);
    let missing = f.up.dir().join("nope.raucb");
    let cfg = Config::default();
    let e = install(
        &cfg,
        &f.up,
        missing.to_str().unwrap(),
        InstallOptions::default(),
    )
    .unwrap_err();
    assert!(e.contains("no such bundle file"), "{e}");
    assert!(f.up.pending().is_none());
    let e = install(
        &cfg,
        &f.up,
        "http://example.invalid/x.raucb",
        InstallOptions::default(),
    )
    .unwrap_err();
    assert!(e.contains("only https://"), "{e}");
}

#[test]
fn config_rejects_unknown_checks() {
    let c = UpgradeConfig {
        health_checks: vec!["sensor".into(), "vibes".into()],
        ..UpgradeConfig::default()
    };
    assert_eq!(c.validate().unwrap_err().0, "upgrade.health_checks");
    UpgradeConfig::default().validate().unwrap();
}
