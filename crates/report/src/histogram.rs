//! Latency histograms: the crate's HdrHistogram bounds, their summary, and their V2 encoding.

use std::time::Duration;

use hdrhistogram::serialization::{Deserializer, Serializer as _, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The largest latency or connect time recorded, in microseconds (one hour); larger values are
/// clamped to it.
pub const MAX_RECORDED_US: u64 = 3_600_000_000;

/// Significant decimal digits kept by every histogram (0.1% relative error).
pub const SIGNIFICANT_DIGITS: u8 = 3;
/// A microsecond histogram with the crate's bounds.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_RECORDED_US, SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

/// A duration in whole microseconds, as recorded.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Latency summary in microseconds: the `latency_us` object of the report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Smallest value.
    pub min: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value.
    pub max: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Standard deviation.
    pub stdev: f64,
    /// Number of values.
    pub count: u64,
}

impl LatencySummary {
    /// The summary of `h`, or `None` if it is empty.
    pub fn of(h: &Histogram<u64>) -> Option<LatencySummary> {
        if h.is_empty() {
            return None;
        }
        Some(LatencySummary {
            min: h.min(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
            stdev: h.stdev(),
            count: h.len(),
        })
    }

    /// The summary of `h`, all zero if it is empty (as reports show an empty histogram).
    pub fn of_or_zero(h: &Histogram<u64>) -> LatencySummary {
        LatencySummary::of(h).unwrap_or(LatencySummary {
            min: 0,
            p50: 0,
            p90: 0,
            p99: 0,
            p999: 0,
            max: 0,
            mean: 0.0,
            stdev: 0.0,
            count: 0,
        })
    }
}

/// `h` in the HdrHistogram V2 encoding (uncompressed).
pub fn serialize(h: &Histogram<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    V2Serializer::new()
        .serialize(h, &mut out)
        .expect("serialising to memory cannot fail");
    out
}

/// A histogram from its V2 encoding, compressed (as in interval logs) or not.
///
/// # Errors
///
/// A description of why the bytes are not a histogram.
pub fn deserialize(bytes: &[u8]) -> Result<Histogram<u64>, String> {
    let mut slice = bytes;
    Deserializer::new()
        .deserialize(&mut slice)
        .map_err(|e| format!("{e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_percentiles() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.record(v).unwrap();
        }
        let s = LatencySummary::of(&h).unwrap();
        assert_eq!((s.min, s.max, s.count), (1, 1000, 1000));
        assert_eq!(s.p50, 500);
        assert_eq!(s.p90, 900);
        assert_eq!(s.p99, 990);
        assert_eq!(s.p999, 999);
        assert!((s.mean - 500.5).abs() < 1.0);
        assert!(LatencySummary::of(&new_histogram()).is_none());
    }
}
