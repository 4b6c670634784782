//! Wiring of the stages for `replay` and `run`.
//!
//! The packet path (decode → flow → analyzers) runs on the calling thread and owns all
//! per-packet state; the log writer and the spool run on threads of their own and are fed
//! through bounded channels. Time is packet time: intervals and timeouts advance with the
//! packets, so `replay --bundles` and live capture cut the same rows into the same intervals.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::analyzers::{Analyzers, Record, RecordSink};
use crate::capture::live::LiveCapture;
use crate::capture::reader::{CaptureReader, PacketBatch};
use crate::capture::{CaptureError, RawPacket};
use crate::config::Config;
use crate::decode::detached::DecodedBatch;
use crate::decode::{Decoded, Decoder};
use crate::detect::stage::{DetectLink, Work};
use crate::detect::Detector;
use crate::flow::FlowTable;
use crate::logs::zeek::Utf8Policy;
use crate::logs::{self, LogMsg, OutputMode};
use crate::spool::retention::{Retention, RetentionPolicy, Statvfs};
use crate::spool::worker::SpoolWorker;
use crate::stats::Stats;
use crate::ts::{Span, Ts};
use crate::upload::Uploader;

/// Capacity of the record channel between the packet path and the writer, in batches. Two
/// thousand records of slack absorb bursts; more only adds to peak RSS when the writer lags
/// (a full table evicting on every new connection).
const LOG_QUEUE: usize = 8;
/// Most empty intervals written for one silent stretch (a day of minutes).
const MAX_EMPTY_INTERVALS: i64 = 1440;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("output {path}: {source}")]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the log writer stopped unexpectedly")]
    WriterGone,
    #[error("the detection thread stopped unexpectedly")]
    DetectGone,
    #[error("upload: {0}")]
    Upload(#[from] crate::upload::UploadError),
    #[error("rules: {0}")]
    Rules(String),
}

/// Most connections with application-layer state at once (bounded further by the flow table).
const MAX_APP_CONNS: usize = 1 << 16;

/// Records per message to the writer.
const BATCH: usize = 256;

mod detect_thread;
use detect_thread::Downstream;

/// Where the packet thread's log messages go: straight to the writer, or through the
/// detection thread (which puts alerts in between, in order).
#[derive(Clone)]
enum LogTx {
    Direct(Sender<LogMsg>),
    Staged(Sender<Downstream>),
}

impl LogTx {
    // A send fails only when the writer is gone, which the writer's own result reports.
    fn send(&self, m: LogMsg) {
        match self {
            LogTx::Direct(tx) => drop(tx.send(m)),
            LogTx::Staged(tx) => drop(tx.send(Downstream::Log(m))),
        }
    }

    /// A counters line (through the detection thread, which adds its own counters to it).
    fn counters(&self, snap: crate::stats::StatsSnapshot) {
        match self {
            LogTx::Direct(tx) => drop(tx.send(LogMsg::Counters(snap.to_line()))),
            LogTx::Staged(tx) => drop(tx.send(Downstream::Counters(Box::new(snap)))),
        }
    }
}

/// Sends records to the log writer in bounded batches.
struct BatchSender {
    tx: LogTx,
    batch: Vec<Record>,
    /// Batches the writer is done with: their records are dropped on this thread, which
    /// allocated them (see [`logs::run_writer`]), and their buffers reused. (The detection
    /// thread's alerts are few: its batches go without.)
    spent: Option<Receiver<Vec<Record>>>,
}

impl RecordSink for BatchSender {
    fn record(&mut self, r: Record) {
        self.batch.push(r);
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if !self.batch.is_empty() {
            let mut next = None;
            while let Some(Ok(mut v)) = self.spent.as_ref().map(Receiver::try_recv) {
                v.clear();
                next = Some(v);
            }
            let next = next.unwrap_or_else(|| Vec::with_capacity(BATCH));
            let full = std::mem::replace(&mut self.batch, next);
            self.tx.send(LogMsg::Records(full));
        }
    }
}

/// The packet path's end of the detection thread (see [`detect_thread`]).
struct Handoff {
    tx: Sender<Downstream>,
    /// Work the detection thread is done with, emptied, for reuse.
    spare: Receiver<Work>,
    /// The batch being processed (shared with the detection thread until it is done with the
    /// batch's items).
    batch: Option<Arc<PacketBatch>>,
}

