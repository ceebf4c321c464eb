//! `seccomp-exec -- CMD ARGS...`: runs `CMD` with io_uring blocked.
//!
//! Installs a seccomp filter under which `io_uring_setup`, `io_uring_enter` and
//! `io_uring_register` fail with `EPERM` (what Docker's default profile does) and every other
//! system call is allowed, then replaces itself with `CMD`. The filter is inherited by `CMD`, its
//! threads and its children, and cannot be removed. `no_new_privs` is set, as seccomp requires
//! of an unprivileged process.
//!
//! It exists to test ringport's epoll fallback on a machine where io_uring works:
//!
//! ```text
//! seccomp-exec -- ringport serve --port 0             # auto: falls back to epoll, says why
//! seccomp-exec -- ringport serve --backend uring      # fails: io_uring blocked by seccomp
//! ```
//!
//! # Exit status
//!
//! That of `CMD`; 2 for a usage error, 1 when the filter cannot be installed, 127 when `CMD`
//! cannot be found, 126 when it cannot be run.

#![forbid(unsafe_code)]

#[cfg(target_os = "linux")]
mod linux;

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    linux::main()
}

/// seccomp is Linux's: elsewhere the helper says so in one line and fails.
#[cfg(not(target_os = "linux"))]
fn main() -> std::process::ExitCode {
    eprintln!("seccomp-exec: seccomp filters exist only on Linux; nothing to run here");
    std::process::ExitCode::from(1)
}
