//! IPv4 and IPv6 headers (with IPv6 extension headers) and the TCP, UDP and ICMP headers they
//! carry, with checksum verification.
//!
//! Lengths follow the rule Zeek applies: the IP header's length field says how long the datagram
//! is on the wire. More than the wire holds is a truncated datagram and dropped; more than the
//! capture holds (snap length) is decoded with the bytes that are there, and the transport's
//! `payload_len` still comes from the header, because that is what Zeek counts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::bytes::{be16, be32, clip, tail, u8_at, verifies, verifies_fixed, Checksum};
use super::{DropReason, IcmpMessage, TcpSegment, Transport, UdpDatagram};

/// IP protocol numbers the decoder acts on.
pub(crate) mod proto {
    pub const HOPOPT: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const GRE: u8 = 47;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const DSTOPTS: u8 = 60;
}

/// More extension headers than this in one chain is treated as an attack, not a packet.
const MAX_EXT_HEADERS: usize = 32;

/// A fragment's place in its datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FragInfo {
    /// Byte offset of this fragment's data in the reassembled payload.
    pub offset: usize,
    pub more: bool,
    /// IPv4 identification or IPv6 fragment header identification.
    pub id: u32,
}

/// An address as it sits in the packet. The decoder passes addresses around as borrows and
/// makes an [`IpAddr`] only when it writes the layer: `IpAddr` is a 17-byte value aligned to
/// one byte, which the compiler moves a byte at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Addr<'a> {
    V4(&'a [u8; 4]),
    V6(&'a [u8; 16]),
}

impl Addr<'_> {
    #[inline]
    pub fn ip(self) -> IpAddr {
        match self {
            Addr::V4(a) => IpAddr::V4(Ipv4Addr::from(*a)),
            Addr::V6(a) => IpAddr::V6(Ipv6Addr::from(*a)),
        }
    }

    /// The address at `at` in `b`, `None` when `b` is too short.
    #[inline]
    fn v4_at(b: &[u8], at: usize) -> Option<Addr<'_>> {
        Some(Addr::V4(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
    }

    #[inline]
    fn v6_at(b: &[u8], at: usize) -> Option<Addr<'_>> {
        Some(Addr::V6(b.get(at..at.checked_add(16)?)?.try_into().ok()?))
    }
}

/// A parsed IP header (and IPv6 extension headers up to the transport or a fragment header).
#[derive(Clone, Copy, Debug)]
pub(crate) struct IpHeader<'a> {
    pub v6: bool,
    pub src: Addr<'a>,
    pub dst: Addr<'a>,
    pub ttl: u8,
    pub dont_fragment: bool,
    pub ip_id: u16,
    pub header_len: u16,
    /// The transport protocol, or for a fragment the protocol of the reassembled payload.
    pub proto: u8,
    pub ip_len: u32,
    /// IPv6: bytes of extension headers before the payload (before the fragment header for
    /// fragments). 0 for IPv4.
    pub ext_len: usize,
    /// Captured bytes after all headers (for fragments: this fragment's data).
    pub payload: &'a [u8],
    /// Length of that payload according to the headers.
    pub payload_wire: usize,
    pub frag: Option<FragInfo>,
    /// The destination the transport checksum covers when it is not `dst`: an IPv6 routing
    /// header with segments left names the packet's final destination.
    pub final_dst: Option<Addr<'a>>,
    /// The fixed header bytes as captured (IPv4 with its options; IPv6's 40 bytes), for the
    /// analyzers that read header fields the decoder does not interpret (TOS, flow label, ...).
    pub header: &'a [u8],
}

/// Parses an IP header, choosing the version by the first nibble. `wire` is how many bytes the
/// packet had on the wire from its first byte on (at least `data.len()`).
#[inline(always)]
pub(crate) fn parse(data: &[u8], wire: usize, verify: bool) -> Result<IpHeader<'_>, DropReason> {
    match u8_at(data, 0).map(|b| b >> 4) {
        Some(4) => parse_v4(data, wire, verify),
        Some(6) => parse_v6(data, wire),
        Some(_) => Err(DropReason::Malformed),
        None => Err(DropReason::Truncated),
    }
}

