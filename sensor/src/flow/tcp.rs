//! TCP connection state: endpoint state machines, relative sequence numbers, and the history
//! letters and byte counts Zeek derives from them.
//!
//! Sizes come from sequence numbers, not from payload seen, so a capture that misses segments
//! still reports what the endpoints sent; the bytes never seen are `missed_bytes` (gaps,
//! detected when the peer acknowledges data that was not captured).

use super::history::{mask, History, Scaled};
use crate::decode::{tcp_flags as F, TcpSegment};

/// Sequence jumps beyond this are not trusted on SYN/RST packets.
const TOO_LARGE_SEQ_DELTA: i32 = 1_048_576;
/// Out-of-order ranges remembered per direction for gap detection.
const MAX_BLOCKS: usize = 2;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EndpointState {
    #[default]
    Inactive,
    SynSent,
    SynAckSent,
    Partial,
    Established,
    Closed,
    Reset,
}

impl EndpointState {
    fn is_handshake(self) -> bool {
        matches!(
            self,
            EndpointState::Inactive | EndpointState::SynSent | EndpointState::SynAckSent
        )
    }
}

fn seq_delta(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// One direction of a TCP connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpEndpoint {
    pub state: EndpointState,
    pub prev_state: EndpointState,
    start_seq: u32,
    last_seq: u32,
    ack_seq: u32,
    seq_wraps: u32,
    ack_wraps: u32,
    fin_cnt: u16,
    rst_cnt: u16,
    /// Relative sequence number just past the FIN.
    fin_seq: u64,
    /// Relative sequence numbers of the last SYN/FIN/RST, truncated: only compared for equality.
    hist_last_syn: u32,
    hist_last_fin: u32,
    hist_last_rst: u32,
    pub did_close: bool,
    window_scale: u8,
    chk: Scaled,
    rxmt: Scaled,
    win0: Scaled,
    gap: Scaled,
    /// Next relative sequence number expected in order (1 = first byte after the SYN).
    reassem_seq: u64,
    /// Highest acknowledgement already checked for gaps.
    trim_seq: u64,
    /// Out-of-order data ranges `[seq, upper)` above `reassem_seq`.
    blocks: [(u64, u64); MAX_BLOCKS],
    nblocks: u8,
}

impl TcpEndpoint {
    fn set_state(&mut self, s: EndpointState) {
        if s != self.state {
            self.prev_state = self.state;
            self.state = s;
        }
    }

    fn init_seqs(&mut self, start: u32, last: u32) {
        self.start_seq = start;
        self.ack_seq = start;
        self.last_seq = last;
        self.seq_wraps = 0;
        self.ack_wraps = 0;
    }

    fn update_last_seq(&mut self, s: u32) {
        if s < self.last_seq {
            self.seq_wraps += 1;
        }
        self.last_seq = s;
    }

    fn update_ack_seq(&mut self, s: u32) {
        if s < self.ack_seq {
            self.ack_wraps += 1;
        }
        self.ack_seq = s;
    }

    fn full(seq: u32, wraps: u32) -> u64 {
        ((wraps as u64) << 32) + seq as u64
    }

    fn relative_of(&self, seq: u32, wraps: u32) -> u64 {
        Self::full(seq, wraps).wrapping_sub(self.start_seq as u64)
    }

    /// Zeek's relative sequence of `cur` given the last value seen and its wrap count; the flag
    /// is true when `cur` lies before the start.
    fn relative_seq(&self, cur: u32, last: u32, wraps: u32) -> (u64, bool) {
        let mut wraps = wraps;
        let delta = seq_delta(cur, last);
        if delta < 0 {
            if wraps > 0 && cur > last {
                wraps -= 1;
            }
        } else if delta > 0 && cur < last {
            wraps += 1;
        }
        if wraps == 0 {
            let d = seq_delta(cur, self.start_seq);
            return (d as i64 as u64, d < 0);
        }
        (self.relative_of(cur, wraps), false)
    }

    fn no_data_acked(&self) -> bool {
        self.ack_seq == self.start_seq || self.ack_seq == self.start_seq.wrapping_add(1)
    }

