//! Tunnel recognition: given a decoded IP layer, is there another IP packet inside it?
//!
//! The rules follow Zeek's packet analyzers so that the same packets are decapsulated:
//! IP-in-IP by protocol number; GRE by version and protocol type; UDP tunnels by well-known port,
//! with the port that Zeek's connection would treat as the responder's, and never when the
//! carrier's UDP checksum was verified and found wrong (Zeek discards such a datagram before any
//! analyzer sees it). Heuristic tunnels (Teredo, GTP) additionally need a plausible inner header.

use super::bytes::{be16, tail, u8_at};
use super::ip::proto;
use super::link::{PPP_IPV4, PPP_IPV6};
use super::{Transport, TunnelKind};

/// UDP ports of the tunnel protocols.
pub(crate) mod port {
    pub const VXLAN: u16 = 4789;
    pub const GENEVE: u16 = 6081;
    pub const TEREDO: u16 = 3544;
    pub const AYIYA: u16 = 5072;
    pub const GTP_U: u16 = 2152;
    pub const GTP_C: u16 = 2123;
    pub const GRE_IN_UDP: u16 = 4754;
}

/// How the inner packet starts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Inner<'a> {
    Ip(&'a [u8]),
    Ethernet(&'a [u8]),
}

/// A recognised tunnel: its kind, the inner packet's bytes, and how many bytes of them the
/// capture lost (so that the inner IP header's lengths can be checked against the wire).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tunnel<'a> {
    pub kind: TunnelKind,
    pub inner: Inner<'a>,
    pub missing: usize,
}

/// False for IP protocols that never carry a tunnel (TCP, ICMP, ...): the decoder skips
/// [`detect`] for them.
#[inline]
pub(crate) fn may_carry(ip_proto: u8) -> bool {
    matches!(
        ip_proto,
        proto::IPIP | proto::IPV6 | proto::GRE | proto::UDP
    )
}

/// Looks for a tunnel in a layer's transport. `missing` is how many bytes of the IP payload
/// were cut off by the capture.
#[inline]
pub(crate) fn detect<'a>(ip_proto: u8, t: &Transport<'a>, missing: usize) -> Option<Tunnel<'a>> {
    // Nearly every packet is TCP, or UDP between ports no tunnel uses and a known service:
    // settle those here, inlined, before the full rules.
    match t {
        Transport::Tcp(_) | Transport::Icmp(_) => return None,
        Transport::Udp(u)
            if !may_be_tunnel_port(u.src_port)
                && !may_be_tunnel_port(u.dst_port)
                && (is_likely_server_port(u.src_port) || is_likely_server_port(u.dst_port)) =>
        {
            return None
        }
        _ => {}
    }
    detect_rules(ip_proto, t, missing)
}

/// False for ports that are certainly not tunnel ports (all of them lie in one range).
#[inline]
fn may_be_tunnel_port(p: u16) -> bool {
    (port::GTP_C..=port::GENEVE).contains(&p)
}

fn detect_rules<'a>(ip_proto: u8, t: &Transport<'a>, missing: usize) -> Option<Tunnel<'a>> {
    match (ip_proto, t) {
        (proto::IPIP, Transport::Other { payload })
        | (proto::IPV6, Transport::Other { payload }) => {
            let want = if ip_proto == proto::IPIP { 4 } else { 6 };
            (u8_at(payload, 0)? >> 4 == want).then_some(Tunnel {
                kind: TunnelKind::IpInIp,
                inner: Inner::Ip(payload),
                missing,
            })
        }
        (proto::GRE, Transport::Other { payload }) => {
            let inner = gre(payload)?;
            Some(Tunnel {
                kind: TunnelKind::Gre,
                inner,
                missing,
            })
        }
        (proto::UDP, Transport::Udp(u)) => {
            if !u.checksum_ok {
                return None;
            }
            let missing = (u.payload_len as usize).saturating_sub(u.payload.len());
            let Some(port) = udp_tunnel_port(u.src_port, u.dst_port) else {
                // Teredo relays use arbitrary ports, so Teredo is also recognised by content,
                // but not on ports that belong to a known service (a DNS id of 0 followed by
                // the right bytes must stay DNS).
                if is_likely_server_port(u.src_port) || is_likely_server_port(u.dst_port) {
                    return None;
                }
                let inner = teredo_by_content(u.payload)?;
                return Some(Tunnel {
                    kind: TunnelKind::Teredo,
                    inner: Inner::Ip(inner),
                    missing,
                });
            };
            let (kind, inner) = match port {
                port::VXLAN => (TunnelKind::Vxlan, Inner::Ethernet(tail(u.payload, 8)?)),
                port::GENEVE => (TunnelKind::Geneve, geneve(u.payload)?),
                port::TEREDO => (TunnelKind::Teredo, Inner::Ip(teredo(u.payload)?)),
                port::AYIYA => (TunnelKind::Ayiya, Inner::Ip(ayiya(u.payload)?)),
                port::GTP_U | port::GTP_C => (TunnelKind::GtpU, Inner::Ip(gtp_u(u.payload)?)),
                port::GRE_IN_UDP => (TunnelKind::GreInUdp, gre(u.payload)?),
                _ => return None,
            };
            Some(Tunnel {
                kind,
                inner,
                missing,
            })
        }
        _ => None,
    }
}