/// Interval bookkeeping on packet time.
struct Intervals {
    len: Span,
    start: Option<Ts>,
}

/// flow → analyzers, plus the interval clock, for frames the capture reader decoded; sends
/// records to the writer.
pub struct PacketPath {
    flows: FlowTable,
    analyzers: Analyzers,
    intervals: Option<Intervals>,
    tx: LogTx,
    /// With rules loaded: the hand-over to the detection thread.
    detect: Option<Handoff>,
    stats: Arc<Stats>,
    /// Frames and bytes counted in but not yet added to `stats` (see [`PacketPath::publish`]).
    unpublished: (u64, u64),
    /// Frames read so far, this one included.
    frames: u64,
}

impl PacketPath {
    fn new(
        cfg: &Config,
        stats: Arc<Stats>,
        (tx, spent): (LogTx, Receiver<Vec<Record>>),
        interval: Option<Span>,
        detect: Option<DetectChannels>,
    ) -> PacketPath {
        let detect = detect.map(|(tx, spare)| Handoff {
            tx,
            spare,
            batch: None,
        });
        let local = cfg.conn.local_prefixes().unwrap_or_default();
        let mut path = PacketPath {
            flows: FlowTable::new(cfg.flow.clone(), cfg.conn.uid_seed, stats.clone()),
            analyzers: Analyzers::with_slots(
                local,
                cfg.flow.max_flows,
                cfg.flow.max_flows.min(MAX_APP_CONNS),
                stats.clone(),
                Box::new(BatchSender {
                    tx: tx.clone(),
                    batch: Vec::with_capacity(BATCH),
                    spent: Some(spent),
                }),
            )
            .with_frame_logs(frame_logs(cfg, &stats))
            .with_enabled(cfg.analyzers.enabled),
            intervals: interval.map(|len| Intervals { len, start: None }),
            tx,
            detect,
            stats,
            unpublished: (0, 0),
            frames: 0,
        };
        if path.detect.is_some() {
            path.analyzers.detect = Some(DetectLink::default());
        }
        path
    }

    /// Hands the detection items so far to the detection thread; `last`: with the batch
    /// (the packet path is done with it).
    fn flush_detect(&mut self, last: bool) {
        let (Some(h), Some(link)) = (self.detect.as_mut(), self.analyzers.detect.as_mut()) else {
            return;
        };
        if link.is_empty() && !(last && h.batch.is_some()) {
            return;
        }
        let work = link.take(h.spare.try_recv().unwrap_or_default());
        let batch = if last {
            h.batch.take()
        } else {
            h.batch.clone()
        };
        let _ = h.tx.send(Downstream::Detect { batch, work, last });
    }

    /// Closes intervals that end at or before `now` and opens the one holding `now`.
    fn roll_intervals(&mut self, now: Ts) {
        let Some(iv) = self.intervals.as_mut() else {
            return;
        };
        let len = iv.len;
        let Some(mut start) = iv.start else {
            let s = now.floor_to(len);
            iv.start = Some(s);
            self.tx.send(LogMsg::OpenInterval(s));
            return;
        };
        let mut empties = 0;
        while now >= start.plus(len) {
            let boundary = start.plus(len);
            self.flows.expire_exact(boundary, &mut self.analyzers);
            self.analyzers.advance(boundary);
            self.flows.interim_rows(boundary, len, &mut self.analyzers);
            self.analyzers.flush();
            self.flush_detect(false);
            self.publish();
            self.tx.counters(self.stats.snapshot());
            self.tx.send(LogMsg::CloseInterval);
            empties += 1;
            start = if empties >= MAX_EMPTY_INTERVALS {
                now.floor_to(len)
            } else {
                boundary
            };
            self.tx.send(LogMsg::OpenInterval(start));
        }
        if let Some(iv) = self.intervals.as_mut() {
            iv.start = Some(start);
        }
    }

    /// Adds the frames counted in since the last call to the shared counters. Per batch and
    /// before every counters line rather than per frame: two atomic additions per frame on a
    /// cache line other threads write too cost more than some packets' processing.
    fn publish(&mut self) {
        let (frames, bytes) = std::mem::take(&mut self.unpublished);
        if frames > 0 {
            Stats::add(&self.stats.packets_read, frames);
            Stats::add(&self.stats.bytes_read, bytes);
        }
    }

