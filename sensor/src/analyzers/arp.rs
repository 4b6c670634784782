//! arp.log: who asked whom for which IPv4 address (reference §3.3).
//!
//! "orig" is always the asker and "resp" the answerer: a request logs its sender and the address
//! asked for (`who_has`); a reply logs the host it answers (its target) as orig and itself as
//! resp. The addresses come from the ARP payload, not the Ethernet header (a proxy or a
//! gratuitous ARP shows what it claims).

use std::net::Ipv4Addr;

use super::ot::{be16, write_mac, Malformed, OtKey, Parsed};
use super::window::Agg;
use crate::logs::zeek::{LogStyle, Row, Schema};

pub static ARP_SCHEMA: Schema = Schema {
    path: "arp",
    fields: &[
        ("ts", "time"),
        ("orig_mac", "string"),
        ("orig_ip", "addr"),
        ("resp_mac", "string"),
        ("resp_ip", "addr"),
        ("who_has", "addr"),
        ("pkts", "int"),
    ],
    style: LogStyle::Zeek,
};

const REQUEST: u16 = 1;
const REPLY: u16 = 2;
/// Ethernet hardware, IPv4 protocol, 6 + 4 byte addresses.
const ETHER_IPV4: [u8; 6] = [0, 1, 8, 0, 6, 4];
const LEN: usize = 28;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ArpKey {
    pub orig_mac: [u8; 6],
    pub orig_ip: Ipv4Addr,
    pub resp_mac: Option<[u8; 6]>,
    pub resp_ip: Ipv4Addr,
    pub who_has: Option<Ipv4Addr>,
}

/// An ARP message (the bytes after the EtherType). Only Ethernet/IPv4 requests and replies are
/// logged; other hardware or protocol types and RARP/InARP opcodes are not ours.
pub fn parse(p: &[u8]) -> Parsed<ArpKey> {
    if p.len() < 8 {
        return Err(Malformed);
    }
    if p[..6] != ETHER_IPV4 {
        // Other address sizes are legal ARP, just not an IPv4 neighbour: only a claimed
        // Ethernet/IPv4 header with the wrong sizes is broken.
        if p[..4] == ETHER_IPV4[..4] {
            return Err(Malformed);
        }
        return Ok(None);
    }
    if p.len() < LEN {
        return Err(Malformed);
    }
    let mac = |i: usize| -> [u8; 6] { p[i..i + 6].try_into().unwrap_or([0; 6]) };
    let ip = |i: usize| Ipv4Addr::new(p[i], p[i + 1], p[i + 2], p[i + 3]);
    let (sha, spa, tha, tpa) = (mac(8), ip(14), mac(18), ip(24));
    match be16(p, 6) {
        Some(REQUEST) => Ok(Some(ArpKey {
            orig_mac: sha,
            orig_ip: spa,
            resp_mac: None,
            resp_ip: tpa,
            who_has: Some(tpa),
        })),
        Some(REPLY) => Ok(Some(ArpKey {
            orig_mac: tha,
            orig_ip: tpa,
            resp_mac: Some(sha),
            resp_ip: spa,
            who_has: None,
        })),
        _ => Ok(None),
    }
}

impl OtKey for ArpKey {
    fn schema() -> &'static Schema {
        &ARP_SCHEMA
    }

    fn write_row(&self, agg: &Agg, row: &mut Row<'_>) {
        row.time(agg.first);
        write_mac(row, Some(self.orig_mac));
        row.addr(self.orig_ip.into());
        write_mac(row, self.resp_mac);
        row.addr(self.resp_ip.into());
        row.addr_opt(self.who_has.map(Into::into));
        row.count(agg.count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arp(op: u16) -> Vec<u8> {
        let mut p = ETHER_IPV4.to_vec();
        p.extend_from_slice(&op.to_be_bytes());
        p.extend_from_slice(&[2, 0, 0, 0, 0, 1, 10, 0, 0, 1]);
        p.extend_from_slice(&[2, 0, 0, 0, 0, 2, 10, 0, 0, 2]);
        p
    }

    #[test]
    fn request_and_reply_name_the_asker_orig() {
        let rq = parse(&arp(REQUEST)).unwrap().unwrap();
        assert_eq!(rq.orig_mac, [2, 0, 0, 0, 0, 1]);
        assert_eq!(rq.orig_ip, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(
            (rq.resp_mac, rq.who_has),
            (None, Some(Ipv4Addr::new(10, 0, 0, 2)))
        );
        let rp = parse(&arp(REPLY)).unwrap().unwrap();
        assert_eq!(rp.orig_mac, [2, 0, 0, 0, 0, 2]);
        assert_eq!(rp.orig_ip, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(rp.resp_mac, Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(rp.resp_ip, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(rp.who_has, None);
    }

    #[test]
    fn bad_input_is_counted_not_logged() {
        let full = arp(REQUEST);
        for n in 0..LEN {
            assert_eq!(parse(&full[..n]), Err(Malformed), "{n} bytes");
        }
        let mut sizes = full.clone();
        sizes[4] = 8;
        assert_eq!(parse(&sizes), Err(Malformed));
        let mut rarp = full.clone();
        rarp[7] = 3;
        assert_eq!(parse(&rarp), Ok(None));
        let mut other_hw = full;
        other_hw[1] = 6;
        assert_eq!(parse(&other_hw), Ok(None));
    }
}
