//! Upload stage: queued bundles go to the analysis service over mutual TLS, oldest first.
//!
//! Each bundle is one HTTPS `multipart/form-data` POST (`label_id`, `file_uploaded`); only an
//! HTTP 200 marks it delivered, by moving it to `spool/sent/` (see [`crate::spool::queue`]).
//! A round stops at the first failure — the link is down, or the server refuses us — and the
//! daemon waits with exponential backoff before the next one; nothing is ever skipped, so order
//! is kept and a bundle is delivered at least once. The uploader runs on a thread of its own and
//! only reads finished files, so a stalled link never slows capture.

pub mod backoff;
pub mod history;
pub mod modem;
pub mod multipart;
mod socket;
pub mod tls;

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::config::Config;
use crate::spool::queue::{self, Delivered};
use crate::spool::SpoolError;
use crate::stats::Stats;
use backoff::Backoff;
use history::History;
pub use tls::TlsSetupError;

/// First wait after a failed round; doubles up to [`RETRY_MAX`].
pub const RETRY_MIN: Duration = Duration::from_secs(5);
/// Longest wait between rounds while the link is down.
pub const RETRY_MAX: Duration = Duration::from_secs(600);
/// How long an idle daemon waits for a new bundle before looking at the spool anyway.
pub const IDLE_POLL: Duration = Duration::from_secs(30);
/// How long the modem has to answer `AT`.
pub const MODEM_TIMEOUT: Duration = Duration::from_secs(5);
/// Most bytes of a refusal's body quoted in the log.
const QUOTED_BODY: u64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The configuration cannot work (no URL, unreadable certificate...): fix and restart.
    #[error("{key}: {message}")]
    Setup { key: &'static str, message: String },
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    #[error("spool: {0}")]
    Spool(#[from] SpoolError),
    /// The modem did not answer; the round is postponed.
    #[error("upload postponed, modem not ready: {0}")]
    ModemNotReady(String),
    /// One bundle could not be delivered; it stays queued.
    #[error("{bundle}: not delivered: {reason}")]
    Send { bundle: String, reason: String },
}

impl UploadError {
    /// Whether this is a configuration problem (exit code 2) rather than a runtime one.
    pub fn is_setup(&self) -> bool {
        matches!(self, UploadError::Setup { .. } | UploadError::Tls(_))
    }
}

/// Everything the uploader needs, from the config file plus timing knobs that tests shorten.
#[derive(Clone, Debug)]
pub struct UploadSettings {
    pub url: String,
    pub label_id: String,
    /// Longest a request may stall (connect, a write, or waiting for a read).
    pub timeout: Duration,
    /// Bandwidth cap for the body, bytes per second.
    pub max_rate: Option<u64>,
    pub modem_device: Option<PathBuf>,
    pub modem_timeout: Duration,
    pub keep_sent: bool,
    /// Interval folders, deleted with their bundle when `keep_sent` is off.
    pub log_dir: Option<PathBuf>,
    pub retry_min: Duration,
    pub retry_max: Duration,
    pub idle_poll: Duration,
}

impl UploadSettings {
    pub fn from_config(cfg: &Config) -> Result<UploadSettings, UploadError> {
        let up = &cfg.upload;
        let url = up.endpoint().ok_or(UploadError::Setup {
            key: "upload.url",
            message: "not set: there is nowhere to upload to".into(),
        })?;
        Ok(UploadSettings {
            url,
            label_id: up.label_id.clone(),
            timeout: Duration::from_secs(u64::from(up.timeout_s)),
            max_rate: (up.max_rate_kbps > 0).then(|| u64::from(up.max_rate_kbps) * 1000 / 8),
            modem_device: up.modem_device.clone(),
            modem_timeout: MODEM_TIMEOUT,
            keep_sent: up.keep_sent,
            log_dir: Some(cfg.output.log_dir.clone()),
            retry_min: RETRY_MIN,
            retry_max: RETRY_MAX,
            idle_poll: IDLE_POLL,
        })
    }
}

/// What a round delivered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoundReport {
    pub delivered: usize,
    pub bytes: u64,
}

pub struct Uploader {
    agent: ureq::Agent,
    settings: UploadSettings,
    spool_dir: PathBuf,
    history: History,
    stats: Arc<Stats>,
}

