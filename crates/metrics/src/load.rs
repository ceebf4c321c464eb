//! The load generator's metrics (`ringport stress --metrics ADDR`): read from the engine's
//! shared [`Progress`] at each scrape, which every client thread adds to once per turn of its
//! loop (its latencies about every 50 ms), so a scrape costs the client threads nothing.
//!
//! Counters run from the start of the process, warm-up included (Prometheus' `rate()` makes
//! rates of them). The latency histogram is the live one behind the progress line (eight
//! buckets per power of two), summed into Prometheus buckets at 8 µs, 12 µs, 16 µs, 24 µs, ...
//! (two per power of two) up to 33.5 s: each live bucket lies wholly inside one of them, so the
//! bucket counts are exact; its sum is the exact sum of the latencies.
//!
//! With `--udp`, the datagrams echoed and lost (the progress line's) are two counters more,
//! absent in TCP runs.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use ringport_stress::config::{StressConfig, Workload};
use ringport_stress::engine::progress::{bucket_end, Phase, Progress};
use ringport_stress::error::ErrorKind;
use ringport_stress::plan::ramp::Ramp;

use crate::encode::{counter, counters, gauge, gauges, info};

/// The Prometheus buckets' upper bounds, in microseconds: 8, 12, 16, 24, ..., 2^25 (33.5 s).
fn bounds_us() -> Vec<u64> {
    let mut bounds = Vec::new();
    for k in 3..25 {
        bounds.push(1u64 << k);
        bounds.push(3u64 << (k - 1));
    }
    bounds.push(1u64 << 25);
    bounds
}

/// The live histogram's `counts` as Prometheus buckets over `bounds` (µs): each bucket's own
/// count (not cumulative), with the last, `+Inf`, as `f64::INFINITY`; bounds in seconds.
fn buckets(counts: &[u64], bounds: &[u64]) -> Vec<(f64, u64)> {
    let mut out: Vec<(f64, u64)> = bounds
        .iter()
        .map(|&b| (b as f64 / 1e6, 0))
        .chain([(f64::INFINITY, 0)])
        .collect();
    for (i, &n) in counts.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let end = bucket_end(i);
        // The first bound that every value of the live bucket is below (or +Inf). The last live
        // bucket also holds the values above its end: +Inf.
        let at = if i + 1 == counts.len() {
            bounds.len()
        } else {
            bounds.partition_point(|&b| b < end)
        };
        out[at].1 += n;
    }
    out
}

/// What the load's target rate is made of, for `ringport_stress_target_messages_per_second`.
#[derive(Debug, Clone, PartialEq)]
enum TargetRate {
    /// Closed loop or a stream: no target.
    None,
    /// `--rate N`: this process's share of it.
    Fixed(f64),
    /// A rate ramp (held at its first level during the warm-up), times this process's share.
    Ramp { ramp: Ramp, share: f64 },
}

impl TargetRate {
    fn of(cfg: &StressConfig) -> TargetRate {
        let segment = cfg.segment_or_whole();
        match (cfg.workload(), &cfg.rate_ramp) {
            (Workload::Rate { .. }, Some(ramp)) => TargetRate::Ramp {
                ramp: ramp.clone(),
                share: segment.rate(1.0, cfg.connections),
            },
            (Workload::Rate { rate, .. }, None) => {
                TargetRate::Fixed(segment.rate(rate, cfg.connections))
            }
            _ => TargetRate::None,
        }
    }

    /// The rate asked for `since_load` after the load started (`None`: not yet, so 0), with
    /// `warmup` of warm-up; `None` without a target.
    fn at(&self, since_load: Option<Duration>, warmup: Duration) -> Option<f64> {
        if *self == TargetRate::None {
            return None;
        }
        let Some(since) = since_load else {
            return Some(0.0);
        };
        Some(match self {
            TargetRate::None => 0.0,
            TargetRate::Fixed(r) => *r,
            TargetRate::Ramp { ramp, share } => {
                let level = match since.checked_sub(warmup) {
                    None => ramp.first(),
                    Some(t) => ramp.level_at(t.as_secs_f64()),
                };
                level * share
            }
        })
    }
}

/// A registry holding the load's metrics, read from `progress` at each scrape; `done` is set
/// once the run is over.
pub fn registry(cfg: &StressConfig, progress: Arc<Progress>, done: Arc<AtomicBool>) -> Registry {
    let workload = match cfg.workload() {
        Workload::Closed { .. } => "closed",
        Workload::Rate { .. } => "rate",
        Workload::Stream { .. } => "stream",
    };
    let metrics = LoadMetrics {
        progress,
        done,
        warmup: cfg.warmup,
        rate: TargetRate::of(cfg),
        target: format!("{}:{}", cfg.host, cfg.port),
        workload,
        protocol: if cfg.requests.is_empty() {
            "echo"
        } else {
            "request-response"
        },
        segment: cfg.segment_or_whole().to_string(),
        bounds: bounds_us(),
        udp: cfg.udp,
    };
    let mut registry = Registry::default();
    registry.register_collector(Box::new(metrics));
    registry
}

