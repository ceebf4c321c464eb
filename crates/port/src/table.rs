//! The operation table: where an operation's owned resources live while the kernel works on it.
//!
//! A slab of entries with a free list. An entry is taken when an operation is submitted and
//! released only when its completion has been reaped, so a slot is never reused while the kernel
//! may still write into the resources it holds. Each release bumps the entry's generation; a
//! [`Token`] whose generation or kind does not match the entry is stale and is refused.
//!
//! An entry holds what every backend needs (the caller's key, the operation and what it owns,
//! a pool buffer the driver took) and the driver's own state for the operation (`S`, its
//! [`Driver::State`](crate::sys::Driver::State)): io_uring's socket address and message header,
//! epoll's accepted peer, IOCP's `OVERLAPPED`s.

use std::rc::Rc;

use crate::op::{Op, OwnedFd, SharedFd, Socket};
use crate::token::{OpKind, Token};

/// What a table entry carries out.
#[derive(Debug)]
pub(crate) enum Work {
    /// Any operation but a close, as the caller submitted it, with what it owns.
    Op(Op),
    /// A close: the caller's handle on the descriptor, until the driver takes it with
    /// [`take_last`](Work::take_last) (once it has let go of any handle of its own).
    Close(Option<SharedFd>),
}

impl Work {
    /// The work `op` is: an [`Op::Close`] becomes a [`Work::Close`].
    pub fn new(op: Op) -> Work {
        match op {
            Op::Close { fd } => Work::Close(Some(fd)),
            op => Work::Op(op),
        }
    }

    /// Takes a close's descriptor: its last handle, which the driver must close (the close's
    /// result is the operation's), or `None` when other handles still hold the descriptor
    /// (this one is dropped, the last holder closes it, and the close completes with 0), when
    /// it was taken already, or when this is not a close.
    pub fn take_last(&mut self) -> Option<OwnedFd> {
        self.take_last_socket().and_then(|s| s.into_real().ok())
    }

    /// [`take_last`](Work::take_last) for a driver that closes direct descriptors too.
    pub fn take_last_socket(&mut self) -> Option<Socket> {
        match self {
            Work::Close(fd) => fd.take().and_then(|fd| Rc::try_unwrap(fd).ok()),
            Work::Op(_) => None,
        }
    }
}

/// One operation in flight.
#[derive(Debug)]
pub(crate) struct InFlight<S> {
    /// The caller's key, returned in the completion.
    pub key: u64,
    /// What the operation does.
    pub kind: OpKind,
    /// The operation and the resources it owns.
    pub work: Work,
    /// The pool buffer the driver took for this receive itself (where the kernel does not
    /// select buffers: io_uring without a provided-buffer ring, IOCP's single receive).
    pub pooled: Option<u16>,
    /// The driver's own state for the operation (see the module's documentation).
    pub state: S,
    /// Its slot's generation, as its token names it: set by [`OpTable::insert`] (kept here,
    /// in the entry's padding, rather than beside it).
    pub generation: u16,
}

impl<S> InFlight<S> {
    /// Whether `token` names this operation (its generation and kind).
    fn names(&self, token: Token) -> bool {
        self.generation == token.generation() && self.kind == token.kind()
    }
}

/// A slot of the table: the operation in flight, or nothing (the slot's next generation then
/// waits in the free list).
type Entry<S> = Option<InFlight<S>>;

/// A slab of in-flight operations addressed by [`Token`].
#[derive(Debug)]
pub(crate) struct OpTable<S> {
    entries: Vec<Entry<S>>,
    /// Free slots, each with the generation its next operation gets.
    free: Vec<(u32, u16)>,
    live: usize,
}

impl<S> Default for OpTable<S> {
    fn default() -> Self {
        OpTable {
            entries: Vec::new(),
            free: Vec::new(),
            live: 0,
        }
    }
}

impl<S> OpTable<S> {
    /// An empty table with room for `ops` operations (capped at 65,536) before it grows.
    pub fn with_capacity(ops: usize) -> Self {
        let ops = ops.min(1 << 16);
        OpTable {
            entries: Vec::with_capacity(ops),
            free: Vec::with_capacity(ops),
            live: 0,
        }
    }

