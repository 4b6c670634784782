//! mswin-browser.log: CIFS browser announcements to 138/udp, in which Windows hosts (and the
//! Windows-based HMIs and engineering stations of a plant) state their name, OS version and
//! roles (reference §3.11).
//!
//! The announcement travels in a NetBIOS datagram carrying an SMB Transaction to the mailslot
//! `\MAILSLOT\BROWSE`. The reference skips a fixed 168 bytes to the browser opcode, which is
//! where it sits when both NetBIOS names have the usual 34-byte encoding; here the names and
//! the SMB data offset are followed, which gives the same place for those datagrams and the
//! right one for the others. Host and local-master announcements are logged.

use std::net::IpAddr;

use super::ot::{strip_controls, Malformed, OtKey, Parsed};
use super::window::Agg;
use crate::logs::zeek::{LogStyle, Row, Schema};

pub static BROWSER_SCHEMA: Schema = Schema {
    path: "mswin-browser",
    fields: &[
        ("ts", "time"),
        ("src_ip", "addr"),
        ("src_mac", "string"),
        ("server_name", "string"),
        ("os_version", "string"),
        ("server_type", "string"),
        ("browser_version", "string"),
        ("signature", "string"),
        ("host_comment", "string"),
    ],
    style: LogStyle::FieldsLine,
};

const HOST_ANNOUNCEMENT: u8 = 0x01;
const LOCAL_MASTER_ANNOUNCEMENT: u8 = 0x0f;
/// NetBIOS datagram header up to the source name.
const DGM_HEADER: usize = 14;
const SMB_MAGIC: &[u8; 4] = b"\xffSMB";
const SMB_HEADER: usize = 32;
const SMB_TRANSACTION: u8 = 0x25;
/// Word index of the Transaction request's DataOffset.
const DATA_OFFSET_WORD: usize = 12;
/// Announcement body after the opcode, up to the comment.
const BODY: usize = 1 + 4 + 16 + 1 + 1 + 4 + 1 + 1 + 2;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BrowserKey {
    pub src_ip: IpAddr,
    pub src_mac: Option<[u8; 6]>,
    pub server_name: Box<[u8]>,
    pub os_version: (u8, u8),
    pub server_type: u32,
    pub browser_version: (u8, u8),
    pub signature: [u8; 2],
    pub host_comment: Box<[u8]>,
}

/// Skips one encoded NetBIOS name (length-prefixed labels ending in a zero byte).
fn skip_name(p: &[u8], mut i: usize) -> Option<usize> {
    // A name is at most 255 bytes; the bound also ends the loop on any input.
    let end = i + 256;
    while i < end {
        let len = usize::from(*p.get(i)?);
        i += 1;
        if len == 0 {
            return Some(i);
        }
        if len & 0xc0 != 0 {
            return None;
        }
        i += len;
    }
    None
}

/// Where the browser message starts in a NetBIOS datagram, if it is an SMB Transaction.
fn browse_data(p: &[u8]) -> Result<Option<&[u8]>, Malformed> {
    match p.first() {
        Some(0x10..=0x12) => {}
        Some(_) => return Ok(None),
        None => return Err(Malformed),
    }
    let src = skip_name(p, DGM_HEADER).ok_or(Malformed)?;
    let smb = skip_name(p, src).ok_or(Malformed)?;
    let hdr = p.get(smb..smb + SMB_HEADER + 1).ok_or(Malformed)?;
    if &hdr[..4] != SMB_MAGIC {
        return Err(Malformed);
    }
    if hdr[4] != SMB_TRANSACTION {
        return Ok(None);
    }
    let words = usize::from(hdr[SMB_HEADER]);
    if words <= DATA_OFFSET_WORD {
        return Err(Malformed);
    }
    let w = smb + SMB_HEADER + 1 + 2 * DATA_OFFSET_WORD;
    let off = p.get(w..w + 2).ok_or(Malformed)?;
    let data = smb + usize::from(u16::from_le_bytes([off[0], off[1]]));
    p.get(data..)
        .filter(|d| !d.is_empty())
        .map(Some)
        .ok_or(Malformed)
}

/// A UDP payload sent to 138/udp.
pub fn parse(src: IpAddr, src_mac: Option<[u8; 6]>, p: &[u8]) -> Parsed<BrowserKey> {
    let Some(d) = browse_data(p)? else {
        return Ok(None);
    };
    if d[0] != HOST_ANNOUNCEMENT && d[0] != LOCAL_MASTER_ANNOUNCEMENT {
        return Ok(None);
    }
    let b = d.get(1..1 + BODY).ok_or(Malformed)?;
    Ok(Some(BrowserKey {
        src_ip: src,
        src_mac,
        server_name: strip_controls(&b[5..21]),
        os_version: (b[21], b[22]),
        server_type: u32::from_le_bytes([b[23], b[24], b[25], b[26]]),
        browser_version: (b[27], b[28]),
        signature: [b[29], b[30]],
        host_comment: strip_controls(&d[1 + BODY..]),
    }))
}

