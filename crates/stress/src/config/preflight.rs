//! The pre-flight check: can this machine hold the run, before anything is opened?
//!
//! This module is responsible for checking the system limits a run of `--connections` needs and
//! fixing what the process may fix itself: enough file descriptors (`RLIMIT_NOFILE`, the soft
//! limit raised where allowed) and enough ephemeral ports, spreading connections over several
//! source addresses (`127.0.0.x` on loopback, or `--source-ip`) when one address cannot hold them
//! all. What it cannot fix is a [`PreflightError`] that says what to change.
//!
//! The decisions themselves are pure functions ([`plan_fd_limit`], [`plan_sources`]) so they can
//! be tested without changing the machine; [`preflight`] only gathers the facts and applies the
//! plan.

use std::fs;
use std::net::{IpAddr, Ipv4Addr};

use super::options::StressConfig;

/// File descriptors reserved beyond one per connection: stdio, rings, eventfds, log and output
/// files.
pub const FD_OVERHEAD: u64 = 64;
/// File descriptors reserved per client thread (its port and wake-up descriptors).
pub const FD_PER_THREAD: u64 = 4;

/// A pre-flight check that cannot be satisfied; the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreflightError {
    /// Not enough file descriptors and the limit could not be raised.
    #[error(
        "{connections} connections need about {needed} file descriptors but the limit is {soft} \
         (hard limit {hard}) and cannot be raised here: run `ulimit -n {needed}` as a user allowed \
         to (or raise `nofile` in /etc/security/limits.conf, or LimitNOFILE= in a systemd unit), \
         or use fewer --connections"
    )]
    FileDescriptors {
        /// Connections asked for.
        connections: usize,
        /// Descriptors needed.
        needed: u64,
        /// Soft limit.
        soft: u64,
        /// Hard limit.
        hard: u64,
    },
    /// Not enough ephemeral ports on the source addresses available.
    #[error(
        "{connections} connections to {target} need {needed} source addresses (one holds {per_source} \
         connections to one destination, net.ipv4.ip_local_port_range = {lo} {hi}) but {available} \
         {available_what}: {advice}"
    )]
    Ports {
        /// Connections asked for.
        connections: usize,
        /// The destination.
        target: String,
        /// Source addresses needed.
        needed: usize,
        /// Connections one source address can hold to the destination.
        per_source: u64,
        /// Start of the ephemeral port range.
        lo: u16,
        /// End of the ephemeral port range.
        hi: u16,
        /// Source addresses available.
        available: usize,
        /// What `available` counts ("--source-ip addresses were given", ...).
        available_what: String,
        /// What to change.
        advice: String,
    },
    /// More descriptors than the kernel lets any process hold (`fs.nr_open`): no `ulimit -n`
    /// can give them.
    #[error(
        "{connections} connections need about {needed} file descriptors, more than any process \
         may hold here (fs.nr_open = {nr_open}): raise fs.nr_open first (sysctl -w \
         fs.nr_open={needed}, as root), or split the connections over processes with \
         --segment I/N"
    )]
    BeyondNrOpen {
        /// Connections asked for.
        connections: usize,
        /// Descriptors needed.
        needed: u64,
        /// The kernel's per-process maximum.
        nr_open: u64,
    },
    /// A fact could not be read.
    #[error("pre-flight check: cannot read {what}: {detail}")]
    Unreadable {
        /// What could not be read.
        what: String,
        /// Why.
        detail: String,
    },
}

/// What to do about `RLIMIT_NOFILE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdPlan {
    /// The soft limit suffices.
    Enough,
    /// Raise the soft limit to this (at most the hard limit).
    RaiseSoft(u64),
    /// Raise both limits to this (allowed only with CAP_SYS_RESOURCE; may fail).
    RaiseHard(u64),
}

/// File descriptors a run of `connections` connections on `threads` threads needs.
pub fn fds_needed(connections: usize, threads: usize) -> u64 {
    connections as u64 + FD_PER_THREAD * threads as u64 + FD_OVERHEAD
}

/// Refuses a run that needs more descriptors than `nr_open` (the kernel's per-process
/// maximum, when known) allows.
///
/// # Errors
///
/// [`PreflightError::BeyondNrOpen`].
pub fn check_nr_open(
    connections: usize,
    needed: u64,
    nr_open: Option<u64>,
) -> Result<(), PreflightError> {
    match nr_open {
        Some(nr_open) if needed > nr_open => Err(PreflightError::BeyondNrOpen {
            connections,
            needed,
            nr_open,
        }),
        _ => Ok(()),
    }
}

/// Decides what to do about the descriptor limit: nothing, raise the soft limit, or try the hard.
pub fn plan_fd_limit(needed: u64, soft: u64, hard: u64) -> FdPlan {
    if soft >= needed {
        FdPlan::Enough
    } else if hard >= needed {
        FdPlan::RaiseSoft(needed)
    } else {
        FdPlan::RaiseHard(needed)
    }
}

