//! A lower-level frame builder than [`crate::packet`]: every header field is the caller's
//! (TOS/traffic class, flow label, IPv4 flags and options, IPv6 extension headers, TCP reserved
//! bits, urgent pointer, raw option bytes, any IP protocol). Lengths and checksums are still
//! computed, so frames are valid unless a field is deliberately odd.

use crate::packet::{checksum, Link};

#[derive(Clone, Debug)]
pub struct Ip4 {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub tos: u8,
    pub id: u16,
    /// The three flag bits as they sit in the top of the flags/offset word (0x4000 = DF,
    /// 0x8000 = the reserved "must be zero" bit).
    pub flags: u16,
    pub ttl: u8,
    /// IPv4 options, padded by the caller to a multiple of 4.
    pub options: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct Ip6 {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub traffic_class: u8,
    /// 20-bit flow label.
    pub flow: u32,
    pub hop_limit: u8,
    /// Extension headers in order: (header type: 0 hop-by-hop, 43 routing, 60 destination
    /// options, 44 fragment), each written as 8 bytes.
    pub ext: Vec<u8>,
}

#[derive(Clone, Debug)]
pub enum IpHdr {
    V4(Ip4),
    V6(Ip6),
}

#[derive(Clone, Debug, Default)]
pub struct Tcp {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    /// The low nibble of byte 12 (reserved bits, NS).
    pub reserved: u8,
    pub window: u16,
    pub urgent: u16,
    /// Option bytes, padded by the caller to a multiple of 4.
    pub options: Vec<u8>,
    pub payload: Vec<u8>,
}

fn sum16(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u16::from_be_bytes([c[0], c[1]]) as u64;
    }
    if let [b] = chunks.remainder() {
        acc += (*b as u64) << 8;
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Transport checksum over the pseudo-header of `ip` (final protocol `proto`) and `l4`.
pub fn l4_checksum(ip: &IpHdr, proto: u8, l4: &[u8]) -> u16 {
    let mut acc = match ip {
        IpHdr::V4(h) => sum16(&h.dst, sum16(&h.src, 0)),
        IpHdr::V6(h) => sum16(&h.dst, sum16(&h.src, 0)),
    };
    acc += proto as u64 + l4.len() as u64;
    fold(sum16(l4, acc))
}

/// A TCP segment (header, options, payload) with its checksum.
pub fn tcp_segment(ip: &IpHdr, t: &Tcp) -> Vec<u8> {
    let doff = 20 + t.options.len();
    let mut b = Vec::with_capacity(doff + t.payload.len());
    b.extend_from_slice(&t.sport.to_be_bytes());
    b.extend_from_slice(&t.dport.to_be_bytes());
    b.extend_from_slice(&t.seq.to_be_bytes());
    b.extend_from_slice(&t.ack.to_be_bytes());
    b.push((((doff / 4) as u8) << 4) | (t.reserved & 0x0f));
    b.push(t.flags);
    b.extend_from_slice(&t.window.to_be_bytes());
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&t.urgent.to_be_bytes());
    b.extend_from_slice(&t.options);
    b.extend_from_slice(&t.payload);
    let c = l4_checksum(ip, 6, &b);
    b[16..18].copy_from_slice(&c.to_be_bytes());
    b
}

/// An Ethernet frame (with the link's VLAN tags) carrying `l4` as IP protocol `proto`.
pub fn frame(link: &Link, ip: &IpHdr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(80 + l4.len());
    b.extend_from_slice(&link.dst);
    b.extend_from_slice(&link.src);
    for &(tpid, vid) in &link.vlans {
        b.extend_from_slice(&tpid.to_be_bytes());
        b.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    }
    match ip {
        IpHdr::V4(h) => {
            b.extend_from_slice(&0x0800u16.to_be_bytes());
            let start = b.len();
            let ihl = 20 + h.options.len();
            b.push(0x40 | (ihl / 4) as u8);
            b.push(h.tos);
            b.extend_from_slice(&((ihl + l4.len()) as u16).to_be_bytes());
            b.extend_from_slice(&h.id.to_be_bytes());
            b.extend_from_slice(&h.flags.to_be_bytes());
            b.push(h.ttl);
            b.push(proto);
            b.extend_from_slice(&[0, 0]);
            b.extend_from_slice(&h.src);
            b.extend_from_slice(&h.dst);
            b.extend_from_slice(&h.options);
            let c = checksum(&b[start..start + ihl]);
            b[start + 10..start + 12].copy_from_slice(&c.to_be_bytes());
        }
        IpHdr::V6(h) => {
            b.extend_from_slice(&0x86ddu16.to_be_bytes());
            let vtf = (6u32 << 28) | ((h.traffic_class as u32) << 20) | (h.flow & 0xfffff);
            b.extend_from_slice(&vtf.to_be_bytes());
            b.extend_from_slice(&((h.ext.len() * 8 + l4.len()) as u16).to_be_bytes());
            b.push(*h.ext.first().unwrap_or(&proto));
            b.push(h.hop_limit);
            b.extend_from_slice(&h.src);
            b.extend_from_slice(&h.dst);
            for (i, kind) in h.ext.iter().enumerate() {
                let next = *h.ext.get(i + 1).unwrap_or(&proto);
                match kind {
                    // Routing type 0 with no segments left; atomic fragment (offset 0, last).
                    43 => b.extend_from_slice(&[next, 0, 0, 0, 0, 0, 0, 0]),
                    44 => b.extend_from_slice(&[next, 0, 0, 0, 0, 0, 0x12, 0x34]),
                    // Hop-by-hop and destination options: one PadN option fills the 8 bytes.
                    _ => b.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]),
                }
            }
        }
    }
    b.extend_from_slice(l4);
    if b.len() < 60 {
        b.resize(60, 0);
    }
    b
}
