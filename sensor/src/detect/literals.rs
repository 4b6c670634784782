//! Finds every occurrence of a few hundred literals in a packet, ASCII case ignored: the
//! packet prefilters' scanner.
//!
//! A packet group's prefilter holds one or two hundred fast patterns. An Aho-Corasick DFA over
//! that many needs a couple of MiB of transitions, which spill out of the CPU caches, and its
//! overlapping search pays a state step per byte. Most payload bytes start no pattern at all,
//! so this scanner asks cheap questions per position instead: does some literal start with
//! these two bytes, and if so, does some literal continue with the next two (two 8 KiB
//! bitmaps over raw byte pairs, either case, kept in L1)? Only positions passing both are
//! looked up among the literals sharing that leading pair and compared.
//!
//! Reports are every (start, literal) occurrence, in order of start: the same set an
//! overlapping Aho-Corasick search reports.

/// ASCII lower case of every byte.
static FOLD: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = (i as u8).to_ascii_lowercase();
        i += 1;
    }
    t
};

/// 65536 bits, one per byte pair `(a, b)` at index `a | b << 8`.
type PairBits = [u64; 1024];

fn set_pair(bits: &mut PairBits, a: u8, b: u8) {
    let i = usize::from(a) | usize::from(b) << 8;
    bits[i >> 6] |= 1 << (i & 63);
}

#[inline(always)]
fn has_pair(bits: &PairBits, a: u8, b: u8) -> u64 {
    let i = usize::from(a) | usize::from(b) << 8;
    (bits[i >> 6] >> (i & 63)) & 1
}

/// Both cases of an ASCII letter, the byte twice otherwise.
fn cases(b: u8) -> [u8; 2] {
    [b.to_ascii_lowercase(), b.to_ascii_uppercase()]
}

pub struct Literals {
    /// Pairs that start a literal of two or more bytes.
    starts: Box<PairBits>,
    /// Pairs at offsets 1 and 2 of a literal of three or more bytes; for two-byte literals,
    /// every pair starting with their second byte (anything may follow them).
    seconds: Box<PairBits>,
    /// Pairs that are a whole two-byte literal (the buffer's last position has no third byte).
    twos: Box<PairBits>,
    /// One-byte literals, folded (rare: scanned for separately).
    ones: Vec<(u8, u32)>,
    /// Folded leading pairs, sorted, and for each its range of `by_pair`.
    keys: Vec<u16>,
    ranges: Vec<(u32, u32)>,
    by_pair: Vec<u32>,
    /// The literals, folded.
    lits: Vec<Box<[u8]>>,
}

impl Literals {
    /// `lits[i]` is reported as `i`. Empty literals are never reported.
    pub fn new(lits: &[Vec<u8>]) -> Literals {
        let lits: Vec<Box<[u8]>> = lits
            .iter()
            .map(|l| l.to_ascii_lowercase().into_boxed_slice())
            .collect();
        let mut starts = Box::new([0u64; 1024]);
        let mut seconds = Box::new([0u64; 1024]);
        let mut twos = Box::new([0u64; 1024]);
        let mut ones = Vec::new();
        let mut by_key: Vec<(u16, u32)> = Vec::new();
        for (id, l) in lits.iter().enumerate() {
            let id = id as u32;
            match l.len() {
                0 => {}
                1 => ones.push((l[0], id)),
                n => {
                    for a in cases(l[0]) {
                        for b in cases(l[1]) {
                            set_pair(&mut starts, a, b);
                            if n == 2 {
                                set_pair(&mut twos, a, b);
                            }
                        }
                    }
                    for b in cases(l[1]) {
                        if n == 2 {
                            for c in 0..=255 {
                                set_pair(&mut seconds, b, c);
                            }
                        } else {
                            for c in cases(l[2]) {
                                set_pair(&mut seconds, b, c);
                            }
                        }
                    }
                    by_key.push((u16::from(l[0]) << 8 | u16::from(l[1]), id));
                }
            }
        }
        by_key.sort_unstable();
        let (mut keys, mut ranges, mut by_pair) = (Vec::new(), Vec::new(), Vec::new());
        for (k, id) in by_key {
            if keys.last() != Some(&k) {
                keys.push(k);
                ranges.push((by_pair.len() as u32, by_pair.len() as u32));
            }
            by_pair.push(id);
            if let Some(r) = ranges.last_mut() {
                r.1 += 1;
            }
        }
        Literals {
            starts,
            seconds,
            twos,
            ones,
            keys,
            ranges,
            by_pair,
            lits,
        }
    }

    /// Length of literal `id`.
    pub fn len_of(&self, id: u32) -> usize {
        self.lits[id as usize].len()
    }

