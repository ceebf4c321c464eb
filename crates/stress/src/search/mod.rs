//! The latency-target search (`--find-max-rate --p99 2ms`): the highest open-loop rate whose
//! coordinated-omission-corrected latency stays under a target.
//!
//! This module is responsible for orchestrating several runs of the engine
//! ([`crate::engine`]), one per probed rate, and for the verdict and the answer; the engine itself knows nothing of
//! it. Each probe is a fresh run: new connections, `--warmup` at the probed rate (discarded),
//! then a steady window of `--duration` measured.
//!
//! # The search
//!
//! 1. **Exponential probe**: from the starting rate, double after every passing probe (up to
//!    `--max-rate`) until one does not pass; halve after every failing one (down to
//!    `--min-rate`) until one passes.
//! 2. **Bisection** between the highest passing rate and the lowest one that did not pass,
//!    until they are within `--precision` of each other.
//! 3. **Repeat**: the answer is measured again `--repeat` times; the report says whether it
//!    held every time (its repeatability) and how far its latency moved.
//!
//! A probe **passes** when every latency target holds, no error occurred, and the client
//! generated the rate. **Client-bound check**: a probe whose sends fell short of the target by
//! more than [`RATE_SHORTFALL`] (the client's connections x pipeline could not carry it, or it
//! lacked CPU), or whose client threads were saturated, says nothing about the server: it is
//! marked `client-bound`, the rate is not raised past it, and it is never the answer.
//!
//! The answer is the highest passing rate; its confidence is the bracket (the last passing and
//! first non-passing rates, and what stopped the latter) and the repeated measurements.

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::StressConfig;
use crate::engine::{self, RunOptions, StressError};
use crate::error::ErrorKind;
use crate::measure::cpu::CLIENT_BOUND_THRESHOLD;
use crate::measure::histogram::LatencySummary;
use crate::report::{StressReport, RATE_SHORTFALL};

/// Exit code of a search that found no passing rate (documented in the README).
pub const EXIT_NO_PASSING_RATE: u8 = 4;

/// Most probes a search runs, whatever its precision.
pub const MAX_PROBES: usize = 40;

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

/// How to search. Every probe runs `base` with its `rate` replaced.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchConfig {
    /// The run each probe makes (connections, pipeline, payload, `--duration` as the steady
    /// window, `--warmup` discarded before it).
    pub base: StressConfig,
    /// Every target must hold for a probe to pass.
    pub targets: Vec<LatencyTarget>,
    /// The first rate probed.
    pub start_rate: f64,
    /// Never probe above this.
    pub max_rate: f64,
    /// Never probe below this.
    pub min_rate: f64,
    /// Stop bisecting when the bracket is narrower than this fraction of its lower end.
    pub precision: f64,
    /// Measure the answer again this many times.
    pub repeat: usize,
}

impl SearchConfig {
    /// Checks the search's own settings (the base run is checked by the engine).
    ///
    /// # Errors
    ///
    /// A one-line message naming the flag.
    pub fn validate(&self) -> Result<(), String> {
        if self.targets.is_empty() {
            return Err(
                "--find-max-rate needs a latency target: --p99 2ms (or --p50, --p999)".into(),
            );
        }
        if self.targets.iter().any(|t| t.limit_us == 0) {
            return Err("a latency target must be at least 1us".into());
        }
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.start_rate) || !positive(self.max_rate) || !positive(self.min_rate) {
            return Err("--rate, --max-rate and --min-rate must be positive".into());
        }
        if self.min_rate > self.start_rate || self.start_rate > self.max_rate {
            return Err(format!(
                "--find-max-rate: need --min-rate <= --rate <= --max-rate, got {} <= {} <= {}",
                self.min_rate, self.start_rate, self.max_rate
            ));
        }
        if !(self.precision > 0.0 && self.precision < 1.0) {
            return Err("--precision must be between 0 and 100 (percent)".into());
        }
        if self.base.ramp().is_some() {
            return Err("--find-max-rate cannot be combined with a ramp".into());
        }
        if self.base.stream {
            return Err("--find-max-rate applies to messages, not --stream".into());
        }
        Ok(())
    }
}

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

