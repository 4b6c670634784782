//! Decoded frames that borrow nothing, so that one thread decodes and another processes.
//!
//! Replay decodes on the capture-reader thread, beside reading the file, while the packet
//! thread runs the flow table and the analyzers: decoding is about a fifth of the packet
//! path, and the reader's core is otherwise mostly idle. A [`Decoded`] borrows the frame and
//! the decoder's reassembly buffers, which stay behind on the reader thread, so what crosses
//! over is a [`DecodedBatch`]: each frame's decode with every byte slice turned into a
//! [`Span`] of the frame (or of the batch's own copy of the reassembled bytes). The packet
//! thread turns an entry back into a [`Decoded`] over the same frame bytes
//! ([`DecodedBatch::get`]), field for field what the decoder returned.

use std::net::IpAddr;

use super::{
    Decoded, DropReason, IcmpMessage, IpLayer, MacPair, Payload, TcpSegment, Transport, TunnelKind,
    UdpDatagram,
};
use crate::ts::Ts;

/// A frame's outer TCP/UDP 5-tuple (for the flow table's look-ahead: `FlowTable::prefetch_cell`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FiveTuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub proto: u8,
}

/// Marks a span of [`DecodedBatch::side`] rather than of the frame.
const SIDE: u32 = 1 << 31;

/// Where a byte slice of a decoded frame lies: in the frame itself, or (top bit of `at` set)
/// in the batch's side buffer (bytes rebuilt from fragments).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    at: u32,
    len: u32,
}

impl Span {
    fn resolve<'a>(self, frame: &'a [u8], side: &'a [u8]) -> &'a [u8] {
        let (buf, at) = if self.at & SIDE != 0 {
            (side, self.at & !SIDE)
        } else {
            (frame, self.at)
        };
        let start = at as usize;
        buf.get(start..start.saturating_add(self.len as usize))
            .unwrap_or_default()
    }
}

#[derive(Clone, Copy, Debug)]
enum DetachedTransport {
    Tcp {
        src_port: u16,
        dst_port: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        window: u16,
        checksum_ok: bool,
        payload_len: u32,
        options: Span,
        header: Span,
        payload: Span,
    },
    Udp {
        src_port: u16,
        dst_port: u16,
        checksum_ok: bool,
        payload_len: u32,
        payload: Span,
    },
    Icmp {
        v6: bool,
        icmp_type: u8,
        code: u8,
        checksum_ok: bool,
        payload_len: u32,
        payload: Span,
        header: Span,
    },
    Other {
        payload: Span,
    },
}

/// One [`IpLayer`] with spans for slices.
#[derive(Clone, Copy, Debug)]
struct DetachedLayer {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    ttl: u8,
    dont_fragment: bool,
    reassembled: bool,
    ip_id: u16,
    header_len: u16,
    ip_len: u32,
    encap: Option<TunnelKind>,
    header: Span,
    transport: DetachedTransport,
}

#[derive(Clone, Copy, Debug)]
enum DetachedPayload {
    Ip,
    NonIp { ethertype: u16, payload: Span },
    FragmentHeld,
}

/// One frame's decode: its layers are `layers[first..first + depth]` of the batch.
#[derive(Clone, Copy, Debug)]
struct DetachedFrame {
    ts: Ts,
    macs: Option<MacPair>,
    vlan: Option<u16>,
    payload: DetachedPayload,
    first: u32,
    depth: u8,
}

/// The decodes of a batch of frames, in frame order.
///
/// Memory: the entries grow with the batch (a few hundred thousand frames at most, as many
/// as a capture window holds) and `side` with the reassembled datagrams completed in it
/// (bounded by the window plus the fragment table's byte budget); all of it is kept and
/// reused when the batch comes back for the next window.
#[derive(Debug, Default)]
pub struct DecodedBatch {
    frames: Vec<Result<DetachedFrame, DropReason>>,
    layers: Vec<DetachedLayer>,
    side: Vec<u8>,
}

impl DecodedBatch {
    pub fn clear(&mut self) {
        self.frames.clear();
        self.layers.clear();
        self.side.clear();
    }

    /// Appends the decode of `frame` (the bytes `d` was decoded from).
    pub fn push(&mut self, frame: &[u8], d: Result<&Decoded<'_>, DropReason>) {
        let entry = match d {
            Err(reason) => Err(reason),
            Ok(d) => {
                let first = self.layers.len() as u32;
                let mut depth = 0u8;
                for l in d.layers() {
                    let layer = self.detach_layer(frame, l);
                    self.layers.push(layer);
                    depth += 1;
                }
                let payload = match d.payload {
                    Payload::Ip => DetachedPayload::Ip,
                    Payload::FragmentHeld => DetachedPayload::FragmentHeld,
                    Payload::NonIp { ethertype, payload } => DetachedPayload::NonIp {
                        ethertype,
                        payload: self.span(frame, payload),
                    },
                };
                Ok(DetachedFrame {
                    ts: d.ts,
                    macs: d.macs,
                    vlan: d.vlan,
                    payload,
                    first,
                    depth,
                })
            }
        };
        self.frames.push(entry);
    }

