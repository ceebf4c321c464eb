//! The result of a run and its outputs: the human report, JSON, and the HdrHistogram log.
//!
//! This module is responsible for [`StressReport`], the one result type of `ringport stress`
//! (every field documented, serialised as the JSON the command-line contract promises), and for
//! its exporters: [`StressReport::render`] (the human report, aligned columns in the manner of
//! wrk and fortio), [`StressReport::write_json`] (to a path or `-` for standard output) and
//! [`StressReport::interval_log`] (the standard HdrHistogram interval log, one interval per
//! second, see [`hdrlog`](crate::report::hdrlog), so runs from several machines can be merged).
//!
//! The JSON reads back ([`StressReport::from_json`]): `ringport merge` adds several agents'
//! results into one report of this same type.
//!
//! A report is built from the merged [`ThreadStats`] by [`StressReport::build`]; the engine adds
//! the facts only it knows (backend, measured duration, extra warnings).

pub mod hdrlog;
pub mod reconnects;
pub mod warnings;

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::config::{OutputTarget, Stop, StressConfig, Workload};
use crate::measure::error_counts::ErrorCounts;
use crate::measure::fairness::Fairness;
use crate::measure::histogram::LatencySummary;
use crate::measure::thread::ThreadStats;
use crate::plan::segment::Segment;
use crate::report::hdrlog::{IntervalLog, LogInterval, TAG_CONNECT, TAG_LATENCY, TAG_UNCORRECTED};
use crate::report::warnings::starved_warning;

/// In rate mode, a run that reaches less than this fraction of `--rate` gets a warning.
pub const RATE_SHORTFALL: f64 = 0.95;

/// The first error of a run, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstError {
    /// The failing connection, numbered from 1 as everywhere a connection is named (text
    /// messages call it `Thread <connection>`).
    pub connection: u64,
    /// The kind, as in `errors_by_kind`.
    pub kind: String,
    /// Connection-relative byte offset where it happened (`null` if it never connected).
    pub offset: Option<u64>,
    /// The full message, e.g. `mismatch at byte 1234 (message 5, byte 6): expected 0x41, got 0x40`.
    pub detail: String,
}

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

impl StreamFigures {
    /// The figures of `stats` over `secs` seconds, for chunks of `chunk` bytes and `in_flight`
    /// chunks per connection.
    pub fn of(stats: &ThreadStats, secs: f64, chunk: usize, in_flight: usize) -> StreamFigures {
        let gbit = |bytes: u64| {
            if secs > 0.0 {
                bytes as f64 * 8.0 / secs / 1e9
            } else {
                0.0
            }
        };
        let per_connection: Vec<f64> = stats
            .per_connection_echoed
            .iter()
            .map(|&b| gbit(b))
            .collect();
        StreamFigures {
            bytes: stats.echoed,
            seconds: secs,
            gbit_per_s: gbit(stats.echoed),
            mib_per_s: if secs > 0.0 {
                stats.echoed as f64 / secs / (1u64 << 20) as f64
            } else {
                0.0
            },
            per_connection_gbit_per_s: Spread::of(&per_connection),
            window_bytes: (chunk * in_flight) as u64,
            chunk_bytes: chunk as u64,
        }
    }
}

/// `values` sorted and run-length encoded: `[value, how many]` pairs, smallest value first.
/// Per-connection figures travel in this form so that `ringport merge` can take the exact
/// median of the union (a run where every connection did its `--count` is one pair).
pub fn run_lengths(values: &[u64]) -> Vec<[u64; 2]> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let mut out: Vec<[u64; 2]> = Vec::new();
    for v in sorted {
        match out.last_mut() {
            Some(last) if last[0] == v => last[1] += 1,
            _ => out.push([v, 1]),
        }
    }
    out
}

/// The value at sorted position `k` (0-based) of run-length encoded `runs`.
fn nth_of_runs(runs: &[[u64; 2]], k: u64) -> Option<u64> {
    let mut seen = 0;
    for &[v, n] in runs {
        seen += n;
        if k < seen {
            return Some(v);
        }
    }
    None
}

/// Min, (lower) median and max of run-length encoded `runs` (see [`run_lengths`]), which need
/// not be sorted or merged; `None` when empty.
pub fn fairness_of_runs(runs: &[[u64; 2]]) -> Option<Fairness> {
    let mut sorted = runs.to_vec();
    sorted.sort_unstable();
    let n: u64 = sorted.iter().map(|r| r[1]).sum();
    if n == 0 {
        return None;
    }
    Some(Fairness {
        min: nth_of_runs(&sorted, 0)?,
        median: nth_of_runs(&sorted, (n - 1) / 2)?,
        max: nth_of_runs(&sorted, n - 1)?,
    })
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
    pub churn: Option<crate::report::reconnects::ReconnectFigures>,
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
    /// Why a figure may be wrong and what to try (e.g. the client was the bottleneck).
    pub warnings: Vec<String>,
    /// `ringport merge` only: the agents' runs added into this result; empty for one run.
    pub merged_from: Vec<AgentRun>,
}