    /// Bytes this endpoint sent, as implied by sequence numbers (Zeek's `TCP_Endpoint::Size`).
    pub fn size(&self, peer: &TcpEndpoint) -> u64 {
        if self.prev_state == EndpointState::SynSent
            && self.state == EndpointState::Reset
            && peer.state == EndpointState::Inactive
            && !self.no_data_acked()
        {
            return 0;
        }
        let last = Self::full(self.last_seq, self.seq_wraps);
        let ack = Self::full(self.ack_seq, self.ack_wraps);
        let start = self.start_seq as u64;
        let mut size = last.max(ack).saturating_sub(start);
        // The SYN and the FIN take a sequence number each but carry no byte.
        size = size.saturating_sub(1);
        if self.fin_cnt > 0 {
            size = size.saturating_sub(1);
        }
        size
    }

    /// Records in-order or out-of-order payload `[seq, seq+len)` for gap detection.
    fn data_sent(&mut self, seq: u64, len: u64) {
        let ack = self.relative_of(self.ack_seq, self.ack_wraps);
        let (mut seq, upper) = (seq, seq + len);
        if seq < ack {
            if upper <= ack {
                return;
            }
            seq = ack;
        }
        if upper <= self.reassem_seq {
            return;
        }
        if seq <= self.reassem_seq {
            self.reassem_seq = upper;
            self.absorb_blocks();
            return;
        }
        // Out of order: remember the range (merging), dropping the highest when full.
        let n = self.nblocks as usize;
        for b in &mut self.blocks[..n] {
            if seq <= b.1 && upper >= b.0 {
                b.0 = b.0.min(seq);
                b.1 = b.1.max(upper);
                return;
            }
        }
        if n < MAX_BLOCKS {
            self.blocks[n] = (seq, upper);
            self.nblocks += 1;
        } else {
            let hi = (0..n).max_by_key(|&i| self.blocks[i].0).unwrap_or(0);
            if self.blocks[hi].0 > seq {
                self.blocks[hi] = (seq, upper);
            }
        }
        self.blocks[..self.nblocks as usize].sort_unstable();
    }

    /// Moves `reassem_seq` past blocks that became contiguous.
    fn absorb_blocks(&mut self) {
        loop {
            let n = self.nblocks as usize;
            let Some(i) = (0..n).find(|&i| self.blocks[i].0 <= self.reassem_seq) else {
                return;
            };
            self.reassem_seq = self.reassem_seq.max(self.blocks[i].1);
            self.blocks.copy_within(i + 1..n, i);
            self.nblocks -= 1;
        }
    }

    /// The peer acknowledged up to relative `seq` of this endpoint's data: bytes acknowledged
    /// but never seen are a content gap. Returns the gap length to count in `missed_bytes`.
    fn ack_received(&mut self, seq: u64, clean: bool, is_partial: bool, report: bool) -> u64 {
        let mut seq = seq;
        if self.fin_cnt > 0 && seq >= self.fin_seq {
            seq = self.fin_seq.saturating_sub(1);
        }
        if seq <= self.trim_seq {
            return 0;
        }
        self.trim_seq = seq;
        if seq <= self.reassem_seq {
            return 0;
        }
        if seq <= 2 && is_partial {
            // A partial connection's numbering was faked as if a SYN was seen, so the first
            // ack is off by one: not a gap.
            self.reassem_seq = seq;
            return 0;
        }
        let mut missing = 0;
        while self.reassem_seq < seq {
            let next_block = self.blocks[..self.nblocks as usize]
                .iter()
                .map(|b| b.0)
                .filter(|&s| s >= self.reassem_seq && s < seq)
                .min();
            match next_block {
                Some(b) => {
                    missing += b - self.reassem_seq;
                    self.reassem_seq = b;
                    self.absorb_blocks();
                }
                None => {
                    missing += seq - self.reassem_seq;
                    self.reassem_seq = seq;
                }
            }
        }
        // Drop ranges now below the trim point.
        let n = self.nblocks as usize;
        let mut k = 0;
        for i in 0..n {
            if self.blocks[i].1 > self.reassem_seq {
                self.blocks[k] = self.blocks[i];
                k += 1;
            }
        }
        self.nblocks = k as u8;
        if missing > 0 && clean && report {
            missing
        } else {
            0
        }
    }

