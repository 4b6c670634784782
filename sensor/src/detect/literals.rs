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
//! When every literal is longer than a step `s` (up to 4), only every `s`-th position needs
//! testing: each occurrence covers exactly one tested position with one of its first `s`
//! pairs, so the test looks for those pairs and, on a hit, tries the `s` starts that could
//! cover it. Two-byte literals whose first bytes are few are found with memchr instead, which
//! lets the others take a step of two or more; one-byte literals always are.
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

/// Longest sampling step (see [`Literals::sampled_scan`]).
const MAX_STEP: usize = 4;
/// Most first bytes of two-byte literals (both cases) for the sampled scan: two memchr3
/// passes.
const MAX_SHORT_FIRSTS: usize = 6;

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
    /// Pairs that are a whole two-byte literal (the buffer's last position has no third byte);
    /// with `step` > 1, the leading pairs of the short literals.
    twos: Box<PairBits>,
    /// With `step` > 1: literals of two to `short` bytes are short, found where memchr finds
    /// one of `short_firsts`, their first bytes (both cases); `starts` and `seconds` then
    /// hold the longer literals only.
    short: usize,
    short_firsts: Vec<u8>,
    /// Every literal longer than `short` is at least `step + 1` long; with `step` > 1 only
    /// every `step`-th position is tested against `sampled`, the pairs at offsets `0..step`
    /// of those literals: each of their occurrences covers exactly one tested position.
    step: usize,
    sampled: Box<PairBits>,
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
        // Literals of two to `short` bytes are found where memchr finds their first byte, if
        // those are few; the longest such `short` leaves the longest step for the others.
        let firsts_upto = |short: usize| {
            let mut v: Vec<u8> = lits
                .iter()
                .filter(|l| (2..=short).contains(&l.len()))
                .flat_map(|l| cases(l[0]))
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        // Longer short literals (up to four bytes) would allow a longer step, but on payloads
        // the extra memchr hits, each a search restart, cost more than the step saves.
        let (short, short_firsts) = Some((2, firsts_upto(2)))
            .filter(|(_, f)| f.len() <= MAX_SHORT_FIRSTS)
            .unwrap_or((1, Vec::new()));
        let long_min = lits.iter().map(|l| l.len()).filter(|&n| n > short).min();
        let step = if short >= 2 {
            long_min.map_or(MAX_STEP, |n| (n - 1).min(MAX_STEP))
        } else {
            1
        };
        let mut starts = Box::new([0u64; 1024]);
        let mut seconds = Box::new([0u64; 1024]);
        let mut twos = Box::new([0u64; 1024]);
        let mut sampled = Box::new([0u64; 1024]);
        let mut ones = Vec::new();
        let mut by_key: Vec<(u16, u32)> = Vec::new();
        for (id, l) in lits.iter().enumerate() {
            let id = id as u32;
            match l.len() {
                0 => {}
                1 => ones.push((l[0], id)),
                n => {
                    by_key.push((u16::from(l[0]) << 8 | u16::from(l[1]), id));
                    let long = n > short;
                    for a in cases(l[0]) {
                        for b in cases(l[1]) {
                            if n == 2 || !long {
                                set_pair(&mut twos, a, b);
                            }
                            if long || step == 1 {
                                set_pair(&mut starts, a, b);
                            }
                        }
                    }
                    for b in cases(l[1]) {
                        if n > 2 && (long || step == 1) {
                            for c in cases(l[2]) {
                                set_pair(&mut seconds, b, c);
                            }
                        } else if step == 1 {
                            for c in 0..=255 {
                                set_pair(&mut seconds, b, c);
                            }
                        }
                    }
                    if long && step > 1 {
                        for k in 0..step {
                            for a in cases(l[k]) {
                                for b in cases(l[k + 1]) {
                                    set_pair(&mut sampled, a, b);
                                }
                            }
                        }
                    }
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
            step,
            sampled,
            short,
            short_firsts,
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

    /// Calls `f(start, literal)` for every occurrence in `hay` (one-byte literals first,
    /// then in order of start; sampled scans report two-byte literals before longer ones).
    pub fn for_each(&self, hay: &[u8], f: &mut dyn FnMut(usize, u32)) {
        for &(b, id) in &self.ones {
            let [lo, up] = cases(b);
            if lo == up {
                memchr::memchr_iter(lo, hay).for_each(|i| f(i, id));
            } else {
                memchr::memchr2_iter(lo, up, hay).for_each(|i| f(i, id));
            }
        }
        let n = hay.len();
        if n < 2 || self.keys.is_empty() {
            return;
        }
        if self.step > 1 {
            self.sampled_scan(hay, f);
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
                    self.confirm(hay, base + j, 2, usize::MAX, f);
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
                self.confirm(hay, i, 2, usize::MAX, f);
            }
        }
    }

    /// Short literals where memchr finds their first byte; longer ones by testing every
    /// `step`-th position against `sampled` and, where a pair some literal has at one of its
    /// first `step` offsets is found, the `step` positions a literal covering it starts from.
    fn sampled_scan(&self, hay: &[u8], f: &mut dyn FnMut(usize, u32)) {
        let n = hay.len();
        for firsts in self.short_firsts.chunks(3) {
            let mut at = |i: usize| {
                if i + 1 < n && has_pair(&self.twos, hay[i], hay[i + 1]) != 0 {
                    self.confirm(hay, i, 2, self.short, f);
                }
            };
            match *firsts {
                [a] => memchr::memchr_iter(a, hay).for_each(&mut at),
                [a, b] => memchr::memchr2_iter(a, b, hay).for_each(&mut at),
                [a, b, c] => memchr::memchr3_iter(a, b, c, hay).for_each(&mut at),
                _ => {}
            }
        }
        match self.step {
            2 => self.sampled_longs::<2>(hay, f),
            3 => self.sampled_longs::<3>(hay, f),
            _ => self.sampled_longs::<MAX_STEP>(hay, f),
        }
    }

    /// The literals longer than `short`, testing every `S`-th position (`S` is `step`).
    fn sampled_longs<const S: usize>(&self, hay: &[u8], f: &mut dyn FnMut(usize, u32)) {
        let sampled = &*self.sampled;
        let mut chunks = hay.chunks_exact(S);
        let mut q = 0;
        for c in &mut chunks {
            if has_pair(sampled, c[0], c[1]) != 0 {
                self.covering::<S>(hay, q, f);
            }
            q += S;
        }
        if let [a, b, ..] = *chunks.remainder() {
            if has_pair(sampled, a, b) != 0 {
                self.covering::<S>(hay, q, f);
            }
        }
    }

    /// The starts from `q - S + 1` to `q`, whose literals would cover tested position `q`.
    #[cold]
    #[inline(never)]
    fn covering<const S: usize>(&self, hay: &[u8], q: usize, f: &mut dyn FnMut(usize, u32)) {
        let (starts, seconds) = (&*self.starts, &*self.seconds);
        let n = hay.len();
        for p in q.saturating_sub(S - 1)..=q {
            if p + 2 < n
                && has_pair(starts, hay[p], hay[p + 1]) & has_pair(seconds, hay[p + 1], hay[p + 2])
                    != 0
            {
                self.confirm(hay, p, self.short + 1, usize::MAX, f);
            }
        }
    }

    /// Compares the literals of `min_len` to `max_len` bytes starting with the pair at `i`.
    #[cold]
    #[inline(never)]
    fn confirm(
        &self,
        hay: &[u8],
        i: usize,
        min_len: usize,
        max_len: usize,
        f: &mut dyn FnMut(usize, u32),
    ) {
        let key =
            u16::from(FOLD[usize::from(hay[i])]) << 8 | u16::from(FOLD[usize::from(hay[i + 1])]);
        let Ok(k) = self.keys.binary_search(&key) else {
            return;
        };
        let (from, to) = self.ranges[k];
        let rest = &hay[i..];
        for &id in &self.by_pair[from as usize..to as usize] {
            let l = &self.lits[id as usize];
            if (min_len..=max_len).contains(&l.len())
                && rest.len() >= l.len()
                && rest[2..l.len()].eq_ignore_ascii_case(&l[2..])
            {
                f(i, id);
            }
        }
    }

    /// Heap bytes held (the bitmaps and the literals).
    pub fn memory_usage(&self) -> usize {
        4 * std::mem::size_of::<PairBits>()
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
    fn sampled_positions_miss_nothing() {
        let mut rng = 0x9e37_79b9_u32;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            rng
        };
        let alpha = b"aAbB\x00c";
        for min in 3..=7 {
            let lits: Vec<Vec<u8>> = (0..40)
                .map(|_| {
                    let n = min + next() as usize % 5;
                    (0..n)
                        .map(|_| alpha[next() as usize % alpha.len()])
                        .collect()
                })
                .collect();
            let mut lits = lits;
            // A few two-byte literals and a one-byte one, found apart from the sampling.
            lits.extend([
                b"ab".to_vec(),
                b"\x00c".to_vec(),
                b"c".to_vec(),
                b"Bb".to_vec(),
            ]);
            let set = Literals::new(&lits);
            assert!(set.step > 1);
            for _ in 0..300 {
                let n = next() as usize % 120;
                let hay: Vec<u8> = (0..n)
                    .map(|_| alpha[next() as usize % alpha.len()])
                    .collect();
                assert_eq!(found(&set, &hay), naive(&lits, &hay));
            }
        }
    }

    #[test]
    fn short_literals_with_few_first_bytes_are_found_apart() {
        let mut rng = 0x1234_5677_u32;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            rng
        };
        let alpha = b"abxyXY1z";
        let mut lits: Vec<Vec<u8>> = [&b"xab"[..], b"xabc", b"xb", b"1zz1", b"11"]
            .iter()
            .map(|l| l.to_vec())
            .collect();
        lits.extend((0..30).map(|_| {
            let n = 6 + next() as usize % 4;
            (0..n)
                .map(|_| alpha[next() as usize % alpha.len()])
                .collect::<Vec<u8>>()
        }));
        let set = Literals::new(&lits);
        assert_eq!((set.short, set.step), (2, 2));
        for _ in 0..400 {
            let n = next() as usize % 150;
            let hay: Vec<u8> = (0..n)
                .map(|_| alpha[next() as usize % alpha.len()])
                .collect();
            assert_eq!(found(&set, &hay), naive(&lits, &hay));
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