/// Reads and checks the TLS files of the config (for a clear exit 2 before anything starts).
pub fn tls_config(cfg: &Config) -> Result<rustls::ClientConfig, TlsSetupError> {
    let up = &cfg.upload;
    tls::client_config(
        up.ca_file.as_deref(),
        up.client_cert.as_deref(),
        up.client_key.as_deref(),
    )
}

impl Uploader {
    /// The uploader of `cfg` for the spool `cfg.spool_dir()`.
    pub fn from_config(cfg: &Config, stats: Arc<Stats>) -> Result<Uploader, UploadError> {
        let settings = UploadSettings::from_config(cfg)?;
        let tls = tls_config(cfg)?;
        Ok(Uploader::new(settings, tls, cfg.spool_dir(), stats))
    }

    pub fn new(
        settings: UploadSettings,
        tls: rustls::ClientConfig,
        spool_dir: &Path,
        stats: Arc<Stats>,
    ) -> Uploader {
        let agent = ureq::AgentBuilder::new()
            .tls_connector(socket::connector(tls))
            .timeout_connect(settings.timeout)
            .timeout_read(settings.timeout)
            .timeout_write(settings.timeout)
            // A redirect would turn the POST into a GET elsewhere; the endpoint is fixed.
            .redirects(0)
            .user_agent(concat!("osect-sensor/", env!("CARGO_PKG_VERSION")))
            .build();
        Uploader {
            agent,
            settings,
            spool_dir: spool_dir.to_path_buf(),
            history: History::new(spool_dir),
            stats,
        }
    }

    /// One round: every queued bundle, oldest first, until the queue is empty, a bundle fails
    /// (the round stops there: later bundles would fail the same way, and order is kept), or
    /// `stop` is set. The modem, when configured, is asked first.
    pub fn send_queued(&mut self, stop: &AtomicBool) -> Result<RoundReport, UploadError> {
        let mut report = RoundReport::default();
        let queued = queue::unsent_bundles(&self.spool_dir)?;
        if queued.is_empty() {
            return Ok(report);
        }
        if let Some(dev) = &self.settings.modem_device {
            if let Err(why) = modem::check(dev, self.settings.modem_timeout) {
                Stats::inc(&self.stats.upload_postponed_modem);
                self.history.record(&format!("postponed {why}"));
                return Err(UploadError::ModemNotReady(why));
            }
        }
        for bundle in queued {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if let Some(bytes) = self.send_bundle(&bundle)? {
                report.delivered += 1;
                report.bytes += bytes;
            }
        }
        Ok(report)
    }

