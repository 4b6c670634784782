//! Link layers: from a captured frame (or a tunnel's inner Ethernet frame) to the network-layer
//! bytes it carries.
//!
//! Each function strips one kind of header and says what follows. The IP version is not decided
//! here: links that name it (EtherType, PPP protocol, address family) and links that do not (raw
//! IP, MPLS) all hand over the bytes, and the IP parser reads the version nibble, which is what
//! ends up deciding in every case.

use super::bytes::{array, be16, be32, clip, le16, le32, tail, u8_at};
use super::{linktype, DropReason, MacPair};

/// EtherTypes the link layer acts on.
pub(crate) mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const IPV6: u16 = 0x86dd;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    pub const QINQ_OLD: u16 = 0x9100;
    pub const QINQ_OLD2: u16 = 0x9200;
    pub const MPLS_UC: u16 = 0x8847;
    pub const MPLS_MC: u16 = 0x8848;
    pub const PPPOE_SESSION: u16 = 0x8864;
    pub const FABRICPATH: u16 = 0x8903;
    /// Largest value of the 802.3 length field; larger values are EtherTypes.
    pub const MAX_8023_LEN: u16 = 1500;
}

/// PPP protocol numbers for IP.
pub(crate) const PPP_IPV4: u16 = 0x0021;
pub(crate) const PPP_IPV6: u16 = 0x0057;

/// What a link layer carries.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Net<'a> {
    /// An IP packet (version by its first nibble).
    Ip(&'a [u8]),
    /// Anything else. For 802.3 frames without SNAP the "EtherType" is the length field (at most
    /// 1500, so it cannot be mistaken for a real EtherType); frames that have no EtherType at all
    /// (802.11 management, unknown BSD address families) report 0.
    NonIp { ethertype: u16, payload: &'a [u8] },
}

/// A parsed link layer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Link<'a> {
    pub macs: Option<MacPair>,
    pub vlan: Option<u16>,
    pub net: Net<'a>,
}

const T: DropReason = DropReason::Truncated;

/// Parses the link layer named by a pcap link type.
pub(crate) fn parse(lt: u32, data: &[u8]) -> Result<Link<'_>, DropReason> {
    let mut vlan = None;
    if lt == linktype::ETHERNET {
        // The common case first, ahead of the dispatch over every link type.
        let (m, net) = ethernet(data, &mut vlan)?;
        return Ok(Link {
            macs: Some(m),
            vlan,
            net,
        });
    }
    let (macs, net) = match lt {
        linktype::ETHERNET => {
            let (m, n) = ethernet(data, &mut vlan)?;
            (Some(m), n)
        }
        linktype::NULL | linktype::LOOP => (None, bsd_null(data)?),
        linktype::RAW | linktype::IPV4 | linktype::IPV6 => (None, Net::Ip(data)),
        linktype::LINUX_SLL => {
            let proto = be16(data, 14).ok_or(T)?;
            (
                None,
                sll_protocol(proto, tail(data, 16).ok_or(T)?, &mut vlan)?,
            )
        }
        linktype::LINUX_SLL2 => {
            let proto = be16(data, 0).ok_or(T)?;
            (
                None,
                sll_protocol(proto, tail(data, 20).ok_or(T)?, &mut vlan)?,
            )
        }
        linktype::NFLOG => (None, nflog(data)?),
        linktype::IEEE802_11 => ieee80211(data, &mut vlan)?,
        linktype::IEEE802_11_RADIOTAP => {
            let frame = radiotap(data)?;
            ieee80211(frame, &mut vlan)?
        }
        _ => return Err(DropReason::UnknownLinkType),
    };
    Ok(Link { macs, vlan, net })
}

/// An Ethernet II or 802.3 frame. Cisco FabricPath (EtherType 0x8903 right after the addresses)
/// wraps a whole Ethernet frame behind a 2-byte tag; like Zeek we skip it and report the inner
/// frame's addresses, which are the hosts' rather than the fabric switches'.
pub(crate) fn ethernet<'a>(
    data: &'a [u8],
    vlan: &mut Option<u16>,
) -> Result<(MacPair, Net<'a>), DropReason> {
    let mut b = data;
    if be16(b, 12) == Some(ethertype::FABRICPATH) {
        b = tail(b, 16).ok_or(T)?;
    }
    let dst = array::<6>(b, 0).ok_or(T)?;
    let src = array::<6>(b, 6).ok_or(T)?;
    let et = be16(b, 12).ok_or(T)?;
    let rest = tail(b, 14).ok_or(T)?;
    // Untagged IP, nearly every frame, without the call into the general walk.
    let net = if matches!(et, ethertype::IPV4 | ethertype::IPV6) {
        Net::Ip(rest)
    } else {
        dispatch(et, rest, vlan)?
    };
    Ok((MacPair { src, dst }, net))
}