    /// Calls `f(start, literal)` for every occurrence in `hay`, in order of start (one-byte
    /// literals first).
    pub fn for_each(&self, hay: &[u8], f: &mut dyn FnMut(usize, u32)) {
        for &(b, id) in &self.ones {
            for (i, &h) in hay.iter().enumerate() {
                if FOLD[usize::from(h)] == b {
                    f(i, id);
                }
            }
        }
        let n = hay.len();
        if n < 2 || self.keys.is_empty() {
            return;
        }
        let (starts, seconds) = (&*self.starts, &*self.seconds);
        // Sixteen positions per step tested for a leading pair without branching: in binary
        // payloads most steps find none. The next pair is tested only where one starts.
        let mut base = 0;
        while base + 18 <= n {
            let Ok(w) = <&[u8; 18]>::try_from(&hay[base..base + 18]) else {
                break;
            };
            let mut m = 0u32;
            for j in 0..16 {
                m |= (has_pair(starts, w[j], w[j + 1]) as u32) << j;
            }
            while m != 0 {
                let j = m.trailing_zeros() as usize;
                m &= m - 1;
                if has_pair(seconds, w[j + 1], w[j + 2]) != 0 {
                    self.confirm(hay, base + j, f);
                }
            }
            base += 16;
        }
        for i in base..n - 1 {
            let hit = if i + 2 < n {
                has_pair(starts, hay[i], hay[i + 1]) & has_pair(seconds, hay[i + 1], hay[i + 2])
            } else {
                has_pair(&self.twos, hay[i], hay[i + 1])
            };
            if hit != 0 {
                self.confirm(hay, i, f);
            }
        }
    }

    /// Compares the literals starting with the pair at `i`.
    #[cold]
    #[inline(never)]
    fn confirm(&self, hay: &[u8], i: usize, f: &mut dyn FnMut(usize, u32)) {
        let key =
            u16::from(FOLD[usize::from(hay[i])]) << 8 | u16::from(FOLD[usize::from(hay[i + 1])]);
        let Ok(k) = self.keys.binary_search(&key) else {
            return;
        };
        let (from, to) = self.ranges[k];
        let rest = &hay[i..];
        for &id in &self.by_pair[from as usize..to as usize] {
            let l = &self.lits[id as usize];
            if rest.len() >= l.len() && rest[2..l.len()].eq_ignore_ascii_case(&l[2..]) {
                f(i, id);
            }
        }
    }

    /// Heap bytes held (the bitmaps and the literals).
    pub fn memory_usage(&self) -> usize {
        3 * std::mem::size_of::<PairBits>()
            + self.lits.iter().map(|l| l.len() + 16).sum::<usize>()
            + self.keys.len() * 10
            + self.by_pair.len() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (start, literal) by brute force.
    fn naive(lits: &[Vec<u8>], hay: &[u8]) -> Vec<(usize, u32)> {
        let mut out = Vec::new();
        for i in 0..hay.len() {
            for (id, l) in lits.iter().enumerate() {
                if !l.is_empty()
                    && hay.len() - i >= l.len()
                    && hay[i..i + l.len()].eq_ignore_ascii_case(l)
                {
                    out.push((i, id as u32));
                }
            }
        }
        out.sort_unstable();
        out
    }

    fn found(set: &Literals, hay: &[u8]) -> Vec<(usize, u32)> {
        let mut out = Vec::new();
        set.for_each(hay, &mut |i, id| out.push((i, id)));
        out.sort_unstable();
        out
    }

    #[test]
    fn reports_every_occurrence_in_either_case() {
        let lits: Vec<Vec<u8>> = [
            &b"ab"[..],
            b"abc",
            b"bca",
            b"x",
            b"GET /",
            b"\x00\x00\x01",
            b"zz",
            b"",
        ]
        .iter()
        .map(|l| l.to_vec())
        .collect();
        let set = Literals::new(&lits);
        for hay in [
            &b""[..],
            b"a",
            b"ab",
            b"zz",
            b"xzz",
            b"abcabcABCAbC",
            b"get /index GeT / x",
            b"\x00\x00\x00\x01\x00\x00\x01zz",
            b"0123456789abcdefghijklmnopqrstuvwxyz zz ab",
        ] {
            assert_eq!(found(&set, hay), naive(&lits, hay), "{hay:?}");
        }
    }

    #[test]
    fn agrees_with_brute_force_on_noise() {
        let mut rng = 0x2545_f491_u32;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            rng
        };
        // A small alphabet so that literals occur, overlap and share prefixes.
        let alpha = b"aAbB\x00\x01c";
        let lits: Vec<Vec<u8>> = (0..60)
            .map(|_| {
                let n = 1 + next() as usize % 7;
                (0..n)
                    .map(|_| alpha[next() as usize % alpha.len()])
                    .collect()
            })
            .collect();
        let set = Literals::new(&lits);
        for _ in 0..300 {
            let n = next() as usize % 90;
            let hay: Vec<u8> = (0..n)
                .map(|_| alpha[next() as usize % alpha.len()])
                .collect();
            assert_eq!(found(&set, &hay), naive(&lits, &hay));
        }
    }
}
