//! Checked reads over byte slices and the Internet checksum.
//!
//! Every parser in this stage reads through these helpers so that a short or hostile frame turns
//! into `None` (and from there a [`DropReason`](super::DropReason)), never an out-of-bounds panic.

/// Byte at `at`, if present.
#[inline]
pub(crate) fn u8_at(b: &[u8], at: usize) -> Option<u8> {
    b.get(at).copied()
}

/// Big-endian u16 at `at`, if both bytes are present.
#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

/// Little-endian u16 at `at`.
#[inline]
pub(crate) fn le16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

/// Big-endian u32 at `at`.
#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Little-endian u32 at `at`.
#[inline]
pub(crate) fn le32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Fixed-size array copied from `at`.
#[inline]
pub(crate) fn array<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    let s = b.get(at..at.checked_add(N)?)?;
    let mut out = [0u8; N];
    out.copy_from_slice(s);
    Some(out)
}

/// Everything from `at` on; `None` when `at` is past the end (an empty tail is `Some(&[])`).
#[inline]
pub(crate) fn tail(b: &[u8], at: usize) -> Option<&[u8]> {
    b.get(at..)
}

/// At most the first `n` bytes.
#[inline]
pub(crate) fn clip(b: &[u8], n: usize) -> &[u8] {
    &b[..n.min(b.len())]
}

/// Running one's-complement sum (RFC 1071), fed in pieces that each start on an even offset of
/// the checksummed data except possibly the last.
///
/// The sum is kept over little-endian words, so that bytes are summed as loaded, eight at a
/// time, on the little-endian machines we run on; a sum of byte-swapped words is the
/// byte-swapped sum (RFC 1071, 2.B), so [`fold`] swaps once at the end. Carries out of the top are added back in (end-around carry), which
/// keeps the sum congruent modulo 0xffff and keeps a non-zero sum non-zero (one's-complement
/// -0, not +0).
///
/// [`fold`]: Checksum::fold
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Checksum {
    acc: u64,
}

impl Checksum {
    #[inline]
    pub(crate) fn new() -> Self {
        Checksum { acc: 0 }
    }

    #[inline]
    fn add_le(&mut self, v: u64) {
        let (s, carry) = self.acc.overflowing_add(v);
        self.acc = s + u64::from(carry);
    }

    /// Adds a 16-bit word (used for pseudo-header fields).
    #[inline]
    pub(crate) fn add_u16(&mut self, v: u16) {
        self.add_le(u64::from(v.swap_bytes()));
    }

    #[inline]
    pub(crate) fn add_u32(&mut self, v: u32) {
        self.add_le(u64::from(v.swap_bytes()));
    }

    /// Adds bytes; an odd trailing byte is padded with zero, so only the last piece may be odd.
    #[inline]
    pub(crate) fn add_bytes(&mut self, data: &[u8]) {
        self.add_le(le_sum(data));
    }

    /// True when the data summed included a correct checksum: the folded sum is all ones,
    /// which is the sum being a non-zero multiple of 0xffff (the byte order does not matter:
    /// a byte swap multiplies by 256 modulo 0xffff). A division by a constant is cheaper than
    /// the fold.
    #[inline]
    pub(crate) fn is_all_ones(&self) -> bool {
        self.acc != 0 && self.acc.is_multiple_of(0xffff)
    }

    /// The folded 16-bit sum (not complemented): 0xffff means a correct checksum was included.
    /// Only the test helpers that fill in checksums need the value.
    #[cfg(test)]
    pub(crate) fn fold(&self) -> u16 {
        let mut s = self.acc;
        s = (s & 0xffff_ffff) + (s >> 32);
        s = (s & 0xffff) + (s >> 16);
        s = (s & 0xffff) + (s >> 16);
        s = (s & 0xffff) + (s >> 16);
        (s as u16).swap_bytes()
    }
}

/// The end-around-carry sum of `data` as little-endian 16-bit words (an odd last byte padded
/// with zero).
fn le_sum(data: &[u8]) -> u64 {
    // 64-bit words go into a 128-bit accumulator: an add and an add-with-carry per 8 bytes,
    // and no overflow for any slice.
    let word = |w: &[u8]| u128::from(u64::from_le_bytes(w.try_into().unwrap_or([0; 8])));
    let mut wide = 0u128;
    let mut blocks = data.chunks_exact(32);
    for block in &mut blocks {
        for w in block.chunks_exact(8) {
            wide += word(w);
        }
    }
    let mut words = blocks.remainder().chunks_exact(8);
    for w in &mut words {
        wide += word(w);
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        match data.len().checked_sub(8).and_then(|at| data.get(at..)) {
            // The last eight bytes shifted down to the ones not summed yet. Those start at a
            // multiple of 8 and land in lane 0, so each keeps the parity of its 16-bit lane.
            Some(last) => wide += word(last) >> (8 * (8 - rest.len())),
            None => {
                let mut padded = [0u8; 8];
                for (p, b) in padded.iter_mut().zip(rest) {
                    *p = *b;
                }
                wide += word(&padded);
            }
        }
    }
    let (s, carry) = (wide as u64).overflowing_add((wide >> 64) as u64);
    s + u64::from(carry)
}

