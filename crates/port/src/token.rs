//! The `Token`: what an operation is called while the kernel holds it.
//!
//! Every operation submitted to a [`Port`](crate::Port) occupies one entry of the port's
//! operation table until its completion is reaped. The entry is named by a `Token`, and the token
//! is what travels through the kernel in the submission's `user_data` and comes back in the
//! completion. It packs three fields into the 64 bits:
//!
//! ```text
//!  63      56 55      48 47             32 31                              0
//! +----------+----------+-----------------+---------------------------------+
//! |   kind   | reserved |   generation    |            slot index           |
//! +----------+----------+-----------------+---------------------------------+
//! ```
//!
//! - **slot**: the index of the entry in the operation table.
//! - **generation**: bumped every time the entry is freed, so a completion that names a slot
//!   which has since been freed and reused is recognised as stale, counted and dropped: it is
//!   never applied to the operation that now holds the slot.
//! - **kind**: the [`OpKind`], checked against the entry as a second guard and used to route the
//!   port's internal completions (wake-ups, cancellations) without touching the table.
//!
//! # Reserved values
//!
//! Every `user_data` that is not an operation of the table is defined here, once, for every
//! backend:
//!
//! - `0` is never a valid token (kind 0 is reserved), and `u64::MAX` is reserved by liburing
//!   for its internal timeouts; [`Token::from_raw`] rejects both.
//! - [`WAKE`] (kind [`OpKind::Wake`], slot 0, generation 0): the completion a backend reports
//!   when the port was woken by a [`Poster`](crate::Poster); the port then drains the posted
//!   values. It names no table entry.
//! - A cancellation request carries its target's slot and generation with kind
//!   [`OpKind::Cancel`]; its own completion is dropped.
//! - [`PROBE_RECV`] and [`PROBE_CANCEL`]: the operations of the io_uring backend's start-up
//!   probes. Kind 0, so not tokens: they never leave the driver.
//! - [`ALARM`] and [`ALARM_UPDATE`]: the io_uring backend's alarm (the timeout operation that
//!   ends a long wait) and the update that moves it. Kind 0: they never leave the driver.
//! - [`DIRECT_CLOSE`]: the io_uring backend's close of a direct socket's slot when the socket
//!   was dropped without a close. Kind 0: it never leaves the driver.

use std::num::NonZeroU64;

/// What an operation does. Stored in the top byte of a [`Token`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpKind {
    /// Accept one connection on a listening socket.
    Accept = 1,
    /// Receive bytes into the spare capacity of a buffer.
    Recv = 2,
    /// Send a range of a buffer.
    Send = 3,
    /// Connect a socket to a remote address.
    Connect = 4,
    /// Shut down one or both directions of a socket.
    Shutdown = 5,
    /// Close a file descriptor.
    Close = 6,
    /// Complete at once: a round trip through the port.
    Nop = 7,
    /// Internal: the cancellation request for another operation.
    Cancel = 8,
    /// Internal: the read on the port's wake-up eventfd.
    Wake = 9,
    /// Accept connections until cancelled (multishot).
    AcceptMulti = 10,
    /// Receive chunks into pooled buffers until cancelled (multishot).
    RecvMulti = 11,
    /// Receive once into a pooled buffer.
    RecvBuf = 12,
    /// Send from a pooled buffer.
    SendBuf = 13,
    /// Send from several pooled buffers in one operation.
    SendBufs = 14,
    /// Receive one datagram and its sender's address.
    RecvFrom = 15,
    /// Send one datagram to an address.
    SendTo = 16,
    /// Receive datagrams into pooled buffers until cancelled (multishot).
    RecvFromMulti = 17,
    /// Send a pooled buffer as one datagram to an address.
    SendBufTo = 18,
}

impl OpKind {
    /// Whether operations of this kind complete more than once (multishot): their table entry
    /// stays while the kernel's completions carry `IORING_CQE_F_MORE`.
    pub fn is_multishot(self) -> bool {
        matches!(
            self,
            OpKind::AcceptMulti | OpKind::RecvMulti | OpKind::RecvFromMulti
        )
    }

    fn from_u8(v: u8) -> Option<OpKind> {
        Some(match v {
            1 => OpKind::Accept,
            2 => OpKind::Recv,
            3 => OpKind::Send,
            4 => OpKind::Connect,
            5 => OpKind::Shutdown,
            6 => OpKind::Close,
            7 => OpKind::Nop,
            8 => OpKind::Cancel,
            9 => OpKind::Wake,
            10 => OpKind::AcceptMulti,
            11 => OpKind::RecvMulti,
            12 => OpKind::RecvBuf,
            13 => OpKind::SendBuf,
            14 => OpKind::SendBufs,
            15 => OpKind::RecvFrom,
            16 => OpKind::SendTo,
            17 => OpKind::RecvFromMulti,
            18 => OpKind::SendBufTo,
            _ => return None,
        })
    }
}

