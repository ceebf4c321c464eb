//! Client CPU: a thread's own CPU time metered over its run, and the warning when a client
//! thread was saturated (the figures may then describe the client rather than the server).

use std::fs;
use std::io;
use std::time::{Duration, Instant};

/// A CPU share at or above this fraction of a thread's wall time marks it as saturated.
pub const CLIENT_BOUND_THRESHOLD: f64 = 0.90;

/// CPU use of one client thread over its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadCpu {
    /// Wall-clock time measured.
    pub wall: Duration,
    /// CPU time (user + system) the thread used in that time.
    pub cpu: Duration,
}

impl ThreadCpu {
    /// CPU time as a fraction of wall time (1.0 = one core fully busy).
    pub fn utilization(&self) -> f64 {
        if self.wall.is_zero() {
            0.0
        } else {
            self.cpu.as_secs_f64() / self.wall.as_secs_f64()
        }
    }
}

/// A warning naming the client threads whose CPU share reached `threshold`, if any did.
pub fn client_bound_warning(cpu: &[ThreadCpu], threshold: f64) -> Option<String> {
    let busy: Vec<f64> = cpu
        .iter()
        .map(ThreadCpu::utilization)
        .filter(|&u| u >= threshold)
        .collect();
    if busy.is_empty() {
        return None;
    }
    let peak = busy.iter().cloned().fold(0.0, f64::max);
    Some(format!(
        "client-bound: {} of {} client threads were at least {:.0}% busy (peak {:.0}%); \
         the figures may measure the client, not the server: pin client and server to \
         different cores (taskset), or add --threads if cores are free",
        busy.len(),
        cpu.len(),
        threshold * 100.0,
        peak * 100.0
    ))
}

/// Measures the CPU time the calling thread uses between [`CpuMeter::start`] and
/// [`CpuMeter::finish`]. Must be started and finished on the same thread.
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    wall: Instant,
    cpu: Option<Duration>,
}

impl CpuMeter {
    /// Starts measuring the calling thread.
    pub fn start() -> CpuMeter {
        CpuMeter {
            wall: Instant::now(),
            cpu: thread_cpu_time().ok(),
        }
    }

    /// Stops measuring; `None` if the thread's CPU time cannot be read (no `/proc`).
    pub fn finish(&self) -> Option<ThreadCpu> {
        let start = self.cpu?;
        let end = thread_cpu_time().ok()?;
        Some(ThreadCpu {
            wall: self.wall.elapsed(),
            cpu: end.saturating_sub(start),
        })
    }
}

/// CPU time (user + system) used so far by the calling thread, from `/proc/thread-self/stat`
/// (on Windows `GetThreadTimes`).
pub fn thread_cpu_time() -> io::Result<Duration> {
    #[cfg(windows)]
    return ringport_port::os::thread_cpu_time();
    #[cfg(not(windows))]
    read_stat_cpu("/proc/thread-self/stat")
}

/// CPU time (user + system) used so far by the whole process, from `/proc/self/stat` (on
/// Windows `GetProcessTimes`).
pub fn process_cpu_time() -> io::Result<Duration> {
    #[cfg(windows)]
    return ringport_port::os::process_cpu_time();
    #[cfg(not(windows))]
    read_stat_cpu("/proc/self/stat")
}

#[cfg_attr(windows, allow(dead_code))]
fn read_stat_cpu(path: &str) -> io::Result<Duration> {
    let text = fs::read_to_string(path)?;
    parse_stat_cpu(&text, clock_ticks_per_second())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("cannot parse {path}")))
}

/// utime + stime from the text of a `/proc/.../stat` file (fields 14 and 15, in clock ticks).
/// The command name (field 2) may hold spaces and parentheses, so fields are counted from the
/// last `)`.
fn parse_stat_cpu(text: &str, ticks_per_second: u64) -> Option<Duration> {
    let after = &text[text.rfind(')')? + 1..];
    // After the name: field 3 (state) is index 0, so utime (14) is index 11, stime (15) 12.
    let mut fields = after.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime + stime;
    let tps = ticks_per_second.max(1);
    Some(
        Duration::from_secs(ticks / tps)
            + Duration::from_nanos((ticks % tps) * 1_000_000_000 / tps),
    )
}

