//! The decoder proper: link layer, then IP layers one after the other, each possibly carrying
//! the next through a tunnel.
//!
//! Failure policy: a frame whose outermost IP layer cannot be decoded is an `Err`. Once one layer
//! stands, a problem further in (a malformed inner packet, a fragment held for reassembly, a
//! tunnel deeper than [`MAX_LAYERS`]) ends the stack there and the frame is returned with the
//! layers decoded so far: Zeek, too, has already accounted the carrier's packet to its connection
//! by the time it looks inside. The problem is still counted in [`Stats`]. A carrier's `encap` is
//! set only when the layer it carries was decoded.

use std::sync::Arc;

use super::frag::{FirstFragment, FragKey, FragTable, Outcome, Piece, MAX_DATAGRAM};
use super::ip::{self, IpHeader, Pseudo};
use super::link::{self, Net};
use super::tunnel::{self, Inner};
use super::{DecodeConfig, Decoded, DropReason, Frame, IpLayer, Payload, TunnelKind, MAX_LAYERS};
use crate::stats::Stats;

/// Turns frames into [`Decoded`] packets. One per packet-processing worker; it owns the
/// fragment reassembly table, so all memory it needs is allocated by [`Decoder::new`].
pub struct Decoder {
    cfg: DecodeConfig,
    stats: Arc<Stats>,
    frags: FragTable,
    /// One reassembly output buffer per possible layer, reused from frame to frame.
    outs: Vec<Vec<u8>>,
}

/// Bytes of one IP packet, and how long it was on the wire (at least the captured length).
#[derive(Clone, Copy)]
struct Region<'a> {
    data: &'a [u8],
    wire: usize,
}

impl<'a> Region<'a> {
    /// A part of this region: if it runs to the region's end, it lost what the region lost.
    fn sub(&self, part: &'a [u8]) -> Region<'a> {
        let lost = self.wire.saturating_sub(self.data.len());
        let at_end = part.as_ptr_range().end == self.data.as_ptr_range().end;
        Region {
            data: part,
            wire: part.len() + if at_end { lost } else { 0 },
        }
    }
}

/// One IP layer's outcome.
enum Step {
    /// Built in the slot given: the bytes of its payload missing from the capture, and its
    /// transport protocol.
    Layer {
        missing: usize,
        proto: u8,
    },
    Held,
}

impl Decoder {
    pub fn new(cfg: DecodeConfig, stats: Arc<Stats>) -> Self {
        let frags = FragTable::new(
            cfg.max_fragment_sets,
            cfg.max_fragment_bytes,
            cfg.fragment_timeout_secs,
            stats.clone(),
        );
        let outs = (0..MAX_LAYERS)
            .map(|_| Vec::with_capacity(MAX_DATAGRAM))
            .collect();
        Decoder {
            cfg,
            stats,
            frags,
            outs,
        }
    }

    /// Decodes one frame. Drops are counted in [`Stats`] by the decoder itself, as are non-IP
    /// frames, fragments, and packets with a bad TCP/UDP/ICMP checksum (`bad_checksums`; those
    /// are still returned, with `checksum_ok == false`).
    pub fn decode<'a>(&'a mut self, frame: Frame<'a>) -> Result<Decoded<'a>, DropReason> {
        let mut d = Decoded::new(frame.ts);
        self.decode_into(frame, &mut d)?;
        Ok(d)
    }

    /// [`Decoder::decode`] into a packet the caller owns: the per-packet path decodes in place
    /// rather than moving the (several hundred bytes) `Decoded` through return values. `d`
    /// must be fresh ([`Decoded::new`]); on `Err` its contents are unspecified.
    pub fn decode_into<'a>(
        &'a mut self,
        frame: Frame<'a>,
        d: &mut Decoded<'a>,
    ) -> Result<(), DropReason> {
        let Decoder {
            cfg,
            stats,
            frags,
            outs,
        } = self;
        let mut ctx = Ctx {
            cfg,
            stats,
            frags,
            outs: outs.iter_mut(),
        };
        let r = ctx.frame(frame, d);
        if let Err(reason) = r {
            count(stats, reason);
        }
        r
    }
}