    /// Counts a frame in and moves the clocks to it; the packet time to advance to.
    fn arrive(&mut self, p: &RawPacket<'_>) -> Ts {
        self.unpublished.0 += 1;
        self.unpublished.1 += p.data.len() as u64;
        self.frames += 1;
        // Packets going back in time (reordered captures) do not move the clocks backwards.
        let ts = p.ts.max(self.flows.now());
        self.roll_intervals(ts);
        ts
    }

    /// Frame `i` of `decoded` (`p` is its bytes) through the packet path.
    fn on_decoded(&mut self, p: RawPacket<'_>, decoded: &DecodedBatch, i: usize) {
        let ts = self.arrive(&p);
        if let Some(link) = self.analyzers.detect.as_mut() {
            link.frame(i as u32, self.frames);
        }
        let mut d = Decoded::new(p.ts);
        if decoded.get_into(i, p.data, &mut d).is_ok() {
            self.analyzers.advance(ts);
            self.analyzers.on_frame(&d);
            self.flows.process(&d, &mut self.analyzers);
        }
    }

    /// A reader batch: [`PacketPath::on_decoded`] on each frame, with look-ahead, so that
    /// memory loads are in flight while earlier packets are being processed instead of
    /// stalling the packet path one after the other: the frame bytes three packets ahead
    /// (written by the reader thread on another core), the flow index cell two ahead, and the
    /// flow entry one ahead.
    pub fn on_batch<'b>(&mut self, batch: &'b PacketBatch) {
        let decoded = batch.decoded();
        let hint = |flows: &FlowTable, i: usize| {
            decoded
                .five_tuple(i)
                .map(|t| (flows.prefetch_cell(&t), t.proto == 6))
        };
        let touch = |p: Option<(usize, RawPacket<'b>)>| {
            if let Some(b) = p.as_ref().and_then(|p| p.1.data.first()) {
                crate::flow::prefetch(b);
            }
            p
        };
        let mut packets = batch.packets().enumerate();
        let mut cur = touch(packets.next());
        let mut next = touch(packets.next()).map(|p| (p, hint(&self.flows, p.0)));
        let mut after = touch(packets.next());
        while let Some((i, p)) = cur {
            if let Some((_, Some((hash, tcp)))) = next {
                self.flows.prefetch_entry(hash, tcp);
            }
            let after_hint = after.map(|p| (p, hint(&self.flows, p.0)));
            let later = touch(packets.next());
            self.on_decoded(p, decoded, i);
            cur = next.map(|(p, _)| p);
            next = after_hint;
            after = later;
        }
        self.publish();
    }

    /// [`PacketPath::on_batch`] on a batch of its own; gives the batch back when it can be
    /// reused now, keeps it for the detection thread otherwise.
    pub fn take_batch(&mut self, batch: PacketBatch) -> Option<PacketBatch> {
        if self.detect.is_none() {
            self.on_batch(&batch);
            return Some(batch);
        }
        let batch = Arc::new(batch);
        if let Some(h) = self.detect.as_mut() {
            h.batch = Some(batch.clone());
        }
        self.on_batch(&batch);
        // The hand-over's reference goes in the last message, the only one left by then, so
        // that the detection thread can give the batch back to the reader.
        drop(batch);
        self.flush_detect(true);
        None
    }

    /// Advances time without a packet (live capture on a quiet link).
    pub fn tick(&mut self, now: Ts) {
        if now <= self.flows.now() {
            return;
        }
        self.roll_intervals(now);
        self.flows.advance(now, &mut self.analyzers);
        self.analyzers.advance(now);
        self.analyzers.flush();
        self.flush_detect(false);
    }

    /// End of input: every connection gets its row, the last interval is closed.
    pub fn finish(mut self) {
        self.flows.flush_all(&mut self.analyzers);
        self.analyzers.finish();
        self.flush_detect(false);
        self.publish();
        self.tx.counters(self.stats.snapshot());
        if self.intervals.is_some() {
            self.tx.send(LogMsg::CloseInterval);
        }
    }
}

