//! What `/proc` says about a server process: CPU time (user and system) and memory.
//!
//! This module is responsible for reading and parsing `/proc/PID/stat` and `/proc/PID/status`.
//! The parsers are plain functions over text, unit-tested on fixed samples; [`sample`] reads a
//! live process.
//!
//! # Limits
//!
//! CPU time covers the process, all its threads and its process tree: the descendants alive at
//! each reading, and those already exited and reaped (their parents' `cutime`/`cstime`), so a
//! server that forks per connection (`socat ... fork`) is not reported as using no CPU. A child
//! that exits and is never waited for is lost to the count. Memory (RSS) is the process's own.
//! External servers are started with `sh -c 'exec ...'` so the measured process is the server
//! itself, not a shell.

use std::fs;
use std::io;
use std::time::{Duration, SystemTime};

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

/// Clock ticks per second of the `/proc` CPU counters (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
pub fn clock_ticks() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as u64,
        _ => 100,
    }
}

/// `utime` and `stime` (fields 14 and 15, in clock ticks) of a `/proc/PID/stat` line.
///
/// The command name (field 2) is in parentheses and may itself hold spaces or parentheses, so
/// fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<(u64, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    // After the name: state is field 3, so utime (14) is the 12th and stime (15) the 13th.
    let mut fields = rest.split_whitespace().skip(11);
    let utime = fields.next()?.parse().ok()?;
    let stime = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// The fields of a `/proc/PID/stat` line that [`tree_ticks`] needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatCpu {
    /// Parent pid (field 4).
    pub ppid: u32,
    /// User and system ticks of the process itself (fields 14 and 15).
    pub own: (u64, u64),
    /// User and system ticks of its waited-for children (fields 16 and 17).
    pub children: (u64, u64),
}

/// [`StatCpu`] of a `/proc/PID/stat` line.
pub fn parse_stat_cpu(text: &str) -> Option<StatCpu> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is the state (field 3): field n is f[n - 3].
    let num = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    Some(StatCpu {
        ppid: num(4)? as u32,
        own: (num(14)?, num(15)?),
        children: (num(16)?, num(17)?),
    })
}

/// User and system ticks of `root` and its process tree among `procs` (pid and parsed stat of
/// every process): each member's own ticks plus its reaped children's.
pub fn tree_ticks(root: u32, procs: &[(u32, StatCpu)]) -> Option<(u64, u64)> {
    procs.iter().find(|(pid, _)| *pid == root)?;
    let mut members = vec![root];
    let mut i = 0;
    while i < members.len() {
        let parent = members[i];
        members.extend(
            procs
                .iter()
                .filter(|(pid, s)| s.ppid == parent && *pid != parent)
                .map(|(pid, _)| *pid),
        );
        i += 1;
    }
    let mut total = (0, 0);
    for (_, s) in procs.iter().filter(|(pid, _)| members.contains(pid)) {
        total.0 += s.own.0 + s.children.0;
        total.1 += s.own.1 + s.children.1;
    }
    Some(total)
}

/// Every process's [`StatCpu`] now (processes that vanish while being read are left out).
fn all_stats() -> Vec<(u32, StatCpu)> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Some((pid, parse_stat_cpu(&text)?))
    })
    .collect()
}

/// `VmRSS` and `VmHWM` (KiB) of a `/proc/PID/status` text; 0 for a line that is missing.
pub fn parse_status(text: &str) -> (u64, u64) {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Reads the counters of process `pid` now.
///
/// # Errors
///
/// When the process is gone or `/proc` cannot be read.
pub fn sample(pid: u32, ticks_per_s: u64) -> io::Result<ProcSample> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let at = SystemTime::now();
    let (ut, st) = parse_stat(&stat).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected /proc/{pid}/stat"),
        )
    })?;
    let (rss_kib, hwm_kib) = parse_status(&status);
    // The whole process tree when it has one (a server that forks per connection).
    let (ut, st) = match parse_stat_cpu(&stat) {
        Some(own) if own.children != (0, 0) || has_children(pid) => {
            tree_ticks(pid, &all_stats()).unwrap_or((ut, st))
        }
        _ => (ut, st),
    };
    let tick = |t: u64| Duration::from_secs_f64(t as f64 / ticks_per_s as f64);
    Ok(ProcSample {
        at,
        user: tick(ut),
        system: tick(st),
        rss_kib,
        hwm_kib,
    })
}

