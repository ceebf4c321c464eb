//! The result of one `ringport stress` run (or of several merged): [`StressReport`] and the
//! figures it holds. Serialised as the `--json` output: every field name is part of the
//! command-line contract.
//!
//! Built by `ringport-stress` from what a run measured, read back by `ringport merge`
//! ([`StressReport::from_json`]), and written by the exporters of [`export`](crate::export).

use std::io;

use serde::{Deserialize, Serialize};

use crate::datagrams::{DatagramFlow, DatagramSecond, Datagrams, Jitter};
use crate::errors::{ErrorCounts, ErrorSecond, FirstError};
use crate::export::{Exporter, Human, Json, OutputTarget};
use crate::fairness::Fairness;
use crate::histogram::LatencySummary;
use crate::reconnects::ReconnectFigures;
use crate::segment::Segment;
use crate::tls::TlsFigures;
use crate::websocket::WebSocketFigures;

/// Min, median and max of a per-connection figure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// The smallest.
    pub min: f64,
    /// The median (the lower one for an even count).
    pub median: f64,
    /// The largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; all zero when there are none.
    pub fn of(values: &[f64]) -> Spread {
        if values.is_empty() {
            return Spread {
                min: 0.0,
                median: 0.0,
                max: 0.0,
            };
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        Spread {
            min: sorted[0],
            median: sorted[(sorted.len() - 1) / 2],
            max: sorted[sorted.len() - 1],
        }
    }
}

/// What a `--stream` run moved: the `stream` object of the JSON output. Bytes count when they
/// arrive verified, within the measured window (warm-up excluded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamFigures {
    /// Echoed bytes verified in the measured window.
    pub bytes: u64,
    /// Length of the measured window in seconds.
    pub seconds: f64,
    /// Echoed gigabits (10^9 bits) per second, all connections together.
    pub gbit_per_s: f64,
    /// Echoed MiB (2^20 bytes) per second, all connections together.
    pub mib_per_s: f64,
    /// Each connection's echoed Gbit/s: min, median, max (a connection that failed or never
    /// connected counts 0).
    pub per_connection_gbit_per_s: Spread,
    /// Bytes in flight per connection at most (`--window`, in whole chunks).
    pub window_bytes: u64,
    /// Bytes per chunk (`--size`).
    pub chunk_bytes: u64,
}

/// One step of a ramp (`--rate A..B --ramp D`, `--rate A,B,C --step D`, and the same for
/// `--connections`): the `steps` array of the JSON output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepFigures {
    /// The step's number, from 1.
    pub step: usize,
    /// When it began, in seconds from the start of the measured phase (after `--warmup`).
    pub start_s: f64,
    /// Its length in seconds.
    pub duration_s: f64,
    /// Its target: messages per second (a rate ramp) or connections sending (a connection
    /// ramp); a linear ramp's mean over the step.
    pub target: f64,
    /// Messages handed to a send per second during the step: what the client generated.
    pub sent_per_s: f64,
    /// Verified round trips per second of the messages intended in the step.
    pub msgs_per_s: f64,
    /// Verified round trips of the messages intended in the step.
    pub messages: u64,
    /// Their latency in microseconds (from the intended send time in rate mode).
    pub latency_us: LatencySummary,
}

/// One agent of a merged result (`merged_from`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRun {
    /// The agent's `run_id`.
    pub run_id: String,
    /// Its `--segment`, if any.
    pub segment: Option<Segment>,
    /// Its backend.
    pub backend: String,
    /// Its connections.
    pub connections: usize,
    /// Its verified round trips.
    pub messages: u64,
    /// Its errors.
    pub errors: u64,
    /// Wall-clock start of its measured phase, seconds since the Unix epoch.
    pub started_at_unix_s: f64,
    /// Length of its measured phase.
    pub duration_s: f64,
    /// How late it started after `--start-at`, if it was late.
    pub start_late_s: Option<f64>,
}

