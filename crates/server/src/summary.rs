//! What a server did: counters per worker and their totals, printed at shutdown, and the live
//! view of them that `serve --stats` prints periodically ([`Live`], [`Snapshot`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

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
}

impl WorkerStats {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &WorkerStats) {
        self.accepted += other.accepted;
        self.closed += other.closed;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.conn_errors += other.conn_errors;
        self.accept_errors += other.accept_errors;
        self.forced_closes += other.forced_closes;
        self.stale_completions += other.stale_completions;
        self.waits += other.waits;
        self.completions += other.completions;
        self.refused_limit += other.refused_limit;
        self.limit_pauses += other.limit_pauses;
        self.refused_per_ip += other.refused_per_ip;
        self.idle_closed += other.idle_closed;
        self.write_timeouts += other.write_timeouts;
        self.pool_buffers = self.pool_buffers.max(other.pool_buffers);
        self.pool_peak = self.pool_peak.max(other.pool_peak);
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
    /// One entry per worker, in worker order.
    pub workers: Vec<WorkerStats>,
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
        let t = self.total();
        writeln!(
            f,
            "summary: model {}, backend {}, up {:.1} s: {} connections served, {} bytes echoed ({} received), {} connection errors, {} accept errors, {} forced closes",
            self.model,
            self.backend,
            self.uptime.as_secs_f64(),
            t.closed,
            t.bytes_out,
            t.bytes_in,
            t.conn_errors,
            t.accept_errors,
            t.forced_closes
        )?;
        if self.workers.len() > 1 {
            for (i, w) in self.workers.iter().enumerate() {
                writeln!(
                    f,
                    "  worker {i}: {} connections served, {} bytes echoed",
                    w.closed, w.bytes_out
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
                "  port: {} completions in {} waits ({:.1} per wait), {} stale",
                t.completions,
                t.waits,
                t.completions as f64 / t.waits as f64,
                t.stale_completions
            )?;
        }
        if t.pool_buffers > 0 {
            writeln!(
                f,
                "  pool: at most {} of {} receive buffers in use at once (busiest worker)",
                t.pool_peak, t.pool_buffers
            )?;
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
        format!(
            "stats: {} open, {} accepted ({:.0}/s), in {} B ({:.0} B/s), out {} B ({:.0} B/s), {:.1} completions/wait; errors: conn {}, accept {}, refused-limit {}, limit-pauses {}, refused-per-ip {}, idle {}, write-timeout {}, forced {}, stale {}",
            self.open,
            t.accepted,
            rate(t.accepted, p.accepted),
            t.bytes_in,
            rate(t.bytes_in, p.bytes_in),
            t.bytes_out,
            rate(t.bytes_out, p.bytes_out),
            per_wait,
            t.conn_errors,
            t.accept_errors,
            t.refused_limit,
            t.limit_pauses,
            t.refused_per_ip,
            t.idle_closed,
            t.write_timeouts,
            t.forced_closes,
            t.stale_completions,
        )
    }
}

/// A live view of a running server's counters, for `serve --stats`. Cheap to clone; reading it
/// takes a lock or two, never the workers' time (they publish their counters about once a
/// second, so a snapshot may be up to a second old).
#[derive(Clone)]
pub struct Live {
    read: Arc<dyn Fn() -> Snapshot + Send + Sync>,
}

impl fmt::Debug for Live {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Live").finish_non_exhaustive()
    }
}

impl Live {
    /// A view that calls `read` for each snapshot.
    pub fn new(read: impl Fn() -> Snapshot + Send + Sync + 'static) -> Live {
        Live {
            read: Arc::new(read),
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        (self.read)()
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
        assert!(text.contains("5 idle timeouts, 1 write timeouts"), "{text}");
    }
}
