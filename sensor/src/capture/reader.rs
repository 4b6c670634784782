//! Reading packets on a thread of their own: capture files, or the live interface.
//!
//! Reading and splitting a file into packets costs about a fifth of a replay; a reader thread
//! does it while the packet path works on the previous batch. The file is read straight into
//! the batch's buffer and packets are located where they lie, so a packet is copied once, by
//! the kernel. A live capture copies each packet from libpcap's ring into the batch's buffer.
//! Batches are recycled through a return channel, so at most [`BATCHES`] batches (and one
//! spare buffer) of [`WINDOW`](super::file::WINDOW) bytes exist at once.
//!
//! The reader thread also decodes each batch before handing it over (see
//! [`crate::decode::detached`]): the packet thread then starts at the flow table. The
//! decoder's state (fragment reassembly) sees every frame in capture order either way, so the
//! result is the same as decoding on the packet thread; only the decoder's drop counters run
//! ahead of the packet path by up to [`BATCHES`] batches.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};

use super::file::{window_buffer, CaptureFile, Located, Next};
use super::live::LiveCapture;
use super::{CaptureError, RawPacket};
use crate::decode::detached::DecodedBatch;
use crate::decode::{Decoded, Decoder, Frame};
use crate::stats::Stats;
use crate::ts::{Span, Ts};

/// Batches in flight between the reader and the packet path: one being filled, one being
/// processed, one ready in between (one more with rules loaded, held by the detection thread
/// after the packet path: see [`CaptureReader::add_batch`]). Each holds a window of the file and its decodes (about a
/// megabyte for a window of small packets), so more would cost memory, not speed.
pub const BATCHES: usize = 3;

#[derive(Clone, Copy, Debug)]
struct Slot {
    ts: Ts,
    linktype: u32,
    start: usize,
    len: usize,
    wire_len: u32,
}

impl From<Located> for Slot {
    fn from((ts, linktype, start, len, wire_len): Located) -> Slot {
        Slot {
            ts,
            linktype,
            start,
            len,
            wire_len,
        }
    }
}

/// Most packets in one live batch.
const LIVE_BATCH_PACKETS: usize = 2048;
/// How long (in packet time) the first packet of a live batch waits for more to join it: short
/// next to an interval, long enough for batches of hundreds of packets on a busy link.
const LIVE_BATCH_AGE: Span = Span::from_millis(20);

/// Packets in capture order, in the window buffer they were read into, and their decodes.
#[derive(Debug, Default)]
pub struct PacketBatch {
    /// A window buffer of the file (or live packets copied one after the other); the slots
    /// say where its packets are.
    data: Vec<u8>,
    slots: Vec<Slot>,
    /// The decode of every slot, in order.
    decoded: DecodedBatch,
    /// The file ended (or the live capture failed) with this error after the packets above.
    pub error: Option<CaptureError>,
    /// Live capture: the link was quiet for the read timeout after these packets (the packet
    /// path's chance to close intervals on the wall clock).
    pub quiet: bool,
}

impl PacketBatch {
    fn with_capacity() -> PacketBatch {
        PacketBatch {
            data: window_buffer(),
            slots: Vec::with_capacity(8192),
            decoded: DecodedBatch::default(),
            error: None,
            quiet: false,
        }
    }

    fn clear(&mut self) {
        self.slots.clear();
        self.decoded.clear();
        self.error = None;
        self.quiet = false;
    }

    fn raw(&self, s: &Slot) -> RawPacket<'_> {
        RawPacket {
            ts: s.ts,
            linktype: s.linktype,
            data: self.data.get(s.start..s.start + s.len).unwrap_or_default(),
            wire_len: s.wire_len,
        }
    }

    /// Decodes every packet into `decoded` (the batch's buffer holds its packets by now).
    fn decode(&mut self, decoder: &mut Decoder) {
        let mut decoded = std::mem::take(&mut self.decoded);
        decoded.clear();
        for s in &self.slots {
            let p = self.raw(s);
            let frame = Frame {
                ts: p.ts,
                linktype: p.linktype,
                data: p.data,
                wire_len: p.wire_len,
            };
            let mut d = Decoded::new(p.ts);
            let r = decoder.decode_into(frame, &mut d).map(|()| &d);
            decoded.push(p.data, r);
        }
        self.decoded = decoded;
    }

    pub fn packets(&self) -> impl Iterator<Item = RawPacket<'_>> {
        self.slots.iter().map(|s| self.raw(s))
    }

    /// Packet `i` of [`PacketBatch::packets`].
    pub fn packet(&self, i: usize) -> Option<RawPacket<'_>> {
        self.slots.get(i).map(|s| self.raw(s))
    }

    /// The decodes of [`PacketBatch::packets`], in the same order.
    pub fn decoded(&self) -> &DecodedBatch {
        &self.decoded
    }
}

/// The reader thread and its two channels.
pub struct CaptureReader {
    full: Receiver<PacketBatch>,
    empty: Sender<PacketBatch>,
    handle: Option<JoinHandle<()>>,
}