/// Everything a run measured. Serialised as the `--json` output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StressReport {
    /// The server, `HOST:PORT` as given.
    pub target: String,
    /// The completion-port backend the client ran on (`uring` or `epoll`); a merged result of
    /// agents on different backends lists them, e.g. `uring+epoll`.
    pub backend: String,
    /// `closed` (closed loop, possibly pipelined), `rate` (open loop, `--rate`) or `stream`
    /// (`--stream`).
    pub mode: String,
    /// What a connection sends and checks: `echo` (the default: every byte must come back) or
    /// `request-response` (`--request` with `--expect*`: each request's reply is framed and
    /// checked; `payload` lists them). Absent in results of older versions: echo.
    #[serde(default = "echo_protocol")]
    pub protocol: String,
    /// A random identifier of this run (16 hex digits), also written in its `--hdr-log`, which
    /// is how `ringport merge` pairs a result with its interval log.
    pub run_id: String,
    /// `--segment`: which share of the run this was (`{"index": 2, "count": 3}`), `null` for a
    /// whole run (and for a merged result).
    pub segment: Option<Segment>,
    /// Connections this process opened (its segment's share of `--connections`; in a merged
    /// result, the agents' together).
    pub connections: usize,
    /// `--connections`: connections of the whole run, every segment together.
    pub connections_total: usize,
    /// Connections that were established.
    pub connections_established: u64,
    /// Client threads used.
    pub threads: usize,
    /// Messages in flight per connection at most (`--pipeline`).
    pub pipeline: usize,
    /// The payload, e.g. `64-byte random` or `text "hello"`.
    pub payload: String,
    /// The stop condition, e.g. `1000 messages per connection` or `10.0s`.
    pub stop: String,
    /// Whether the run was interrupted (SIGINT or SIGTERM) before its stop condition: the
    /// figures cover the time it ran (`duration_s`), and the exit code is 130.
    pub interrupted: bool,
    /// Target rate in messages per second of this process (its segment's share of `--rate`),
    /// `null` in closed loop.
    pub target_rate: Option<f64>,
    /// `--rate` of the whole run, every segment together; `null` in closed loop.
    pub target_rate_total: Option<f64>,
    /// Seed of the random payload (`--seed`), to reproduce a mismatch.
    pub seed: u64,
    /// Verified round trips: messages (a stream's chunks) whose every echoed byte matched,
    /// warm-up excluded.
    pub messages: u64,
    /// Payload bytes in those verified round trips (each counted once; in request/response
    /// mode, the bytes of the replies).
    pub bytes: u64,
    /// Errors of every kind (any makes the exit code 1).
    pub errors: u64,
    /// Errors by kind: `mismatch`, `short_echo`, `early_close`, `reset`, `timeout`,
    /// `connect_failed`, `other`.
    pub errors_by_kind: ErrorCounts,
    /// The first error (by time), naming its connection and byte offset; `null` if none.
    pub first_error: Option<FirstError>,
    /// The errors by the second they happened in, seconds without errors left out, earliest
    /// first (errors before the measured phase come first, with `second` `null`): what
    /// `errors_by_kind` counts, over time. Empty without errors (and in results from before
    /// it).
    #[serde(default)]
    pub errors_over_time: Vec<ErrorSecond>,
    /// Wall-clock start of the measured phase, seconds since the Unix epoch (the StartTime of
    /// the interval log; in a merged result, the earliest agent's).
    pub started_at_unix_s: f64,
    /// With `--start-at`: how many seconds after it the load started, when it started late
    /// (connecting took longer, or the wait began too late); `null` if on time or not asked.
    pub start_late_s: Option<f64>,
    /// Length of the measured phase in seconds (warm-up excluded). In a merged result, from the
    /// earliest agent's start to the latest agent's end, in wall-clock time.
    pub duration_s: f64,
    /// Length of the warm-up in seconds.
    pub warmup_s: f64,
    /// Verified round trips per second.
    pub msgs_per_s: f64,
    /// Verified payload MiB (2^20 bytes) per second, one direction.
    pub mib_per_s: f64,
    /// Round-trip latency in microseconds. In rate mode measured from each message's intended
    /// send time (coordinated omission corrected); otherwise from the actual send. For a stream,
    /// per chunk: from the moment the window let it be queued for sending until its last byte
    /// came back. All zero (with `count` 0) when nothing was verified.
    pub latency_us: LatencySummary,
    /// Rate mode only: latency from the actual send time, the figure a naive tool would show.
    pub latency_uncorrected_us: Option<LatencySummary>,
    /// Time to establish a connection, in microseconds.
    pub connect_us: LatencySummary,
    /// Churn (`--messages-per-connection`) only: connections per second, connect latency and
    /// failed connections by cause; `null` otherwise (and absent in results from before it).
    #[serde(default)]
    pub churn: Option<ReconnectFigures>,
    /// `--tls` only: handshakes (full and resumed), their latency (`handshake_us`) and rate,
    /// failed handshakes by cause; `null` otherwise (and absent in results from before it).
    #[serde(default)]
    pub tls: Option<TlsFigures>,
    /// `--websocket` only: upgrades, their latency (`upgrade_us`) and rate, failed upgrades by
    /// cause, messages sent and echoed, close codes received; `null` otherwise (and absent in
    /// results from before it).
    #[serde(default)]
    pub websocket: Option<WebSocketFigures>,
    /// Verified messages per connection: min, median, max.
    pub fairness: Fairness,
    /// Verified messages per connection, every connection: `[messages, connections]` pairs,
    /// fewest first (so merged fairness is exact).
    pub messages_per_connection: Vec<[u64; 2]>,
    /// `--stream` only: echoed bytes per connection in the same form; `null` otherwise.
    pub echoed_bytes_per_connection: Option<Vec<[u64; 2]>>,
    /// Each client thread's CPU use in percent of one core (100 = saturated).
    pub client_cpu_pct: Vec<f64>,
    /// Rate mode: messages handed to a send per second in the measured window, what the client
    /// really generated against `target_rate`; `null` otherwise.
    #[serde(default)]
    pub sent_per_s: Option<f64>,
    /// What ramps, `"rate"` or `"connections"`; `null` without a ramp.
    #[serde(default)]
    pub ramp: Option<String>,
    /// A ramp's steps, in order, each with its target, what was sent and its latency; `null`
    /// without a ramp.
    #[serde(default)]
    pub steps: Option<Vec<StepFigures>>,
    /// `--stream` only: the echoed throughput, in total and per connection; `null` otherwise.
    pub stream: Option<StreamFigures>,
    /// `--udp` only: what became of the datagrams (sent, echoed, lost, duplicated, reordered,
    /// corrupted), every count exact; `null` otherwise (and absent in results from before it).
    #[serde(default)]
    pub datagrams: Option<Datagrams>,
    /// `--udp` only: the same counts per flow, each flow's jitter beside them, by flow (and in a
    /// merged result by agent, then flow); they add up to `datagrams`. Absent otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datagram_flows: Vec<DatagramFlow>,
    /// `--udp` only: the datagrams by the second they were sent in (seconds without any left
    /// out), earliest first; they add up to `datagrams`. Absent otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datagrams_over_time: Vec<DatagramSecond>,
    /// `--udp` only: RFC 3550's interarrival jitter in microseconds, over the flows; `null`
    /// otherwise.
    #[serde(default)]
    pub jitter_us: Option<Jitter>,
    /// `--udp --max-loss PCT`: the most datagrams lost, in percent of those sent, for the run to
    /// pass; `null` when loss alone never fails a run.
    #[serde(default)]
    pub max_loss_pct: Option<f64>,
    /// `--udp` only: whether Linux's UDP segmentation offload was used (`--no-gso` turns it
    /// off), and how often; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_offload: Option<crate::datagrams::UdpOffload>,
    /// Why a figure may be wrong and what to try (e.g. the client was the bottleneck).
    pub warnings: Vec<String>,
    /// `ringport merge` only: the agents' runs added into this result; empty for one run.
    pub merged_from: Vec<AgentRun>,
}