    fn is_clean(&self) -> bool {
        self.state == EndpointState::Established
            || (self.state == EndpointState::Closed
                && self.prev_state == EndpointState::Established)
    }
}

/// The control bits of a segment, decoded once.
#[derive(Clone, Copy)]
struct Bits {
    syn: bool,
    fin: bool,
    rst: bool,
    ack: bool,
}

impl Bits {
    fn of(seg: &TcpSegment<'_>) -> Bits {
        let f = seg.flags;
        Bits {
            syn: f & F::SYN != 0,
            fin: f & F::FIN != 0,
            rst: f & F::RST != 0,
            ack: f & F::ACK != 0,
        }
    }
}

/// What a segment did to the connection, for the flow table's timers.
#[derive(Clone, Copy, Debug, Default)]
pub struct SegmentOutcome {
    /// Roles were swapped by this segment.
    pub flipped: bool,
    /// Both sides closed, or a reset: the connection lingers `tcp_close_delay`, then ends.
    pub close_complete: bool,
    /// Bytes acknowledged that were never captured.
    pub gap_bytes: u64,
    /// The connection left the handshake: switch to the long inactivity timeout.
    pub handshake_done: bool,
    /// Last-activity time should advance (false once both sides closed).
    pub touch: bool,
}

/// The TCP part of a connection. `orig`/`resp` follow the current roles.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpConn {
    pub orig: TcpEndpoint,
    pub resp: TcpEndpoint,
    is_partial: bool,
    first_seen_orig: bool,
    first_seen_resp: bool,
}

impl TcpConn {
    /// Swaps roles (Zeek's `FlipRoles`).
    pub fn flip(&mut self) {
        std::mem::swap(&mut self.orig, &mut self.resp);
        std::mem::swap(&mut self.first_seen_orig, &mut self.first_seen_resp);
        self.is_partial = false;
    }

    /// Zeek's partial status: the connection was not seen from its handshake on.
    pub fn is_partial(&self) -> bool {
        self.is_partial
    }

    pub fn orig_size(&self) -> u64 {
        self.orig.size(&self.resp)
    }

    pub fn resp_size(&self) -> u64 {
        self.resp.size(&self.orig)
    }

    /// A bad-checksum segment: only the scaled `C` letter.
    pub fn checksum_error(&mut self, is_orig: bool, hist: &mut History) {
        let ep = if is_orig {
            &mut self.orig
        } else {
            &mut self.resp
        };
        if ep.chk.hit() {
            hist.add(b'C', is_orig);
        }
    }

    /// Whether a SYN on an existing connection starts a new one (Zeek's `IsReuse`).
    pub fn is_reuse(&self, seg: &TcpSegment<'_>) -> bool {
        if seg.flags & F::SYN == 0 {
            return false;
        }
        let conn_orig = if seg.flags & F::ACK != 0 {
            if self.orig.state != EndpointState::Inactive {
                return false;
            }
            &self.resp
        } else {
            &self.orig
        };
        if !self.is_closed() {
            if seg.seq == conn_orig.start_seq {
                return false;
            }
            if seg.flags & F::ACK == 0
                && conn_orig.state == EndpointState::SynAckSent
                && self.resp.state == EndpointState::Inactive
                && seg.seq == self.resp.start_seq
            {
                return false;
            }
        }
        true
    }

    fn is_closed(&self) -> bool {
        self.orig.did_close || self.resp.did_close
    }

    /// Both sides closed (or one reset and the other closed).
    pub fn both_closed(&self) -> bool {
        self.orig.did_close && self.resp.did_close
    }