/// Connections one source address can hold to one destination address and port: one per
/// ephemeral port in the inclusive range `lo..=hi`.
pub fn ports_per_source(lo: u16, hi: u16) -> u64 {
    if hi < lo {
        0
    } else {
        u64::from(hi - lo) + 1
    }
}

/// Parses `/proc/sys/net/ipv4/ip_local_port_range` ("32768\t60999").
pub fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let mut it = text.split_whitespace().map(str::parse::<u16>);
    let lo = it.next()?.ok()?;
    let hi = it.next()?.ok()?;
    Some((lo, hi))
}

/// Chooses the source addresses for `connections` connections to `target` when one address holds
/// `per_source`: an empty list when one default address suffices and none were given, the given
/// `source_ips` when they suffice, or `127.0.0.1`, `127.0.0.2`, ... for a loopback target.
///
/// # Errors
///
/// [`PreflightError::Ports`] with advice when the addresses available cannot hold them all.
pub fn plan_sources(
    connections: usize,
    target: IpAddr,
    target_port: u16,
    source_ips: &[IpAddr],
    (lo, hi): (u16, u16),
) -> Result<Vec<IpAddr>, PreflightError> {
    let per_source = ports_per_source(lo, hi);
    let needed = if per_source == 0 {
        usize::MAX
    } else {
        (connections as u64).div_ceil(per_source) as usize
    };
    let widen = "or widen the range: sysctl -w net.ipv4.ip_local_port_range=\"1024 65535\"";
    let error = |available: usize, available_what: &str, advice: String| PreflightError::Ports {
        connections,
        target: format!("{}", std::net::SocketAddr::new(target, target_port)),
        needed,
        per_source,
        lo,
        hi,
        available,
        available_what: available_what.to_string(),
        advice,
    };
    if !source_ips.is_empty() {
        if source_ips.len() >= needed {
            return Ok(source_ips.to_vec());
        }
        return Err(error(
            source_ips.len(),
            "--source-ip addresses were given",
            format!(
                "give at least {needed} --source-ip addresses, {widen}, or use fewer --connections"
            ),
        ));
    }
    if needed <= 1 {
        return Ok(Vec::new());
    }
    match target {
        IpAddr::V4(v4) if v4.is_loopback() => {
            // 127.0.0.1 ..= 127.0.0.254 are all local on Linux without configuration.
            if needed <= 254 {
                Ok((1..=needed as u8)
                    .map(|x| IpAddr::V4(Ipv4Addr::new(127, 0, 0, x)))
                    .collect())
            } else {
                Err(error(
                    254,
                    "loopback addresses 127.0.0.1-254 are used",
                    format!("{widen}, or use fewer --connections"),
                ))
            }
        }
        _ => Err(error(
            1,
            "source address is known",
            format!(
                "give {needed} local addresses with --source-ip (each must be configured on an \
                 interface), {widen}, or use fewer --connections"
            ),
        )),
    }
}

/// The outcome of a successful pre-flight check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preflight {
    /// File descriptors the run needs.
    pub fds_needed: u64,
    /// The soft `RLIMIT_NOFILE` found before the check.
    pub fd_soft_before: u64,
    /// The soft limit after the check (raised if it was too low).
    pub fd_soft: u64,
    /// The ephemeral port range.
    pub port_range: (u16, u16),
    /// Source addresses to bind to, round-robin over connections; empty means "let the kernel
    /// choose".
    pub source_ips: Vec<IpAddr>,
    /// What was changed, for the log (e.g. "raised the soft fd limit from 1024 to 2114").
    pub notes: Vec<String>,
}

