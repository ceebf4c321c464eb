//! The `churn` object of the report (runs with `--messages-per-connection`): connections per
//! second, connect latency, failed connections by cause, and its lines in the human report.

use serde::{Deserialize, Serialize};

use crate::measure::histogram::LatencySummary;
use crate::measure::reconnects::{ReconnectErrorKind, ReconnectErrors};

/// The `churn` object of the report: present when the run had `--messages-per-connection`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconnectFigures {
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
    pub errors: ReconnectErrors,
    /// Sockets in `TIME_WAIT` on this host when the run ended (`/proc/net/sockstat`), `null`
    /// where it cannot be read.
    pub time_wait: Option<u64>,
    /// Ephemeral ports of one source address (`net.ipv4.ip_local_port_range`).
    pub ephemeral_ports: u64,
}

impl ReconnectFigures {
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
        let kinds: Vec<String> = ReconnectErrorKind::ALL
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
