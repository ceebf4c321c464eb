//! Ramps: a `--rate` or `--connections` that changes during the run, linearly or in steps.
//!
//! This module is responsible for what a ramp means, as plain arithmetic with no clock reads
//! (so it is tested exactly): parsing the flags ([`Ramp::parse`]), the steps a run reports
//! ([`Ramp::steps`]), the open loop's intended send times under a rate ramp ([`RateCurve`]),
//! and when each connection of a connection ramp joins the load ([`Ramp::activation`]).
//!
//! # Syntax
//!
//! * Linear: `--rate 10000..100000 --ramp 30s` goes from 10,000 to 100,000 msg/s in 30 s; it is
//!   reported in steps of `--step` (default 1 s), each with its mean rate as target.
//! * Steps: `--rate 10000,20000,40000 --step 5s` holds each rate for 5 s (the dwell).
//!
//! `--connections` takes the same forms (`--connections 10..100 --ramp 30s`, `--connections
//! 10,50,100 --step 10s`). The ramp sets the run's length (`--duration` cannot be given with
//! it); a `--warmup` runs at the ramp's first level before it and is not measured.
//!
//! # The schedule under a rate ramp
//!
//! The open loop's sends stay one evenly interleaved sequence `s = c + k * N` (see
//! [`send_times`](crate::plan::send_times)); with a ramp, send `s` is due when the integral of the rate
//! from the start reaches `s`: `count(t) = integral of rate(u) du from 0 to t`, inverted
//! exactly (a quadratic within a linear segment, a division within a step).

use std::time::Duration;

/// A level that changes during the run. See the module docs.
#[derive(Debug, Clone, PartialEq)]
pub enum Ramp {
    /// From `from` to `to` linearly over `over`, reported every `step`.
    Linear {
        /// The level at the start.
        from: f64,
        /// The level at the end.
        to: f64,
        /// How long the ramp takes.
        over: Duration,
        /// The length of each reported step.
        step: Duration,
    },
    /// Each level held for `dwell`, in order.
    Steps {
        /// The levels.
        levels: Vec<f64>,
        /// How long each is held.
        dwell: Duration,
    },
}

/// One reported step of a ramp: `start .. start + len` from the end of the warm-up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// When it begins, from the start of the measured phase.
    pub start: Duration,
    /// How long it lasts.
    pub len: Duration,
    /// Its target: the level held, or a linear ramp's mean level over the step.
    pub target: f64,
}

/// Default `--step` of a linear ramp: one reported step per second.
pub const DEFAULT_LINEAR_STEP: Duration = Duration::from_secs(1);

/// Most steps a ramp may have (each holds two histograms).
pub const MAX_STEPS: usize = 1000;