/// The collector: the run's live counters as metrics.
#[derive(Debug)]
struct LoadMetrics {
    progress: Arc<Progress>,
    done: Arc<AtomicBool>,
    warmup: Duration,
    rate: TargetRate,
    target: String,
    workload: &'static str,
    protocol: &'static str,
    segment: String,
    bounds: Vec<u64>,
    /// `--udp`: the datagram counters are written.
    udp: bool,
}

/// The phases `ringport_stress_phase` names, in order.
const PHASES: [&str; 4] = ["connecting", "warmup", "measuring", "done"];

impl Collector for LoadMetrics {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let p = &self.progress;
        let now = Instant::now();
        let load_start = p.load_start.get().copied();
        let done = self.done.load(Ordering::Relaxed);
        let phase = if done {
            "done"
        } else {
            match Phase::at(now, load_start, self.warmup) {
                Phase::Connecting => "connecting",
                Phase::WarmUp { .. } => "warmup",
                Phase::Measuring { .. } => "measuring",
            }
        };
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let e = &mut enc;
        info(
            e,
            "ringport_stress",
            "The load: ringport's version, the server it loads, the workload (closed, rate, stream), the protocol (echo, request-response), this process's segment (I/N).",
            &[
                ("version", crate::VERSION),
                ("target", self.target.as_str()),
                ("workload", self.workload),
                ("protocol", self.protocol),
                ("segment", self.segment.as_str()),
            ],
        )?;
        let phases: Vec<(&str, i64)> = PHASES
            .iter()
            .map(|&name| (name, i64::from(name == phase)))
            .collect();
        gauges(e, "ringport_stress_phase", "The run's phase: 1 for the current one of connecting, warmup, measuring, done; 0 for the others.", "phase", &phases)?;
        counter(
            e,
            "ringport_stress_messages_sent",
            "Messages handed to a send (a stream's chunks), warm-up included.",
            load(&p.sent),
        )?;
        counter(
            e,
            "ringport_stress_messages_verified",
            "Messages whose echo (or reply) was verified byte for byte, warm-up included.",
            load(&p.messages),
        )?;
        let errors: Vec<(&str, u64)> = ErrorKind::ALL
            .iter()
            .map(|&k| (k.as_str(), load(&p.errors_by_kind[k.index()])))
            .collect();
        counters(e, "ringport_stress_errors", "Failed connections by cause, as the report counts them: mismatch, short_echo, early_close, reset, timeout, connect_failed, other.", "kind", &errors)?;
        let connected = load(&p.connected);
        counter(
            e,
            "ringport_stress_connections_established",
            "Connections established (with --messages-per-connection, every reconnection).",
            connected,
        )?;
        gauge(
            e,
            "ringport_stress_connections_open",
            "Connections established and not closed yet.",
            connected.saturating_sub(load(&p.closed)),
        )?;
        if self.udp {
            counter(
                e,
                "ringport_stress_datagrams_echoed",
                "--udp: distinct datagrams whose echo came back, warm-up included.",
                load(&p.datagrams_echoed),
            )?;
            counter(
                e,
                "ringport_stress_datagrams_lost",
                "--udp: datagrams lost (no echo within --timeout), warm-up included.",
                load(&p.datagrams_lost),
            )?;
        }
        let counts = p.latency.snapshot();
        let count: u64 = counts.iter().sum();
        let sum = load(&p.latency_sum_us) as f64 / 1e6;
        enc.encode_descriptor(
            "ringport_stress_latency",
            "Latency of each verified message (a stream's chunk), from its intended send time (--rate: coordinated omission corrected; closed loop: its send), warm-up included.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?
        .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            sum,
            count,
            &buckets(&counts, &self.bounds),
            None,
        )?;
        let since_load = if done {
            None
        } else {
            load_start.map(|s| now.saturating_duration_since(s))
        };
        if let Some(rate) = self.rate.at(since_load, self.warmup) {
            gauge(&mut enc, "ringport_stress_target_messages_per_second", "The rate the open loop's schedule asks of this process now (--rate, or a ramp's level; 0 before and after the load). Absent in closed loop and streams.", rate)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringport_stress::engine::progress::{bucket_of, BUCKETS};

    #[test]
    fn a_udp_run_has_its_datagram_counters() {
        let p = Arc::new(Progress::default());
        let cfg = StressConfig {
            udp: true,
            ..StressConfig::default()
        };
        let r = registry(&cfg, Arc::clone(&p), Arc::new(AtomicBool::new(false)));
        let text = || {
            let mut text = String::new();
            prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
            text
        };
        let before = text();
        assert!(
            before.contains("ringport_stress_datagrams_echoed_total 0\n"),
            "present from the start: {before}"
        );
        p.datagrams_echoed.store(380, Ordering::Relaxed);
        p.datagrams_lost.store(20, Ordering::Relaxed);
        let after = text();
        for line in [
            "# TYPE ringport_stress_datagrams_echoed counter\n",
            "ringport_stress_datagrams_echoed_total 380\n",
            "ringport_stress_datagrams_lost_total 20\n",
            "# HELP ringport_stress_datagrams_lost ",
        ] {
            assert!(after.contains(line), "no {line:?} in\n{after}");
        }
    }

    #[test]
    fn live_buckets_fall_wholly_into_one_prometheus_bucket() {
        let bounds = bounds_us();
        assert_eq!(bounds[..4], [8, 12, 16, 24]);
        assert_eq!(*bounds.last().unwrap(), 1 << 25);
        // Every bound is where a live bucket ends, so no live bucket straddles one.
        for &b in &bounds {
            assert_eq!(
                bucket_end(bucket_of(b) - 1),
                b,
                "{b} is a live bucket boundary"
            );
        }
        let mut counts = vec![0u64; BUCKETS];
        for us in [0, 7, 8, 11, 12, 100, 5_000_000, 40_000_000] {
            counts[bucket_of(us)] += 1;
        }
        counts[BUCKETS - 1] += 1; // beyond everything
        let b = buckets(&counts, &bounds);
        let le = |s: f64| b.iter().find(|(x, _)| (*x - s).abs() < 1e-12).unwrap().1;
        assert_eq!(le(8e-6), 2, "0 and 7 us are at most 8 us");
        assert_eq!(le(12e-6), 2, "8 and 11 us are at most 12 us");
        assert_eq!(le(16e-6), 1, "12 us");
        assert_eq!(le(128e-6), 1, "100 us: 96..128");
        assert_eq!(
            b.last().unwrap(),
            &(f64::INFINITY, 2),
            "40 s and the last bucket: +Inf"
        );
        assert_eq!(b.iter().map(|x| x.1).sum::<u64>(), 9);
    }

    #[test]
    fn the_target_rate_follows_the_schedule() {
        let w = Duration::from_secs(2);
        assert_eq!(TargetRate::None.at(Some(w), w), None);
        let fixed = TargetRate::Fixed(500.0);
        assert_eq!(fixed.at(None, w), Some(0.0), "not started");
        assert_eq!(fixed.at(Some(Duration::ZERO), w), Some(500.0));
        let ramp = TargetRate::Ramp {
            ramp: Ramp::Steps {
                levels: vec![100.0, 200.0],
                dwell: Duration::from_secs(5),
            },
            share: 0.5,
        };
        assert_eq!(
            ramp.at(Some(Duration::from_secs(1)), w),
            Some(50.0),
            "warm-up: first level"
        );
        assert_eq!(
            ramp.at(Some(Duration::from_secs(8)), w),
            Some(100.0),
            "second step"
        );
        assert_eq!(
            ramp.at(Some(Duration::from_secs(60)), w),
            Some(100.0),
            "held at the last"
        );
    }

    #[test]
    fn a_scrape_reads_the_progress_counters() {
        let p = Arc::new(Progress::default());
        let done = Arc::new(AtomicBool::new(false));
        let cfg = StressConfig {
            rate: Some(1000.0),
            ..StressConfig::default()
        };
        let r = registry(&cfg, Arc::clone(&p), Arc::clone(&done));
        p.messages.store(42, Ordering::Relaxed);
        p.sent.store(45, Ordering::Relaxed);
        p.connected.store(10, Ordering::Relaxed);
        p.closed.store(3, Ordering::Relaxed);
        p.errors_by_kind[ErrorKind::Reset.index()].store(2, Ordering::Relaxed);
        let mut local = vec![0u64; BUCKETS];
        local[bucket_of(100)] = 4;
        p.latency.add_local(&mut local);
        p.latency_sum_us.store(400, Ordering::Relaxed);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
        for line in [
            "ringport_stress_messages_verified_total 42\n",
            "ringport_stress_messages_sent_total 45\n",
            "ringport_stress_connections_open 7\n",
            "ringport_stress_errors_total{kind=\"reset\"} 2\n",
            "ringport_stress_errors_total{kind=\"mismatch\"} 0\n",
            "ringport_stress_phase{phase=\"connecting\"} 1\n",
            "ringport_stress_phase{phase=\"measuring\"} 0\n",
            "ringport_stress_latency_seconds_count 4\n",
            "ringport_stress_latency_seconds_sum 0.0004\n",
            "ringport_stress_latency_seconds_bucket{le=\"+Inf\"} 4\n",
            "# UNIT ringport_stress_latency_seconds seconds\n",
            "ringport_stress_target_messages_per_second 0",
            "workload=\"rate\"",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
        assert!(!text.contains("datagrams"), "a TCP run: {text}");
        done.store(true, Ordering::Relaxed);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
        assert!(
            text.contains("ringport_stress_phase{phase=\"done\"} 1\n"),
            "{text}"
        );
    }
}