#[inline]
fn is_tunnel_port(p: u16) -> bool {
    matches!(
        p,
        port::VXLAN
            | port::GENEVE
            | port::TEREDO
            | port::AYIYA
            | port::GTP_U
            | port::GTP_C
            | port::GRE_IN_UDP
    )
}

/// UDP ports that Zeek's default scripts register an analyzer for (its `likely_server_ports`).
/// A datagram sent *from* a tunnel port *to* one of these keeps the latter as the responder.
#[inline]
pub fn is_likely_server_port(p: u16) -> bool {
    is_tunnel_port(p)
        || matches!(
            p,
            53 | 67
                | 68
                | 69
                | 88
                | 123
                | 137
                | 138
                | 161
                | 162
                | 389
                | 443
                | 500
                | 514
                | 546
                | 547
                | 1812
                | 1813
                | 4500
                | 5060
                | 5353
                | 5355
                | 47808
        )
}

/// The port that selects the tunnel analyzer: Zeek dispatches on the connection's responder
/// port, and a datagram's source port only becomes the responder's when the destination port is
/// not itself a likely server port (corpus `gtp-false-gtp-dns`: 2152 -> 53 is DNS, not GTP).
fn udp_tunnel_port(src: u16, dst: u16) -> Option<u16> {
    if is_tunnel_port(dst) {
        Some(dst)
    } else if is_tunnel_port(src) && !is_likely_server_port(dst) {
        Some(src)
    } else {
        None
    }
}

/// GRE (RFC 2784/2890) and enhanced GRE for PPTP (RFC 2637).
fn gre(b: &[u8]) -> Option<Inner<'_>> {
    const CSUM: u16 = 0x8000;
    const ROUTING: u16 = 0x4000;
    const KEY: u16 = 0x2000;
    const SEQ: u16 = 0x1000;
    const ACK: u16 = 0x0080;
    let flags = be16(b, 0)?;
    let ptype = be16(b, 2)?;
    if flags & ROUTING != 0 {
        // Source routing was deprecated long ago; Zeek refuses such packets too.
        return None;
    }
    let version = flags & 0x7;
    let mut len = 4;
    for bit in [CSUM, KEY, SEQ] {
        if flags & bit != 0 {
            len += 4;
        }
    }
    match version {
        0 => {
            let rest = tail(b, len)?;
            match ptype {
                0x0800 | 0x86dd => Some(Inner::Ip(rest)),
                0x6558 => Some(Inner::Ethernet(rest)),
                // ERSPAN type II has a sequence number and an 8-byte header; type I neither.
                0x88be if flags & SEQ != 0 => Some(Inner::Ethernet(tail(rest, 8)?)),
                0x88be => Some(Inner::Ethernet(rest)),
                // ERSPAN type III: 12 bytes, plus 8 of platform data when the O bit is set.
                0x22eb => {
                    let o = u8_at(rest, 11)? & 0x01 != 0;
                    Some(Inner::Ethernet(tail(rest, if o { 20 } else { 12 })?))
                }
                _ => None,
            }
        }
        1 => {
            if ptype != 0x880b {
                return None;
            }
            if flags & ACK != 0 {
                len += 4;
            }
            let mut ppp = tail(b, len)?;
            if ppp.starts_with(&[0xff, 0x03]) {
                ppp = tail(ppp, 2)?;
            }
            // Protocol-field compression: an odd first byte is a one-byte protocol number.
            let first = u8_at(ppp, 0)?;
            let (proto, rest) = if first & 1 == 1 {
                (u16::from(first), tail(ppp, 1)?)
            } else {
                (be16(ppp, 0)?, tail(ppp, 2)?)
            };
            matches!(proto, PPP_IPV4 | PPP_IPV6).then_some(Inner::Ip(rest))
        }
        _ => None,
    }
}

