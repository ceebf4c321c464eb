//! Tables of connections addressed by generation-checked keys.
//!
//! A key is `generation << 32 | slot`. Removing an entry bumps its slot's generation, so a key
//! held by a late completion no longer finds anything once the slot is reused: the completion is
//! recognised as stale instead of being applied to the new connection.
//!
//! [`Slots`] keeps each slot's generation beside its value; [`KeyedSlots`] is for values that
//! keep it themselves ([`Keyed`]), in room their layout has spare, so that a slot is the value
//! alone: the plaintext connections of the completion model, the most numerous.

/// A slab of `T` with generation-checked `u64` keys.
#[derive(Debug)]
pub struct Slots<T> {
    entries: Vec<(u32, Option<T>)>,
    free: Vec<u32>,
    live: usize,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots {
            entries: Vec::new(),
            free: Vec::new(),
            live: 0,
        }
    }
}

fn split(key: u64) -> (usize, u32) {
    ((key & 0xffff_ffff) as usize, (key >> 32) as u32)
}

fn join(slot: u32, generation: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(slot)
}

/// The slot `key` names: an index below the most entries its table has held, the same for every
/// key of that slot (for values kept beside the table).
pub fn slot_of(key: u64) -> usize {
    split(key).0
}

impl<T> Slots<T> {
    /// Stores `value` and returns its key.
    pub fn insert(&mut self, value: T) -> u64 {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.entries.push((0, None));
                u32::try_from(self.entries.len() - 1).expect("fewer than 2^32 connections")
            }
        };
        let entry = &mut self.entries[slot as usize];
        entry.1 = Some(value);
        self.live += 1;
        (u64::from(entry.0) << 32) | u64::from(slot)
    }

    /// The value under `key`, unless it was removed since.
    pub fn get_mut(&mut self, key: u64) -> Option<&mut T> {
        let (slot, generation) = split(key);
        match self.entries.get_mut(slot) {
            Some((g, value)) if *g == generation => value.as_mut(),
            _ => None,
        }
    }

    /// Removes and returns the value under `key`.
    pub fn remove(&mut self, key: u64) -> Option<T> {
        let (slot, generation) = split(key);
        let (g, value) = self.entries.get_mut(slot)?;
        if *g != generation || value.is_none() {
            return None;
        }
        *g = g.wrapping_add(1);
        self.free.push(slot as u32);
        self.live -= 1;
        value.take()
    }

    /// Entries stored.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Every stored value with its key.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u64, &mut T)> {
        self.entries
            .iter_mut()
            .enumerate()
            .filter_map(|(slot, (g, v))| {
                v.as_mut().map(|v| ((u64::from(*g) << 32) | slot as u64, v))
            })
    }
}

/// A value that keeps its own slot's generation, for a [`KeyedSlots`].
pub trait Keyed {
    /// The generation [`set_generation`](Keyed::set_generation) stored.
    fn generation(&self) -> u32;
    /// Stores the generation of the slot the value goes into.
    fn set_generation(&mut self, generation: u32);
}

/// A slab of `T` with generation-checked `u64` keys, like [`Slots`], whose values keep their
/// slot's generation themselves: a slot costs `size_of::<Option<T>>()` and nothing beside (a
/// free slot's next generation waits in the free list, as the port's operation table keeps
/// its own).
#[derive(Debug)]
pub struct KeyedSlots<T: Keyed> {
    entries: Vec<Option<T>>,
    /// Free slots, each with the generation its next value gets.
    free: Vec<(u32, u32)>,
    live: usize,
}

impl<T: Keyed> Default for KeyedSlots<T> {
    fn default() -> Self {
        KeyedSlots {
            entries: Vec::new(),
            free: Vec::new(),
            live: 0,
        }
    }
}

impl<T: Keyed> KeyedSlots<T> {
    /// An empty table with room for `n` values (capped at 65,536) before it grows: growing
    /// moves every value, and what a large table reserves and never uses costs address space,
    /// not memory (the system backs a page when it is first written).
    pub fn with_capacity(n: usize) -> Self {
        let n = n.min(1 << 16);
        KeyedSlots {
            entries: Vec::with_capacity(n),
            free: Vec::with_capacity(n),
            live: 0,
        }
    }

    /// Stores `value` and returns its key.
    pub fn insert(&mut self, mut value: T) -> u64 {
        let (slot, generation) = match self.free.pop() {
            Some(free) => free,
            None => {
                let slot = u32::try_from(self.entries.len()).expect("fewer than 2^32 connections");
                self.entries.push(None);
                (slot, 0)
            }
        };
        value.set_generation(generation);
        let entry = &mut self.entries[slot as usize];
        debug_assert!(entry.is_none());
        *entry = Some(value);
        self.live += 1;
        join(slot, generation)
    }

