//! Upload over mutual TLS to a real nginx on loopback (`upload_support`): delivery of real
//! bundles byte for byte and oldest first, every refusal (no client certificate, one from
//! another CA, an expired one, an untrusted server, a server certificate for another host),
//! and server-side faults (500, 503, a hang, a reset mid-body). A bundle leaves the queue only
//! after an HTTP 200.

mod upload_support;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use upload_support::*;

struct Setup {
    _t: tempfile::TempDir,
    root: std::path::PathBuf,
    pki: Pki,
    receiver: Receiver,
    nginx: Nginx,
}

fn setup(cert: ServerCert) -> Option<Setup> {
    let bin = nginx_binary()?;
    let t = tempfile::tempdir().unwrap();
    let root = t.path().to_path_buf();
    let pki = Pki::generate(&root.join("pki"));
    let receiver = Receiver::start();
    let nginx = Nginx::start(&bin, &root.join("nginx"), &pki, cert, 0, receiver.port);
    Some(Setup {
        _t: t,
        root,
        pki,
        receiver,
        nginx,
    })
}

/// The log line that tells why a bundle was not delivered.
fn reason_line(err: &str) -> &str {
    err.lines()
        .find(|l| l.contains("not delivered"))
        .and_then(|l| l.split("not delivered: ").nth(1))
        .unwrap_or("")
}

fn spool(s: &Setup) -> std::path::PathBuf {
    s.root.join("spool")
}

#[test]
fn replayed_bundles_arrive_oldest_first_byte_identical() {
    let Some(s) = setup(ServerCert::Good) else {
        return;
    };
    // Separate certificate and key files (the combined file is used by the other tests).
    let cfg = write_config(
        &s.root,
        &s.nginx.url(),
        &format!(
            "ca_file = \"{}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\n",
            s.pki.ca.display(),
            s.pki.client_cert.display(),
            s.pki.client_key.display()
        ),
    );
    // `replay --bundles --config` puts its bundles into `[spool] dir`.
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/sample.pcap");
    let out = s.root.join("replay-out");
    let st = Command::new(sensor_bin())
        .arg("replay")
        .arg(&sample)
        .arg("--bundles")
        .arg("--out")
        .arg(&out)
        .arg("--config")
        .arg(&cfg)
        .status()
        .unwrap();
    assert!(st.success());
    assert!(names_in(&out.join("spool")).is_empty());
    let produced = names_in(&spool(&s));
    // And a few more, so the queue is long enough to show its order.
    make_bundles(&s.root.join("logs"), &spool(&s), 0, 4, 30_000);
    let produced_all = names_in(&spool(&s));
    assert!(
        produced.len() >= 2,
        "sample gives several minutes: {produced:?}"
    );
    let originals: Vec<Vec<u8>> = produced_all
        .iter()
        .map(|n| fs::read(spool(&s).join(n)).unwrap())
        .collect();

    let t = Instant::now();
    let (code, err) = upload_once(&cfg);
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(code, 0, "{err}");
    let got = s.receiver.uploads();
    let names: Vec<&str> = got.iter().map(|u| u.file_name.as_str()).collect();
    assert_eq!(names, produced_all, "every bundle once, oldest first");
    for (u, orig) in got.iter().zip(&originals) {
        assert_eq!(&u.data, orig, "{} arrives byte-identical", u.file_name);
        assert!(
            !decode_bundle(&u.data).is_empty(),
            "{} decodes",
            u.file_name
        );
        assert_eq!(u.label_id, "line-7");
        assert_eq!(u.client_verify, "SUCCESS");
        assert!(u.client_dn.contains("sensor-0001"), "{}", u.client_dn);
    }
    assert!(names_in(&spool(&s)).is_empty(), "nothing left unsent");
    assert_eq!(names_in(&spool(&s).join("sent")), produced_all);
    let history = fs::read_to_string(spool(&s).join("upload-history.log")).unwrap();
    assert_eq!(
        history.lines().filter(|l| l.contains(" sent ")).count(),
        got.len()
    );
    assert!(fs::read_to_string(s.root.join("sensor.log"))
        .unwrap()
        .contains("uploaded realtime-"));

    // Nothing queued: a second round is a success that sends nothing.
    let (code, err) = upload_once(&cfg);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s.receiver.uploads().len(), got.len());
    let bytes: usize = got.iter().map(|u| u.data.len()).sum();
    println!(
        "bundles produced {}, delivered {}, duplicated 0, dropped by budget 0; {bytes} bytes in {secs:.2} s",
        produced_all.len(),
        got.len()
    );
}