    /// Delivers one bundle and marks it sent; `Ok(None)` when it was gone already (retention
    /// dropped it), `Ok(Some(bytes))` when delivered.
    pub fn send_bundle(&mut self, bundle: &Path) -> Result<Option<u64>, UploadError> {
        let name = bundle
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_owned();
        let fail = |reason: String| UploadError::Send {
            bundle: name.clone(),
            reason,
        };
        let file = match File::open(bundle) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(fail(format!("cannot read it: {e}"))),
        };
        let len = file
            .metadata()
            .map_err(|e| fail(format!("cannot read it: {e}")))?
            .len();
        let boundary = format!(
            "osect-{:016x}{:016x}",
            backoff::random_u64(),
            backoff::random_u64()
        );
        let form = multipart::form(&self.settings.label_id, &name, file, len, &boundary);
        let body: Box<dyn Read> = match self.settings.max_rate {
            Some(rate) => Box::new(multipart::Throttled::new(form.body, rate)),
            None => Box::new(form.body),
        };
        let started = Instant::now();
        let result = self
            .agent
            .post(&self.settings.url)
            .set("Content-Type", &form.content_type)
            .set("Content-Length", &form.len.to_string())
            .send(body);
        let outcome = match result {
            Ok(resp) if resp.status() == 200 => {
                // Read the answer to the end so the connection can be reused.
                let _ = io::copy(&mut resp.into_reader().take(1 << 20), &mut io::sink());
                Ok(())
            }
            Ok(resp) => Err(format!(
                "HTTP {} (only 200 counts as delivered)",
                resp.status()
            )),
            Err(ureq::Error::Status(code, resp)) => {
                let mut quoted = String::new();
                let _ = resp
                    .into_reader()
                    .take(QUOTED_BODY)
                    .read_to_string(&mut quoted);
                Err(format!("server answered HTTP {code}: {}", gist(&quoted)))
            }
            Err(ureq::Error::Transport(t)) => Err(describe_transport(&t)),
        };
        let secs = started.elapsed().as_secs_f64();
        if let Err(reason) = outcome {
            Stats::inc(&self.stats.upload_failures);
            self.history.record(&format!(
                "failed {name} {len} bytes after {secs:.2} s: {reason}"
            ));
            return Err(fail(reason));
        }
        let fate = queue::mark_sent(
            &self.spool_dir,
            bundle,
            self.settings.keep_sent,
            self.settings.log_dir.as_deref(),
        )?;
        Stats::inc(&self.stats.bundles_uploaded);
        Stats::add(&self.stats.upload_bytes, len);
        let note = match fate {
            Delivered::Kept => "",
            Delivered::Deleted => " (deleted)",
            Delivered::Vanished => " (already removed by retention)",
        };
        self.history
            .record(&format!("sent {name} {len} bytes in {secs:.2} s{note}"));
        log::info!("uploaded {name} ({len} bytes, {secs:.2} s)");
        Ok(Some(len))
    }

    /// The daemon: rounds until `stop`, waiting for `wake` (a new bundle) or `idle_poll` when
    /// the queue is empty, and backing off after a failed round.
    pub fn run(mut self, stop: &AtomicBool, wake: Option<Receiver<()>>) {
        let mut backoff = Backoff::new(self.settings.retry_min, self.settings.retry_max);
        let mut failing_since: Option<Instant> = None;
        while !stop.load(Ordering::Relaxed) {
            match self.send_queued(stop) {
                Ok(r) => {
                    backoff.reset();
                    if let Some(t) = failing_since.take() {
                        log::info!(
                            "upload works again after {:.0} s",
                            t.elapsed().as_secs_f64()
                        );
                    }
                    if r.delivered == 0 {
                        self.idle(stop, wake.as_ref());
                    }
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    if e.is_setup() {
                        log::error!("upload: {e}");
                    } else {
                        log::warn!("upload: {e}; next try in {:.1} s", delay.as_secs_f64());
                    }
                    failing_since.get_or_insert_with(Instant::now);
                    sleep_unless_stopped(stop, delay);
                }
            }
        }
    }

    fn idle(&self, stop: &AtomicBool, wake: Option<&Receiver<()>>) {
        let until = Instant::now() + self.settings.idle_poll;
        while !stop.load(Ordering::Relaxed) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let slice = left.min(STOP_CHECK);
            match wake {
                Some(rx) => match rx.recv_timeout(slice) {
                    Ok(()) => return,
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => std::thread::sleep(slice),
                },
                None => std::thread::sleep(slice),
            }
        }
    }
}

/// How often a waiting uploader looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(200);

fn sleep_unless_stopped(stop: &AtomicBool, d: Duration) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(STOP_CHECK));
    }
}

/// The gist of an error page: its HTML title (nginx says "400 No required SSL certificate was
/// sent" there), else the text on one line.
fn gist(body: &str) -> String {
    let title = body
        .split_once("<title>")
        .and_then(|(_, rest)| rest.split_once("</title>"))
        .map(|(t, _)| t);
    title
        .unwrap_or(body)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A transport failure in words an operator can act on: the TLS reason (unknown CA, expired,
/// wrong host name), a timeout, a refused connection.
pub(crate) fn describe_transport(t: &ureq::Transport) -> String {
    let mut msg = t.to_string();
    let mut stalled = false;
    let mut src = std::error::Error::source(t);
    while let Some(s) = src {
        let s_text = s.to_string();
        if !msg.contains(&s_text) {
            msg.push_str(": ");
            msg.push_str(&s_text);
        }
        // A write that hit the socket timeout surfaces as EAGAIN ("Resource temporarily
        // unavailable"), which does not tell an operator that the link stalled.
        stalled |= s.downcast_ref::<io::Error>().is_some_and(|e| {
            matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            )
        });
        src = s.source();
    }
    if stalled && !msg.contains("timed out") {
        msg.insert_str(0, "timed out, nothing moved within upload.timeout_s: ");
    }
    msg
}
