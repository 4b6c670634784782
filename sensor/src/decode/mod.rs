//! Decode stage: a captured frame in, the stack of IP layers it carries out.
//!
//! The decoder peels link layers (Ethernet, 802.1Q/QinQ, MPLS, PPPoE, raw IP, Linux cooked
//! capture, ...), IP headers (v4, v6 with extension headers), fragments (reassembled in a
//! bounded table) and tunnels (IP-in-IP, GRE incl. ERSPAN, VXLAN, Geneve, Teredo, AYIYA, GTP-U).
//! The result is a [`Decoded`] packet: the outermost layer first, each tunnelled layer after
//! the one that carries it. The flow stage treats each layer as a packet of its own connection,
//! which is how Zeek gives an inner connection `tunnel_parents` naming the outer one.
//!
//! Nothing here allocates per packet: layers live in a fixed array and borrow the frame (or the
//! fragment table's reassembly buffer). Malformed input is a [`DropReason`], never a panic.

use std::net::IpAddr;

use crate::ts::Ts;

/// How many IP layers one frame may carry: the outer one plus Zeek's `Tunnel::max_depth` (4).
pub const MAX_LAYERS: usize = 5;

/// libpcap link types (DLT_* / LINKTYPE_* values) the decoder understands.
pub mod linktype {
    pub const NULL: u32 = 0;
    pub const ETHERNET: u32 = 1;
    pub const RAW: u32 = 101;
    pub const IEEE802_11: u32 = 105;
    pub const LOOP: u32 = 108;
    pub const LINUX_SLL: u32 = 113;
    pub const IEEE802_11_RADIOTAP: u32 = 127;
    pub const IPV4: u32 = 228;
    pub const IPV6: u32 = 229;
    pub const NFLOG: u32 = 239;
    pub const LINUX_SLL2: u32 = 276;
}

/// One captured frame as the capture stage hands it over.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    pub ts: Ts,
    pub linktype: u32,
    /// The captured bytes (possibly cut short by the snap length).
    pub data: &'a [u8],
    /// Length of the frame on the wire.
    pub wire_len: u32,
}

/// Source and destination MAC of the outermost Ethernet-like header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MacPair {
    pub src: [u8; 6],
    pub dst: [u8; 6],
}

/// How a layer carries the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TunnelKind {
    /// IPv4/IPv6 directly inside IPv4/IPv6 (protocols 4 and 41).
    IpInIp,
    /// GRE, including ERSPAN and transparent Ethernet bridging inside it.
    Gre,
    /// VXLAN (UDP 4789).
    Vxlan,
    /// Geneve (UDP 6081).
    Geneve,
    /// Teredo (UDP 3544).
    Teredo,
    /// AYIYA (UDP 5072).
    Ayiya,
    /// GTPv1-U (UDP 2152).
    GtpU,
    /// GRE inside UDP (UDP 4754).
    GreInUdp,
}

impl TunnelKind {
    /// Tunnels carried over UDP make the outer UDP flow a connection of its own (the inner one's
    /// `tunnel_parents` is that connection's uid); IP and GRE tunnels get a uid of their own.
    pub fn is_udp(self) -> bool {
        !matches!(self, TunnelKind::IpInIp | TunnelKind::Gre)
    }

    /// Zeek's analyzer name, which is what `service` shows on the outer UDP connection.
    pub fn service_name(self) -> Option<&'static str> {
        match self {
            TunnelKind::Vxlan => Some("vxlan"),
            TunnelKind::Geneve => Some("geneve"),
            TunnelKind::Teredo => Some("teredo"),
            TunnelKind::Ayiya => Some("ayiya"),
            TunnelKind::GtpU => Some("gtpv1"),
            TunnelKind::GreInUdp | TunnelKind::IpInIp | TunnelKind::Gre => None,
        }
    }
}

/// TCP flag bits as they sit in byte 13 of the header.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

#[derive(Clone, Copy, Debug)]
pub struct TcpSegment<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// TCP options as captured (for passive fingerprinting).
    pub options: &'a [u8],
    /// The whole TCP header as captured, options included (reserved bits and the urgent
    /// pointer, for passive fingerprinting).
    pub header: &'a [u8],
    /// Payload length implied by the IP header (what sequence numbers count), even when the
    /// capture holds less.
    pub payload_len: u32,
    /// The captured part of the payload.
    pub payload: &'a [u8],
    /// False only when the checksum could be verified and was wrong.
    pub checksum_ok: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct UdpDatagram<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    /// Payload length from the UDP length field (length - 8), what Zeek counts in `*_bytes`.
    pub payload_len: u32,
    pub payload: &'a [u8],
    pub checksum_ok: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct IcmpMessage<'a> {
    /// ICMPv6 rather than ICMPv4.
    pub v6: bool,
    pub icmp_type: u8,
    pub code: u8,
    /// IP payload length minus the 8-byte ICMP header.
    pub payload_len: u32,
    /// Bytes after the 8-byte ICMP header, as captured.
    pub payload: &'a [u8],
    /// The 8-byte ICMP header itself (echo id/sequence, router lifetimes...), as captured.
    pub header: &'a [u8],
    pub checksum_ok: bool,
}

