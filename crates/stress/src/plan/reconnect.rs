//! Churn (`--messages-per-connection N`): what it measures, and when the client's own ports
//! become the limit.
//!
//! This module is responsible for the figures of a churn run beside the usual ones: connection
//! attempts and connections per second, connect latency (the engine's HdrHistogram of connect
//! times), failed connections counted by cause ([`ChurnErrorKind`]: refused, reset, timeout,
//! EADDRNOTAVAIL, other), and the warning when `TIME_WAIT` or the ephemeral port range is what
//! limits the run ([`port_warning`]). The engine records into a [`ChurnStats`] per thread and
//! builds the report's [`ChurnFigures`] from their merge; what a connection does between its
//! cycles is `engine::conn`'s, the pacing of reconnects `engine::client`'s.
//!
//! # TIME_WAIT and the ephemeral ports
//!
//! The side that closes first keeps the connection in `TIME_WAIT` for 60 s on Linux, holding its
//! local port for that destination. A client that closes gracefully (FIN, the default) therefore
//! holds about `rate x 60 s` ports; one source address has only the
//! `net.ipv4.ip_local_port_range` (28,232 by default). Linux reuses a `TIME_WAIT` port for a new
//! outgoing connection once it is a second old when `net.ipv4.tcp_tw_reuse` allows it (1, or 2 =
//! loopback only, the default), so then the limit is the rate per second instead. Past it,
//! `connect` fails with `EADDRNOTAVAIL`. `--linger0` closes with a reset (`SO_LINGER` 0), which
//! leaves no `TIME_WAIT` at all, at the price of a reset the server sees on every connection.

use std::fmt;
use std::fs;
use std::io;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::ConnError;
use crate::measure::histogram::LatencySummary;

/// How long Linux keeps a connection in `TIME_WAIT` (`TCP_TIMEWAIT_LEN`).
pub const TIME_WAIT_SECS: f64 = 60.0;

/// Why a connection of a churn run failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChurnErrorKind {
    /// The connect was refused (`ECONNREFUSED`: nothing listens, or the backlog is full and the
    /// server's kernel answers with a reset).
    Refused,
    /// The connection was reset (at connect, or during its exchanges: `ECONNRESET`, `EPIPE`,
    /// `ECONNABORTED`).
    Reset,
    /// A connect or a reply took longer than `--timeout`.
    Timeout,
    /// No local port was free (`EADDRNOTAVAIL` at connect, `EADDRINUSE` at bind): `TIME_WAIT`
    /// or the ephemeral port range is the limit.
    AddrNotAvailable,
    /// Anything else, including verification errors (the report's `errors_by_kind` names them).
    Other,
}

impl ChurnErrorKind {
    /// Every kind, in report order.
    pub const ALL: [ChurnErrorKind; 5] = [
        ChurnErrorKind::Refused,
        ChurnErrorKind::Reset,
        ChurnErrorKind::Timeout,
        ChurnErrorKind::AddrNotAvailable,
        ChurnErrorKind::Other,
    ];

    /// The name in JSON and in the human report.
    pub fn as_str(self) -> &'static str {
        match self {
            ChurnErrorKind::Refused => "refused",
            ChurnErrorKind::Reset => "reset",
            ChurnErrorKind::Timeout => "timeout",
            ChurnErrorKind::AddrNotAvailable => "addr_not_available",
            ChurnErrorKind::Other => "other",
        }
    }

    /// The cause of `err`.
    pub fn of(err: &ConnError) -> ChurnErrorKind {
        match err {
            ConnError::ConnectFailed(e) => ChurnErrorKind::of_io(e),
            ConnError::Reset { .. } => ChurnErrorKind::Reset,
            ConnError::Timeout { .. } => ChurnErrorKind::Timeout,
            _ => ChurnErrorKind::Other,
        }
    }

    /// The cause of a failed connect (or of creating and binding its socket).
    pub fn of_io(e: &io::Error) -> ChurnErrorKind {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => ChurnErrorKind::Refused,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => ChurnErrorKind::Reset,
            io::ErrorKind::TimedOut => ChurnErrorKind::Timeout,
            io::ErrorKind::AddrNotAvailable | io::ErrorKind::AddrInUse => {
                ChurnErrorKind::AddrNotAvailable
            }
            _ => ChurnErrorKind::Other,
        }
    }
}

