use super::*;

use std::path::Path;

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

#[test]
fn slot_comes_from_the_kernel_command_line() {
    assert_eq!(
        slot_from_cmdline("console=ttyAMA0 root=/dev/vda3 rauc.slot=B rootwait\n").as_deref(),
        Some("B")
    );
    assert_eq!(slot_from_cmdline("console=ttyAMA0 root=/dev/vda2"), None);
    assert_eq!(slot_from_cmdline("rauc.slot= quiet"), None);
}

#[test]
fn uptime_is_whole_seconds() {
    assert_eq!(parse_uptime("12345.67 23456.78\n"), Some(12345));
    assert_eq!(parse_uptime("7 1"), Some(7));
    assert_eq!(parse_uptime(""), None);
    assert_eq!(parse_uptime("x.5 1"), None);
}

#[test]
fn the_latest_counters_line_wins() {
    let log = "\
2026-01-02T03:04:05.000Z INFO  counters packets_read=10 flows_created=2
2026-01-02T03:05:05.000Z INFO  bundle /data/osect/spool/realtime-2026-01-02-03:04:00.tar.zst
2026-01-02T03:05:05.500Z INFO  counters packets_read=25 flows_created=3 bundles=1
2026-01-02T03:05:06.000Z WARN  something else
";
    let c = parse_latest_counters(log).unwrap();
    assert_eq!(c.get("packets_read"), Some("25"));
    assert_eq!(c.get("bundles"), Some("1"));
    assert_eq!(c.pairs.len(), 3);
    assert_eq!(
        c.at.unwrap().format("%H:%M:%S%.3f").to_string(),
        "03:05:05.500"
    );
    assert!(parse_latest_counters("2026-01-02T03:04:05.000Z INFO  started\n").is_none());
}

#[test]
fn counters_are_found_in_the_rotated_log_and_past_a_cut_first_line() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("sensor.log");
    write(
        &log.with_extension("log.1"),
        "2026-01-02T03:04:05.000Z INFO  counters packets_read=7\n",
    );
    write(&log, "2026-01-02T03:05:00.000Z INFO  rotated\n");
    assert_eq!(
        latest_counters(&log).unwrap().get("packets_read"),
        Some("7")
    );

    // More than the tail window of filler after a counters line: only the tail is read, and
    // the partial first line of the tail is not mistaken for a record.
    let mut big = String::from("2026-01-02T03:04:05.000Z INFO  counters packets_read=1\n");
    while (big.len() as u64) < LOG_TAIL_BYTES + 100 {
        big.push_str("2026-01-02T03:04:06.000Z INFO  filler line of the sensor log\n");
    }
    big.push_str("2026-01-02T03:09:00.000Z INFO  counters packets_read=99\n");
    write(&log, &big);
    assert_eq!(
        latest_counters(&log).unwrap().get("packets_read"),
        Some("99")
    );
    assert!(latest_counters(&d.path().join("missing.log")).is_none());
}

#[test]
fn spool_counts_only_finished_bundles() {
    let d = tempfile::tempdir().unwrap();
    let s = d.path();
    write(&s.join("realtime-2024-06-01-00:01:00.tar.zst"), "12345");
    write(&s.join("realtime-2024-06-01-00:00:00.tar.zst"), "123");
    write(&s.join("realtime-2024-06-01-00:02:00.tar.zst"), "1");
    write(
        &s.join("tmp/realtime-2024-06-01-00:03:00.tar.zst.part"),
        "xx",
    );
    write(&s.join("sent/realtime-2024-05-31-23:59:00.tar.zst"), "xx");
    write(&s.join(UPLOAD_HISTORY), "x\n");
    let sum = spool_summary(s);
    assert!(sum.exists);
    assert_eq!(sum.bundles, 3);
    assert_eq!(sum.bytes, 9);
    assert_eq!(
        sum.oldest.as_deref(),
        Some("realtime-2024-06-01-00:00:00.tar.zst")
    );
    assert_eq!(
        sum.newest.as_deref(),
        Some("realtime-2024-06-01-00:02:00.tar.zst")
    );
    assert!(!spool_summary(&s.join("nope")).exists);
}

