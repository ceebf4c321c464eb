//! What the process needs of the system that only `unsafe` can ask, behind safe functions.
//! Everything else the OS says (`/proc`, clock ticks, rlimits, the terminal, error classes) is
//! `ringport-os`'s, which needs no `unsafe`.
//!
//! - `windows`: console control (Ctrl-C, Ctrl-Break), the CPU times of this thread and
//!   process (forwarded by `ringport_os::cpu`), `cancel_io`;
//! - `alloc`: [`CountingAlloc`], the counting allocator for tests.

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::*;

mod alloc;
pub use alloc::CountingAlloc;