/// Geneve (RFC 8926): 8 bytes plus options; the protocol type says what follows.
fn geneve(b: &[u8]) -> Option<Inner<'_>> {
    let b0 = u8_at(b, 0)?;
    if b0 >> 6 != 0 {
        return None;
    }
    let opts = usize::from(b0 & 0x3f) * 4;
    let rest = tail(b, 8 + opts)?;
    match be16(b, 2)? {
        0x6558 => Some(Inner::Ethernet(rest)),
        0x0800 | 0x86dd => Some(Inner::Ip(rest)),
        _ => None,
    }
}

/// Teredo (RFC 4380): optional authentication and origin indications, then an IPv6 packet
/// that must look valid (version 6 and a payload length the datagram can hold), because port
/// 3544 alone is weak evidence.
fn teredo(mut b: &[u8]) -> Option<&[u8]> {
    if be16(b, 0)? == 0x0001 {
        let id_len = usize::from(u8_at(b, 2)?);
        let au_len = usize::from(u8_at(b, 3)?);
        // Indicator, lengths, client id, auth value, 8-byte nonce, confirmation byte.
        b = tail(b, 4 + id_len + au_len + 8 + 1)?;
    }
    if be16(b, 0)? == 0x0000 {
        b = tail(b, 8)?;
    }
    if b.len() < 40 || u8_at(b, 0)? >> 4 != 6 {
        return None;
    }
    let plen = usize::from(be16(b, 4)?);
    (40 + plen <= b.len()).then_some(b)
}

/// Teredo on a port other than 3544: only with an indication header, or an IPv6 packet to or
/// from a Teredo address (2001:0::/32), as Zeek's protocol detection requires (corpus `teredo`:
/// the relay at port 32900).
fn teredo_by_content(b: &[u8]) -> Option<&[u8]> {
    const PREFIX: [u8; 4] = [0x20, 0x01, 0x00, 0x00];
    let indicated = matches!(be16(b, 0)?, 0x0000 | 0x0001);
    let inner = teredo(b)?;
    let teredo_addr = |at: usize| inner.get(at..at + 4) == Some(&PREFIX[..]);
    (indicated || teredo_addr(8) || teredo_addr(24)).then_some(inner)
}

/// AYIYA: a header of variable length (identity 2^n bytes, signature n*4 bytes); only
/// "forward" operations carry a packet, and only IPv4/IPv6 are tunnelled.
fn ayiya(b: &[u8]) -> Option<&[u8]> {
    let id_len = 1usize << (u8_at(b, 0)? >> 4);
    let sig_len = usize::from(u8_at(b, 1)? >> 4) * 4;
    let op = u8_at(b, 2)? & 0x0f;
    let next = u8_at(b, 3)?;
    if op != 1 || (next != proto::IPIP && next != proto::IPV6) {
        return None;
    }
    tail(b, 8 + id_len + sig_len)
}