#[derive(Clone, Copy, Debug)]
pub enum Transport<'a> {
    Tcp(TcpSegment<'a>),
    Udp(UdpDatagram<'a>),
    Icmp(IcmpMessage<'a>),
    /// Any other IP protocol (and TCP/UDP/ICMP whose header was not captured in full is a drop,
    /// not this). The payload is what follows the IP header(s).
    Other {
        payload: &'a [u8],
    },
}

/// One IP header and what it carries.
#[derive(Clone, Copy, Debug)]
pub struct IpLayer<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The transport protocol number after any IPv6 extension headers.
    pub proto: u8,
    /// IPv4 total length or IPv6 40 + payload length: what Zeek sums into `*_ip_bytes`.
    pub ip_len: u32,
    pub ttl: u8,
    /// IPv4 "don't fragment"; false for IPv6.
    pub dont_fragment: bool,
    /// IPv4 identification (0 for IPv6).
    pub ip_id: u16,
    /// IPv4 header length in bytes (20 + options) or 40 for IPv6.
    pub header_len: u16,
    /// True when this datagram was rebuilt from fragments.
    pub reassembled: bool,
    /// The IP header bytes as captured (IPv4 incl. options, or IPv6's fixed 40 bytes; for a
    /// reassembled datagram, one fragment's header), for analyzers that read fields the
    /// decoder does not interpret (TOS/ECN, flow label, IPv4 options: passive fingerprinting).
    pub header: &'a [u8],
    pub transport: Transport<'a>,
    /// Set when the next layer in [`Decoded::layers`] is carried inside this one.
    pub encap: Option<TunnelKind>,
}

/// What a frame turned out to be.
#[derive(Clone, Copy, Debug)]
pub enum Payload<'a> {
    /// One or more IP layers, outermost first.
    Ip,
    /// A non-IP frame (ARP, CC-Link, LLDP, ...): its EtherType and the bytes after it.
    NonIp { ethertype: u16, payload: &'a [u8] },
    /// A fragment was stored; nothing to process until the datagram is complete.
    FragmentHeld,
}

/// A decoded frame.
#[derive(Clone, Copy, Debug)]
pub struct Decoded<'a> {
    pub ts: Ts,
    /// MACs of the outermost Ethernet header, if the link has one.
    pub macs: Option<MacPair>,
    /// Outermost 802.1Q VLAN id, if any.
    pub vlan: Option<u16>,
    pub payload: Payload<'a>,
    layers: [Option<IpLayer<'a>>; MAX_LAYERS],
    depth: usize,
}

impl<'a> Decoded<'a> {
    pub fn new(ts: Ts) -> Self {
        Decoded {
            ts,
            macs: None,
            vlan: None,
            payload: Payload::Ip,
            layers: [None; MAX_LAYERS],
            depth: 0,
        }
    }

    /// The IP layers, outermost first. Empty for non-IP frames.
    pub fn layers(&self) -> impl Iterator<Item = &IpLayer<'a>> {
        self.layers[..self.depth].iter().flatten()
    }

    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Appends a layer; `false` (and nothing stored) when the stack is full.
    pub fn push_layer(&mut self, layer: IpLayer<'a>) -> bool {
        if self.depth == MAX_LAYERS {
            return false;
        }
        self.layers[self.depth] = Some(layer);
        self.depth += 1;
        true
    }

    /// The slot the next layer is built in (so that it is not built elsewhere and copied),
    /// `None` when the stack is full; [`Decoded::commit_layer`] makes it part of the stack.
    pub fn next_slot(&mut self) -> Option<&mut Option<IpLayer<'a>>> {
        self.layers.get_mut(self.depth)
    }

    /// Adds the layer built in [`Decoded::next_slot`] to the stack.
    pub fn commit_layer(&mut self) {
        debug_assert!(self.depth < MAX_LAYERS && self.layers[self.depth].is_some());
        self.depth += 1;
    }

    /// The last layer pushed, so that the decoder can mark it as a tunnel carrier.
    pub fn last_mut(&mut self) -> Option<&mut IpLayer<'a>> {
        self.depth
            .checked_sub(1)
            .and_then(move |i| self.layers[i].as_mut())
    }

    /// The innermost layer, for code that only cares about the payload.
    pub fn innermost(&self) -> Option<&IpLayer<'a>> {
        self.depth
            .checked_sub(1)
            .and_then(|i| self.layers[i].as_ref())
    }
}

/// Why a frame was dropped. Each reason has a counter in [`crate::stats::Stats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    UnknownLinkType,
    Malformed,
    Truncated,
    TunnelTooDeep,
    FragmentDropped,
    /// The IPv4 header checksum was wrong (counted in `bad_checksums`). Transport checksums are
    /// never a drop: they are reported in `checksum_ok`.
    BadChecksum,
}

/// Decoder settings, from the `[decode]` config section.
#[derive(Clone, Debug)]
pub struct DecodeConfig {
    /// Verify TCP/UDP/ICMP checksums (Zeek's default; `-C` turns it off).
    pub verify_checksums: bool,
    /// Maximum number of datagrams being reassembled at once.
    pub max_fragment_sets: usize,
    /// Maximum bytes buffered across all datagrams being reassembled.
    pub max_fragment_bytes: usize,
    /// A datagram not complete within this many seconds of its first fragment is given up.
    pub fragment_timeout_secs: u32,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            verify_checksums: true,
            max_fragment_sets: 1024,
            max_fragment_bytes: 4 << 20,
            fragment_timeout_secs: 30,
        }
    }
}

mod bytes;
mod decoder;
pub mod detached;
mod frag;
mod ip;
mod link;
#[cfg(test)]
mod robustness;
mod tunnel;
pub use decoder::Decoder;
/// Zeek's likely UDP server ports: the flow stage guesses originators with the same list.
pub use tunnel::is_likely_server_port as is_likely_udp_server_port;
