//! Linux: child processes that die with the thread that started them.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes the process `cmd` spawns receive SIGKILL when its parent dies, whatever ends the parent
/// (SIGTERM, or SIGKILL, which no handler sees): `PR_SET_PDEATHSIG`, set in the child between
/// `fork` and `exec`, and kept across the `exec`. A parent that died before then is noticed
/// (the child's parent is no longer this process) and the spawn fails.
///
/// The kernel sends the signal when the *thread* that spawned the child ends, not only when the
/// process does: spawn from a thread that lives as long as the child should (the main thread).
pub fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id() as libc::pid_t;
    let unused: libc::c_ulong = 0;
    let on_exec = move || {
        // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and changes nothing in this
        // process's memory; it is a plain system call, safe between fork and exec.
        let set = unsafe {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                unused,
                unused,
                unused,
            )
        };
        if set == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: getppid has no arguments and cannot fail.
        if unsafe { libc::getppid() } != parent {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        Ok(())
    };
    // SAFETY: `on_exec` runs in the child between fork and exec, where only async-signal-safe
    // work is allowed: it makes two system calls (prctl, getppid) and allocates nothing (an
    // `io::Error` from an OS error code is not allocated).
    unsafe {
        cmd.pre_exec(on_exec);
    }
}