impl Decoder {
    /// Datagrams being reassembled and bytes of the arena they hold.
    #[cfg(test)]
    pub(crate) fn fragment_usage(&self) -> (usize, usize) {
        (self.frags.pending(), self.frags.bytes_held())
    }
}

fn count(stats: &Stats, reason: DropReason) {
    let c = match reason {
        DropReason::UnknownLinkType => &stats.drop_unknown_linktype,
        DropReason::Malformed => &stats.drop_malformed,
        DropReason::Truncated => &stats.drop_truncated,
        DropReason::TunnelTooDeep => &stats.drop_tunnel_depth,
        // The fragment table counts each datagram it gives up, which is what the counter means.
        DropReason::FragmentDropped => return,
        DropReason::BadChecksum => &stats.bad_checksums,
    };
    Stats::inc(c);
}

/// The decoder's parts, split so that reassembly buffers can be lent out for the frame's
/// lifetime while the table stays usable for the next layer.
struct Ctx<'a, 'd> {
    cfg: &'d DecodeConfig,
    stats: &'d Stats,
    frags: &'d mut FragTable,
    outs: std::slice::IterMut<'a, Vec<u8>>,
}

impl<'a> Ctx<'a, '_> {
    fn frame(&mut self, frame: Frame<'a>, d: &mut Decoded<'a>) -> Result<(), DropReason> {
        let l = link::parse(frame.linktype, frame.data)?;
        d.macs = l.macs;
        d.vlan = l.vlan;
        let whole = Region {
            data: frame.data,
            wire: (frame.wire_len as usize).max(frame.data.len()),
        };
        let mut region = match l.net {
            Net::Ip(b) => whole.sub(b),
            Net::NonIp { ethertype, payload } => {
                Stats::inc(&self.stats.non_ip_frames);
                d.payload = Payload::NonIp { ethertype, payload };
                return Ok(());
            }
        };
        let mut carrier: Option<TunnelKind> = None;
        loop {
            let Some(slot) = d.next_slot() else {
                // Cannot happen: the loop stops at MAX_LAYERS below.
                Stats::inc(&self.stats.drop_tunnel_depth);
                if let Some(outer) = d.last_mut() {
                    outer.encap = None;
                }
                break;
            };
            // The layer is built in its slot of `d`: an IpLayer is large, and building it
            // elsewhere cost a copy per step on the way in.
            let step = match self.ip_layer(frame, region, slot) {
                Ok(s) => s,
                Err(e) if d.depth() == 0 => return Err(e),
                Err(e) => {
                    count(self.stats, e);
                    break;
                }
            };
            let (missing, proto) = match step {
                Step::Layer { missing, proto } => (missing, proto),
                Step::Held if d.depth() == 0 => {
                    d.payload = Payload::FragmentHeld;
                    return Ok(());
                }
                Step::Held => break,
            };
            if let Some(kind) = carrier {
                if let Some(outer) = d.last_mut() {
                    outer.encap = Some(kind);
                }
            }
            d.commit_layer();
            if !tunnel::may_carry(proto) {
                break;
            }
            let found = d
                .innermost()
                .and_then(|l| tunnel::detect(l.proto, &l.transport, missing));
            let Some(t) = found else { break };
            if d.depth() == MAX_LAYERS {
                // Zeek's Tunnel::max_depth: the carrier stands, what it carries is not decoded.
                Stats::inc(&self.stats.drop_tunnel_depth);
                break;
            }
            let outer = Region {
                data: t_bytes(t.inner),
                wire: t_bytes(t.inner).len() + t.missing,
            };
            let next = match t.inner {
                Inner::Ip(b) => outer.sub(b),
                Inner::Ethernet(b) => {
                    // The inner frame's addresses and tags are not the capture's: ignore them.
                    let mut vlan = None;
                    match link::ethernet(b, &mut vlan) {
                        Ok((_, Net::Ip(ip))) => outer.sub(ip),
                        Ok((_, Net::NonIp { .. })) => break,
                        Err(e) => {
                            count(self.stats, e);
                            break;
                        }
                    }
                }
            };
            carrier = Some(t.kind);
            region = next;
        }
        Ok(())
    }

    /// Decodes one IP header and its transport, reassembling fragments.
    fn ip_layer(
        &mut self,
        frame: Frame<'a>,
        region: Region<'a>,
        slot: &mut Option<IpLayer<'a>>,
    ) -> Result<Step, DropReason> {
        let verify = self.cfg.verify_checksums;
        let h = ip::parse(region.data, region.wire, verify)?;
        let Some(fi) = h.frag else {
            let missing = h.payload_wire.saturating_sub(h.payload.len());
            self.layer(
                &h,
                h.proto,
                h.ip_len,
                h.payload,
                h.payload_wire,
                false,
                slot,
            )?;
            return Ok(Step::Layer {
                missing,
                proto: h.proto,
            });
        };
        Stats::inc(&self.stats.fragments_seen);
        let key = FragKey {
            src: h.src.ip(),
            dst: h.dst.ip(),
            id: fi.id,
            proto: if h.v6 { 0 } else { h.proto },
        };
        let first = (fi.offset == 0).then_some(FirstFragment {
            ttl: h.ttl,
            dont_fragment: h.dont_fragment,
            ip_id: h.ip_id,
            header_len: h.header_len,
            ext_len: h.ext_len,
            proto: h.proto,
        });
        let Some(out) = self.outs.next() else {
            // Cannot happen: each layer takes at most one of the MAX_LAYERS buffers.
            Stats::inc(&self.stats.fragments_dropped);
            return Err(DropReason::FragmentDropped);
        };
        let piece = Piece {
            key,
            frag: fi,
            data: h.payload,
            wire: h.payload_wire,
            first,
        };
        let outcome = self.frags.insert(frame.ts, piece, out);
        match outcome {
            Outcome::Held => Ok(Step::Held),
            Outcome::Dropped => Err(DropReason::FragmentDropped),
            Outcome::Complete { first, len } => {
                let out: &'a Vec<u8> = out;
                let data = out.get(..len).unwrap_or(&[]);
                let h = IpHeader {
                    ttl: first.ttl,
                    dont_fragment: first.dont_fragment,
                    ip_id: first.ip_id,
                    header_len: first.header_len,
                    ext_len: first.ext_len,
                    ..h
                };
                let (proto, payload) = if h.v6 {
                    let chain = ip::walk_ext(first.proto, data, len)?;
                    if chain.frag.is_some() {
                        return Err(DropReason::Malformed);
                    }
                    (chain.proto, data.get(chain.payload_at..).unwrap_or(&[]))
                } else {
                    (first.proto, data)
                };
                let ip_len = usize::from(first.header_len) + first.ext_len + len;
                self.layer(&h, proto, ip_len as u32, payload, payload.len(), true, slot)?;
                Ok(Step::Layer { missing: 0, proto })
            }
        }
    }

    // Inlined so that the header parsed by the caller stays in registers instead of being
    // stored to the stack to be passed by reference.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn layer(
        &self,
        h: &IpHeader<'a>,
        proto: u8,
        ip_len: u32,
        payload: &'a [u8],
        payload_wire: usize,
        reassembled: bool,
        slot: &mut Option<IpLayer<'a>>,
    ) -> Result<(), DropReason> {
        let pseudo = Pseudo {
            src: h.src,
            dst: h.final_dst.unwrap_or(h.dst),
            proto,
        };
        let t = ip::transport(pseudo, payload, payload_wire, self.cfg.verify_checksums)?;
        if t.bad_checksum {
            Stats::inc(&self.stats.bad_checksums);
        }
        *slot = Some(IpLayer {
            src: h.src.ip(),
            dst: h.dst.ip(),
            proto,
            ip_len,
            ttl: h.ttl,
            dont_fragment: h.dont_fragment,
            ip_id: h.ip_id,
            header_len: h.header_len,
            reassembled,
            header: h.header,
            transport: t.transport,
            encap: None,
        });
        Ok(())
    }
}