/// Follows an EtherType through VLAN tags (any depth), MPLS, PPPoE and LLC/SNAP.
pub(crate) fn dispatch<'a>(
    mut et: u16,
    mut rest: &'a [u8],
    vlan: &mut Option<u16>,
) -> Result<Net<'a>, DropReason> {
    // Each pass consumes at least 4 bytes, so the loop ends with the data.
    loop {
        match et {
            ethertype::IPV4 | ethertype::IPV6 => return Ok(Net::Ip(rest)),
            ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD | ethertype::QINQ_OLD2 => {
                let tci = be16(rest, 0).ok_or(T)?;
                if vlan.is_none() {
                    *vlan = Some(tci & 0x0fff);
                }
                et = be16(rest, 2).ok_or(T)?;
                rest = tail(rest, 4).ok_or(T)?;
            }
            ethertype::MPLS_UC | ethertype::MPLS_MC => return mpls(et, rest),
            ethertype::PPPOE_SESSION => return pppoe(rest),
            len if len <= ethertype::MAX_8023_LEN => {
                let llc = clip(rest, usize::from(len));
                match snap(llc) {
                    Some((inner, payload)) => {
                        et = inner;
                        rest = payload;
                    }
                    None => {
                        return Ok(Net::NonIp {
                            ethertype: len,
                            payload: llc,
                        })
                    }
                }
            }
            _ => {
                return Ok(Net::NonIp {
                    ethertype: et,
                    payload: rest,
                })
            }
        }
    }
}

/// An 802.2 LLC header with SNAP and an EtherType OUI: the EtherType and what follows.
fn snap(llc: &[u8]) -> Option<(u16, &[u8])> {
    if llc.get(..3)? != [0xaa, 0xaa, 0x03] {
        return None;
    }
    // OUI 00-00-00 is RFC 1042 encapsulation, 00-00-f8 is 802.1H bridge tunnelling; both carry
    // an EtherType. Other OUIs carry vendor protocol ids.
    let oui = array::<3>(llc, 3)?;
    if oui != [0, 0, 0] && oui != [0, 0, 0xf8] {
        return None;
    }
    Some((be16(llc, 6)?, tail(llc, 8)?))
}

/// An MPLS label stack; what follows the bottom label is guessed from its first nibble, as MPLS
/// itself does not say. Anything but IPv4/IPv6 (pseudowires, control words) is not decoded.
fn mpls(et: u16, mut rest: &[u8]) -> Result<Net<'_>, DropReason> {
    loop {
        let entry = be32(rest, 0).ok_or(T)?;
        rest = tail(rest, 4).ok_or(T)?;
        if entry & 0x100 != 0 {
            break;
        }
    }
    match u8_at(rest, 0).map(|b| b >> 4) {
        Some(4) | Some(6) => Ok(Net::Ip(rest)),
        Some(_) => Ok(Net::NonIp {
            ethertype: et,
            payload: rest,
        }),
        None => Err(T),
    }
}

/// A PPPoE session frame: 6-byte PPPoE header, then the PPP protocol number. The PPPoE length
/// field is not trusted to delimit the packet: the IP header's own length does that, and Zeek
/// counts packets whose PPPoE length is short (corpus `pppoe-over-qinq`).
fn pppoe(rest: &[u8]) -> Result<Net<'_>, DropReason> {
    let proto = be16(rest, 6).ok_or(T)?;
    let payload = tail(rest, 8).ok_or(T)?;
    Ok(match proto {
        PPP_IPV4 | PPP_IPV6 => Net::Ip(payload),
        _ => Net::NonIp {
            ethertype: ethertype::PPPOE_SESSION,
            payload: rest,
        },
    })
}

