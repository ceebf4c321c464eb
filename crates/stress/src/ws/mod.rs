//! WebSocket on the client side (`--websocket[=PATH]`): each message one masked WebSocket
//! message, each echo verified as a message.
//!
//! * [`options`]: the `--websocket` and `--header` flags as plain data
//!   ([`WsOptions`](options::WsOptions)).
//! * [`session`]: one connection's WebSocket ([`WsSession`](session::WsSession)): the upgrade
//!   request and its answer, the frame header written before each staged message and the
//!   message masked in place, frame headers stripped from what arrives (the payload goes to
//!   the verifier), pings answered, the close handshake; no stream, no thread.
//! * [`probe`]: the upgrade made once before the load, so that a server that refuses it stops
//!   the run with its status line.
//!
//! The codec (frame headers, masking, the handshake's keys) is `ringport-ws`'s.

pub mod options;
pub mod probe;
pub mod session;