#[test]
fn refused_clients_and_untrusted_servers_leave_bundles_queued() {
    let Some(s) = setup(ServerCert::Good) else {
        return;
    };
    make_bundles(&s.root.join("logs"), &spool(&s), 0, 2, 5_000);
    let queued = names_in(&spool(&s));
    let ca = s.pki.ca.display().to_string();
    let cases = [
        (
            "no client certificate",
            format!("ca_file = \"{ca}\"\n"),
            "400",
        ),
        (
            "client certificate from another CA",
            format!(
                "ca_file = \"{ca}\"\nclient_cert = \"{}\"\n",
                s.pki.stranger_combined.display()
            ),
            "400",
        ),
        (
            "expired client certificate",
            format!(
                "ca_file = \"{ca}\"\nclient_cert = \"{}\"\n",
                s.pki.expired_combined.display()
            ),
            "400",
        ),
        (
            "server signed by a CA we do not trust",
            format!(
                "ca_file = \"{}\"\nclient_cert = \"{}\"\n",
                s.pki.other_ca.display(),
                s.pki.client_combined.display()
            ),
            "UnknownIssuer",
        ),
        (
            "built-in roots only",
            format!("client_cert = \"{}\"\n", s.pki.client_combined.display()),
            "UnknownIssuer",
        ),
    ];
    for (what, extra, reason) in cases {
        let cfg = write_config(&s.root, &s.nginx.url(), &extra);
        let (code, err) = upload_once(&cfg);
        assert_eq!(code, 1, "{what}: {err}");
        assert!(err.contains(reason), "{what}: the reason is told: {err}");
        assert!(err.contains("not delivered"), "{what}: {err}");
        assert_eq!(names_in(&spool(&s)), queued, "{what}: bundles stay queued");
        assert!(names_in(&spool(&s).join("sent")).is_empty(), "{what}");
        println!("{what}: refused: {}", reason_line(&err));
    }
    assert_eq!(s.receiver.requests(), 0, "nothing got past nginx");
    assert!(
        s.nginx.error_log().contains("client"),
        "nginx logged the refusals"
    );

    // A server certificate for another host name.
    let Some(wrong) = setup(ServerCert::WrongHost) else {
        return;
    };
    let cfg = write_config(
        &s.root,
        &wrong.nginx.url(),
        &format!(
            "ca_file = \"{ca}\"\nclient_cert = \"{}\"\n",
            s.pki.client_combined.display()
        ),
    );
    // `wrong` has its own PKI: trust its CA so that only the host name is wrong.
    let cfg_text = fs::read_to_string(&cfg)
        .unwrap()
        .replace(&ca, &wrong.pki.ca.display().to_string())
        .replace(
            &s.pki.client_combined.display().to_string(),
            &wrong.pki.client_combined.display().to_string(),
        );
    fs::write(&cfg, cfg_text).unwrap();
    let (code, err) = upload_once(&cfg);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not valid for name"), "{err}");
    assert_eq!(names_in(&spool(&s)), queued);
    assert_eq!(wrong.receiver.requests(), 0);

    // The same queue, the right credentials: delivered.
    let cfg = write_config(
        &s.root,
        &s.nginx.url(),
        &format!(
            "ca_file = \"{ca}\"\nclient_cert = \"{}\"\n",
            s.pki.client_combined.display()
        ),
    );
    let (code, err) = upload_once(&cfg);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s.receiver.uploads().len(), queued.len());
}

#[test]
fn server_errors_hangs_and_resets_keep_bundles_until_a_200() {
    let Some(s) = setup(ServerCert::Good) else {
        return;
    };
    let bundles = make_bundles(&s.root.join("logs"), &spool(&s), 0, 3, 200_000);
    let queued = names_in(&spool(&s));
    let cfg = write_config(
        &s.root,
        &s.nginx.url(),
        &format!(
            "ca_file = \"{}\"\nclient_cert = \"{}\"\ntimeout_s = 1\n",
            s.pki.ca.display(),
            s.pki.client_combined.display()
        ),
    );
    // write_config put timeout_s = 5 before ours; keep only the last one.
    let text = fs::read_to_string(&cfg)
        .unwrap()
        .replace("timeout_s = 5\n", "");
    fs::write(&cfg, text).unwrap();
    for (mode, reason) in [
        (Mode::Status(500), "HTTP 500"),
        (Mode::Status(503), "HTTP 503"),
        (Mode::Hang, "timed out"),
        (Mode::Reset, "HTTP 502"),
    ] {
        s.receiver.set_mode(mode);
        let t = Instant::now();
        let (code, err) = upload_once(&cfg);
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(code, 1, "{mode:?}: {err}");
        assert!(
            err.contains(reason) || (mode == Mode::Reset && err.contains("onnection")),
            "{mode:?}: {err}"
        );
        assert_eq!(
            names_in(&spool(&s)),
            queued,
            "{mode:?}: bundles stay queued"
        );
        assert!(s.receiver.uploads().is_empty());
        println!(
            "{mode:?}: not delivered after {secs:.2} s: {}",
            reason_line(&err)
        );
    }
    s.receiver.set_mode(Mode::Accept);
    let (code, err) = upload_once(&cfg);
    assert_eq!(code, 0, "{err}");
    let got = s.receiver.uploads();
    assert_eq!(got.len(), bundles.len(), "each delivered exactly once");
    for (u, name) in got.iter().zip(&queued) {
        assert_eq!(&u.file_name, name);
        assert_eq!(u.data, fs::read(spool(&s).join("sent").join(name)).unwrap());
    }
    let history = fs::read_to_string(spool(&s).join("upload-history.log")).unwrap();
    assert_eq!(
        history.lines().filter(|l| l.contains(" failed ")).count(),
        4
    );
}