/// Runs the search against the engine. `on_probe` sees each probe as it is made (for a live
/// table).
///
/// # Errors
///
/// A bad setting (as [`StressError::Config`]), or the first run that could not be carried out
/// at all.
pub fn search(
    cfg: &SearchConfig,
    opts: &RunOptions,
    mut on_probe: impl FnMut(&Probe),
) -> Result<SearchReport, StressError> {
    cfg.validate()
        .map_err(|e| StressError::Config(crate::error::ConfigError(e)))?;
    let mut first = true;
    search_with(cfg, |phase, rate| {
        if opts
            .stop
            .as_ref()
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
        {
            return Err(StressError::Config(crate::error::ConfigError(
                "interrupted: the search stopped before it had an answer".into(),
            )));
        }
        let mut run = cfg.base.clone();
        run.rate = Some(rate);
        run.count = None;
        run.json = None;
        run.hdr_log = None;
        if first {
            run.validate()?;
            first = false;
        }
        let out = engine::run_with(&run, opts)?;
        let p = Probe::judge(phase, rate, &out.report, &cfg.targets);
        on_probe(&p);
        Ok(p)
    })
}

/// The search over any measuring function (the engine, or a model in the tests): `measure`
/// runs one probe at a rate. See the module docs. A stop flag in `RunOptions` is the caller's
/// to check inside `measure`.
///
/// # Errors
///
/// The first error `measure` returns.
pub fn search_with<E>(
    cfg: &SearchConfig,
    mut measure: impl FnMut(Phase, f64) -> Result<Probe, E>,
) -> Result<SearchReport, E> {
    let mut probes: Vec<Probe> = Vec::new();
    // The highest rate that passed, and the lowest above it that did not (with its verdict).
    let mut lo: Option<f64> = None;
    let mut hi: Option<(f64, Verdict)> = None;
    let round = |r: f64| r.round().max(1.0);
    let mut rate = round(cfg.start_rate);
    let mut stopped_at_max = false;
    let mut stopped_at_min = false;
    while go_on(&probes) {
        let p = measure(Phase::Probe, rate)?;
        let verdict = p.verdict;
        probes.push(p);
        if verdict == Verdict::Pass {
            lo = Some(rate);
            if hi.is_some() {
                break;
            }
            if rate >= cfg.max_rate {
                stopped_at_max = true;
                break;
            }
            rate = round((rate * 2.0).min(cfg.max_rate));
        } else {
            hi = Some((rate, verdict));
            if lo.is_some() {
                break;
            }
            if rate <= cfg.min_rate {
                stopped_at_min = true;
                break;
            }
            rate = round((rate / 2.0).max(cfg.min_rate));
        }
    }
    let mut repeat_passed = 0;
    let mut repeat_total = 0;
    let mut demoted = 0;
    'answer: while go_on(&probes) {
        bisect(cfg, &mut probes, &mut lo, &mut hi, &mut measure)?;
        let Some(answer) = lo else { break };
        (repeat_passed, repeat_total) = (0, 0);
        for _ in 0..cfg.repeat {
            if !go_on(&probes) {
                break 'answer;
            }
            let p = measure(Phase::Repeat, answer)?;
            let verdict = p.verdict;
            probes.push(p);
            repeat_total += 1;
            if verdict != Verdict::Pass {
                // The answer did not hold: it is now the lowest rate known not to pass, and
                // the answer the highest rate below it that passed every time it was measured.
                demoted += 1;
                (repeat_passed, repeat_total) = (0, 0);
                hi = Some((answer, verdict));
                lo = probes
                    .iter()
                    .map(|p| p.rate)
                    .filter(|&r| {
                        r < answer
                            && probes
                                .iter()
                                .filter(|q| q.rate == r)
                                .all(|q| q.verdict == Verdict::Pass)
                    })
                    .max_by(f64::total_cmp);
                continue 'answer;
            }
            repeat_passed += 1;
        }
        break;
    }
    let b = &cfg.base;
    let targets: Vec<String> = cfg
        .targets
        .iter()
        .map(|t| format!("{} <= {}us", t.quantile.name(), t.limit_us))
        .collect();
    let targets = targets.join(" and ");
    if let Some(bad) = probes.iter().find(|p| p.verdict == Verdict::WrongBytes) {
        // Wrong bytes end the search: no answer stands on a server that corrupts its echo.
        (lo, hi) = (None, Some((bad.rate, Verdict::WrongBytes)));
    }
    let conclusion = match (lo, hi) {
        (Some(answer), hi) => {
            let bracket = match hi {
                Some((h, Verdict::ClientBound)) => format!(
                    "; the client could not generate {h:.0} msg/s, so the server's limit may be \
                     higher: raise --connections, --pipeline or --threads, or load from more \
                     hosts (--segment)"
                ),
                Some((h, Verdict::Errors)) => format!("; {h:.0} msg/s had errors"),
                Some((h, _)) => format!("; {h:.0} msg/s missed it"),
                None if stopped_at_max => format!(
                    "; --max-rate {:.0} reached, the server may go higher",
                    cfg.max_rate
                ),
                None => "; the probe limit was reached".to_string(),
            };
            let demoted = if demoted > 0 {
                format!(
                    "; {demoted} higher answer(s) did not pass when measured again (see the \
                     table), so the result is noisy: lengthen --duration, or quiet the machine"
                )
            } else {
                String::new()
            };
            let short = if repeat_total < cfg.repeat {
                format!(
                    "; re-measured {repeat_total} of {} times before the probe limit \
                     ({MAX_PROBES})",
                    cfg.repeat
                )
            } else {
                String::new()
            };
            let repeat = if repeat_total > 0 {
                let worst = probes
                    .iter()
                    .filter(|p| p.rate == answer && p.verdict != Verdict::ClientBound)
                    .map(|p| p.latency_us.p99)
                    .collect::<Vec<_>>();
                format!(
                    "; measured {}x there, every time within the target (p99 {}-{}us)",
                    worst.len(),
                    worst.iter().min().copied().unwrap_or(0),
                    worst.iter().max().copied().unwrap_or(0),
                )
            } else {
                String::new()
            };
            format!(
                "max rate: {answer:.0} msg/s with {targets} over {:.1}s windows{bracket}{repeat}\
                 {short}{demoted}",
                b.stop_secs()
            )
        }
        (None, Some((h, Verdict::WrongBytes))) => format!(
            "stopped: the server echoed wrong bytes at {h:.0} msg/s, a verification failure \
             (see the table), so no rate is reported"
        ),
        (None, Some((h, verdict))) => {
            let why = match verdict {
                _ if demoted > 0 => format!(
                    "{demoted} rate(s) passed once but not when measured again, down to the \
                     lowest that passed: the latency is too noisy here for this target \
                     (lengthen --duration, raise the target, or quiet the machine)"
                ),
                Verdict::ClientBound => format!(
                    "the client could not generate even {h:.0} msg/s: raise --connections or \
                     --pipeline"
                ),
                _ if stopped_at_min => format!(
                    "even {:.0} msg/s (--min-rate) missed it: the server's latency at light \
                     load is above the target",
                    cfg.min_rate
                ),
                _ => "the probe limit was reached".to_string(),
            };
            format!("no rate passed {targets}: {why}")
        }
        (None, None) => "no probe was made".to_string(),
    };
    let first_failing = hi.map(|(h, _)| h);
    Ok(SearchReport {
        target: format!("{}:{}", b.host, b.port),
        targets: cfg.targets.clone(),
        connections: b.connections,
        pipeline: b.pipeline,
        threads: b.effective_threads(),
        payload: b.payload().describe(),
        window_s: b.stop_secs(),
        warmup_s: b.warmup.as_secs_f64(),
        probes,
        answer: lo,
        first_failing,
        first_failing_verdict: hi.map(|(_, v)| v),
        repeat_passed,
        repeat_total,
        conclusion,
    })
}

