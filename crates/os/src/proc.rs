//! What Linux's `/proc` says about a process: CPU time (of a process, or of its whole tree),
//! resident memory, open descriptors; and the machine's busy CPU time.
//!
//! The parsers ([`parse_stat`], [`parse_status`], [`parse_system_busy`]) are plain functions
//! over text, tested on fixed samples; the readers ([`stat`], [`memory`], [`fd_count`],
//! [`tree_ticks_of`], [`system_busy_ticks`]) read a live process. CPU times are in clock ticks
//! here; [`clock`](crate::clock) turns them into durations, and [`cpu`](crate::cpu) gives them
//! as durations directly.
//!
//! # Portability
//!
//! Linux only: on other systems every reader fails (`Unsupported`), even where a `/proc` path
//! can be opened (Wine maps `/` to the Linux root, whose `/proc` knows nothing of Windows
//! processes). The parsers work everywhere.
//!
//! # A process tree
//!
//! [`tree_ticks_of`] counts the process, all its threads and its descendants: those alive at the
//! reading, and those already exited and reaped (their parents' `cutime`/`cstime`), so a server
//! that forks per connection (`socat ... fork`) is not reported as using no CPU. A child that
//! exits and is never waited for is lost to the count.

use std::fs;
use std::io;

/// The CPU fields of one `/proc/PID/stat` line (times in clock ticks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stat {
    /// Parent pid (field 4).
    pub ppid: u32,
    /// Ticks in user mode, all threads (field 14, `utime`).
    pub utime: u64,
    /// Ticks in the kernel on the process's behalf, all threads (field 15, `stime`).
    pub stime: u64,
    /// User ticks of its exited and waited-for children (field 16, `cutime`).
    pub cutime: u64,
    /// System ticks of its exited and waited-for children (field 17, `cstime`).
    pub cstime: u64,
}

impl Stat {
    /// User plus system ticks of the process itself.
    pub fn ticks(&self) -> u64 {
        self.utime + self.stime
    }
}

/// [`Stat`] of a `/proc/PID/stat` (or `/proc/thread-self/stat`) line; `None` for text that is
/// not one.
///
/// The command name (field 2) is in parentheses and may itself hold spaces or parentheses, so
/// fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // After the name: the state is field 3, so field n is at index n - 3.
    let mut fields = rest.split_whitespace();
    let mut next = |skip: usize| fields.nth(skip)?.parse::<u64>().ok();
    let ppid = next(1)?; // field 4
    let utime = next(9)?; // field 14
    let stime = next(0)?; // 15
    let cutime = next(0)?; // 16
    let cstime = next(0)?; // 17
    Some(Stat {
        ppid: u32::try_from(ppid).ok()?,
        utime,
        stime,
        cutime,
        cstime,
    })
}

/// Resident memory of a process, from `/proc/PID/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// Resident set size now, KiB (`VmRSS`; 0 when the line is missing).
    pub rss_kib: u64,
    /// Peak resident set size so far, KiB (`VmHWM`; 0 when the line is missing).
    pub hwm_kib: u64,
}

/// `VmRSS` and `VmHWM` of a `/proc/PID/status` text; 0 for a line that is missing.
pub fn parse_status(text: &str) -> Memory {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Memory {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
    }
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

/// The text of a `/proc` file (Linux only).
fn read_text(path: &str) -> io::Result<String> {
    if cfg!(target_os = "linux") {
        fs::read_to_string(path)
    } else {
        Err(unsupported())
    }
}

/// The entries of a `/proc` directory (Linux only).
fn read_dir(path: &str) -> io::Result<fs::ReadDir> {
    if cfg!(target_os = "linux") {
        fs::read_dir(path)
    } else {
        Err(unsupported())
    }
}

fn unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "no /proc on this system (Linux only)",
    )
}

fn invalid(path: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("unexpected {path}"))
}

/// Reads and parses a stat file: `/proc/PID/stat`, `/proc/self/stat`, `/proc/thread-self/stat`.
pub(crate) fn read_stat(path: &str) -> io::Result<Stat> {
    parse_stat(&read_text(path)?).ok_or_else(|| invalid(path))
}

/// [`Stat`] of process `pid` now.
///
/// # Errors
///
/// When the process is gone, or `/proc` cannot be read (not Linux).
pub fn stat(pid: u32) -> io::Result<Stat> {
    read_stat(&format!("/proc/{pid}/stat"))
}

/// [`Memory`] of process `pid` now.
///
/// # Errors
///
/// When the process is gone, or `/proc` cannot be read (not Linux).
pub fn memory(pid: u32) -> io::Result<Memory> {
    Ok(parse_status(&read_text(&format!("/proc/{pid}/status"))?))
}

/// Descriptors process `pid` has open now (the entries of `/proc/PID/fd`).
///
/// # Errors
///
/// When the process is gone, is not ours to inspect, or `/proc` cannot be read (not Linux).
pub fn fd_count(pid: u32) -> io::Result<usize> {
    Ok(read_dir(&format!("/proc/{pid}/fd"))?.count())
}

/// Whether `pid` has a child process now (`/proc/PID/task/*/children`).
pub fn has_children(pid: u32) -> bool {
    let Ok(tasks) = read_dir(&format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks
        .filter_map(Result::ok)
        .any(|t| fs::read_to_string(t.path().join("children")).is_ok_and(|c| !c.trim().is_empty()))
}

/// Every process's [`Stat`] now, with its pid (processes that vanish while being read are left
/// out; empty where `/proc` cannot be read).
pub fn all_stats() -> Vec<(u32, Stat)> {
    let Ok(dir) = read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        Some((pid, stat(pid).ok()?))
    })
    .collect()
}