/// GTPv1-U: only version 1, protocol type GTP, message type T-PDU (0xff), and an inner packet
/// whose first nibble says IPv4 or IPv6.
fn gtp_u(b: &[u8]) -> Option<&[u8]> {
    let flags = u8_at(b, 0)?;
    if flags >> 5 != 1 || flags & 0x10 == 0 || u8_at(b, 1)? != 0xff {
        return None;
    }
    let mut len = 8;
    if flags & 0x07 != 0 {
        // Sequence number, N-PDU number and next extension type are all present if any is.
        len = 12;
        let mut next_ext = u8_at(b, 11)?;
        if flags & 0x04 != 0 {
            // Each extension header gives its length in 4-byte units and ends with the next type.
            let mut guard = 0;
            while next_ext != 0 {
                let units = usize::from(u8_at(b, len)?);
                guard += 1;
                if units == 0 || guard > 32 {
                    return None;
                }
                len += units * 4;
                next_ext = u8_at(b, len - 1)?;
            }
        }
    }
    let inner = tail(b, len)?;
    matches!(u8_at(inner, 0)? >> 4, 4 | 6).then_some(inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::UdpDatagram;

    fn udp<'a>(sp: u16, dp: u16, payload: &'a [u8], ok: bool) -> Transport<'a> {
        Transport::Udp(UdpDatagram {
            src_port: sp,
            dst_port: dp,
            payload_len: payload.len() as u32,
            payload,
            checksum_ok: ok,
        })
    }

    fn ip6_header(plen: u16) -> Vec<u8> {
        let mut h = vec![0x60, 0, 0, 0];
        h.extend_from_slice(&plen.to_be_bytes());
        h.extend_from_slice(&[59, 64]);
        h.extend_from_slice(&[0; 32]);
        h.extend_from_slice(&vec![0; usize::from(plen)]);
        h
    }

    #[test]
    fn port_choice() {
        assert_eq!(udp_tunnel_port(1234, 4789), Some(4789));
        assert_eq!(udp_tunnel_port(4789, 1234), Some(4789));
        assert_eq!(udp_tunnel_port(2152, 53), None);
        assert_eq!(udp_tunnel_port(53, 2152), Some(2152));
        assert_eq!(udp_tunnel_port(53, 80), None);
    }

    #[test]
    fn bad_udp_checksum_is_not_decapsulated() {
        let p = [
            0x08, 0, 0, 0, 0, 0, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 8, 0,
        ];
        assert!(detect(proto::UDP, &udp(1, 4789, &p, true), 0).is_some());
        assert!(detect(proto::UDP, &udp(1, 4789, &p, false), 0).is_none());
    }

    #[test]
    fn gre_variants() {
        let ip = [0x45, 0, 0, 20];
        let mut g = vec![0x00, 0x00, 0x08, 0x00];
        g.extend_from_slice(&ip);
        assert!(matches!(gre(&g), Some(Inner::Ip(b)) if b == ip));
        // Key and sequence present.
        let mut g = vec![0x30, 0x00, 0x86, 0xdd, 0, 0, 0, 1, 0, 0, 0, 2];
        g.extend_from_slice(&[0x60]);
        assert!(matches!(gre(&g), Some(Inner::Ip(b)) if b == [0x60]));
        // Routing bit, unknown version, unknown type.
        assert!(gre(&[0x40, 0, 8, 0, 0x45]).is_none());
        assert!(gre(&[0x00, 0x02, 8, 0, 0x45]).is_none());
        assert!(gre(&[0x00, 0x00, 0x12, 0x34, 0x45]).is_none());
        // ERSPAN II (sequence bit, 8-byte header) and I.
        let mut g = vec![0x10, 0x00, 0x88, 0xbe, 0, 0, 0, 1];
        g.extend_from_slice(&[0x10, 0, 0, 1, 0, 0, 0, 0]);
        g.extend_from_slice(&[0xaa; 14]);
        assert!(matches!(gre(&g), Some(Inner::Ethernet(b)) if b == [0xaa; 14]));
        let mut g = vec![0x00, 0x00, 0x88, 0xbe];
        g.extend_from_slice(&[0xbb; 14]);
        assert!(matches!(gre(&g), Some(Inner::Ethernet(b)) if b == [0xbb; 14]));
        // ERSPAN III with platform-specific subheader.
        let mut g = vec![0x10, 0x00, 0x22, 0xeb, 0, 0, 0, 1];
        g.extend_from_slice(&[0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01]);
        g.extend_from_slice(&[0; 8]);
        g.extend_from_slice(&[0xcc; 14]);
        assert!(matches!(gre(&g), Some(Inner::Ethernet(b)) if b == [0xcc; 14]));
        // PPTP: key + ack, PPP with address/control and IPv4.
        let mut g = vec![0x30, 0x81, 0x88, 0x0b, 0, 10, 0, 1, 0, 0, 0, 5, 0, 0, 0, 4];
        g.extend_from_slice(&[0xff, 0x03, 0x00, 0x21, 0x45]);
        assert!(matches!(gre(&g), Some(Inner::Ip(b)) if b == [0x45]));
        let mut g = vec![0x30, 0x01, 0x88, 0x0b, 0, 10, 0, 1, 0, 0, 0, 5];
        g.extend_from_slice(&[0x21, 0x45]);
        assert!(matches!(gre(&g), Some(Inner::Ip(b)) if b == [0x45]));
        let mut g = vec![0x30, 0x01, 0x88, 0x0b, 0, 10, 0, 1, 0, 0, 0, 5];
        g.extend_from_slice(&[0xc0, 0x21, 0x01]); // LCP
        assert!(gre(&g).is_none());
    }

    #[test]
    fn teredo_needs_ipv6() {
        let v6 = ip6_header(0);
        assert!(teredo(&v6).is_some());
        let mut origin = vec![0, 0, 0x12, 0x34, 1, 2, 3, 4];
        origin.extend_from_slice(&v6);
        assert!(teredo(&origin).is_some());
        let mut auth = vec![0, 1, 2, 3, 9, 9, 8, 8, 8];
        auth.extend_from_slice(&[0; 9]);
        auth.extend_from_slice(&origin);
        assert!(teredo(&auth).is_some());
        // Not IPv6, or a payload length the datagram cannot hold.
        assert!(teredo(&[0x45; 60]).is_none());
        let mut long = ip6_header(0);
        long[5] = 100;
        assert!(teredo(&long).is_none());
    }

    #[test]
    fn teredo_on_other_ports_needs_evidence() {
        let mut v6 = ip6_header(0);
        assert!(teredo_by_content(&v6).is_none());
        v6[8..12].copy_from_slice(&[0x20, 0x01, 0, 0]);
        assert!(teredo_by_content(&v6).is_some());
        let t = udp(32900, 3797, &v6, true);
        assert!(matches!(
            detect(proto::UDP, &t, 0),
            Some(Tunnel {
                kind: TunnelKind::Teredo,
                ..
            })
        ));
        let mut origin = vec![0, 0, 0x12, 0x34, 1, 2, 3, 4];
        origin.extend_from_slice(&ip6_header(0));
        assert!(teredo_by_content(&origin).is_some());
    }

    #[test]
    fn ayiya_forward_only() {
        let mut a = vec![0x41, 0x52, 0x11, 41, 0, 0, 0, 0];
        a.extend_from_slice(&[0; 16]); // identity 2^4
        a.extend_from_slice(&[0; 20]); // signature 5*4
        a.push(0x60);
        assert_eq!(ayiya(&a), Some(&[0x60][..]));
        a[2] = 0x12;
        assert!(ayiya(&a).is_none());
    }

    #[test]
    fn gtp_t_pdu_only() {
        let mut g = vec![0x30, 0xff, 0, 4, 0, 0, 0, 1, 0x45, 0, 0, 20];
        assert!(gtp_u(&g).is_some());
        g[1] = 0x01; // echo request
        assert!(gtp_u(&g).is_none());
        // Sequence flag, one extension header (PDU session container) then IPv6.
        let g = [
            0x36, 0xff, 0, 12, 0, 0, 0, 1, 0, 1, 0, 0x85, 1, 0x10, 0x01, 0, 0x60,
        ];
        assert_eq!(gtp_u(&g), Some(&[0x60][..]));
        // Zero-length extension would loop.
        let g = [
            0x34, 0xff, 0, 12, 0, 0, 0, 1, 0, 1, 0, 0x85, 0, 0, 0, 0, 0x60,
        ];
        assert!(gtp_u(&g).is_none());
        // DNS that happens to use port 2152.
        assert!(gtp_u(&[0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0]).is_none());
    }

    #[test]
    fn geneve_with_options() {
        let mut g = vec![0x02, 0x00, 0x65, 0x58, 0, 0, 1, 0];
        g.extend_from_slice(&[0; 8]);
        g.extend_from_slice(&[0xee; 14]);
        assert!(matches!(geneve(&g), Some(Inner::Ethernet(b)) if b == [0xee; 14]));
        g[0] = 0x40;
        assert!(geneve(&g).is_none());
    }

    #[test]
    fn ip_in_ip_version_must_match() {
        let v4 = [0x45u8, 0, 0, 20];
        let t = Transport::Other { payload: &v4 };
        assert!(detect(proto::IPIP, &t, 0).is_some());
        assert!(detect(proto::IPV6, &t, 0).is_none());
    }
}
