//! The run's settings and the checks made before anything is opened.
//!
//! This module is responsible for [`StressConfig`], the plain-data form of every `ringport
//! stress` option (the CLI parses flags into it; no clap here), for rejecting bad combinations
//! with one-line messages ([`StressConfig::validate`]), and for the pre-flight check of the
//! system limits ([`preflight`]): enough file descriptors (`RLIMIT_NOFILE`, raised where allowed)
//! and enough ephemeral ports, spreading connections over several source addresses
//! (`127.0.0.x` on loopback, or `--source-ip`) when one address cannot hold them all.
//!
//! The decisions themselves are pure functions ([`plan_fd_limit`], [`plan_sources`]) so they can
//! be tested without changing the machine; [`preflight`] only gathers the facts and applies the
//! plan.

use std::fmt;
use std::fs;
use std::io::{self, BufRead, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use ringport_port::BackendChoice;

use crate::payload::PayloadSpec;

/// Default `--connections`.
pub const DEFAULT_CONNECTIONS: usize = 50;
/// Default `--count` when neither `--count` nor `--duration` is given.
pub const DEFAULT_COUNT: u64 = 1000;
/// Default message text when neither `--message` nor `--size` is given.
pub const DEFAULT_MESSAGE: &str = "Hello from ringport";
/// Default `--connect-rate`, connections opened per second.
pub const DEFAULT_CONNECT_RATE: f64 = 10_000.0;
/// Default `--timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `--port` (the article's).
pub const DEFAULT_PORT: u16 = 3333;
/// Largest `--size` accepted (64 MiB).
pub const MAX_MESSAGE_SIZE: usize = 64 << 20;
/// Largest amount of payload kept in flight over all connections (1 GiB): each in-flight byte is
/// held twice (send buffer and verifier copy).
pub const MAX_BYTES_IN_FLIGHT: u64 = 1 << 30;
/// File descriptors reserved beyond one per connection: stdio, rings, eventfds, log and output
/// files.
pub const FD_OVERHEAD: u64 = 64;
/// File descriptors reserved per client thread (its port and wake-up descriptors).
pub const FD_PER_THREAD: u64 = 4;

/// Where to write a machine-readable output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputTarget {
    /// `-`: standard output.
    Stdout,
    /// A file path.
    Path(PathBuf),
}

impl OutputTarget {
    /// `-` means standard output, anything else a path.
    pub fn parse(s: &str) -> OutputTarget {
        if s == "-" {
            OutputTarget::Stdout
        } else {
            OutputTarget::Path(PathBuf::from(s))
        }
    }
}

/// When the measured phase ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this many verified messages on every connection.
    Count(u64),
    /// After this much time (warm-up excluded).
    Duration(Duration),
}

/// How sends are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Workload {
    /// Closed loop: up to `pipeline` messages in flight per connection; the next goes as soon as
    /// the oldest has been echoed (pipeline 1 is send, wait, send).
    Closed {
        /// Messages in flight per connection.
        pipeline: usize,
    },
    /// Open loop: `rate` messages per second in total, on a fixed schedule, with up to
    /// `pipeline` in flight per connection.
    Rate {
        /// Messages per second over all connections.
        rate: f64,
        /// Messages in flight per connection at most.
        pipeline: usize,
    },
}

/// Every option of `ringport stress`, as plain data. Build it with [`StressConfig::default`] and
/// set fields, then call [`StressConfig::validate`].
#[derive(Debug, Clone, PartialEq)]
pub struct StressConfig {
    /// Server host name or address (default `127.0.0.1`).
    pub host: String,
    /// Server port (default 3333).
    pub port: u16,
    /// `--message TEXT`.
    pub message: Option<String>,
    /// `--size BYTES`.
    pub size: Option<usize>,
    /// `--connections N`: connections in total (default 50).
    pub connections: usize,
    /// `--connect-rate`: connections opened per second at most.
    pub connect_rate: f64,
    /// `--count N`: messages per connection.
    pub count: Option<u64>,
    /// `--duration SECS`.
    pub duration: Option<Duration>,
    /// `--rate MSGS_PER_S`: open loop, messages per second in total.
    pub rate: Option<f64>,
    /// `--pipeline K`: messages in flight per connection (default 1).
    pub pipeline: usize,
    /// `--warmup SECS`: load before measuring, excluded from every figure.
    pub warmup: Duration,
    /// `--threads N`: client threads (default: the number of CPUs).
    pub threads: usize,
    /// `--timeout SECS`: longest wait for an echo (or a connect) before it is an error.
    pub timeout: Duration,
    /// `--source-ip`: local addresses to spread connections over.
    pub source_ips: Vec<IpAddr>,
    /// `--json PATH|-`.
    pub json: Option<OutputTarget>,
    /// `--hdr-log PATH`.
    pub hdr_log: Option<PathBuf>,
    /// `--verbose`: print every reply, as the article's client does.
    pub verbose: bool,
    /// `--seed`: seed of the random payload.
    pub seed: u64,
    /// `--backend auto|uring|epoll`: the completion port's mechanism on the client side.
    pub backend: BackendChoice,
}

