//! A server process's `/proc` counters over a run: readings ([`sample`], [`CpuSnapshot`]) and
//! what they say between two instants ([`cpu_between`], [`peak_rss_kib`]).
//!
//! This module is responsible for turning readings into a run's figures; reading and parsing
//! `/proc` itself is `ringport_os::proc`'s.
//!
//! # Limits
//!
//! CPU time covers the process, all its threads and its process tree (see
//! `ringport_os::proc::tree_ticks_of`: the descendants alive at each reading, and those already
//! exited and reaped), so a server that forks per connection (`socat ... fork`) is not reported
//! as using no CPU. A child that exits and is never waited for is lost to the count. Memory
//! (RSS) is the process's own. External servers are started with `sh -c 'exec ...'` so the
//! measured process is the server itself, not a shell.

use std::io;
use std::time::{Duration, SystemTime};

use ringport_os::{clock, proc};

/// One reading of a process's counters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcSample {
    /// When it was read.
    pub at: SystemTime,
    /// CPU time in user mode, all threads.
    pub user: Duration,
    /// CPU time in the kernel on the process's behalf, all threads.
    pub system: Duration,
    /// Resident set size now, KiB (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident set size so far, KiB (`VmHWM`).
    pub hwm_kib: u64,
}

/// Clock ticks per second of the `/proc` CPU counters (`ringport_os::clock::ticks_per_second`).
pub fn clock_ticks() -> u64 {
    clock::ticks_per_second()
}

/// Reads the counters of process `pid` now (CPU time of its whole tree when it has one).
///
/// # Errors
///
/// When the process is gone or `/proc` cannot be read.
pub fn sample(pid: u32, ticks_per_s: u64) -> io::Result<ProcSample> {
    let (ut, st) = proc::tree_ticks_of(pid)?;
    let memory = proc::memory(pid)?;
    let at = SystemTime::now();
    Ok(ProcSample {
        at,
        user: clock::ticks_at(ut, ticks_per_s),
        system: clock::ticks_at(st, ticks_per_s),
        rss_kib: memory.rss_kib,
        hwm_kib: memory.hwm_kib,
    })
}

/// What the machine and one process used between two readings: for telling the CPU the
/// benchmark used from the CPU other programs took meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct CpuSnapshot {
    at: std::time::Instant,
    system_busy: Duration,
    processes: Duration,
}

impl CpuSnapshot {
    /// Reads the machine's busy time and the CPU time of `pids` (each process with all its
    /// threads) now.
    pub fn take(pids: &[u32], ticks_per_s: u64) -> Option<CpuSnapshot> {
        let tick = |t: u64| clock::ticks_at(t, ticks_per_s);
        let busy = proc::system_busy_ticks().ok()?;
        let mut processes = Duration::ZERO;
        for &pid in pids {
            processes += tick(proc::stat(pid).ok()?.ticks());
        }
        Some(CpuSnapshot {
            at: std::time::Instant::now(),
            system_busy: tick(busy),
            processes,
        })
    }

    /// CPU used by everything but the watched processes since `earlier`, in percent of one
    /// CPU.
    pub fn others_pct_since(&self, earlier: &CpuSnapshot) -> f64 {
        let wall = self.at.duration_since(earlier.at).as_secs_f64();
        if wall <= 0.0 {
            return 0.0;
        }
        let busy = self.system_busy.saturating_sub(earlier.system_busy);
        let ours = self.processes.saturating_sub(earlier.processes);
        100.0 * busy.saturating_sub(ours).as_secs_f64() / wall
    }
}

/// CPU time (user, system) at instant `at`, linearly interpolated between the samples around it
/// (clamped to the first or last sample outside their span). `samples` are in time order.
pub fn cpu_at(samples: &[ProcSample], at: SystemTime) -> Option<(Duration, Duration)> {
    let first = samples.first()?;
    let last = samples.last()?;
    if at <= first.at {
        return Some((first.user, first.system));
    }
    if at >= last.at {
        return Some((last.user, last.system));
    }
    let i = samples.partition_point(|s| s.at <= at);
    let (a, b) = (&samples[i - 1], &samples[i]);
    let span = b.at.duration_since(a.at).unwrap_or_default().as_secs_f64();
    let f = if span > 0.0 {
        at.duration_since(a.at).unwrap_or_default().as_secs_f64() / span
    } else {
        0.0
    };
    let lerp = |x: Duration, y: Duration| {
        Duration::from_secs_f64(x.as_secs_f64() + (y.as_secs_f64() - x.as_secs_f64()) * f)
    };
    Some((lerp(a.user, b.user), lerp(a.system, b.system)))
}

/// CPU time (user, system) used between `from` and `to`, from periodic samples.
pub fn cpu_between(
    samples: &[ProcSample],
    from: SystemTime,
    to: SystemTime,
) -> Option<(Duration, Duration)> {
    let (u0, s0) = cpu_at(samples, from)?;
    let (u1, s1) = cpu_at(samples, to)?;
    Some((u1.saturating_sub(u0), s1.saturating_sub(s0)))
}

/// The peak resident set size seen in `samples`, KiB: the largest `VmHWM`, or of `VmRSS` where
/// the kernel does not report a high-water mark.
pub fn peak_rss_kib(samples: &[ProcSample]) -> u64 {
    samples
        .iter()
        .map(|s| s.hwm_kib.max(s.rss_kib))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_can_be_sampled() {
        let s = sample(std::process::id(), clock_ticks()).unwrap();
        assert!(s.rss_kib > 0 && s.hwm_kib >= s.rss_kib, "{s:?}");
    }

    #[test]
    fn what_others_used_is_never_negative() {
        let a = CpuSnapshot::take(&[std::process::id()], clock_ticks()).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        let b = CpuSnapshot::take(&[std::process::id()], clock_ticks()).unwrap();
        assert!(b.others_pct_since(&a) >= 0.0);
    }

    fn at(ms: u64, user_ms: u64, sys_ms: u64) -> ProcSample {
        ProcSample {
            at: SystemTime::UNIX_EPOCH + Duration::from_millis(ms),
            user: Duration::from_millis(user_ms),
            system: Duration::from_millis(sys_ms),
            rss_kib: ms,
            hwm_kib: 0,
        }
    }

    #[test]
    fn cpu_is_interpolated_inside_and_clamped_outside() {
        let s = [at(1000, 0, 0), at(2000, 100, 400), at(3000, 300, 800)];
        let t = |ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
        let (u, sy) = cpu_between(&s, t(1500), t(2500)).unwrap();
        assert_eq!(u.as_millis(), 150);
        assert_eq!(sy.as_millis(), 400);
        let (u, sy) = cpu_between(&s, t(0), t(9000)).unwrap();
        assert_eq!((u.as_millis(), sy.as_millis()), (300, 800));
        assert_eq!(cpu_between(&[], t(0), t(1)), None);
        assert_eq!(peak_rss_kib(&s), 3000);
    }
}