#[test]
fn link_state_from_sysfs() {
    let d = tempfile::tempdir().unwrap();
    let eth = d.path().join("eth1");
    write(&eth.join("operstate"), "up\n");
    write(&eth.join("flags"), "0x1003\n");
    write(&eth.join("carrier"), "1\n");
    write(&eth.join("statistics/rx_packets"), "1234\n");
    write(&eth.join("statistics/rx_dropped"), "5\n");
    let l = read_link(d.path(), "eth1");
    assert!(l.exists && l.up);
    assert_eq!((l.rx_packets, l.rx_dropped, l.rx_errors), (1234, 5, 0));
    assert_eq!(l.operstate, "up");

    let down = d.path().join("eth2");
    write(&down.join("operstate"), "down\n");
    write(&down.join("flags"), "0x1003\n");
    write(&down.join("carrier"), "0\n");
    assert!(!read_link(d.path(), "eth2").up);
    // Loopback: operstate "unknown", but up with a carrier.
    let lo = d.path().join("lo");
    write(&lo.join("operstate"), "unknown\n");
    write(&lo.join("flags"), "0x9\n");
    write(&lo.join("carrier"), "1\n");
    assert!(read_link(d.path(), "lo").up);
    assert!(!read_link(d.path(), "eth9").exists);
}

#[test]
fn last_upload_is_the_last_non_empty_line() {
    let d = tempfile::tempdir().unwrap();
    let h = d.path().join(UPLOAD_HISTORY);
    write(&h, "2026-01-02T03:04:05Z ok a.tar.zst\n2026-01-02T03:05:05Z failed b.tar.zst: connection refused\n\n");
    let l = last_line(&h).unwrap();
    assert!(l.ends_with("connection refused"), "{l}");
    assert!(looks_failed(&l));
    assert!(!looks_failed("2026-01-02T03:04:05Z ok a.tar.zst 200"));
    assert!(last_line(&d.path().join("absent")).is_none());
}

#[test]
fn sensor_processes_are_told_apart() {
    assert!(is_sensor_run(
        b"/usr/bin/osect-sensor\0run\0--config\0/etc/osect/sensor.toml\0"
    ));
    assert!(is_sensor_run(b"osect-sensor\0run\0"));
    assert!(!is_sensor_run(b"/usr/bin/osect-sensor\0diag\0"));
    assert!(!is_sensor_run(b"/usr/bin/osect-sensor-old\0run\0"));
    assert!(!is_sensor_run(b""));

    let d = tempfile::tempdir().unwrap();
    write(&d.path().join("17/cmdline"), "/usr/bin/osect-sensor\0run\0");
    write(&d.path().join("3/cmdline"), "osect-sensor\0run\0");
    write(&d.path().join("18/cmdline"), "/bin/sh\0");
    write(&d.path().join("self/cmdline"), "osect-sensor\0run\0");
    assert_eq!(sensor_pids(d.path()), vec![3, 17]);
}

#[test]
fn human_units() {
    assert_eq!(human_secs(6), "6s");
    assert_eq!(human_secs(245), "4m05s");
    assert_eq!(human_secs(3723), "1h02m03s");
    assert_eq!(human_secs(2 * 86_400 + 3600), "2d01h00m");
    assert_eq!(human_bytes(512), "512 B");
    assert_eq!(human_bytes(1536), "1.5 KiB");
    assert_eq!(human_bytes(12 << 20), "12.0 MiB");
}