impl StressReport {
    /// Builds the report of a run of `config` from the merged `stats`, measured over `measured`
    /// (warm-up excluded), on `backend`. Adds the warnings the numbers call for.
    pub fn build(
        config: &StressConfig,
        stats: &ThreadStats,
        measured: Duration,
        backend: &str,
    ) -> StressReport {
        let secs = measured.as_secs_f64();
        let per_s = |x: f64| if secs > 0.0 { x / secs } else { 0.0 };
        let workload = config.workload();
        let rate_mode = matches!(workload, Workload::Rate { .. });
        let stream_mode = matches!(workload, Workload::Stream { .. });
        let mut warnings = Vec::new();
        if let Some(w) = stats.client_bound_warning() {
            warnings.push(w);
        }
        let msgs_per_s = per_s(stats.messages as f64);
        let own_connections = config.own_connections().len();
        let steps = step_figures(config, stats);
        for st in steps.iter().flatten() {
            if config.rate_ramp.is_some() && st.sent_per_s < st.target * RATE_SHORTFALL {
                warnings.push(format!(
                    "step {}: the client sent {:.1} of {:.1} msg/s ({:.0}%): it could not generate \
                     this step's rate, so its corrected latency includes queueing in the client: \
                     raise --pipeline, --connections or --threads",
                    st.step,
                    st.sent_per_s,
                    st.target,
                    100.0 * st.sent_per_s / st.target
                ));
            }
        }
        if let Some(rate) = config.own_rate().filter(|_| config.rate_ramp.is_none()) {
            if stats.messages > 0 && msgs_per_s < rate * RATE_SHORTFALL {
                warnings.push(format!(
                    "rate not reached: {msgs_per_s:.1} of {rate} msg/s ({:.0}%); the server or the \
                     client could not keep up, so the corrected latency includes queueing: lower \
                     --rate, or raise --pipeline or --connections",
                    100.0 * msgs_per_s / rate
                ));
            }
        }
        if stats.messages == 0 {
            warnings.push("no round trip was verified: every figure is empty".to_string());
        }
        if let Some(w) = starved_warning(&stats.per_connection, stream_mode) {
            warnings.push(w);
        }
        if stats.closed_at_byte_0 > 0 {
            warnings.push(format!(
                "{} of {} connections were closed or reset by the server before it echoed a \
                 byte: a server-side connection limit is the likely cause (for ringport serve: \
                 --max-per-ip, --max-connections; its log says which)",
                stats.closed_at_byte_0,
                // With churn, of the connections made (each slot reconnects).
                if config.messages_per_connection.is_some() {
                    stats.connect.len()
                } else {
                    own_connections as u64
                }
            ));
        }
        let first_error = stats.first_error.as_ref().map(|e| FirstError {
            connection: e.connection + 1,
            kind: e.kind.as_str().to_string(),
            offset: e.offset,
            detail: e.detail.clone(),
        });
        StressReport {
            target: format!("{}:{}", config.host, config.port),
            backend: backend.to_string(),
            mode: match workload {
                Workload::Closed { .. } => "closed",
                Workload::Rate { .. } => "rate",
                Workload::Stream { .. } => "stream",
            }
            .to_string(),
            protocol: if config.requests.is_empty() {
                echo_protocol()
            } else {
                "request-response".to_string()
            },
            run_id: format!("{:016x}", rand::random::<u64>()),
            segment: config.segment,
            connections: own_connections,
            connections_total: config.connections,
            connections_established: stats.connect.len(),
            threads: config.effective_threads(),
            pipeline: config.pipeline,
            payload: match config.script() {
                Ok(Some(script)) => script.describe(),
                _ => config.payload().describe(),
            },
            stop: match config.stop() {
                Stop::Count(n) if stream_mode => format!("{n} chunks per connection"),
                stop => stop.to_string(),
            },
            interrupted: false,
            target_rate: config.own_rate(),
            target_rate_total: config.rate,
            seed: config.seed,
            messages: stats.messages,
            bytes: stats.bytes,
            errors: stats.errors.total(),
            errors_by_kind: stats.errors,
            first_error,
            started_at_unix_s: 0.0,
            start_late_s: None,
            duration_s: secs,
            warmup_s: config.warmup.as_secs_f64(),
            msgs_per_s,
            mib_per_s: per_s(stats.bytes as f64) / (1u64 << 20) as f64,
            latency_us: LatencySummary::of_or_zero(&stats.latency),
            latency_uncorrected_us: if rate_mode {
                Some(LatencySummary::of_or_zero(&stats.latency_uncorrected))
            } else {
                None
            },
            connect_us: LatencySummary::of_or_zero(&stats.connect),
            churn: None,
            fairness: stats.fairness().unwrap_or(Fairness {
                min: 0,
                median: 0,
                max: 0,
            }),
            messages_per_connection: run_lengths(&stats.per_connection),
            echoed_bytes_per_connection: stream_mode
                .then(|| run_lengths(&stats.per_connection_echoed)),
            client_cpu_pct: stats
                .cpu
                .iter()
                .map(|c| (c.utilization() * 1000.0).round() / 10.0)
                .collect(),
            stream: stream_mode.then(|| {
                StreamFigures::of(
                    stats,
                    secs,
                    config.payload().max_len(),
                    config.messages_in_flight(),
                )
            }),
            sent_per_s: rate_mode.then(|| per_s(stats.sent as f64)),
            ramp: config.ramp().map(|(which, _)| which.to_string()),
            steps,
            warnings,
            merged_from: Vec::new(),
        }
    }

