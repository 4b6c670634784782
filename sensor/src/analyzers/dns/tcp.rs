//! DNS over TCP (RFC 1035 §4.2.2): each message is preceded by a two-byte length, and a
//! message may span segments or share one with the next. Each direction is put back in order
//! from the TCP sequence numbers; retransmitted bytes are skipped. A hole in the stream (a
//! segment missing, or cut short by the capture) ends DNS on that direction: what follows
//! cannot be framed any more.
//!
//! Memory is bounded by one message per direction (at most 65535 bytes), held only while a
//! message is incomplete.

/// Why a direction stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Frame {
    /// Waiting for the length's high byte.
    #[default]
    LenHi,
    /// Have the high byte.
    LenLo(u8),
    /// Collecting a message of this many bytes into `buf`.
    Body(usize),
}

/// One direction's reassembly and framing.
#[derive(Debug, Default)]
pub struct Stream {
    /// Sequence number of the next byte expected, once known.
    next: Option<u32>,
    dead: bool,
    frame: Frame,
    buf: Vec<u8>,
}

impl Stream {
    /// Feeds one segment (its sequence number, SYN flag, captured payload and the payload
    /// length the IP header declares). Complete messages are appended to `msgs`.
    pub fn segment(
        &mut self,
        seq: u32,
        syn: bool,
        payload: &[u8],
        payload_len: u32,
        msgs: &mut Vec<Vec<u8>>,
    ) -> Result<(), Gap> {
        if self.dead {
            return Ok(());
        }
        // Data starts after the SYN's sequence number.
        let data_seq = seq.wrapping_add(u32::from(syn));
        let next = *self.next.get_or_insert(data_seq);
        if payload_len == 0 {
            return Ok(());
        }
        let offset = data_seq.wrapping_sub(next) as i32;
        if offset > 0 {
            return self.give_up();
        }
        let skip = offset.unsigned_abs() as usize;
        if skip >= payload_len as usize {
            return Ok(()); // all of it seen before
        }
        if skip > payload.len() {
            return self.give_up();
        }
        let fresh = &payload[skip..];
        self.next = Some(next.wrapping_add(fresh.len() as u32));
        self.frame(fresh, msgs);
        if (payload.len() as u32) < payload_len {
            // The capture holds less than the segment carried.
            return self.give_up();
        }
        Ok(())
    }

    fn give_up(&mut self) -> Result<(), Gap> {
        self.dead = true;
        self.buf = Vec::new();
        Err(Gap)
    }

    fn frame(&mut self, mut data: &[u8], msgs: &mut Vec<Vec<u8>>) {
        while let Some((&b, rest)) = data.split_first() {
            match self.frame {
                Frame::LenHi => {
                    self.frame = Frame::LenLo(b);
                    data = rest;
                }
                Frame::LenLo(hi) => {
                    let len = usize::from(u16::from_be_bytes([hi, b]));
                    data = rest;
                    if len == 0 {
                        // An empty message: too short for a header, as Zeek sees it too.
                        msgs.push(Vec::new());
                        self.frame = Frame::LenHi;
                    } else {
                        self.frame = Frame::Body(len);
                        self.buf.clear();
                    }
                }
                Frame::Body(len) => {
                    let want = len - self.buf.len();
                    let take = want.min(data.len());
                    self.buf.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if self.buf.len() == len {
                        msgs.push(std::mem::take(&mut self.buf));
                        self.frame = Frame::LenHi;
                    }
                }
            }
        }
    }

    /// The connection is closing: a message still incomplete is handed over as it is (Zeek
    /// parses it too, and usually finds it truncated).
    pub fn flush(&mut self) -> Option<Vec<u8>> {
        if self.dead {
            return None;
        }
        let partial = match self.frame {
            Frame::Body(_) if !self.buf.is_empty() => Some(std::mem::take(&mut self.buf)),
            _ => None,
        };
        self.frame = Frame::LenHi;
        partial
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(msgs: &[&[u8]]) -> Vec<u8> {
        let mut v = vec![];
        for m in msgs {
            v.extend_from_slice(&(m.len() as u16).to_be_bytes());
            v.extend_from_slice(m);
        }
        v
    }

    #[test]
    fn messages_across_and_within_segments() {
        let data = framed(&[b"first message", b"second", b"third one"]);
        let mut s = Stream::default();
        let mut out = vec![];
        s.segment(100, true, &[], 0, &mut out).unwrap();
        // Split at awkward places, with a retransmission in between.
        let cuts = [1, 2, 7, 20, data.len()];
        let mut prev = 0;
        for &c in &cuts {
            let seq = 101 + prev as u32;
            s.segment(seq, false, &data[prev..c], (c - prev) as u32, &mut out)
                .unwrap();
            s.segment(seq, false, &data[prev..c], (c - prev) as u32, &mut out)
                .unwrap();
            prev = c;
        }
        assert_eq!(
            out,
            vec![
                b"first message".to_vec(),
                b"second".to_vec(),
                b"third one".to_vec()
            ]
        );
        assert_eq!(s.flush(), None);
    }

    #[test]
    fn overlapping_retransmission_adds_only_new_bytes() {
        let data = framed(&[b"abcdefgh"]);
        let mut s = Stream::default();
        let mut out = vec![];
        s.segment(0, false, &data[..5], 5, &mut out).unwrap();
        s.segment(2, false, &data[2..], (data.len() - 2) as u32, &mut out)
            .unwrap();
        assert_eq!(out, vec![b"abcdefgh".to_vec()]);
    }

    #[test]
    fn a_gap_ends_the_direction() {
        let data = framed(&[b"abcdefgh", b"ijkl"]);
        let mut s = Stream::default();
        let mut out = vec![];
        s.segment(0, false, &data[..4], 4, &mut out).unwrap();
        assert_eq!(s.segment(6, false, &data[6..], 8, &mut out), Err(Gap));
        s.segment(4, false, &data[4..], 12, &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(s.flush(), None);
        // A segment the capture cut short counts as a gap too, after its captured part.
        let mut s = Stream::default();
        assert_eq!(s.segment(0, false, &data[..6], 16, &mut out), Err(Gap));
    }

    #[test]
    fn partial_message_is_flushed() {
        let data = framed(&[b"abcdefgh"]);
        let mut s = Stream::default();
        let mut out = vec![];
        s.segment(7, false, &data[..5], 5, &mut out).unwrap();
        assert_eq!(s.flush(), Some(b"abc".to_vec()));
        assert_eq!(s.flush(), None);
    }
}