impl StressReport {
    /// Reads a report back from its JSON form.
    ///
    /// # Errors
    ///
    /// serde's description of what does not fit.
    pub fn from_json(text: &str) -> Result<StressReport, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Whether the run passed: no error of any kind, at least one verified round trip, and
    /// (`--max-loss`) no more datagrams lost than allowed.
    pub fn passed(&self) -> bool {
        self.errors == 0 && self.messages > 0 && !self.loss_exceeded()
    }

    /// Whether more datagrams were lost than `--max-loss` allows.
    pub fn loss_exceeded(&self) -> bool {
        match (self.max_loss_pct, &self.datagrams) {
            (Some(max), Some(d)) => d.loss_pct() > max,
            _ => false,
        }
    }

    /// Marks the run as interrupted (Ctrl-C) and says so in a warning.
    pub fn mark_interrupted(&mut self) {
        self.interrupted = true;
        self.warnings.push(format!(
            "interrupted after {:.2}s (asked for: {}): the figures cover the time run only",
            self.duration_s, self.stop
        ));
    }

    /// The process exit code the contract asks for: 1 if any error was found, else 130 if the
    /// run was [interrupted](Self::interrupted), else 0 if it [`passed`](Self::passed), else 1.
    pub fn exit_code(&self) -> i32 {
        if self.errors > 0 {
            1
        } else if self.interrupted {
            130
        } else if self.passed() {
            0
        } else {
            1
        }
    }

    /// The human-readable report, several aligned lines ending in a newline (the [`Human`]
    /// exporter).
    pub fn render(&self) -> String {
        Human.to_string(self)
    }

    /// The JSON form, pretty-printed, ending in a newline (the [`Json`] exporter).
    pub fn to_json(&self) -> String {
        Json.to_string(self)
    }

    /// Writes the JSON form to `target` (a file, created or truncated, or standard output).
    ///
    /// # Errors
    ///
    /// The I/O error of creating or writing the file.
    pub fn write_json(&self, target: &OutputTarget) -> io::Result<()> {
        Json.write_to(self, target)
    }
}

/// The `protocol` of a report that does not say (an older version's): echo.
fn echo_protocol() -> String {
    "echo".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_values() {
        assert_eq!(
            Spread::of(&[3.0, 1.0, 2.0, 9.0]),
            Spread {
                min: 1.0,
                median: 2.0,
                max: 9.0
            }
        );
        assert_eq!(Spread::of(&[]).max, 0.0);
    }
}