    /// Reads a report back from its JSON form.
    ///
    /// # Errors
    ///
    /// serde's description of what does not fit.
    pub fn from_json(text: &str) -> Result<StressReport, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The run's interval log: a `connect` interval over the run, and from `stats`' per-second
    /// intervals ([`ThreadStats::start_intervals`]) a `latency` interval per second that has
    /// values (and in rate mode an `uncorrected` one beside it), stamped from
    /// [`started_at_unix_s`](Self::started_at_unix_s).
    pub fn interval_log(&self, stats: &ThreadStats) -> IntervalLog {
        let measured = Duration::from_secs_f64(self.duration_s.max(0.0));
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(self.started_at_unix_s);
        let mut intervals = vec![LogInterval::new(
            TAG_CONNECT,
            Duration::ZERO,
            measured,
            &stats.connect,
        )];
        let rate_mode = self.mode == "rate";
        if let Some(iv) = &stats.intervals {
            for (second, latency, uncorrected) in iv.seconds() {
                let at = Duration::from_secs(second);
                let length = measured.saturating_sub(at).min(Duration::from_secs(1));
                intervals.push(LogInterval::new(TAG_LATENCY, at, length, &latency));
                if rate_mode {
                    intervals.push(LogInterval::new(TAG_UNCORRECTED, at, length, &uncorrected));
                }
            }
        }
        IntervalLog {
            start,
            run_id: Some(self.run_id.clone()),
            segment: self.segment,
            intervals,
        }
    }