    /// The value under `key`, unless it was removed since.
    pub fn get_mut(&mut self, key: u64) -> Option<&mut T> {
        let (slot, generation) = split(key);
        (self.entries.get_mut(slot)?.as_mut()).filter(|v| v.generation() == generation)
    }

    /// Removes and returns the value under `key`.
    pub fn remove(&mut self, key: u64) -> Option<T> {
        let slot = split(key).0;
        self.get_mut(key)?;
        let value = self.entries[slot].take()?;
        self.free
            .push((slot as u32, value.generation().wrapping_add(1)));
        self.live -= 1;
        Some(value)
    }

    /// Entries stored.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The bytes one slot of the table takes.
    #[cfg(test)]
    pub fn entry_size() -> usize {
        std::mem::size_of::<Option<T>>()
    }

    /// Every stored value with its key.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u64, &mut T)> {
        self.entries
            .iter_mut()
            .enumerate()
            .filter_map(|(slot, v)| v.as_mut().map(|v| (join(slot as u32, v.generation()), v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_slot_does_not_answer_to_the_old_key() {
        let mut s = Slots::default();
        let a = s.insert("a");
        assert_eq!(s.remove(a), Some("a"));
        let b = s.insert("b");
        assert_eq!(a & 0xffff_ffff, b & 0xffff_ffff, "same slot");
        assert_eq!(s.get_mut(a), None);
        assert_eq!(s.remove(a), None);
        assert_eq!(s.get_mut(b), Some(&mut "b"));
        assert_eq!(s.len(), 1);
        assert_eq!(s.iter_mut().map(|(k, _)| k).collect::<Vec<_>>(), vec![b]);
        assert_eq!(slot_of(a), slot_of(b));
    }

    /// A value of a [`KeyedSlots`]: its name, and the generation the table gives it.
    #[derive(Debug, PartialEq)]
    struct Named(&'static str, u32);

    impl Keyed for Named {
        fn generation(&self) -> u32 {
            self.1
        }
        fn set_generation(&mut self, generation: u32) {
            self.1 = generation;
        }
    }

    #[test]
    fn a_reused_keyed_slot_does_not_answer_to_the_old_key() {
        let mut s = KeyedSlots::default();
        let a = s.insert(Named("a", 7));
        let c = s.insert(Named("c", 7));
        assert_eq!(s.get_mut(a).map(|v| (v.0, v.1)), Some(("a", 0)));
        assert_eq!(s.remove(a).map(|v| v.0), Some("a"));
        assert_eq!(s.remove(a), None, "removed once");
        let b = s.insert(Named("b", 0));
        assert_eq!(slot_of(a), slot_of(b), "same slot");
        assert_ne!(a, b);
        assert_eq!(s.get_mut(a), None);
        assert_eq!(s.remove(a), None);
        assert_eq!(s.get_mut(b).map(|v| (v.0, v.1)), Some(("b", 1)));
        assert_eq!(s.len(), 2);
        let mut keys = s.iter_mut().map(|(k, _)| k).collect::<Vec<_>>();
        keys.sort_unstable();
        let mut want = vec![b, c];
        want.sort_unstable();
        assert_eq!(keys, want);
        assert_eq!(s.remove(c).map(|v| v.0), Some("c"));
        assert_eq!(s.remove(b).map(|v| v.0), Some("b"));
        assert!(s.is_empty());
        // Each slot comes back with its own next generation.
        let d = s.insert(Named("d", 0));
        let e = s.insert(Named("e", 0));
        assert_eq!((slot_of(d), d >> 32), (slot_of(b), 2));
        assert_eq!((slot_of(e), e >> 32), (slot_of(c), 1));
    }

    #[test]
    fn a_keyed_table_made_with_room_never_moves_up_to_it() {
        let mut s = KeyedSlots::with_capacity(64);
        let (entries, free) = (s.entries.as_ptr(), s.free.as_ptr());
        let keys: Vec<u64> = (0..64).map(|_| s.insert(Named("x", 0))).collect();
        for key in keys {
            assert!(s.remove(key).is_some());
        }
        assert_eq!(s.entries.as_ptr(), entries, "the slots moved");
        assert_eq!(s.free.as_ptr(), free, "the free list moved");
        assert_eq!(
            KeyedSlots::<Named>::with_capacity(usize::MAX)
                .entries
                .capacity(),
            1 << 16
        );
    }
}
