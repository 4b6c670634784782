//! Shared by the upload tests: a throwaway PKI, a real nginx terminating mutual TLS on a
//! loopback port, and the receiver behind it that stores what arrives.
//!
//! nginx (Debian package, installed by `make deps`) runs as a child process with its own prefix
//! folder in a temp dir, `ssl_verify_client on`, and proxies the upload location to a small
//! HTTP receiver on another loopback port. The receiver parses the multipart body and keeps
//! every upload (label, file name, bytes); it can also answer with an error status, hang, or
//! reset the connection mid-body. Everything is killed on drop.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair};

pub const UPLOAD_PATH: &str = "/paper/api/v1/createlogdata/post";

pub fn sensor_bin() -> &'static str {
    env!("CARGO_BIN_EXE_osect-sensor")
}

/// nginx, or a loud SKIP line and `None` when the machine cannot run it (no nginx binary and
/// not root, so `make deps` could not have installed it). As root a missing nginx is a failure:
/// CI runs as root after `make deps`, so a broken image cannot pass silently.
pub fn nginx_binary() -> Option<PathBuf> {
    for p in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(p).exists() {
            return Some(PathBuf::from(p));
        }
    }
    if nix::unistd::geteuid().is_root() {
        panic!("nginx is not installed: run `make deps` (Debian package nginx)");
    }
    eprintln!("SKIP: nginx is not installed and this is not root (run `make deps` as root)");
    None
}

// ---------------------------------------------------------------- PKI

pub struct Issued {
    pub cert: Certificate,
    pub key: KeyPair,
}

fn ca(name: &str) -> Issued {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let cert = p.self_signed(&key).unwrap();
    Issued { cert, key }
}

fn leaf(issuer: &Issued, cn: &str, sans: &[&str], server: bool, expired: bool) -> Issued {
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![if server {
        rcgen::ExtendedKeyUsagePurpose::ServerAuth
    } else {
        rcgen::ExtendedKeyUsagePurpose::ClientAuth
    }];
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = if expired {
        rcgen::date_time_ymd(2021, 1, 1)
    } else {
        rcgen::date_time_ymd(2090, 1, 1)
    };
    let cert = p.signed_by(&key, &issuer.cert, &issuer.key).unwrap();
    Issued { cert, key }
}

/// Every file of the test PKI, written into one folder.
pub struct Pki {
    pub dir: PathBuf,
    /// The CA that signs the server and the good clients.
    pub ca: PathBuf,
    /// A CA nobody here uses (for "wrong CA" cases).
    pub other_ca: PathBuf,
    /// Server certificate for 127.0.0.1 / localhost (plus any extra names asked for), and its key.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Server certificate for another host name only.
    pub wrong_host_cert: PathBuf,
    pub wrong_host_key: PathBuf,
    /// Good client: certificate and key in one file, and the same as two files.
    pub client_combined: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// Client signed by the other CA (combined).
    pub stranger_combined: PathBuf,
    /// Client whose certificate expired in 2021 (combined).
    pub expired_combined: PathBuf,
}

impl Pki {
    pub fn generate(dir: &Path) -> Pki {
        Pki::generate_with_server_names(dir, &[])
    }

