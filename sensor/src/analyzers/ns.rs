//! ns.log: IPv6 neighbour solicitations and advertisements, the ARP of IPv6 (reference §3.4).
//!
//! As in arp.log, "orig" is the host that asks and "resp" the one that answers. A solicitation
//! logs its sender and the target asked for (`who_has`); an advertisement logs the host it is
//! sent to as orig and its sender as resp. Unsolicited advertisements to a multicast group
//! answer nobody and are not logged. Columns follow the product order (the reference script
//! writes the MACs first).

use std::net::{IpAddr, Ipv6Addr};

use super::ot::{write_mac, Malformed, OtKey, Parsed};
use super::window::Agg;
use crate::logs::zeek::{LogStyle, Row, Schema};

pub static NS_SCHEMA: Schema = Schema {
    path: "ns",
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

pub const SOLICITATION: u8 = 135;
pub const ADVERTISEMENT: u8 = 136;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NsKey {
    pub orig_mac: Option<[u8; 6]>,
    pub orig_ip: IpAddr,
    pub resp_mac: Option<[u8; 6]>,
    pub resp_ip: Ipv6Addr,
    pub who_has: Option<Ipv6Addr>,
}

/// One ICMPv6 message: `body` is what follows the 8-byte ICMPv6 header (the target address
/// first). `src`/`dst` are the IP addresses with the Ethernet MACs of the frame.
pub fn parse(
    icmp_type: u8,
    src: (IpAddr, Option<[u8; 6]>),
    dst: (IpAddr, Option<[u8; 6]>),
    body: &[u8],
) -> Parsed<NsKey> {
    if icmp_type != SOLICITATION && icmp_type != ADVERTISEMENT {
        return Ok(None);
    }
    let Some(target) = body.get(..16) else {
        return Err(Malformed);
    };
    let target = Ipv6Addr::from(<[u8; 16]>::try_from(target).map_err(|_| Malformed)?);
    if icmp_type == SOLICITATION {
        return Ok(Some(NsKey {
            orig_mac: src.1,
            orig_ip: src.0,
            resp_mac: None,
            resp_ip: target,
            who_has: Some(target),
        }));
    }
    if dst.0.is_multicast() {
        return Ok(None);
    }
    Ok(Some(NsKey {
        orig_mac: dst.1,
        orig_ip: dst.0,
        resp_mac: src.1,
        resp_ip: target,
        who_has: None,
    }))
}

impl OtKey for NsKey {
    fn schema() -> &'static Schema {
        &NS_SCHEMA
    }

    fn write_row(&self, agg: &Agg, row: &mut Row<'_>) {
        row.time(agg.first);
        write_mac(row, self.orig_mac);
        row.addr(self.orig_ip);
        write_mac(row, self.resp_mac);
        row.addr(self.resp_ip.into());
        row.addr_opt(self.who_has.map(Into::into));
        row.count(agg.count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn solicitation_and_advertisement() {
        let tgt: Ipv6Addr = "fe80::b".parse().unwrap();
        let body = tgt.octets();
        let ns = parse(
            SOLICITATION,
            (ip("fe80::a"), Some(A)),
            (ip("ff02::1:ff00:b"), Some([0x33, 0x33, 0xff, 0, 0, 0xb])),
            &body,
        )
        .unwrap()
        .unwrap();
        assert_eq!((ns.orig_mac, ns.orig_ip), (Some(A), ip("fe80::a")));
        assert_eq!(
            (ns.resp_mac, ns.resp_ip, ns.who_has),
            (None, tgt, Some(tgt))
        );
        let na = parse(
            ADVERTISEMENT,
            (ip("fe80::b"), Some(B)),
            (ip("fe80::a"), Some(A)),
            &body,
        )
        .unwrap()
        .unwrap();
        assert_eq!((na.orig_mac, na.orig_ip), (Some(A), ip("fe80::a")));
        assert_eq!((na.resp_mac, na.resp_ip, na.who_has), (Some(B), tgt, None));
        let unsolicited = parse(
            ADVERTISEMENT,
            (ip("fe80::b"), Some(B)),
            (ip("ff02::1"), None),
            &body,
        );
        assert_eq!(unsolicited, Ok(None));
    }

    #[test]
    fn short_and_foreign_messages() {
        let src = (ip("fe80::a"), None);
        for n in 0..16 {
            assert_eq!(parse(SOLICITATION, src, src, &[0; 16][..n]), Err(Malformed));
        }
        assert_eq!(parse(128, src, src, &[]), Ok(None));
    }
}
