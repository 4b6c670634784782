//! The `history` column: one letter per notable event, Zeek's repeat rules.

/// Longest history kept; Zeek's is unbounded, but only flapping connections get long ones.
pub const MAX_HISTORY: usize = 30;

/// Per-letter "seen" bits for the once-per-direction letters.
pub mod mask {
    pub const SYN: u32 = 1 << 0;
    pub const FIN: u32 = 1 << 1;
    pub const RST: u32 = 1 << 2;
    pub const FIN_RST: u32 = 1 << 3;
    pub const MULTI_FLAG: u32 = 1 << 4;
    pub const DATA: u32 = 1 << 5;
    pub const ACK: u32 = 1 << 6;
    pub const UDP_DATA: u32 = 1 << 7;
}

#[derive(Clone, Copy, Debug, Default)]
pub struct History {
    buf: [u8; MAX_HISTORY],
    len: u8,
    /// Bits 0..16 for the originator, 16..32 for the responder.
    seen: u32,
    /// True when letters were dropped because the buffer was full.
    pub truncated: bool,
}

impl History {
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }

    pub fn push(&mut self, letter: u8) {
        if (self.len as usize) < MAX_HISTORY {
            self.buf[self.len as usize] = letter;
            self.len += 1;
        } else {
            self.truncated = true;
        }
    }

    /// Zeek's `CheckHistory`: adds `letter` (lower-cased for the responder) the first time
    /// `mask` is seen in that direction. Returns true when the letter was *already* seen, which
    /// is when the SYN/FIN/RST repeat rules may add it again.
    pub fn check(&mut self, mask: u32, letter: u8, is_orig: bool) -> bool {
        let (m, l) = if is_orig {
            (mask, letter)
        } else {
            (mask << 16, letter.to_ascii_lowercase())
        };
        if self.seen & m == 0 {
            self.seen |= m;
            self.push(l);
            false
        } else {
            true
        }
    }

    /// Adds a letter unconditionally (lower-cased for the responder).
    pub fn add(&mut self, letter: u8, is_orig: bool) {
        self.push(if is_orig {
            letter
        } else {
            letter.to_ascii_lowercase()
        });
    }

    /// Replaces the whole history (Zeek's `^h` rewrite of a SYN-ACK-first connection).
    pub fn replace(&mut self, s: &[u8]) {
        self.len = 0;
        for &b in s {
            self.push(b);
        }
    }

    /// Roles swapped: later letters of the old originator are lower case. Bits in `seen` swap.
    pub fn flip(&mut self) {
        self.seen = self.seen.rotate_left(16);
        self.push(b'^');
    }
}

/// Logarithmic letters (C, T, W, G): added at the 1st, 10th, 100th, ... occurrence.
#[derive(Clone, Copy, Debug)]
pub struct Scaled {
    count: u32,
    threshold: u32,
}

impl Default for Scaled {
    fn default() -> Self {
        Scaled {
            count: 0,
            threshold: 1,
        }
    }
}

impl Scaled {
    /// Counts one occurrence; true when the letter is due.
    pub fn hit(&mut self) -> bool {
        self.count = self.count.saturating_add(1);
        if self.count == self.threshold {
            self.threshold = self.threshold.saturating_mul(10);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_direction_and_case() {
        let mut h = History::default();
        assert!(!h.check(mask::ACK, b'A', true));
        assert!(h.check(mask::ACK, b'A', true));
        assert!(!h.check(mask::ACK, b'A', false));
        assert_eq!(h.as_bytes(), b"Aa");
    }

    #[test]
    fn scaled_letters_are_logarithmic() {
        let mut s = Scaled::default();
        let hits: Vec<u32> = (1..=1000).filter(|_| s.hit()).collect::<Vec<_>>();
        assert_eq!(hits.len(), 4); // 1, 10, 100, 1000
    }
}