/// The kernel's USER_HZ (clock ticks per second of `/proc` times), read from the auxiliary vector
/// (`AT_CLKTCK`) so no `sysconf` call is needed; 100, Linux's value on every common architecture,
/// if it cannot be read.
pub fn clock_ticks_per_second() -> u64 {
    fs::read("/proc/self/auxv")
        .ok()
        .and_then(|auxv| parse_auxv_clktck(&auxv))
        .unwrap_or(100)
}

/// Finds `AT_CLKTCK` (17) in a native-endian auxiliary vector of word-sized pairs.
fn parse_auxv_clktck(auxv: &[u8]) -> Option<u64> {
    const AT_NULL: u64 = 0;
    const AT_CLKTCK: u64 = 17;
    const WORD: usize = std::mem::size_of::<usize>();
    let word = |b: &[u8]| -> u64 {
        let mut w = [0u8; WORD];
        w.copy_from_slice(b);
        usize::from_ne_bytes(w) as u64
    };
    for pair in auxv.chunks_exact(2 * WORD) {
        let (key, value) = (word(&pair[..WORD]), word(&pair[WORD..]));
        match key {
            AT_NULL => return None,
            AT_CLKTCK if value > 0 => return Some(value),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_a_hostile_command_name() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
        let line = "1234 (a) b (c) S 1 1 1 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 5 0 0";
        assert_eq!(parse_stat_cpu(line, 100), Some(Duration::from_secs(3)));
        assert_eq!(parse_stat_cpu(line, 1000), Some(Duration::from_millis(300)));
        assert_eq!(parse_stat_cpu("garbage", 100), None);
    }

    #[test]
    fn parses_clktck_from_auxv() {
        let mut auxv = Vec::new();
        for (k, v) in [(6usize, 4096usize), (17, 250), (0, 0)] {
            auxv.extend_from_slice(&k.to_ne_bytes());
            auxv.extend_from_slice(&v.to_ne_bytes());
        }
        assert_eq!(parse_auxv_clktck(&auxv), Some(250));
        assert_eq!(
            parse_auxv_clktck(&auxv[2 * std::mem::size_of::<usize>()..][..0]),
            None
        );
        assert_eq!(clock_ticks_per_second(), 100, "USER_HZ on Linux");
    }

    /// The meter counts the CPU the thread used, whatever share of a CPU the machine gave it:
    /// the thread spins until it has used 30 ms (read independently of the meter), and the
    /// meter must see at least that.
    #[test]
    fn a_busy_thread_is_seen_busy() {
        let meter = CpuMeter::start();
        let before = thread_cpu_time().expect("/proc/thread-self/stat is readable");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut x = 0u64;
        while thread_cpu_time().unwrap() < before + Duration::from_millis(30) {
            assert!(
                Instant::now() < deadline,
                "the thread never got 30 ms of CPU"
            );
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        let cpu = meter
            .finish()
            .expect("/proc/thread-self/stat (Windows: GetThreadTimes) is readable");
        assert!(cpu.cpu >= Duration::from_millis(30), "{cpu:?}");
        assert!(cpu.utilization() > 0.0, "{cpu:?}");
        // The kernel scales each count from the scheduler's runtime on its own, to whole
        // ticks: the process's may trail one thread's by a tick.
        let tick = Duration::from_secs(1) / clock_ticks_per_second() as u32;
        let process = process_cpu_time().unwrap();
        assert!(
            process + tick >= cpu.cpu,
            "process {process:?}, thread {cpu:?}"
        );
    }

    #[test]
    fn client_bound_warning_only_when_saturated() {
        let idle = ThreadCpu {
            wall: Duration::from_secs(10),
            cpu: Duration::from_secs(2),
        };
        let busy = ThreadCpu {
            wall: Duration::from_secs(10),
            cpu: Duration::from_millis(9700),
        };
        assert_eq!(client_bound_warning(&[idle, idle], 0.9), None);
        let w = client_bound_warning(&[idle, busy], 0.9).unwrap();
        assert!(w.starts_with("client-bound: 1 of 2"), "{w}");
        assert!(w.contains("97%"), "{w}");
    }
}