impl CaptureReader {
    fn spawn(
        name: &str,
        run: impl FnOnce(Sender<PacketBatch>, Receiver<PacketBatch>) + Send + 'static,
    ) -> CaptureReader {
        // Room for one more than BATCHES on both channels (see `add_batch`).
        let (full_tx, full) = bounded::<PacketBatch>(BATCHES + 1);
        let (empty, empty_rx) = bounded::<PacketBatch>(BATCHES + 1);
        for _ in 0..BATCHES {
            let _ = empty.send(PacketBatch::with_capacity());
        }
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || run(full_tx, empty_rx))
            .expect("spawning the capture reader");
        CaptureReader {
            full,
            empty,
            handle: Some(handle),
        }
    }

    /// Starts reading and decoding `files` in order.
    pub fn files(files: Vec<PathBuf>, decoder: Decoder) -> CaptureReader {
        Self::spawn("capture-reader", move |full, empty| {
            read_files(files, decoder, full, empty)
        })
    }

    /// Starts capturing and decoding from `cap` until `stop` is set or the capture fails; keeps
    /// libpcap's drop counters in `stats`.
    pub fn live(
        cap: LiveCapture,
        decoder: Decoder,
        stop: Arc<AtomicBool>,
        stats: Arc<Stats>,
    ) -> CaptureReader {
        Self::spawn("capture-live", move |full, empty| {
            read_live(cap, decoder, &stop, &stats, full, empty)
        })
    }

    /// The next batch; `None` when every file was read (the capture stopped).
    pub fn next_batch(&mut self) -> Option<PacketBatch> {
        self.full.recv().ok()
    }

    /// Gives a processed batch back for reuse.
    pub fn recycle(&mut self, batch: PacketBatch) {
        let _ = self.empty.send(batch);
    }

    /// Gives batches back from another thread (the detection stage, which finishes with a
    /// batch after the packet path).
    pub fn recycler(&self) -> Sender<PacketBatch> {
        self.empty.clone()
    }

    /// One more batch in flight, for a pipeline with one more stage holding batches.
    pub fn add_batch(&mut self) {
        let _ = self.empty.try_send(PacketBatch::with_capacity());
    }
}