/// BSD loopback: a 4-byte address family, in the capturing host's byte order for NULL and in
/// network order for LOOP; real captures get this wrong often enough that both orders are tried.
fn bsd_null(data: &[u8]) -> Result<Net<'_>, DropReason> {
    let le = le32(data, 0).ok_or(T)?;
    let be = be32(data, 0).ok_or(T)?;
    let rest = tail(data, 4).ok_or(T)?;
    // AF_INET is 2 everywhere; AF_INET6 is 10 (Linux), 24 (NetBSD/OpenBSD), 28 (FreeBSD) or
    // 30 (macOS).
    let is_ip = |af: u32| matches!(af, 2 | 10 | 24 | 28 | 30);
    if is_ip(le) || is_ip(be) {
        Ok(Net::Ip(rest))
    } else {
        Ok(Net::NonIp {
            ethertype: 0,
            payload: rest,
        })
    }
}

/// The protocol field of Linux cooked captures: an EtherType, except for a few small values.
fn sll_protocol<'a>(
    proto: u16,
    rest: &'a [u8],
    vlan: &mut Option<u16>,
) -> Result<Net<'a>, DropReason> {
    match proto {
        // ETH_P_802_2: an LLC header follows without an 802.3 length.
        0x0004 => match snap(rest) {
            Some((et, payload)) => dispatch(et, payload, vlan),
            None => Ok(Net::NonIp {
                ethertype: proto,
                payload: rest,
            }),
        },
        p if p <= ethertype::MAX_8023_LEN => Ok(Net::NonIp {
            ethertype: p,
            payload: rest,
        }),
        p => dispatch(p, rest, vlan),
    }
}

/// Linux NFLOG: a 4-byte header, then TLVs in the logging host's byte order (little-endian in
/// practice; big-endian is tried when the lengths do not add up). TLV type 9 holds the packet.
fn nflog(data: &[u8]) -> Result<Net<'_>, DropReason> {
    const PAYLOAD: u16 = 9;
    let tlvs = tail(data, 4).ok_or(T)?;
    let walk = |read: fn(&[u8], usize) -> Option<u16>| -> Option<Option<&[u8]>> {
        let mut at = 0usize;
        while at < tlvs.len() {
            let len = usize::from(read(tlvs, at)?);
            let ty = read(tlvs, at + 2)? & 0x7fff;
            if len < 4 {
                return None;
            }
            let value = tlvs.get(at + 4..at + len)?;
            if ty == PAYLOAD {
                return Some(Some(value));
            }
            // TLVs are padded to 4 bytes.
            at = at.checked_add((len + 3) & !3)?;
        }
        Some(None)
    };
    let found = walk(le16)
        .or_else(|| walk(be16))
        .ok_or(DropReason::Malformed)?;
    Ok(match found {
        Some(p) => Net::Ip(p),
        None => Net::NonIp {
            ethertype: 0,
            payload: &[],
        },
    })
}

/// Radiotap: a self-describing header of its own length before the 802.11 frame. Its flags say
/// whether the frame ends in a 4-byte FCS, which is cut off here.
fn radiotap(data: &[u8]) -> Result<&[u8], DropReason> {
    const FLAG_FCS: u8 = 0x10;
    let version = u8_at(data, 0).ok_or(T)?;
    let len = usize::from(le16(data, 2).ok_or(T)?);
    if version != 0 || len < 8 {
        return Err(DropReason::Malformed);
    }
    let frame = tail(data, len).ok_or(T)?;
    let present = le32(data, 4).ok_or(T)?;
    // The flags field (bit 1) sits after the present bitmaps and the 8-byte-aligned TSFT (bit 0).
    let mut fcs = false;
    if present & 0b10 != 0 {
        let mut at = 4;
        loop {
            let word = le32(data, at).ok_or(T)?;
            at += 4;
            if word & 0x8000_0000 == 0 {
                break;
            }
        }
        if present & 1 != 0 {
            at = (at + 7) & !7;
            at += 8;
        }
        if at < len {
            fcs = u8_at(data, at).is_some_and(|f| f & FLAG_FCS != 0);
        }
    }
    if fcs {
        Ok(clip(frame, frame.len().saturating_sub(4)))
    } else {
        Ok(frame)
    }
}