/// True when `data`, which includes its own checksum field, sums to all ones.
pub(crate) fn verifies(data: &[u8]) -> bool {
    let mut c = Checksum::new();
    c.add_bytes(data);
    c.is_all_ones()
}

/// [`verifies`] for a header of a length known at compile time: five straight adds for an
/// IPv4 header without options.
#[inline(always)]
pub(crate) fn verifies_fixed<const N: usize>(data: &[u8; N]) -> bool {
    let mut c = Checksum::new();
    let mut words = data.chunks_exact(4);
    let mut sum = 0u64;
    for w in &mut words {
        sum += u64::from(u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
    }
    c.add_le(sum);
    if !words.remainder().is_empty() {
        c.add_bytes(words.remainder());
    }
    c.is_all_ones()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_checked() {
        let b = [1u8, 2, 3];
        assert_eq!(be16(&b, 1), Some(0x0203));
        assert_eq!(be16(&b, 2), None);
        assert_eq!(be16(&b, usize::MAX), None);
        assert_eq!(be32(&b, 0), None);
        assert_eq!(le16(&b, 0), Some(0x0201));
        assert_eq!(tail(&b, 3), Some(&[][..]));
        assert_eq!(tail(&b, 4), None);
        assert_eq!(clip(&b, 10), &b[..]);
        assert_eq!(array::<2>(&b, 1), Some([2, 3]));
        assert_eq!(array::<4>(&b, 0), None);
    }

    #[test]
    fn rfc1071_example() {
        // IPv4 header from RFC 1071-style textbook example with its checksum 0xb861 filled in.
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert!(verifies(&hdr));
        let mut bad = hdr;
        bad[11] ^= 1;
        assert!(!verifies(&bad));
    }

    #[test]
    fn wide_sum_matches_the_word_by_word_sum() {
        let slow = |d: &[u8]| {
            let mut s = 0u64;
            for p in d.chunks(2) {
                s += u64::from(u16::from_be_bytes([p[0], *p.get(1).unwrap_or(&0)]));
            }
            while s >> 16 != 0 {
                s = (s & 0xffff) + (s >> 16);
            }
            s as u16
        };
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for len in 0..300usize {
            for fill in [None, Some(0u8), Some(0xff)] {
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        fill.unwrap_or(x as u8)
                    })
                    .collect();
                let mut c = Checksum::new();
                c.add_u16(0x1234);
                c.add_bytes(&data);
                let mut reference = slow(&data) as u64 + 0x1234;
                while reference >> 16 != 0 {
                    reference = (reference & 0xffff) + (reference >> 16);
                }
                assert_eq!(c.fold(), reference as u16, "len {len} fill {fill:?}");
            }
        }
    }

    #[test]
    fn all_ones_test_agrees_with_the_fold() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Sums around multiples of 0xffff as well as arbitrary ones, and zero.
            let acc = match i % 3 {
                0 => (x % 0x1_0000_0000) * 0xffff,
                1 => (x % 0x1_0000_0000) * 0xffff + 1 + x % 3,
                _ => x >> (i % 64),
            };
            let c = Checksum { acc };
            assert_eq!(c.is_all_ones(), c.fold() == 0xffff, "{acc:#x}");
        }
        assert!(!Checksum::new().is_all_ones());
    }

    #[test]
    fn odd_lengths_and_pieces_agree() {
        let data: Vec<u8> = (0..37u8).map(|i| i.wrapping_mul(37)).collect();
        let mut whole = Checksum::new();
        whole.add_bytes(&data);
        let mut pieces = Checksum::new();
        pieces.add_bytes(&data[..10]);
        pieces.add_bytes(&data[10..]);
        assert_eq!(whole.fold(), pieces.fold());
        let mut slow = 0u32;
        for p in data.chunks(2) {
            let w = if p.len() == 2 {
                u16::from_be_bytes([p[0], p[1]])
            } else {
                u16::from(p[0]) << 8
            };
            slow += u32::from(w);
        }
        while slow >> 16 != 0 {
            slow = (slow & 0xffff) + (slow >> 16);
        }
        assert_eq!(whole.fold(), slow as u16);
    }
}
