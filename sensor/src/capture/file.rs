//! pcap and pcapng files.
//!
//! Classic pcap (both byte orders, micro- and nanosecond magic) and pcapng (section headers of
//! either byte order, several interfaces with their own link types and timestamp resolutions,
//! enhanced and simple packet blocks). The kind is told by the magic, not by the file name.
//!
//! The file is read in large chunks into a window buffer and records are parsed where they
//! lie: a packet is a slice of the window, not a copy. A record that claims more than
//! [`MAX_RECORD`] bytes is corruption, not a reason to allocate. Every length is checked
//! against what the file holds before it is used, and a record is consumed only once all of
//! it is in the window, so that parsing can stop at a record boundary and go on in another
//! buffer (see [`CaptureFile::next_in_place`]).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::{CaptureError, RawPacket};
use crate::ts::Ts;

/// Largest packet record accepted (libpcap's own ceiling for snaplen is 256 KiB).
pub const MAX_RECORD: usize = 256 * 1024;
/// Largest pcapng block accepted.
const MAX_BLOCK: usize = MAX_RECORD + 4096;
/// Size of a window buffer: the largest block and about as much again of smaller records, so
/// that a window holds a batch's worth of packets and the file is read in few large calls.
pub const WINDOW: usize = 2 * MAX_BLOCK;

const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const PCAPNG_IDB: u32 = 0x0000_0001;
const PCAPNG_SPB: u32 = 0x0000_0003;
const PCAPNG_EPB: u32 = 0x0000_0006;
const PCAPNG_BOM: u32 = 0x1A2B_3C4D;

#[derive(Clone, Copy, Debug)]
struct Interface {
    linktype: u32,
    /// Timestamp units per second.
    units_per_sec: u64,
    snaplen: u32,
}

enum Format {
    Pcap {
        big_endian: bool,
        nanos: bool,
        linktype: u32,
    },
    PcapNg {
        big_endian: bool,
        interfaces: Vec<Interface>,
    },
}

/// A packet in the window: `(ts, linktype, start, caplen, wire_len)`, `start` an index into
/// the window buffer.
pub type Located = (Ts, u32, usize, usize, u32);

/// What [`CaptureFile::next_in_place`] found.
pub enum Next {
    Packet(Located),
    /// The end of the file, after whole records.
    End,
    /// The next record does not fit behind the packets already handed out: the caller moves
    /// on to another buffer with [`CaptureFile::exchange`] (or lets the window be compacted
    /// with [`CaptureFile::compact`] if it holds on to none of them).
    Full,
}

/// How much of what a parser asked for is in the window.
enum Avail {
    Ready,
    /// The file ended with this many bytes of it.
    Short(usize),
    /// It fits only if the window is compacted or exchanged.
    Full,
}

/// A new window buffer. Zeroed once; the file is read over it from then on.
pub fn window_buffer() -> Vec<u8> {
    vec![0; WINDOW]
}

/// A capture file being read front to back.
pub struct CaptureFile {
    path: String,
    file: File,
    format: Format,
    /// Bytes read from the file: `buf[..filled]`; `buf[pos..filled]` is not parsed yet.
    buf: Vec<u8>,
    filled: usize,
    pos: usize,
    /// File offset of `buf[pos]`.
    offset: u64,
    eof: bool,
    /// An error was returned: nothing more is read.
    failed: bool,
}

