//! Bounded IP fragment reassembly.
//!
//! All memory is taken at construction: a byte arena of `max_fragment_bytes` cut into 1 KiB
//! blocks, a fixed number of reassembly sets, and a lookup map sized for them. A set borrows
//! blocks from the arena as its fragments arrive and returns them when the datagram completes or
//! is given up. When sets or blocks run out the oldest set is evicted, so a flood of fragments
//! that never complete costs a bounded amount of memory and only pushes out other incomplete
//! datagrams.
//!
//! Policy (each "give up" is counted in `fragments_dropped`): a fragment that overlaps data
//! already held with different bytes, a datagram that would exceed 65535 bytes, inconsistent
//! ends, a fragment that was not captured in full, more holes than a set tracks, or a datagram
//! not complete within `fragment_timeout_secs` of packet time since its first fragment.
//! Overlaps that repeat identical bytes (duplicated frames on a mirror port) are accepted.

use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::HashMap;

use super::ip::FragInfo;
use crate::stats::Stats;
use crate::ts::{Span, Ts};

const BLOCK: usize = 1024;
/// Largest reassembled payload (an IP length field is 16 bits).
pub(crate) const MAX_DATAGRAM: usize = 65535;
const BLOCKS_PER_SET: usize = MAX_DATAGRAM.div_ceil(BLOCK);
/// Disjoint byte ranges a set tracks; a datagram arriving in a more scattered order is dropped.
const MAX_RANGES: usize = 16;
const NO_BLOCK: u32 = u32::MAX;

/// What identifies the fragments of one datagram (RFC 791 / RFC 8200).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FragKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub id: u32,
    /// The IPv4 protocol field; 0 for IPv6, whose key does not include it.
    pub proto: u8,
}

/// Header values of the first fragment, which the reassembled datagram takes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FirstFragment {
    pub ttl: u8,
    pub dont_fragment: bool,
    pub ip_id: u16,
    pub header_len: u16,
    /// IPv6 extension headers before the fragment header.
    pub ext_len: usize,
    /// Protocol (IPv4) or next header after the fragment header (IPv6).
    pub proto: u8,
}

/// One fragment as the table needs it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Piece<'a> {
    pub key: FragKey,
    pub frag: FragInfo,
    /// The fragment's data as captured.
    pub data: &'a [u8],
    /// Its length per the IP header.
    pub wire: usize,
    /// Header values, for the fragment at offset 0.
    pub first: Option<FirstFragment>,
}

/// Outcome of adding one fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Stored; the datagram is not complete yet.
    Held,
    /// The datagram is complete: its payload (of this length) was copied into the output buffer.
    Complete { first: FirstFragment, len: usize },
    /// The fragment (and the set it belonged to) was given up.
    Dropped,
}

#[derive(Clone, Debug)]
struct Set {
    key: FragKey,
    started: Ts,
    blocks: [u32; BLOCKS_PER_SET],
    ranges: [(u32, u32); MAX_RANGES],
    nranges: usize,
    total: Option<usize>,
    first: Option<FirstFragment>,
}

impl Set {
    fn empty() -> Self {
        Set {
            key: FragKey {
                src: IpAddr::from([0u8; 4]),
                dst: IpAddr::from([0u8; 4]),
                id: 0,
                proto: 0,
            },
            started: Ts::ZERO,
            blocks: [NO_BLOCK; BLOCKS_PER_SET],
            ranges: [(0, 0); MAX_RANGES],
            nranges: 0,
            total: None,
            first: None,
        }
    }

    fn max_end(&self) -> usize {
        self.ranges[..self.nranges]
            .iter()
            .map(|r| r.1 as usize)
            .max()
            .unwrap_or(0)
    }

    /// Adds a range, merging neighbours; false when too scattered.
    fn add_range(&mut self, start: usize, end: usize) -> bool {
        let (mut s, mut e) = (start as u32, end as u32);
        let mut kept = 0;
        for i in 0..self.nranges {
            let (rs, re) = self.ranges[i];
            if re < s || rs > e {
                self.ranges[kept] = (rs, re);
                kept += 1;
            } else {
                s = s.min(rs);
                e = e.max(re);
            }
        }
        if kept == MAX_RANGES {
            return false;
        }
        self.ranges[kept] = (s, e);
        self.nranges = kept + 1;
        true
    }
}