    /// The decode of frame `i`, over `frame`, the same bytes it was pushed with.
    pub fn get<'a>(&'a self, i: usize, frame: &'a [u8]) -> Result<Decoded<'a>, DropReason> {
        let mut d = Decoded::new(Ts(0));
        self.get_into(i, frame, &mut d)?;
        Ok(d)
    }

    /// [`DecodedBatch::get`] into a fresh packet the caller owns (no moves of the several
    /// hundred bytes of a [`Decoded`] through return values on the per-packet path).
    // Always inlined: called per packet by the packet and detection threads, and as a call it
    // pays for copying its several-hundred-byte result.
    #[inline(always)]
    pub fn get_into<'a>(
        &'a self,
        i: usize,
        frame: &'a [u8],
        d: &mut Decoded<'a>,
    ) -> Result<(), DropReason> {
        let f = match self.frames.get(i) {
            Some(Ok(f)) => f,
            Some(Err(reason)) => return Err(*reason),
            None => return Err(DropReason::Malformed),
        };
        let side = self.side.as_slice();
        d.ts = f.ts;
        d.macs = f.macs;
        d.vlan = f.vlan;
        d.payload = match f.payload {
            DetachedPayload::Ip => Payload::Ip,
            DetachedPayload::FragmentHeld => Payload::FragmentHeld,
            DetachedPayload::NonIp { ethertype, payload } => Payload::NonIp {
                ethertype,
                payload: payload.resolve(frame, side),
            },
        };
        let first = f.first as usize;
        let layers = self
            .layers
            .get(first..first + usize::from(f.depth))
            .unwrap_or_default();
        for l in layers {
            if let Some(slot) = d.next_slot() {
                *slot = Some(attach_layer(l, frame, side));
                d.commit_layer();
            }
        }
        Ok(())
    }

    /// The outer TCP/UDP 5-tuple of frame `i`, for look-ahead.
    #[inline]
    pub fn five_tuple(&self, i: usize) -> Option<FiveTuple> {
        let f = self.frames.get(i)?.as_ref().ok()?;
        if f.depth == 0 {
            return None;
        }
        let l = self.layers.get(f.first as usize)?;
        let (src_port, dst_port) = match l.transport {
            DetachedTransport::Tcp {
                src_port, dst_port, ..
            }
            | DetachedTransport::Udp {
                src_port, dst_port, ..
            } => (src_port, dst_port),
            _ => return None,
        };
        Some(FiveTuple {
            src: l.src,
            dst: l.dst,
            src_port,
            dst_port,
            proto: l.proto,
        })
    }

    /// The span of `part` in `frame`, or of a copy of it in `side` when it lies elsewhere
    /// (a reassembly buffer).
    fn span(&mut self, frame: &[u8], part: &[u8]) -> Span {
        let base = frame.as_ptr() as usize;
        let at = (part.as_ptr() as usize).wrapping_sub(base);
        if part.is_empty() {
            return Span::default();
        }
        if at <= frame.len() && part.len() <= frame.len() - at {
            return Span {
                at: at as u32,
                len: part.len() as u32,
            };
        }
        let at = self.side.len() as u32;
        self.side.extend_from_slice(part);
        Span {
            at: at | SIDE,
            len: part.len() as u32,
        }
    }

    fn detach_layer(&mut self, frame: &[u8], l: &IpLayer<'_>) -> DetachedLayer {
        let transport = match l.transport {
            Transport::Tcp(t) => DetachedTransport::Tcp {
                src_port: t.src_port,
                dst_port: t.dst_port,
                seq: t.seq,
                ack: t.ack,
                flags: t.flags,
                window: t.window,
                checksum_ok: t.checksum_ok,
                payload_len: t.payload_len,
                options: self.span(frame, t.options),
                header: self.span(frame, t.header),
                payload: self.span(frame, t.payload),
            },
            Transport::Udp(u) => DetachedTransport::Udp {
                src_port: u.src_port,
                dst_port: u.dst_port,
                checksum_ok: u.checksum_ok,
                payload_len: u.payload_len,
                payload: self.span(frame, u.payload),
            },
            Transport::Icmp(m) => DetachedTransport::Icmp {
                v6: m.v6,
                icmp_type: m.icmp_type,
                code: m.code,
                checksum_ok: m.checksum_ok,
                payload_len: m.payload_len,
                payload: self.span(frame, m.payload),
                header: self.span(frame, m.header),
            },
            Transport::Other { payload } => DetachedTransport::Other {
                payload: self.span(frame, payload),
            },
        };
        DetachedLayer {
            src: l.src,
            dst: l.dst,
            proto: l.proto,
            ttl: l.ttl,
            dont_fragment: l.dont_fragment,
            reassembled: l.reassembled,
            ip_id: l.ip_id,
            header_len: l.header_len,
            ip_len: l.ip_len,
            encap: l.encap,
            header: self.span(frame, l.header),
            transport,
        }
    }
}