#[inline(always)]
fn parse_v4(b: &[u8], wire: usize, verify: bool) -> Result<IpHeader<'_>, DropReason> {
    let t = DropReason::Truncated;
    let vihl = u8_at(b, 0).ok_or(t)?;
    let ihl = usize::from(vihl & 0x0f) * 4;
    if ihl < 20 {
        return Err(DropReason::Malformed);
    }
    let hdr = b.get(..ihl).ok_or(t)?;
    let mut total = usize::from(be16(b, 2).ok_or(t)?);
    if total == 0 {
        // Segmentation offload leaves the length zero in captures taken on the sending host.
        // Those packets' checksums are wrong too, so they only make sense when not verifying.
        if verify {
            return Err(DropReason::Malformed);
        }
        total = wire;
    }
    if total < ihl {
        return Err(DropReason::Malformed);
    }
    if total > wire {
        return Err(DropReason::Truncated);
    }
    // Nearly every header is 20 bytes: with the length known the sum is five straight adds.
    let hdr_ok = |hdr: &[u8]| match <&[u8; 20]>::try_from(hdr) {
        Ok(fixed) => verifies_fixed(fixed),
        Err(_) => verifies(hdr),
    };
    if verify && !hdr_ok(hdr) {
        return Err(DropReason::BadChecksum);
    }
    let flags = be16(b, 6).ok_or(t)?;
    let id = be16(b, 4).ok_or(t)?;
    let offset = usize::from(flags & 0x1fff) * 8;
    let more = flags & 0x2000 != 0;
    let frag = (more || offset != 0).then_some(FragInfo {
        offset,
        more,
        id: u32::from(id),
    });
    let src = Addr::v4_at(b, 12).ok_or(t)?;
    let dst = Addr::v4_at(b, 16).ok_or(t)?;
    let payload = b.get(ihl..total.min(b.len())).unwrap_or(&[]);
    Ok(IpHeader {
        v6: false,
        src,
        dst,
        ttl: u8_at(b, 8).ok_or(t)?,
        dont_fragment: flags & 0x4000 != 0,
        ip_id: id,
        header_len: ihl as u16,
        proto: u8_at(b, 9).ok_or(t)?,
        ip_len: total as u32,
        ext_len: 0,
        payload,
        payload_wire: total - ihl,
        frag,
        final_dst: None,
        header: hdr,
    })
}

fn parse_v6(b: &[u8], wire: usize) -> Result<IpHeader<'_>, DropReason> {
    let t = DropReason::Truncated;
    if b.len() < 40 {
        return Err(t);
    }
    let plen = usize::from(be16(b, 4).ok_or(t)?);
    let total = 40 + plen;
    if total > wire {
        return Err(DropReason::Truncated);
    }
    let next = u8_at(b, 6).ok_or(t)?;
    let src = Addr::v6_at(b, 8).ok_or(t)?;
    let dst = Addr::v6_at(b, 24).ok_or(t)?;
    let body = b.get(40..total.min(b.len())).unwrap_or(&[]);
    let chain = walk_ext(next, body, plen)?;
    Ok(IpHeader {
        v6: true,
        src,
        dst,
        ttl: u8_at(b, 7).ok_or(t)?,
        dont_fragment: false,
        ip_id: 0,
        header_len: 40,
        proto: chain.proto,
        ip_len: total as u32,
        ext_len: chain.ext_len,
        payload: tail(body, chain.payload_at).unwrap_or(&[]),
        payload_wire: plen.saturating_sub(chain.payload_at),
        frag: chain.frag,
        final_dst: chain.final_dst,
        header: b.get(..40).unwrap_or(&[]),
    })
}

/// Where an IPv6 extension-header chain ends.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ExtChain<'a> {
    /// The transport protocol (or, at a fragment header, the fragmented payload's first header).
    pub proto: u8,
    /// Bytes of extension headers before the payload, not counting a fragment header.
    pub ext_len: usize,
    /// Offset of the payload (or fragment data) in the walked bytes.
    pub payload_at: usize,
    pub frag: Option<FragInfo>,
    /// Final destination from a routing header with segments left.
    pub final_dst: Option<Addr<'a>>,
}

