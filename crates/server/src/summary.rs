//! What a server did: counters per worker and their totals, printed at shutdown, and the live
//! view of them that `serve --stats` prints periodically ([`Live`], [`Snapshot`]).

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use ringport_os::{human_bytes, plural, ErrorClass};

use crate::udp::UdpStats;

/// Counters of one worker (one thread of the completion model, or one model's whole run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed after being served (whatever the reason).
    pub closed: u64,
    /// Bytes received from clients.
    pub bytes_in: u64,
    /// Bytes echoed back.
    pub bytes_out: u64,
    /// Connections that ended in a reset or another socket error.
    pub conn_errors: u64,
    /// The same connection errors by kind (they add up to `conn_errors`).
    pub conn_error_kinds: ConnErrorKinds,
    /// Failed accepts (the server backs off and retries).
    pub accept_errors: u64,
    /// Connections closed by the drain timeout with data still unechoed.
    pub forced_closes: u64,
    /// Completions for a connection slot that had since been reused: dropped, never applied.
    pub stale_completions: u64,
    /// Waits on the port (each is one system call that submits and reaps).
    pub waits: u64,
    /// Completions reaped.
    pub completions: u64,
    /// Receives of one message each, armed once its echo was out, by a busy worker (see
    /// `MultiEcho`'s single receives); the other receives are multishot.
    pub single_receives: u64,
    /// Connections closed at once because `--max-connections` were open (threaded model).
    pub refused_limit: u64,
    /// Times accepting paused because `--max-connections` were open (completion model: the
    /// clients wait in the listen backlog until a connection closes).
    pub limit_pauses: u64,
    /// Connections closed at once because their IP address had `--max-per-ip` open.
    pub refused_per_ip: u64,
    /// Connections closed by `--idle-timeout` (no byte from the peer for that long).
    pub idle_closed: u64,
    /// Connections closed by `--write-timeout` (an echo pending, the peer not reading).
    pub write_timeouts: u64,
    /// Buffers in the worker's receive pool (0: no pool). Totals keep the largest.
    pub pool_buffers: u64,
    /// The most pool buffers the worker had out at once (received into, not yet echoed).
    /// Totals keep the largest.
    pub pool_peak: u64,
    /// Pool buffers out when the counters were published (received into, not yet echoed).
    pub pool_in_use: u64,
    /// TLS handshakes, close_notify sent, and the connections that failed by cause.
    pub tls: crate::tls::TlsStats,
    /// WebSocket upgrades, messages, pings, closes by code, failures by cause.
    pub ws: crate::echo::websocket::WsStats,
    /// `--mptcp`: accepted connections asked whether they speak Multipath TCP (all but direct
    /// descriptors, which cannot be asked, on kernels that answer: 5.16+).
    pub mptcp_asked: u64,
    /// Of those, the connections that spoke MPTCP; the others fell back to plain TCP.
    pub mptcp: u64,
    /// `--proxy-protocol`: PROXY headers read, and connections closed for theirs.
    pub proxy: crate::proxy::ProxyStats,
}

impl WorkerStats {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &WorkerStats) {
        self.accepted += other.accepted;
        self.closed += other.closed;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.conn_errors += other.conn_errors;
        self.conn_error_kinds.add(&other.conn_error_kinds);
        self.accept_errors += other.accept_errors;
        self.forced_closes += other.forced_closes;
        self.stale_completions += other.stale_completions;
        self.waits += other.waits;
        self.completions += other.completions;
        self.single_receives += other.single_receives;
        self.refused_limit += other.refused_limit;
        self.limit_pauses += other.limit_pauses;
        self.refused_per_ip += other.refused_per_ip;
        self.idle_closed += other.idle_closed;
        self.write_timeouts += other.write_timeouts;
        self.pool_buffers = self.pool_buffers.max(other.pool_buffers);
        self.pool_peak = self.pool_peak.max(other.pool_peak);
        self.pool_in_use += other.pool_in_use;
        self.tls.add(&other.tls);
        self.ws.add(&other.ws);
        self.mptcp_asked += other.mptcp_asked;
        self.mptcp += other.mptcp;
        self.proxy.add(&other.proxy);
    }

    /// Counts an accepted connection's answer to whether it speaks MPTCP
    /// ([`ringport_port::os::is_mptcp`]); a kernel that cannot answer is not counted.
    pub(crate) fn note_mptcp(&mut self, spoke: std::io::Result<bool>) {
        if let Ok(spoke) = spoke {
            self.mptcp_asked += 1;
            self.mptcp += u64::from(spoke);
        }
    }
}