/// p0f-k.log and yaf_flow.log as configured; p0f-k.log is off, with a warning, when the
/// default fingerprint database is not installed.
fn frame_logs(cfg: &Config, stats: &Arc<Stats>) -> crate::analyzers::frame_logs::FrameLogs {
    if cfg.analyzers.enabled && cfg.p0f.database.is_none() {
        log::warn!(
            "p0f-k.log stays empty: no fingerprint database ({} not found; set p0f.fp_file)",
            cfg.p0f.fp_path().0.display()
        );
    }
    crate::analyzers::frame_logs::FrameLogs::new(&cfg.p0f, &cfg.yaf, stats.clone())
}

fn tz_of(cfg: &Config) -> chrono_tz::Tz {
    cfg.output.timezone.parse().unwrap_or(chrono_tz::UTC)
}

/// The packet path's ends of the writer's channels: records out, written batches back.
type WriterLink = (Sender<LogMsg>, Receiver<Vec<Record>>);

/// Messages the detection thread may hold back from the packet path: a batch's items or a
/// batch of records each.
const DETECT_QUEUE: usize = LOG_QUEUE + 8;

/// What runs below the packet path: the log writer and, with rules loaded, the detection
/// thread in front of it.
struct Downstreams {
    writer: JoinHandle<std::io::Result<()>>,
    detect_thread: Option<JoinHandle<()>>,
}

/// The packet path's ends of the detection thread's channels: work out, emptied work back.
type DetectChannels = (Sender<Downstream>, Receiver<Work>);

/// The packet path's ends of the channels below it: log messages out and written record
/// batches back, and the detection thread's channels when there is one.
type PathLinks = ((LogTx, Receiver<Vec<Record>>), Option<DetectChannels>);

impl Downstreams {
    fn spawn(
        mode: OutputMode,
        cfg: &Config,
        stats: &Arc<Stats>,
        spool_tx: Option<Sender<PathBuf>>,
        detector: Option<Detector>,
        reader: &mut CaptureReader,
    ) -> (Downstreams, PathLinks) {
        let ((wtx, spent), writer) = spawn_writer(mode, cfg, stats.clone(), spool_tx);
        match detector {
            None => (
                Downstreams {
                    writer,
                    detect_thread: None,
                },
                ((LogTx::Direct(wtx), spent), None),
            ),
            Some(d) => {
                let (dtx, drx) = bounded(DETECT_QUEUE);
                // The detection thread holds a batch while the packet path works on the next.
                reader.add_batch();
                // Emptied work for reuse: one per batch in flight and a few partial ones.
                let (spare_tx, spare_rx) = bounded(DETECT_QUEUE);
                let h =
                    detect_thread::spawn(d, drx, wtx, reader.recycler(), spare_tx, stats.clone());
                (
                    Downstreams {
                        writer,
                        detect_thread: Some(h),
                    },
                    ((LogTx::Staged(dtx.clone()), spent), Some((dtx, spare_rx))),
                )
            }
        }
    }

    /// Waits for the threads after the packet path (every sender) is gone.
    fn join(self) -> Result<std::io::Result<()>, PipelineError> {
        if let Some(h) = self.detect_thread {
            h.join().map_err(|_| PipelineError::DetectGone)?;
        }
        self.writer.join().map_err(|_| PipelineError::WriterGone)
    }
}

fn spawn_writer(
    mode: OutputMode,
    cfg: &Config,
    stats: Arc<Stats>,
    spool_tx: Option<Sender<PathBuf>>,
) -> (WriterLink, JoinHandle<std::io::Result<()>>) {
    let (tx, rx) = bounded(LOG_QUEUE);
    // One more than can be in flight, so the writer never has to drop a batch itself.
    let (spent_tx, spent_rx) = bounded(LOG_QUEUE + 2);
    let tz = tz_of(cfg);
    let h = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || {
            logs::run_writer(
                rx,
                mode,
                Utf8Policy::PassValid,
                tz,
                stats,
                spool_tx,
                Some(spent_tx),
            )
        })
        .expect("spawning the log writer");
    ((tx, spent_rx), h)
}

