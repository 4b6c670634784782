//! TCP stream reassembly for one direction of a connection.
//!
//! Application analyzers (HTTP today; DNS over TCP and a rule engine can reuse it) want the
//! byte stream a direction carried, in order, once. [`Reassembler`] rebuilds it from the
//! segments' sequence numbers:
//! - the stream starts at the SYN when one is seen, otherwise at the first data segment, or
//!   where the peer's acknowledgement says it must start ([`Reassembler::anchor`]);
//! - retransmissions and overlaps deliver only the bytes not delivered yet (the first copy
//!   wins, as in Zeek);
//! - segments that arrive ahead of a hole wait in a buffer bounded in bytes. When the buffer
//!   would overflow, or when the connection ends with a hole still open, the hole becomes a
//!   content gap: the consumer is told how many bytes it will never see, and delivery resumes
//!   after it (Zeek's `content_gap`);
//! - a segment cut short by the capture length delivers what was captured and a gap for the
//!   rest;
//! - once every byte before the FIN was delivered the consumer hears end of stream.
//!
//! Memory per direction is the waiting buffer, at most `max_held` bytes plus one segment.

use crate::decode::tcp_flags;

/// Where reassembled bytes go.
pub trait StreamConsumer {
    /// The next bytes of the stream, in order.
    fn data(&mut self, bytes: &[u8]);
    /// `len` bytes of the stream that will never be seen.
    fn gap(&mut self, len: u64);
    /// Every byte before the sender's FIN was delivered (or skipped as a gap).
    fn eof(&mut self) {}
}

/// One segment as the reassembler needs it.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    pub seq: u32,
    pub flags: u8,
    /// The captured payload.
    pub payload: &'a [u8],
    /// The payload length the IP header implies (more than captured when the capture was cut).
    pub payload_len: u32,
}

/// Segments further ahead than this are not plausibly of this stream (a bogus or reused
/// sequence space); they are ignored rather than turning a whole window into a gap.
const MAX_AHEAD: u32 = 1 << 30;

/// Reassembly state of one direction.
#[derive(Debug)]
pub struct Reassembler {
    /// Sequence number of the next byte to deliver; meaningful once `anchored`.
    next: u32,
    anchored: bool,
    /// Sequence number of the FIN, once seen.
    fin_at: Option<u32>,
    eof_sent: bool,
    /// Segments ahead of `next`, sorted by their distance from it (ties and overlaps allowed).
    held: Vec<(u32, Box<[u8]>)>,
    held_bytes: usize,
    max_held: usize,
    /// Bytes delivered in order.
    pub delivered: u64,
    /// Bytes skipped as gaps.
    pub gap_bytes: u64,
    /// Times the waiting buffer overflowed and forced a gap.
    pub overflows: u64,
}

impl Reassembler {
    /// `max_held`: bytes of out-of-order data that may wait for a hole to fill.
    pub fn new(max_held: usize) -> Reassembler {
        Reassembler {
            next: 0,
            anchored: false,
            fin_at: None,
            eof_sent: false,
            held: Vec::new(),
            held_bytes: 0,
            max_held,
            delivered: 0,
            gap_bytes: 0,
            overflows: 0,
        }
    }

    pub fn is_anchored(&self) -> bool {
        self.anchored
    }

    /// Fixes where the stream starts, if nothing has yet: `seq` is the first byte (the
    /// peer's acknowledgement number is a good source when the SYN was missed).
    pub fn anchor(&mut self, seq: u32) {
        if !self.anchored {
            self.next = seq;
            self.anchored = true;
        }
    }

    /// Out-of-order bytes waiting for a hole to fill.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// True once end of stream was signalled.
    pub fn at_eof(&self) -> bool {
        self.eof_sent
    }

