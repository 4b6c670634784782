//! Connection keys: the 5-tuple, the same for both directions.

use std::net::IpAddr;

/// An address in 16 bytes (IPv4 as `::ffff:a.b.c.d`), cheap to compare and hash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Addr(pub [u8; 16]);

// Byte-wise (lexicographic) order, computed as one 128-bit comparison instead of a memcmp
// call: every packet orders its two endpoints to build its key.
impl Ord for Addr {
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        u128::from_be_bytes(self.0).cmp(&u128::from_be_bytes(other.0))
    }
}

impl PartialOrd for Addr {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Addr {
    #[inline]
    pub fn from_ip(ip: IpAddr) -> Addr {
        match ip {
            // As one integer: `to_ipv6_mapped` builds the array byte by byte.
            IpAddr::V4(v4) => Addr(((0xffff_u128 << 32) | u128::from(u32::from(v4))).to_be_bytes()),
            IpAddr::V6(v6) => Addr(v6.octets()),
        }
    }

    #[inline]
    pub fn to_ip(self) -> IpAddr {
        // `Ipv6Addr::to_ipv4_mapped`, on one integer rather than byte by byte.
        let v = u128::from_be_bytes(self.0);
        if v >> 32 == 0xffff {
            IpAddr::V4(std::net::Ipv4Addr::from(v as u32))
        } else {
            IpAddr::V6(std::net::Ipv6Addr::from(v))
        }
    }
}

/// One endpoint of a connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub addr: Addr,
    pub port: u16,
}

/// A direction-free key: the lower endpoint first. `proto` is the IP protocol number; for
/// ICMP the "ports" are the type/counterpart pair Zeek uses, so request and reply meet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub lo: Endpoint,
    pub hi: Endpoint,
    pub proto: u8,
}

impl FlowKey {
    /// The key of a packet from `src` to `dst`, and whether `src` is the key's `lo` side.
    pub fn new(src: Endpoint, dst: Endpoint, proto: u8) -> (FlowKey, bool) {
        if src <= dst {
            (
                FlowKey {
                    lo: src,
                    hi: dst,
                    proto,
                },
                true,
            )
        } else {
            (
                FlowKey {
                    lo: dst,
                    hi: src,
                    proto,
                },
                false,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_order_is_byte_order() {
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut a = [0u8; 16];
            for (i, b) in a.iter_mut().enumerate() {
                // Few distinct byte values, so long equal prefixes are common.
                *b = ((x >> (i * 3 % 60)) & 3) as u8;
            }
            Addr(a)
        };
        for _ in 0..2000 {
            let (a, b) = (next(), next());
            assert_eq!(a.cmp(&b), a.0.cmp(&b.0));
        }
    }

    #[test]
    fn ip_conversions_match_the_standard_library() {
        let cases = [
            "10.1.2.3",
            "0.0.0.0",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:10.1.2.3",
            "::fffe:10.1.2.3",
            "1::ffff:10.1.2.3",
            "::ffff:0:10.1.2.3",
            "fe80::1",
        ];
        for c in cases {
            let ip: IpAddr = c.parse().unwrap();
            let std_mapped = match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
                IpAddr::V6(v6) => v6.octets(),
            };
            assert_eq!(Addr::from_ip(ip).0, std_mapped, "{c}");
            let back = std::net::Ipv6Addr::from(std_mapped);
            let std_back = back
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(back));
            assert_eq!(Addr(std_mapped).to_ip(), std_back, "{c}");
        }
    }
}
