//! Client CPU: a thread's own CPU time metered over its run, and the warning when a client
//! thread was saturated (the figures may then describe the client rather than the server).

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
            cpu: ringport_os::cpu::thread_time().ok(),
        }
    }

    /// Stops measuring; `None` if the thread's CPU time cannot be read (no `/proc`).
    pub fn finish(&self) -> Option<ThreadCpu> {
        let start = self.cpu?;
        let end = ringport_os::cpu::thread_time().ok()?;
        Some(ThreadCpu {
            wall: self.wall.elapsed(),
            cpu: end.saturating_sub(start),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The meter counts the CPU the thread used, whatever share of a CPU the machine gave it:
    /// the thread spins until it has used 30 ms (read independently of the meter), and the
    /// meter must see at least that.
    #[test]
    fn a_busy_thread_is_seen_busy() {
        let meter = CpuMeter::start();
        let before = ringport_os::cpu::thread_time().expect("/proc/thread-self/stat is readable");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut x = 0u64;
        while ringport_os::cpu::thread_time().unwrap() < before + Duration::from_millis(30) {
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
        let tick = Duration::from_secs(1) / ringport_os::clock::ticks_per_second() as u32;
        let process = ringport_os::cpu::process_time().unwrap();
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