impl fmt::Display for ChurnErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Failed connections of a churn run by cause: the `churn.errors` object (every key present).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChurnErrors {
    /// `ECONNREFUSED`.
    pub refused: u64,
    /// Reset at connect or during the exchanges.
    pub reset: u64,
    /// A connect or a reply slower than `--timeout`.
    pub timeout: u64,
    /// `EADDRNOTAVAIL` (no local port free).
    pub addr_not_available: u64,
    /// Anything else (verification errors among them).
    pub other: u64,
}

impl ChurnErrors {
    /// Counts one failure of `kind`.
    pub fn add(&mut self, kind: ChurnErrorKind) {
        *self.slot(kind) += 1;
    }

    /// Failures of `kind`.
    pub fn get(&self, kind: ChurnErrorKind) -> u64 {
        match kind {
            ChurnErrorKind::Refused => self.refused,
            ChurnErrorKind::Reset => self.reset,
            ChurnErrorKind::Timeout => self.timeout,
            ChurnErrorKind::AddrNotAvailable => self.addr_not_available,
            ChurnErrorKind::Other => self.other,
        }
    }

    fn slot(&mut self, kind: ChurnErrorKind) -> &mut u64 {
        match kind {
            ChurnErrorKind::Refused => &mut self.refused,
            ChurnErrorKind::Reset => &mut self.reset,
            ChurnErrorKind::Timeout => &mut self.timeout,
            ChurnErrorKind::AddrNotAvailable => &mut self.addr_not_available,
            ChurnErrorKind::Other => &mut self.other,
        }
    }

    /// Every failure.
    pub fn total(&self) -> u64 {
        ChurnErrorKind::ALL.iter().map(|&k| self.get(k)).sum()
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &ChurnErrors) {
        for k in ChurnErrorKind::ALL {
            *self.slot(k) += other.get(k);
        }
    }
}

/// What one client thread counts of a churn run (connect times go to its `ThreadStats`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChurnStats {
    /// Connects started (sockets asked for), the first connection of each slot included.
    pub attempts: u64,
    /// Connections established while the measured window was open.
    pub connected_in_window: u64,
    /// Failed connections by cause.
    pub errors: ChurnErrors,
}

impl ChurnStats {
    /// Adds `other` (another thread's) to these.
    pub fn merge(&mut self, other: &ChurnStats) {
        self.attempts += other.attempts;
        self.connected_in_window += other.connected_in_window;
        self.errors.merge(&other.errors);
    }

    /// Counts the failure `err`.
    pub fn record_error(&mut self, err: &ConnError) {
        self.errors.add(ChurnErrorKind::of(err));
    }
}

/// The `churn` object of the report: present when the run had `--messages-per-connection`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChurnFigures {
    /// `--messages-per-connection`: exchanges on each connection before it closes.
    pub messages_per_connection: u64,
    /// `--connect-rate`: connects started per second at most, over every thread.
    pub connect_rate: f64,
    /// `--linger0`: connections closed with a reset (no `TIME_WAIT`) instead of a FIN.
    pub linger0: bool,
    /// Connects started, the first connection of each slot included.
    pub attempts: u64,
    /// Connections established, the first of each slot included (each had its connect time
    /// recorded).
    pub connections: u64,
    /// Connections established in the measured window, per second of it.
    pub connections_per_s: f64,
    /// Connect latency in microseconds (SYN sent to connection established), HdrHistogram.
    pub connect_latency_us: LatencySummary,
    /// Failed connections by cause.
    pub errors: ChurnErrors,
    /// Sockets in `TIME_WAIT` on this host when the run ended (`/proc/net/sockstat`), `null`
    /// where it cannot be read.
    pub time_wait: Option<u64>,
    /// Ephemeral ports of one source address (`net.ipv4.ip_local_port_range`).
    pub ephemeral_ports: u64,
}