/// The u32 at `at` (0 past the end: callers have checked the length).
#[inline]
fn u32_at(b: &[u8], at: usize, be: bool) -> u32 {
    let a: [u8; 4] = b
        .get(at..at.saturating_add(4))
        .and_then(|s| s.try_into().ok())
        .unwrap_or_default();
    if be {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

#[inline]
fn u16_at(b: &[u8], at: usize, be: bool) -> u16 {
    let a: [u8; 2] = b
        .get(at..at.saturating_add(2))
        .and_then(|s| s.try_into().ok())
        .unwrap_or_default();
    if be {
        u16::from_be_bytes(a)
    } else {
        u16::from_le_bytes(a)
    }
}

impl CaptureFile {
    pub fn open(path: &Path) -> Result<CaptureFile, CaptureError> {
        Self::open_in(path, window_buffer()).map_err(|(e, _)| e)
    }

    /// Opens `path` to be read through `buf` (a [`window_buffer`]); on failure the buffer
    /// comes back with the error.
    pub fn open_in(path: &Path, buf: Vec<u8>) -> Result<CaptureFile, (CaptureError, Vec<u8>)> {
        let p = path.display().to_string();
        let file = match File::open(path) {
            Ok(f) => f,
            Err(source) => return Err((CaptureError::Io { path: p, source }, buf)),
        };
        let mut cf = CaptureFile {
            path: p,
            file,
            format: Format::Pcap {
                big_endian: false,
                nanos: false,
                linktype: 0,
            },
            buf,
            filled: 0,
            pos: 0,
            offset: 0,
            eof: false,
            failed: false,
        };
        match cf.start() {
            Ok(()) => Ok(cf),
            Err(e) => Err((e, cf.buf)),
        }
    }

    /// Gives the window buffer back (the packets handed out by [`Self::next_in_place`] are in
    /// it).
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }

    /// The file header (and for pcapng its first section header).
    fn start(&mut self) -> Result<(), CaptureError> {
        let have = match self.ensure(4)? {
            Avail::Ready => 4,
            Avail::Short(n) => n,
            Avail::Full => 0,
        };
        let mut magic = [0u8; 4];
        magic[..have].copy_from_slice(&self.buf[self.pos..self.pos + have]);
        if have < 4 {
            return Err(CaptureError::BadMagic {
                path: self.path.clone(),
                magic,
            });
        }
        let (be, nanos) = match u32::from_le_bytes(magic) {
            0xA1B2_C3D4 => (false, false),
            0xD4C3_B2A1 => (true, false),
            0xA1B2_3C4D => (false, true),
            0x4D3C_B2A1 => (true, true),
            PCAPNG_SHB => {
                // Offsets in errors are where the short or bad field starts, as when the
                // header is read field by field.
                if !matches!(self.ensure(8)?, Avail::Ready) {
                    return Err(self.truncated_at(4));
                }
                return self.section(0).map(|_| ());
            }
            _ => {
                return Err(CaptureError::BadMagic {
                    path: self.path.clone(),
                    magic,
                })
            }
        };
        if !matches!(self.ensure(24)?, Avail::Ready) {
            return Err(self.truncated_at(4));
        }
        let linktype = u32_at(&self.buf, self.pos + 20, be) & 0x0FFF_FFFF;
        self.consume(24);
        self.format = Format::Pcap {
            big_endian: be,
            nanos,
            linktype,
        };
        Ok(())
    }

    fn corrupt_at(&self, what: &'static str, offset: u64) -> CaptureError {
        CaptureError::Corrupt {
            path: self.path.clone(),
            what,
            offset,
        }
    }

    fn truncated_at(&self, offset: u64) -> CaptureError {
        CaptureError::Truncated {
            path: self.path.clone(),
            offset,
        }
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
        self.offset += n as u64;
    }

    /// Makes `buf[pos..pos + n]` hold file bytes, reading as much as the window takes.
    /// `n` is at most [`WINDOW`] (every length is checked against the maxima first).
    #[inline]
    fn ensure(&mut self, n: usize) -> Result<Avail, CaptureError> {
        if self.filled - self.pos >= n {
            return Ok(Avail::Ready);
        }
        self.fill(n)
    }

    fn fill(&mut self, n: usize) -> Result<Avail, CaptureError> {
        debug_assert!(n <= self.buf.len());
        loop {
            let have = self.filled - self.pos;
            if have >= n {
                return Ok(Avail::Ready);
            }
            if self.eof {
                return Ok(Avail::Short(have));
            }
            if self.pos + n > self.buf.len() {
                return Ok(Avail::Full);
            }
            match self.file.read(&mut self.buf[self.filled..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.filled += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(CaptureError::Io {
                        path: self.path.clone(),
                        source,
                    })
                }
            }
        }
    }

    /// Moves the bytes not parsed yet to the front of the window; packets handed out before
    /// are overwritten.
    pub fn compact(&mut self) {
        self.buf.copy_within(self.pos..self.filled, 0);
        self.filled -= self.pos;
        self.pos = 0;
    }

    /// Goes on in `fresh` (a [`window_buffer`]) with the bytes not parsed yet, and returns the
    /// current buffer, where the packets handed out so far stay.
    pub fn exchange(&mut self, mut fresh: Vec<u8>) -> Vec<u8> {
        let rest = self.filled - self.pos;
        if fresh.len() < self.buf.len() {
            fresh.resize(self.buf.len(), 0);
        }
        fresh[..rest].copy_from_slice(&self.buf[self.pos..self.filled]);
        let old = std::mem::replace(&mut self.buf, fresh);
        self.filled = rest;
        self.pos = 0;
        old
    }

    /// The next packet, `None` at the end of the file. After an error the reader is done.
    pub fn next_packet(&mut self) -> Option<Result<RawPacket<'_>, CaptureError>> {
        let located = loop {
            match self.next_in_place() {
                Ok(Next::Packet(l)) => break l,
                Ok(Next::End) => return None,
                Ok(Next::Full) => self.compact(),
                Err(e) => return Some(Err(e)),
            }
        };
        let (ts, linktype, start, caplen, wire_len) = located;
        Some(Ok(RawPacket {
            ts,
            linktype,
            data: &self.buf[start..start + caplen],
            wire_len,
        }))
    }

    /// The next packet, left in the window buffer; the window is never compacted here, so
    /// packets handed out earlier stay valid until the caller compacts or exchanges it.
    pub fn next_in_place(&mut self) -> Result<Next, CaptureError> {
        if self.failed {
            return Ok(Next::End);
        }
        let r = match self.format {
            Format::Pcap {
                big_endian,
                nanos,
                linktype,
            } => self.next_pcap(big_endian, nanos, linktype),
            Format::PcapNg { .. } => self.next_ng(),
        };
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn next_pcap(&mut self, be: bool, nanos: bool, linktype: u32) -> Result<Next, CaptureError> {
        let o = self.offset;
        match self.ensure(16)? {
            Avail::Ready => {}
            Avail::Short(0) => return Ok(Next::End),
            Avail::Short(_) => return Err(self.truncated_at(o)),
            Avail::Full => return Ok(Next::Full),
        }
        let h = self.pos;
        let hdr: [u8; 16] = self
            .buf
            .get(h..h + 16)
            .and_then(|s| s.try_into().ok())
            .unwrap_or_default();
        let secs = u32_at(&hdr, 0, be) as i64;
        let frac = u32_at(&hdr, 4, be) as i64;
        let caplen = u32_at(&hdr, 8, be) as usize;
        let wire_len = u32_at(&hdr, 12, be);
        if caplen > MAX_RECORD {
            return Err(self.corrupt_at("packet record longer than 256 KiB", o + 16));
        }
        match self.ensure(16 + caplen)? {
            Avail::Ready => {}
            Avail::Short(_) => return Err(self.truncated_at(o + 16)),
            Avail::Full => return Ok(Next::Full),
        }
        self.consume(16 + caplen);
        let micros = if nanos { frac / 1000 } else { frac };
        Ok(Next::Packet((
            Ts(secs * 1_000_000 + micros),
            linktype,
            h + 16,
            caplen,
            wire_len.max(caplen as u32),
        )))
    }

    /// A section header block at `buf[pos..]` whose first 8 bytes are in the window (`o` is
    /// its file offset). Its byte order is only known from the byte-order magic after the
    /// length. A new section forgets the previous section's interfaces.
    fn section(&mut self, o: u64) -> Result<Option<Next>, CaptureError> {
        match self.ensure(12)? {
            Avail::Ready => {}
            Avail::Short(_) => return Err(self.truncated_at(o + 8)),
            Avail::Full => return Ok(Some(Next::Full)),
        }
        let be = match u32_at(&self.buf, self.pos + 8, false) {
            PCAPNG_BOM => false,
            0x4D3C_2B1A => true,
            _ => {
                return Err(
                    self.corrupt_at("pcapng section header with a bad byte-order magic", o + 12)
                )
            }
        };
        let len = u32_at(&self.buf, self.pos + 4, be) as usize;
        if !(28..=MAX_BLOCK).contains(&len) || !len.is_multiple_of(4) {
            return Err(self.corrupt_at("pcapng section header with a bad length", o + 12));
        }
        match self.ensure(len)? {
            Avail::Ready => {}
            Avail::Short(_) => return Err(self.truncated_at(o + 12)),
            Avail::Full => return Ok(Some(Next::Full)),
        }
        self.consume(len);
        self.format = Format::PcapNg {
            big_endian: be,
            interfaces: Vec::new(),
        };
        Ok(None)
    }

    fn next_ng(&mut self) -> Result<Next, CaptureError> {
        loop {
            let be = match &self.format {
                Format::PcapNg { big_endian, .. } => *big_endian,
                Format::Pcap { .. } => unreachable!("next_ng on a classic pcap"),
            };
            let o = self.offset;
            match self.ensure(8)? {
                Avail::Ready => {}
                Avail::Short(0) => return Ok(Next::End),
                Avail::Short(_) => return Err(self.truncated_at(o)),
                Avail::Full => return Ok(Next::Full),
            }
            let at = self.pos;
            let raw_type = u32_at(&self.buf, at, be);
            if raw_type == PCAPNG_SHB {
                match self.section(o)? {
                    Some(full) => return Ok(full),
                    None => continue,
                }
            }
            let len = u32_at(&self.buf, at + 4, be) as usize;
            if !(12..=MAX_BLOCK).contains(&len) || !len.is_multiple_of(4) {
                return Err(self.corrupt_at("pcapng block with a bad length", o + 8));
            }
            match self.ensure(len)? {
                Avail::Ready => {}
                Avail::Short(_) => return Err(self.truncated_at(o + 8)),
                Avail::Full => return Ok(Next::Full),
            }
            self.consume(len);
            // The block body, followed by the trailing length (4 bytes).
            let body_at = at + 8;
            let body_len = len - 12;
            let body = &self.buf[body_at..at + len];
            let end = self.offset;
            match raw_type {
                PCAPNG_IDB => {
                    if body_len < 8 {
                        return Err(self.corrupt_at("pcapng interface block too short", end));
                    }
                    let iface = Interface {
                        linktype: u16_at(body, 0, be) as u32,
                        snaplen: u32_at(body, 4, be),
                        units_per_sec: idb_ts_units(&body[8..body_len], be),
                    };
                    let mut too_many = false;
                    if let Format::PcapNg { interfaces, .. } = &mut self.format {
                        too_many = interfaces.len() >= 1024;
                        if !too_many {
                            interfaces.push(iface);
                        }
                    }
                    if too_many {
                        return Err(self.corrupt_at("more than 1024 pcapng interfaces", end));
                    }
                }
                PCAPNG_EPB => {
                    if body_len < 20 {
                        return Err(self.corrupt_at("pcapng packet block too short", end));
                    }
                    let ifid = u32_at(body, 0, be) as usize;
                    let hi = u32_at(body, 4, be) as u64;
                    let lo = u32_at(body, 8, be) as u64;
                    let caplen = u32_at(body, 12, be) as usize;
                    let wire_len = u32_at(body, 16, be);
                    if caplen > body_len - 20 {
                        return Err(self.corrupt_at("pcapng packet longer than its block", end));
                    }
                    let iface = match &self.format {
                        Format::PcapNg { interfaces, .. } => interfaces.get(ifid).copied(),
                        Format::Pcap { .. } => None,
                    };
                    let Some(iface) = iface else {
                        return Err(
                            self.corrupt_at("pcapng packet for an undeclared interface", end)
                        );
                    };
                    let units = (hi << 32) | lo;
                    let ups = iface.units_per_sec.max(1);
                    let secs = units / ups;
                    let micros = (units % ups) as u128 * 1_000_000 / ups as u128;
                    let ts = Ts((secs as i64)
                        .saturating_mul(1_000_000)
                        .saturating_add(micros as i64));
                    return Ok(Next::Packet((
                        ts,
                        iface.linktype,
                        body_at + 20,
                        caplen,
                        wire_len.max(caplen as u32),
                    )));
                }
                PCAPNG_SPB => {
                    if body_len < 4 {
                        return Err(self.corrupt_at("pcapng simple packet block too short", end));
                    }
                    let iface = match &self.format {
                        Format::PcapNg { interfaces, .. } => interfaces.first().copied(),
                        Format::Pcap { .. } => None,
                    };
                    let Some(iface) = iface else {
                        return Err(
                            self.corrupt_at("pcapng packet for an undeclared interface", end)
                        );
                    };
                    let wire_len = u32_at(body, 0, be);
                    let mut caplen = (wire_len as usize).min(body_len - 4);
                    if iface.snaplen > 0 {
                        caplen = caplen.min(iface.snaplen as usize);
                    }
                    // Simple packet blocks carry no timestamp.
                    return Ok(Next::Packet((
                        Ts::ZERO,
                        iface.linktype,
                        body_at + 4,
                        caplen,
                        wire_len,
                    )));
                }
                _ => {} // statistics, name resolution, custom blocks: nothing for us
            }
        }
    }
}

/// Timestamp units per second from an interface block's options (`if_tsresol`, code 9).
fn idb_ts_units(opts: &[u8], be: bool) -> u64 {
    let mut i = 0;
    while i + 4 <= opts.len() {
        let code = u16_at(opts, i, be);
        let len = u16_at(opts, i + 2, be) as usize;
        let val = i + 4;
        if code == 0 {
            break;
        }
        if code == 9 && len >= 1 && val < opts.len() {
            let r = opts[val];
            let exp = (r & 0x7F) as u32;
            return if r & 0x80 != 0 {
                2u64.checked_pow(exp).unwrap_or(1_000_000)
            } else {
                10u64.checked_pow(exp).unwrap_or(1_000_000)
            };
        }
        i = val + len.div_ceil(4) * 4;
    }
    1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_tmp(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    fn pcap_header(linktype: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&0xA1B2_C3D4u32.to_le_bytes());
        v.extend_from_slice(&2u16.to_le_bytes());
        v.extend_from_slice(&4u16.to_le_bytes());
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&65535u32.to_le_bytes());
        v.extend_from_slice(&linktype.to_le_bytes());
        v
    }

    fn record(v: &mut Vec<u8>, secs: u32, usecs: u32, data: &[u8]) {
        v.extend_from_slice(&secs.to_le_bytes());
        v.extend_from_slice(&usecs.to_le_bytes());
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
    }

    #[test]
    fn reads_classic_pcap() {
        let mut v = pcap_header(1);
        record(&mut v, 10, 5, &[1, 2, 3]);
        record(&mut v, 11, 6, &[4; 60]);
        let f = write_tmp(&v);
        let mut cf = CaptureFile::open(f.path()).unwrap();
        let p = cf.next_packet().unwrap().unwrap();
        assert_eq!(
            (p.ts, p.linktype, p.data),
            (Ts(10_000_005), 1, &[1u8, 2, 3][..])
        );
        let p = cf.next_packet().unwrap().unwrap();
        assert_eq!(p.data.len(), 60);
        assert!(cf.next_packet().is_none());
    }

    #[test]
    fn truncated_record_is_an_error_after_whole_packets() {
        let mut v = pcap_header(1);
        record(&mut v, 10, 5, &[1, 2, 3]);
        record(&mut v, 11, 6, &[4; 60]);
        v.truncate(v.len() - 10);
        let f = write_tmp(&v);
        let mut cf = CaptureFile::open(f.path()).unwrap();
        assert!(cf.next_packet().unwrap().is_ok());
        assert!(matches!(
            cf.next_packet().unwrap(),
            Err(CaptureError::Truncated { .. })
        ));
    }

    #[test]
    fn garbage_and_empty_files_are_rejected() {
        let f = write_tmp(b"hello world, not a capture");
        assert!(matches!(
            CaptureFile::open(f.path()),
            Err(CaptureError::BadMagic { .. })
        ));
        let f = write_tmp(b"");
        assert!(matches!(
            CaptureFile::open(f.path()),
            Err(CaptureError::BadMagic { .. })
        ));
    }

    #[test]
    fn huge_caplen_is_corruption_not_allocation() {
        let mut v = pcap_header(1);
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&u32::MAX.to_le_bytes());
        v.extend_from_slice(&u32::MAX.to_le_bytes());
        let f = write_tmp(&v);
        let mut cf = CaptureFile::open(f.path()).unwrap();
        assert!(matches!(
            cf.next_packet().unwrap(),
            Err(CaptureError::Corrupt { .. })
        ));
    }

    #[test]
    fn reads_pcapng_with_two_interfaces() {
        fn block(t: u32, body: &[u8]) -> Vec<u8> {
            let len = 12 + body.len().div_ceil(4) * 4;
            let mut v = Vec::new();
            v.extend_from_slice(&t.to_le_bytes());
            v.extend_from_slice(&(len as u32).to_le_bytes());
            v.extend_from_slice(body);
            v.resize(len - 4, 0);
            v.extend_from_slice(&(len as u32).to_le_bytes());
            v
        }
        let mut shb = Vec::new();
        shb.extend_from_slice(&PCAPNG_BOM.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        let mut v = block(PCAPNG_SHB, &shb);
        let mut idb = vec![1, 0, 0, 0, 0xff, 0xff, 0, 0];
        v.extend(block(PCAPNG_IDB, &idb));
        idb = vec![
            101, 0, 0, 0, 0xff, 0xff, 0, 0, 9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0,
        ];
        v.extend(block(PCAPNG_IDB, &idb));
        let mut epb = Vec::new();
        epb.extend_from_slice(&1u32.to_le_bytes());
        let units: u64 = 1_500_000_000_123_456_789;
        epb.extend_from_slice(&((units >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(units as u32).to_le_bytes());
        epb.extend_from_slice(&5u32.to_le_bytes());
        epb.extend_from_slice(&5u32.to_le_bytes());
        epb.extend_from_slice(&[9, 8, 7, 6, 5]);
        v.extend(block(PCAPNG_EPB, &epb));
        let f = write_tmp(&v);
        let mut cf = CaptureFile::open(f.path()).unwrap();
        let p = cf.next_packet().unwrap().unwrap();
        assert_eq!(p.linktype, 101);
        assert_eq!(p.ts, Ts(1_500_000_000_123_456));
        assert_eq!(p.data, &[9, 8, 7, 6, 5]);
        assert!(cf.next_packet().is_none());
    }
}
