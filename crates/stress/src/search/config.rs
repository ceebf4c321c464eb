//! The search's settings: the latency targets, the rates it may probe, its precision and
//! repeats, and their validation.

use std::time::Duration;

use crate::config::StressConfig;
pub use ringport_report::search::{LatencyTarget, Quantile};

/// Most probes a search runs, whatever its precision.
pub const MAX_PROBES: usize = 40;

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
        if self.targets.is_empty() && self.base.max_loss_pct.is_none() {
            return Err(
                "--find-max-rate needs a latency target: --p99 2ms (or --p50, --p999; with \
                 --udp, --max-loss PCT)"
                    .into(),
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

/// The default steady window of a probe when `--duration` is not given.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(5);

/// The default warm-up of a probe when `--warmup` is not given.
pub const DEFAULT_WARMUP: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SearchConfig {
        super::super::tests::cfg()
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