fn t_bytes(i: Inner<'_>) -> &[u8] {
    match i {
        Inner::Ip(b) | Inner::Ethernet(b) => b,
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::decode::ip::build::{
        self, fix_l4_checksum, ipv4_frag, tcp, udp, v4_packet, v6_packet,
    };
    use crate::decode::ip::proto;
    use crate::decode::{linktype, MacPair, Transport};
    use crate::ts::Ts;

    const A: [u8; 4] = [10, 0, 0, 1];
    const B: [u8; 4] = [10, 0, 0, 2];
    const C: [u8; 4] = [192, 168, 0, 1];
    const D: [u8; 4] = [192, 168, 0, 2];
    const SRC_MAC: [u8; 6] = [0, 1, 2, 3, 4, 5];
    const DST_MAC: [u8; 6] = [6, 7, 8, 9, 10, 11];

    fn decoder() -> (Decoder, Arc<Stats>) {
        decoder_with(DecodeConfig::default())
    }

    fn decoder_with(cfg: DecodeConfig) -> (Decoder, Arc<Stats>) {
        let stats = Arc::new(Stats::default());
        (Decoder::new(cfg, stats.clone()), stats)
    }

    fn eth(et: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = DST_MAC.to_vec();
        f.extend_from_slice(&SRC_MAC);
        f.extend_from_slice(&et.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn frame(data: &[u8]) -> Frame<'_> {
        Frame {
            ts: Ts::from_secs(1000),
            linktype: linktype::ETHERNET,
            data,
            wire_len: data.len() as u32,
        }
    }

    /// Outer IPv4/UDP to `port` carrying `inner` (UDP checksum filled in).
    fn udp_carrier(port: u16, inner: &[u8]) -> Vec<u8> {
        v4_packet(C, D, proto::UDP, udp(40000, port, inner))
    }

    #[test]
    fn ethernet_vlan_ipv4_tcp() {
        let (mut d, stats) = decoder();
        let ip = v4_packet(A, B, proto::TCP, tcp(1234, 502, 0x18, b"modbus"));
        let mut tagged = vec![0x20, 0x07, 0x08, 0x00];
        tagged.extend_from_slice(&ip);
        let f = eth(0x8100, &tagged);
        let out = d.decode(frame(&f)).unwrap();
        assert_eq!(
            out.macs,
            Some(MacPair {
                src: SRC_MAC,
                dst: DST_MAC
            })
        );
        assert_eq!(out.vlan, Some(7));
        assert_eq!(out.depth(), 1);
        let l = out.innermost().unwrap();
        assert_eq!(l.src, IpAddr::from(A));
        assert_eq!(l.dst, IpAddr::from(B));
        assert_eq!(
            (l.proto, l.ip_len, l.ttl, l.header_len),
            (6, ip.len() as u32, 64, 20)
        );
        assert!(!l.reassembled && l.encap.is_none());
        match l.transport {
            Transport::Tcp(s) => {
                assert_eq!(
                    (s.src_port, s.dst_port, s.payload),
                    (1234, 502, &b"modbus"[..])
                );
                assert!(s.checksum_ok);
            }
            t => panic!("{t:?}"),
        }
        assert_eq!(stats.snapshot().bad_checksums, 0);
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let (mut d, _) = decoder();
        let mut ip = v4_packet(A, B, proto::UDP, udp(1, 2, b"x"));
        ip.extend_from_slice(&[0; 17]);
        let f = eth(0x0800, &ip);
        let out = d.decode(frame(&f)).unwrap();
        match out.innermost().unwrap().transport {
            Transport::Udp(u) => assert_eq!(u.payload, b"x"),
            t => panic!("{t:?}"),
        }
    }

    #[test]
    fn bad_input_is_counted_not_panicked() {
        let (mut d, stats) = decoder();
        assert_eq!(d.decode(frame(&[])).unwrap_err(), DropReason::Truncated);
        let f = eth(
            0x0800,
            &[
                0x41, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
            ],
        );
        assert_eq!(d.decode(frame(&f)).unwrap_err(), DropReason::Malformed);
        let unknown = Frame {
            linktype: 4242,
            ..frame(&f)
        };
        assert_eq!(d.decode(unknown).unwrap_err(), DropReason::UnknownLinkType);
        // 256 KiB of zeros and of 0x45: no panic, some drop.
        let big = vec![0u8; 256 * 1024];
        assert!(d.decode(frame(&big)).is_ok()); // EtherType 0: an empty 802.3 frame
        let big = vec![0x45u8; 256 * 1024];
        assert!(d.decode(frame(&big)).is_ok());
        let mut big = eth(0x0800, &v4_packet(A, B, proto::UDP, udp(1, 2, b"y")));
        big.resize(256 * 1024, 0xee);
        assert_eq!(d.decode(frame(&big)).unwrap().depth(), 1);
        let s = stats.snapshot();
        assert_eq!(
            (s.drop_truncated, s.drop_malformed, s.drop_unknown_linktype),
            (1, 1, 1)
        );
    }

    #[test]
    fn non_ip_frames_are_counted() {
        let (mut d, stats) = decoder();
        let arp = eth(0x0806, &[0, 1, 8, 0, 6, 4, 0, 1]);
        let out = d.decode(frame(&arp)).unwrap();
        assert!(matches!(
            out.payload,
            Payload::NonIp {
                ethertype: 0x0806,
                ..
            }
        ));
        assert_eq!(out.depth(), 0);
        let cclink = eth(0x890f, &[1, 2, 3]);
        assert!(matches!(
            d.decode(frame(&cclink)).unwrap().payload,
            Payload::NonIp {
                ethertype: 0x890f,
                ..
            }
        ));
        assert_eq!(stats.snapshot().non_ip_frames, 2);
    }

    #[test]
    fn checksums() {
        let (mut d, stats) = decoder();
        let mut ip = v4_packet(A, B, proto::TCP, tcp(1, 2, 0x02, b""));
        ip[10] ^= 0x55; // IPv4 header checksum
        let f = eth(0x0800, &ip);
        assert_eq!(d.decode(frame(&f)).unwrap_err(), DropReason::BadChecksum);
        assert_eq!(stats.snapshot().bad_checksums, 1);
        let mut ip = v4_packet(A, B, proto::TCP, tcp(1, 2, 0x02, b"abc"));
        let n = ip.len();
        ip[n - 1] ^= 1;
        let f = eth(0x0800, &ip);
        let out = d.decode(frame(&f)).unwrap();
        assert!(matches!(
            out.innermost().unwrap().transport,
            Transport::Tcp(TcpSegmentView {
                checksum_ok: false,
                ..
            })
        ));
        assert_eq!(stats.snapshot().bad_checksums, 2);
        // With verification off nothing is checked.
        let (mut d, stats) = decoder_with(DecodeConfig {
            verify_checksums: false,
            ..DecodeConfig::default()
        });
        let out = d.decode(frame(&f)).unwrap();
        assert!(matches!(
            out.innermost().unwrap().transport,
            Transport::Tcp(TcpSegmentView {
                checksum_ok: true,
                ..
            })
        ));
        assert_eq!(stats.snapshot().bad_checksums, 0);
    }

    use crate::decode::TcpSegment as TcpSegmentView;

    #[test]
    fn snaplen_cut_frame_uses_header_lengths() {
        let (mut d, _) = decoder();
        let ip = v4_packet(A, B, proto::TCP, tcp(1, 2, 0x18, &[9u8; 1000]));
        let f = eth(0x0800, &ip);
        let cut = Frame {
            wire_len: f.len() as u32,
            ..frame(&f[..96])
        };
        let out = d.decode(cut).unwrap();
        let l = out.innermost().unwrap();
        assert_eq!(l.ip_len as usize, ip.len());
        match l.transport {
            Transport::Tcp(s) => {
                assert_eq!(s.payload_len, 1000);
                assert_eq!(s.payload.len(), 96 - 14 - 44);
                assert!(s.checksum_ok);
            }
            t => panic!("{t:?}"),
        }
        // The same cut without the wire length saying so: the datagram is truncated.
        assert_eq!(
            d.decode(frame(&f[..96])).unwrap_err(),
            DropReason::Truncated
        );
    }

    #[test]
    fn ipv4_fragments_reassemble() {
        let (mut d, stats) = decoder();
        let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let mut seg = udp(5000, 53, &payload);
        fix_l4_checksum(A.into(), B.into(), proto::UDP, &mut seg);
        let f1 = eth(
            0x0800,
            &ipv4_frag(A, B, proto::UDP, 77, 0, true, &seg[..1480]),
        );
        let f2 = eth(
            0x0800,
            &ipv4_frag(A, B, proto::UDP, 77, 1480, true, &seg[1480..2960]),
        );
        let f3 = eth(
            0x0800,
            &ipv4_frag(A, B, proto::UDP, 77, 2960, false, &seg[2960..]),
        );
        assert!(matches!(
            d.decode(frame(&f3)).unwrap().payload,
            Payload::FragmentHeld
        ));
        assert!(matches!(
            d.decode(frame(&f1)).unwrap().payload,
            Payload::FragmentHeld
        ));
        let out = d.decode(frame(&f2)).unwrap();
        assert!(out.macs.is_some());
        let l = out.innermost().unwrap();
        assert!(l.reassembled);
        assert_eq!(l.ip_len as usize, 20 + seg.len());
        assert_eq!(l.ip_id, 77);
        match l.transport {
            Transport::Udp(u) => {
                assert_eq!(u.payload, &payload[..]);
                assert_eq!(u.payload_len, 3000);
                assert!(u.checksum_ok);
            }
            t => panic!("{t:?}"),
        }
        let s = stats.snapshot();
        assert_eq!(
            (
                s.fragments_seen,
                s.fragments_reassembled,
                s.fragments_dropped
            ),
            (3, 1, 0)
        );
    }

    #[test]
    fn ipv6_fragments_reassemble() {
        let (mut d, stats) = decoder();
        let a6 = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let b6 = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        let full = v6_packet(a6, b6, proto::UDP, udp(1000, 2000, &[3u8; 100]));
        let seg = &full[40..];
        let frag = |off: usize, more: bool, data: &[u8]| {
            let mut body = vec![proto::UDP, 0];
            body.extend_from_slice(&((off as u16) | u16::from(more)).to_be_bytes());
            body.extend_from_slice(&0x1234_5678u32.to_be_bytes());
            body.extend_from_slice(data);
            eth(0x86dd, &build::ipv6(a6, b6, proto::FRAGMENT, &body))
        };
        let f1 = frag(0, true, &seg[..64]);
        let f2 = frag(64, false, &seg[64..]);
        assert!(matches!(
            d.decode(frame(&f1)).unwrap().payload,
            Payload::FragmentHeld
        ));
        let out = d.decode(frame(&f2)).unwrap();
        let l = out.innermost().unwrap();
        assert!(l.reassembled);
        assert_eq!(l.ip_len as usize, full.len());
        assert_eq!(l.proto, proto::UDP);
        assert!(
            matches!(l.transport, Transport::Udp(u) if u.checksum_ok && u.payload == [3u8; 100])
        );
        assert_eq!(stats.snapshot().fragments_reassembled, 1);
    }

    #[test]
    fn overlapping_fragments_are_dropped() {
        let (mut d, stats) = decoder();
        let f1 = eth(0x0800, &ipv4_frag(A, B, proto::UDP, 5, 0, true, &[1u8; 64]));
        let f2 = eth(
            0x0800,
            &ipv4_frag(A, B, proto::UDP, 5, 32, false, &[2u8; 64]),
        );
        assert!(matches!(
            d.decode(frame(&f1)).unwrap().payload,
            Payload::FragmentHeld
        ));
        assert_eq!(
            d.decode(frame(&f2)).unwrap_err(),
            DropReason::FragmentDropped
        );
        assert_eq!(stats.snapshot().fragments_dropped, 1);
        assert_eq!(d.frags.pending(), 0);
    }

    #[test]
    fn fragment_flood_is_bounded() {
        let cfg = DecodeConfig {
            max_fragment_sets: 100,
            max_fragment_bytes: 256 * 1024,
            ..DecodeConfig::default()
        };
        let (mut d, stats) = decoder_with(cfg);
        for id in 0..5000u16 {
            let f = eth(
                0x0800,
                &ipv4_frag(A, B, proto::UDP, id, 0, true, &[id as u8; 1200]),
            );
            let fr = Frame {
                ts: Ts(1_000_000_000 + i64::from(id)),
                ..frame(&f)
            };
            assert!(matches!(
                d.decode(fr).unwrap().payload,
                Payload::FragmentHeld
            ));
            assert!(d.frags.pending() <= 100);
            assert!(d.frags.bytes_held() <= 256 * 1024);
        }
        let s = stats.snapshot();
        assert_eq!(s.fragments_seen, 5000);
        assert!(s.fragments_dropped >= 4900);
    }

    fn vxlan_frame(inner_ip: &[u8]) -> Vec<u8> {
        let mut v = vec![0x08, 0, 0, 0, 0, 0, 0x2a, 0];
        v.extend_from_slice(&[0xa; 6]);
        v.extend_from_slice(&[0xb; 6]);
        v.extend_from_slice(&[0x08, 0x00]);
        v.extend_from_slice(inner_ip);
        eth(0x0800, &udp_carrier(4789, &v))
    }

    #[test]
    fn vxlan_inner_layer() {
        let (mut d, _) = decoder();
        let inner = v4_packet(A, B, proto::TCP, tcp(1, 80, 0x02, b""));
        let f = vxlan_frame(&inner);
        let out = d.decode(frame(&f)).unwrap();
        assert_eq!(out.depth(), 2);
        assert_eq!(
            out.macs,
            Some(MacPair {
                src: SRC_MAC,
                dst: DST_MAC
            })
        );
        let layers: Vec<_> = out.layers().collect();
        assert_eq!(layers[0].encap, Some(TunnelKind::Vxlan));
        assert_eq!(layers[0].dst, IpAddr::from(D));
        assert_eq!(layers[1].encap, None);
        assert_eq!(layers[1].dst, IpAddr::from(B));
        assert!(matches!(layers[1].transport, Transport::Tcp(s) if s.dst_port == 80));
    }

    #[test]
    fn bad_carrier_checksum_stops_decapsulation() {
        let (mut d, stats) = decoder();
        let inner = v4_packet(A, B, proto::TCP, tcp(1, 80, 0x02, b""));
        let mut f = vxlan_frame(&inner);
        let n = f.len();
        f[n - 1] ^= 0xff;
        let out = d.decode(frame(&f)).unwrap();
        assert_eq!(out.depth(), 1);
        assert_eq!(out.innermost().unwrap().encap, None);
        assert_eq!(stats.snapshot().bad_checksums, 1);
    }

    #[test]
    fn malformed_inner_keeps_the_carrier() {
        let (mut d, stats) = decoder();
        let mut gre = vec![0, 0, 0x08, 0x00];
        gre.extend_from_slice(&[0x4f, 0, 0, 20, 0, 0, 0, 0]);
        let f = eth(0x0800, &build::ipv4(C, D, proto::GRE, &gre));
        let out = d.decode(frame(&f)).unwrap();
        assert_eq!(out.depth(), 1);
        assert_eq!(out.innermost().unwrap().encap, None);
        assert_eq!(
            stats.snapshot().drop_truncated + stats.snapshot().drop_malformed,
            1
        );
    }

    #[test]
    fn tunnel_depth_is_limited() {
        let (mut d, stats) = decoder();
        let mut pkt = v4_packet(A, B, proto::UDP, udp(1, 2, b"deep"));
        for _ in 0..7 {
            pkt = build::ipv4(C, D, proto::IPIP, &pkt);
        }
        let f = eth(0x0800, &pkt);
        let out = d.decode(frame(&f)).unwrap();
        assert_eq!(out.depth(), MAX_LAYERS);
        let layers: Vec<_> = out.layers().collect();
        for l in &layers[..MAX_LAYERS - 1] {
            assert_eq!(l.encap, Some(TunnelKind::IpInIp));
        }
        assert_eq!(layers[MAX_LAYERS - 1].encap, None);
        assert_eq!(stats.snapshot().drop_tunnel_depth, 1);
    }

    #[test]
    fn gre_and_teredo_and_gtp() {
        let (mut d, _) = decoder();
        let inner = v4_packet(A, B, proto::ICMP, vec![8, 0, 0, 0, 0, 1, 0, 1]);
        let mut gre = vec![0, 0, 0x08, 0x00];
        gre.extend_from_slice(&inner);
        let f = eth(0x0800, &build::ipv4(C, D, proto::GRE, &gre));
        let out = d.decode(frame(&f)).unwrap();
        assert_eq!(out.layers().next().unwrap().encap, Some(TunnelKind::Gre));
        assert!(matches!(out.innermost().unwrap().transport, Transport::Icmp(i) if i.checksum_ok));

        let a6 = [
            0x20, 1, 0, 0, 0x41, 0x37, 0x9e, 0x50, 0x80, 0, 0xf1, 0x2a, 0xb9, 0xc8, 0x28, 0x15,
        ];
        let b6 = [
            0x20, 1, 0x48, 0x60, 0, 0, 0x20, 1, 0, 0, 0, 0, 0, 0, 0, 0x68,
        ];
        let inner6 = v6_packet(a6, b6, proto::TCP, tcp(1286, 80, 0x02, b""));
        let f = eth(0x0800, &udp_carrier(3544, &inner6));
        let out = d.decode(frame(&f)).unwrap();
        assert_eq!(out.layers().next().unwrap().encap, Some(TunnelKind::Teredo));
        assert_eq!(out.innermost().unwrap().dst, IpAddr::from(b6));

        let mut gtp = vec![0x30, 0xff];
        gtp.extend_from_slice(&(inner.len() as u16).to_be_bytes());
        gtp.extend_from_slice(&[0, 0, 0, 1]);
        gtp.extend_from_slice(&inner);
        let f = eth(0x0800, &udp_carrier(2152, &gtp));
        let out = d.decode(frame(&f)).unwrap();
        assert_eq!(out.layers().next().unwrap().encap, Some(TunnelKind::GtpU));
        assert_eq!(out.depth(), 2);
    }

    #[test]
    fn other_link_types() {
        let (mut d, _) = decoder();
        let ip = v4_packet(A, B, proto::UDP, udp(1, 2, b"z"));
        for lt in [linktype::RAW, linktype::IPV4] {
            let f = Frame {
                linktype: lt,
                ..frame(&ip)
            };
            let out = d.decode(f).unwrap();
            assert_eq!(out.depth(), 1);
            assert!(out.macs.is_none());
        }
        let mut null = vec![2, 0, 0, 0];
        null.extend_from_slice(&ip);
        let f = Frame {
            linktype: linktype::NULL,
            ..frame(&null)
        };
        assert_eq!(d.decode(f).unwrap().depth(), 1);
    }
}
