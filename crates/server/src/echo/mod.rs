//! The echo protocol of one connection (RFC 862 over TCP) as plain state machines, one per way
//! of receiving.
//!
//! No sockets, no buffers: [`Echo`] is told what the last operation did and answers with the
//! next [`Step`]. The server backends only carry the steps out, so every rule below is tested
//! here without a socket:
//!
//! - **Bounded memory.** One buffer per connection: the connection receives only when the
//!   previous chunk has been echoed completely. A peer that writes and never reads stalls its own
//!   connection (the kernel's socket buffers fill), and costs the server one buffer.
//! - **Partial sends** continue where they stopped, in order.
//! - **Half-close.** After the peer's FIN nothing is left unechoed (the buffer is empty whenever
//!   a receive is asked for), so the connection closes.
//! - **Draining** (graceful shutdown): a receive waiting for data is cancelled; from then on
//!   receives do not wait, so whatever the peer already sent is echoed and the connection closes
//!   when no byte is left.
//! - **Forced close** (drain timeout): whatever is in flight is cancelled and the connection
//!   closes.
//! - **Timeouts**: [`Echo::waiting`] tells whether the connection waits for the peer's bytes
//!   (the idle timeout applies) or for the peer to read its echo (the write timeout applies);
//!   [`Echo::expire`] closes it the way a forced close does.
//!
//! [`MultiEcho`] keeps these rules for a connection whose receive stays armed while its echo is
//! sent (the completion model's multishot receives into pooled buffers): its bound is on the
//! bytes and buffers queued, not one buffer.
//!
//! # Files
//!
//! - this one: the rules, and what both state machines share ([`SendResult`], [`Waiting`]).
//! - `single_buffer`: [`Echo`], one buffer and one operation in flight per connection (the
//!   blocking models).
//! - `multishot`: [`MultiEcho`], a multishot receive into the port's pooled buffers and a
//!   bounded queue of chunks waiting for their echo (the completion model).
//! - `websocket`: [`WsEcho`](websocket::WsEcho), the WebSocket echo (`serve --websocket`) on
//!   bytes in and bytes out, for every model.

mod multishot;
mod single_buffer;
pub mod websocket;

pub use multishot::{Arrived, Bounds, MultiEcho, RecvMode, Todo};
pub use single_buffer::{Echo, RecvResult, Step};

/// What a connection waits for, which decides the timeout that applies to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// A receive waits for the peer's next bytes: the idle timeout applies.
    PeerData,
    /// An echo is pending: the peer must read for it to progress; the write timeout applies.
    PeerReading,
    /// Nothing the peer controls (a receive that does not wait, or the close).
    Nothing,
}

/// How a send ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendResult {
    /// `n` bytes left (`0` counts as a failure: it would loop forever).
    Sent(usize),
    /// Reset, broken pipe, cancellation or another error.
    Failed,
}
