//! What a server did: counters per worker and their totals, printed at shutdown.

use std::fmt;
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
        Ok(())
    }
}