/// Whether the search may make another probe: under the probe limit, and the last probe did
/// not find wrong bytes.
fn go_on(probes: &[Probe]) -> bool {
    probes.len() < MAX_PROBES
        && probes
            .last()
            .is_none_or(|p| p.verdict != Verdict::WrongBytes)
}

/// Bisects between the highest passing rate `lo` and the lowest one above it that did not pass
/// `hi` until they are within the precision (or the probe limit is reached).
fn bisect<E>(
    cfg: &SearchConfig,
    probes: &mut Vec<Probe>,
    lo: &mut Option<f64>,
    hi: &mut Option<(f64, Verdict)>,
    measure: &mut impl FnMut(Phase, f64) -> Result<Probe, E>,
) -> Result<(), E> {
    while let (Some(l), Some((h, _))) = (*lo, *hi) {
        if !go_on(probes) || (h - l) <= l * cfg.precision {
            break;
        }
        let mid = ((l + h) / 2.0).round();
        if mid <= l || mid >= h {
            break;
        }
        let p = measure(Phase::Bisect, mid)?;
        if p.verdict == Verdict::Pass {
            *lo = Some(mid);
        } else {
            *hi = Some((mid, p.verdict));
        }
        probes.push(p);
    }
    Ok(())
}

impl StressConfig {
    /// The measured window of a run stopped by `--duration` (0 for a `--count`).
    fn stop_secs(&self) -> f64 {
        match self.stop() {
            crate::config::Stop::Duration(d) => d.as_secs_f64(),
            crate::config::Stop::Count(_) => 0.0,
        }
    }
}

