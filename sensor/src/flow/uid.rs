//! Connection uids: `C` followed by 96 random bits in base62, as Zeek writes them.
//!
//! Zeek's exact values depend on its hash keying and cannot (and need not) be reproduced; what
//! matters is uniqueness, the shape, and that one connection keeps one uid in every log. A fixed
//! seed makes a run reproducible (tests), otherwise the generator is seeded from the OS.

use std::fmt;

/// A 96-bit connection (or tunnel) id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Uid(pub u128);

/// Longest rendered uid: prefix + 6 digits (32 bits) + 11 digits (64 bits).
pub const UID_TEXT_MAX: usize = 18;

const ALPHABET: &[u8; 62] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

impl Uid {
    /// Renders `prefix` + base62 of the two words (32 then 64 bits), least significant digit
    /// first, no padding: the layout of Zeek's uids.
    pub fn render(self, prefix: char, out: &mut String) {
        let mut buf = [0u8; UID_TEXT_MAX];
        let n = self.render_ascii(prefix as u8, &mut buf);
        out.extend(buf[..n].iter().map(|&b| b as char));
    }

    /// Renders into `buf` without allocating; returns the length (at most [`UID_TEXT_MAX`]).
    pub fn render_ascii(self, prefix: u8, buf: &mut [u8; UID_TEXT_MAX]) -> usize {
        buf[0] = prefix;
        let mut n = 1;
        let hi = (self.0 >> 64) as u64 & 0xFFFF_FFFF;
        let lo = self.0 as u64;
        for mut w in [hi, lo] {
            loop {
                buf[n] = ALPHABET[(w % 62) as usize];
                n += 1;
                w /= 62;
                if w == 0 {
                    break;
                }
            }
        }
        n
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(20);
        self.render('C', &mut s);
        f.write_str(&s)
    }
}

/// A small, fast generator (SplitMix64): uids need uniqueness, not secrecy.
#[derive(Clone, Debug)]
pub struct UidGen {
    state: u64,
}

impl UidGen {
    pub fn new(seed: Option<u64>) -> UidGen {
        let seed = seed.unwrap_or_else(os_seed);
        UidGen {
            state: seed ^ 0x5EC7_5E45_0123_4567,
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn next_uid(&mut self) -> Uid {
        let hi = self.next_u64() & 0xFFFF_FFFF;
        let lo = self.next_u64();
        Uid(((hi as u128) << 64) | lo as u128)
    }
}

fn os_seed() -> u64 {
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        if f.read_exact(&mut b).is_ok() {
            return u64::from_le_bytes(b);
        }
    }
    // No /dev/urandom: time and pid still make collisions between runs unlikely.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ ((std::process::id() as u64) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_look_like_zeeks_and_repeat_with_a_seed() {
        let mut a = UidGen::new(Some(1));
        let mut b = UidGen::new(Some(1));
        let u = a.next_uid();
        assert_eq!(u, b.next_uid());
        let s = u.to_string();
        assert!(s.starts_with('C'));
        assert!((8..=19).contains(&s.len()), "{s}");
        assert!(s[1..].bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a.next_uid(), u);
    }
}