/// The final destination named by a routing header (`rh`, the whole header) that still has
/// segments to visit: the last address for type 0, the home address for type 2 (Mobile IPv6),
/// the first list entry for type 4 (segment routing, whose list is stored in reverse).
fn routing_final_dst(rh: &[u8]) -> Option<Addr<'_>> {
    let rtype = u8_at(rh, 2)?;
    let segments_left = u8_at(rh, 3)?;
    if segments_left == 0 {
        return None;
    }
    let addrs = tail(rh, 8)?;
    let n = addrs.len() / 16;
    let pick = match rtype {
        0 => n.checked_sub(1)?,
        2 | 4 => 0,
        _ => return None,
    };
    Addr::v6_at(addrs, pick * 16)
}

/// Walks IPv6 extension headers in `body` (captured bytes; `wire` of them per the header).
/// Stops at the first non-extension protocol or at a fragment header that really fragments;
/// an "atomic" fragment header (offset 0, no more fragments) is skipped over.
pub(crate) fn walk_ext(mut next: u8, body: &[u8], wire: usize) -> Result<ExtChain<'_>, DropReason> {
    let mut at = 0usize;
    let mut ext_len = 0usize;
    let mut final_dst = None;
    for _ in 0..MAX_EXT_HEADERS {
        let len = match next {
            proto::HOPOPT | proto::ROUTING | proto::DSTOPTS => {
                (usize::from(u8_at(body, at + 1).ok_or(DropReason::Truncated)?) + 1) * 8
            }
            proto::AH => (usize::from(u8_at(body, at + 1).ok_or(DropReason::Truncated)?) + 2) * 4,
            proto::FRAGMENT => 8,
            _ => {
                return Ok(ExtChain {
                    proto: next,
                    ext_len,
                    payload_at: at,
                    frag: None,
                    final_dst,
                })
            }
        };
        if at + len > wire {
            return Err(DropReason::Malformed);
        }
        if at + len > body.len() {
            return Err(DropReason::Truncated);
        }
        let following = u8_at(body, at).ok_or(DropReason::Truncated)?;
        if next == proto::ROUTING {
            if let Some(d) = body.get(at..at + len).and_then(routing_final_dst) {
                final_dst = Some(d);
            }
        }
        if next == proto::FRAGMENT {
            let off_flags = be16(body, at + 2).ok_or(DropReason::Truncated)?;
            let id = be32(body, at + 4).ok_or(DropReason::Truncated)?;
            let offset = usize::from(off_flags & 0xfff8);
            let more = off_flags & 1 != 0;
            if offset != 0 || more {
                return Ok(ExtChain {
                    proto: following,
                    ext_len,
                    payload_at: at + len,
                    frag: Some(FragInfo { offset, more, id }),
                    final_dst,
                });
            }
        }
        ext_len += len;
        at += len;
        next = following;
    }
    Err(DropReason::Malformed)
}

/// Addresses and protocol for the transport checksum's pseudo-header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pseudo<'a> {
    pub src: Addr<'a>,
    pub dst: Addr<'a>,
    pub proto: u8,
}

impl Pseudo<'_> {
    #[inline(always)]
    fn sum(&self, len: usize) -> Checksum {
        let mut c = Checksum::new();
        match (self.src, self.dst) {
            (Addr::V4(s), Addr::V4(d)) => {
                c.add_u32(u32::from_be_bytes(*s));
                c.add_u32(u32::from_be_bytes(*d));
                c.add_u16(u16::from(self.proto));
                c.add_u16(len as u16);
            }
            (s, d) => {
                add_v6(&mut c, s);
                add_v6(&mut c, d);
                c.add_u32(len as u32);
                c.add_u16(u16::from(self.proto));
            }
        }
        c
    }

    /// Verifies a transport checksum over `data` (the whole segment, checksum field included).
    #[inline(always)]
    fn verifies(&self, data: &[u8]) -> bool {
        let mut c = self.sum(data.len());
        c.add_bytes(data);
        c.is_all_ones()
    }
}

/// An address as the IPv6 pseudo-header holds it (IPv4 as an IPv4-mapped address).
#[inline]
fn add_v6(c: &mut Checksum, a: Addr<'_>) {
    match a {
        Addr::V4(a) => {
            c.add_u16(0xffff);
            c.add_u32(u32::from_be_bytes(*a));
        }
        Addr::V6(a) => {
            for w in a.chunks_exact(4) {
                c.add_u32(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
            }
        }
    }
}

/// Result of parsing a transport header.
pub(crate) struct Parsed<'a> {
    pub transport: Transport<'a>,
    /// True when the checksum was verified and found wrong.
    pub bad_checksum: bool,
}

