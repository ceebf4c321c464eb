//! The epoll backend's bookkeeping of waiting operations: per fd, one FIFO queue per direction
//! (read: Recv, Accept; write: Send, Connect), linked through a per-slot array that mirrors the
//! operation table, so that queueing allocates nothing per operation; fds are found by number
//! in a vector. While anything waits on an fd, its state holds a handle on it, so the number
//! cannot be closed and reused underneath a live epoll registration.
//!
//! No system call is made here: registering and deregistering with epoll is the driver's.

use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;

use crate::op::SharedFd;
use crate::token::{Token, WAKE};

/// End of a waiter list.
const NONE: u32 = u32::MAX;

/// Which readiness an operation waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dir {
    Read,
    Write,
}

/// A FIFO of waiting operations, linked through [`Waiters::waiters`] by slot.
#[derive(Debug, Clone, Copy)]
pub(super) struct Queue {
    head: u32,
    tail: u32,
}

impl Queue {
    const EMPTY: Queue = Queue {
        head: NONE,
        tail: NONE,
    };

    fn is_empty(&self) -> bool {
        self.head == NONE
    }
}

/// What the driver knows about one fd, indexed by its number.
#[derive(Debug)]
pub(super) struct FdState {
    /// The driver's own handle, held while the state is in use, so the number stays this fd's.
    handle: Option<SharedFd>,
    /// Added to the epoll set.
    pub registered: bool,
    /// `O_NONBLOCK` is known to be set (listeners only).
    pub nonblocking: bool,
    /// On the idle list, to be looked at by the next `wait`.
    idle_listed: bool,
    read: Queue,
    write: Queue,
}

impl FdState {
    const UNUSED: FdState = FdState {
        handle: None,
        registered: false,
        nonblocking: false,
        idle_listed: false,
        read: Queue::EMPTY,
        write: Queue::EMPTY,
    };

    fn queue(&mut self, dir: Dir) -> &mut Queue {
        match dir {
            Dir::Read => &mut self.read,
            Dir::Write => &mut self.write,
        }
    }

    fn is_idle(&self) -> bool {
        self.read.is_empty() && self.write.is_empty()
    }
}

/// One waiting operation, indexed by its token's slot.
#[derive(Debug, Clone, Copy)]
struct Waiter {
    token: Token,
    fd: RawFd,
    dir: Dir,
    next: u32,
    queued: bool,
}

impl Waiter {
    const UNUSED: Waiter = Waiter {
        token: WAKE,
        fd: -1,
        dir: Dir::Read,
        next: NONE,
        queued: false,
    };
}

/// The fds the driver knows and the operations waiting on them.
#[derive(Debug, Default)]
pub(super) struct Waiters {
    fds: Vec<FdState>,
    waiters: Vec<Waiter>,
    /// Fds whose queues emptied since the last `wait`.
    idle: Vec<RawFd>,
}

impl Waiters {
    /// Room for `fds` fds and waiters before any grows: growth is an allocation, which the hot
    /// path should meet only at a new high-water mark beyond this.
    pub fn with_capacity(fds: usize) -> Waiters {
        Waiters {
            fds: Vec::with_capacity(fds),
            waiters: Vec::with_capacity(fds),
            idle: Vec::with_capacity(fds),
        }
    }

    /// The state for `fd`, taking a handle on it if it had none.
    pub fn hold(&mut self, fd: &SharedFd) -> &mut FdState {
        let raw = fd.as_raw_fd();
        let index = usize::try_from(raw).expect("an open fd is non-negative");
        if index >= self.fds.len() {
            let len = (index + 1).next_power_of_two().max(64);
            self.fds.resize_with(len, || FdState::UNUSED);
        }
        let state = &mut self.fds[index];
        if state.handle.is_none() {
            state.handle = Some(Rc::clone(fd));
        }
        state
    }

    fn state(&mut self, fd: RawFd) -> Option<&mut FdState> {
        self.fds.get_mut(usize::try_from(fd).ok()?)
    }

