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
enum Step<'a> {
    Layer(IpLayer<'a>, usize),
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
        let r = ctx.frame(frame);
        if let Err(reason) = r {
            count(stats, reason);
        }
        r
    }
}

fn count(stats: &Stats, reason: DropReason) {
    let c = match reason {
        DropReason::UnknownLinkType => &stats.drop_unknown_linktype,
        DropReason::Malformed => &stats.drop_malformed,
        DropReason::Truncated => &stats.drop_truncated,
        DropReason::TunnelTooDeep => &stats.drop_tunnel_depth,
        DropReason::FragmentDropped => &stats.fragments_dropped,
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
    fn frame(&mut self, frame: Frame<'a>) -> Result<Decoded<'a>, DropReason> {
        let mut d = Decoded::new(frame.ts);
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
                return Ok(d);
            }
        };
        let mut carrier: Option<TunnelKind> = None;
        loop {
            let step = match self.ip_layer(frame, region) {
                Ok(s) => s,
                Err(e) if d.depth() == 0 => return Err(e),
                Err(e) => {
                    count(self.stats, e);
                    break;
                }
            };
            let (mut layer, missing) = match step {
                Step::Layer(l, m) => (l, m),
                Step::Held if d.depth() == 0 => {
                    d.payload = Payload::FragmentHeld;
                    return Ok(d);
                }
                Step::Held => break,
            };
            if let Some(kind) = carrier {
                if let Some(outer) = d.last_mut() {
                    outer.encap = Some(kind);
                }
            }
            let found = tunnel::detect(layer.proto, &layer.transport, missing);
            layer.encap = None;
            if !d.push_layer(layer) {
                Stats::inc(&self.stats.drop_tunnel_depth);
                if let Some(outer) = d.last_mut() {
                    outer.encap = None;
                }
                break;
            }
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
        Ok(d)
    }

    /// Decodes one IP header and its transport, reassembling fragments.
    fn ip_layer(&mut self, frame: Frame<'a>, region: Region<'a>) -> Result<Step<'a>, DropReason> {
        let verify = self.cfg.verify_checksums;
        let h = ip::parse(region.data, region.wire, verify)?;
        let Some(fi) = h.frag else {
            let missing = h.payload_wire.saturating_sub(h.payload.len());
            let layer = self.layer(&h, h.proto, h.ip_len, h.payload, h.payload_wire, false)?;
            return Ok(Step::Layer(layer, missing));
        };
        Stats::inc(&self.stats.fragments_seen);
        let key = FragKey {
            src: h.src,
            dst: h.dst,
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
            // Already counted in `fragments_dropped` by the table.
            Outcome::Dropped => Ok(Step::Held),
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
                let layer = self.layer(&h, proto, ip_len as u32, payload, payload.len(), true)?;
                Ok(Step::Layer(layer, 0))
            }
        }
    }

    fn layer(
        &self,
        h: &IpHeader<'a>,
        proto: u8,
        ip_len: u32,
        payload: &'a [u8],
        payload_wire: usize,
        reassembled: bool,
    ) -> Result<IpLayer<'a>, DropReason> {
        let pseudo = Pseudo {
            src: h.src,
            dst: h.dst,
            proto,
        };
        let t = ip::transport(pseudo, payload, payload_wire, self.cfg.verify_checksums)?;
        if t.bad_checksum {
            Stats::inc(&self.stats.bad_checksums);
        }
        Ok(IpLayer {
            src: h.src,
            dst: h.dst,
            proto,
            ip_len,
            ttl: h.ttl,
            dont_fragment: h.dont_fragment,
            ip_id: h.ip_id,
            header_len: h.header_len,
            reassembled,
            transport: t.transport,
            encap: None,
        })
    }
}

fn t_bytes(i: Inner<'_>) -> &[u8] {
    match i {
        Inner::Ip(b) | Inner::Ethernet(b) => b,
    }
}
