//! Reading capture files on a thread of their own.
//!
//! Reading and splitting a file into packets costs about a fifth of a replay; a reader thread
//! does it while the packet path works on the previous batch. Batches are recycled through a
//! return channel, so at most [`BATCHES`] batches of about [`BATCH_BYTES`] exist at once.

use std::path::PathBuf;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

use super::file::CaptureFile;
use super::{CaptureError, RawPacket};
use crate::ts::Ts;

/// Bytes of packet data per batch (a batch is handed over when it passes this). A quarter of
/// a megabyte is a couple of thousand packets, plenty to amortise the hand-over, and keeps the
/// batches' share of peak RSS small.
pub const BATCH_BYTES: usize = 256 << 10;
/// Batches in flight between the reader and the packet path.
pub const BATCHES: usize = 4;

#[derive(Clone, Copy, Debug)]
struct Slot {
    ts: Ts,
    linktype: u32,
    start: usize,
    len: usize,
    wire_len: u32,
}

/// Packets copied out of a capture file, in file order.
#[derive(Debug, Default)]
pub struct PacketBatch {
    data: Vec<u8>,
    slots: Vec<Slot>,
    /// The file ended with this error after the packets above.
    pub error: Option<CaptureError>,
}

impl PacketBatch {
    fn with_capacity() -> PacketBatch {
        PacketBatch {
            data: Vec::with_capacity(BATCH_BYTES + super::file::MAX_RECORD),
            slots: Vec::with_capacity(4096),
            error: None,
        }
    }

    fn clear(&mut self) {
        self.data.clear();
        self.slots.clear();
        self.error = None;
    }

    fn push(&mut self, p: &RawPacket<'_>) {
        let start = self.data.len();
        self.data.extend_from_slice(p.data);
        self.slots.push(Slot {
            ts: p.ts,
            linktype: p.linktype,
            start,
            len: p.data.len(),
            wire_len: p.wire_len,
        });
    }

    pub fn packets(&self) -> impl Iterator<Item = RawPacket<'_>> {
        self.slots.iter().map(|s| RawPacket {
            ts: s.ts,
            linktype: s.linktype,
            data: &self.data[s.start..s.start + s.len],
            wire_len: s.wire_len,
        })
    }
}

/// The reader thread and its two channels.
pub struct FileReader {
    full: Receiver<PacketBatch>,
    empty: Sender<PacketBatch>,
    handle: Option<JoinHandle<()>>,
}

impl FileReader {
    /// Starts reading `files` in order.
    pub fn spawn(files: Vec<PathBuf>) -> FileReader {
        let (full_tx, full) = bounded::<PacketBatch>(BATCHES);
        let (empty, empty_rx) = bounded::<PacketBatch>(BATCHES);
        for _ in 0..BATCHES {
            let _ = empty.send(PacketBatch::with_capacity());
        }
        let handle = std::thread::Builder::new()
            .name("capture-reader".into())
            .spawn(move || read_files(files, full_tx, empty_rx))
            .expect("spawning the capture reader");
        FileReader {
            full,
            empty,
            handle: Some(handle),
        }
    }

    /// The next batch; `None` when every file was read.
    pub fn next_batch(&mut self) -> Option<PacketBatch> {
        self.full.recv().ok()
    }

    /// Gives a processed batch back for reuse.
    pub fn recycle(&mut self, batch: PacketBatch) {
        let _ = self.empty.send(batch);
    }
}

impl Drop for FileReader {
    fn drop(&mut self) {
        // Unblock the reader if the packet path stopped early, then wait for it.
        let (_, dead) = bounded::<PacketBatch>(0);
        self.full = dead;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn read_files(files: Vec<PathBuf>, full: Sender<PacketBatch>, empty: Receiver<PacketBatch>) {
    // Sends the batch on and takes an empty one; `None` when the packet path has gone.
    let hand_over = |batch: PacketBatch| -> Option<PacketBatch> {
        full.send(batch).ok()?;
        let mut b = empty.recv().ok()?;
        b.clear();
        Some(b)
    };
    let Ok(mut batch) = empty.recv() else { return };
    batch.clear();
    for f in files {
        let mut cf = match CaptureFile::open(&f) {
            Ok(cf) => cf,
            Err(e) => {
                batch.error = Some(e);
                let Some(b) = hand_over(batch) else { return };
                batch = b;
                continue;
            }
        };
        while let Some(p) = cf.next_packet() {
            match p {
                Ok(p) => {
                    batch.push(&p);
                    if batch.data.len() >= BATCH_BYTES {
                        let Some(b) = hand_over(batch) else { return };
                        batch = b;
                    }
                }
                Err(e) => {
                    batch.error = Some(e);
                    let Some(b) = hand_over(batch) else { return };
                    batch = b;
                    break;
                }
            }
        }
    }
    if !batch.slots.is_empty() {
        let _ = full.send(batch);
    }
}
