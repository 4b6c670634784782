//! The flow index: connection key → table slot.
//!
//! One flat array of 8-byte cells with linear probing, sized once at twice the table's
//! capacity. A lookup is one cache miss for the cell (the 32-bit hash tag and the slot live
//! side by side, so most misses never touch an entry) plus one for the entry itself; a general
//! purpose map needs a third for its control bytes. Removal shifts later cells back instead of
//! leaving tombstones, so probe chains never degrade over a long run.
//!
//! The hash is keyed with a per-process random seed: captured traffic is attacker-controlled,
//! and a fixed hash would let a crafted flood pile every connection onto one probe chain.

use std::hash::{BuildHasher, Hasher};

use super::key::FlowKey;

/// A cell: `tag << 32 | (slot + 1)`; 0 is an empty cell.
type Cell = u64;

pub struct FlowIndex {
    cells: Box<[Cell]>,
    /// `cells.len() - 1` (the length is a power of two).
    mask: usize,
    /// Bits of the tag that pick the home cell: `32 - log2(cells.len())`.
    shift: u32,
    seed: [u64; 5],
}

/// 64×64 → 128-bit multiply folded back to 64 bits: a strong, cheap mixing step.
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = (a as u128).wrapping_mul(b as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

impl FlowIndex {
    /// An index for up to `capacity` connections, at most half full.
    pub fn with_capacity(capacity: usize, seed: Option<u64>) -> FlowIndex {
        let len = (capacity.max(8) * 2).next_power_of_two();
        let mut s = match seed {
            // Reproducible runs (tests, `--seed`) hash reproducibly too.
            Some(v) => v ^ 0x9e37_79b9_7f4a_7c15,
            None => std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish(),
        };
        let mut next = || {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) | 1
        };
        let cells = vec![0; len].into_boxed_slice();
        super::memory::advise_huge_pages(cells.as_ptr(), len * std::mem::size_of::<Cell>());
        FlowIndex {
            cells,
            mask: len - 1,
            shift: 32 - len.trailing_zeros(),
            seed: [next(), next(), next(), next(), next()],
        }
    }

    /// Bytes the index occupies.
    pub fn bytes(&self) -> usize {
        self.cells.len() * std::mem::size_of::<Cell>()
    }

    /// The keyed hash of a connection key.
    #[inline]
    pub fn hash(&self, k: &FlowKey) -> u64 {
        let w = |a: &[u8; 16]| {
            let (x, y) = a.split_at(8);
            (
                u64::from_le_bytes(x.try_into().unwrap_or_default()),
                u64::from_le_bytes(y.try_into().unwrap_or_default()),
            )
        };
        let (a0, a1) = w(&k.lo.addr.0);
        let (b0, b1) = w(&k.hi.addr.0);
        let rest = (k.lo.port as u64) | (k.hi.port as u64) << 16 | (k.proto as u64) << 32;
        let s = &self.seed;
        let h = fold_mul(a0 ^ s[0], a1 ^ s[1])
            .wrapping_add(fold_mul(b0 ^ s[2], b1 ^ s[3]))
            .wrapping_add(rest);
        fold_mul(h, s[4])
    }

    #[inline]
    fn tag(hash: u64) -> u32 {
        (hash >> 32) as u32
    }

    #[inline]
    fn home(&self, tag: u32) -> usize {
        // High bits of the tag choose the cell; the low bits stay useful for filtering.
        (tag >> self.shift) as usize & self.mask
    }

    /// The slot whose key hashes to `hash` and satisfies `eq`.
    #[inline]
    pub fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = Self::tag(hash);
        let mut pos = self.home(tag);
        loop {
            let c = self.cells[pos];
            if c == 0 {
                return None;
            }
            if (c >> 32) as u32 == tag {
                let slot = (c as u32).wrapping_sub(1);
                if eq(slot) {
                    return Some(slot);
                }
            }
            pos = (pos + 1) & self.mask;
        }
    }

    /// Starts loading the home cell of `hash` (look-ahead; see `FlowTable::prefetch_cell`).
    #[inline]
    pub fn prefetch_home(&self, hash: u64) {
        super::memory::prefetch(&self.cells[self.home(Self::tag(hash))]);
    }

    /// The first slot stored under `hash`'s tag, without checking its key (look-ahead only).
    #[inline]
    pub fn first_candidate(&self, hash: u64) -> Option<u32> {
        self.find(hash, |_| true)
    }

    /// Adds `slot` under `hash`. The caller never holds more slots than the capacity, so a
    /// free cell always exists.
    pub fn insert(&mut self, hash: u64, slot: u32) {
        let tag = Self::tag(hash);
        let mut pos = self.home(tag);
        while self.cells[pos] != 0 {
            pos = (pos + 1) & self.mask;
        }
        self.cells[pos] = (tag as u64) << 32 | (slot as u64 + 1);
    }

    /// Removes `slot` (stored under `hash`); false when it was not there.
    pub fn remove(&mut self, hash: u64, slot: u32) -> bool {
        let want = (Self::tag(hash) as u64) << 32 | (slot as u64 + 1);
        let mut pos = self.home(Self::tag(hash));
        loop {
            let c = self.cells[pos];
            if c == 0 {
                return false;
            }
            if c == want {
                break;
            }
            pos = (pos + 1) & self.mask;
        }
        // Backward shift: pull later cells of the chain into the hole when the hole lies
        // between their home and where they sit.
        let mut hole = pos;
        let mut next = (pos + 1) & self.mask;
        loop {
            let c = self.cells[next];
            if c == 0 {
                break;
            }
            let home = self.home((c >> 32) as u32);
            if (next.wrapping_sub(home) & self.mask) >= (next.wrapping_sub(hole) & self.mask) {
                self.cells[hole] = c;
                hole = next;
            }
            next = (next + 1) & self.mask;
        }
        self.cells[hole] = 0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::key::{Addr, Endpoint};

    fn key(i: u32) -> FlowKey {
        let mut a = [0u8; 16];
        a[12..].copy_from_slice(&i.to_be_bytes());
        FlowKey::new(
            Endpoint {
                addr: Addr(a),
                port: 1000,
            },
            Endpoint {
                addr: Addr([9; 16]),
                port: 80,
            },
            6,
        )
        .0
    }

    #[test]
    fn insert_find_remove_keeps_every_other_entry_reachable() {
        // A tiny index forces long chains and wrap-around.
        let cap = 64;
        let mut idx = FlowIndex::with_capacity(cap, Some(7));
        let keys: Vec<FlowKey> = (0..cap as u32).map(key).collect();
        for (s, k) in keys.iter().enumerate() {
            idx.insert(idx.hash(k), s as u32);
        }
        let find = |idx: &FlowIndex, s: usize| idx.find(idx.hash(&keys[s]), |j| j as usize == s);
        for s in 0..cap {
            assert_eq!(find(&idx, s), Some(s as u32));
        }
        // Remove every third, then check the rest are still found and the removed are not.
        for s in (0..cap).step_by(3) {
            assert!(idx.remove(idx.hash(&keys[s]), s as u32));
            assert!(!idx.remove(idx.hash(&keys[s]), s as u32));
        }
        for s in 0..cap {
            let want = (s % 3 != 0).then_some(s as u32);
            assert_eq!(find(&idx, s), want, "slot {s}");
        }
        // Reinsert into the holes.
        for s in (0..cap).step_by(3) {
            idx.insert(idx.hash(&keys[s]), s as u32);
        }
        for s in 0..cap {
            assert_eq!(find(&idx, s), Some(s as u32));
        }
    }

    #[test]
    fn random_seeds_differ_and_fixed_seeds_repeat() {
        let k = key(1);
        let a = FlowIndex::with_capacity(16, Some(1));
        let b = FlowIndex::with_capacity(16, Some(1));
        assert_eq!(a.hash(&k), b.hash(&k));
        let r1 = FlowIndex::with_capacity(16, None);
        let r2 = FlowIndex::with_capacity(16, None);
        assert_ne!(r1.hash(&k), r2.hash(&k));
    }

    #[test]
    fn churn_against_a_model() {
        use std::collections::HashMap;
        let cap = 1000;
        let mut idx = FlowIndex::with_capacity(cap, Some(3));
        let mut model: HashMap<u32, u32> = HashMap::new(); // key id -> slot
        let mut free: Vec<u32> = (0..cap as u32).rev().collect();
        let mut x = 12345u64;
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = (x % 3000) as u32;
            let k = key(id);
            let h = idx.hash(&k);
            match model.get(&id).copied() {
                Some(slot) => {
                    assert!(idx.remove(h, slot));
                    model.remove(&id);
                    free.push(slot);
                }
                None if !free.is_empty() => {
                    let slot = free.pop().unwrap_or_default();
                    idx.insert(h, slot);
                    model.insert(id, slot);
                }
                None => {}
            }
        }
        for (&id, &slot) in &model {
            let k = key(id);
            assert_eq!(idx.find(idx.hash(&k), |j| j == slot), Some(slot));
        }
    }
}