    /// Whether the run passed: no error of any kind and at least one verified round trip.
    pub fn passed(&self) -> bool {
        self.errors == 0 && self.messages > 0
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

    /// The human-readable report, several aligned lines ending in a newline.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let mode = match (&self.stream, self.target_rate) {
            (Some(st), _) => format!(
                "stream, window {} per connection",
                human_bytes(st.window_bytes)
            ),
            (None, Some(r)) if self.ramp.as_deref() == Some("rate") => {
                format!(
                    "open loop, rate ramp up to {r} msg/s, pipeline {}",
                    self.pipeline
                )
            }
            (None, Some(r)) => format!("open loop at {r} msg/s, pipeline {}", self.pipeline),
            (None, None) if self.pipeline > 1 => {
                format!("closed loop, pipeline {}", self.pipeline)
            }
            (None, None) => "closed loop".to_string(),
        };
        let unit = if self.stream.is_some() {
            "chunks"
        } else {
            "round trips"
        };
        let _ = writeln!(
            s,
            "ringport {} {} ({}): {} on {}, {}, {}, {}",
            if self.merged_from.is_empty() {
                "stress"
            } else {
                "merge"
            },
            self.target,
            self.backend,
            plural(self.connections as u64, "connection", "connections"),
            plural(self.threads as u64, "thread", "threads"),
            mode,
            self.stop,
            self.payload
        );
        if let Some(seg) = self.segment {
            let range = seg.range(self.connections_total);
            let _ = writeln!(
                s,
                "  {:<14}{seg}: connections {}-{} of {}{}",
                "segment",
                range.start + 1,
                range.end,
                self.connections_total,
                match (self.target_rate, self.target_rate_total) {
                    (Some(own), Some(all)) => format!(", {own} of {all} msg/s"),
                    _ => String::new(),
                }
            );
        }
        if !self.merged_from.is_empty() {
            let segments: Vec<String> = self
                .merged_from
                .iter()
                .map(|a| {
                    a.segment
                        .map_or_else(|| "whole".to_string(), |s| s.to_string())
                })
                .collect();
            let starts = self.merged_from.iter().map(|a| a.started_at_unix_s);
            let spread = starts.clone().fold(f64::MIN, f64::max) - starts.fold(f64::MAX, f64::min);
            let _ = writeln!(
                s,
                "  {:<14}{} agents (segments {}), measuring began within {:.3}s of each other",
                "merged",
                self.merged_from.len(),
                segments.join(" "),
                spread
            );
        }
        let _ = writeln!(
            s,
            "  {:<14}{} {unit}, {} in {:.2}s{}{}",
            "verified",
            self.messages,
            human_bytes(self.bytes),
            self.duration_s,
            if self.warmup_s > 0.0 {
                format!(" (after {:.1}s warm-up)", self.warmup_s)
            } else {
                String::new()
            },
            if self.interrupted {
                " (interrupted)"
            } else {
                ""
            }
        );
        match &self.stream {
            Some(st) => {
                let _ = writeln!(
                    s,
                    "  {:<14}{:.3} Gbit/s, {:.2} MiB/s ({} verified as it arrived)",
                    "echoed",
                    st.gbit_per_s,
                    st.mib_per_s,
                    human_bytes(st.bytes)
                );
                let p = &st.per_connection_gbit_per_s;
                let _ = writeln!(
                    s,
                    "  {:<14}min {:.3}  median {:.3}  max {:.3} Gbit/s per connection",
                    "", p.min, p.median, p.max
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "  {:<14}{:.1} msg/s, {:.2} MiB/s",
                    "throughput", self.msgs_per_s, self.mib_per_s
                );
            }
        }
        let _ = writeln!(
            s,
            "  {:<14}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}",
            "latency (us)", "min", "p50", "p90", "p99", "p99.9", "max"
        );
        let row = |s: &mut String, name: &str, l: &LatencySummary| {
            let _ = writeln!(
                s,
                "  {:<14}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}",
                name, l.min, l.p50, l.p90, l.p99, l.p999, l.max
            );
        };
        match (&self.latency_uncorrected_us, &self.stream) {
            (Some(u), _) => {
                row(&mut s, "  corrected", &self.latency_us);
                row(&mut s, "  uncorrected", u);
            }
            (None, Some(_)) => {
                row(&mut s, "  chunk", &self.latency_us);
                let _ = writeln!(
                    s,
                    "  {:<14}(from queued for sending, once the window has room, to last byte \
                     echoed)",
                    ""
                );
            }
            (None, None) => row(&mut s, "  round trip", &self.latency_us),
        }
        row(&mut s, "connect (us)", &self.connect_us);
        if let (Some(steps), Some(which)) = (&self.steps, &self.ramp) {
            let _ = writeln!(
                s,
                "  {:<14}{:>5}{:>8}{:>11}{:>11}{:>11}{:>9}{:>9}{:>9}",
                "ramp steps",
                "step",
                "start",
                if which == "rate" {
                    "target/s"
                } else {
                    "target"
                },
                "sent/s",
                "done/s",
                "p50",
                "p99",
                "p99.9"
            );
            for st in steps {
                let _ = writeln!(
                    s,
                    "  {:<14}{:>5}{:>7.1}s{:>11.1}{:>11.1}{:>11.1}{:>9}{:>9}{:>9}",
                    "",
                    st.step,
                    st.start_s,
                    st.target,
                    st.sent_per_s,
                    st.msgs_per_s,
                    st.latency_us.p50,
                    st.latency_us.p99,
                    st.latency_us.p999
                );
            }
        }
        if let Some(churn) = &self.churn {
            s.push_str(&churn.render());
        }
        let _ = writeln!(
            s,
            "  {:<14}min {}  median {}  max {} {} per connection ({} of {} connected)",
            "fairness",
            self.fairness.min,
            self.fairness.median,
            self.fairness.max,
            if self.stream.is_some() {
                "chunks"
            } else {
                "messages"
            },
            self.connections_established,
            self.connections
        );
        if self.churn.is_some() {
            // Churn: "per connection" is per connection slot, each of which reconnected.
            let at = s.trim_end_matches('\n').rfind('(').unwrap_or(s.len());
            s.truncate(at);
            s.push_str("(per connection slot, reconnecting)\n");
        }
        if self.errors == 0 {
            let _ = writeln!(s, "  {:<14}0", "errors");
        } else {
            let kinds: Vec<String> = self
                .errors_by_kind
                .nonzero()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let _ = writeln!(
                s,
                "  {:<14}{} ({})",
                "errors",
                self.errors,
                kinds.join(", ")
            );
        }
        if let Some(e) = &self.first_error {
            let _ = writeln!(
                s,
                "  {:<14}connection {}{}: {}",
                "first error",
                e.connection,
                e.offset.map(|o| format!(", byte {o}")).unwrap_or_default(),
                e.detail
            );
        }
        if !self.client_cpu_pct.is_empty() {
            let _ = writeln!(
                s,
                "  {:<14}{}",
                "client cpu",
                describe_client_cpu(&self.client_cpu_pct)
            );
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        s
    }