    /// As [`Pki::generate`], with `extra` names (IP addresses or host names) added to the good
    /// server certificate, for a server reached on another address than loopback.
    pub fn generate_with_server_names(dir: &Path, extra: &[&str]) -> Pki {
        fs::create_dir_all(dir).unwrap();
        let w = |name: &str, text: String| {
            let p = dir.join(name);
            fs::write(&p, text).unwrap();
            p
        };
        let ca1 = ca("osect test CA");
        let ca2 = ca("some other CA");
        let mut server_names = vec!["127.0.0.1", "localhost"];
        server_names.extend_from_slice(extra);
        let server = leaf(&ca1, "upload server", &server_names, true, false);
        let wrong = leaf(&ca1, "elsewhere", &["other.example"], true, false);
        let client = leaf(&ca1, "sensor-0001", &[], false, false);
        let stranger = leaf(&ca2, "sensor-stranger", &[], false, false);
        let expired = leaf(&ca1, "sensor-expired", &[], false, true);
        let combined = |i: &Issued| format!("{}{}", i.cert.pem(), i.key.serialize_pem());
        Pki {
            dir: dir.to_path_buf(),
            ca: w("ca.pem", ca1.cert.pem()),
            other_ca: w("other-ca.pem", ca2.cert.pem()),
            server_cert: w("server.pem", server.cert.pem()),
            server_key: w("server.key", server.key.serialize_pem()),
            wrong_host_cert: w("wrong-host.pem", wrong.cert.pem()),
            wrong_host_key: w("wrong-host.key", wrong.key.serialize_pem()),
            client_combined: w("client.pem", combined(&client)),
            client_cert: w("client.crt", client.cert.pem()),
            client_key: w("client.key", client.key.serialize_pem()),
            stranger_combined: w("stranger.pem", combined(&stranger)),
            expired_combined: w("expired.pem", combined(&expired)),
        }
    }
}

// ---------------------------------------------------------------- receiver

/// How the receiver answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Accept,
    Status(u16),
    /// Read the request, never answer.
    Hang,
    /// Read part of the body, then reset the connection.
    Reset,
}

#[derive(Clone, Debug)]
pub struct Upload {
    pub label_id: String,
    pub file_name: String,
    pub data: Vec<u8>,
    /// nginx's verdict on the client certificate and its subject.
    pub client_verify: String,
    pub client_dn: String,
}