/// Reads the system limits and applies [`plan_fd_limit`] and [`plan_sources`] for a run of
/// `config` against the resolved server address `target`, before anything is opened. Raises the
/// soft descriptor limit when the hard limit allows (or the process may raise the hard one).
///
/// # Errors
///
/// A [`PreflightError`] that says exactly what to change.
pub fn preflight(config: &StressConfig, target: IpAddr) -> Result<Preflight, PreflightError> {
    // A --segment opens only its share of the connections.
    let own = config.own_connections().len();
    let needed = fds_needed(own, config.effective_threads());
    let (soft, hard) = ringport_os::limits::nofile().map_err(|e| PreflightError::Unreadable {
        what: "RLIMIT_NOFILE".into(),
        detail: e.to_string(),
    })?;
    // Above the kernel's per-process maximum, no limit can be raised far enough: say so
    // rather than advise a `ulimit -n` that would fail.
    let nr_open = fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    check_nr_open(own, needed, nr_open)?;
    let mut notes = Vec::new();
    let fd_error = PreflightError::FileDescriptors {
        connections: own,
        needed,
        soft,
        hard,
    };
    let fd_soft = match plan_fd_limit(needed, soft, hard) {
        FdPlan::Enough => soft,
        FdPlan::RaiseSoft(to) => {
            ringport_os::limits::set_nofile(to, hard).map_err(|_| fd_error.clone())?;
            notes.push(format!("raised the soft fd limit from {soft} to {to}"));
            to
        }
        FdPlan::RaiseHard(to) => {
            ringport_os::limits::set_nofile(to, to).map_err(|_| fd_error.clone())?;
            notes.push(format!(
                "raised the fd limit from {soft} (hard {hard}) to {to}"
            ));
            to
        }
    };
    let range_path = "/proc/sys/net/ipv4/ip_local_port_range";
    let port_range = fs::read_to_string(range_path)
        .ok()
        .and_then(|t| parse_port_range(&t))
        .ok_or_else(|| PreflightError::Unreadable {
            what: range_path.into(),
            detail: "missing or malformed".into(),
        })?;
    let source_ips = plan_sources(own, target, config.port, &config.source_ips, port_range)?;
    if config.source_ips.is_empty() && !source_ips.is_empty() {
        notes.push(format!(
            "spreading {} connections over {} source addresses ({} ... {})",
            own,
            source_ips.len(),
            source_ips[0],
            source_ips[source_ips.len() - 1]
        ));
    }
    Ok(Preflight {
        fds_needed: needed,
        fd_soft_before: soft,
        fd_soft,
        port_range,
        source_ips,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::options::test_config as cfg;

    /// `--connections 10000000` advised a `ulimit -n` above `fs.nr_open`, which no process may
    /// have; the error names the kernel's maximum instead.
    #[test]
    fn beyond_nr_open_names_the_kernel_limit() {
        let e = check_nr_open(10_000_000, 10_000_072, Some(1_048_576)).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("fs.nr_open = 1048576"), "{text}");
        assert!(!text.contains("ulimit"), "{text}");
        assert!(check_nr_open(1000, 1072, Some(1_048_576)).is_ok());
        assert!(
            check_nr_open(1000, 10_000_072, None).is_ok(),
            "unknown: the fd check decides"
        );
    }

    #[test]
    fn fd_plan() {
        assert_eq!(plan_fd_limit(100, 1024, 4096), FdPlan::Enough);
        assert_eq!(plan_fd_limit(2000, 1024, 4096), FdPlan::RaiseSoft(2000));
        assert_eq!(plan_fd_limit(5000, 1024, 4096), FdPlan::RaiseHard(5000));
        assert_eq!(fds_needed(1000, 2), 1000 + 8 + FD_OVERHEAD);
    }

    #[test]
    fn port_range_parsing() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some((32768, 60999)));
        assert_eq!(parse_port_range("bogus"), None);
        assert_eq!(ports_per_source(32768, 60999), 28232);
        assert_eq!(ports_per_source(10, 9), 0);
    }

    #[test]
    fn one_source_suffices_for_few_connections() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            plan_sources(28232, lo, 3333, &[], (32768, 60999)).unwrap(),
            Vec::<IpAddr>::new()
        );
    }

    #[test]
    fn loopback_spreads_over_127_0_0_x() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let s = plan_sources(100_000, lo, 3333, &[], (32768, 60999)).unwrap();
        assert_eq!(s.len(), 4, "100000 / 28232 rounds up to 4");
        assert_eq!(s[0], "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(s[3], "127.0.0.4".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn loopback_beyond_254_addresses_is_an_error() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let e = plan_sources(300, lo, 3333, &[], (60000, 60000)).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("need 300 source addresses"), "{text}");
        assert!(text.contains("ip_local_port_range"), "{text}");
    }

    #[test]
    fn remote_target_needs_source_ips_and_says_so() {
        let remote: IpAddr = "192.0.2.1".parse().unwrap();
        let e = plan_sources(50_000, remote, 80, &[], (32768, 60999)).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("--source-ip"), "{text}");
        assert!(text.contains("192.0.2.1:80"), "{text}");
        let two: Vec<IpAddr> = vec![
            "198.51.100.1".parse().unwrap(),
            "198.51.100.2".parse().unwrap(),
        ];
        assert_eq!(
            plan_sources(50_000, remote, 80, &two, (32768, 60999)).unwrap(),
            two
        );
        let e = plan_sources(90_000, remote, 80, &two, (32768, 60999)).unwrap_err();
        assert!(e.to_string().contains("at least 4 --source-ip"), "{e}");
    }

    #[test]
    fn preflight_on_this_machine_passes_for_a_small_run() {
        let c = StressConfig {
            connections: 10,
            ..cfg()
        };
        let p = preflight(&c, "127.0.0.1".parse().unwrap()).unwrap();
        assert!(p.fd_soft >= p.fds_needed);
        assert!(p.source_ips.is_empty());
        assert!(p.port_range.0 <= p.port_range.1);
    }
}