/// The default steady window of a probe when `--duration` is not given.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(5);

/// The default warm-up of a probe when `--warmup` is not given.
pub const DEFAULT_WARMUP: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(p99: u64) -> LatencySummary {
        LatencySummary {
            min: 1,
            p50: p99 / 2,
            p90: p99,
            p99,
            p999: p99 * 2,
            max: p99 * 3,
            mean: 1.0,
            stdev: 0.0,
            count: 100,
        }
    }

    fn cfg() -> SearchConfig {
        SearchConfig {
            base: StressConfig {
                duration: Some(Duration::from_secs(1)),
                ..StressConfig::default()
            },
            targets: vec![LatencyTarget {
                quantile: Quantile::P99,
                limit_us: 1000,
            }],
            start_rate: 1000.0,
            max_rate: 1e6,
            min_rate: 100.0,
            precision: 0.05,
            repeat: 2,
        }
    }

    /// A model server: p99 grows with the rate and crosses 1000 µs at `knee`; the client can
    /// generate up to `client_max`.
    fn model(knee: f64, client_max: f64) -> impl FnMut(Phase, f64) -> Result<Probe, ()> {
        move |phase, rate| {
            let p99 = (1000.0 * rate / knee) as u64;
            let sent = rate.min(client_max);
            let mut r = StressReport::build(
                &StressConfig {
                    rate: Some(rate),
                    ..cfg().base
                },
                &crate::measure::thread::ThreadStats::new(1),
                Duration::from_secs(1),
                "model",
            );
            r.sent_per_s = Some(sent);
            r.messages = 100;
            r.latency_us = summary(p99);
            Ok(Probe::judge(phase, rate, &r, &cfg().targets))
        }
    }

    #[test]
    fn finds_the_knee_within_the_precision_and_repeats_it() {
        let r = search_with(&cfg(), model(37_000.0, 1e9)).unwrap();
        let answer = r.answer.unwrap();
        let failing = r.first_failing.unwrap();
        assert!(answer <= 37_000.0 && answer < failing, "{r:?}");
        assert!((failing - answer) <= answer * 0.05, "{answer} .. {failing}");
        assert_eq!(r.first_failing_verdict, Some(Verdict::Fail));
        assert_eq!((r.repeat_passed, r.repeat_total), (2, 2));
        // Doubling from 1000: 1k, 2k, ... 32k pass, 64k fails.
        let probed: Vec<f64> = r
            .probes
            .iter()
            .filter(|p| p.phase == Phase::Probe)
            .map(|p| p.rate)
            .collect();
        assert_eq!(
            probed,
            [1000.0, 2000.0, 4000.0, 8000.0, 16000.0, 32000.0, 64000.0]
        );
        for p in r.curve() {
            assert_eq!(p.verdict == Verdict::Pass, p.rate <= answer, "{p:?}");
        }
        assert!(r.conclusion.starts_with("max rate: "), "{}", r.conclusion);
        assert_eq!(r.exit_code(), 0);
    }

    #[test]
    fn an_answer_that_fails_again_is_demoted_to_one_that_held_every_time() {
        // Passes up to 40,000 msg/s, except that 38,000..40,000 passes only the first time.
        let mut seen = std::collections::HashMap::new();
        let mut inner = model(40_000.0, 1e9);
        let noisy = |phase, rate: f64| {
            let n = seen.entry(rate as u64).or_insert(0);
            *n += 1;
            let mut p = inner(phase, rate)?;
            if rate >= 38_000.0 && *n > 1 && p.verdict == Verdict::Pass {
                p.verdict = Verdict::Fail;
            }
            Ok::<_, ()>(p)
        };
        let r = search_with(&cfg(), noisy).unwrap();
        let answer = r.answer.unwrap();
        assert!(answer < 38_000.0, "{answer}");
        assert!(answer <= r.first_failing.unwrap());
        assert!(r
            .probes
            .iter()
            .filter(|p| p.rate == answer)
            .all(|p| p.verdict == Verdict::Pass));
        assert_eq!((r.repeat_passed, r.repeat_total), (2, 2));
        assert!(
            r.conclusion.contains("did not pass when measured again"),
            "{}",
            r.conclusion
        );
    }

    #[test]
    fn answers_that_never_hold_again_end_with_no_rate_and_say_why() {
        // Every rate passes the first time it is measured and fails every time after.
        let mut seen = std::collections::HashMap::new();
        let mut inner = model(1e9, 1e9);
        let once = |phase, rate: f64| {
            let n = seen.entry(rate as u64).or_insert(0);
            *n += 1;
            let mut p = inner(phase, rate)?;
            if *n > 1 {
                p.verdict = Verdict::Fail;
            }
            Ok::<_, ()>(p)
        };
        // Coarse bisection: the demotions walk down the rates probed, to none.
        let c = SearchConfig {
            max_rate: 4000.0,
            precision: 0.9,
            repeat: 1,
            ..cfg()
        };
        let r = search_with(&c, once).unwrap();
        assert_eq!(r.answer, None, "{r:?}");
        assert!(r.probes.len() <= MAX_PROBES);
        assert!(
            r.conclusion.contains("not when measured again"),
            "{}",
            r.conclusion
        );
        assert_eq!(r.exit_code(), EXIT_NO_PASSING_RATE);

        // Fine bisection: the probe limit ends it, and an answer not re-measured says so.
        let mut seen = std::collections::HashMap::new();
        let mut inner = model(1e9, 1e9);
        let once = |phase, rate: f64| {
            let n = seen.entry(rate as u64).or_insert(0);
            *n += 1;
            let mut p = inner(phase, rate)?;
            if *n > 1 {
                p.verdict = Verdict::Fail;
            }
            Ok::<_, ()>(p)
        };
        let r = search_with(
            &SearchConfig {
                max_rate: 4000.0,
                ..cfg()
            },
            once,
        )
        .unwrap();
        assert_eq!(r.probes.len(), MAX_PROBES);
        if r.answer.is_some() {
            assert_eq!((r.repeat_passed, r.repeat_total), (0, 0), "{r:?}");
            assert!(
                r.conclusion.contains("before the probe limit"),
                "{}",
                r.conclusion
            );
        }
    }

    #[test]
    fn wrong_bytes_stop_the_search_with_exit_code_1() {
        let mut inner = model(1e9, 1e9);
        let broken_at_4000 = |phase, rate: f64| {
            let mut p = inner(phase, rate)?;
            if rate >= 4000.0 {
                p.verdict = Verdict::WrongBytes;
            }
            Ok::<_, ()>(p)
        };
        let r = search_with(&cfg(), broken_at_4000).unwrap();
        let rates: Vec<f64> = r.probes.iter().map(|p| p.rate).collect();
        assert_eq!(
            rates,
            [1000.0, 2000.0, 4000.0],
            "no probe after wrong bytes"
        );
        assert_eq!(r.answer, None);
        assert_eq!(r.first_failing_verdict, Some(Verdict::WrongBytes));
        assert_eq!(r.exit_code(), 1);
        assert!(
            r.conclusion.contains("wrong bytes at 4000"),
            "{}",
            r.conclusion
        );
    }

    #[test]
    fn an_impossible_target_reports_no_rate() {
        let r = search_with(&cfg(), model(10.0, 1e9)).unwrap();
        assert_eq!(r.answer, None);
        assert_eq!(r.exit_code(), EXIT_NO_PASSING_RATE);
        let rates: Vec<f64> = r.probes.iter().map(|p| p.rate).collect();
        assert_eq!(rates, [1000.0, 500.0, 250.0, 125.0, 100.0]);
        assert!(r.conclusion.contains("no rate passed"), "{}", r.conclusion);
        assert!(r.conclusion.contains("--min-rate"), "{}", r.conclusion);
    }

    #[test]
    fn a_client_bound_rate_is_never_the_answer_and_is_said() {
        // The server would hold 1M msg/s; the client generates 5,000.
        let r = search_with(&cfg(), model(1e6, 5000.0)).unwrap();
        let answer = r.answer.unwrap();
        // Within the tolerance of what the client generated, never above it.
        assert!(answer * RATE_SHORTFALL <= 5000.0, "{answer}");
        assert_eq!(r.first_failing_verdict, Some(Verdict::ClientBound));
        assert!(r.conclusion.contains("could not generate"));
        for p in &r.probes {
            if p.verdict == Verdict::Pass {
                assert!(p.sent_per_s >= p.rate * RATE_SHORTFALL);
            }
        }
        let rows: Vec<String> = r.probes.iter().map(SearchReport::table_row).collect();
        assert!(rows.iter().any(|l| l.contains("CLIENT-BOUND")), "{rows:?}");
    }

    #[test]
    fn the_max_rate_bounds_the_search() {
        let c = SearchConfig {
            max_rate: 3000.0,
            repeat: 0,
            ..cfg()
        };
        let r = search_with(&c, model(1e6, 1e9)).unwrap();
        assert_eq!(r.answer, Some(3000.0));
        assert_eq!(r.first_failing, None);
        assert!(r.conclusion.contains("--max-rate"), "{}", r.conclusion);
        assert!(r.probes.iter().all(|p| p.rate <= 3000.0));
    }

    #[test]
    fn settings_are_checked() {
        for (c, needle) in [
            (
                SearchConfig {
                    targets: vec![],
                    ..cfg()
                },
                "latency target",
            ),
            (
                SearchConfig {
                    min_rate: 5000.0,
                    ..cfg()
                },
                "--min-rate",
            ),
            (
                SearchConfig {
                    precision: 0.0,
                    ..cfg()
                },
                "--precision",
            ),
        ] {
            let e = c.validate().unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
        cfg().validate().unwrap();
    }
}
