//! # ringport-ws: the WebSocket protocol (RFC 6455) as plain functions, no sockets
//!
//! Everything here works on byte slices the caller owns (sans-io): the server's echo and the
//! load generator's client both drive it over their own buffers and sockets. Nothing allocates
//! per frame; the only allocations are the caller's `Vec` for a handshake head.
//!
//! # Modules
//!
//! - [`FrameHeader`], [`Opcode`], [`FrameError`]: a frame's header, parsed from a prefix of the
//!   received bytes and encoded into at most [`MAX_HEADER_LEN`] bytes.
//! - [`apply_mask`]: the client-to-server masking (XOR), for payloads split across reads.
//! - [`Utf8Stream`]: UTF-8 validation of a text message across fragments and reads.
//! - [`close`]: the close codes and the close frame's payload.
//! - [`handshake`]: the opening handshake, server side (request, 101 response, refusals) and
//!   client side (request, response check); [`accept_key`] and [`client_key`].
#![forbid(unsafe_code)]

pub mod close;
mod frame;
pub mod handshake;
mod keys;
mod mask;
mod utf8;

pub use frame::{FrameError, FrameHeader, Opcode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
pub use keys::{accept_key, client_key, GUID};
pub use mask::apply_mask;
pub use utf8::Utf8Stream;