impl ChurnFigures {
    /// The human report's lines (each starting with two spaces, ending in a newline).
    pub fn render(&self) -> String {
        let mut s = format!(
            "  {:<14}{} messages per connection, {} connections ({} attempts) at {:.1} \
             connections/s (--connect-rate {}), closed with {}\n",
            "churn",
            self.messages_per_connection,
            self.connections,
            self.attempts,
            self.connections_per_s,
            self.connect_rate,
            if self.linger0 {
                "RST (--linger0)"
            } else {
                "FIN"
            },
        );
        let l = &self.connect_latency_us;
        s.push_str(&format!(
            "  {:<14}connect p50 {} us  p99 {} us  p99.9 {} us{}\n",
            "",
            l.p50,
            l.p99,
            l.p999,
            match self.time_wait {
                Some(tw) => format!("; {tw} sockets in TIME_WAIT at the end"),
                None => String::new(),
            }
        ));
        let kinds: Vec<String> = ChurnErrorKind::ALL
            .iter()
            .map(|&k| format!("{k} {}", self.errors.get(k)))
            .collect();
        s.push_str(&format!(
            "  {:<14}{} failed connections ({})\n",
            "",
            self.errors.total(),
            kinds.join(", ")
        ));
        s
    }
}

/// Sockets in `TIME_WAIT` from the text of `/proc/net/sockstat` (`TCP: inuse 5 orphan 0 tw 12
/// ...`; the count covers IPv4 and IPv6).
pub fn parse_sockstat_tw(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("TCP:"))?;
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == "tw" {
            return words.next()?.parse().ok();
        }
    }
    None
}

/// Sockets in `TIME_WAIT` on this host now; `None` where `/proc/net/sockstat` cannot be read.
pub fn time_wait_now() -> Option<u64> {
    fs::read_to_string("/proc/net/sockstat")
        .ok()
        .and_then(|t| parse_sockstat_tw(&t))
}

/// Whether Linux may reuse a `TIME_WAIT` port for a new connection to `loopback` or not
/// (`net.ipv4.tcp_tw_reuse`: 1 always, 2 for loopback only, the default); `None` where unknown.
pub fn tw_reuse_applies(loopback: bool) -> Option<bool> {
    let v = fs::read_to_string("/proc/sys/net/ipv4/tcp_tw_reuse").ok()?;
    Some(match v.trim() {
        "1" => true,
        "2" => loopback,
        _ => false,
    })
}

/// The facts [`port_warning`] weighs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PortFacts {
    /// Connections established per second in the run.
    pub connections_per_s: f64,
    /// Connects that failed with `EADDRNOTAVAIL` (or `EADDRINUSE` at bind).
    pub addr_not_available: u64,
    /// Sockets in `TIME_WAIT` at the end, if known.
    pub time_wait: Option<u64>,
    /// Ephemeral ports of one source address.
    pub ephemeral_ports: u64,
    /// Source addresses the connections were spread over (at least 1).
    pub sources: u64,
    /// `--linger0`: the client leaves no `TIME_WAIT`.
    pub linger0: bool,
    /// Whether the kernel reuses `TIME_WAIT` ports for new connections here, if known.
    pub tw_reuse: Option<bool>,
}

