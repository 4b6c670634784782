//! pcap and pcapng files.
//!
//! Classic pcap (both byte orders, micro- and nanosecond magic) and pcapng (section headers of
//! either byte order, several interfaces with their own link types and timestamp resolutions,
//! enhanced and simple packet blocks). The kind is told by the magic, not by the file name.
//! Records are read into one reusable buffer; a record that claims more than
//! [`MAX_RECORD`] bytes is corruption, not a reason to allocate.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use super::{CaptureError, RawPacket};
use crate::ts::Ts;

/// Largest packet record accepted (libpcap's own ceiling for snaplen is 256 KiB).
pub const MAX_RECORD: usize = 256 * 1024;
/// Largest pcapng block accepted.
const MAX_BLOCK: usize = MAX_RECORD + 4096;

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

/// Where the next packet sits in the buffer: `(ts, linktype, start, caplen, wire_len)`.
type Located = (Ts, u32, usize, usize, u32);

/// A capture file being read front to back.
pub struct CaptureFile {
    path: String,
    reader: BufReader<File>,
    format: Format,
    buf: Vec<u8>,
    offset: u64,
}

fn u32_at(b: &[u8], at: usize, be: bool) -> u32 {
    let a = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if be {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

fn u16_at(b: &[u8], at: usize, be: bool) -> u16 {
    let a = [b[at], b[at + 1]];
    if be {
        u16::from_be_bytes(a)
    } else {
        u16::from_le_bytes(a)
    }
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` on a clean end of file before the first byte.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<Result<bool, usize>> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => return Ok(if got == 0 { Ok(false) } else { Err(got) }),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Ok(true))
}

impl CaptureFile {
    pub fn open(path: &Path) -> Result<CaptureFile, CaptureError> {
        let p = path.display().to_string();
        let io = |source| CaptureError::Io {
            path: p.clone(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut magic = [0u8; 4];
        match read_full(&mut reader, &mut magic).map_err(io)? {
            Ok(true) => {}
            _ => return Err(CaptureError::BadMagic { path: p, magic }),
        }
        let mut cf = CaptureFile {
            path: p.clone(),
            reader,
            format: Format::Pcap {
                big_endian: false,
                nanos: false,
                linktype: 0,
            },
            buf: Vec::with_capacity(MAX_RECORD),
            offset: 4,
        };
        let m = u32::from_le_bytes(magic);
        let (be, nanos) = match m {
            0xA1B2_C3D4 => (false, false),
            0xD4C3_B2A1 => (true, false),
            0xA1B2_3C4D => (false, true),
            0x4D3C_B2A1 => (true, true),
            PCAPNG_SHB => {
                cf.format = Format::PcapNg {
                    big_endian: false,
                    interfaces: Vec::new(),
                };
                cf.fill_required(4)?;
                let len_bytes = [cf.buf[0], cf.buf[1], cf.buf[2], cf.buf[3]];
                cf.start_section(len_bytes)?;
                return Ok(cf);
            }
            _ => return Err(CaptureError::BadMagic { path: p, magic }),
        };
        let mut hdr = [0u8; 20];
        if !matches!(read_full(&mut cf.reader, &mut hdr).map_err(io)?, Ok(true)) {
            return Err(CaptureError::Truncated { path: p, offset: 4 });
        }
        cf.offset += 20;
        let linktype = u32_at(&hdr, 16, be) & 0x0FFF_FFFF;
        cf.format = Format::Pcap {
            big_endian: be,
            nanos,
            linktype,
        };
        Ok(cf)
    }

    fn corrupt(&self, what: &'static str) -> CaptureError {
        CaptureError::Corrupt {
            path: self.path.clone(),
            what,
            offset: self.offset,
        }
    }

    /// Reads `n` bytes into the buffer. `Ok(false)` at a clean end of file.
    fn fill(&mut self, n: usize) -> Result<bool, CaptureError> {
        self.buf.clear();
        self.buf.resize(n, 0);
        match read_full(&mut self.reader, &mut self.buf) {
            Ok(Ok(true)) => {
                self.offset += n as u64;
                Ok(true)
            }
            Ok(Ok(false)) => Ok(false),
            Ok(Err(_)) => Err(CaptureError::Truncated {
                path: self.path.clone(),
                offset: self.offset,
            }),
            Err(source) => Err(CaptureError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    fn truncated(&self) -> CaptureError {
        CaptureError::Truncated {
            path: self.path.clone(),
            offset: self.offset,
        }
    }

    /// Like [`Self::fill`], but the end of the file here is a truncation.
    fn fill_required(&mut self, n: usize) -> Result<(), CaptureError> {
        if self.fill(n)? {
            Ok(())
        } else {
            Err(self.truncated())
        }
    }

    /// A section header block whose type was just read: `len_bytes` is its raw length field,
    /// whose byte order is only known after the byte-order magic that follows. A new section
    /// forgets the previous section's interfaces.
    fn start_section(&mut self, len_bytes: [u8; 4]) -> Result<(), CaptureError> {
        self.fill_required(4)?;
        let be = match u32_at(&self.buf, 0, false) {
            PCAPNG_BOM => false,
            0x4D3C_2B1A => true,
            _ => return Err(self.corrupt("pcapng section header with a bad byte-order magic")),
        };
        let len = u32_at(&len_bytes, 0, be) as usize;
        if !(28..=MAX_BLOCK).contains(&len) || !len.is_multiple_of(4) {
            return Err(self.corrupt("pcapng section header with a bad length"));
        }
        self.fill_required(len - 12)?;
        self.format = Format::PcapNg {
            big_endian: be,
            interfaces: Vec::new(),
        };
        Ok(())
    }

    /// The next packet, `None` at the end of the file. After an error the reader is done.
    pub fn next_packet(&mut self) -> Option<Result<RawPacket<'_>, CaptureError>> {
        match self.advance() {
            Ok(Some((ts, linktype, start, caplen, wire_len))) => Some(Ok(RawPacket {
                ts,
                linktype,
                data: &self.buf[start..start + caplen],
                wire_len,
            })),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }

    /// Reads records until a packet is in the buffer: `(ts, linktype, start, caplen, wire_len)`.
    fn advance(&mut self) -> Result<Option<Located>, CaptureError> {
        match self.format {
            Format::Pcap {
                big_endian: be,
                nanos,
                linktype,
            } => {
                if !self.fill(16)? {
                    return Ok(None);
                }
                let secs = u32_at(&self.buf, 0, be) as i64;
                let frac = u32_at(&self.buf, 4, be) as i64;
                let caplen = u32_at(&self.buf, 8, be) as usize;
                let wire_len = u32_at(&self.buf, 12, be);
                if caplen > MAX_RECORD {
                    return Err(self.corrupt("packet record longer than 256 KiB"));
                }
                let micros = if nanos { frac / 1000 } else { frac };
                self.fill_required(caplen)?;
                Ok(Some((
                    Ts(secs * 1_000_000 + micros),
                    linktype,
                    0,
                    caplen,
                    wire_len.max(caplen as u32),
                )))
            }
            Format::PcapNg { .. } => self.advance_ng(),
        }
    }

    fn advance_ng(&mut self) -> Result<Option<Located>, CaptureError> {
        loop {
            let be = match &self.format {
                Format::PcapNg { big_endian, .. } => *big_endian,
                Format::Pcap { .. } => unreachable!("advance_ng on a classic pcap"),
            };
            if !self.fill(8)? {
                return Ok(None);
            }
            let raw_type = u32_at(&self.buf, 0, be);
            if raw_type == PCAPNG_SHB {
                // The byte order of a new section is only known after its BOM.
                let len_bytes = [self.buf[4], self.buf[5], self.buf[6], self.buf[7]];
                self.start_section(len_bytes)?;
                continue;
            }
            let len = u32_at(&self.buf, 4, be) as usize;
            if !(12..=MAX_BLOCK).contains(&len) || !len.is_multiple_of(4) {
                return Err(self.corrupt("pcapng block with a bad length"));
            }
            self.fill_required(len - 8)?;
            // self.buf now holds the block body followed by the trailing length (4 bytes).
            let body_len = len - 12;
            match raw_type {
                PCAPNG_IDB => {
                    if body_len < 8 {
                        return Err(self.corrupt("pcapng interface block too short"));
                    }
                    let linktype = u16_at(&self.buf, 0, be) as u32;
                    let snaplen = u32_at(&self.buf, 4, be);
                    let units_per_sec = idb_ts_units(&self.buf[8..body_len], be);
                    if let Format::PcapNg { interfaces, .. } = &mut self.format {
                        if interfaces.len() >= 1024 {
                            return Err(self.corrupt("more than 1024 pcapng interfaces"));
                        }
                        interfaces.push(Interface {
                            linktype,
                            units_per_sec,
                            snaplen,
                        });
                    }
                }
                PCAPNG_EPB => {
                    if body_len < 20 {
                        return Err(self.corrupt("pcapng packet block too short"));
                    }
                    let ifid = u32_at(&self.buf, 0, be) as usize;
                    let hi = u32_at(&self.buf, 4, be) as u64;
                    let lo = u32_at(&self.buf, 8, be) as u64;
                    let caplen = u32_at(&self.buf, 12, be) as usize;
                    let wire_len = u32_at(&self.buf, 16, be);
                    if caplen > body_len - 20 {
                        return Err(self.corrupt("pcapng packet longer than its block"));
                    }
                    let iface = match &self.format {
                        Format::PcapNg { interfaces, .. } => interfaces.get(ifid).copied(),
                        Format::Pcap { .. } => None,
                    };
                    let Some(iface) = iface else {
                        return Err(self.corrupt("pcapng packet for an undeclared interface"));
                    };
                    let units = (hi << 32) | lo;
                    let ups = iface.units_per_sec.max(1);
                    let secs = units / ups;
                    let micros = (units % ups) as u128 * 1_000_000 / ups as u128;
                    let ts = Ts((secs as i64)
                        .saturating_mul(1_000_000)
                        .saturating_add(micros as i64));
                    return Ok(Some((
                        ts,
                        iface.linktype,
                        20,
                        caplen,
                        wire_len.max(caplen as u32),
                    )));
                }
                PCAPNG_SPB => {
                    if body_len < 4 {
                        return Err(self.corrupt("pcapng simple packet block too short"));
                    }
                    let iface = match &self.format {
                        Format::PcapNg { interfaces, .. } => interfaces.first().copied(),
                        Format::Pcap { .. } => None,
                    };
                    let Some(iface) = iface else {
                        return Err(self.corrupt("pcapng packet for an undeclared interface"));
                    };
                    let wire_len = u32_at(&self.buf, 0, be);
                    let mut caplen = (wire_len as usize).min(body_len - 4);
                    if iface.snaplen > 0 {
                        caplen = caplen.min(iface.snaplen as usize);
                    }
                    // Simple packet blocks carry no timestamp.
                    return Ok(Some((Ts::ZERO, iface.linktype, 4, caplen, wire_len)));
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
