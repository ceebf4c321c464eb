//! The search's result: each probe's verdict ([`Probe::judge`]) and the report of the whole
//! search, with its human table and JSON.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::config::LatencyTarget;
use crate::error::ErrorKind;
use crate::measure::cpu::CLIENT_BOUND_THRESHOLD;
use crate::measure::histogram::LatencySummary;
use crate::report::{StressReport, RATE_SHORTFALL};

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

impl Probe {
    /// Judges the report of a run at `rate` against `targets`.
    pub fn judge(phase: Phase, rate: f64, r: &StressReport, targets: &[LatencyTarget]) -> Probe {
        let sent = r.sent_per_s.unwrap_or(0.0);
        let cpu = r.client_cpu_pct.iter().cloned().fold(0.0, f64::max);
        let missed: Vec<String> = targets
            .iter()
            .filter(|t| t.quantile.of(&r.latency_us) > t.limit_us)
            .map(|t| {
                format!(
                    "{} {}us > {}us",
                    t.quantile.name(),
                    t.quantile.of(&r.latency_us),
                    t.limit_us
                )
            })
            .collect();
        let wrong =
            r.errors_by_kind.get(ErrorKind::Mismatch) + r.errors_by_kind.get(ErrorKind::ShortEcho);
        let (verdict, reason) = if wrong > 0 {
            (
                Verdict::WrongBytes,
                format!(
                    "the server echoed wrong bytes: {}",
                    r.first_error.as_ref().map_or_else(
                        || format!("{wrong} errors"),
                        |e| format!("connection {}: {}", e.connection, e.detail)
                    )
                ),
            )
        } else if sent < rate * RATE_SHORTFALL {
            (
                Verdict::ClientBound,
                format!(
                    "client-bound: sent {sent:.0} of {rate:.0} msg/s ({:.0}%)",
                    100.0 * sent / rate
                ),
            )
        } else if cpu >= CLIENT_BOUND_THRESHOLD * 100.0 {
            (
                Verdict::ClientBound,
                format!("client-bound: a client thread was {cpu:.0}% busy"),
            )
        } else if r.errors > 0 {
            let kinds: Vec<String> = r
                .errors_by_kind
                .nonzero()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            (
                Verdict::Errors,
                format!("{} errors ({})", r.errors, kinds.join(", ")),
            )
        } else if r.messages == 0 {
            (Verdict::Errors, "nothing was verified".to_string())
        } else if !missed.is_empty() {
            (Verdict::Fail, missed.join(", "))
        } else {
            let held: Vec<String> = targets
                .iter()
                .map(|t| {
                    format!(
                        "{} {}us <= {}us",
                        t.quantile.name(),
                        t.quantile.of(&r.latency_us),
                        t.limit_us
                    )
                })
                .collect();
            (Verdict::Pass, held.join(", "))
        };
        Probe {
            phase,
            rate,
            sent_per_s: sent,
            msgs_per_s: r.msgs_per_s,
            latency_us: r.latency_us,
            errors: r.errors,
            client_cpu_max_pct: cpu,
            verdict,
            reason,
        }
    }
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

    /// The header of the probe table.
    pub fn table_header() -> String {
        format!(
            "{:<7}{:>12}{:>12}{:>12}{:>9}{:>9}{:>9}{:>7}  verdict",
            "phase", "rate/s", "sent/s", "done/s", "p50", "p99", "p99.9", "cpu%"
        )
    }

    /// One probe as a table row.
    pub fn table_row(p: &Probe) -> String {
        format!(
            "{:<7}{:>12.0}{:>12.0}{:>12.0}{:>9}{:>9}{:>9}{:>7.0}  {}: {}",
            match p.phase {
                Phase::Probe => "probe",
                Phase::Bisect => "bisect",
                Phase::Repeat => "repeat",
            },
            p.rate,
            p.sent_per_s,
            p.msgs_per_s,
            p.latency_us.p50,
            p.latency_us.p99,
            p.latency_us.p999,
            p.client_cpu_max_pct,
            match p.verdict {
                Verdict::Pass => "pass",
                Verdict::Fail => "FAIL",
                Verdict::Errors => "ERRORS",
                Verdict::ClientBound => "CLIENT-BOUND",
                Verdict::WrongBytes => "WRONG BYTES",
            },
            p.reason
        )
    }

    /// The human report: the settings, the curve (rate vs p50/p99/p99.9, latency in µs) and
    /// the conclusion.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let targets: Vec<String> = self
            .targets
            .iter()
            .map(|t| format!("{} <= {}us", t.quantile.name(), t.limit_us))
            .collect();
        let _ = writeln!(
            s,
            "ringport stress --find-max-rate {}: {} connections, pipeline {}, {} threads, {}, \
             {:.1}s window after {:.1}s warm-up per probe, target {}",
            self.target,
            self.connections,
            self.pipeline,
            self.threads,
            self.payload,
            self.window_s,
            self.warmup_s,
            targets.join(" and ")
        );
        let _ = writeln!(
            s,
            "curve (latency in us, corrected for coordinated omission):"
        );
        let _ = writeln!(s, "  {}", Self::table_header());
        for p in self.curve() {
            let _ = writeln!(s, "  {}", Self::table_row(p));
        }
        let _ = writeln!(s, "{}", self.conclusion);
        s
    }

    /// The JSON form, pretty-printed, ending in a newline.
    pub fn to_json(&self) -> String {
        let mut j = serde_json::to_string_pretty(self).expect("a report always serialises");
        j.push('\n');
        j
    }
}