impl Default for StressConfig {
    fn default() -> Self {
        StressConfig {
            host: "127.0.0.1".to_string(),
            port: DEFAULT_PORT,
            message: None,
            size: None,
            connections: DEFAULT_CONNECTIONS,
            connect_rate: DEFAULT_CONNECT_RATE,
            count: None,
            duration: None,
            rate: None,
            pipeline: 1,
            warmup: Duration::ZERO,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            timeout: DEFAULT_TIMEOUT,
            source_ips: Vec::new(),
            json: None,
            hdr_log: None,
            verbose: false,
            seed: 0,
            backend: BackendChoice::Auto,
        }
    }
}

/// A bad option or combination; the message is one line and names the flags.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn bad<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

impl StressConfig {
    /// Checks every option and combination.
    ///
    /// # Errors
    ///
    /// A one-line message naming the offending flags, e.g. `--count and --duration cannot be
    /// used together`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.host.trim().is_empty() {
            return bad("HOST is empty");
        }
        if self.port == 0 {
            return bad("PORT 0 cannot be connected to; give the server's port");
        }
        if self.message.is_some() && self.size.is_some() {
            return bad("--message and --size cannot be used together");
        }
        if let Some(m) = &self.message {
            if m.is_empty() {
                return bad("--message is empty");
            }
        }
        match self.size {
            Some(0) => return bad("--size must be at least 1 byte"),
            Some(s) if s > MAX_MESSAGE_SIZE => {
                return bad(format!(
                    "--size {s} is larger than the limit of {MAX_MESSAGE_SIZE} bytes"
                ))
            }
            _ => {}
        }
        if self.count.is_some() && self.duration.is_some() {
            return bad("--count and --duration cannot be used together");
        }
        if self.count == Some(0) {
            return bad("--count must be at least 1");
        }
        if self.duration == Some(Duration::ZERO) {
            return bad("--duration must be greater than 0");
        }
        if self.connections == 0 {
            return bad("--connections must be at least 1");
        }
        if !(self.connect_rate.is_finite() && self.connect_rate > 0.0) {
            return bad("--connect-rate must be a positive number of connections per second");
        }
        if self.pipeline == 0 {
            return bad("--pipeline must be at least 1");
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return bad("--rate must be a positive number of messages per second");
            }
        }
        if self.threads == 0 {
            return bad("--threads must be at least 1");
        }
        if self.timeout.is_zero() {
            return bad("--timeout must be greater than 0");
        }
        let in_flight = (self.connections as u64)
            .saturating_mul(self.pipeline as u64)
            .saturating_mul(self.payload().max_len() as u64);
        if in_flight > MAX_BYTES_IN_FLIGHT {
            return bad(format!(
                "--connections x --pipeline x message size = {in_flight} bytes in flight, more than \
                 the limit of {MAX_BYTES_IN_FLIGHT}; lower one of them"
            ));
        }
        if let Some(ip) = self.source_ips.iter().find(|ip| ip.is_unspecified()) {
            return bad(format!("--source-ip {ip} is not a usable local address"));
        }
        Ok(())
    }

    /// The payload: `--message`, `--size` (with `--seed`), or the default message.
    pub fn payload(&self) -> PayloadSpec {
        match (&self.message, self.size) {
            (_, Some(size)) => PayloadSpec::Random {
                size,
                seed: self.seed,
            },
            (Some(m), None) => PayloadSpec::Text(m.clone()),
            (None, None) => PayloadSpec::Text(DEFAULT_MESSAGE.to_string()),
        }
    }

    /// When the measured phase ends: `--duration`, `--count`, or the default count.
    pub fn stop(&self) -> Stop {
        match (self.duration, self.count) {
            (Some(d), _) => Stop::Duration(d),
            (None, Some(n)) => Stop::Count(n),
            (None, None) => Stop::Count(DEFAULT_COUNT),
        }
    }

    /// The workload: open loop with `--rate`, closed loop otherwise.
    pub fn workload(&self) -> Workload {
        match self.rate {
            Some(rate) => Workload::Rate {
                rate,
                pipeline: self.pipeline,
            },
            None => Workload::Closed {
                pipeline: self.pipeline,
            },
        }
    }

    /// Client threads actually used: never more than there are connections.
    pub fn effective_threads(&self) -> usize {
        self.threads.clamp(1, self.connections.max(1))
    }

    /// Whether the payload and stop condition were both left unset, the case in which the
    /// article's client asks for them on a terminal.
    pub fn is_interactive_candidate(&self) -> bool {
        self.message.is_none()
            && self.size.is_none()
            && self.count.is_none()
            && self.duration.is_none()
    }
}