/// An 802.11 frame: only unprotected data frames with LLC/SNAP carry IP. The addresses that
/// play source and destination depend on the ToDS/FromDS bits.
fn ieee80211<'a>(
    data: &'a [u8],
    vlan: &mut Option<u16>,
) -> Result<(Option<MacPair>, Net<'a>), DropReason> {
    let fc0 = u8_at(data, 0).ok_or(T)?;
    let fc1 = u8_at(data, 1).ok_or(T)?;
    let ftype = (fc0 >> 2) & 0x3;
    let subtype = fc0 >> 4;
    let non_ip = |payload| {
        Ok((
            None,
            Net::NonIp {
                ethertype: 0,
                payload,
            },
        ))
    };
    if fc0 & 0x3 != 0 || ftype != 2 {
        // Management, control, or an unknown protocol version.
        return non_ip(data);
    }
    let to_ds = fc1 & 0x01 != 0;
    let from_ds = fc1 & 0x02 != 0;
    let protected = fc1 & 0x40 != 0;
    let order = fc1 & 0x80 != 0;
    let qos = subtype & 0x8 != 0;
    let mut hlen = 24;
    if to_ds && from_ds {
        hlen += 6;
    }
    if qos {
        hlen += 2;
    }
    if qos && order {
        hlen += 4;
    }
    let a1 = array::<6>(data, 4).ok_or(T)?;
    let a2 = array::<6>(data, 10).ok_or(T)?;
    let a3 = array::<6>(data, 16).ok_or(T)?;
    let (dst, src) = match (to_ds, from_ds) {
        (false, false) => (a1, a2),
        (true, false) => (a3, a2),
        (false, true) => (a1, a3),
        (true, true) => (a3, array::<6>(data, 24).ok_or(T)?),
    };
    let macs = Some(MacPair { src, dst });
    let body = tail(data, hlen).ok_or(T)?;
    // Null-function subtypes carry nothing; protected frames cannot be read; A-MSDU aggregates
    // several frames behind their own subframe headers, which we do not unpack.
    let amsdu = qos
        && u8_at(data, hlen.saturating_sub(2 + if order { 4 } else { 0 }))
            .is_some_and(|q| q & 0x80 != 0);
    if subtype & 0x4 != 0 || protected || amsdu {
        return Ok((
            macs,
            Net::NonIp {
                ethertype: 0,
                payload: body,
            },
        ));
    }
    match snap(body) {
        Some((et, payload)) => Ok((macs, dispatch(et, payload, vlan)?)),
        None => Ok((
            macs,
            Net::NonIp {
                ethertype: 0,
                payload: body,
            },
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip_of(n: Net<'_>) -> &[u8] {
        match n {
            Net::Ip(b) => b,
            other => panic!("expected IP, got {other:?}"),
        }
    }

    const IP: [u8; 4] = [0x45, 0, 0, 20];

    fn eth(et: u16, rest: &[u8]) -> Vec<u8> {
        let mut f = vec![1, 2, 3, 4, 5, 6, 0xa, 0xb, 0xc, 0xd, 0xe, 0xf];
        f.extend_from_slice(&et.to_be_bytes());
        f.extend_from_slice(rest);
        f
    }

    #[test]
    fn ethernet_ipv4_and_macs() {
        let f = eth(0x0800, &IP);
        let l = parse(linktype::ETHERNET, &f).unwrap();
        assert_eq!(ip_of(l.net), &IP);
        let m = l.macs.unwrap();
        assert_eq!(m.dst, [1, 2, 3, 4, 5, 6]);
        assert_eq!(m.src, [0xa, 0xb, 0xc, 0xd, 0xe, 0xf]);
        assert_eq!(l.vlan, None);
    }

    #[test]
    fn short_frames_are_truncated() {
        for n in 0..14 {
            let f = eth(0x0800, &[]);
            assert_eq!(
                parse(linktype::ETHERNET, &f[..n]).unwrap_err(),
                DropReason::Truncated
            );
        }
        assert_eq!(parse(9999, &[]).unwrap_err(), DropReason::UnknownLinkType);
    }

    #[test]
    fn qinq_reports_outer_vlan() {
        let mut rest = vec![0x00, 0x0d, 0x81, 0x00, 0x00, 0x0a, 0x08, 0x00];
        rest.extend_from_slice(&IP);
        let f = eth(0x88a8, &rest);
        let l = parse(linktype::ETHERNET, &f).unwrap();
        assert_eq!(l.vlan, Some(13));
        assert_eq!(ip_of(l.net), &IP);
        // A tag with nothing after it.
        let f = eth(0x8100, &[0, 1, 0x81]);
        assert!(parse(linktype::ETHERNET, &f).is_err());
    }

    #[test]
    fn deep_vlan_stack_terminates() {
        let mut rest = Vec::new();
        for _ in 0..10_000 {
            rest.extend_from_slice(&[0x00, 0x05, 0x81, 0x00]);
        }
        let f = eth(0x8100, &rest);
        assert_eq!(
            parse(linktype::ETHERNET, &f).unwrap_err(),
            DropReason::Truncated
        );
    }

    #[test]
    fn llc_snap_and_plain_llc() {
        let mut rest = vec![0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00];
        rest.extend_from_slice(&IP);
        let f = eth(rest.len() as u16, &rest);
        assert_eq!(ip_of(parse(linktype::ETHERNET, &f).unwrap().net), &IP);
        // Spanning tree: LLC 42 42 03, not SNAP; padding beyond the length is cut.
        let f = eth(3, &[0x42, 0x42, 0x03, 0, 0, 0]);
        match parse(linktype::ETHERNET, &f).unwrap().net {
            Net::NonIp { ethertype, payload } => {
                assert_eq!(ethertype, 3);
                assert_eq!(payload, &[0x42, 0x42, 0x03]);
            }
            n => panic!("{n:?}"),
        }
    }

    #[test]
    fn mpls_stack_then_ip() {
        let mut rest = vec![0x00, 0x01, 0x00, 0x40, 0x03, 0xee, 0xa1, 0x2c];
        rest.extend_from_slice(&IP);
        let f = eth(0x8847, &rest);
        assert_eq!(ip_of(parse(linktype::ETHERNET, &f).unwrap().net), &IP);
        // Bottom of stack followed by something that is not IP.
        let f = eth(0x8847, &[0x00, 0x01, 0x01, 0x40, 0x00, 0x00]);
        assert!(matches!(
            parse(linktype::ETHERNET, &f).unwrap().net,
            Net::NonIp {
                ethertype: 0x8847,
                ..
            }
        ));
        // Never a bottom of stack.
        let f = eth(0x8847, &[0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            parse(linktype::ETHERNET, &f).unwrap_err(),
            DropReason::Truncated
        );
    }

    #[test]
    fn pppoe_session() {
        let mut rest = vec![0x11, 0x00, 0x0f, 0x07, 0x00, 0x06, 0x00, 0x21];
        rest.extend_from_slice(&IP);
        let f = eth(0x8864, &rest);
        assert_eq!(ip_of(parse(linktype::ETHERNET, &f).unwrap().net), &IP);
        let rest = [0x11, 0x00, 0x0f, 0x07, 0x00, 0x06, 0xc0, 0x21, 1, 2, 3, 4];
        let f = eth(0x8864, &rest);
        assert!(matches!(
            parse(linktype::ETHERNET, &f).unwrap().net,
            Net::NonIp { .. }
        ));
    }

    #[test]
    fn fabricpath_uses_inner_frame() {
        let inner = eth(0x0800, &IP);
        let mut f = vec![
            0xf3, 0x51, 0xd6, 0x4e, 0x62, 0, 0x96, 0x4e, 0xbf, 0x4e, 0x52, 0x1d,
        ];
        f.extend_from_slice(&[0x89, 0x03, 0x00, 0x00]);
        f.extend_from_slice(&inner);
        let l = parse(linktype::ETHERNET, &f).unwrap();
        assert_eq!(l.macs.unwrap().dst, [1, 2, 3, 4, 5, 6]);
        assert_eq!(ip_of(l.net), &IP);
    }

    #[test]
    fn null_and_loop_in_both_byte_orders() {
        for hdr in [
            [2u8, 0, 0, 0],
            [0, 0, 0, 2],
            [30, 0, 0, 0],
            [0, 0, 0, 24],
            [10, 0, 0, 0],
        ] {
            let mut f = hdr.to_vec();
            f.extend_from_slice(&IP);
            for lt in [linktype::NULL, linktype::LOOP] {
                assert_eq!(ip_of(parse(lt, &f).unwrap().net), &IP);
            }
        }
        assert!(matches!(
            parse(linktype::NULL, &[7, 0, 0, 0]).unwrap().net,
            Net::NonIp { .. }
        ));
        assert!(parse(linktype::NULL, &[2, 0]).is_err());
    }

    #[test]
    fn linux_cooked() {
        let mut f = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
        f.extend_from_slice(&IP);
        assert_eq!(ip_of(parse(linktype::LINUX_SLL, &f).unwrap().net), &IP);
        let mut f = vec![
            0x86, 0xdd, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
        ];
        f.extend_from_slice(&IP);
        assert_eq!(ip_of(parse(linktype::LINUX_SLL2, &f).unwrap().net), &IP);
        let f = [0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x06, 0, 1];
        assert!(matches!(
            parse(linktype::LINUX_SLL, &f).unwrap().net,
            Net::NonIp {
                ethertype: 0x0806,
                ..
            }
        ));
    }

    #[test]
    fn nflog_payload_tlv() {
        let mut f = vec![2, 0, 0, 42];
        f.extend_from_slice(&[8, 0, 1, 0, 0, 0, 3, 0]); // packet header TLV
        f.extend_from_slice(&[5, 0, 10, 0, 0xaa, 0, 0, 0]); // 1-byte value, padded
        f.extend_from_slice(&[8, 0, 9, 0]);
        f.extend_from_slice(&IP);
        assert_eq!(ip_of(parse(linktype::NFLOG, &f).unwrap().net), &IP);
        // A zero TLV length would loop forever if accepted.
        let f = [2, 0, 0, 42, 0, 0, 9, 0];
        assert_eq!(
            parse(linktype::NFLOG, &f).unwrap_err(),
            DropReason::Malformed
        );
    }

    fn wifi_data(fc1: u8) -> Vec<u8> {
        let mut f = vec![0x88, fc1, 0x2c, 0x00];
        f.extend_from_slice(&[1; 6]);
        f.extend_from_slice(&[2; 6]);
        f.extend_from_slice(&[3; 6]);
        f.extend_from_slice(&[0x10, 0x00]);
        if fc1 & 3 == 3 {
            f.extend_from_slice(&[4; 6]);
        }
        f.extend_from_slice(&[0x06, 0x00]); // QoS
        f.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00]);
        f.extend_from_slice(&IP);
        f
    }

    #[test]
    fn wifi_addresses_follow_ds_bits() {
        let cases = [
            (0u8, [1u8; 6], [2u8; 6]),
            (1, [3; 6], [2; 6]),
            (2, [1; 6], [3; 6]),
            (3, [3; 6], [4; 6]),
        ];
        for (fc1, dst, src) in cases {
            let f = wifi_data(fc1);
            let l = parse(linktype::IEEE802_11, &f).unwrap();
            assert_eq!(ip_of(l.net), &IP, "fc1={fc1}");
            assert_eq!(l.macs, Some(MacPair { src, dst }));
        }
        let mut prot = wifi_data(0);
        prot[1] |= 0x40;
        assert!(matches!(
            parse(linktype::IEEE802_11, &prot).unwrap().net,
            Net::NonIp { .. }
        ));
        // Beacon.
        let beacon = [0x80, 0, 0, 0, 1, 1, 1, 1, 1, 1];
        assert!(matches!(
            parse(linktype::IEEE802_11, &beacon).unwrap().net,
            Net::NonIp { .. }
        ));
    }

    #[test]
    fn radiotap_with_fcs() {
        let mut f = vec![0, 0, 24, 0, 0x03, 0, 0, 0];
        f.extend_from_slice(&[0; 8]); // TSFT
        f.extend_from_slice(&[0x10, 0, 0, 0, 0, 0, 0, 0]); // flags: FCS at end, padding
        f.extend_from_slice(&wifi_data(2));
        f.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let l = parse(linktype::IEEE802_11_RADIOTAP, &f).unwrap();
        assert_eq!(ip_of(l.net), &IP);
        assert!(parse(linktype::IEEE802_11_RADIOTAP, &[0, 0, 200, 0, 0, 0, 0, 0]).is_err());
        assert!(parse(linktype::IEEE802_11_RADIOTAP, &[0, 0, 2, 0]).is_err());
    }
}