#[inline(always)]
fn attach_layer<'a>(l: &DetachedLayer, frame: &'a [u8], side: &'a [u8]) -> IpLayer<'a> {
    let transport = match l.transport {
        DetachedTransport::Tcp {
            src_port,
            dst_port,
            seq,
            ack,
            flags,
            window,
            checksum_ok,
            payload_len,
            options,
            header,
            payload,
        } => Transport::Tcp(TcpSegment {
            src_port,
            dst_port,
            seq,
            ack,
            flags,
            window,
            options: options.resolve(frame, side),
            header: header.resolve(frame, side),
            payload_len,
            payload: payload.resolve(frame, side),
            checksum_ok,
        }),
        DetachedTransport::Udp {
            src_port,
            dst_port,
            checksum_ok,
            payload_len,
            payload,
        } => Transport::Udp(UdpDatagram {
            src_port,
            dst_port,
            payload_len,
            payload: payload.resolve(frame, side),
            checksum_ok,
        }),
        DetachedTransport::Icmp {
            v6,
            icmp_type,
            code,
            checksum_ok,
            payload_len,
            payload,
            header,
        } => Transport::Icmp(IcmpMessage {
            v6,
            icmp_type,
            code,
            payload_len,
            payload: payload.resolve(frame, side),
            header: header.resolve(frame, side),
            checksum_ok,
        }),
        DetachedTransport::Other { payload } => Transport::Other {
            payload: payload.resolve(frame, side),
        },
    };
    IpLayer {
        src: l.src,
        dst: l.dst,
        proto: l.proto,
        ip_len: l.ip_len,
        ttl: l.ttl,
        dont_fragment: l.dont_fragment,
        ip_id: l.ip_id,
        header_len: l.header_len,
        reassembled: l.reassembled,
        header: l.header.resolve(frame, side),
        transport,
        encap: l.encap,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::decode::{linktype, DecodeConfig, Decoder, Frame};
    use crate::stats::Stats;

    /// An Ethernet/IPv4 fragment of a UDP datagram (checksums left for the decoder to skip).
    fn fragment(offset_units: u16, more: bool, body: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        let total = (20 + body.len()) as u16;
        let flags = offset_units | if more { 0x2000 } else { 0 };
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&[0x12, 0x34]);
        ip.extend_from_slice(&flags.to_be_bytes());
        ip.extend_from_slice(&[64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        let sum = ip
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum::<u32>();
        let sum = (sum & 0xffff) + (sum >> 16);
        ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn reassembled_bytes_travel_in_the_side_buffer_and_come_back_the_same() {
        let cfg = DecodeConfig {
            verify_checksums: false,
            ..DecodeConfig::default()
        };
        let mut dec = Decoder::new(cfg, Arc::new(Stats::default()));
        let mut datagram = vec![0x04, 0x00, 0x00, 0x35, 0, 40, 0, 0];
        datagram.extend((0..32u8).map(|b| b.wrapping_mul(7)));
        let frames = [
            fragment(0, true, &datagram[..16]),
            fragment(2, false, &datagram[16..]),
            b"\x02\0\0\0\0\x01\x02\0\0\0\0\x02\x08\x06arp".to_vec(),
            vec![0; 5],
        ];
        let mut batch = DecodedBatch::default();
        let mut want = Vec::new();
        for f in &frames {
            let frame = Frame {
                ts: Ts(1),
                linktype: linktype::ETHERNET,
                data: f,
                wire_len: f.len() as u32,
            };
            let d = dec.decode(frame);
            want.push(format!("{d:?}"));
            batch.push(f, d.as_ref().map_err(|e| *e));
        }
        assert!(
            batch.side.len() >= datagram.len() - 8,
            "the reassembled payload was copied"
        );
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(format!("{:?}", batch.get(i, f)), want[i], "frame {i}");
        }
        let Ok(d) = batch.get(1, &frames[1]) else {
            panic!("the second fragment completes the datagram")
        };
        let layer = d.innermost().expect("a layer");
        assert!(layer.reassembled);
        match layer.transport {
            Transport::Udp(u) => assert_eq!(u.payload, &datagram[8..]),
            t => panic!("{t:?}"),
        }
        assert!(batch.get(3, &frames[3]).is_err());
    }
}