impl Drop for CaptureReader {
    fn drop(&mut self) {
        // Unblock the reader if the packet path stopped early, then wait for it.
        let (_, dead) = bounded::<PacketBatch>(0);
        self.full = dead;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn read_files(
    files: Vec<PathBuf>,
    mut decoder: Decoder,
    full: Sender<PacketBatch>,
    empty: Receiver<PacketBatch>,
) {
    // Puts `data`, the buffer its packets are in, into `batch` and decodes them.
    let seal = |batch: &mut PacketBatch, data: Vec<u8>, decoder: &mut Decoder| {
        batch.data = data;
        batch.decode(decoder);
    };
    // Sends a sealed `batch` and takes an empty one, whose buffer becomes the spare. `None`
    // when the packet path has gone.
    let hand_over = |batch: PacketBatch| -> Option<(PacketBatch, Vec<u8>)> {
        full.send(batch).ok()?;
        let mut b = empty.recv().ok()?;
        b.clear();
        let spare = std::mem::take(&mut b.data);
        Some((b, spare))
    };
    let Ok(mut batch) = empty.recv() else { return };
    batch.clear();
    // The buffer files are read into, and one to go on in while a batch is out.
    let mut buf = std::mem::take(&mut batch.data);
    let mut spare = window_buffer();
    let last = files.len().saturating_sub(1);
    for (i, f) in files.iter().enumerate() {
        let (error, data) = match CaptureFile::open_in(f, buf) {
            Ok(mut cf) => {
                let error = loop {
                    match cf.next_in_place() {
                        Ok(Next::Packet(p)) => batch.slots.push(p.into()),
                        Ok(Next::End) => break None,
                        Ok(Next::Full) if batch.slots.is_empty() => cf.compact(),
                        Ok(Next::Full) => {
                            let data = cf.exchange(std::mem::take(&mut spare));
                            seal(&mut batch, data, &mut decoder);
                            let Some((b, s)) = hand_over(batch) else {
                                return;
                            };
                            (batch, spare) = (b, s);
                        }
                        Err(e) => break Some(e),
                    }
                };
                (error, cf.into_buffer())
            }
            Err((e, data)) => (Some(e), data),
        };
        if error.is_none() && batch.slots.is_empty() {
            buf = data;
            continue;
        }
        // A batch ends with its file: the next file is read into another buffer.
        batch.error = error;
        seal(&mut batch, data, &mut decoder);
        if i == last {
            let _ = full.send(batch);
            return;
        }
        let Some((b, s)) = hand_over(batch) else {
            return;
        };
        batch = b;
        buf = std::mem::replace(&mut spare, s);
    }
}

/// The live capture loop: packets are copied into the batch's buffer one after the other; a
/// batch goes to the packet path when it is full, when its first packet has waited
/// [`LIVE_BATCH_AGE`], when the link is quiet for the read timeout (flagged, so that intervals
/// close on the wall clock), and last when `stop` is set or the capture fails.
fn read_live(
    mut cap: LiveCapture,
    mut decoder: Decoder,
    stop: &AtomicBool,
    stats: &Stats,
    full: Sender<PacketBatch>,
    empty: Receiver<PacketBatch>,
) {
    let room = cap.snaplen().min(super::file::WINDOW);
    let mut last_stats = Instant::now();
    let Ok(mut batch) = empty.recv() else { return };
    batch.clear();
    let mut used = 0usize;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let mut ship = stopping;
        if !stopping {
            match cap.next_packet() {
                Ok(Some(p)) => {
                    let len = p.data.len().min(batch.data.len() - used);
                    batch.data[used..used + len].copy_from_slice(&p.data[..len]);
                    batch.slots.push(Slot {
                        ts: p.ts,
                        linktype: p.linktype,
                        start: used,
                        len,
                        wire_len: p.wire_len,
                    });
                    used += len;
                    let first = batch.slots.first().map_or(p.ts, |s| s.ts);
                    ship = batch.slots.len() >= LIVE_BATCH_PACKETS
                        || batch.data.len() - used < room
                        || p.ts >= first.plus(LIVE_BATCH_AGE);
                }
                Ok(None) => {
                    batch.quiet = true;
                    ship = true;
                }
                Err(e) => {
                    batch.error = Some(e);
                    ship = true;
                }
            }
        }
        if last_stats.elapsed() >= Duration::from_secs(1) {
            last_stats = Instant::now();
            if let Some((_, dropped, if_dropped)) = cap.stats() {
                stats.capture_dropped.store(dropped, Ordering::Relaxed);
                stats
                    .capture_if_dropped
                    .store(if_dropped, Ordering::Relaxed);
            }
        }
        if ship {
            let last = stopping || batch.error.is_some();
            batch.decode(&mut decoder);
            if full.send(batch).is_err() || last {
                return;
            }
            let Ok(b) = empty.recv() else { return };
            batch = b;
            batch.clear();
            used = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn pcap(records: &[Vec<u8>]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&0xA1B2_C3D4u32.to_le_bytes());
        v.extend_from_slice(&2u16.to_le_bytes());
        v.extend_from_slice(&4u16.to_le_bytes());
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&65535u32.to_le_bytes());
        v.extend_from_slice(&1u32.to_le_bytes());
        for (i, r) in records.iter().enumerate() {
            v.extend_from_slice(&(i as u32).to_le_bytes());
            v.extend_from_slice(&0u32.to_le_bytes());
            v.extend_from_slice(&(r.len() as u32).to_le_bytes());
            v.extend_from_slice(&(r.len() as u32).to_le_bytes());
            v.extend_from_slice(r);
        }
        v
    }

    fn write(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    /// Every packet and error of `files`, in order, as the packet path sees them.
    fn read_all(files: Vec<PathBuf>) -> (Vec<Vec<u8>>, Vec<String>) {
        let mut r = CaptureReader::files(
            files,
            Decoder::new(Default::default(), Arc::new(Stats::default())),
        );
        let (mut packets, mut errors) = (Vec::new(), Vec::new());
        while let Some(mut b) = r.next_batch() {
            packets.extend(b.packets().map(|p| p.data.to_vec()));
            if let Some(e) = b.error.take() {
                errors.push(e.to_string());
            }
            r.recycle(b);
        }
        (packets, errors)
    }

    #[test]
    fn packets_across_many_windows_and_files_arrive_whole_and_in_order() {
        // Sizes that make records straddle window ends, and more data than all buffers hold.
        let records: Vec<Vec<u8>> = (0..600usize)
            .map(|i| {
                let len = (i * 7919) % 1500
                    + if i % 5 == 0 { 30_000 } else { 0 }
                    + if i % 97 == 0 { 220_000 } else { 0 };
                (0..len).map(|j| (i + j) as u8).collect()
            })
            .collect();
        let a = write(&pcap(&records));
        let b = write(&pcap(&records[..10]));
        let mut cut = pcap(&records[..20]);
        cut.truncate(cut.len() - 5);
        let c = write(&cut);
        let files = vec![
            a.path().to_path_buf(),
            PathBuf::from("/nonexistent/capture.pcap"),
            c.path().to_path_buf(),
            b.path().to_path_buf(),
        ];
        let (packets, errors) = read_all(files);
        let mut want: Vec<Vec<u8>> = records.clone();
        want.extend_from_slice(&records[..19]);
        want.extend_from_slice(&records[..10]);
        assert_eq!(packets.len(), want.len());
        assert!(packets == want, "packet bytes differ");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("/nonexistent/capture.pcap"));
        assert!(errors[1].contains("file ends in the middle of a packet record"));
        // The same file read on its own, its window compacted instead of exchanged.
        let mut cf = CaptureFile::open(a.path()).unwrap();
        let mut n = 0;
        while let Some(p) = cf.next_packet() {
            assert!(p.unwrap().data == records[n]);
            n += 1;
        }
        assert_eq!(n, records.len());
    }
}