/// One line saying that `TIME_WAIT` or the ephemeral port range limited (or at this rate will
/// limit) the run, and what to do; `None` when neither does.
pub fn port_warning(f: &PortFacts) -> Option<String> {
    let ports = f.ephemeral_ports.saturating_mul(f.sources.max(1));
    let advice = "lower --connect-rate, spread over more --source-ip addresses, widen \
                  net.ipv4.ip_local_port_range, or close with a reset (--linger0) so the client \
                  leaves no TIME_WAIT";
    if f.addr_not_available > 0 {
        return Some(format!(
            "ephemeral ports ran out: {} connects failed with EADDRNOTAVAIL ({ports} local ports, \
             {} in TIME_WAIT at the end): {advice}",
            f.addr_not_available,
            f.time_wait
                .map_or("an unknown number".to_string(), |t| t.to_string()),
        ));
    }
    // Where the kernel reuses TIME_WAIT ports, the sockets in TIME_WAIT do not block a connect.
    if let (Some(tw), false) = (f.time_wait, f.tw_reuse == Some(true)) {
        if ports > 0 && tw.saturating_mul(2) >= ports {
            return Some(format!(
                "TIME_WAIT holds {tw} sockets on this host, {:.0}% of the {ports} ephemeral \
                 ports: a longer run will fail to connect with EADDRNOTAVAIL; {advice}",
                100.0 * tw as f64 / ports as f64
            ));
        }
    }
    if f.linger0 || ports == 0 {
        return None;
    }
    // With reuse, a TIME_WAIT port is free again after a second; without, after 60 s.
    let held_for = if f.tw_reuse == Some(true) {
        1.0
    } else {
        TIME_WAIT_SECS
    };
    let held = f.connections_per_s * held_for;
    if held > ports as f64 {
        return Some(format!(
            "at {:.0} connections/s, TIME_WAIT ({held_for:.0} s) holds about {held:.0} local \
             ports, more than the {ports} ephemeral ports: a run longer than {:.0} s will fail \
             to connect with EADDRNOTAVAIL; {advice}",
            f.connections_per_s,
            ports as f64 / f.connections_per_s,
        ));
    }
    None
}

/// Paces one thread's reconnects at its share of `--connect-rate`: starts are at least one
/// interval apart on average, with no catching up on time spent idle beyond one interval (a
/// slot that waited for its echoes does not earn a burst).
#[derive(Debug, Clone, Copy)]
pub struct ReconnectPacer {
    interval: std::time::Duration,
    next: Instant,
}

impl ReconnectPacer {
    /// `rate` connects per second from `start` (positive and finite).
    pub fn new(start: Instant, rate: f64) -> ReconnectPacer {
        ReconnectPacer {
            interval: std::time::Duration::from_secs_f64(1.0 / rate),
            next: start,
        }
    }

    /// When the next connect may start.
    pub fn next(&self) -> Instant {
        self.next
    }