/// User and system ticks of `root` and its process tree among `procs` (pid and stat of every
/// process): each member's own ticks plus its reaped children's. `None` when `root` is not
/// among `procs`.
pub fn tree_ticks(root: u32, procs: &[(u32, Stat)]) -> Option<(u64, u64)> {
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
        total.0 += s.utime + s.cutime;
        total.1 += s.stime + s.cstime;
    }
    Some(total)
}

/// User and system ticks of process `pid` and its tree now (see the module's notes): the
/// process's own when it has no children, alive or reaped (one file read), else the whole tree
/// (every process is read).
///
/// # Errors
///
/// When the process is gone, or `/proc` cannot be read (not Linux).
pub fn tree_ticks_of(pid: u32) -> io::Result<(u64, u64)> {
    let own = stat(pid)?;
    if (own.cutime, own.cstime) == (0, 0) && !has_children(pid) {
        return Ok((own.utime, own.stime));
    }
    Ok(tree_ticks(pid, &all_stats()).unwrap_or((own.utime, own.stime)))
}

/// Busy CPU time of the whole machine in clock ticks now ([`parse_system_busy`] of
/// `/proc/stat`).
///
/// # Errors
///
/// When `/proc/stat` cannot be read (not Linux) or is not as expected.
pub fn system_busy_ticks() -> io::Result<u64> {
    parse_system_busy(&read_text("/proc/stat")?).ok_or_else(|| invalid("/proc/stat"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        let line = "4242 (ring port) (x) S 1 4242 4242 0 -1 4194560 120 0 0 0 731 205 7 3 20 0 3 \
                    0 99 1000 50 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                ppid: 1,
                utime: 731,
                stime: 205,
                cutime: 7,
                cstime: 3
            })
        );
        // A name that looks like fields, and one with a newline-free `) ` inside.
        let tricky = "77 (a) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16) R 9 77 77 0 -1 0 0 0 0 0 \
                      40 2 0 0 20 0 1 0 99";
        let s = parse_stat(tricky).unwrap();
        assert_eq!((s.ppid, s.utime, s.stime), (9, 40, 2));
        assert_eq!(s.ticks(), 42);
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1 2"), None, "cut short");
        assert_eq!(parse_stat(""), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_real_stat_files_parse() {
        // Read in this order, a thread's counters cannot exceed its process's read later.
        let thread = read_stat("/proc/thread-self/stat").unwrap();
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        let parsed = parse_stat(&own).expect("/proc/self/stat parses");
        let via_pid = stat(std::process::id()).unwrap();
        assert!(
            thread.ticks() <= parsed.ticks(),
            "a thread is part of its process"
        );
        assert!(via_pid.ticks() >= parsed.ticks(), "counters only grow");
        assert_eq!(parsed.ppid, via_pid.ppid);
        assert_eq!(parsed.ppid, std::os::unix::process::parent_id());
        assert!(stat(u32::MAX).is_err(), "no such process");
    }

    /// A server that forks per connection (socat) showed 0 CPU when its children were not
    /// counted.
    #[test]
    fn the_process_tree_is_counted() {
        let stat = |pid: u32, ppid: u32, own: (u64, u64), children: (u64, u64)| {
            let line = format!(
                "{pid} (socat) S {ppid} 1 1 0 -1 0 0 0 0 0 {} {} {} {} 20 0 1 0 99 1000 50",
                own.0, own.1, children.0, children.1
            );
            (pid, parse_stat(&line).unwrap())
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
    fn status_gives_rss_and_its_peak() {
        let text =
            "Name:\tringport\nVmPeak:\t  9000 kB\nVmHWM:\t    5120 kB\nVmRSS:\t    4096 kB\n";
        assert_eq!(
            parse_status(text),
            Memory {
                rss_kib: 4096,
                hwm_kib: 5120
            }
        );
        assert_eq!(parse_status("Name: x\n"), Memory::default());
    }

    #[test]
    fn system_busy_excludes_idle_and_iowait() {
        let stat = "cpu  100 5 50 9000 30 2 3 1 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(parse_system_busy(stat), Some(100 + 5 + 50 + 2 + 3 + 1));
        assert_eq!(parse_system_busy("intr 1\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_live_process_can_be_read() {
        let me = std::process::id();
        let m = memory(me).unwrap();
        assert!(m.rss_kib > 0 && m.hwm_kib >= m.rss_kib, "{m:?}");
        let own = stat(me).unwrap();
        let (u, s) = tree_ticks_of(me).unwrap();
        assert!(u >= own.utime && s >= own.stime, "{u} {s} {own:?}");
        assert!(system_busy_ticks().unwrap() > 0);
        // A child: its descriptors (its standard streams, and whatever this process inherited
        // without close-on-exec) are read, and it is part of our tree.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let fds = fd_count(child.id());
        let parent = stat(child.id()).map(|s| s.ppid);
        let children = has_children(me);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(fds.unwrap() >= 3, "its standard streams at least");
        assert_eq!(parent.unwrap(), me);
        assert!(children, "the child is seen");
        assert!(fd_count(child.id()).is_err(), "gone once reaped");
    }

    #[cfg(not(target_os = "linux"))]
    #[test]
    fn without_proc_the_readers_fail() {
        let unsupported = |e: io::Error| e.kind() == io::ErrorKind::Unsupported;
        assert!(stat(std::process::id()).is_err_and(unsupported));
        assert!(memory(std::process::id()).is_err_and(unsupported));
        assert!(fd_count(std::process::id()).is_err_and(unsupported));
        assert!(system_busy_ticks().is_err_and(unsupported));
        assert!(all_stats().is_empty());
    }
}