/// Parses the transport header of a (complete or reassembled) datagram. `data` is the captured
/// payload after the IP headers, `wire` its length per the IP header. Checksums are checked
/// only when `verify` is set and the whole payload was captured.
#[inline(always)]
pub(crate) fn transport<'a>(
    pseudo: Pseudo<'_>,
    data: &'a [u8],
    wire: usize,
    verify: bool,
) -> Result<Parsed<'a>, DropReason> {
    let data = clip(data, wire);
    let check = verify && data.len() == wire;
    let t = DropReason::Truncated;
    match pseudo.proto {
        proto::TCP => {
            if data.len() < 20 {
                return Err(if wire < 20 { DropReason::Malformed } else { t });
            }
            let doff = usize::from(u8_at(data, 12).ok_or(t)? >> 4) * 4;
            if doff < 20 || doff > wire {
                return Err(DropReason::Malformed);
            }
            let options = data.get(20..doff).ok_or(t)?;
            let ok = !check || pseudo.verifies(data);
            Ok(Parsed {
                transport: Transport::Tcp(TcpSegment {
                    src_port: be16(data, 0).ok_or(t)?,
                    dst_port: be16(data, 2).ok_or(t)?,
                    seq: be32(data, 4).ok_or(t)?,
                    ack: be32(data, 8).ok_or(t)?,
                    flags: u8_at(data, 13).ok_or(t)?,
                    window: be16(data, 14).ok_or(t)?,
                    options,
                    header: data.get(..doff).ok_or(t)?,
                    payload_len: (wire - doff) as u32,
                    payload: tail(data, doff).unwrap_or(&[]),
                    checksum_ok: ok,
                }),
                bad_checksum: !ok,
            })
        }
        proto::UDP => {
            if data.len() < 8 {
                return Err(if wire < 8 { DropReason::Malformed } else { t });
            }
            let ulen = usize::from(be16(data, 4).ok_or(t)?);
            let sum = be16(data, 6).ok_or(t)?;
            // A zero checksum over IPv4 means "not computed"; IPv6 makes it mandatory.
            let skip = sum == 0 && matches!(pseudo.src, Addr::V4(_));
            let ok = !check || skip || pseudo.verifies(data);
            let end = ulen.clamp(8, data.len().max(8));
            Ok(Parsed {
                transport: Transport::Udp(UdpDatagram {
                    src_port: be16(data, 0).ok_or(t)?,
                    dst_port: be16(data, 2).ok_or(t)?,
                    payload_len: ulen.saturating_sub(8) as u32,
                    payload: data.get(8..end.min(data.len())).unwrap_or(&[]),
                    checksum_ok: ok,
                }),
                bad_checksum: !ok,
            })
        }
        proto::ICMP | proto::ICMPV6 => {
            if data.len() < 8 {
                return Err(if wire < 8 { DropReason::Malformed } else { t });
            }
            let v6 = pseudo.proto == proto::ICMPV6;
            let ok = !check
                || if v6 {
                    pseudo.verifies(data)
                } else {
                    verifies(data)
                };
            Ok(Parsed {
                transport: Transport::Icmp(IcmpMessage {
                    v6,
                    icmp_type: u8_at(data, 0).ok_or(t)?,
                    code: u8_at(data, 1).ok_or(t)?,
                    payload_len: (wire - 8) as u32,
                    payload: tail(data, 8).unwrap_or(&[]),
                    header: data.get(..8).unwrap_or(data),
                    checksum_ok: ok,
                }),
                bad_checksum: !ok,
            })
        }
        _ => Ok(Parsed {
            transport: Transport::Other { payload: data },
            bad_checksum: false,
        }),
    }
}

/// Test helpers that build valid headers with correct checksums.
#[cfg(test)]
pub(crate) mod build {
    use super::*;

