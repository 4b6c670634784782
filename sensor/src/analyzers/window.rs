//! The reference's aggregation window (reference §2.2), as a bounded table.
//!
//! Each key opens a window at its first event; the window counts events and remembers the last
//! one, and closes a fixed span (60 s) after it opened, whatever happens in between (Zeek's
//! `&create_expire`). The next event of the same key opens a new window, so a steady periodic
//! key gives one row per span. Logs with a counter write `count` (`pkts`/`number`) and `last`
//! (`ts_end`); logs without one only use the window to de-duplicate.
//!
//! Windows close on packet time ([`WindowTable::pop_expired`]), so replay and live capture
//! produce the same rows. The table never holds more than the capacity given at start-up: a new
//! key arriving at a full table closes the oldest window early (counted in
//! `window_evictions`) rather than growing.
//!
//! Windows are kept in opening order, which is what closes them: with packet time running
//! forward, the oldest window is always the next to close. A capture whose timestamps step back
//! a little can only make a window close a little late, never lose it.

use std::collections::VecDeque;
use std::hash::Hash;
use std::sync::Arc;

use crate::stats::Stats;
use crate::ts::{Span, Ts};

/// The reference's window length (`&create_expire=60sec`).
pub const WINDOW: Span = Span::from_secs(60);

/// What a window collected for its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Agg {
    /// The first event (the row's `ts`).
    pub first: Ts,
    /// The last event (`ts_end`).
    pub last: Ts,
    /// Events in the window (`pkts`/`number`).
    pub count: u64,
}

/// Open windows of one log, keyed by the log's key columns.
pub struct WindowTable<K> {
    open: hashbrown::HashMap<K, Agg>,
    /// Keys of the open windows in opening order (each key exactly once), with the window's
    /// first event: checking for a closed window needs no hash lookup (this runs per packet).
    order: VecDeque<(K, Ts)>,
    cap: usize,
    span: Span,
    stats: Arc<Stats>,
}

impl<K: Hash + Eq + Clone> WindowTable<K> {
    /// A table of at most `cap` open windows (at least one) of length `span`. Memory grows
    /// with use up to that bound, so idle logs cost nothing.
    pub fn new(cap: usize, span: Span, stats: Arc<Stats>) -> WindowTable<K> {
        WindowTable {
            open: hashbrown::HashMap::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
            span,
            stats,
        }
    }

    /// Counts one event of `key` at `ts`. When the key is new and the table full, the oldest
    /// window is closed early and returned: the caller writes it now.
    pub fn add(&mut self, key: K, ts: Ts) -> Option<(K, Agg)> {
        if let Some(a) = self.open.get_mut(&key) {
            a.count += 1;
            if ts > a.last {
                a.last = ts;
            }
            return None;
        }
        let evicted = if self.open.len() >= self.cap {
            Stats::inc(&self.stats.window_evictions);
            self.pop_oldest()
        } else {
            None
        };
        self.open.insert(
            key.clone(),
            Agg {
                first: ts,
                last: ts,
                count: 1,
            },
        );
        self.order.push_back((key, ts));
        evicted
    }

    /// The next window that has closed by `now` (opened at least one span ago), if any.
    /// Call until `None`.
    pub fn pop_expired(&mut self, now: Ts) -> Option<(K, Agg)> {
        let &(_, first) = self.order.front()?;
        if now < first.plus(self.span) {
            return None;
        }
        self.pop_oldest()
    }

    /// The oldest open window, closed now (end of input: call until `None`).
    pub fn pop_oldest(&mut self) -> Option<(K, Agg)> {
        let (key, _) = self.order.pop_front()?;
        let agg = self.open.remove(&key)?;
        Some((key, agg))
    }

    /// When the oldest open window closes (`None`: none is open). Until then
    /// [`WindowTable::pop_expired`] has nothing to return.
    pub fn next_close(&self) -> Option<Ts> {
        self.order.front().map(|&(_, first)| first.plus(self.span))
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(cap: usize) -> (WindowTable<&'static str>, Arc<Stats>) {
        let stats = Arc::new(Stats::default());
        (WindowTable::new(cap, WINDOW, stats.clone()), stats)
    }

    fn s(secs: i64) -> Ts {
        Ts::from_secs(secs)
    }

    #[test]
    fn counts_within_the_window_and_reopens_after_it() {
        let (mut t, _) = table(8);
        assert!(t.add("a", s(100)).is_none());
        assert!(t.add("a", s(130)).is_none());
        assert!(t.add("b", s(140)).is_none());
        assert!(t.pop_expired(s(159)).is_none());
        // Create-expire: 60 s after the first event, however busy the key is.
        let (k, a) = t.pop_expired(s(160)).unwrap();
        assert_eq!(
            (k, a),
            (
                "a",
                Agg {
                    first: s(100),
                    last: s(130),
                    count: 2
                }
            )
        );
        assert!(t.pop_expired(s(160)).is_none());
        t.add("a", s(161));
        assert_eq!(t.pop_oldest().unwrap().0, "b");
        assert_eq!(t.pop_oldest().unwrap().1.first, s(161));
        assert!(t.pop_oldest().is_none());
        assert!(t.is_empty());
    }

    #[test]
    fn a_full_table_closes_the_oldest_window_early() {
        let (mut t, stats) = table(2);
        t.add("a", s(1));
        t.add("b", s(2));
        t.add("b", s(3));
        assert!(t.add("a", s(4)).is_none(), "known keys never evict");
        let (k, a) = t.add("c", s(5)).unwrap();
        assert_eq!((k, a.count), ("a", 2));
        assert_eq!(t.len(), 2);
        assert_eq!(stats.snapshot().window_evictions, 1);
    }
}