impl Ramp {
    /// Parses `spec`, the value of `flag` (`--rate` or `--connections`): a single number is
    /// not a ramp (`Ok(None)`); `A..B` is linear over `ramp` (required), reported every `step`;
    /// `A,B,C` are steps of `step` each (required).
    ///
    /// # Errors
    ///
    /// A one-line message naming the flags.
    pub fn parse(
        flag: &str,
        spec: &str,
        ramp: Option<Duration>,
        step: Option<Duration>,
    ) -> Result<Option<Ramp>, String> {
        let number = |s: &str| -> Result<f64, String> {
            let v: f64 = s.trim().replace('_', "").parse().map_err(|_| {
                format!("{flag} {spec}: `{s}` is not a number (give N, A..B or A,B,C)")
            })?;
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{flag} {spec}: every level must be positive"));
            }
            Ok(v)
        };
        let r = if let Some((a, b)) = spec.split_once("..") {
            let Some(over) = ramp else {
                return Err(format!(
                    "{flag} {spec} is a linear ramp: give its length with --ramp (e.g. --ramp 30s)"
                ));
            };
            Ramp::Linear {
                from: number(a)?,
                to: number(b)?,
                over,
                step: step.unwrap_or(DEFAULT_LINEAR_STEP),
            }
        } else if spec.contains(',') {
            let Some(dwell) = step else {
                return Err(format!(
                    "{flag} {spec} is a stepped ramp: give each step's dwell with --step (e.g. \
                     --step 5s)"
                ));
            };
            if ramp.is_some() {
                return Err(format!(
                    "--ramp applies to a linear ramp (A..B); {flag} {spec} holds each level for \
                     --step"
                ));
            }
            Ramp::Steps {
                levels: spec.split(',').map(number).collect::<Result<_, _>>()?,
                dwell,
            }
        } else {
            number(spec)?;
            return Ok(None);
        };
        r.check(flag)?;
        Ok(Some(r))
    }

    fn check(&self, flag: &str) -> Result<(), String> {
        let (total, step) = match self {
            Ramp::Linear { over, step, .. } => (*over, *step),
            Ramp::Steps { dwell, .. } => (*dwell, *dwell),
        };
        if total.is_zero() || step.is_zero() {
            return Err(format!("{flag}: --ramp and --step must be longer than 0"));
        }
        if self.steps().len() > MAX_STEPS {
            return Err(format!(
                "{flag}: more than {MAX_STEPS} steps; lengthen --step"
            ));
        }
        Ok(())
    }

    /// How long the ramp lasts.
    pub fn total(&self) -> Duration {
        match self {
            Ramp::Linear { over, .. } => *over,
            Ramp::Steps { levels, dwell } => *dwell * levels.len() as u32,
        }
    }

    /// The level at the start.
    pub fn first(&self) -> f64 {
        match self {
            Ramp::Linear { from, .. } => *from,
            Ramp::Steps { levels, .. } => levels[0],
        }
    }

    /// The highest level.
    pub fn peak(&self) -> f64 {
        match self {
            Ramp::Linear { from, to, .. } => from.max(*to),
            Ramp::Steps { levels, .. } => levels.iter().cloned().fold(0.0, f64::max),
        }
    }

    /// Whether every level is a whole number (connection counts must be).
    pub fn whole(&self) -> bool {
        match self {
            Ramp::Linear { from, to, .. } => from.fract() == 0.0 && to.fract() == 0.0,
            Ramp::Steps { levels, .. } => levels.iter().all(|l| l.fract() == 0.0),
        }
    }

    /// Whether the level never goes down (a connection ramp must not).
    pub fn rises(&self) -> bool {
        match self {
            Ramp::Linear { from, to, .. } => to >= from,
            Ramp::Steps { levels, .. } => levels.windows(2).all(|w| w[1] >= w[0]),
        }
    }

    /// The level at `t` (seconds from the start of the ramp); the last level after its end.
    pub fn level_at(&self, t: f64) -> f64 {
        match self {
            Ramp::Linear { from, to, over, .. } => {
                let f = (t / over.as_secs_f64()).clamp(0.0, 1.0);
                from + (to - from) * f
            }
            Ramp::Steps { levels, dwell } => {
                let i = (t.max(0.0) / dwell.as_secs_f64()) as usize;
                levels[i.min(levels.len() - 1)]
            }
        }
    }

    /// The reported steps, in order.
    pub fn steps(&self) -> Vec<Step> {
        match self {
            Ramp::Steps { levels, dwell } => levels
                .iter()
                .enumerate()
                .map(|(i, &target)| Step {
                    start: *dwell * i as u32,
                    len: *dwell,
                    target,
                })
                .collect(),
            Ramp::Linear { over, step, .. } => {
                let mut out = Vec::new();
                let mut start = Duration::ZERO;
                while start < *over && out.len() <= MAX_STEPS {
                    let len = (*step).min(*over - start);
                    let mid = (start + len / 2).as_secs_f64();
                    out.push(Step {
                        start,
                        len,
                        target: self.level_at(mid),
                    });
                    start += len;
                }
                out
            }
        }
    }

    /// The mean level over the whole ramp.
    pub fn mean(&self) -> f64 {
        self.integral(self.total().as_secs_f64()) / self.total().as_secs_f64()
    }

    /// The integral of the level from the start to `t` seconds (messages due by then, under a
    /// rate ramp); the last level continues after the end.
    pub fn integral(&self, t: f64) -> f64 {
        let t = t.max(0.0);
        match self {
            Ramp::Linear { from, to, over, .. } => {
                let d = over.as_secs_f64();
                let within = t.min(d);
                let slope = (to - from) / d;
                from * within + slope * within * within / 2.0 + to * (t - within)
            }
            Ramp::Steps { levels, dwell } => {
                let d = dwell.as_secs_f64();
                let mut sum = 0.0;
                for (i, &l) in levels.iter().enumerate() {
                    let begin = i as f64 * d;
                    let end = if i + 1 == levels.len() {
                        f64::INFINITY
                    } else {
                        begin + d
                    };
                    if t <= begin {
                        break;
                    }
                    sum += l * (t.min(end) - begin);
                }
                sum
            }
        }
    }

    /// The time (seconds from the start) at which the integral of the level reaches `s`: the
    /// inverse of [`integral`](Self::integral).
    pub fn time_of(&self, s: f64) -> f64 {
        let s = s.max(0.0);
        match self {
            Ramp::Linear { from, to, over, .. } => {
                let d = over.as_secs_f64();
                let whole = (from + to) / 2.0 * d;
                if s >= whole {
                    return d + (s - whole) / to;
                }
                // from * t + k * t^2 = s with k = (to - from) / 2d; the root written so that it
                // does not cancel when k is near 0.
                let k = (to - from) / (2.0 * d);
                2.0 * s / (from + (from * from + 4.0 * k * s).max(0.0).sqrt())
            }
            Ramp::Steps { levels, dwell } => {
                let d = dwell.as_secs_f64();
                let mut left = s;
                for (i, &l) in levels.iter().enumerate() {
                    let held = l * d;
                    if left < held || i + 1 == levels.len() {
                        return i as f64 * d + left / l;
                    }
                    left -= held;
                }
                unreachable!("the last level takes the rest")
            }
        }
    }

    /// Under a connection ramp: when connection `c` (0-based, in the order connections join)
    /// starts sending, from the start of the measured phase. The first level's connections
    /// start at once (during the warm-up too); connection `c` of a linear ramp when the level
    /// reaches `c + 1`.
    pub fn activation(&self, c: usize) -> Duration {
        let want = (c + 1) as f64;
        if want <= self.first().round() {
            return Duration::ZERO;
        }
        match self {
            Ramp::Linear { from, to, over, .. } => {
                let f = ((want - from) / (to - from)).clamp(0.0, 1.0);
                over.mul_f64(f)
            }
            Ramp::Steps { levels, dwell } => {
                let i = levels
                    .iter()
                    .position(|&l| l.round() >= want)
                    .unwrap_or(levels.len() - 1);
                *dwell * i as u32
            }
        }
    }
}