/// The spool thread: bundles every finished interval folder it is told about (and, for `run`,
/// keeps retention going and wakes the uploader).
fn spawn_spool(worker: SpoolWorker) -> (Sender<PathBuf>, JoinHandle<()>) {
    let (tx, rx) = bounded::<PathBuf>(1024);
    let h = std::thread::Builder::new()
        .name("spool".into())
        .spawn(move || worker.run(rx))
        .expect("spawning the spool thread");
    (tx, h)
}

/// A spool worker that only bundles (replay).
fn plain_spool(spool_dir: PathBuf, cfg: &Config, stats: Arc<Stats>) -> SpoolWorker {
    SpoolWorker {
        spool_dir,
        zstd_level: cfg.output.zstd_level,
        stats,
        retention: None,
        wake: None,
        tick: std::time::Duration::from_secs(u64::from(cfg.output.interval_secs)),
    }
}

/// Loads the configured rule set, logging the load report; `Ok(None)` without rules.
fn load_detector(cfg: &Config, stats: &Arc<Stats>) -> Result<Option<Detector>, PipelineError> {
    let d = Detector::from_config(&cfg.detect, stats.clone()).map_err(PipelineError::Rules)?;
    if let Some(d) = &d {
        log_load_report(d, "loaded");
    }
    Ok(d)
}

fn log_load_report(d: &Detector, what: &str) {
    let r = d.report();
    for e in &r.invalid {
        log::warn!("rules: invalid: {e}");
    }
    for (reason, n) in &r.skipped {
        log::info!("rules: skipped {n} ({reason})");
    }
    log::info!(
        "rules: {what} {} of {} enabled rules from {} files in {} ms",
        r.loaded,
        r.enabled,
        r.files.len(),
        r.load_millis
    );
}

/// Rule reloads on SIGHUP for `run`: the rule files named by `detect.rules` are read again and
/// compiled on a thread of its own (ET Open takes a few tenths of a second), and the packet
/// path swaps the new set in between two batches, so no packet waits for the load. The old
/// set is freed on another thread as well (tens of milliseconds for ET Open). A set that fails
/// to load leaves the running one in place. Detection state kept per connection (flowbits,
/// stream windows, thresholds) starts afresh with the new set.
struct RuleReloader {
    requested: Arc<AtomicBool>,
    detect: crate::config::DetectSection,
    interface: Option<String>,
    stats: Arc<Stats>,
    loading: Option<Receiver<Result<Option<Detector>, String>>>,
}

impl RuleReloader {
    /// Starts a load when one was asked for (and none is running); hands back a finished one.
    fn poll(&mut self) -> Option<Result<Option<Detector>, String>> {
        if self.requested.swap(false, Ordering::Relaxed) {
            if self.loading.is_some() {
                log::info!("rules: reload requested while one is running; it covers this one");
            } else {
                log::info!("rules: reloading (SIGHUP)");
                let (tx, rx) = bounded(1);
                let (detect, stats) = (self.detect.clone(), self.stats.clone());
                let interface = self.interface.clone();
                let spawned = std::thread::Builder::new()
                    .name("rules-reload".into())
                    .spawn(move || {
                        let r = Detector::from_config(&detect, stats).map(|d| {
                            d.map(|mut d| {
                                if let Some(i) = &interface {
                                    d.set_interface(i);
                                }
                                d
                            })
                        });
                        let _ = tx.send(r);
                    });
                match spawned {
                    Ok(_) => self.loading = Some(rx),
                    Err(e) => log::error!("rules: cannot start the reload: {e}"),
                }
            }
        }
        let rx = self.loading.as_ref()?;
        match rx.try_recv() {
            Ok(r) => {
                self.loading = None;
                Some(r)
            }
            Err(crossbeam_channel::TryRecvError::Empty) => None,
            Err(crossbeam_channel::TryRecvError::Disconnected) => {
                self.loading = None;
                Some(Err("the loader stopped without a result".into()))
            }
        }
    }
}