fn report(d: &Path) -> Report {
    let spool = d.join("spool");
    fs::create_dir_all(&spool).unwrap();
    Report {
        version: "0.0.0",
        now: DateTime::parse_from_rfc3339("2026-01-02T03:10:00Z")
            .unwrap()
            .with_timezone(&Utc),
        slot: Some("A".into()),
        uptime_secs: Some(65),
        config_path: None,
        config_error: None,
        interface: Some("eth1".into()),
        interval_secs: 60,
        spool_dir: spool.clone(),
        sensor_log: d.join("sensor.log"),
        sensor_pids: vec![42],
        link: Some(LinkState {
            name: "eth1".into(),
            exists: true,
            operstate: "up".into(),
            up: true,
            rx_packets: 10,
            rx_dropped: 0,
            rx_errors: 0,
        }),
        counters: parse_latest_counters(
            "2026-01-02T03:09:30.000Z INFO  counters packets_read=10 \"odd\"=x\n",
        ),
        spool: spool_summary(&spool),
        disk: Some(DiskUsage {
            total: 1 << 30,
            avail: 512 << 20,
        }),
        last_upload: None,
        certs: Vec::new(),
        current_interval: None,
        upload_server: None,
        server_probe: None,
    }
}

#[test]
fn upload_host_and_port() {
    assert_eq!(
        host_port("https://h.example/p").as_deref(),
        Some("h.example:443")
    );
    assert_eq!(host_port("https://h:8443").as_deref(), Some("h:8443"));
    assert_eq!(host_port("https://u:p@h/x").as_deref(), Some("h:443"));
    assert_eq!(host_port("https://[::1]:9/x").as_deref(), Some("[::1]:9"));
    assert_eq!(host_port("https://[::1]/x").as_deref(), Some("[::1]:443"));
    assert_eq!(host_port("http://h/"), None);
}

#[test]
fn certificate_and_server_checks() {
    let t = tempfile::tempdir().unwrap();
    let mut r = report(t.path());
    assert_eq!(status_of(&r.checks(), "certificates"), Status::Skip);
    assert_eq!(status_of(&r.checks(), "server"), Status::Skip);

    // A valid certificate (rcgen: valid from 1975 to 4096), and one that expired.
    let cert = rcgen::generate_simple_self_signed(vec!["s.example".into()]).unwrap();
    let good = t.path().join("good.pem");
    fs::write(&good, cert.cert.pem()).unwrap();
    r.certs = vec![(good.clone(), crate::support::certificate_facts(&good))];
    let c = r.checks();
    assert_eq!(status_of(&c, "certificates"), Status::Pass, "{c:?}");
    let mut p = rcgen::CertificateParams::new(vec!["old.example".into()]).unwrap();
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let old = t.path().join("old.pem");
    fs::write(&old, p.self_signed(&key).unwrap().pem()).unwrap();
    r.certs
        .push((old.clone(), crate::support::certificate_facts(&old)));
    let c = r.checks();
    let cert_check = c.iter().find(|c| c.name == "certificates").unwrap();
    assert_eq!(cert_check.status, Status::Fail);
    assert!(
        cert_check.reason.contains("expired"),
        "{}",
        cert_check.reason
    );
    let missing = t.path().join("none.pem");
    r.certs = vec![(missing.clone(), crate::support::certificate_facts(&missing))];
    assert_eq!(status_of(&r.checks(), "certificates"), Status::Fail);
    assert!(r.render_text().contains("none.pem"));

    // Server: a listener on loopback accepts, a closed port refuses.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    r.upload_server = Some(l.local_addr().unwrap().to_string());
    r.probe_server(std::time::Duration::from_secs(2));
    assert_eq!(status_of(&r.checks(), "server"), Status::Pass);
    let port = l.local_addr().unwrap().port();
    drop(l);
    r.upload_server = Some(format!("127.0.0.1:{port}"));
    r.probe_server(std::time::Duration::from_secs(2));
    assert_eq!(status_of(&r.checks(), "server"), Status::Fail);
}