/// A rate ramp as the open loop's schedule: `warmup` seconds at the ramp's first rate, then the
/// ramp, then its last rate for as long as sends are still asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct RateCurve {
    ramp: Ramp,
    warmup: f64,
    cumulative_steps: Vec<f64>,
}

impl RateCurve {
    /// The curve of `ramp` after `warmup` at its first rate.
    pub fn new(ramp: Ramp, warmup: Duration) -> RateCurve {
        let cumulative_steps = match &ramp {
            Ramp::Steps { levels, dwell } => levels
                .iter()
                .scan(0.0, |sum, l| {
                    *sum += l * dwell.as_secs_f64();
                    Some(*sum)
                })
                .collect(),
            Ramp::Linear { .. } => Vec::new(),
        };
        RateCurve {
            ramp,
            warmup: warmup.as_secs_f64(),
            cumulative_steps,
        }
    }

    /// When send `s` (0-based, the whole run's sequence) is due, from the start of the load.
    pub fn due(&self, s: u64) -> Duration {
        let s = s as f64;
        let first = self.ramp.first();
        let in_warmup = first * self.warmup;
        let secs = if s < in_warmup {
            s / first
        } else {
            let s = s - in_warmup;
            self.warmup
                + match (&self.ramp, self.cumulative_steps.as_slice()) {
                    (Ramp::Steps { levels, dwell }, cum) => {
                        // Binary search over the steps: this runs once per message.
                        let i = cum.partition_point(|&c| c <= s).min(levels.len() - 1);
                        let before = if i == 0 { 0.0 } else { cum[i - 1] };
                        i as f64 * dwell.as_secs_f64() + (s - before) / levels[i]
                    }
                    (ramp, _) => ramp.time_of(s),
                }
        };
        Duration::from_secs_f64(secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Option<Duration> {
        Some(Duration::from_secs(s))
    }

    #[test]
    fn parses_the_three_forms_and_refuses_the_rest() {
        assert_eq!(Ramp::parse("--rate", "5000", None, None), Ok(None));
        assert_eq!(
            Ramp::parse("--rate", "10000..100000", secs(30), None),
            Ok(Some(Ramp::Linear {
                from: 10_000.0,
                to: 100_000.0,
                over: Duration::from_secs(30),
                step: DEFAULT_LINEAR_STEP
            }))
        );
        assert_eq!(
            Ramp::parse("--rate", "100,200,400", None, secs(5)),
            Ok(Some(Ramp::Steps {
                levels: vec![100.0, 200.0, 400.0],
                dwell: Duration::from_secs(5)
            }))
        );
        for (spec, ramp, step, needle) in [
            ("1..2", None, None, "--ramp"),
            ("1,2", None, None, "--step"),
            ("1,2", secs(1), secs(1), "--ramp applies"),
            ("1,x", None, secs(1), "`x` is not a number"),
            ("0..5", secs(1), None, "positive"),
            ("1..5", secs(0), None, "longer than 0"),
            (
                "1..5",
                secs(10_000),
                Some(Duration::from_millis(1)),
                "steps",
            ),
            ("-3", None, None, "positive"),
        ] {
            let e = Ramp::parse("--rate", spec, ramp, step).unwrap_err();
            assert!(e.contains(needle), "{spec}: {e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn linear_steps_carry_their_mean_rate() {
        let r = Ramp::parse("--rate", "100..200", secs(4), secs(1))
            .unwrap()
            .unwrap();
        let targets: Vec<f64> = r.steps().iter().map(|s| s.target).collect();
        assert_eq!(targets, [112.5, 137.5, 162.5, 187.5]);
        assert_eq!(r.total(), Duration::from_secs(4));
        assert_eq!(r.mean(), 150.0);
        assert_eq!(r.peak(), 200.0);
        // A step that does not divide the ramp ends with a shorter one.
        let r = Ramp::parse("--rate", "100..200", secs(3), secs(2))
            .unwrap()
            .unwrap();
        let lens: Vec<Duration> = r.steps().iter().map(|s| s.len).collect();
        assert_eq!(lens, [Duration::from_secs(2), Duration::from_secs(1)]);
    }

    #[test]
    fn time_of_inverts_the_integral() {
        for r in [
            Ramp::parse("--rate", "100..1000", secs(10), None),
            Ramp::parse("--rate", "1000..100", secs(10), None),
            Ramp::parse("--rate", "500..500", secs(10), None),
            Ramp::parse("--rate", "100,300,50", None, secs(2)),
        ] {
            let r = r.unwrap().unwrap();
            for t in [0.0, 0.5, 1.9, 2.0, 3.3, 7.0, 9.99, 12.0] {
                let back = r.time_of(r.integral(t));
                assert!((back - t).abs() < 1e-9, "{r:?}: t {t} came back as {back}");
            }
        }
    }

    #[test]
    fn the_curve_sends_each_step_at_its_rate() {
        // 100 msg/s for 2 s then 300 msg/s for 2 s, after 1 s of warm-up at 100.
        let r = Ramp::parse("--rate", "100,300", None, secs(2))
            .unwrap()
            .unwrap();
        let c = RateCurve::new(r, Duration::from_secs(1));
        let count_in = |a: f64, b: f64| {
            (0..5000)
                .map(|s| c.due(s).as_secs_f64())
                .filter(|&t| t >= a && t < b)
                .count()
        };
        assert_eq!(count_in(0.0, 1.0), 100);
        assert_eq!(count_in(1.0, 3.0), 200);
        assert_eq!(count_in(3.0, 5.0), 600);
        assert_eq!(
            count_in(5.0, 6.0),
            300,
            "the last rate holds after the ramp"
        );
        assert_eq!(c.due(100), Duration::from_secs(1));
        assert_eq!(c.due(300), Duration::from_secs(3));
        // A linear curve matches its ramp's inverse.
        let r = Ramp::parse("--rate", "100..300", secs(2), None)
            .unwrap()
            .unwrap();
        let c = RateCurve::new(r.clone(), Duration::ZERO);
        assert!((c.due(250).as_secs_f64() - r.time_of(250.0)).abs() < 1e-9);
        assert_eq!(count_in_linear(&c, 0.0, 2.0), 400);
    }

    fn count_in_linear(c: &RateCurve, a: f64, b: f64) -> usize {
        (0..2000)
            .map(|s| c.due(s).as_secs_f64())
            .filter(|&t| t >= a && t < b)
            .count()
    }

    #[test]
    fn connections_join_at_their_step() {
        let r = Ramp::parse("--connections", "2,4,5", None, secs(3))
            .unwrap()
            .unwrap();
        let at: Vec<u64> = (0..5).map(|c| r.activation(c).as_secs()).collect();
        assert_eq!(at, [0, 0, 3, 3, 6]);
        let r = Ramp::parse("--connections", "1..5", secs(8), None)
            .unwrap()
            .unwrap();
        let at: Vec<u64> = (0..5).map(|c| r.activation(c).as_secs()).collect();
        assert_eq!(at, [0, 2, 4, 6, 8]);
        assert!(r.rises());
        assert!(!Ramp::parse("--connections", "5,1", None, secs(1))
            .unwrap()
            .unwrap()
            .rises());
    }
}
