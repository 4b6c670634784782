//! A glance at a frame's outer 5-tuple, for look-ahead only.
//!
//! The packet path prefetches the flow-table lines of the next packets while it works on the
//! current one (see `FlowTable::prefetch`). That needs their connection keys before they are
//! decoded, so this reads the common shapes only — Ethernet with up to two VLAN tags or raw
//! IP, then IPv4 without fragmentation or IPv6 without extension headers, then TCP or UDP —
//! and answers `None` for anything else. A wrong or missing answer costs a wasted prefetch,
//! never a wrong result: the real decode still decides everything.

use super::linktype;

/// The outer TCP/UDP 5-tuple of a frame; addresses in 16 bytes, IPv4 as `::ffff:a.b.c.d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FiveTuple {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub src_port: u16,
    pub dst_port: u16,
    pub proto: u8,
}

fn be16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}

/// The outer 5-tuple of a TCP or UDP frame in one of the common shapes.
pub fn five_tuple(linktype: u32, data: &[u8]) -> Option<FiveTuple> {
    let ip = match linktype {
        linktype::ETHERNET => {
            let mut off = 12;
            let mut ethertype = be16(data, off)?;
            for _ in 0..2 {
                if ethertype == 0x8100 || ethertype == 0x88a8 {
                    off += 4;
                    ethertype = be16(data, off)?;
                }
            }
            match ethertype {
                0x0800 | 0x86dd => data.get(off + 2..)?,
                _ => return None,
            }
        }
        linktype::RAW | linktype::IPV4 | linktype::IPV6 => data,
        _ => return None,
    };
    let (src, dst, proto, l4) = match ip.first()? >> 4 {
        4 => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let frag = be16(ip, 6)?;
            if ihl < 20 || frag & 0x3fff != 0 {
                return None;
            }
            let mut src = [0u8; 16];
            let mut dst = [0u8; 16];
            src[10..12].copy_from_slice(&[0xff, 0xff]);
            dst[10..12].copy_from_slice(&[0xff, 0xff]);
            src[12..].copy_from_slice(ip.get(12..16)?);
            dst[12..].copy_from_slice(ip.get(16..20)?);
            (src, dst, *ip.get(9)?, ip.get(ihl..)?)
        }
        6 => {
            let src: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            (src, dst, *ip.get(6)?, ip.get(40..)?)
        }
        _ => return None,
    };
    if proto != 6 && proto != 17 {
        return None;
    }
    Some(FiveTuple {
        src,
        dst,
        src_port: be16(l4, 0)?,
        dst_port: be16(l4, 2)?,
        proto,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth_ipv4_udp(vlan: bool) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        if vlan {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&[0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&[10, 0, 0, 1, 192, 168, 1, 2]);
        f.extend_from_slice(&[0x04, 0x00, 0x00, 0x35, 0, 8, 0, 0]);
        f
    }

    #[test]
    fn reads_ipv4_udp_with_and_without_vlan() {
        for vlan in [false, true] {
            let t = five_tuple(linktype::ETHERNET, &eth_ipv4_udp(vlan)).expect("a tuple");
            assert_eq!(t.proto, 17);
            assert_eq!((t.src_port, t.dst_port), (1024, 53));
            assert_eq!(&t.src[10..], &[0xff, 0xff, 10, 0, 0, 1]);
            assert_eq!(&t.dst[12..], &[192, 168, 1, 2]);
        }
    }

    #[test]
    fn declines_fragments_other_protocols_and_every_truncation() {
        let mut f = eth_ipv4_udp(false);
        f[14 + 6] = 0x20; // more fragments
        assert_eq!(five_tuple(linktype::ETHERNET, &f), None);
        let mut f = eth_ipv4_udp(false);
        f[14 + 9] = 1; // ICMP
        assert_eq!(five_tuple(linktype::ETHERNET, &f), None);
        let f = eth_ipv4_udp(true);
        for n in 0..f.len() - 4 {
            assert_eq!(five_tuple(linktype::ETHERNET, &f[..n]), None, "len {n}");
        }
        assert_eq!(five_tuple(linktype::LINUX_SLL, &f), None);
    }
}