    /// The JSON form, pretty-printed, ending in a newline.
    pub fn to_json(&self) -> String {
        let mut j = serde_json::to_string_pretty(self).expect("a report always serialises");
        j.push('\n');
        j
    }

    /// Writes the JSON form to `target` (a file, created or truncated, or standard output).
    ///
    /// # Errors
    ///
    /// The I/O error of creating or writing the file.
    pub fn write_json(&self, target: &OutputTarget) -> io::Result<()> {
        match target {
            OutputTarget::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(self.to_json().as_bytes())?;
                out.flush()
            }
            OutputTarget::Path(p) => std::fs::write(p, self.to_json()),
        }
    }
}

/// `n` and the noun in the number it needs: `1 connection`, `2 connections`.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The client threads' CPU use, labelled: each thread's (numbered from 1) up to eight threads,
/// otherwise their spread. 100% is one core.
fn describe_client_cpu(pct: &[f64]) -> String {
    if pct.len() <= 8 {
        let each: Vec<String> = pct
            .iter()
            .enumerate()
            .map(|(i, p)| format!("thread {} {p:.0}%", i + 1))
            .collect();
        format!("{} (100% = one core)", each.join(", "))
    } else {
        let mut sorted = pct.to_vec();
        sorted.sort_by(f64::total_cmp);
        format!(
            "min {:.0}%  median {:.0}%  max {:.0}% over {} threads (100% = one core)",
            sorted[0],
            sorted[sorted.len() / 2],
            sorted[sorted.len() - 1],
            sorted.len()
        )
    }
}

/// The `protocol` of a report that does not say (an older version's): echo.
fn echo_protocol() -> String {
    "echo".to_string()
}

/// The figures of each step of `config`'s ramp from `stats`' per-step histograms; `None`
/// without a ramp.
fn step_figures(config: &StressConfig, stats: &ThreadStats) -> Option<Vec<StepFigures>> {
    let steps = config.ramp_steps()?;
    let measured = stats.steps.as_ref();
    Some(
        steps
            .iter()
            .enumerate()
            .map(|(i, st)| {
                let secs = st.len.as_secs_f64();
                let per_s = |x: u64| if secs > 0.0 { x as f64 / secs } else { 0.0 };
                let (latency, sent) = match measured {
                    Some(m) => (
                        LatencySummary::of_or_zero(&m.latency[i]),
                        m.sent.get(i).copied().unwrap_or(0),
                    ),
                    None => (
                        LatencySummary::of_or_zero(&crate::measure::histogram::new_histogram()),
                        0,
                    ),
                };
                StepFigures {
                    step: i + 1,
                    start_s: st.start.as_secs_f64(),
                    duration_s: secs,
                    target: st.target,
                    sent_per_s: per_s(sent),
                    msgs_per_s: per_s(latency.count),
                    messages: latency.count,
                    latency_us: latency,
                }
            })
            .collect(),
    )
}