/// Connection errors by kind, as the summary and `--stats` name them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnErrorKinds {
    /// The peer reset or aborted the connection ([`ErrorClass::Reset`]: ECONNRESET,
    /// ECONNABORTED).
    pub reset: u64,
    /// The peer was gone when its echo was sent ([`ErrorClass::BrokenPipe`]: EPIPE).
    pub broken_pipe: u64,
    /// The kernel gave up on the peer ([`ErrorClass::TimedOut`]: ETIMEDOUT, retransmissions or
    /// keepalive).
    pub timed_out: u64,
    /// The port refused an operation on the connection (e.g. a submission failed).
    pub refused_op: u64,
    /// Any other socket error.
    pub other: u64,
}

impl ConnErrorKinds {
    /// Counts `e` under its kind (its [`ErrorClass`]; a refused connect or an unavailable
    /// address, which a served connection does not meet, counts as other).
    pub fn count(&mut self, e: &io::Error) {
        match ErrorClass::of(e) {
            ErrorClass::Reset => self.reset += 1,
            ErrorClass::BrokenPipe => self.broken_pipe += 1,
            ErrorClass::TimedOut => self.timed_out += 1,
            ErrorClass::Refused | ErrorClass::AddrUnavailable | ErrorClass::Other => {
                self.other += 1
            }
        }
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &ConnErrorKinds) {
        self.reset += other.reset;
        self.broken_pipe += other.broken_pipe;
        self.timed_out += other.timed_out;
        self.refused_op += other.refused_op;
        self.other += other.other;
    }

    /// The kinds that occurred, `reset 3, broken pipe 1`, or an empty string.
    pub fn describe(&self) -> String {
        let kinds = [
            ("reset", self.reset),
            ("broken pipe", self.broken_pipe),
            ("timed out", self.timed_out),
            ("operation refused", self.refused_op),
            ("other", self.other),
        ];
        kinds
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The summary printed when a server stops.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// The server model, e.g. "completion".
    pub model: String,
    /// The I/O mechanism, e.g. "io_uring".
    pub backend: String,
    /// How long the server ran.
    pub uptime: Duration,
    /// One entry per worker, in worker order (none for the UDP echo alone).
    pub workers: Vec<WorkerStats>,
    /// The UDP echo's counters, when it ran (`serve --udp`, `--udp-only`).
    pub udp: Option<Box<crate::udp::UdpStats>>,
}

impl Summary {
    /// The sum over all workers.
    pub fn total(&self) -> WorkerStats {
        let mut t = WorkerStats::default();
        for w in &self.workers {
            t.add(w);
        }
        t
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let (Some(udp), true) = (&self.udp, self.workers.is_empty()) {
            writeln!(
                f,
                "summary: UDP echo alone, backend {}, up {:.1} s",
                self.backend,
                self.uptime.as_secs_f64()
            )?;
            return write!(f, "{udp}");
        }
        let t = self.total();
        // Bytes readable first; the exact counts after them, for scripts.
        writeln!(
            f,
            "summary: model {}, backend {}, up {:.1} s: {} served, {} echoed of {} received \
             (exactly {} bytes echoed, {} received); {}; {}, {}",
            self.model,
            self.backend,
            self.uptime.as_secs_f64(),
            plural(t.closed, "connection", "connections"),
            human_bytes(t.bytes_out),
            human_bytes(t.bytes_in),
            t.bytes_out,
            t.bytes_in,
            match t.conn_errors {
                0 => "no connection errors".to_string(),
                n => format!(
                    "{} ({})",
                    plural(n, "connection error", "connection errors"),
                    t.conn_error_kinds.describe()
                ),
            },
            plural(t.accept_errors, "accept error", "accept errors"),
            plural(t.forced_closes, "forced close", "forced closes"),
        )?;
        if self.workers.len() > 1 {
            for (i, w) in self.workers.iter().enumerate() {
                writeln!(
                    f,
                    "  worker {i}: {} served, {} echoed",
                    plural(w.closed, "connection", "connections"),
                    human_bytes(w.bytes_out)
                )?;
            }
        }
        writeln!(
            f,
            "  limits: {} refused at --max-connections, {} pauses at --max-connections, {} refused at --max-per-ip, {} idle timeouts, {} write timeouts",
            t.refused_limit, t.limit_pauses, t.refused_per_ip, t.idle_closed, t.write_timeouts
        )?;
        if t.waits > 0 {
            writeln!(
                f,
                "  port: {} completions in {} waits ({:.1} per wait), {} single receives, {} stale",
                t.completions,
                t.waits,
                t.completions as f64 / t.waits as f64,
                t.single_receives,
                t.stale_completions
            )?;
        }
        if !t.tls.is_empty() {
            writeln!(f, "  {}", t.tls.describe())?;
        }
        if t.mptcp_asked > 0 {
            writeln!(
                f,
                "  mptcp: {} of {} spoke Multipath TCP, {} plain TCP",
                t.mptcp,
                plural(t.mptcp_asked, "connection", "connections"),
                t.mptcp_asked - t.mptcp
            )?;
        }
        if !t.ws.is_empty() {
            writeln!(f, "  {}", t.ws.describe())?;
        }
        if !t.proxy.is_empty() {
            writeln!(f, "  {}", t.proxy.describe())?;
        }
        if t.pool_buffers > 0 {
            writeln!(
                f,
                "  pool: at most {} of {} receive buffers in use at once (busiest worker)",
                t.pool_peak, t.pool_buffers
            )?;
        }
        if let Some(udp) = &self.udp {
            write!(f, "{udp}")?;
        }
        Ok(())
    }
}

/// The server's counters at one moment, with the connections open then.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Connections open.
    pub open: u64,
    /// Totals over all workers so far.
    pub totals: WorkerStats,
}