/// The completion a wake-up produces (see [Reserved values](self#reserved-values)).
pub(crate) const WAKE: Token = Token::new(0, 0, OpKind::Wake);
/// The receive of a start-up probe of the io_uring backend: not a token (kind 0).
#[cfg_attr(windows, allow(dead_code))]
pub(crate) const PROBE_RECV: u64 = 1;
/// The cancellation of a start-up probe's receive: not a token (kind 0).
#[cfg_attr(windows, allow(dead_code))]
pub(crate) const PROBE_CANCEL: u64 = 2;

/// The io_uring backend's alarm, a timeout operation that ends long waits (see the driver's
/// `wait`): not a token (kind 0).
#[cfg_attr(windows, allow(dead_code))]
pub(crate) const ALARM: u64 = 3;
/// The update that moves the io_uring backend's alarm earlier: not a token (kind 0).
#[cfg_attr(windows, allow(dead_code))]
pub(crate) const ALARM_UPDATE: u64 = 4;
/// The io_uring backend's close of a direct socket's slot, its socket dropped without a close.
#[cfg_attr(windows, allow(dead_code))]
pub(crate) const DIRECT_CLOSE: u64 = 5;

/// The name of one in-flight operation, packed into a submission's `user_data`.
///
/// See the [module documentation](self) for the layout. Never 0 (kind 0 is no kind), so an
/// `Option<Token>` is as small as a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token(NonZeroU64);

impl Token {
    const SLOT_BITS: u32 = 32;
    const GEN_SHIFT: u32 = 32;
    const KIND_SHIFT: u32 = 56;

    /// Packs a slot index, a generation and a kind.
    pub const fn new(slot: u32, generation: u16, kind: OpKind) -> Token {
        let raw = (slot as u64)
            | ((generation as u64) << Self::GEN_SHIFT)
            | ((kind as u64) << Self::KIND_SHIFT);
        match NonZeroU64::new(raw) {
            Some(raw) => Token(raw),
            None => panic!("every kind is at least 1"),
        }
    }

    /// Unpacks a raw `user_data`, rejecting reserved values (0, `u64::MAX`, unknown kinds and a
    /// non-zero reserved byte).
    pub fn from_raw(raw: u64) -> Option<Token> {
        if raw == 0 || raw == u64::MAX || (raw >> 48) & 0xff != 0 {
            return None;
        }
        OpKind::from_u8((raw >> Self::KIND_SHIFT) as u8)?;
        NonZeroU64::new(raw).map(Token)
    }

    /// The raw `user_data` value.
    pub const fn raw(self) -> u64 {
        self.0.get()
    }

    /// The operation table slot.
    pub const fn slot(self) -> u32 {
        (self.raw() & ((1u64 << Self::SLOT_BITS) - 1)) as u32
    }

    /// The slot's generation when the operation was submitted.
    pub const fn generation(self) -> u16 {
        (self.raw() >> Self::GEN_SHIFT) as u16
    }

    /// What the operation does.
    pub fn kind(self) -> OpKind {
        // A Token is only built by `new` or a validated `from_raw`.
        OpKind::from_u8((self.raw() >> Self::KIND_SHIFT) as u8).unwrap_or(OpKind::Nop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_field() {
        for kind in [OpKind::Accept, OpKind::Recv, OpKind::Send, OpKind::Wake] {
            let t = Token::new(0xdead_beef, 0xabcd, kind);
            let back = Token::from_raw(t.raw()).expect("valid token");
            assert_eq!(back.slot(), 0xdead_beef);
            assert_eq!(back.generation(), 0xabcd);
            assert_eq!(back.kind(), kind);
        }
    }

    #[test]
    fn reserved_values_are_rejected() {
        assert_eq!(Token::from_raw(0), None);
        assert_eq!(Token::from_raw(PROBE_RECV), None);
        assert_eq!(Token::from_raw(ALARM), None);
        assert_eq!(Token::from_raw(ALARM_UPDATE), None);
        assert_eq!(Token::from_raw(DIRECT_CLOSE), None);
        assert_eq!(Token::from_raw(PROBE_CANCEL), None);
        assert_eq!(
            Token::from_raw(WAKE.raw()).map(Token::kind),
            Some(OpKind::Wake)
        );
        assert_eq!(Token::from_raw(u64::MAX), None);
        assert_eq!(Token::from_raw(0xff << 56), None, "unknown kind");
        let reserved_byte = Token::new(1, 1, OpKind::Recv).raw() | (1 << 48);
        assert_eq!(Token::from_raw(reserved_byte), None);
    }

    #[test]
    fn an_absent_token_costs_nothing() {
        assert_eq!(std::mem::size_of::<Option<Token>>(), 8);
    }

    #[test]
    fn generations_distinguish_reuse() {
        let old = Token::new(7, 1, OpKind::Recv);
        let new = Token::new(7, 2, OpKind::Recv);
        assert_ne!(old, new);
        assert_eq!(old.slot(), new.slot());
    }
}
