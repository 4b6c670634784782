//! dhcpv6.log: DHCPv6 client messages to 547/udp: the client's FQDN, its option-request list
//! (a fingerprint of the OS) and vendor class (reference §3.12).
//!
//! The client FQDN option carries a DNS wire-format name; the product writes it as a dotted
//! name (the reference glues the labels together). Control bytes inside labels are removed, as
//! the reference does for the whole name. Options that run past the message, an FQDN label
//! that runs past its option, or a vendor class too short for its enterprise number make the
//! message malformed: no row.

use std::net::IpAddr;

use super::ot::{be16, be32, strip_controls, Malformed, OtKey, Parsed};
use super::window::Agg;
use crate::logs::zeek::{LogStyle, Row, Schema};

pub static DHCPV6_SCHEMA: Schema = Schema {
    path: "dhcpv6",
    fields: &[
        ("ts", "time"),
        ("src_ip", "addr"),
        ("src_mac", "string"),
        ("hostname", "string"),
        ("finger_print", "vector[count]"),
        ("enterprise_number", "count"),
        ("vendor_class", "string"),
    ],
    style: LogStyle::FieldsLine,
};

const RELAY_FORW: u8 = 12;
const RELAY_REPL: u8 = 13;

mod opt {
    pub const ORO: u16 = 6;
    pub const VENDOR_CLASS: u16 = 16;
    pub const CLIENT_FQDN: u16 = 39;
}

/// Most option codes kept for the fingerprint (real clients ask for a dozen or so).
const MAX_ORO: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Dhcpv6Key {
    pub src_ip: IpAddr,
    pub src_mac: Option<[u8; 6]>,
    pub hostname: Option<Box<[u8]>>,
    pub finger_print: Box<[u32]>,
    pub enterprise_number: Option<u32>,
    pub vendor_class: Option<Box<[u8]>>,
}

/// A DNS wire-format name as dotted text (no trailing dot); `None` when a label runs past the
/// data or is a compression pointer (not allowed in this option).
fn dotted_name(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(b.len());
    while let Some((&len, rest)) = b.split_first() {
        if len == 0 {
            break;
        }
        if len & 0xc0 != 0 {
            return None;
        }
        let label = rest.get(..usize::from(len))?;
        let clean = strip_controls(label);
        if !clean.is_empty() {
            if !out.is_empty() {
                out.push(b'.');
            }
            out.extend_from_slice(&clean);
        }
        b = &rest[usize::from(len)..];
    }
    Some(out)
}

/// A UDP payload sent to 547/udp.
pub fn parse(src: IpAddr, src_mac: Option<[u8; 6]>, p: &[u8]) -> Parsed<Dhcpv6Key> {
    let msg_type = *p.first().ok_or(Malformed)?;
    let start = if matches!(msg_type, RELAY_FORW | RELAY_REPL) {
        34
    } else {
        4
    };
    let mut rest = p.get(start..).ok_or(Malformed)?;
    let mut hostname = None;
    let mut oro: Vec<u32> = Vec::new();
    let mut enterprise = 0u32;
    let mut vendor = None;
    while !rest.is_empty() {
        let code = be16(rest, 0).ok_or(Malformed)?;
        let len = usize::from(be16(rest, 2).ok_or(Malformed)?);
        let data = rest.get(4..4 + len).ok_or(Malformed)?;
        rest = &rest[4 + len..];
        match code {
            opt::CLIENT_FQDN => {
                let (_flags, name) = data.split_first().ok_or(Malformed)?;
                let name = dotted_name(name).ok_or(Malformed)?;
                hostname = (!name.is_empty()).then(|| name.into_boxed_slice());
            }
            opt::VENDOR_CLASS => {
                enterprise = be32(data, 0).ok_or(Malformed)?;
                // The reference keeps every byte after the first data length, later length
                // prefixes included.
                let v = data.get(6..).unwrap_or_default();
                vendor = (!v.is_empty()).then(|| Box::<[u8]>::from(v));
            }
            opt::ORO => {
                oro.clear();
                oro.extend(
                    data.chunks_exact(2)
                        .take(MAX_ORO)
                        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))),
                );
            }
            _ => {}
        }
    }
    let mut finger_print = Vec::with_capacity(oro.len() + 1);
    if enterprise != 0 {
        finger_print.push(enterprise);
    }
    finger_print.extend_from_slice(&oro);
    Ok(Some(Dhcpv6Key {
        src_ip: src,
        src_mac,
        hostname,
        finger_print: finger_print.into(),
        enterprise_number: (enterprise != 0).then_some(enterprise),
        vendor_class: vendor,
    }))
}

