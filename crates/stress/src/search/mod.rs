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
//! more than [`RATE_SHORTFALL`](crate::report::RATE_SHORTFALL) (the client's connections x pipeline could not carry it, or it
//! lacked CPU), or whose client threads were saturated, says nothing about the server: it is
//! marked `client-bound`, the rate is not raised past it, and it is never the answer.
//!
//! The answer is the highest passing rate; its confidence is the bracket (the last passing and
//! first non-passing rates, and what stopped the latter) and the repeated measurements.

pub mod config;
pub mod verdict;

pub use config::{
    LatencyTarget, Quantile, SearchConfig, DEFAULT_WARMUP, DEFAULT_WINDOW, MAX_PROBES,
};
pub use ringport_report::search::{Phase, Probe, SearchReport, Verdict, EXIT_NO_PASSING_RATE};
pub use verdict::judge;

use crate::config::StressConfig;
use crate::engine::{self, RunOptions, StressError};

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
        let p = judge(phase, rate, &out.report, &cfg.targets);
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
    let mut targets: Vec<String> = cfg
        .targets
        .iter()
        .map(|t| format!("{} <= {}us", t.quantile.name(), t.limit_us))
        .collect();
    if let Some(max) = cfg.base.max_loss_pct.filter(|_| cfg.base.udp) {
        targets.push(format!("loss <= {max}%"));
    }
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
                window_secs(b)
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
        target: b.target(),
        targets: cfg.targets.clone(),
        connections: b.connections,
        pipeline: b.pipeline,
        threads: b.effective_threads(),
        payload: b.payload().describe(),
        window_s: window_secs(b),
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

/// The measured window of a run stopped by `--duration` (0 for a `--count`).
fn window_secs(c: &StressConfig) -> f64 {
    match c.stop() {
        crate::config::Stop::Duration(d) => d.as_secs_f64(),
        crate::config::Stop::Count(_) => 0.0,
    }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::report::RATE_SHORTFALL;
    use ringport_report::histogram::LatencySummary;

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

    pub(super) fn cfg() -> SearchConfig {
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
            let mut r = crate::report::build(
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
            Ok(judge(phase, rate, &r, &cfg().targets))
        }
    }

    /// `--udp --max-loss 1`, no latency target: a model server that loses nothing up to `knee`
    /// and 5% beyond it, with a latency that always holds.
    #[test]
    fn with_udp_the_loss_target_alone_finds_the_knee() {
        let knee = 20_000.0;
        let mut c = cfg();
        c.targets.clear();
        c.base.udp = true;
        c.base.max_loss_pct = Some(1.0);
        c.validate().unwrap();
        let base = c.base.clone();
        let r = search_with(&c, move |phase, rate| {
            let mut r = crate::report::build(
                &StressConfig {
                    rate: Some(rate),
                    ..base.clone()
                },
                &crate::measure::thread::ThreadStats::new(1),
                Duration::from_secs(1),
                "model",
            );
            r.sent_per_s = Some(rate);
            r.messages = 100;
            r.latency_us = summary(10);
            let lost = if rate > knee { 5 } else { 0 };
            r.max_loss_pct = base.max_loss_pct;
            r.datagrams = Some(ringport_report::datagrams::Datagrams {
                sent: 100,
                echoed: 100 - lost,
                lost,
                ..Default::default()
            });
            Ok::<_, ()>(judge(phase, rate, &r, &[]))
        })
        .unwrap();
        let answer = r.answer.unwrap();
        assert!(answer <= knee && r.first_failing.unwrap() > knee, "{r:?}");
        let failing = r.probes.iter().find(|p| p.rate > knee).unwrap();
        assert!(
            failing.reason.starts_with("loss 5.000% > 1%"),
            "{failing:?}"
        );
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
}
