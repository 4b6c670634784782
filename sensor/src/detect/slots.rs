//! The detector's per-connection states, found by the flow table's slot.
//!
//! The flow stage hands every packet its connection's slot (a dense index it reuses once the
//! connection is gone) and uid, so a vector indexed by slot finds a state with one load where
//! a hash map costs a probe of its own table: the lookup happens several times per packet.
//! A slot holding another uid's state is a connection that ended without its row reaching
//! us; the new connection takes the slot over. States of ended connections are kept for
//! reuse (their buffers already sized) up to [`SPARE`].

use crate::flow::Uid;

/// States kept for reuse.
const SPARE: usize = 1024;

/// A per-connection state: names its connection.
pub trait SlotState {
    fn uid(&self) -> Uid;
}

pub struct SlotTable<T> {
    slots: Vec<Option<Box<T>>>,
    live: usize,
    max: usize,
    spare: Vec<Box<T>>,
}

impl<T: SlotState> SlotTable<T> {
    /// At most `max` states at once.
    pub fn new(max: usize) -> SlotTable<T> {
        SlotTable {
            slots: Vec::new(),
            live: 0,
            max,
            spare: Vec::new(),
        }
    }

    pub fn get(&self, slot: u32, uid: Uid) -> Option<&T> {
        match self.slots.get(slot as usize) {
            Some(Some(s)) if s.uid() == uid => Some(s),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, slot: u32, uid: Uid) -> Option<&mut T> {
        match self.slots.get_mut(slot as usize) {
            Some(Some(s)) if s.uid() == uid => Some(s),
            _ => None,
        }
    }

    /// The connection's state, made by `fresh` (given a used state to refill, if one is
    /// spare) when it has none; `None` when the table is full.
    pub fn get_or_insert(
        &mut self,
        slot: u32,
        uid: Uid,
        fresh: impl FnOnce(Option<Box<T>>) -> Box<T>,
    ) -> Option<&mut T> {
        let i = slot as usize;
        if i >= self.slots.len() {
            self.slots.resize_with(i + 1, || None);
        }
        let entry = &mut self.slots[i];
        match entry {
            Some(s) if s.uid() == uid => {}
            Some(_) => {
                let old = entry.take();
                *entry = Some(fresh(old));
            }
            None => {
                if self.live >= self.max {
                    return None;
                }
                self.live += 1;
                *entry = Some(fresh(self.spare.pop()));
            }
        }
        entry.as_deref_mut()
    }

    /// The connection ended: its state goes.
    pub fn remove(&mut self, slot: u32, uid: Uid) {
        if let Some(entry) = self.slots.get_mut(slot as usize) {
            if entry.as_ref().is_some_and(|s| s.uid() == uid) {
                self.live -= 1;
                if let Some(s) = entry.take() {
                    if self.spare.len() < SPARE {
                        self.spare.push(s);
                    }
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct S(Uid, u32);

    impl SlotState for S {
        fn uid(&self) -> Uid {
            self.0
        }
    }

    #[test]
    fn slots_hold_one_connection_each_and_bound_the_count() {
        let mut t: SlotTable<S> = SlotTable::new(2);
        let (a, b, c) = (Uid(1), Uid(2), Uid(3));
        assert!(t.get_or_insert(5, a, |_| Box::new(S(a, 1))).is_some());
        assert_eq!(t.get(5, a).map(|s| s.1), Some(1));
        assert!(t.get(5, b).is_none());
        assert!(t.get(4, a).is_none());
        assert!(t.get_or_insert(0, b, |_| Box::new(S(b, 2))).is_some());
        // Full: a third connection gets no state...
        assert!(t.get_or_insert(1, c, |_| Box::new(S(c, 3))).is_none());
        // ...but one taking over a slot replaces the old state.
        let mut reused = false;
        t.get_or_insert(5, c, |old| {
            reused = old.is_some();
            Box::new(S(c, 3))
        });
        assert!(reused);
        assert!(t.get(5, a).is_none());
        assert_eq!(t.len(), 2);
        t.remove(5, a);
        assert_eq!(t.len(), 2);
        t.remove(5, c);
        assert_eq!(t.len(), 1);
        // The ended state is refilled for the next connection.
        let mut spare = false;
        t.get_or_insert(9, a, |old| {
            spare = old.is_some();
            Box::new(S(a, 4))
        });
        assert!(spare);
        assert_eq!(t.get(9, a).map(|s| s.1), Some(4));
    }
}