/// `bytes` in the largest binary unit that keeps it above 1, e.g. `1.50 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ConnError;
    use crate::measure::cpu::ThreadCpu;
    use crate::protocol::echo::{Completed, SendStamp};
    use std::time::Instant;

    fn stats_with(n: u64, connections: usize) -> ThreadStats {
        let mut s = ThreadStats::new(connections);
        let t0 = Instant::now();
        for i in 0..n {
            let done = Completed {
                stamp: SendStamp {
                    index: i + 1,
                    intended: t0,
                    sent: t0 + Duration::from_micros(5),
                },
                len: 64,
            };
            s.record_message(
                (i as usize) % connections,
                &done,
                t0 + Duration::from_micros(10 + i),
            );
        }
        for _ in 0..connections {
            s.record_connect(Duration::from_micros(40));
        }
        s
    }

    fn config() -> StressConfig {
        StressConfig {
            connections: 4,
            threads: 2,
            count: Some(25),
            size: Some(64),
            ..StressConfig::default()
        }
    }

    #[test]
    fn json_has_the_contract_keys() {
        let r = StressReport::build(
            &config(),
            &stats_with(100, 4),
            Duration::from_secs(2),
            "uring",
        );
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        for key in [
            "connections",
            "messages",
            "bytes",
            "errors",
            "errors_by_kind",
            "duration_s",
            "msgs_per_s",
            "mib_per_s",
            "latency_us",
            "latency_uncorrected_us",
            "fairness",
            "connect_us",
            "warnings",
            "first_error",
            "backend",
            "interrupted",
        ] {
            assert!(v.get(key).is_some(), "missing key {key}");
        }
        for q in ["min", "p50", "p90", "p99", "p999", "max"] {
            assert!(v["latency_us"][q].is_u64(), "latency_us.{q}");
        }
        assert_eq!(v["connections"], 4);
        assert_eq!(v["messages"], 100);
        assert_eq!(v["bytes"], 6400);
        assert_eq!(v["errors"], 0);
        assert!(v["errors"].is_u64(), "errors is an integer total");
        assert_eq!(v["errors_by_kind"]["mismatch"], 0);
        assert_eq!(v["msgs_per_s"], 50.0);
        assert_eq!(v["latency_us"]["min"], 10);
        assert_eq!(v["latency_us"]["max"], 109);
        assert_eq!(v["fairness"]["min"], 25);
        assert_eq!(v["connect_us"]["p50"], 40);
        assert_eq!(v["backend"], "uring");
        assert!(
            v["latency_uncorrected_us"].is_null(),
            "closed loop has one latency"
        );
        assert!(r.passed());
        assert_eq!(r.exit_code(), 0);
    }

    #[test]
    fn stream_json_has_the_contract_object() {
        let c = StressConfig {
            stream: true,
            size: None,
            count: None,
            duration: Some(Duration::from_secs(2)),
            ..config()
        };
        let mut s = stats_with(100, 4);
        // 4 connections: 1, 2, 3 and 0 GB in 2 s.
        for (conn, gb) in [(0, 1), (1, 2), (2, 3)] {
            s.record_echoed(conn, gb * 1_000_000_000);
        }
        let r = StressReport::build(&c, &s, Duration::from_secs(2), "uring");
        assert_eq!(r.mode, "stream");
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        let st = &v["stream"];
        assert_eq!(st["bytes"], 6_000_000_000u64);
        assert!(st["bytes"].is_u64());
        assert_eq!(st["seconds"], 2.0);
        assert_eq!(st["gbit_per_s"], 24.0);
        let mib = 6e9 / 2.0 / (1u64 << 20) as f64;
        assert!(
            (st["mib_per_s"].as_f64().unwrap() - mib).abs() < 1e-6,
            "{st}"
        );
        assert_eq!(st["per_connection_gbit_per_s"]["min"], 0.0);
        assert_eq!(st["per_connection_gbit_per_s"]["median"], 4.0);
        assert_eq!(st["per_connection_gbit_per_s"]["max"], 12.0);
        assert_eq!(st["window_bytes"], 256 << 10);
        assert_eq!(st["chunk_bytes"], 64 << 10);
        let text = r.render();
        assert!(
            text.contains("stream, window 256.00 KiB per connection"),
            "{text}"
        );
        assert!(text.contains("24.000 Gbit/s"), "{text}");
        assert!(
            text.contains("min 0.000  median 4.000  max 12.000 Gbit/s"),
            "{text}"
        );
        assert!(text.contains("    chunk "), "{text}");
        assert!(text.contains("to last byte echoed"), "{text}");
        println!("{text}");
        // Echo mode has no stream object.
        let echo = StressReport::build(&config(), &s, Duration::from_secs(2), "uring");
        let v: serde_json::Value = serde_json::from_str(&echo.to_json()).unwrap();
        assert!(v["stream"].is_null());
    }

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

    #[test]
    fn rate_mode_reports_both_latencies_and_a_shortfall() {
        let c = StressConfig {
            rate: Some(1000.0),
            ..config()
        };
        let r = StressReport::build(&c, &stats_with(100, 4), Duration::from_secs(1), "epoll");
        assert_eq!(r.mode, "rate");
        let u = r.latency_uncorrected_us.expect("uncorrected in rate mode");
        assert_eq!(u.min, 5);
        assert_eq!(r.latency_us.min, 10);
        assert!(
            r.warnings.iter().any(|w| w.starts_with("rate not reached")),
            "{:?}",
            r.warnings
        );
        let text = r.render();
        assert!(
            text.contains("corrected") && text.contains("uncorrected"),
            "{text}"
        );
    }

    #[test]
    fn errors_fail_the_run_and_name_the_first() {
        let mut s = stats_with(10, 2);
        let t = Instant::now();
        s.record_error(
            1,
            &ConnError::Mismatch {
                offset: 1234,
                message: 20,
                offset_in_message: 18,
                expected: Some(0x41),
                got: 0x40,
            },
            t,
        );
        s.record_error(
            0,
            &ConnError::EarlyClose { offset: 64 },
            t + Duration::from_millis(1),
        );
        let r = StressReport::build(&config(), &s, Duration::from_secs(1), "uring");
        assert_eq!(r.errors, 2);
        assert_eq!(r.exit_code(), 1);
        let first = r.first_error.clone().unwrap();
        assert_eq!(
            (first.connection, first.kind.as_str(), first.offset),
            (2, "mismatch", Some(1234)),
            "connection index 1 is the second connection"
        );
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["errors_by_kind"]["mismatch"], 1);
        assert_eq!(v["errors_by_kind"]["early_close"], 1);
        assert_eq!(v["first_error"]["offset"], 1234);
        let text = r.render();
        assert!(
            text.contains("errors        2 (mismatch 1, early_close 1)"),
            "{text}"
        );
        assert!(
            text.contains("first error   connection 2, byte 1234: mismatch"),
            "{text}"
        );
    }

    #[test]
    fn an_empty_run_fails_and_warns() {
        let r = StressReport::build(
            &config(),
            &ThreadStats::new(4),
            Duration::from_secs(1),
            "uring",
        );
        assert!(!r.passed());
        assert_eq!(r.latency_us.count, 0);
        assert!(r.warnings.iter().any(|w| w.contains("no round trip")));
    }

    #[test]
    fn client_bound_warning_reaches_report_and_json() {
        let mut s = stats_with(10, 2);
        s.cpu.push(ThreadCpu {
            wall: Duration::from_secs(1),
            cpu: Duration::from_millis(990),
        });
        let r = StressReport::build(&config(), &s, Duration::from_secs(1), "uring");
        assert_eq!(r.client_cpu_pct, vec![99.0]);
        assert!(
            r.render()
                .contains("client cpu    thread 1 99% (100% = one core)"),
            "issue 14: the figure is labelled: {}",
            r.render()
        );
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert!(v["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("client-bound"));
        assert!(r.render().contains("warning: client-bound"));
    }

    #[test]
    fn human_report_is_aligned() {
        let r = StressReport::build(
            &config(),
            &stats_with(100, 4),
            Duration::from_secs(2),
            "uring",
        );
        let text = r.render();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0]
            .starts_with("ringport stress 127.0.0.1:3333 (uring): 4 connections on 2 threads"));
        let header = lines
            .iter()
            .find(|l| l.contains("latency (us)"))
            .expect(&text);
        let row = lines
            .iter()
            .find(|l| l.starts_with("    round trip"))
            .expect(&text);
        // Columns are right-aligned: each number ends where its header ends.
        let p50 = format!(" {}", r.latency_us.p50);
        assert_eq!(
            header.find("p50").unwrap() + 3,
            row.find(&p50).unwrap() + p50.len()
        );
        assert_eq!(header.len(), row.len());
        assert!(text.contains("errors        0"), "{text}");
        assert!(text.ends_with('\n'));
        println!("{text}");
    }

    #[test]
    fn human_bytes_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(3 << 20), "3.00 MiB");
    }

    #[test]
    fn json_goes_to_a_file() {
        let dir = std::env::temp_dir().join(format!("ringport-stress-json-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.json");
        let r = StressReport::build(
            &config(),
            &stats_with(8, 4),
            Duration::from_secs(1),
            "uring",
        );
        r.write_json(&OutputTarget::Path(path.clone())).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["messages"], 8);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn interval_log_has_one_tagged_interval_per_second() {
        let c = StressConfig {
            rate: Some(100.0),
            ..config()
        };
        let t0 = Instant::now();
        let mut s = ThreadStats::new(4);
        s.start_intervals(t0);
        // Completions at 0.1 s, 0.2 s, 1.5 s and 2.2 s into a 2.5 s run.
        for (i, ms) in [100u64, 200, 1500, 2200].into_iter().enumerate() {
            let done = Completed {
                stamp: SendStamp {
                    index: i as u64 + 1,
                    intended: t0 + Duration::from_millis(ms) - Duration::from_micros(50),
                    sent: t0 + Duration::from_millis(ms) - Duration::from_micros(30),
                },
                len: 64,
            };
            s.record_message(i % 4, &done, t0 + Duration::from_millis(ms));
        }
        s.record_connect(Duration::from_micros(40));
        let mut r = StressReport::build(&c, &s, Duration::from_millis(2500), "uring");
        r.started_at_unix_s = 1_700_000_000.0;
        let log = r.interval_log(&s);
        assert_eq!(log.run_id.as_deref(), Some(r.run_id.as_str()));
        assert_eq!(
            log.start,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
        let shape: Vec<(&str, u64, u64, u64)> = log
            .intervals
            .iter()
            .map(|i| {
                (
                    i.tag.as_str(),
                    i.start.as_millis() as u64,
                    i.length.as_millis() as u64,
                    i.histogram().unwrap().len(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                ("connect", 0, 2500, 1),
                ("latency", 0, 1000, 2),
                ("uncorrected", 0, 1000, 2),
                ("latency", 1000, 1000, 1),
                ("uncorrected", 1000, 1000, 1),
                ("latency", 2000, 500, 1),
                ("uncorrected", 2000, 500, 1),
            ]
        );
        assert_eq!(log.total(TAG_LATENCY).unwrap().unwrap(), s.latency);
        assert_eq!(
            log.total(TAG_UNCORRECTED).unwrap().unwrap(),
            s.latency_uncorrected
        );
        // Written and read back through the standard format, nothing changes.
        let mut out = Vec::new();
        log.write_to(&mut out).unwrap();
        let back = IntervalLog::parse(&out).unwrap();
        assert_eq!(back.total(TAG_LATENCY).unwrap().unwrap(), s.latency);
        assert_eq!(back.intervals.len(), 7);
    }

    #[test]
    fn json_reads_back_as_the_same_report() {
        let mut s = stats_with(100, 4);
        s.record_error(2, &ConnError::EarlyClose { offset: 64 }, Instant::now());
        let r = StressReport::build(&config(), &s, Duration::from_secs(2), "uring");
        let back = StressReport::from_json(&r.to_json()).unwrap();
        assert_eq!(back, r);
        assert_eq!(r.protocol, "echo");
        // A result written before `protocol` existed reads back as echo.
        let mut old: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        old.as_object_mut().unwrap().remove("protocol");
        let back = StressReport::from_json(&old.to_string()).unwrap();
        assert_eq!(back.protocol, "echo");
    }

    #[test]
    fn fairness_from_run_lengths_is_exact() {
        let runs = run_lengths(&[5, 3, 5, 9, 3, 3]);
        assert_eq!(runs, vec![[3, 3], [5, 2], [9, 1]]);
        // Two agents' runs, unsorted and overlapping: the union is 1 3 3 3 5 5 7 9.
        let merged = [runs.clone(), vec![[7, 1], [1, 1]]].concat();
        assert_eq!(
            fairness_of_runs(&merged),
            Some(Fairness {
                min: 1,
                median: 3,
                max: 9
            })
        );
        assert_eq!(fairness_of_runs(&[]), None);
    }

    /// Issue 14: `1 connections on 1 threads`.
    #[test]
    fn issue14_the_header_counts_in_the_right_number() {
        let mut c = config();
        c.connections = 1;
        c.threads = 1;
        let r = StressReport::build(&c, &stats_with(10, 1), Duration::from_secs(1), "uring");
        let text = r.render();
        assert!(
            text.contains("(uring): 1 connection on 1 thread,"),
            "{text}"
        );
    }

    #[test]
    fn many_threads_cpu_is_a_spread() {
        let pct: Vec<f64> = (1..=10).map(|i| f64::from(i) * 10.0).collect();
        assert_eq!(
            describe_client_cpu(&pct),
            "min 10%  median 60%  max 100% over 10 threads (100% = one core)"
        );
    }

    /// Issue 14: a starved connection (`serve --model single`, `stress --connections 3`:
    /// fairness min 0) got no warning.
    #[test]
    fn issue14_a_starved_connection_is_warned_about() {
        let w = starved_warning(&[0, 500, 0], false).expect("a warning");
        assert!(
            w.starts_with("starved: 2 of 3 connections had no round trip"),
            "{w}"
        );
        assert!(w.contains("another had 500"), "{w}");
        assert_eq!(starved_warning(&[3, 500, 7], false), None);
        assert_eq!(
            starved_warning(&[0, 0], false),
            None,
            "nothing verified: another warning"
        );
        let mut s = ThreadStats::new(3);
        let t0 = Instant::now();
        for i in 0..10 {
            let done = Completed {
                stamp: SendStamp {
                    index: i + 1,
                    intended: t0,
                    sent: t0,
                },
                len: 64,
            };
            s.record_message(1, &done, t0 + Duration::from_micros(50));
        }
        let mut c = config();
        c.connections = 3;
        let r = StressReport::build(&c, &s, Duration::from_secs(1), "uring");
        assert_eq!(r.fairness.min, 0);
        assert!(
            r.render().contains("warning: starved: 2 of 3 connections"),
            "{}",
            r.render()
        );
    }
}