impl Snapshot {
    /// The one-line summary `serve --stats` prints: connections open, accepts and bytes in the
    /// `elapsed` since `prev` (and in total), completions per wait, errors by kind.
    pub fn line(&self, prev: &Snapshot, elapsed: Duration) -> String {
        let t = &self.totals;
        let p = &prev.totals;
        let secs = elapsed.as_secs_f64().max(1e-9);
        let rate = |now: u64, then: u64| now.saturating_sub(then) as f64 / secs;
        let waits = t.waits.saturating_sub(p.waits);
        let per_wait = if waits == 0 {
            0.0
        } else {
            t.completions.saturating_sub(p.completions) as f64 / waits as f64
        };
        // What happened, briefly: only the error counters that are not zero, and the port's
        // completions per wait only where there is a completion port.
        let errors = [
            ("conn", t.conn_errors),
            ("accept", t.accept_errors),
            ("refused-limit", t.refused_limit),
            ("limit-pauses", t.limit_pauses),
            ("refused-per-ip", t.refused_per_ip),
            ("idle", t.idle_closed),
            ("write-timeout", t.write_timeouts),
            ("forced", t.forced_closes),
            ("stale", t.stale_completions),
            ("tls-failed", t.tls.failures()),
            ("ws-failed", t.ws.failures()),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>();
        let mut line = format!(
            "stats: {} open, {} accepted ({:.0}/s), in {} B ({}/s), out {} B ({}/s)",
            self.open,
            t.accepted,
            rate(t.accepted, p.accepted),
            t.bytes_in,
            human_bytes(rate(t.bytes_in, p.bytes_in) as u64),
            t.bytes_out,
            human_bytes(rate(t.bytes_out, p.bytes_out) as u64),
        );
        if t.waits > 0 {
            line.push_str(&format!(", {per_wait:.1} completions/wait"));
        }
        if errors.is_empty() {
            line.push_str("; no errors");
        } else {
            line.push_str(&format!("; errors: {}", errors.join(", ")));
        }
        line
    }
}

/// A live view of a running server's counters, for `serve --stats` and `serve --metrics`. Cheap
/// to clone; reading it takes a lock or two, never the workers' time (they publish their
/// counters about once a second, so a snapshot may be up to a second old).
#[derive(Clone)]
pub struct Live {
    read: Arc<dyn Fn() -> Vec<Snapshot> + Send + Sync>,
    udp: Option<Arc<dyn Fn() -> UdpStats + Send + Sync>>,
}

impl fmt::Debug for Live {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Live").finish_non_exhaustive()
    }
}

impl Live {
    /// A view that calls `read` for each snapshot (the server as one worker).
    pub fn new(read: impl Fn() -> Snapshot + Send + Sync + 'static) -> Live {
        Live {
            read: Arc::new(move || vec![read()]),
            udp: None,
        }
    }

    /// A view that calls `read` for each worker's snapshot, in worker order.
    pub fn per_worker(read: impl Fn() -> Vec<Snapshot> + Send + Sync + 'static) -> Live {
        Live {
            read: Arc::new(read),
            udp: None,
        }
    }

    /// This view with the UDP echo's counters, which `read` gives (as the echo last published
    /// them, about once a second).
    pub fn with_udp(self, read: impl Fn() -> UdpStats + Send + Sync + 'static) -> Live {
        Live {
            udp: Some(Arc::new(read)),
            ..self
        }
    }

    /// The counters now, over all workers.
    pub fn snapshot(&self) -> Snapshot {
        let mut total = Snapshot::default();
        for s in self.workers() {
            total.open += s.open;
            total.totals.add(&s.totals);
        }
        total
    }

    /// Each worker's counters now, in worker order (one entry for the blocking models).
    pub fn workers(&self) -> Vec<Snapshot> {
        (self.read)()
    }