#[test]
fn lines_per_log_of_the_open_interval() {
    let t = tempfile::tempdir().unwrap();
    assert!(current_interval(t.path()).is_none());
    let open = t.path().join("realtime-2026-01-02-03:09:00.tmp");
    fs::create_dir_all(&open).unwrap();
    fs::create_dir_all(t.path().join("realtime-2026-01-02-03:08:00")).unwrap();
    fs::write(open.join("conn.log"), "#fields\ta\n1\n2\n#close\n").unwrap();
    fs::write(open.join("p0f-k.log"), "x\n").unwrap();
    let (name, logs) = current_interval(t.path()).unwrap();
    assert_eq!(name, "realtime-2026-01-02-03:09:00.tmp");
    let get = |l: &str| logs.iter().find(|(n, _)| n == l).unwrap().1;
    assert_eq!((get("conn"), get("p0f-k"), get("dns")), (2, 1, 0));
}

fn status_of(checks: &[Check], name: &str) -> Status {
    checks.iter().find(|c| c.name == name).unwrap().status
}

#[test]
fn checks_judge_the_facts() {
    let d = tempfile::tempdir().unwrap();
    let mut r = report(d.path());
    let c = r.checks();
    for name in ["sensor", "interface", "clock", "counters", "disk"] {
        assert_eq!(status_of(&c, name), Status::Pass, "{name}: {c:?}");
    }
    assert_eq!(status_of(&c, "upload"), Status::Skip);
    assert_eq!(status_of(&c, "config"), Status::Skip);

    r.sensor_pids.clear();
    r.link.as_mut().unwrap().rx_packets = 0;
    r.now = DateTime::parse_from_rfc3339("1970-01-01T00:01:00Z")
        .unwrap()
        .with_timezone(&Utc);
    r.disk = Some(DiskUsage {
        total: 1 << 30,
        avail: 10 << 20,
    });
    r.last_upload = Some("2026-01-02T03:05:05Z failed: timeout".into());
    let c = r.checks();
    for name in ["sensor", "interface", "clock", "disk", "upload"] {
        assert_eq!(status_of(&c, name), Status::Fail, "{name}: {c:?}");
    }
    let text = render_checks(&c);
    assert!(
        text.contains("FAIL interface eth1: up but no packets received"),
        "{text}"
    );

    // A running sensor whose counters stopped: more than three intervals old.
    let mut r = report(d.path());
    r.now = DateTime::parse_from_rfc3339("2026-01-02T03:20:00Z")
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(status_of(&r.checks(), "counters"), Status::Fail);
}

#[test]
fn renders_text_and_valid_json() {
    let d = tempfile::tempdir().unwrap();
    let r = report(d.path());
    let text = r.render_text();
    assert!(
        text.starts_with("osect-sensor 0.0.0  slot A  up 1m05s"),
        "{text}"
    );
    assert!(
        text.contains("interface eth1 up (up)  rx 10 packets"),
        "{text}"
    );
    assert!(text.contains("packets_read=10"), "{text}");
    assert!(text.lines().all(|l| l.len() <= 100), "{text}");

    let checks = r.checks();
    let j = r.render_json(Some(&checks));
    assert!(j.starts_with('{') && j.ends_with('}'));
    assert!(j.contains("\"slot\":\"A\""), "{j}");
    assert!(j.contains("\"packets_read\":10"), "{j}");
    assert!(j.contains("\"\\\"odd\\\"\":\"x\""), "{j}");
    assert!(j.contains("\"checks\":[{\"name\":\"config\""), "{j}");
    // Balanced braces and brackets outside strings: a cheap structural check without a parser.
    let (mut depth, mut in_str, mut esc) = (0i32, false, false);
    for ch in j.chars() {
        match (in_str, esc, ch) {
            (true, true, _) => esc = false,
            (true, false, '\\') => esc = true,
            (true, false, '"') => in_str = false,
            (false, _, '"') => in_str = true,
            (false, _, '{' | '[') => depth += 1,
            (false, _, '}' | ']') => depth -= 1,
            _ => {}
        }
        assert!(depth >= 0);
    }
    assert_eq!(depth, 0);
    assert!(!in_str);
}