impl PacketPath {
    /// Puts a reloaded rule set (or none) in place of the running one.
    fn swap_rules(&mut self, loaded: Result<Option<Detector>, String>) {
        match loaded {
            Ok(new) => {
                match &new {
                    Some(d) => {
                        log_load_report(d, "reloaded");
                        Stats::inc(&self.stats.rules_reloaded);
                    }
                    None => {
                        log::warn!("rules: reloaded: no rules configured, detection is off");
                        Stats::inc(&self.stats.rules_reloaded);
                    }
                }
                match &self.detect {
                    // In order: packets before this point meet the old set, after it the new.
                    Some(h) => {
                        let _ = h.tx.send(Downstream::Rules(new.map(Box::new)));
                    }
                    None if new.is_some() => {
                        log::warn!("rules: detection was off at start; restart to turn it on")
                    }
                    None => {}
                }
            }
            Err(e) => {
                Stats::inc(&self.stats.rules_reload_failed);
                log::error!("rules: reload failed, the running rules stay: {e}");
            }
        }
    }
}

/// Result of a replay: counters and the first capture error, if any.
pub struct ReplayReport {
    pub stats: crate::stats::StatsSnapshot,
    pub errors: Vec<CaptureError>,
    pub entry_size: usize,
}

/// `replay`: reads the files in order and writes logs into `out` (one folder), or, with
/// `bundles`, interval folders under `out/logs` and bundles under `out/spool`.
pub fn replay(
    files: &[PathBuf],
    out: &Path,
    cfg: &Config,
    bundles: bool,
) -> Result<ReplayReport, PipelineError> {
    let stats = Arc::new(Stats::default());
    let mut detector = load_detector(cfg, &stats)?;
    if let Some(d) = detector.as_mut() {
        d.set_pcap_cnt(true);
    }
    let (mode, spool) = if bundles {
        let log_dir = out.join("logs");
        let spool_dir = cfg.spool.dir.clone().unwrap_or_else(|| out.join("spool"));
        for d in [&log_dir, &spool_dir] {
            std::fs::create_dir_all(d).map_err(|source| PipelineError::Output {
                path: d.clone(),
                source,
            })?;
        }
        let (stx, sh) = spawn_spool(plain_spool(spool_dir, cfg, stats.clone()));
        (OutputMode::Intervals { log_dir }, Some((stx, sh)))
    } else {
        (OutputMode::Single(out.to_path_buf()), None)
    };
    let decoder = Decoder::new(cfg.decode.to_decode_config(), stats.clone());
    let mut reader = CaptureReader::files(files.to_vec(), decoder);
    let (down, (link, detect)) = Downstreams::spawn(
        mode,
        cfg,
        &stats,
        spool.as_ref().map(|s| s.0.clone()),
        detector,
        &mut reader,
    );
    let interval = bundles.then(|| Span::from_secs(cfg.output.interval_secs as i64));
    let mut path = PacketPath::new(cfg, stats.clone(), link, interval, detect);
    let mut errors = Vec::new();
    while let Some(mut batch) = reader.next_batch() {
        if let Some(e) = batch.error.take() {
            errors.push(e);
        }
        if let Some(batch) = path.take_batch(batch) {
            reader.recycle(batch);
        }
    }
    drop(reader);
    path.finish();
    // Dropping the packet path closes the channels; the detection thread and the writer
    // then finish.
    let written = down.join()?;
    written.map_err(|source| PipelineError::Output {
        path: out.to_path_buf(),
        source,
    })?;
    if let Some((stx, sh)) = spool {
        drop(stx);
        let _ = sh.join();
    }
    Ok(ReplayReport {
        stats: stats.snapshot(),
        errors,
        entry_size: FlowTable::entry_size(),
    })
}

fn wall_now() -> Ts {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Ts(d.as_micros() as i64)
}