    /// Whether nothing waits on `fd` in direction `dir`.
    pub fn queue_is_empty(&self, fd: RawFd, dir: Dir) -> bool {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.fds.get(i))
            .is_none_or(|s| match dir {
                Dir::Read => s.read.is_empty(),
                Dir::Write => s.write.is_empty(),
            })
    }

    /// Puts `fd` on the idle list if nothing waits on it, for the next `wait` to deregister.
    pub fn note_if_idle(&mut self, fd: RawFd) {
        let Some(state) = self.state(fd) else { return };
        if state.is_idle() && !state.idle_listed {
            state.idle_listed = true;
            self.idle.push(fd);
        }
    }

    /// Forgets `fd` if nothing waits on it: `deregister` is called first if it is in the epoll
    /// set (while the handle still keeps it open), then the handle is dropped (which may close
    /// the fd, when its owner has dropped every other handle).
    pub fn release(&mut self, fd: RawFd, deregister: impl FnOnce(RawFd)) {
        let Some(state) = self.state(fd) else { return };
        if !state.is_idle() || state.handle.is_none() {
            return;
        }
        if state.registered {
            deregister(fd);
        }
        state.registered = false;
        state.nonblocking = false;
        state.handle = None;
    }

    /// Releases (see [`release`](Waiters::release)) the fds that stayed idle since the last
    /// call.
    pub fn sweep_idle(&mut self, mut deregister: impl FnMut(RawFd)) {
        for i in 0..self.idle.len() {
            let fd = self.idle[i];
            if let Some(state) = self.state(fd) {
                state.idle_listed = false;
            }
            self.release(fd, &mut deregister);
        }
        self.idle.clear();
    }

    /// Queues `token` behind the operations waiting on `fd` (held, see
    /// [`hold`](Waiters::hold)) in direction `dir`.
    pub fn link(&mut self, token: Token, fd: RawFd, dir: Dir) {
        let Some(state) = self.state(fd) else { return };
        let slot = token.slot();
        let queue = state.queue(dir);
        let old_tail = queue.tail;
        queue.tail = slot;
        if old_tail == NONE {
            queue.head = slot;
        }
        if self.waiters.len() <= slot as usize {
            let len = (slot as usize + 1).next_power_of_two().max(64);
            self.waiters.resize(len, Waiter::UNUSED);
        }
        if old_tail != NONE {
            self.waiters[old_tail as usize].next = slot;
        }
        self.waiters[slot as usize] = Waiter {
            token,
            fd,
            dir,
            next: NONE,
            queued: true,
        };
    }

    /// The operation at the front of `fd`'s `dir` queue.
    pub fn front(&self, fd: RawFd, dir: Dir) -> Option<Token> {
        let state = self.fds.get(usize::try_from(fd).ok()?)?;
        let head = match dir {
            Dir::Read => state.read.head,
            Dir::Write => state.write.head,
        };
        (head != NONE).then(|| self.waiters[head as usize].token)
    }

    /// Takes the front operation off `fd`'s `dir` queue.
    pub fn pop_front(&mut self, fd: RawFd, dir: Dir) {
        let Some(state) = self.fds.get_mut(fd as usize) else {
            return;
        };
        let queue = state.queue(dir);
        let head = queue.head;
        if head == NONE {
            return;
        }
        let waiter = &mut self.waiters[head as usize];
        waiter.queued = false;
        queue.head = waiter.next;
        if queue.head == NONE {
            queue.tail = NONE;
        }
    }

    /// Takes the operation `target` out of its queue, if it is waiting; returns its fd.
    pub fn remove(&mut self, target: Token) -> Option<RawFd> {
        let slot = target.slot();
        let waiter = self.waiters.get(slot as usize).copied()?;
        if !waiter.queued || waiter.token != target {
            return None;
        }
        self.unlink(slot);
        Some(waiter.fd)
    }

    /// Takes the operation in `slot` out of the middle of its queue.
    fn unlink(&mut self, slot: u32) {
        let Waiter { fd, dir, .. } = self.waiters[slot as usize];
        let Some(state) = self.fds.get_mut(fd as usize) else {
            return;
        };
        let queue = state.queue(dir);
        let mut prev = NONE;
        let mut cur = queue.head;
        while cur != NONE && cur != slot {
            prev = cur;
            cur = self.waiters[cur as usize].next;
        }
        if cur == NONE {
            return;
        }
        let next = self.waiters[slot as usize].next;
        if prev == NONE {
            queue.head = next;
        } else {
            self.waiters[prev as usize].next = next;
        }
        if queue.tail == slot {
            queue.tail = prev;
        }
        self.waiters[slot as usize].queued = false;
    }
}