/// Whether a datagram parses as a DHCPv6 message (service confirmation).
pub fn looks_valid(p: &[u8]) -> bool {
    matches!(p.first(), Some(1..=13))
        && matches!(parse(IpAddr::from([0u8; 16]), None, p), Ok(Some(_)))
}

impl OtKey for Dhcpv6Key {
    fn schema() -> &'static Schema {
        &DHCPV6_SCHEMA
    }

    fn write_row(&self, agg: &Agg, row: &mut Row<'_>) {
        row.time(agg.first);
        row.addr(self.src_ip);
        super::ot::write_mac(row, self.src_mac);
        row.string_opt(self.hostname.as_deref());
        let texts: Vec<String> = self.finger_print.iter().map(u32::to_string).collect();
        row.string_list(Some(texts.iter().map(|s| s.as_bytes())));
        row.count_opt(self.enterprise_number.map(u64::from));
        row.string_opt(self.vendor_class.as_deref());
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn solicit(fqdn: &[u8]) -> Vec<u8> {
        let mut p = vec![1, 0xc8, 0x5f, 0xb6];
        let mut opt = |code: u16, data: &[u8]| {
            p.extend_from_slice(&code.to_be_bytes());
            p.extend_from_slice(&(data.len() as u16).to_be_bytes());
            p.extend_from_slice(data);
        };
        opt(8, &[0, 0]);
        let mut f = vec![0];
        f.extend_from_slice(fqdn);
        opt(opt::CLIENT_FQDN, &f);
        let mut v = 311u32.to_be_bytes().to_vec();
        v.extend_from_slice(&[0, 8]);
        v.extend_from_slice(b"MSFT 5.0");
        opt(opt::VENDOR_CLASS, &v);
        opt(opt::ORO, &[0, 24, 0, 23, 0, 17, 0, 39]);
        p
    }

    #[test]
    fn fqdn_is_dotted() {
        let p = solicit(b"\x0evagrant-2008R2\x05happy\x05crazy\x00");
        assert!(looks_valid(&p));
        let k = parse("fe80::1".parse().unwrap(), None, &p)
            .unwrap()
            .unwrap();
        assert_eq!(
            k.hostname.as_deref(),
            Some(&b"vagrant-2008R2.happy.crazy"[..])
        );
        assert_eq!(&*k.finger_print, &[311, 24, 23, 17, 39]);
        assert_eq!(k.enterprise_number, Some(311));
        assert_eq!(k.vendor_class.as_deref(), Some(&b"MSFT 5.0"[..]));
        let ctl = parse(
            "fe80::1".parse().unwrap(),
            None,
            &solicit(b"\x03a\x01b\x02\x00\x00"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(ctl.hostname.as_deref(), Some(&b"ab"[..]));
    }

    #[test]
    fn truncated_options_and_labels() {
        let src: IpAddr = "fe80::1".parse().unwrap();
        let good = solicit(b"\x04host\x00");
        for n in 5..good.len() {
            if n == 10 || n == 21 || n == 39 {
                continue; // option boundaries: a shorter message, still well-formed
            }
            assert_eq!(parse(src, None, &good[..n]), Err(Malformed), "{n} bytes");
        }
        assert_eq!(parse(src, None, &[]), Err(Malformed));
        assert_eq!(parse(src, None, &[12, 0, 0]), Err(Malformed));
        assert_eq!(parse(src, None, &solicit(b"\x09host\x00")), Err(Malformed));
        assert_eq!(parse(src, None, &solicit(b"\xc0\x0c")), Err(Malformed));
    }
}