    /// Room for `ops` operations in all (capped at 65,536) before the table grows: growing
    /// moves every entry (and may leave the old copy's memory with the allocator), while room
    /// reserved and never used costs address space, not memory.
    pub fn reserve(&mut self, ops: usize) {
        let ops = ops.min(1 << 16);
        self.entries.reserve(ops.saturating_sub(self.entries.len()));
        self.free.reserve(ops.saturating_sub(self.free.len()));
    }

    /// Stores an operation and returns its token.
    pub fn insert(&mut self, mut op: InFlight<S>) -> Token {
        let kind = op.kind;
        let (slot, generation) = match self.free.pop() {
            Some(free) => free,
            None => {
                let slot = u32::try_from(self.entries.len()).expect("more than 2^32 operations");
                self.entries.push(None);
                (slot, 0)
            }
        };
        op.generation = generation;
        let entry = &mut self.entries[slot as usize];
        debug_assert!(entry.is_none());
        *entry = Some(op);
        self.live += 1;
        Token::new(slot, generation, kind)
    }

    /// The operation named by `token`, if it is still in flight.
    pub fn get_mut(&mut self, token: Token) -> Option<&mut InFlight<S>> {
        self.entries
            .get_mut(token.slot() as usize)?
            .as_mut()
            .filter(|inflight| inflight.names(token))
    }

    /// The operation named by `token`, if it is in flight.
    #[cfg_attr(windows, allow(dead_code))]
    pub fn get(&self, token: Token) -> Option<&InFlight<S>> {
        self.entries
            .get(token.slot() as usize)?
            .as_ref()
            .filter(|inflight| inflight.names(token))
    }

    /// Whether `token` names an operation still in flight.
    pub fn contains(&self, token: Token) -> bool {
        self.entries
            .get(token.slot() as usize)
            .and_then(Option::as_ref)
            .is_some_and(|inflight| inflight.names(token))
    }

    /// Removes the operation named by `token` and frees its slot; `None` for a stale token.
    pub fn remove(&mut self, token: Token) -> Option<InFlight<S>> {
        let slot = token.slot();
        self.get_mut(token)?;
        let inflight = self.entries[slot as usize].take()?;
        self.free.push((slot, inflight.generation.wrapping_add(1)));
        self.live -= 1;
        Some(inflight)
    }

    /// The tokens of every operation in flight.
    #[cfg_attr(windows, allow(dead_code))]
    pub fn tokens(&self) -> Vec<Token> {
        (self.entries.iter().enumerate())
            .filter_map(|(slot, e)| {
                let e = e.as_ref()?;
                Some(Token::new(slot as u32, e.generation, e.kind))
            })
            .collect()
    }

    /// Forgets every operation in flight without dropping what it owns (its buffer, its state):
    /// for a port dropped while the system may still write into them.
    #[cfg_attr(windows, allow(dead_code))]
    pub fn leak(&mut self) {
        std::mem::forget(std::mem::take(&mut self.entries));
        self.free.clear();
        self.live = 0;
    }