    /// Processes one segment. `is_orig` is relative to the current roles.
    pub fn process(
        &mut self,
        seg: &TcpSegment<'_>,
        mut is_orig: bool,
        hist: &mut History,
    ) -> SegmentOutcome {
        let mut out = SegmentOutcome::default();
        let Bits { syn, fin, rst, ack } = Bits::of(seg);
        let len = seg.payload_len;

        // A connection that began with a SYN-ACK and now sees the other side's pure ACK or
        // data: the SYN was missed, so the SYN-ACK sender is the responder after all.
        if !syn && !fin && !rst && !is_orig && hist.as_bytes() == b"H" {
            self.flip();
            // The SYN-ACK sender answered a SYN we missed: it is established, so this side's
            // ACK establishes the connection rather than leaving it partial.
            if self.resp.state == EndpointState::SynAckSent {
                self.resp.set_state(EndpointState::Established);
            }
            hist.flip();
            hist.replace(b"^h");
            is_orig = true;
            out.flipped = true;
        }

        // Partial status is decided by each side's first packet.
        if is_orig {
            if !self.first_seen_orig {
                self.is_partial = !syn || ack;
            }
        } else if !self.first_seen_resp && !self.is_partial {
            self.is_partial = !syn;
        }

        let was_handshake = self.orig.state.is_handshake() && self.resp.state.is_handshake();
        let (endpoint, peer) = if is_orig {
            (&mut self.orig, &mut self.resp)
        } else {
            (&mut self.resp, &mut self.orig)
        };

        let mut seg_len = len as i64;
        if syn {
            seg_len += 1;
        }
        if fin {
            seg_len += 1;
        }
        if rst {
            seg_len -= len as i64;
        }
        let base_seq = seg.seq;
        let seq_end = base_seq.wrapping_add(seg_len as u32);

        // init_endpoint
        match endpoint.state {
            EndpointState::Inactive => {
                if syn {
                    endpoint.init_seqs(base_seq, seq_end);
                } else {
                    endpoint.init_seqs(base_seq.wrapping_sub(1), base_seq);
                }
                endpoint.reassem_seq = 1;
            }
            EndpointState::SynSent | EndpointState::SynAckSent => {
                if syn && base_seq != endpoint.start_seq {
                    endpoint.init_seqs(base_seq, seq_end);
                }
            }
            EndpointState::Established | EndpointState::Partial => {
                if syn {
                    endpoint.init_seqs(base_seq, seq_end);
                }
            }
            EndpointState::Reset => {
                if syn && endpoint.prev_state == EndpointState::Inactive {
                    endpoint.init_seqs(base_seq, seq_end);
                }
            }
            EndpointState::Closed => {}
        }

        let (rel_seq, underflow) =
            endpoint.relative_seq(base_seq, endpoint.last_seq, endpoint.seq_wraps);

        // update_history
        let bits = syn as u8 + fin as u8 + rst as u8;
        if bits > 1 {
            if fin && rst {
                hist.check(mask::FIN_RST, b'I', is_orig);
            } else {
                hist.check(mask::MULTI_FLAG, b'Q', is_orig);
            }
        } else if bits == 1 {
            if syn {
                let code = if ack { b'H' } else { b'S' };
                if hist.check(mask::SYN, code, is_orig) && rel_seq as u32 != endpoint.hist_last_syn
                {
                    hist.add(code, is_orig);
                }
                endpoint.hist_last_syn = rel_seq as u32;
            }
            if fin {
                let end = rel_seq.wrapping_add(len as u64);
                if hist.check(mask::FIN, b'F', is_orig) && end as u32 != endpoint.hist_last_fin {
                    hist.add(b'F', is_orig);
                }
                endpoint.hist_last_fin = end as u32;
            }
            if rst {
                if hist.check(mask::RST, b'R', is_orig) && rel_seq as u32 != endpoint.hist_last_rst
                {
                    hist.add(b'R', is_orig);
                }
                endpoint.hist_last_rst = rel_seq as u32;
            }
        } else if len > 0 {
            hist.check(mask::DATA, b'D', is_orig);
        } else if ack {
            hist.check(mask::ACK, b'A', is_orig);
        }

        // Zero windows (window scaling is learnt from the SYNs' options).
        let window = (seg.window as u32) << endpoint.window_scale.min(14);
        if window == 0
            && !rst
            && peer.state != EndpointState::Closed
            && endpoint.state != EndpointState::Reset
            && endpoint.win0.hit()
        {
            hist.add(b'W', is_orig);
        }

        out.touch = !(endpoint.did_close && peer.did_close);

        if syn {
            let scale = window_scale_option(seg.options);
            match scale {
                Some(s) => endpoint.window_scale = s.min(14),
                None => {
                    endpoint.window_scale = 0;
                    if ack {
                        peer.window_scale = 0;
                    }
                }
            }
        }
        if fin {
            endpoint.fin_cnt = endpoint.fin_cnt.saturating_add(1);
            endpoint.fin_seq = rel_seq.wrapping_add(seg_len as u64);
        }
        if rst {
            endpoint.rst_cnt = endpoint.rst_cnt.saturating_add(1);
        }

        let mut rel_ack = 0u64;
        let mut ack_ok = false;
        if ack {
            if peer.state == EndpointState::Inactive {
                rel_ack = 1;
                let a = seg.ack.wrapping_sub(1);
                peer.start_seq = a;
                peer.ack_seq = a;
                peer.last_seq = a;
                peer.seq_wraps = 0;
                peer.ack_wraps = 0;
                peer.reassem_seq = 1;
                ack_ok = true;
            } else {
                let (r, under) = peer.relative_seq(seg.ack, peer.ack_seq, peer.ack_wraps);
                if under {
                    rel_ack = 0;
                } else {
                    rel_ack = r;
                    ack_ok = true;
                    if !rst {
                        let d = seq_delta(seg.ack, peer.ack_seq);
                        if !(seg.ack == 0 && d > TOO_LARGE_SEQ_DELTA) && d > 0 {
                            peer.update_ack_seq(seg.ack);
                        }
                    }
                }
            }
        }

        // update_last_seq
        let delta_last = seq_delta(seq_end, endpoint.last_seq);
        if (syn || rst) && !(-TOO_LARGE_SEQ_DELTA..=TOO_LARGE_SEQ_DELTA).contains(&delta_last) {
        } else if fin && endpoint.last_seq == endpoint.start_seq.wrapping_add(1) {
            endpoint.update_last_seq(seq_end);
        } else if endpoint.state == EndpointState::Reset {
        } else if delta_last > 0 {
            endpoint.update_last_seq(seq_end);
        } else if len > 0 && endpoint.rxmt.hit() {
            hist.add(b'T', is_orig);
        }

        let mut do_close = false;
        self.update_state_machine(is_orig, seg, &mut do_close, hist, &mut out);

        let is_partial = self.is_partial;
        let (endpoint, peer) = if is_orig {
            (&mut self.orig, &mut self.resp)
        } else {
            (&mut self.resp, &mut self.orig)
        };

        if ack && ack_ok {
            let clean = endpoint.is_clean() && peer.is_clean();
            let gap = peer.ack_received(rel_ack, clean, is_partial, true);
            if gap > 0 {
                out.gap_bytes += gap;
                if peer.gap.hit() {
                    hist.add(b'G', !is_orig);
                }
            }
        }

        // Only payload captured in full reaches reassembly (a snaplen-cut segment is a gap once
        // acknowledged, as in Zeek).
        if len > 0 && !rst && !underflow && seg.payload.len() >= len as usize {
            let data_seq = if syn { rel_seq + 1 } else { rel_seq };
            endpoint.data_sent(data_seq, len as u64);
        }

        if is_orig {
            self.first_seen_orig = true;
        } else {
            self.first_seen_resp = true;
        }

        if do_close {
            let (endpoint, peer) = if is_orig {
                (&mut self.orig, &mut self.resp)
            } else {
                (&mut self.resp, &mut self.orig)
            };
            if !endpoint.did_close {
                endpoint.did_close = true;
                if endpoint.state == EndpointState::Reset
                    || peer.did_close
                    || peer.state == EndpointState::Inactive
                {
                    out.close_complete = true;
                }
            }
        }

        let now_handshake = self.orig.state.is_handshake() && self.resp.state.is_handshake();
        out.handshake_done = was_handshake && !now_handshake;
        out
    }

