//! The result of a latency search (`--find-max-rate`): each probed rate with its verdict
//! ([`Probe`]), and the report of the whole search ([`SearchReport`], its `--json` output).

use serde::{Deserialize, Serialize};

use crate::export::Exporter as _;

use crate::histogram::LatencySummary;

/// A latency percentile a target applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantile {
    /// The median.
    P50,
    /// The 99th percentile.
    P99,
    /// The 99.9th percentile.
    P999,
}

impl Quantile {
    /// The flag's name, `p50`, `p99` or `p999`.
    pub fn name(self) -> &'static str {
        match self {
            Quantile::P50 => "p50",
            Quantile::P99 => "p99",
            Quantile::P999 => "p99.9",
        }
    }

    /// This percentile of `l`.
    pub fn of(self, l: &LatencySummary) -> u64 {
        match self {
            Quantile::P50 => l.p50,
            Quantile::P99 => l.p99,
            Quantile::P999 => l.p999,
        }
    }
}

/// A latency target: this percentile at most `limit_us` microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyTarget {
    /// Which percentile.
    pub quantile: Quantile,
    /// Its limit, µs.
    pub limit_us: u64,
}

/// Exit code of a search that found no passing rate (documented in the README).
pub const EXIT_NO_PASSING_RATE: u8 = 4;

/// What a probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Every target held.
    Pass,
    /// A target was exceeded.
    Fail,
    /// Errors (timeouts, resets, ...) during the window.
    Errors,
    /// The client could not generate the rate: nothing is known of the server there.
    ClientBound,
    /// The server echoed wrong bytes (a mismatch or a short echo): the search stops there, as
    /// any run of `ringport stress` fails on them.
    WrongBytes,
}

/// Why a search made a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The exponential probe up or down.
    Probe,
    /// Bisection of the bracket.
    Bisect,
    /// Measuring the answer again.
    Repeat,
}

/// One probed rate: the curve's point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// Why it was made.
    pub phase: Phase,
    /// The target rate, messages per second.
    pub rate: f64,
    /// Messages the client handed to a send per second in the window.
    pub sent_per_s: f64,
    /// Verified round trips per second in the window.
    pub msgs_per_s: f64,
    /// Corrected latency over the window, µs.
    pub latency_us: LatencySummary,
    /// Errors in the window.
    pub errors: u64,
    /// The busiest client thread's CPU, percent of one core.
    pub client_cpu_max_pct: f64,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, in words (e.g. `p99 2140us > 2000us`).
    pub reason: String,
}

/// The result of a search: the `--json` output of `--find-max-rate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchReport {
    /// The server, `HOST:PORT`.
    pub target: String,
    /// The latency targets.
    pub targets: Vec<LatencyTarget>,
    /// Connections of every probe.
    pub connections: usize,
    /// Messages in flight per connection at most.
    pub pipeline: usize,
    /// Client threads.
    pub threads: usize,
    /// The payload, e.g. `64-byte random`.
    pub payload: String,
    /// The steady window each probe measured, seconds.
    pub window_s: f64,
    /// The warm-up discarded before each window, seconds.
    pub warmup_s: f64,
    /// Every probe in the order made: the measured curve.
    pub probes: Vec<Probe>,
    /// The highest rate that passed (msg/s); `null` if none did.
    pub answer: Option<f64>,
    /// The lowest rate above the answer that did not pass, `null` if none was found (the
    /// search reached `--max-rate`).
    pub first_failing: Option<f64>,
    /// Why that rate did not pass: `fail` (latency), `errors` or `client-bound`.
    pub first_failing_verdict: Option<Verdict>,
    /// How many of the repeated measurements of the answer passed, of how many.
    pub repeat_passed: usize,
    /// Repeated measurements made.
    pub repeat_total: usize,
    /// The conclusion in one sentence.
    pub conclusion: String,
}

impl SearchReport {
    /// The measured curve: one point per distinct probed rate (repeats folded into the worst
    /// latency seen), by rate.
    pub fn curve(&self) -> Vec<&Probe> {
        let mut pts: Vec<&Probe> = Vec::new();
        for p in &self.probes {
            match pts.iter_mut().find(|q| q.rate == p.rate) {
                Some(q) if p.latency_us.p99 > q.latency_us.p99 => *q = p,
                Some(_) => {}
                None => pts.push(p),
            }
        }
        pts.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        pts
    }

    /// The exit code: 1 when the server echoed wrong bytes, 0 with an answer,
    /// [`EXIT_NO_PASSING_RATE`] without one.
    pub fn exit_code(&self) -> u8 {
        if self.probes.iter().any(|p| p.verdict == Verdict::WrongBytes) {
            1
        } else if self.answer.is_some() {
            0
        } else {
            EXIT_NO_PASSING_RATE
        }
    }

    /// The header of the probe table (the human report's).
    pub fn table_header() -> String {
        crate::export::human::probe_table_header()
    }

    /// One probe as a row of the human report's table.
    pub fn table_row(p: &Probe) -> String {
        crate::export::human::probe_table_row(p)
    }

    /// The human report (the [`Human`](crate::export::Human) exporter).
    pub fn render(&self) -> String {
        crate::export::Human.to_string(self)
    }

    /// The JSON form, pretty-printed, ending in a newline (the [`Json`](crate::export::Json)
    /// exporter).
    pub fn to_json(&self) -> String {
        crate::export::Json.to_string(self)
    }
}