impl StressConfig {
    /// The article's way (issue item 6): asks on `output` for the message, the number of
    /// connections ("threads" in the article) and the number of sends, reading the answers from
    /// `input`, as its client did. An empty answer keeps the current value; a bad number is
    /// asked again. Call it only when [`is_interactive_candidate`](Self::is_interactive_candidate)
    /// holds and standard input is a terminal; the CLI decides that.
    ///
    /// # Errors
    ///
    /// I/O errors, and `UnexpectedEof` if the input ends before the questions are answered.
    pub fn ask<R: BufRead, W: Write>(&mut self, mut input: R, mut output: W) -> io::Result<()> {
        let mut line = String::new();
        let mut read = |output: &mut W, prompt: &str, line: &mut String| -> io::Result<()> {
            write!(output, "{prompt}")?;
            output.flush()?;
            line.clear();
            if input.read_line(line)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "no answer on standard input",
                ));
            }
            Ok(())
        };
        read(
            &mut output,
            &format!("Please enter message to be sent to the server [{DEFAULT_MESSAGE}]: "),
            &mut line,
        )?;
        let answer = line.trim_end_matches(['\r', '\n']);
        self.message = Some(if answer.is_empty() {
            DEFAULT_MESSAGE.to_string()
        } else {
            answer.to_string()
        });
        loop {
            read(
                &mut output,
                &format!(
                    "Please enter number of threads to be created [{}]: ",
                    self.connections
                ),
                &mut line,
            )?;
            match line.trim() {
                "" => break,
                t => match t.parse::<usize>() {
                    Ok(n) if n > 0 => {
                        self.connections = n;
                        break;
                    }
                    _ => writeln!(output, "a positive whole number, please")?,
                },
            }
        }
        loop {
            read(
                &mut output,
                &format!("Please enter number of times the messages needs to be sent [{DEFAULT_COUNT}]: "),
                &mut line,
            )?;
            match line.trim() {
                "" => {
                    self.count = Some(DEFAULT_COUNT);
                    break;
                }
                t => match t.parse::<u64>() {
                    Ok(n) if n > 0 => {
                        self.count = Some(n);
                        break;
                    }
                    _ => writeln!(output, "a positive whole number, please")?,
                },
            }
        }
        Ok(())
    }
}

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
    let needed = fds_needed(config.connections, config.effective_threads());
    let (soft, hard) =
        rlimit::getrlimit(rlimit::Resource::NOFILE).map_err(|e| PreflightError::Unreadable {
            what: "RLIMIT_NOFILE".into(),
            detail: e.to_string(),
        })?;
    let mut notes = Vec::new();
    let fd_error = PreflightError::FileDescriptors {
        connections: config.connections,
        needed,
        soft,
        hard,
    };
    let fd_soft = match plan_fd_limit(needed, soft, hard) {
        FdPlan::Enough => soft,
        FdPlan::RaiseSoft(to) => {
            rlimit::setrlimit(rlimit::Resource::NOFILE, to, hard).map_err(|_| fd_error.clone())?;
            notes.push(format!("raised the soft fd limit from {soft} to {to}"));
            to
        }
        FdPlan::RaiseHard(to) => {
            rlimit::setrlimit(rlimit::Resource::NOFILE, to, to).map_err(|_| fd_error.clone())?;
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
    let source_ips = plan_sources(
        config.connections,
        target,
        config.port,
        &config.source_ips,
        port_range,
    )?;
    if config.source_ips.is_empty() && !source_ips.is_empty() {
        notes.push(format!(
            "spreading {} connections over {} source addresses ({} ... {})",
            config.connections,
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

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::Count(n) => write!(f, "{n} messages per connection"),
            Stop::Duration(d) => write!(f, "{:.1}s", d.as_secs_f64()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> StressConfig {
        StressConfig {
            threads: 2,
            ..StressConfig::default()
        }
    }

    #[track_caller]
    fn rejects(c: StressConfig, needle: &str) {
        let e = c.validate().expect_err("configuration should be rejected");
        assert!(e.0.contains(needle), "{e:?} should mention {needle:?}");
        assert!(!e.0.contains('\n'), "one line: {e:?}");
    }

    #[test]
    fn defaults_are_valid_and_resolve() {
        let c = cfg();
        c.validate().unwrap();
        assert_eq!(c.payload(), PayloadSpec::Text(DEFAULT_MESSAGE.into()));
        assert_eq!(c.stop(), Stop::Count(DEFAULT_COUNT));
        assert_eq!(c.workload(), Workload::Closed { pipeline: 1 });
        assert_eq!(
            (c.host.as_str(), c.port, c.connections),
            ("127.0.0.1", 3333, 50)
        );
        assert!(c.is_interactive_candidate());
    }

    #[test]
    fn bad_combinations_are_rejected_with_the_flags_named() {
        rejects(
            StressConfig {
                count: Some(5),
                duration: Some(Duration::from_secs(1)),
                ..cfg()
            },
            "--count and --duration",
        );
        rejects(
            StressConfig {
                message: Some("x".into()),
                size: Some(4),
                ..cfg()
            },
            "--message and --size",
        );
        rejects(
            StressConfig {
                size: Some(0),
                ..cfg()
            },
            "--size",
        );
        rejects(
            StressConfig {
                size: Some(MAX_MESSAGE_SIZE + 1),
                ..cfg()
            },
            "--size",
        );
        rejects(
            StressConfig {
                message: Some(String::new()),
                ..cfg()
            },
            "--message",
        );
        rejects(
            StressConfig {
                pipeline: 0,
                ..cfg()
            },
            "--pipeline",
        );
        rejects(
            StressConfig {
                connections: 0,
                ..cfg()
            },
            "--connections",
        );
        rejects(
            StressConfig {
                threads: 0,
                ..cfg()
            },
            "--threads",
        );
        rejects(
            StressConfig {
                count: Some(0),
                ..cfg()
            },
            "--count",
        );
        rejects(
            StressConfig {
                duration: Some(Duration::ZERO),
                ..cfg()
            },
            "--duration",
        );
        rejects(
            StressConfig {
                rate: Some(0.0),
                ..cfg()
            },
            "--rate",
        );
        rejects(
            StressConfig {
                rate: Some(f64::NAN),
                ..cfg()
            },
            "--rate",
        );
        rejects(
            StressConfig {
                connect_rate: -1.0,
                ..cfg()
            },
            "--connect-rate",
        );
        rejects(
            StressConfig {
                timeout: Duration::ZERO,
                ..cfg()
            },
            "--timeout",
        );
        rejects(StressConfig { port: 0, ..cfg() }, "PORT");
        rejects(
            StressConfig {
                connections: 10_000,
                pipeline: 100,
                size: Some(4096),
                ..cfg()
            },
            "in flight",
        );
        rejects(
            StressConfig {
                source_ips: vec!["0.0.0.0".parse().unwrap()],
                ..cfg()
            },
            "--source-ip",
        );
    }

    #[test]
    fn resolved_forms() {
        let c = StressConfig {
            size: Some(64),
            seed: 9,
            duration: Some(Duration::from_secs(3)),
            rate: Some(1000.0),
            pipeline: 4,
            ..cfg()
        };
        c.validate().unwrap();
        assert_eq!(c.payload(), PayloadSpec::Random { size: 64, seed: 9 });
        assert_eq!(c.stop(), Stop::Duration(Duration::from_secs(3)));
        assert_eq!(
            c.workload(),
            Workload::Rate {
                rate: 1000.0,
                pipeline: 4
            }
        );
        assert!(!c.is_interactive_candidate());
        assert_eq!(
            StressConfig {
                connections: 1,
                threads: 8,
                ..cfg()
            }
            .effective_threads(),
            1
        );
    }

    #[test]
    fn asks_like_the_article() {
        let mut c = cfg();
        let mut out = Vec::new();
        c.ask(&b"Swarajya Pendha\n0\nabc\n7\n\n"[..], &mut out)
            .unwrap();
        assert_eq!(c.message.as_deref(), Some("Swarajya Pendha"));
        assert_eq!(c.connections, 7);
        assert_eq!(c.count, Some(DEFAULT_COUNT));
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Please enter message to be sent to the server"));
        assert!(text.contains("Please enter number of threads to be created"));
        assert!(text.contains("Please enter number of times the messages needs to be sent"));
        assert_eq!(text.matches("a positive whole number").count(), 2);
        c.validate().unwrap();
    }

    #[test]
    fn asking_on_a_closed_input_fails_instead_of_blocking() {
        let mut c = cfg();
        let e = c.ask(&b"hi\n"[..], Vec::new()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn output_target() {
        assert_eq!(OutputTarget::parse("-"), OutputTarget::Stdout);
        assert_eq!(
            OutputTarget::parse("r.json"),
            OutputTarget::Path("r.json".into())
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