    fn update_state_machine(
        &mut self,
        is_orig: bool,
        seg: &TcpSegment<'_>,
        do_close: &mut bool,
        hist: &mut History,
        out: &mut SegmentOutcome,
    ) {
        use EndpointState as S;
        let Bits { syn, fin, rst, ack } = Bits::of(seg);
        let len = seg.payload_len;
        let state = if is_orig {
            self.orig.state
        } else {
            self.resp.state
        };
        match state {
            S::Inactive => {
                if syn {
                    if is_orig {
                        let s = if ack { S::SynAckSent } else { S::SynSent };
                        self.orig.set_state(s);
                    } else {
                        if !ack {
                            let peer_state = self.orig.state;
                            if peer_state == S::SynAckSent && seg.seq == self.resp.start_seq {
                                // SYN/SYN-ACK seen in reverse order: flip and establish.
                                self.flip();
                                hist.flip();
                                out.flipped = true;
                                // After the flip the sender is the originator.
                                self.resp.set_state(S::Established);
                                self.first_seen_orig = true;
                                self.orig.set_state(S::Established);
                                return;
                            }
                        }
                        if self.orig.state == S::SynSent {
                            self.orig.set_state(S::Established);
                        }
                        self.resp.set_state(S::Established);
                    }
                }
                let (endpoint, peer) = if is_orig {
                    (&mut self.orig, &mut self.resp)
                } else {
                    (&mut self.resp, &mut self.orig)
                };
                if fin {
                    endpoint.set_state(S::Closed);
                    *do_close = true;
                }
                if rst {
                    endpoint.set_state(S::Reset);
                    *do_close = true;
                }
                if endpoint.state == S::Inactive {
                    if !is_orig && len == 0 && peer.state == S::SynSent {
                        // An ACK of the SYN before the SYN-ACK: not a partial connection.
                    } else if ack && peer.state == S::Established {
                        endpoint.set_state(S::Established);
                        self.is_partial = false;
                        if is_orig {
                            self.first_seen_orig = true;
                        } else {
                            self.first_seen_resp = true;
                        }
                    } else {
                        endpoint.set_state(S::Partial);
                    }
                }
            }
            S::SynSent | S::SynAckSent => {
                let endpoint = if is_orig {
                    &mut self.orig
                } else {
                    &mut self.resp
                };
                if fin {
                    endpoint.set_state(S::Closed);
                    *do_close = true;
                }
                if rst {
                    endpoint.set_state(S::Reset);
                    *do_close = true;
                }
            }
            S::Established | S::Partial => {
                let (endpoint, peer) = if is_orig {
                    (&mut self.orig, &mut self.resp)
                } else {
                    (&mut self.resp, &mut self.orig)
                };
                if syn && endpoint.state == S::Partial && peer.state == S::Inactive && !ack {
                    endpoint.set_state(S::SynSent);
                }
                if fin && !rst {
                    endpoint.set_state(S::Closed);
                    if peer.state == S::Reset && peer.prev_state == S::Closed {
                        peer.set_state(S::Closed);
                    }
                    *do_close = true;
                }
                if rst {
                    endpoint.set_state(S::Reset);
                    *do_close = true;
                }
            }
            S::Closed => {
                let (endpoint, peer) = if is_orig {
                    (&mut self.orig, &mut self.resp)
                } else {
                    (&mut self.resp, &mut self.orig)
                };
                if rst && peer.state != S::Closed {
                    endpoint.set_state(S::Reset);
                    if !endpoint.did_close {
                        *do_close = true;
                    }
                }
            }
            S::Reset => {}
        }
    }
}

/// The window-scale shift from a SYN's options, if present.
fn window_scale_option(opts: &[u8]) -> Option<u8> {
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => return None,
            1 => i += 1,
            kind => {
                let len = *opts.get(i + 1)? as usize;
                if len < 2 || i + len > opts.len() {
                    return None;
                }
                if kind == 3 && len >= 3 {
                    return Some(opts[i + 2]);
                }
                i += len;
            }
        }
    }
    None
}