/// The reassembly table.
pub(crate) struct FragTable {
    stats: Arc<Stats>,
    timeout: Span,
    arena: Vec<u8>,
    free_blocks: Vec<u32>,
    sets: Vec<Set>,
    in_use: Vec<bool>,
    free_sets: Vec<u32>,
    index: HashMap<FragKey, u32>,
    next_sweep: Ts,
}

impl FragTable {
    pub(crate) fn new(
        max_sets: usize,
        max_bytes: usize,
        timeout_secs: u32,
        stats: Arc<Stats>,
    ) -> Self {
        let max_sets = max_sets.max(1);
        let nblocks = (max_bytes / BLOCK).max(1);
        FragTable {
            stats,
            timeout: Span::from_secs(i64::from(timeout_secs)),
            arena: vec![0u8; nblocks * BLOCK],
            free_blocks: (0..nblocks as u32).rev().collect(),
            sets: vec![Set::empty(); max_sets],
            in_use: vec![false; max_sets],
            free_sets: (0..max_sets as u32).rev().collect(),
            index: HashMap::with_capacity(max_sets),
            next_sweep: Ts::ZERO,
        }
    }

    /// Datagrams being reassembled.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.index.len()
    }

    /// Blocks lent out to sets.
    #[cfg(test)]
    pub(crate) fn bytes_held(&self) -> usize {
        (self.arena.len() / BLOCK - self.free_blocks.len()) * BLOCK
    }

    fn release(&mut self, idx: u32) {
        let i = idx as usize;
        if !self.in_use.get(i).copied().unwrap_or(false) {
            return;
        }
        let set = &mut self.sets[i];
        for b in set.blocks.iter_mut() {
            if *b != NO_BLOCK {
                self.free_blocks.push(*b);
                *b = NO_BLOCK;
            }
        }
        set.nranges = 0;
        set.total = None;
        set.first = None;
        let key = set.key;
        self.in_use[i] = false;
        self.index.remove(&key);
        self.free_sets.push(idx);
    }

    fn give_up(&mut self, idx: u32) {
        self.release(idx);
        Stats::inc(&self.stats.fragments_dropped);
    }

    /// Gives up sets older than the timeout; runs at most once per second of packet time.
    fn sweep(&mut self, now: Ts) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now.plus(Span::from_secs(1));
        for i in 0..self.sets.len() {
            if self.in_use[i] && now.since(self.sets[i].started) > self.timeout {
                self.give_up(i as u32);
            }
        }
    }

    /// The set started longest ago, other than `except`.
    fn oldest(&self, except: Option<u32>) -> Option<u32> {
        (0..self.sets.len())
            .filter(|&i| self.in_use[i] && Some(i as u32) != except)
            .min_by_key(|&i| self.sets[i].started)
            .map(|i| i as u32)
    }

    /// Adds a fragment. A completed datagram's payload is copied
    /// into `out` (whose capacity should be [`MAX_DATAGRAM`] so that this never allocates).
    pub(crate) fn insert(&mut self, now: Ts, piece: Piece<'_>, out: &mut Vec<u8>) -> Outcome {
        let Piece {
            key,
            frag,
            data,
            wire,
            first,
        } = piece;
        self.sweep(now);
        let existing = self.index.get(&key).copied();
        // An old set under the same key is a different datagram whose id was reused.
        let existing = match existing {
            Some(i) if now.since(self.sets[i as usize].started) > self.timeout => {
                self.give_up(i);
                None
            }
            e => e,
        };
        let start = frag.offset;
        let end = start.saturating_add(data.len());
        let hdr = first.map_or(0, |f| usize::from(f.header_len) + f.ext_len);
        let bad = data.len() < wire
            || end > MAX_DATAGRAM
            || hdr + end > MAX_DATAGRAM
            || (frag.more && data.len() & 7 != 0)
            || (data.is_empty() && frag.more);
        if bad {
            if let Some(i) = existing {
                self.release(i);
            }
            Stats::inc(&self.stats.fragments_dropped);
            return Outcome::Dropped;
        }
        let idx = match existing {
            Some(i) => i,
            None => {
                if self.free_sets.is_empty() {
                    if let Some(old) = self.oldest(None) {
                        self.give_up(old);
                    }
                }
                let Some(i) = self.free_sets.pop() else {
                    Stats::inc(&self.stats.fragments_dropped);
                    return Outcome::Dropped;
                };
                let set = &mut self.sets[i as usize];
                set.key = key;
                set.started = now;
                self.in_use[i as usize] = true;
                self.index.insert(key, i);
                i
            }
        };
        // Consistency of the datagram's end.
        {
            let set = &self.sets[idx as usize];
            let inconsistent = match (frag.more, set.total) {
                (false, Some(t)) => t != end,
                (false, None) => set.max_end() > end,
                (true, Some(t)) => end > t,
                (true, None) => false,
            };
            if inconsistent || self.overlap_differs(idx, start, data) {
                self.give_up(idx);
                return Outcome::Dropped;
            }
        }
        if !data.is_empty() && !self.write(idx, start, data) {
            self.give_up(idx);
            return Outcome::Dropped;
        }
        let set = &mut self.sets[idx as usize];
        if !frag.more {
            set.total = Some(end);
        }
        if start == 0 {
            if let Some(f) = first {
                set.first = Some(f);
            }
        }
        if !data.is_empty() && !set.add_range(start, end) {
            self.give_up(idx);
            return Outcome::Dropped;
        }
        let set = &self.sets[idx as usize];
        match (set.total, set.first) {
            (Some(total), Some(first))
                if set.nranges == 1 && set.ranges[0] == (0, total as u32) =>
            {
                self.copy_out(idx, total, out);
                self.release(idx);
                Stats::inc(&self.stats.fragments_reassembled);
                Outcome::Complete { first, len: total }
            }
            _ => Outcome::Held,
        }
    }

    /// True when `data` at `start` disagrees with bytes the set already holds.
    fn overlap_differs(&self, idx: u32, start: usize, data: &[u8]) -> bool {
        let set = &self.sets[idx as usize];
        let end = start + data.len();
        for &(rs, re) in &set.ranges[..set.nranges] {
            let (s, e) = (start.max(rs as usize), end.min(re as usize));
            let mut at = s;
            while at < e {
                let blk = set.blocks.get(at / BLOCK).copied().unwrap_or(NO_BLOCK);
                let within = at % BLOCK;
                let n = (BLOCK - within).min(e - at);
                if blk == NO_BLOCK {
                    return true;
                }
                let base = blk as usize * BLOCK + within;
                let held = self.arena.get(base..base + n);
                let new = data.get(at - start..at - start + n);
                if held != new {
                    return true;
                }
                at += n;
            }
        }
        false
    }

    /// Copies fragment data into the set's blocks, borrowing blocks as needed (evicting the
    /// oldest other set when the arena is exhausted). False when no room can be made.
    fn write(&mut self, idx: u32, start: usize, data: &[u8]) -> bool {
        let end = start + data.len();
        let mut at = start;
        while at < end {
            let bi = at / BLOCK;
            if bi >= BLOCKS_PER_SET {
                return false;
            }
            if self.sets[idx as usize].blocks[bi] == NO_BLOCK {
                let blk = loop {
                    if let Some(b) = self.free_blocks.pop() {
                        break b;
                    }
                    match self.oldest(Some(idx)) {
                        Some(old) => self.give_up(old),
                        None => return false,
                    }
                };
                self.sets[idx as usize].blocks[bi] = blk;
            }
            let blk = self.sets[idx as usize].blocks[bi] as usize;
            let within = at % BLOCK;
            let n = (BLOCK - within).min(end - at);
            let dst = blk * BLOCK + within;
            match (
                self.arena.get_mut(dst..dst + n),
                data.get(at - start..at - start + n),
            ) {
                (Some(d), Some(s)) => d.copy_from_slice(s),
                _ => return false,
            }
            at += n;
        }
        true
    }

    fn copy_out(&self, idx: u32, total: usize, out: &mut Vec<u8>) {
        out.clear();
        let set = &self.sets[idx as usize];
        let mut at = 0;
        while at < total {
            let n = BLOCK.min(total - at);
            let blk = set.blocks.get(at / BLOCK).copied().unwrap_or(NO_BLOCK);
            if blk == NO_BLOCK {
                break;
            }
            let base = blk as usize * BLOCK;
            if let Some(s) = self.arena.get(base..base + n) {
                out.extend_from_slice(s);
            }
            at += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::too_many_arguments)]
    fn ins(
        t: &mut FragTable,
        now: Ts,
        key: FragKey,
        frag: FragInfo,
        data: &[u8],
        wire: usize,
        first: Option<FirstFragment>,
        out: &mut Vec<u8>,
    ) -> Outcome {
        t.insert(
            now,
            Piece {
                key,
                frag,
                data,
                wire,
                first,
            },
            out,
        )
    }

    fn table(sets: usize, bytes: usize) -> (FragTable, Arc<Stats>) {
        let stats = Arc::new(Stats::default());
        (FragTable::new(sets, bytes, 30, stats.clone()), stats)
    }

    fn key(id: u32) -> FragKey {
        FragKey {
            src: IpAddr::from([1, 2, 3, 4]),
            dst: IpAddr::from([5, 6, 7, 8]),
            id,
            proto: 17,
        }
    }

    const FIRST: FirstFragment = FirstFragment {
        ttl: 64,
        dont_fragment: false,
        ip_id: 7,
        header_len: 20,
        ext_len: 0,
        proto: 17,
    };

    fn frag(offset: usize, more: bool) -> FragInfo {
        FragInfo {
            offset,
            more,
            id: 7,
        }
    }

    fn data(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn out_of_order_reassembly() {
        let (mut t, stats) = table(8, 1 << 20);
        let whole = data(3000, 1);
        let mut out = Vec::with_capacity(MAX_DATAGRAM);
        let ts = Ts::from_secs(100);
        let k = key(7);
        assert_eq!(
            ins(
                &mut t,
                ts,
                k,
                frag(2400, false),
                &whole[2400..],
                600,
                None,
                &mut out
            ),
            Outcome::Held
        );
        assert_eq!(
            ins(
                &mut t,
                ts,
                k,
                frag(1200, true),
                &whole[1200..2400],
                1200,
                None,
                &mut out
            ),
            Outcome::Held
        );
        // A duplicate is harmless.
        assert_eq!(
            ins(
                &mut t,
                ts,
                k,
                frag(1200, true),
                &whole[1200..2400],
                1200,
                None,
                &mut out
            ),
            Outcome::Held
        );
        let r = ins(
            &mut t,
            ts,
            k,
            frag(0, true),
            &whole[..1200],
            1200,
            Some(FIRST),
            &mut out,
        );
        assert_eq!(
            r,
            Outcome::Complete {
                first: FIRST,
                len: 3000
            }
        );
        assert_eq!(out, whole);
        assert_eq!(t.pending(), 0);
        assert_eq!(t.bytes_held(), 0);
        let s = stats.snapshot();
        assert_eq!((s.fragments_reassembled, s.fragments_dropped), (1, 0));
    }

    #[test]
    fn differing_overlap_drops_the_set() {
        let (mut t, stats) = table(8, 1 << 20);
        let mut out = Vec::new();
        let ts = Ts::from_secs(1);
        let a = data(16, 1);
        let b = data(16, 2);
        assert_eq!(
            ins(
                &mut t,
                ts,
                key(1),
                frag(0, true),
                &a,
                16,
                Some(FIRST),
                &mut out
            ),
            Outcome::Held
        );
        assert_eq!(
            ins(&mut t, ts, key(1), frag(8, false), &b, 16, None, &mut out),
            Outcome::Dropped
        );
        assert_eq!(t.pending(), 0);
        assert_eq!(stats.snapshot().fragments_dropped, 1);
        // Identical overlapping bytes are accepted.
        let whole = data(24, 3);
        assert_eq!(
            ins(
                &mut t,
                ts,
                key(2),
                frag(0, true),
                &whole[..16],
                16,
                Some(FIRST),
                &mut out
            ),
            Outcome::Held
        );
        assert!(matches!(
            ins(
                &mut t,
                ts,
                key(2),
                frag(8, false),
                &whole[8..],
                16,
                None,
                &mut out
            ),
            Outcome::Complete { len: 24, .. }
        ));
        assert_eq!(out, whole);
    }

    #[test]
    fn oversize_and_inconsistent_ends() {
        let (mut t, stats) = table(8, 1 << 20);
        let mut out = Vec::new();
        let ts = Ts::from_secs(1);
        let d = data(1000, 0);
        assert_eq!(
            ins(
                &mut t,
                ts,
                key(1),
                frag(65000, false),
                &d,
                1000,
                None,
                &mut out
            ),
            Outcome::Dropped
        );
        assert_eq!(
            ins(
                &mut t,
                ts,
                key(2),
                frag(0, true),
                &d[..999],
                999,
                None,
                &mut out
            ),
            Outcome::Dropped
        );
        assert_eq!(
            ins(
                &mut t,
                ts,
                key(3),
                frag(800, false),
                &d[..8],
                8,
                None,
                &mut out
            ),
            Outcome::Held
        );
        assert_eq!(
            ins(
                &mut t,
                ts,
                key(3),
                frag(1600, true),
                &d[..8],
                8,
                None,
                &mut out
            ),
            Outcome::Dropped
        );
        assert_eq!(
            ins(
                &mut t,
                ts,
                key(4),
                frag(0, true),
                &d[..8],
                100,
                None,
                &mut out
            ),
            Outcome::Dropped
        );
        assert_eq!(stats.snapshot().fragments_dropped, 4);
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn timeout_gives_up_on_packet_time() {
        let (mut t, stats) = table(8, 1 << 20);
        let mut out = Vec::new();
        let d = data(8, 0);
        ins(
            &mut t,
            Ts::from_secs(10),
            key(1),
            frag(0, true),
            &d,
            8,
            Some(FIRST),
            &mut out,
        );
        assert_eq!(t.pending(), 1);
        ins(
            &mut t,
            Ts::from_secs(20),
            key(2),
            frag(0, true),
            &d,
            8,
            Some(FIRST),
            &mut out,
        );
        assert_eq!(t.pending(), 2);
        // The other fragment of datagram 1 arrives too late: a new set, the old one dropped.
        ins(
            &mut t,
            Ts::from_secs(45),
            key(3),
            frag(0, true),
            &d,
            8,
            Some(FIRST),
            &mut out,
        );
        assert_eq!(t.pending(), 2);
        assert_eq!(stats.snapshot().fragments_dropped, 1);
        let r = ins(
            &mut t,
            Ts::from_secs(100),
            key(3),
            frag(8, false),
            &d,
            8,
            None,
            &mut out,
        );
        assert_eq!(r, Outcome::Held);
        assert_eq!(stats.snapshot().fragments_dropped, 3);
    }

    #[test]
    fn flood_stays_within_budget() {
        let sets = 64;
        let bytes = 64 * 1024;
        let (mut t, stats) = table(sets, bytes);
        let arena_before = t.arena.capacity();
        let index_cap = t.index.capacity();
        let mut out = Vec::with_capacity(MAX_DATAGRAM);
        let d = data(1480, 9);
        for id in 0..20_000u32 {
            let ts = Ts(1_000_000 + i64::from(id));
            let r = ins(
                &mut t,
                ts,
                key(id),
                frag(0, true),
                &d,
                d.len(),
                Some(FIRST),
                &mut out,
            );
            assert_eq!(r, Outcome::Held);
            assert!(t.pending() <= sets);
            assert!(t.bytes_held() <= bytes);
        }
        assert_eq!(t.arena.capacity(), arena_before);
        assert_eq!(t.index.capacity(), index_cap);
        assert!(stats.snapshot().fragments_dropped >= 20_000 - sets as u64);
        // Still works for a real datagram afterwards.
        let whole = data(2000, 4);
        let ts = Ts::from_secs(2);
        ins(
            &mut t,
            ts,
            key(99_999),
            frag(0, true),
            &whole[..1000],
            1000,
            Some(FIRST),
            &mut out,
        );
        let r = ins(
            &mut t,
            ts,
            key(99_999),
            frag(1000, false),
            &whole[1000..],
            1000,
            None,
            &mut out,
        );
        assert!(matches!(r, Outcome::Complete { len: 2000, .. }));
        assert_eq!(out, whole);
    }

    #[test]
    fn too_scattered_is_dropped() {
        let (mut t, stats) = table(4, 1 << 20);
        let mut out = Vec::new();
        let ts = Ts::from_secs(1);
        let d = data(8, 0);
        let mut dropped = false;
        for i in 0..40 {
            if ins(
                &mut t,
                ts,
                key(1),
                frag(i * 16, true),
                &d,
                8,
                None,
                &mut out,
            ) == Outcome::Dropped
            {
                dropped = true;
                break;
            }
        }
        assert!(dropped);
        assert_eq!(stats.snapshot().fragments_dropped, 1);
    }
}