    /// Takes one segment of this direction.
    pub fn push(&mut self, seg: Segment<'_>, out: &mut impl StreamConsumer) {
        let syn = seg.flags & tcp_flags::SYN != 0;
        // The SYN occupies one sequence number; data starts after it.
        let data_seq = if syn {
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        let claimed = seg.payload_len.max(seg.payload.len() as u32);
        if syn || !seg.payload.is_empty() || claimed > 0 {
            self.anchor(data_seq);
        }
        if !self.anchored {
            return;
        }
        if !seg.payload.is_empty() {
            self.insert(data_seq, seg.payload, out);
        }
        let captured_end = data_seq.wrapping_add(seg.payload.len() as u32);
        if claimed as usize > seg.payload.len() && self.next == captured_end {
            // The capture cut this segment: the rest is a hole that nothing can fill.
            let missing = claimed - seg.payload.len() as u32;
            self.skip(missing, out);
            self.drain(out);
        }
        if seg.flags & tcp_flags::FIN != 0 {
            self.fin_at = Some(data_seq.wrapping_add(claimed));
        }
        self.check_eof(out);
    }

    /// The connection is over: whatever waits behind a hole is delivered after a gap.
    pub fn flush(&mut self, out: &mut impl StreamConsumer) {
        while let Some(&(seq, _)) = self.held.first() {
            let ahead = seq.wrapping_sub(self.next);
            self.skip(ahead, out);
            self.drain(out);
        }
        self.check_eof(out);
    }

    fn check_eof(&mut self, out: &mut impl StreamConsumer) {
        if !self.eof_sent && self.fin_at == Some(self.next) {
            self.eof_sent = true;
            out.eof();
        }
    }

    fn skip(&mut self, len: u32, out: &mut impl StreamConsumer) {
        if len == 0 {
            return;
        }
        self.next = self.next.wrapping_add(len);
        self.gap_bytes += u64::from(len);
        out.gap(u64::from(len));
    }

    fn insert(&mut self, seq: u32, bytes: &[u8], out: &mut impl StreamConsumer) {
        let ahead = seq.wrapping_sub(self.next);
        if ahead == 0 || ahead > u32::MAX / 2 {
            // At or behind the delivery point: deliver what is new.
            let behind = self.next.wrapping_sub(seq) as usize;
            if behind < bytes.len() {
                self.deliver(&bytes[behind..], out);
                self.drain(out);
            }
            return;
        }
        if ahead > MAX_AHEAD {
            return;
        }
        let pos = self
            .held
            .partition_point(|(s, _)| s.wrapping_sub(self.next) <= ahead);
        self.held.insert(pos, (seq, bytes.into()));
        self.held_bytes += bytes.len();
        while self.held_bytes > self.max_held {
            // No room to wait any longer: give up on the first hole.
            self.overflows += 1;
            let first = self.held[0].0;
            self.skip(first.wrapping_sub(self.next), out);
            self.drain(out);
        }
    }

    /// Delivers every waiting segment that the delivery point has reached.
    fn drain(&mut self, out: &mut impl StreamConsumer) {
        while let Some(&(seq, _)) = self.held.first() {
            let ahead = seq.wrapping_sub(self.next);
            if ahead != 0 && ahead <= u32::MAX / 2 {
                break;
            }
            let (seq, bytes) = self.held.remove(0);
            self.held_bytes -= bytes.len();
            let behind = self.next.wrapping_sub(seq) as usize;
            if behind < bytes.len() {
                self.deliver(&bytes[behind..], out);
            }
        }
    }

    fn deliver(&mut self, bytes: &[u8], out: &mut impl StreamConsumer) {
        self.next = self.next.wrapping_add(bytes.len() as u32);
        self.delivered += bytes.len() as u64;
        out.data(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect {
        bytes: Vec<u8>,
        gaps: Vec<u64>,
        eof: bool,
    }

    impl StreamConsumer for Collect {
        fn data(&mut self, b: &[u8]) {
            self.bytes.extend_from_slice(b);
        }
        fn gap(&mut self, len: u64) {
            self.gaps.push(len);
            self.bytes.extend(std::iter::repeat_n(b'?', len as usize));
        }
        fn eof(&mut self) {
            self.eof = true;
        }
    }

    fn seg(seq: u32, flags: u8, p: &[u8]) -> Segment<'_> {
        Segment {
            seq,
            flags,
            payload: p,
            payload_len: p.len() as u32,
        }
    }

    #[test]
    fn in_order_retransmitted_and_overlapping() {
        let mut r = Reassembler::new(1024);
        let mut c = Collect::default();
        r.push(seg(99, tcp_flags::SYN, b""), &mut c);
        r.push(seg(100, 0, b"hello "), &mut c);
        r.push(seg(100, 0, b"hello "), &mut c);
        r.push(seg(103, 0, b"lo world"), &mut c);
        r.push(seg(111, tcp_flags::FIN, b""), &mut c);
        assert_eq!(c.bytes, b"hello world");
        assert!(c.gaps.is_empty());
        assert!(c.eof);
    }

    #[test]
    fn out_of_order_waits_for_the_hole() {
        let mut r = Reassembler::new(1024);
        let mut c = Collect::default();
        r.push(seg(1000, 0, b"ab"), &mut c);
        r.push(seg(1006, tcp_flags::FIN, b"gh"), &mut c);
        r.push(seg(1004, 0, b"ef"), &mut c);
        assert_eq!(c.bytes, b"ab");
        assert!(!c.eof);
        r.push(seg(1002, 0, b"cd"), &mut c);
        assert_eq!(c.bytes, b"abcdefgh");
        assert!(c.eof);
    }

    #[test]
    fn overflow_turns_the_hole_into_a_gap() {
        let mut r = Reassembler::new(4);
        let mut c = Collect::default();
        r.push(seg(0, 0, b"ab"), &mut c);
        r.push(seg(5, 0, b"fg"), &mut c);
        r.push(seg(7, 0, b"hij"), &mut c);
        assert_eq!(c.bytes, b"ab???fghij");
        assert_eq!(c.gaps, vec![3]);
        assert_eq!(r.overflows, 1);
        // The late bytes are now old news.
        r.push(seg(2, 0, b"cde"), &mut c);
        assert_eq!(c.bytes, b"ab???fghij");
    }

    #[test]
    fn flush_skips_holes_and_wraps_sequence_space() {
        let mut r = Reassembler::new(1024);
        let mut c = Collect::default();
        let start = u32::MAX - 1;
        r.push(seg(start, 0, b"xy"), &mut c);
        r.push(seg(start.wrapping_add(4), tcp_flags::FIN, b"z"), &mut c);
        r.flush(&mut c);
        assert_eq!(c.bytes, b"xy??z");
        assert!(c.eof);
    }

    #[test]
    fn truncated_capture_is_a_gap() {
        let mut r = Reassembler::new(1024);
        let mut c = Collect::default();
        r.push(
            Segment {
                seq: 10,
                flags: 0,
                payload: b"abc",
                payload_len: 6,
            },
            &mut c,
        );
        r.push(seg(16, 0, b"g"), &mut c);
        assert_eq!(c.bytes, b"abc???g");
        assert_eq!(r.gap_bytes, 3);
    }

    #[test]
    fn anchor_from_the_peer_ack() {
        let mut r = Reassembler::new(16);
        let mut c = Collect::default();
        r.anchor(500);
        r.push(seg(503, 0, b"d"), &mut c);
        r.push(seg(500, 0, b"abc"), &mut c);
        assert_eq!(c.bytes, b"abcd");
        // Far-away junk neither delivers nor gaps.
        r.push(seg(500u32.wrapping_add(MAX_AHEAD + 10), 0, b"zz"), &mut c);
        assert_eq!(c.bytes, b"abcd");
        assert!(c.gaps.is_empty());
    }
}
