//! What the process needs of the system that only `unsafe` can ask, behind safe functions.
//! Everything else the OS says (`/proc`, clock ticks, rlimits, the terminal, error classes) is
//! `ringport-os`'s, which needs no `unsafe`.
//!
//! - `windows`: console control (Ctrl-C, Ctrl-Break), the CPU times of this thread and
//!   process (forwarded by `ringport_os::cpu`), `cancel_io`;
//! - `linux`: `die_with_parent` (`PR_SET_PDEATHSIG` in a child before it runs);
//! - `alloc`: [`CountingAlloc`], the counting allocator for tests;
//! - `udp`: [`udp_gro`], [`udp_gso`] and [`udp_segment`], the UDP offloads of Linux (refused
//!   elsewhere);
//! - `mptcp`: [`stream_socket`], the TCP or Multipath TCP socket the server listens on and the
//!   clients connect with, and [`is_mptcp`], whether a connection speaks MPTCP;
//! - `outq`: [`unacked_bytes`], what a socket's peer has not acknowledged yet (`SIOCOUTQ`),
//!   for a close that loses none of it;
//! - `nowait` (Unix): [`peek_nowait`] and [`recv_nowait`], receives that never wait, for a
//!   short header whose bytes are likely there already.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::*;

mod alloc;
pub use alloc::CountingAlloc;

mod udp;
pub use udp::{udp_gro, udp_gso, udp_segment};

mod mptcp;
pub use mptcp::{is_mptcp, stream_socket};

mod outq;
pub use outq::unacked_bytes;

#[cfg(unix)]
mod nowait;
#[cfg(unix)]
pub use nowait::{peek_nowait, recv_nowait};