    /// Operations in flight.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Slots allocated (in flight or free): the table's high-water mark.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nop(key: u64) -> InFlight<()> {
        InFlight {
            key,
            kind: OpKind::Nop,
            work: Work::new(Op::Nop),
            pooled: None,
            state: (),
            generation: 0,
        }
    }

    #[test]
    fn insert_remove_reuses_slot_with_new_generation() {
        let mut t = OpTable::default();
        let a = t.insert(nop(1));
        assert_eq!(t.len(), 1);
        assert_eq!(t.remove(a).map(|f| f.key), Some(1));
        let b = t.insert(nop(2));
        assert_eq!(a.slot(), b.slot(), "slot reused");
        assert_ne!(a.generation(), b.generation());
        assert!(
            t.remove(a).is_none(),
            "stale token must not reach the new operation"
        );
        assert!(t.contains(b));
        assert_eq!(t.remove(b).map(|f| f.key), Some(2));
        assert_eq!(t.len(), 0);
        assert_eq!(t.capacity(), 1);
    }

    #[test]
    fn a_table_made_with_room_never_moves_up_to_it() {
        let mut t = OpTable::with_capacity(64);
        let (entries, free) = (t.entries.as_ptr(), t.free.as_ptr());
        let tokens: Vec<Token> = (0..64).map(|k| t.insert(nop(k))).collect();
        for token in tokens {
            t.remove(token).unwrap();
        }
        let again: Vec<Token> = (0..64).map(|k| t.insert(nop(k))).collect();
        assert_eq!(again.len(), 64);
        assert_eq!(t.entries.as_ptr(), entries, "the slots grew");
        assert_eq!(t.free.as_ptr(), free, "the free list grew");
        assert_eq!(t.capacity(), 64);
        t.insert(nop(65));
        assert_eq!(t.capacity(), 65, "past its room it grows");
    }

    #[test]
    fn a_table_given_room_later_never_moves_up_to_it() {
        let mut t = OpTable::with_capacity(4);
        let a = t.insert(nop(0));
        t.reserve(100);
        let (entries, free) = (t.entries.as_ptr(), t.free.as_ptr());
        let tokens: Vec<Token> = (1..100).map(|k| t.insert(nop(k))).collect();
        for token in tokens {
            t.remove(token).unwrap();
        }
        assert!(t.contains(a), "what was in flight stays");
        assert_eq!(t.entries.as_ptr(), entries, "the slots grew");
        assert_eq!(t.free.as_ptr(), free, "the free list grew");
        t.reserve(usize::MAX);
        assert!(t.entries.capacity() >= 1 << 16 && t.entries.capacity() < 1 << 17);
    }

    #[test]
    fn wrong_kind_is_refused() {
        let mut t = OpTable::default();
        let a = t.insert(nop(1));
        let forged = Token::new(a.slot(), a.generation(), OpKind::Recv);
        assert!(t.remove(forged).is_none());
        assert!(t.remove(a).is_some());
    }

    /// A close takes the descriptor only as its last handle, and only once: with another
    /// handle alive (a driver's own, say) there is nothing to close yet.
    #[cfg(unix)]
    #[test]
    fn a_close_takes_only_the_last_handle_once() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd = std::rc::Rc::new(Socket::from(OwnedFd::from(a)));
        let held = std::rc::Rc::clone(&fd);
        let mut work = Work::new(Op::Close { fd });
        assert!(matches!(work, Work::Close(Some(_))));
        drop(held);
        assert!(work.take_last().is_some(), "the last handle");
        assert!(work.take_last().is_none(), "taken once");

        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd = std::rc::Rc::new(Socket::from(OwnedFd::from(a)));
        let _held = std::rc::Rc::clone(&fd);
        let mut work = Work::new(Op::Close { fd });
        assert!(work.take_last().is_none(), "another handle holds it");
        assert!(Work::new(Op::Nop).take_last().is_none(), "not a close");
    }

    /// An idle connection keeps one receive in flight: what its table entry costs on io_uring
    /// (a regression here is one of `benches/idle-rss.sh`).
    #[cfg(target_os = "linux")]
    #[test]
    fn an_idle_receive_is_small() {
        let size = std::mem::size_of::<Entry<crate::sys::uring::UringOp>>();
        // 112: a pool buffer's handle names its pool (4 bytes, 8 with alignment).
        assert!(size <= 112, "an io_uring operation entry is {size} bytes");
        assert!(std::mem::size_of::<crate::sys::uring::UringOp>() <= 24);
    }

    #[test]
    fn a_freed_slot_keeps_its_next_generation() {
        let mut t = OpTable::default();
        let a = t.insert(nop(1));
        let b = t.insert(nop(2));
        assert!(t.remove(a).is_some());
        assert!(t.remove(b).is_some());
        let c = t.insert(nop(3));
        let d = t.insert(nop(4));
        assert_eq!((c.slot(), c.generation()), (b.slot(), b.generation() + 1));
        assert_eq!((d.slot(), d.generation()), (a.slot(), a.generation() + 1));
        assert!(!t.contains(a) && !t.contains(b));
        assert_eq!(t.get_mut(d).map(|i| i.key), Some(4));
    }

    #[test]
    fn double_remove_is_refused() {
        let mut t = OpTable::default();
        let a = t.insert(nop(1));
        assert!(t.remove(a).is_some());
        assert!(t.remove(a).is_none());
        assert_eq!(t.len(), 0);
    }
}
