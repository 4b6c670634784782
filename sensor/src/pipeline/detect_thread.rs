//! The detection thread: between the packet path and the log writer when rules are loaded.
//!
//! Everything the packet thread sends down goes through this thread in order: its log
//! messages are passed on to the writer (interval boundaries and counters lines after the
//! alerts of the packets before them), its detection items are run through the
//! [`DetectStage`], and each capture batch goes back to the reader once its items ran.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::analyzers::RecordSink;
use crate::capture::reader::PacketBatch;
use crate::detect::stage::{DetectStage, Work};
use crate::detect::Detector;
use crate::logs::LogMsg;
use crate::stats::{Stats, StatsSnapshot};

use super::{BatchSender, LogTx, BATCH};

/// What the packet thread sends down when detection has a thread of its own.
pub enum Downstream {
    Log(LogMsg),
    /// A counters line: the packet thread's counters at an interval boundary (the detection
    /// counters are filled in here, where the detector is at the same boundary).
    Counters(Box<StatsSnapshot>),
    /// Detection items, with the batch their frames are in; `last`: the packet thread is done
    /// with the batch (this message holds the last reference to it).
    Detect {
        batch: Option<Arc<PacketBatch>>,
        work: Work,
        last: bool,
    },
    /// A reloaded rule set (or none) replaces the running one.
    Rules(Option<Box<Detector>>),
}

/// Starts the detection thread with `detector`; it ends when every sender of `rx` is gone.
/// Work it is done with goes back through `spare` (a batch's items are thousands: grown
/// afresh for every batch, their reallocations cost the packet thread more than the items).
pub fn spawn(
    detector: Detector,
    rx: Receiver<Downstream>,
    writer: Sender<LogMsg>,
    recycle: Sender<PacketBatch>,
    spare: Sender<Work>,
    stats: Arc<Stats>,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("detect".into())
        .spawn(move || {
            let mut stage = DetectStage::new(Some(detector), stats.clone());
            let mut alerts = BatchSender {
                tx: LogTx::Direct(writer.clone()),
                batch: Vec::with_capacity(BATCH),
                spent: None,
            };
            for m in rx {
                match m {
                    Downstream::Detect {
                        batch,
                        mut work,
                        last,
                    } => {
                        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            stage.process(batch.as_deref(), &work, &mut alerts)
                        }));
                        if ran.is_err() {
                            // A bug in matching must not take the logs down with it: this
                            // thread forwards everything the packet path writes. Detection is
                            // off until rules are reloaded.
                            log::error!("detection failed on a packet; detection is off until the rules are reloaded");
                            Stats::inc(&stats.detect_failures);
                            stage.detector = None;
                        }
                        work.clear();
                        let _ = spare.try_send(work);
                        if let (true, Some(b)) = (last, batch) {
                            // Earlier messages' references were dropped as they ran.
                            if let Ok(b) = Arc::try_unwrap(b) {
                                let _ = recycle.send(b);
                            }
                        }
                    }
                    Downstream::Log(LogMsg::Records(r)) => {
                        let _ = writer.send(LogMsg::Records(r));
                    }
                    Downstream::Log(m) => {
                        alerts.flush();
                        let _ = writer.send(m);
                    }
                    Downstream::Counters(mut snap) => {
                        alerts.flush();
                        detection_counters(&mut snap, &stats);
                        let _ = writer.send(LogMsg::Counters(snap.to_line()));
                    }
                    Downstream::Rules(new) => {
                        let old = std::mem::replace(&mut stage.detector, new.map(|d| *d));
                        if let Some(old) = old {
                            // Tens of milliseconds for ET Open: not on the detection path.
                            let _ = std::thread::Builder::new()
                                .name("rules-drop".into())
                                .spawn(move || drop(old));
                        }
                    }
                }
            }
            alerts.flush();
        })
        .expect("spawning the detection thread")
}

/// The detection counters as they are now (this thread is at the snapshot's boundary).
fn detection_counters(snap: &mut StatsSnapshot, stats: &Stats) {
    let now = stats.snapshot();
    snap.detect_matches = now.detect_matches;
    snap.detect_alerts = now.detect_alerts;
    snap.detect_flows_full = now.detect_flows_full;
    snap.detect_flowbits_full = now.detect_flowbits_full;
    snap.detect_threshold_full = now.detect_threshold_full;
    snap.detect_failures = now.detect_failures;
}