/// Whether `pid` has a child process now (`/proc/PID/task/*/children`).
fn has_children(pid: u32) -> bool {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks
        .filter_map(Result::ok)
        .any(|t| fs::read_to_string(t.path().join("children")).is_ok_and(|c| !c.trim().is_empty()))
}

/// Busy CPU time of the whole machine, all CPUs, in clock ticks: the `cpu` line of `/proc/stat`
/// less idle and iowait (guest time is already inside user time).
pub fn parse_system_busy(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal
    Some(get(0) + get(1) + get(2) + get(5) + get(6) + get(7))
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
        let tick = |t: u64| Duration::from_secs_f64(t as f64 / ticks_per_s as f64);
        let busy = parse_system_busy(&fs::read_to_string("/proc/stat").ok()?)?;
        let mut processes = Duration::ZERO;
        for pid in pids {
            let (u, s) = parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
            processes += tick(u + s);
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
    fn stat_fields_counted_after_the_name() {
        let line =
            "4242 (ring port) (x) S 1 4242 4242 0 -1 4194560 120 0 0 0 731 205 0 0 20 0 3 0 \
                    99 1000 50 18446744073709551615";
        assert_eq!(parse_stat(line), Some((731, 205)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1 2"), None);
    }

    /// Issue 14, item 7: a server that forks per connection (socat) showed 0 CPU: its children
    /// were not counted.
    #[test]
    fn issue14_the_process_tree_is_counted() {
        let stat = |pid: u32, ppid: u32, own: (u64, u64), children: (u64, u64)| {
            let line = format!(
                "{pid} (socat) S {ppid} 1 1 0 -1 0 0 0 0 0 {} {} {} {} 20 0 1 0 99 1000 50",
                own.0, own.1, children.0, children.1
            );
            (pid, parse_stat_cpu(&line).unwrap())
        };
        let procs = [
            stat(10, 1, (1, 2), (30, 40)), // the server: its reaped children used 30 + 40
            stat(11, 10, (100, 200), (0, 0)), // a child serving a connection
            stat(12, 11, (5, 5), (0, 0)),  // its child
            stat(13, 1, (999, 999), (0, 0)), // not in the tree
            stat(14, 13, (999, 999), (0, 0)),
        ];
        assert_eq!(tree_ticks(10, &procs), Some((136, 247)));
        assert_eq!(tree_ticks(12, &procs), Some((5, 5)));
        assert_eq!(tree_ticks(99, &procs), None);
        assert_eq!(procs[1].1.ppid, 10);
    }

    #[test]
    fn status_rss_and_hwm() {
        let text =
            "Name:\tringport\nVmPeak:\t  9000 kB\nVmHWM:\t    5120 kB\nVmRSS:\t    4096 kB\n";
        assert_eq!(parse_status(text), (4096, 5120));
        assert_eq!(parse_status("Name: x\n"), (0, 0));
    }

    #[test]
    fn own_process_can_be_sampled() {
        let s = sample(std::process::id(), clock_ticks()).unwrap();
        assert!(s.rss_kib > 0 && s.hwm_kib >= s.rss_kib, "{s:?}");
    }

    #[test]
    fn system_busy_excludes_idle_and_iowait() {
        let stat = "cpu  100 5 50 9000 30 2 3 1 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(parse_system_busy(stat), Some(100 + 5 + 50 + 2 + 3 + 1));
        assert_eq!(parse_system_busy("intr 1\n"), None);
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