    /// Takes the slot of a connect started at `now` (at or after [`next`](Self::next)).
    pub fn take(&mut self, now: Instant) {
        let floor = now.checked_sub(self.interval).unwrap_or(now);
        self.next = self.next.max(floor) + self.interval;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn causes_of_failed_connections() {
        let of = |k: io::ErrorKind| ChurnErrorKind::of(&ConnError::ConnectFailed(k.into()));
        assert_eq!(
            of(io::ErrorKind::ConnectionRefused),
            ChurnErrorKind::Refused
        );
        assert_eq!(of(io::ErrorKind::ConnectionReset), ChurnErrorKind::Reset);
        assert_eq!(of(io::ErrorKind::TimedOut), ChurnErrorKind::Timeout);
        assert_eq!(
            of(io::ErrorKind::AddrNotAvailable),
            ChurnErrorKind::AddrNotAvailable
        );
        assert_eq!(of(io::ErrorKind::PermissionDenied), ChurnErrorKind::Other);
        #[cfg(target_os = "linux")]
        assert_eq!(
            ChurnErrorKind::of_io(&io::Error::from_raw_os_error(99)),
            ChurnErrorKind::AddrNotAvailable,
            "EADDRNOTAVAIL"
        );
        let reset = ConnError::from_io(io::ErrorKind::ConnectionReset.into(), 10);
        assert_eq!(ChurnErrorKind::of(&reset), ChurnErrorKind::Reset);
        let mismatch = ConnError::EarlyClose { offset: 3 };
        assert_eq!(ChurnErrorKind::of(&mismatch), ChurnErrorKind::Other);
    }

    #[test]
    fn errors_count_merge_and_serialise_every_kind() {
        let mut a = ChurnErrors::default();
        a.add(ChurnErrorKind::Refused);
        a.add(ChurnErrorKind::Refused);
        let mut b = ChurnErrors::default();
        b.add(ChurnErrorKind::AddrNotAvailable);
        a.merge(&b);
        assert_eq!((a.refused, a.addr_not_available, a.total()), (2, 1, 3));
        let v = serde_json::to_value(a).unwrap();
        assert_eq!(v.as_object().unwrap().len(), ChurnErrorKind::ALL.len());
        for k in ChurnErrorKind::ALL {
            assert_eq!(v[k.as_str()], a.get(k), "{k}");
        }
    }

    #[test]
    fn sockstat_time_wait() {
        let text =
            "sockets: used 120\nTCP: inuse 5 orphan 0 tw 12345 alloc 7 mem 1\nUDP: inuse 1 mem 0\n";
        assert_eq!(parse_sockstat_tw(text), Some(12345));
        assert_eq!(parse_sockstat_tw("TCP6: inuse 2\n"), None);
        assert_eq!(parse_sockstat_tw("garbage"), None);
    }

    fn facts() -> PortFacts {
        PortFacts {
            connections_per_s: 100.0,
            addr_not_available: 0,
            time_wait: Some(10),
            ephemeral_ports: 28232,
            sources: 1,
            linger0: false,
            tw_reuse: Some(false),
        }
    }

    #[test]
    fn the_port_warning_names_the_limit_and_the_remedies() {
        assert_eq!(port_warning(&facts()), None, "6,000 ports held of 28,232");
        let out = port_warning(&PortFacts {
            addr_not_available: 3,
            ..facts()
        })
        .unwrap();
        assert!(
            out.contains("3 connects failed with EADDRNOTAVAIL"),
            "{out}"
        );
        assert!(out.contains("--linger0") && out.contains("ip_local_port_range"));
        assert!(!out.contains('\n'), "one line: {out}");
        let full = port_warning(&PortFacts {
            time_wait: Some(20000),
            ..facts()
        })
        .unwrap();
        assert!(
            full.starts_with("TIME_WAIT holds 20000 sockets on this host, 71%"),
            "{full}"
        );
        let reused = PortFacts {
            time_wait: Some(40000),
            tw_reuse: Some(true),
            ..facts()
        };
        assert_eq!(
            port_warning(&reused),
            None,
            "reused TIME_WAIT ports do not block"
        );
        let fast = port_warning(&PortFacts {
            connections_per_s: 1000.0,
            ..facts()
        })
        .unwrap();
        assert!(fast.contains("holds about 60000 local ports"), "{fast}");
        assert!(fast.contains("longer than 28 s"), "{fast}");
        // Reuse after a second, a reset close, or more source addresses lift the limit.
        for lifted in [
            PortFacts {
                connections_per_s: 1000.0,
                tw_reuse: Some(true),
                ..facts()
            },
            PortFacts {
                connections_per_s: 1000.0,
                linger0: true,
                ..facts()
            },
            PortFacts {
                connections_per_s: 1000.0,
                sources: 3,
                ..facts()
            },
        ] {
            assert_eq!(port_warning(&lifted), None, "{lifted:?}");
        }
    }

    #[test]
    fn reconnects_are_paced_without_bursts_after_idling() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut p = ReconnectPacer::new(t0, 100.0);
        assert_eq!(p.next(), t0);
        p.take(t0);
        assert_eq!(p.next(), t0 + ms(10));
        // Started a little late: the next keeps the even pace.
        p.take(t0 + ms(12));
        assert_eq!(p.next(), t0 + ms(20));
        // Idle for a second: at most one interval is made up, not a hundred.
        p.take(t0 + ms(1000));
        assert_eq!(p.next(), t0 + ms(1000));
        p.take(t0 + ms(1000));
        assert_eq!(p.next(), t0 + ms(1010));
    }
}
