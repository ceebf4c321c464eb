//! # ringport-os: what the operating system says, written once
//!
//! Every crate of ringport asks the system the same few questions: how much CPU a process, a
//! thread or a process tree has used, how much memory it holds, how many descriptors it has
//! open, how many clock ticks make a second, what the open-file limit is, and what a socket
//! error means. This crate answers each once, with no `unsafe` (system calls go through `nix`
//! on Unix; on Windows the few that need `unsafe`, the CPU times of this thread and process,
//! are the port's, `ringport_port::os`, and are forwarded from here).
//!
//! # Modules
//!
//! - [`proc`]: `/proc` on Linux: parsers of `/proc/PID/stat`, `/proc/PID/status` and
//!   `/proc/stat` (plain functions over text) and readings of a live process: CPU time of a
//!   process or its whole tree, resident memory, open descriptors.
//! - [`cpu`]: CPU time of the calling thread and of this process, on every system.
//! - [`clock`]: clock ticks per second of `/proc`'s CPU counters, and ticks as a [`Duration`].
//! - [`limits`]: the open-file limit (`RLIMIT_NOFILE`): read, set, raise; the CPUs available.
//! - [`errors`]: the classes of socket errors ([`ErrorClass`]: reset, broken pipe, refused,
//!   timed out, no local address) on Linux and Windows.
//! - [`human`]: figures for people: `1.50 MiB`, `2 connections`, `1.5s`.
//! - [`term`] (Unix): the terminal: foreground process group, waiting for input without reading.
//!
//! [`Duration`]: std::time::Duration

#![forbid(unsafe_code)]

pub mod clock;
pub mod cpu;
pub mod errors;
pub mod human;
pub mod limits;
pub mod proc;
#[cfg(unix)]
pub mod term;

pub use errors::{AcceptFailure, ErrorClass};
pub use human::{human_bytes, plural};