pub struct Receiver {
    pub port: u16,
    pub mode: Arc<Mutex<Mode>>,
    pub uploads: Arc<Mutex<Vec<Upload>>>,
    /// Requests that reached the receiver at all (complete or not).
    pub requests: Arc<Mutex<usize>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(Mutex::new(Mode::Accept));
        let uploads = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, u, r, s) = (
            mode.clone(),
            uploads.clone(),
            requests.clone(),
            stop.clone(),
        );
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (m, u, r, s) = (m.clone(), u.clone(), r.clone(), s.clone());
                        std::thread::spawn(move || serve(conn, &m, &u, &r, &s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Receiver {
            port,
            mode,
            uploads,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub fn set_mode(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    pub fn uploads(&self) -> Vec<Upload> {
        self.uploads.lock().unwrap().clone()
    }

    pub fn requests(&self) -> usize {
        *self.requests.lock().unwrap()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    conn: TcpStream,
    mode: &Mutex<Mode>,
    uploads: &Mutex<Vec<Upload>>,
    requests: &Mutex<usize>,
    stop: &AtomicBool,
) {
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut headers = BTreeMap::new();
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    *requests.lock().unwrap() += 1;
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let m = *mode.lock().unwrap();
    if m == Mode::Reset {
        let mut part = vec![0u8; len.min(4096)];
        let _ = reader.read_exact(&mut part);
        // SO_LINGER 0: close sends a RST instead of a FIN.
        let sock = socket2_linger_zero(&conn);
        drop(sock);
        return;
    }
    let mut body = vec![0u8; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    match m {
        Mode::Hang => {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            return;
        }
        Mode::Status(code) => {
            let _ = (&conn).write_all(
                format!(
                    "HTTP/1.1 {code} Test\r\nContent-Length: 9\r\nConnection: close\r\n\r\nrefused\r\n"
                )
                .as_bytes(),
            );
            return;
        }
        _ => {}
    }
    let ctype = headers.get("content-type").cloned().unwrap_or_default();
    let Some(boundary) = ctype.split("boundary=").nth(1) else {
        let _ = (&conn).write_all(b"HTTP/1.1 400 Bad\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    let parts = multipart_parts(&body, boundary);
    let text = |name: &str| {
        parts
            .iter()
            .find(|p| p.0 == name)
            .map(|p| String::from_utf8_lossy(&p.2).into_owned())
            .unwrap_or_default()
    };
    let file = parts.iter().find(|p| p.0 == "file_uploaded");
    if let Some((_, file_name, data)) = file {
        uploads.lock().unwrap().push(Upload {
            label_id: text("label_id"),
            file_name: file_name.clone(),
            data: data.clone(),
            client_verify: headers.get("x-client-verify").cloned().unwrap_or_default(),
            client_dn: headers.get("x-client-dn").cloned().unwrap_or_default(),
        });
        let _ = (&conn)
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    } else {
        let _ = (&conn)
            .write_all(b"HTTP/1.1 400 Bad\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
    let _ = conn.shutdown(Shutdown::Both);
}

/// Sets SO_LINGER to zero so that closing the socket resets the connection.
fn socket2_linger_zero(conn: &TcpStream) -> TcpStream {
    use nix::sys::socket::{setsockopt, sockopt::Linger};
    let _ = setsockopt(
        conn,
        Linger,
        &nix::libc::linger {
            l_onoff: 1,
            l_linger: 0,
        },
    );
    conn.try_clone().unwrap()
}

/// (field name, file name, content) of each part of a multipart body.
pub fn multipart_parts(body: &[u8], boundary: &str) -> Vec<(String, String, Vec<u8>)> {
    let delim = format!("--{boundary}");
    let d = delim.as_bytes();
    let mut cuts = Vec::new();
    let mut i = 0;
    while i + d.len() <= body.len() {
        if &body[i..i + d.len()] == d {
            cuts.push(i);
            i += d.len();
        } else {
            i += 1;
        }
    }
    let mut out = Vec::new();
    for w in cuts.windows(2) {
        let part = &body[w[0] + d.len()..w[1]];
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let part = part.strip_suffix(b"\r\n").unwrap_or(part);
        let Some(split) = part.windows(4).position(|x| x == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&part[..split]).into_owned();
        let field = |key: &str| {
            head.split(&format!("{key}=\"")[..])
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("")
                .to_string()
        };
        out.push((
            field(" name"),
            field("filename"),
            part[split + 4..].to_vec(),
        ));
    }
    out
}

// ---------------------------------------------------------------- nginx

/// A free loopback port (bound and released; nginx binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Nginx {
    pub addr: IpAddr,
    pub port: u16,
    prefix: PathBuf,
    child: Option<Child>,
}

/// Which server certificate nginx presents.
#[derive(Clone, Copy, Debug)]
pub enum ServerCert {
    Good,
    WrongHost,
}

impl Nginx {
    /// Starts nginx on `port` (0 = pick one) in front of the receiver on `upstream`.
    pub fn start(
        nginx: &Path,
        prefix: &Path,
        pki: &Pki,
        cert: ServerCert,
        port: u16,
        upstream: u16,
    ) -> Nginx {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        Nginx::start_on(nginx, prefix, pki, cert, lo, port, upstream)
    }

    /// As [`Nginx::start`], listening on `addr` (IPv4) instead of loopback.
    pub fn start_on(
        nginx: &Path,
        prefix: &Path,
        pki: &Pki,
        cert: ServerCert,
        addr: IpAddr,
        port: u16,
        upstream: u16,
    ) -> Nginx {
        let port = if port == 0 { free_port() } else { port };
        fs::create_dir_all(prefix.join("logs")).unwrap();
        let (c, k) = match cert {
            ServerCert::Good => (&pki.server_cert, &pki.server_key),
            ServerCert::WrongHost => (&pki.wrong_host_cert, &pki.wrong_host_key),
        };
        let p = prefix.display();
        let conf = format!(
            r#"daemon off;
master_process off;
worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/logs/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {p}/logs/access.log;
    client_body_temp_path {p}/body;
    proxy_temp_path {p}/proxy;
    fastcgi_temp_path {p}/fastcgi;
    uwsgi_temp_path {p}/uwsgi;
    scgi_temp_path {p}/scgi;
    client_max_body_size 64m;
    server {{
        listen {addr}:{port} ssl;
        ssl_certificate {c};
        ssl_certificate_key {k};
        ssl_client_certificate {ca};
        ssl_verify_client on;
        ssl_verify_depth 2;
        ssl_protocols TLSv1.2 TLSv1.3;
        location = {UPLOAD_PATH} {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_request_buffering off;
            proxy_read_timeout 60s;
            proxy_set_header X-Client-Verify $ssl_client_verify;
            proxy_set_header X-Client-DN $ssl_client_s_dn;
        }}
        # Update bundles for `osect-sensor upgrade URL` (the same mutual TLS).
        location /updates/ {{
            alias {p}/updates/;
        }}
    }}
}}
"#,
            c = c.display(),
            k = k.display(),
            ca = pki.ca.display(),
        );
        let conf_path = prefix.join("nginx.conf");
        fs::write(&conf_path, conf).unwrap();
        let child = Command::new(nginx)
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(prefix.join("logs/error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut n = Nginx {
            addr,
            port,
            prefix: prefix.to_path_buf(),
            child: Some(child),
        };
        n.wait_listening();
        n
    }

    fn wait_listening(&mut self) {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if TcpStream::connect((self.addr, self.port)).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let mut err = String::new();
                if let Some(mut e) = self.child.as_mut().unwrap().stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!(
                    "nginx exited ({status}): {err}\n{}",
                    fs::read_to_string(self.prefix.join("logs/error.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("nginx did not listen on {} within 10 s", self.port);
    }

    pub fn url(&self) -> String {
        format!("https://{}:{}", self.addr, self.port)
    }

    /// Folder served as `/updates/` (created on first use).
    pub fn updates_dir(&self) -> PathBuf {
        let d = self.prefix.join("updates");
        fs::create_dir_all(&d).unwrap();
        d
    }

    pub fn error_log(&self) -> String {
        fs::read_to_string(self.prefix.join("logs/error.log")).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------- bundles and config

/// Makes `n` real minute bundles in `spool` (interval folders under `logs`), oldest first, each
/// with `size` bytes of incompressible-ish log; returns their paths.
pub fn make_bundles(
    logs: &Path,
    spool: &Path,
    first_minute: u32,
    n: u32,
    size: usize,
) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(first_minute);
    for m in first_minute..first_minute + n {
        let name = format!("realtime-2024-06-07-{:02}:{:02}:00", 10 + m / 60, m % 60);
        let dir = logs.join(&name);
        fs::create_dir_all(&dir).unwrap();
        let mut data = Vec::with_capacity(size);
        while data.len() < size {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.extend_from_slice(format!("{x:016x}\t{m}\n").as_bytes());
        }
        fs::write(dir.join("conn.log"), &data).unwrap();
        fs::write(dir.join("dns.log"), b"").unwrap();
        out.push(osect_sensor::spool::bundle_interval(&dir, spool, 3).unwrap());
    }
    out
}

/// The member names and contents of a bundle (proves it decodes: zstd, then tar).
pub fn decode_bundle(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let dec = zstd::Decoder::new(bytes).unwrap();
    let mut ar = tar::Archive::new(dec);
    let mut out = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.push((name, data));
    }
    out
}

/// Names (bare) of the bundles in a folder, sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".tar.zst"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A config file for the sensor: spool, logs, sensor.log under `root`, uploading to `url`;
/// `extra` is appended inside `[upload]`.
pub fn write_config(root: &Path, url: &str, upload_extra: &str) -> PathBuf {
    let p = root.join("sensor.toml");
    fs::write(
        &p,
        format!(
            "[output]\nlog_dir = \"{r}/logs\"\nsensor_log = \"{r}/sensor.log\"\n\
             [spool]\ndir = \"{r}/spool\"\n\
             [upload]\nurl = \"{url}\"\nlabel_id = \"line-7\"\ntimeout_s = 5\n{upload_extra}\n",
            r = root.display()
        ),
    )
    .unwrap();
    p
}

/// Runs `osect-sensor upload --config cfg --once`: (exit code, stderr).
pub fn upload_once(cfg: &Path) -> (i32, String) {
    let out = Command::new(sensor_bin())
        .args(["upload", "--once", "--config"])
        .arg(cfg)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
