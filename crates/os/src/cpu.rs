//! CPU time (user plus system) of the calling thread and of this process, on every system; and
//! of another process or process tree, where `/proc` says it.
//!
//! On Linux the times come from `/proc/thread-self/stat` and `/proc/self/stat` (clock ticks, so
//! a resolution of 10 ms at the usual 100 ticks a second); on Windows from `GetThreadTimes` and
//! `GetProcessTimes` (100 ns units), through the port (`ringport_port::os`), the only home of
//! the project's `unsafe`.

use std::io;
use std::time::Duration;

use crate::{clock, proc};

/// CPU time split into user and system (kernel) time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTime {
    /// Time in user mode.
    pub user: Duration,
    /// Time in the kernel on the process's behalf.
    pub system: Duration,
}

impl CpuTime {
    /// User plus system time.
    pub fn total(&self) -> Duration {
        self.user + self.system
    }
}

/// CPU time (user + system) used so far by the calling thread.
///
/// # Errors
///
/// When the system does not say (no `/proc` on a Unix other than Linux).
pub fn thread_time() -> io::Result<Duration> {
    #[cfg(windows)]
    return ringport_port::os::thread_cpu_time();
    #[cfg(not(windows))]
    Ok(clock::ticks(
        proc::read_stat("/proc/thread-self/stat")?.ticks(),
    ))
}

/// CPU time (user + system) used so far by this whole process, all its threads.
///
/// # Errors
///
/// When the system does not say (no `/proc` on a Unix other than Linux).
pub fn process_time() -> io::Result<Duration> {
    #[cfg(windows)]
    return ringport_port::os::process_cpu_time();
    #[cfg(not(windows))]
    Ok(clock::ticks(proc::read_stat("/proc/self/stat")?.ticks()))
}

/// CPU time of process `pid`, all its threads (Linux: `/proc/PID/stat`).
///
/// # Errors
///
/// When the process is gone, or `/proc` cannot be read (not Linux).
pub fn of_process(pid: u32) -> io::Result<CpuTime> {
    let s = proc::stat(pid)?;
    Ok(CpuTime {
        user: clock::ticks(s.utime),
        system: clock::ticks(s.stime),
    })
}

/// CPU time of process `pid` and its process tree, the reaped children included (Linux; see
/// [`proc::tree_ticks_of`]).
///
/// # Errors
///
/// When the process is gone, or `/proc` cannot be read (not Linux).
pub fn of_tree(pid: u32) -> io::Result<CpuTime> {
    let (user, system) = proc::tree_ticks_of(pid)?;
    Ok(CpuTime {
        user: clock::ticks(user),
        system: clock::ticks(system),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spins until this thread's CPU clock has moved past `from` by more than a tick.
    fn burn_past(from: Duration) -> Duration {
        let limit = std::time::Instant::now() + Duration::from_secs(20);
        let mut x = 1u64;
        loop {
            for i in 0..100_000u64 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
            }
            let now = thread_time().unwrap();
            if now > from + Duration::from_millis(20) {
                return now;
            }
            assert!(
                std::time::Instant::now() < limit,
                "the thread's CPU time did not move"
            );
        }
    }

    #[test]
    fn this_thread_and_process_use_cpu_and_the_thread_is_part_of_the_process() {
        let start = thread_time().expect("the thread's CPU time is readable");
        let end = burn_past(start);
        assert!(end > start);
        let process = process_time().expect("the process's CPU time is readable");
        // Each is counted in whole ticks on Linux, and rounded on its own: one tick of slack.
        assert!(process + clock::ticks(1) >= end, "{process:?} < {end:?}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn another_process_is_read_through_proc() {
        let me = std::process::id();
        let own = of_process(me).unwrap();
        let tree = of_tree(me).unwrap();
        assert!(tree.user >= own.user && tree.system >= own.system);
        assert_eq!(own.total(), own.user + own.system);
        assert!(of_process(u32::MAX).is_err());
    }
}