/// Whether a datagram is a well-formed browser message (service confirmation).
pub fn looks_valid(p: &[u8]) -> bool {
    matches!(browse_data(p), Ok(Some(_)))
}

impl OtKey for BrowserKey {
    fn schema() -> &'static Schema {
        &BROWSER_SCHEMA
    }

    fn write_row(&self, agg: &Agg, row: &mut Row<'_>) {
        row.time(agg.first);
        row.addr(self.src_ip);
        super::ot::write_mac(row, self.src_mac);
        row.string(&self.server_name);
        row.string(format!("{}.{}", self.os_version.0, self.os_version.1).as_bytes());
        row.string(format!("0x{:x}", self.server_type).as_bytes());
        row.string(format!("{}.{}", self.browser_version.0, self.browser_version.1).as_bytes());
        row.string(format!("0x{:02x}{:02x}", self.signature[1], self.signature[0]).as_bytes());
        row.string(&self.host_comment);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A host announcement datagram as Windows sends it (168 bytes to the opcode).
    pub(crate) fn announcement(name: &[u8], comment: &[u8]) -> Vec<u8> {
        let mut p = vec![0x11, 0x02, 0, 1, 192, 168, 1, 35, 0, 138, 0, 0, 0, 0];
        let enc = crate::analyzers::nbns::tests::encode(b"HOST           \x00");
        let enc2 = crate::analyzers::nbns::tests::encode(b"WORKGROUP      \x1d");
        p.extend_from_slice(&enc);
        p.extend_from_slice(&enc2);
        let smb = p.len();
        p.extend_from_slice(SMB_MAGIC);
        p.push(SMB_TRANSACTION);
        p.resize(smb + SMB_HEADER, 0);
        p.push(17);
        let mut words = [0u16; 17];
        words[DATA_OFFSET_WORD] = 86;
        for w in words {
            p.extend_from_slice(&w.to_le_bytes());
        }
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(b"\\MAILSLOT\\BROWSE\0");
        assert_eq!(p.len(), 168);
        p.extend_from_slice(&[HOST_ANNOUNCEMENT, 0]);
        p.extend_from_slice(&720_000u32.to_le_bytes());
        let mut n = [0u8; 16];
        n[..name.len()].copy_from_slice(name);
        p.extend_from_slice(&n);
        p.extend_from_slice(&[5, 0]);
        p.extend_from_slice(&0x0005_1003u32.to_le_bytes());
        p.extend_from_slice(&[15, 1, 0x55, 0xaa]);
        p.extend_from_slice(comment);
        p
    }

    fn render(k: &BrowserKey) -> String {
        let mut buf = Vec::new();
        let mut row = Row::new(&mut buf, crate::logs::zeek::Utf8Policy::PassValid);
        k.write_row(
            &Agg {
                first: crate::ts::Ts(1),
                last: crate::ts::Ts(1),
                count: 1,
            },
            &mut row,
        );
        row.finish();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn announcement_fields() {
        let p = announcement(b"SNG-WIN2K", b"\0");
        assert!(looks_valid(&p));
        let k = parse("192.168.1.35".parse().unwrap(), None, &p)
            .unwrap()
            .unwrap();
        assert_eq!(
            render(&k),
            "0.000001\t192.168.1.35\t-\tSNG-WIN2K\t5.0\t0x51003\t15.1\t0xaa55\t(empty)\n"
        );
        let k = parse(
            "10.0.0.1".parse().unwrap(),
            None,
            &announcement(b"A\x07B", b"HMI\x01 1\0"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (&*k.server_name, &*k.host_comment),
            (&b"AB"[..], &b"HMI 1"[..])
        );
    }

    #[test]
    fn broken_datagrams() {
        let src: IpAddr = "10.0.0.1".parse().unwrap();
        let good = announcement(b"X", b"");
        for n in 0..good.len() {
            assert_eq!(parse(src, None, &good[..n]), Err(Malformed), "{n} bytes");
        }
        let mut bad_magic = good.clone();
        bad_magic[82] = 0;
        assert_eq!(parse(src, None, &bad_magic), Err(Malformed));
        let mut far = good.clone();
        far[82 + 33 + 24] = 0xff;
        assert_eq!(parse(src, None, &far), Err(Malformed));
        let mut loop_name = good.clone();
        loop_name[14] = 0xc0;
        assert_eq!(parse(src, None, &loop_name), Err(Malformed));
        let mut election = good;
        election[168] = 0x08;
        assert_eq!(parse(src, None, &election), Ok(None));
    }
}
