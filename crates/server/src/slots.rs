//! A table of connections addressed by generation-checked keys.
//!
//! A key is `generation << 32 | slot`. Removing an entry bumps its slot's generation, so a key
//! held by a late completion no longer finds anything once the slot is reused: the completion is
//! recognised as stale instead of being applied to the new connection.

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

    /// The bytes one slot of the table takes (a value and its generation).
    #[cfg(test)]
    pub fn entry_size() -> usize {
        std::mem::size_of::<(u32, Option<T>)>()
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
    }
}