    /// An IPv4 header (20 bytes, checksum filled in) followed by `payload`.
    pub fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
        ipv4_frag(src, dst, proto, 1, 0, false, payload)
    }

    pub fn ipv4_frag(
        src: [u8; 4],
        dst: [u8; 4],
        proto: u8,
        id: u16,
        offset: usize,
        more: bool,
        payload: &[u8],
    ) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let flags = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
        let mut h = vec![0x45, 0];
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&id.to_be_bytes());
        h.extend_from_slice(&flags.to_be_bytes());
        h.extend_from_slice(&[64, proto, 0, 0]);
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        fix_ipv4_checksum(&mut h);
        h.extend_from_slice(payload);
        h
    }

    pub fn fix_ipv4_checksum(h: &mut [u8]) {
        let ihl = usize::from(h[0] & 0xf) * 4;
        h[10] = 0;
        h[11] = 0;
        let mut c = Checksum::new();
        c.add_bytes(&h[..ihl]);
        let s = !c.fold();
        h[10..12].copy_from_slice(&s.to_be_bytes());
    }

    /// An IPv6 header followed by `payload` (which may start with extension headers).
    pub fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, payload: &[u8]) -> Vec<u8> {
        let mut h = vec![0x60, 0, 0, 0];
        h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        h.extend_from_slice(&[next, 64]);
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h.extend_from_slice(payload);
        h
    }

    /// Fills in the checksum of a TCP/UDP/ICMP/ICMPv6 segment.
    pub fn fix_l4_checksum(src: IpAddr, dst: IpAddr, proto: u8, seg: &mut [u8]) {
        let at = match proto {
            proto::TCP => 16,
            proto::UDP => 6,
            _ => 2,
        };
        seg[at] = 0;
        seg[at + 1] = 0;
        let (src, dst) = (octets(src), octets(dst));
        let addr = |o| match Addr::v4_at(o, 0) {
            Some(a) if o.len() == 4 => a,
            _ => Addr::v6_at(o, 0).unwrap(),
        };
        let mut c = if proto == proto::ICMP {
            Checksum::new()
        } else {
            Pseudo {
                src: addr(&src),
                dst: addr(&dst),
                proto,
            }
            .sum(seg.len())
        };
        c.add_bytes(seg);
        let mut s = !c.fold();
        if s == 0 && proto == proto::UDP {
            s = 0xffff;
        }
        seg[at..at + 2].copy_from_slice(&s.to_be_bytes());
    }

    fn octets(a: IpAddr) -> Vec<u8> {
        match a {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        }
    }

    pub fn tcp(sp: u16, dp: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(&sp.to_be_bytes());
        s.extend_from_slice(&dp.to_be_bytes());
        s.extend_from_slice(&1000u32.to_be_bytes());
        s.extend_from_slice(&2000u32.to_be_bytes());
        s.extend_from_slice(&[0x60, flags, 0x20, 0x00, 0, 0, 0, 0]);
        s.extend_from_slice(&[2, 4, 5, 0xb4]); // MSS option
        s.extend_from_slice(payload);
        s
    }

    pub fn udp(sp: u16, dp: u16, payload: &[u8]) -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(&sp.to_be_bytes());
        s.extend_from_slice(&dp.to_be_bytes());
        s.extend_from_slice(&((payload.len() + 8) as u16).to_be_bytes());
        s.extend_from_slice(&[0, 0]);
        s.extend_from_slice(payload);
        s
    }

    /// A complete IPv4 packet with a checksummed transport segment.
    pub fn v4_packet(src: [u8; 4], dst: [u8; 4], proto: u8, mut seg: Vec<u8>) -> Vec<u8> {
        fix_l4_checksum(src.into(), dst.into(), proto, &mut seg);
        ipv4(src, dst, proto, &seg)
    }

    /// A complete IPv6 packet with a checksummed transport segment.
    pub fn v6_packet(src: [u8; 16], dst: [u8; 16], proto: u8, mut seg: Vec<u8>) -> Vec<u8> {
        fix_l4_checksum(
            Ipv6Addr::from(src).into(),
            Ipv6Addr::from(dst).into(),
            proto,
            &mut seg,
        );
        ipv6(src, dst, proto, &seg)
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;

    const A: [u8; 4] = [10, 0, 0, 1];
    const B: [u8; 4] = [10, 0, 0, 2];
    const A6: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const B6: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    fn full<'a>(p: &'a [u8], verify: bool) -> Result<(IpHeader<'a>, Parsed<'a>), DropReason> {
        let h = parse(p, p.len(), verify)?;
        let pseudo = Pseudo {
            src: h.src,
            dst: h.dst,
            proto: h.proto,
        };
        let t = transport(pseudo, h.payload, h.payload_wire, verify)?;
        Ok((h, t))
    }

    #[test]
    fn ipv4_tcp_with_good_checksum() {
        let p = v4_packet(A, B, proto::TCP, tcp(1234, 80, 0x02, b"hello"));
        let (h, t) = full(&p, true).unwrap();
        assert_eq!(h.ip_len as usize, p.len());
        assert_eq!(h.header_len, 20);
        assert_eq!(h.proto, proto::TCP);
        match t.transport {
            Transport::Tcp(s) => {
                assert_eq!((s.src_port, s.dst_port, s.flags), (1234, 80, 0x02));
                assert_eq!((s.seq, s.ack, s.window), (1000, 2000, 0x2000));
                assert_eq!(s.options, &[2, 4, 5, 0xb4]);
                assert_eq!(s.payload, b"hello");
                assert_eq!(s.payload_len, 5);
                assert!(s.checksum_ok);
            }
            other => panic!("{other:?}"),
        }
        assert!(!t.bad_checksum);
    }

    #[test]
    fn bad_transport_checksum_is_reported_not_dropped() {
        let mut p = v4_packet(A, B, proto::TCP, tcp(1234, 80, 0x02, b"hello"));
        let last = p.len() - 1;
        p[last] ^= 0xff;
        let (_, t) = full(&p, true).unwrap();
        assert!(t.bad_checksum);
        assert!(matches!(
            t.transport,
            Transport::Tcp(TcpSegment {
                checksum_ok: false,
                ..
            })
        ));
        let (_, t) = full(&p, false).unwrap();
        assert!(!t.bad_checksum);
    }

    #[test]
    fn udp_zero_checksum_v4_ok_v6_bad() {
        let p = ipv4(A, B, proto::UDP, &udp(5, 53, b"abc"));
        let (_, t) = full(&p, true).unwrap();
        assert!(!t.bad_checksum);
        match t.transport {
            Transport::Udp(u) => {
                assert_eq!(u.payload, b"abc");
                assert_eq!(u.payload_len, 3);
            }
            other => panic!("{other:?}"),
        }
        let p = ipv6(A6, B6, proto::UDP, &udp(5, 53, b"abc"));
        let (_, t) = full(&p, true).unwrap();
        assert!(t.bad_checksum);
        let p = v6_packet(A6, B6, proto::UDP, udp(5, 53, b"abc"));
        let (h, t) = full(&p, true).unwrap();
        assert!(!t.bad_checksum);
        assert_eq!(h.ip_len as usize, p.len());
    }

    #[test]
    fn icmp_v4_and_v6() {
        let p = v4_packet(A, B, proto::ICMP, vec![8, 0, 0, 0, 0, 1, 0, 1, 9, 9, 9]);
        let (_, t) = full(&p, true).unwrap();
        match t.transport {
            Transport::Icmp(i) => {
                assert!(!i.v6 && i.checksum_ok);
                assert_eq!((i.icmp_type, i.code, i.payload_len), (8, 0, 3));
            }
            other => panic!("{other:?}"),
        }
        let p = v6_packet(A6, B6, proto::ICMPV6, vec![128, 0, 0, 0, 0, 1, 0, 1, 7]);
        let (_, t) = full(&p, true).unwrap();
        assert!(matches!(
            t.transport,
            Transport::Icmp(IcmpMessage {
                v6: true,
                checksum_ok: true,
                ..
            })
        ));
    }

    #[test]
    fn bogus_ihl_and_lengths() {
        let good = v4_packet(A, B, proto::UDP, udp(1, 2, b"x"));
        let mut p = good.clone();
        p[0] = 0x44; // IHL 16 bytes
        assert_eq!(
            parse(&p, p.len(), false).unwrap_err(),
            DropReason::Malformed
        );
        let mut p = good.clone();
        p[0] = 0x4f; // IHL 60 bytes, longer than the packet
        assert!(parse(&p, p.len(), false).is_err());
        let mut p = good.clone();
        p[2..4].copy_from_slice(&10u16.to_be_bytes()); // total < header
        fix_ipv4_checksum(&mut p);
        assert_eq!(parse(&p, p.len(), true).unwrap_err(), DropReason::Malformed);
        let mut p = good.clone();
        p[2..4].copy_from_slice(&2000u16.to_be_bytes()); // more than the wire had
        fix_ipv4_checksum(&mut p);
        assert_eq!(parse(&p, p.len(), true).unwrap_err(), DropReason::Truncated);
        let mut p = good.clone();
        p[8] ^= 1; // header checksum
        assert_eq!(
            parse(&p, p.len(), true).unwrap_err(),
            DropReason::BadChecksum
        );
        assert!(parse(&p, p.len(), false).is_ok());
        assert_eq!(parse(&[], 0, true).unwrap_err(), DropReason::Truncated);
        assert_eq!(
            parse(&[0x45; 19], 19, true).unwrap_err(),
            DropReason::Truncated
        );
        assert_eq!(
            parse(&[0x15; 40], 40, true).unwrap_err(),
            DropReason::Malformed
        );
    }

    #[test]
    fn snaplen_cut_datagram_decodes_with_ip_lengths() {
        let p = v4_packet(A, B, proto::TCP, tcp(1, 2, 0x18, &[7u8; 100]));
        let cut = &p[..60];
        let h = parse(cut, p.len(), true).unwrap();
        assert_eq!(h.ip_len as usize, p.len());
        let t = transport(
            Pseudo {
                src: h.src,
                dst: h.dst,
                proto: h.proto,
            },
            h.payload,
            h.payload_wire,
            true,
        )
        .unwrap();
        match t.transport {
            Transport::Tcp(s) => {
                assert_eq!(s.payload_len, 100);
                assert_eq!(s.payload.len(), 60 - 44);
                assert!(s.checksum_ok, "not verifiable, so not bad");
            }
            other => panic!("{other:?}"),
        }
        // Cut inside the TCP header.
        let cut = &p[..30];
        let h = parse(cut, p.len(), true).unwrap();
        let e = transport(
            Pseudo {
                src: h.src,
                dst: h.dst,
                proto: h.proto,
            },
            h.payload,
            h.payload_wire,
            true,
        );
        assert_eq!(e.err(), Some(DropReason::Truncated));
    }

    #[test]
    fn tso_zero_total_length() {
        let mut p = v4_packet(A, B, proto::UDP, udp(1, 2, b"xyz"));
        p[2] = 0;
        p[3] = 0;
        fix_ipv4_checksum(&mut p);
        assert_eq!(parse(&p, p.len(), true).unwrap_err(), DropReason::Malformed);
        let h = parse(&p, p.len(), false).unwrap();
        assert_eq!(h.ip_len as usize, p.len());
    }

    #[test]
    fn tcp_header_length_checks() {
        let mut seg = tcp(1, 2, 0x10, b"");
        seg[12] = 0x40; // data offset 16
        let p = ipv4(A, B, proto::TCP, &seg);
        assert_eq!(full(&p, false).err(), Some(DropReason::Malformed));
        let mut seg = tcp(1, 2, 0x10, b"");
        seg[12] = 0xf0; // data offset 60, past the datagram
        let p = ipv4(A, B, proto::TCP, &seg);
        assert_eq!(full(&p, false).err(), Some(DropReason::Malformed));
        let p = ipv4(A, B, proto::TCP, &[0; 10]);
        assert_eq!(full(&p, false).err(), Some(DropReason::Malformed));
        let p = ipv4(A, B, proto::UDP, &[0; 4]);
        assert_eq!(full(&p, false).err(), Some(DropReason::Malformed));
    }

    #[test]
    fn ipv6_extension_headers() {
        let mut seg = udp(1000, 53, b"q");
        fix_l4_checksum(
            Ipv6Addr::from(A6).into(),
            Ipv6Addr::from(B6).into(),
            proto::UDP,
            &mut seg,
        );
        let mut body = vec![proto::ROUTING, 0, 1, 4, 0, 0, 0, 0]; // hop-by-hop
        body.extend_from_slice(&[proto::AH, 0, 0, 0, 0, 0, 0, 0]); // routing, no segments left
        body.extend_from_slice(&[proto::DSTOPTS, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // AH, 12 bytes
        body.extend_from_slice(&[proto::FRAGMENT, 0, 1, 4, 0, 0, 0, 0]); // dest opts
        body.extend_from_slice(&[proto::UDP, 0, 0, 0, 0, 0, 0, 9]); // atomic fragment
        body.extend_from_slice(&seg);
        let p = ipv6(A6, B6, proto::HOPOPT, &body);
        let (h, t) = full(&p, true).unwrap();
        assert_eq!(h.proto, proto::UDP);
        assert_eq!(h.ip_len as usize, p.len());
        assert_eq!(h.ext_len, 44);
        assert!(h.frag.is_none());
        assert!(!t.bad_checksum);
        assert!(matches!(
            t.transport,
            Transport::Udp(UdpDatagram { dst_port: 53, .. })
        ));
    }

    #[test]
    fn routing_header_final_destination_in_checksum() {
        let fin = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x99];
        let mut seg = udp(1000, 53, b"q");
        fix_l4_checksum(
            Ipv6Addr::from(A6).into(),
            Ipv6Addr::from(fin).into(),
            proto::UDP,
            &mut seg,
        );
        // Type 2 routing header (one address, one segment left).
        let mut body = vec![proto::UDP, 2, 2, 1, 0, 0, 0, 0];
        body.extend_from_slice(&fin);
        body.extend_from_slice(&seg);
        let p = ipv6(A6, B6, proto::ROUTING, &body);
        let h = parse(&p, p.len(), true).unwrap();
        assert_eq!(h.final_dst.map(Addr::ip), Some(IpAddr::from(fin)));
        let pseudo = Pseudo {
            src: h.src,
            dst: h.final_dst.unwrap_or(h.dst),
            proto: h.proto,
        };
        let t = transport(pseudo, h.payload, h.payload_wire, true).unwrap();
        assert!(!t.bad_checksum);
        // Type 4 (segment routing) puts the final segment first.
        let mut srh = vec![proto::UDP, 4, 4, 1, 1, 0, 0, 0];
        srh.extend_from_slice(&fin);
        srh.extend_from_slice(&B6);
        assert_eq!(routing_final_dst(&srh), Some(Addr::V6(&fin)));
        srh[3] = 0;
        assert_eq!(routing_final_dst(&srh), None);
    }

    #[test]
    fn ipv6_fragment_header_reports_fragment() {
        let mut body = vec![proto::UDP, 0, 0x00, 0x11, 0xde, 0xad, 0xbe, 0xef]; // offset 16, more
        body.extend_from_slice(&[1; 16]);
        let p = ipv6(A6, B6, proto::FRAGMENT, &body);
        let h = parse(&p, p.len(), true).unwrap();
        assert_eq!(
            h.frag,
            Some(FragInfo {
                offset: 16,
                more: true,
                id: 0xdead_beef
            })
        );
        assert_eq!(h.proto, proto::UDP);
        assert_eq!(h.payload.len(), 16);
        assert_eq!(h.ext_len, 0);
    }

    #[test]
    fn endless_extension_chain() {
        let mut body = Vec::new();
        for _ in 0..1000 {
            body.extend_from_slice(&[proto::DSTOPTS, 0, 1, 4, 0, 0, 0, 0]);
        }
        let p = ipv6(A6, B6, proto::DSTOPTS, &body);
        assert_eq!(parse(&p, p.len(), true).unwrap_err(), DropReason::Malformed);
        // An extension header longer than the payload length.
        let p = ipv6(A6, B6, proto::DSTOPTS, &[proto::UDP, 200, 0, 0, 0, 0, 0, 0]);
        assert_eq!(parse(&p, p.len(), true).unwrap_err(), DropReason::Malformed);
    }

    #[test]
    fn ipv6_payload_length_past_capture() {
        let p = v6_packet(A6, B6, proto::TCP, tcp(1, 2, 0x10, &[0u8; 200]));
        // The wire had it all, the capture kept 80 bytes: decode what is there.
        let h = parse(&p[..80], p.len(), true).unwrap();
        assert_eq!(h.ip_len as usize, p.len());
        assert_eq!(h.payload.len(), 40);
        // The header claims more than the wire carried: truncated datagram.
        let mut q = p.clone();
        q[4..6].copy_from_slice(&4000u16.to_be_bytes());
        assert_eq!(parse(&q, q.len(), true).unwrap_err(), DropReason::Truncated);
        assert_eq!(
            parse(&q[..39], 39, true).unwrap_err(),
            DropReason::Truncated
        );
    }

    #[test]
    fn other_protocols() {
        let p = ipv4(A, B, 132, &[1, 2, 3]);
        let (h, t) = full(&p, true).unwrap();
        assert_eq!(h.proto, 132);
        assert!(matches!(
            t.transport,
            Transport::Other { payload: [1, 2, 3] }
        ));
    }
}
