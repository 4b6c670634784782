//! netbios-ns.log: NetBIOS name registrations to 137/udp, the names Windows hosts and many
//! HMIs claim on a LAN (reference §3.10).
//!
//! Only registration requests (opcode 5, response bit clear) of unique names are logged; group
//! names (workgroups) are shared and say nothing about one host. The question name is the
//! NetBIOS first-level encoding of 16 bytes: 15 name characters padded with spaces, then a
//! suffix byte giving the service. The product records all 15 characters (the reference loses
//! the 15th) with the padding removed; control bytes in a name are kept and escaped on output.

use std::net::IpAddr;

use super::ot::{be16, be32, Malformed, OtKey, Parsed};
use super::window::Agg;
use crate::logs::zeek::{LogStyle, Row, Schema};

pub static NBNS_SCHEMA: Schema = Schema {
    path: "netbios-ns",
    fields: &[
        ("ts", "time"),
        ("src_ip", "addr"),
        ("src_mac", "string"),
        ("name", "string"),
        ("ttl", "count"),
        ("service_type", "string"),
    ],
    style: LogStyle::FieldsLine,
};

const REGISTRATION: u16 = 5;
const RESPONSE: u16 = 0x8000;
const HEADER: usize = 12;
/// Length byte 0x20, 32 encoded characters, root label.
const NAME_LEN: usize = 34;
/// Header, question (name, type, class), additional record up to its NB flags.
const MIN_LEN: usize = HEADER + NAME_LEN + 4 + 6 + 4 + 2 + 2;
const GROUP: u16 = 0x8000;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NbnsKey {
    pub src_ip: IpAddr,
    pub src_mac: Option<[u8; 6]>,
    pub name: Box<[u8]>,
    pub ttl: u32,
    pub suffix: u8,
}

/// The service a name's 16th byte stands for.
pub fn service_type(suffix: u8) -> &'static str {
    match suffix {
        0x00 => "Workstation",
        0x01 => "Master Browser",
        0x03 => "Messenger",
        0x06 => "RAS Server",
        0x1b => "Domain Master Browser",
        0x1c => "Domain Controllers",
        0x1d => "Master Browser",
        0x1e => "Browser Service Elections",
        0x1f => "NetDDE",
        0x20 => "Server",
        0x21 => "RAS Client",
        0xbe => "Network Monitor Agent",
        0xbf => "Network Monitor Application",
        _ => "Unknown",
    }
}

/// Decodes a first-level encoded NetBIOS name (32 characters 'A'..='P' → 16 bytes).
pub fn decode_name(encoded: &[u8]) -> Option<[u8; 16]> {
    if encoded.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in encoded.chunks_exact(2).enumerate() {
        let hi = pair[0].checked_sub(b'A').filter(|n| *n < 16)?;
        let lo = pair[1].checked_sub(b'A').filter(|n| *n < 16)?;
        out[i] = hi << 4 | lo;
    }
    Some(out)
}

/// A UDP payload sent to 137/udp.
pub fn parse(src: IpAddr, src_mac: Option<[u8; 6]>, p: &[u8]) -> Parsed<NbnsKey> {
    let flags = be16(p, 2).ok_or(Malformed)?;
    if (flags >> 11) & 0xf != REGISTRATION || flags & RESPONSE != 0 {
        return Ok(None);
    }
    if p.len() < MIN_LEN {
        return Err(Malformed);
    }
    let q = &p[HEADER..HEADER + NAME_LEN];
    if q[0] != 0x20 || q[33] != 0 {
        return Err(Malformed);
    }
    let raw = decode_name(&q[1..33]).ok_or(Malformed)?;
    let rr = HEADER + NAME_LEN + 4 + 6;
    let ttl = be32(p, rr).ok_or(Malformed)?;
    let nb_flags = be16(p, rr + 6).ok_or(Malformed)?;
    if nb_flags & GROUP != 0 {
        return Ok(None);
    }
    let len = raw[..15]
        .iter()
        .rposition(|&b| b != b' ')
        .map_or(0, |i| i + 1);
    Ok(Some(NbnsKey {
        src_ip: src,
        src_mac,
        name: raw[..len].into(),
        ttl,
        suffix: raw[15],
    }))
}

impl OtKey for NbnsKey {
    fn schema() -> &'static Schema {
        &NBNS_SCHEMA
    }

    fn write_row(&self, agg: &Agg, row: &mut Row<'_>) {
        row.time(agg.first);
        row.addr(self.src_ip);
        super::ot::write_mac(row, self.src_mac);
        row.string(&self.name);
        row.count(u64::from(self.ttl));
        row.string(service_type(self.suffix).as_bytes());
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn encode(name: &[u8; 16]) -> Vec<u8> {
        let mut out = vec![0x20];
        for b in name {
            out.push(b'A' + (b >> 4));
            out.push(b'A' + (b & 0xf));
        }
        out.push(0);
        out
    }

    /// A registration request for `name` (15 characters + suffix).
    pub(crate) fn registration(name: &[u8; 16], group: bool) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x29, 0x10, 0, 1, 0, 0, 0, 0, 0, 1];
        p.extend_from_slice(&encode(name));
        p.extend_from_slice(&[0, 0x20, 0, 1, 0xc0, 0x0c, 0, 0x20, 0, 1]);
        p.extend_from_slice(&900u32.to_be_bytes());
        p.extend_from_slice(&[0, 6, if group { 0x80 } else { 0 }, 0, 192, 168, 1, 215]);
        p
    }

    fn src() -> IpAddr {
        "192.168.1.215".parse().unwrap()
    }

    #[test]
    fn full_fifteen_character_names() {
        let k = parse(src(), None, &registration(b"MACBOOKAIR-4351\x00", false))
            .unwrap()
            .unwrap();
        assert_eq!(&*k.name, b"MACBOOKAIR-4351");
        assert_eq!((k.ttl, service_type(k.suffix)), (900, "Workstation"));
        let k = parse(src(), None, &registration(b"PLC 1          \x20", false))
            .unwrap()
            .unwrap();
        assert_eq!(&*k.name, b"PLC 1", "inner spaces stay, padding goes");
        assert_eq!(service_type(k.suffix), "Server");
        let k = parse(
            src(),
            None,
            &registration(b"\x01\x02__MSBROWSE__\x02\x01", false),
        )
        .unwrap()
        .unwrap();
        assert_eq!(&*k.name, b"\x01\x02__MSBROWSE__\x02");
        let group = registration(b"WORKGROUP      \x00", true);
        assert_eq!(parse(src(), None, &group), Ok(None));
    }

    #[test]
    fn bad_registrations() {
        let good = registration(b"HOST           \x00", false);
        for n in 4..good.len() - 6 {
            assert_eq!(parse(src(), None, &good[..n]), Err(Malformed), "{n} bytes");
        }
        assert_eq!(parse(src(), None, &good[..2]), Err(Malformed));
        let mut bad_char = good.clone();
        bad_char[14] = b'Z';
        assert_eq!(parse(src(), None, &bad_char), Err(Malformed));
        let mut bad_len = good.clone();
        bad_len[12] = 0x21;
        assert_eq!(parse(src(), None, &bad_len), Err(Malformed));
        let mut query = good;
        query[2] = 0x01;
        assert_eq!(parse(src(), None, &query), Ok(None));
    }
}
