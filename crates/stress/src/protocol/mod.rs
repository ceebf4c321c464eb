//! What goes over the wire: the bytes a connection sends and how what comes back is checked.
//!
//! * [`payload`]: the bytes of message `i` on connection `c`, appended to reusable buffers and
//!   regenerated for checking.
//! * [`echo`]: the echo verifier, every echoed byte checked against what was sent.
//! * [`script`]: request/response mode's requests compiled into the script a connection runs.
//! * [`reply`]: request/response mode's replies framed and checked, per connection.
//! * [`text`]: bytes as text: escapes, hex, and bytes shown back in messages.

pub mod echo;
pub mod payload;
pub mod reply;
pub mod script;
pub mod text;
