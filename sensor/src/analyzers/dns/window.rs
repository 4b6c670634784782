//! The reference sensor's aggregation of dns.log (reference §2.2): a record identical to one
//! written in the last 60 s (every column but `ts`) is not written again, it adds one to that
//! row's `pkts`. A window opens when its first record arrives and closes 60 s of packet time
//! later, when the row is written with the first record's `ts`.
//!
//! Windows close in the order they opened, so they sit in a queue; a hash index over the rows
//! finds the window of a new record. The table has a fixed capacity: when it is full the
//! oldest window is written early (counted in `window_evictions`).

use std::collections::VecDeque;
use std::hash::BuildHasher;

use hashbrown::HashTable;

use crate::ts::{Span, Ts};

use super::session::Info;

/// Length of a window, from its first record.
pub const WINDOW: Span = Span::from_secs(60);

#[derive(Debug)]
struct Window {
    hash: u64,
    opened: Ts,
    info: Info,
    pkts: u64,
}

/// Open windows, oldest first.
pub struct Windows {
    cap: usize,
    queue: VecDeque<Window>,
    /// Sequence number of `queue[0]`; window `s` sits at `queue[s - base]`.
    base: u64,
    /// (row hash, sequence number) of every open window.
    index: HashTable<(u64, u64)>,
    hasher: hashbrown::DefaultHashBuilder,
}

/// What [`Windows::add`] did with a record.
#[derive(Debug, PartialEq, Eq)]
pub enum Added {
    /// A new window opened.
    Opened,
    /// Counted into an open window.
    Merged,
}

impl Windows {
    pub fn new(cap: usize) -> Windows {
        let cap = cap.max(1);
        Windows {
            cap,
            queue: VecDeque::new(),
            base: 0,
            index: HashTable::new(),
            hasher: hashbrown::DefaultHashBuilder::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// When the oldest window closes (`None` when none is open).
    pub fn next_close(&self) -> Option<Ts> {
        self.queue.front().map(|w| w.opened.plus(WINDOW))
    }

    fn hash_of(&self, info: &Info) -> u64 {
        let mut h = self.hasher.build_hasher();
        info.row_hash(&mut h);
        std::hash::Hasher::finish(&h)
    }

    /// Adds a record at packet time `now`. When the table is full the oldest window is
    /// handed to `evicted` first.
    pub fn add(&mut self, info: Info, now: Ts, evicted: &mut dyn FnMut(Info, u64)) -> Added {
        let hash = self.hash_of(&info);
        let (queue, base) = (&self.queue, self.base);
        let found = self.index.find(hash, |&(h, seq)| {
            h == hash
                && queue
                    .get((seq - base) as usize)
                    .is_some_and(|w| w.info.same_row(&info))
        });
        if let Some(&(_, seq)) = found {
            if let Some(w) = self.queue.get_mut((seq - self.base) as usize) {
                w.pkts += 1;
                return Added::Merged;
            }
        }
        if self.queue.len() >= self.cap {
            if let Some(w) = self.pop_front() {
                evicted(w.info, w.pkts);
            }
        }
        let seq = self.base + self.queue.len() as u64;
        self.queue.push_back(Window {
            hash,
            opened: now,
            info,
            pkts: 1,
        });
        self.index.insert_unique(hash, (hash, seq), |&(h, _)| h);
        Added::Opened
    }

    fn pop_front(&mut self) -> Option<Window> {
        let w = self.queue.pop_front()?;
        let seq = self.base;
        if let Ok(e) = self.index.find_entry(w.hash, |&(_, s)| s == seq) {
            e.remove();
        }
        self.base += 1;
        Some(w)
    }

    /// Closes the windows that are 60 s old at `now`.
    pub fn expire(&mut self, now: Ts, out: &mut dyn FnMut(Info, u64)) {
        while self
            .queue
            .front()
            .is_some_and(|w| now >= w.opened.plus(WINDOW))
        {
            if let Some(w) = self.pop_front() {
                out(w.info, w.pkts);
            }
        }
    }

    /// Closes every window.
    pub fn drain(&mut self, out: &mut dyn FnMut(Info, u64)) {
        while let Some(w) = self.pop_front() {
            out(w.info, w.pkts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzers::dns::session::{ConnCtx, Info, Txn};
    use crate::flow::Uid;

    fn info(ts: i64, trans_id: u16) -> Info {
        let conn = ConnCtx {
            uid: Uid(1),
            orig: ("10.0.0.1".parse().unwrap(), 1000),
            resp: ("10.0.0.2".parse().unwrap(), 53),
            tcp: false,
        };
        let mut txn = Txn::new(Ts(ts), trans_id);
        txn.query = Some(b"x.example"[..].into());
        Info { conn, txn }
    }

    #[test]
    fn identical_rows_merge_within_sixty_seconds() {
        let mut w = Windows::new(16);
        let out = std::cell::RefCell::new(vec![]);
        let mut sink = |i: Info, n: u64| out.borrow_mut().push((i.txn.ts, i.txn.trans_id, n));
        assert_eq!(
            w.add(info(1_000_000, 1), Ts(1_000_000), &mut sink),
            Added::Opened
        );
        assert_eq!(
            w.add(info(5_000_000, 1), Ts(5_000_000), &mut sink),
            Added::Merged
        );
        assert_eq!(
            w.add(info(6_000_000, 2), Ts(6_000_000), &mut sink),
            Added::Opened
        );
        w.expire(Ts(60_999_999), &mut sink);
        assert!(out.borrow().is_empty());
        w.expire(Ts(61_000_000), &mut sink);
        assert_eq!(*out.borrow(), vec![(Ts(1_000_000), 1, 2)]);
        // The same row after its window closed opens a new one.
        assert_eq!(
            w.add(info(62_000_000, 1), Ts(62_000_000), &mut sink),
            Added::Opened
        );
        w.drain(&mut sink);
        let ids: Vec<(u16, u64)> = out.borrow().iter().map(|&(_, id, n)| (id, n)).collect();
        assert_eq!(ids, vec![(1, 2), (2, 1), (1, 1)]);
        assert!(w.is_empty());
    }

    #[test]
    fn full_table_evicts_oldest() {
        let mut w = Windows::new(4);
        let out = std::cell::RefCell::new(vec![]);
        let mut sink = |i: Info, n: u64| out.borrow_mut().push((i.txn.trans_id, n));
        for id in 0..10u16 {
            w.add(info(1, id), Ts(1), &mut sink);
            w.add(info(1, id), Ts(1), &mut sink);
        }
        assert_eq!(w.len(), 4);
        assert_eq!(*out.borrow(), (0..6).map(|id| (id, 2)).collect::<Vec<_>>());
        // Evicted keys are not found any more; remaining ones are.
        assert_eq!(w.add(info(1, 9), Ts(1), &mut sink), Added::Merged);
        assert_eq!(w.add(info(1, 0), Ts(1), &mut sink), Added::Opened);
    }
}