/// `run`: live capture until `stop` is set (SIGTERM/SIGINT), then flush everything; the rule
/// files are read again whenever `reload` is set (SIGHUP).
pub fn run_live(
    cfg: &Config,
    stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
) -> Result<crate::stats::StatsSnapshot, PipelineError> {
    let stats = Arc::new(Stats::default());
    let mut detector = load_detector(cfg, &stats)?;
    if let (Some(d), Some(i)) = (detector.as_mut(), cfg.capture.interface.as_deref()) {
        d.set_interface(i);
    }
    let spool_dir = cfg.spool_dir().to_path_buf();
    for d in [&cfg.output.log_dir, &spool_dir] {
        std::fs::create_dir_all(d).map_err(|source| PipelineError::Output {
            path: d.clone(),
            source,
        })?;
    }
    let cap = LiveCapture::open(&cfg.capture)?;
    let (wake_tx, wake_rx) = bounded::<()>(1);
    let mut worker = plain_spool(spool_dir.clone(), cfg, stats.clone());
    worker.retention = Some(Retention::new(
        RetentionPolicy::from(&cfg.retention),
        &cfg.output.log_dir,
        &spool_dir,
        Box::new(Statvfs),
        stats.clone(),
    ));
    worker.wake = Some(wake_tx);
    let (stx, sh) = spawn_spool(worker);
    recover_after_crash(&cfg.output.log_dir, &spool_dir, &stx);
    // Upload runs apart from the packet path and is not waited for at exit: an upload cut
    // short is simply sent again at the next start.
    if cfg.upload.url.is_some() {
        let uploader = Uploader::from_config(cfg, stats.clone())?;
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("upload".into())
            .spawn(move || uploader.run(&stop, Some(wake_rx)))
            .expect("spawning the upload thread");
    }
    let decoder = Decoder::new(cfg.decode.to_decode_config(), stats.clone());
    let mut reader = CaptureReader::live(cap, decoder, stop, stats.clone());
    let (down, (link, detect)) = Downstreams::spawn(
        OutputMode::Intervals {
            log_dir: cfg.output.log_dir.clone(),
        },
        cfg,
        &stats,
        Some(stx.clone()),
        detector,
        &mut reader,
    );
    let interval = Span::from_secs(cfg.output.interval_secs as i64);
    let mut path = PacketPath::new(cfg, stats.clone(), link, Some(interval), detect);
    log::info!(
        "capturing on {} (flow table {} entries x {} bytes)",
        cfg.capture.interface.as_deref().unwrap_or("?"),
        cfg.flow.max_flows,
        FlowTable::entry_size()
    );
    let mut reloader = RuleReloader {
        requested: reload,
        detect: cfg.detect.clone(),
        interface: cfg.capture.interface.clone(),
        stats: stats.clone(),
        loading: None,
    };
    while let Some(mut batch) = reader.next_batch() {
        if let Some(loaded) = reloader.poll() {
            path.swap_rules(loaded);
        }
        if let Some(e) = batch.error.take() {
            log::error!("{e}");
        }
        let quiet = batch.quiet;
        if let Some(batch) = path.take_batch(batch) {
            reader.recycle(batch);
        }
        if quiet {
            // A quiet link: let wall-clock time close intervals and expire flows, with a
            // little grace for packets still in the kernel buffer.
            path.tick(Ts(wall_now().0 - 2_000_000));
        }
    }
    drop(reader);
    path.finish();
    let written = down.join()?;
    drop(stx);
    let _ = sh.join();
    written.map_err(|source| PipelineError::Output {
        path: cfg.output.log_dir.clone(),
        source,
    })?;
    Ok(stats.snapshot())
}

/// What a crash or power cut left behind: half-written bundles are removed, interval folders
/// still under their `.tmp` name are completed as they are (their rows were written and must
/// not be lost), and every folder without a bundle is queued for bundling, oldest first.
fn recover_after_crash(log_dir: &Path, spool_dir: &Path, spool: &Sender<PathBuf>) {
    match crate::spool::recover(spool_dir) {
        Ok(0) => {}
        Ok(n) => log::warn!("removed {n} partial bundle(s) left by an earlier run"),
        Err(e) => log::error!("cleaning the spool: {e}"),
    }
    if let Ok(entries) = std::fs::read_dir(log_dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(base) = name.strip_suffix(".tmp") {
                let target = log_dir.join(base);
                if crate::spool::is_open_interval_name(&name) && !target.exists() {
                    match std::fs::rename(e.path(), &target) {
                        Ok(()) => {
                            log::warn!("completed interval {base} left open by an earlier run")
                        }
                        Err(err) => log::error!("completing {}: {err}", e.path().display()),
                    }
                }
            }
        }
    }
    match crate::spool::pending_intervals(log_dir, spool_dir) {
        Ok(dirs) => {
            for d in dirs {
                let _ = spool.send(d);
            }
        }
        Err(e) => log::error!("listing unbundled intervals: {e}"),
    }
}