    /// The UDP echo's counters now; `None` when the server serves no UDP (`--udp`,
    /// `--udp-only`).
    pub fn udp(&self) -> Option<UdpStats> {
        self.udp.as_ref().map(|read| read())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stats_line_gives_rates_over_the_interval_and_errors_by_kind() {
        let prev = Snapshot {
            open: 1,
            totals: WorkerStats {
                accepted: 10,
                bytes_in: 1000,
                waits: 10,
                completions: 20,
                ..WorkerStats::default()
            },
        };
        let now = Snapshot {
            open: 3,
            totals: WorkerStats {
                accepted: 30,
                bytes_in: 3000,
                bytes_out: 500,
                waits: 20,
                completions: 60,
                idle_closed: 2,
                refused_per_ip: 4,
                ..WorkerStats::default()
            },
        };
        let line = now.line(&prev, Duration::from_secs(2));
        assert!(
            line.starts_with("stats: 3 open, 30 accepted (10/s)"),
            "{line}"
        );
        assert!(line.contains("in 3000 B (1000 B/s)"), "{line}");
        assert!(
            !line.contains("accept 0"),
            "zero counters are left out: {line}"
        );
        assert!(line.contains("4.0 completions/wait"), "{line}");
        assert!(
            line.contains("idle 2") && line.contains("refused-per-ip 4"),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn the_summary_includes_the_limit_totals() {
        let summary = Summary {
            model: "completion".into(),
            backend: "io_uring".into(),
            workers: vec![
                WorkerStats {
                    idle_closed: 2,
                    write_timeouts: 1,
                    ..WorkerStats::default()
                },
                WorkerStats {
                    idle_closed: 3,
                    refused_per_ip: 7,
                    ..WorkerStats::default()
                },
            ],
            ..Summary::default()
        };
        let text = summary.to_string();
        assert!(text.contains("7 refused at --max-per-ip"), "{text}");
        assert!(text.contains("no connection errors"), "{text}");
        assert!(text.contains("5 idle timeouts, 1 write timeouts"), "{text}");
    }

    /// Issue 14: the `--stats` line was 260 characters, with completion-port counters for the
    /// threaded model and every zero error counter.
    #[test]
    fn the_stats_line_is_short_and_has_no_port_counters_without_a_port() {
        let threaded = Snapshot {
            open: 2,
            totals: WorkerStats {
                accepted: 5,
                bytes_in: 5 << 20,
                bytes_out: 5 << 20,
                ..WorkerStats::default()
            },
        };
        let line = threaded.line(&Snapshot::default(), Duration::from_secs(1));
        assert!(!line.contains("completions/wait"), "{line}");
        assert!(line.contains("(5.00 MiB/s)"), "{line}");
        assert!(line.ends_with("; no errors"), "{line}");
        assert!(line.len() < 100, "{} characters: {line}", line.len());
    }

    #[test]
    fn connection_errors_are_counted_by_their_class() {
        let mut kinds = ConnErrorKinds::default();
        for e in [
            io::Error::from(io::ErrorKind::ConnectionAborted),
            io::Error::from(io::ErrorKind::TimedOut),
            io::Error::from(io::ErrorKind::ConnectionRefused),
            io::Error::other("x"),
        ] {
            kinds.count(&e);
        }
        assert_eq!(kinds.describe(), "reset 1, timed out 1, other 2");
        // A code the standard library leaves uncategorised still counts as a reset.
        #[cfg(target_os = "linux")]
        {
            let mut kinds = ConnErrorKinds::default();
            kinds.count(&io::Error::from_raw_os_error(102)); // ENETRESET
            assert_eq!(kinds.reset, 1);
        }
    }

    /// Issue 14: the summary's raw byte counts and an untyped `39 connection errors`.
    #[test]
    fn the_summary_is_readable_and_types_connection_errors() {
        let mut w = WorkerStats {
            closed: 1,
            bytes_in: 3 << 20,
            bytes_out: 3 << 20,
            conn_errors: 3,
            ..WorkerStats::default()
        };
        w.conn_error_kinds
            .count(&io::Error::from(io::ErrorKind::ConnectionReset));
        w.conn_error_kinds
            .count(&io::Error::from(io::ErrorKind::ConnectionReset));
        w.conn_error_kinds
            .count(&io::Error::from(io::ErrorKind::BrokenPipe));
        let summary = Summary {
            model: "threaded".into(),
            backend: "blocking".into(),
            workers: vec![w],
            ..Summary::default()
        };
        let text = summary.to_string();
        assert!(text.contains("1 connection served"), "{text}");
        assert!(
            text.contains("3.00 MiB echoed of 3.00 MiB received (exactly 3145728 bytes echoed"),
            "{text}"
        );
        assert!(
            text.contains("3 connection errors (reset 2, broken pipe 1)"),
            "{text}"
        );
        assert!(text.contains("0 accept errors, 0 forced closes"), "{text}");
    }
}
