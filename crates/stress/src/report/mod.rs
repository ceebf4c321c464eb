//! Building the result of a run: the [`StressReport`] (the result model of `ringport-report`)
//! made from what the client threads measured, with the warnings the numbers call for.
//!
//! This module is responsible for [`build`] (the merged [`ThreadStats`] and the configuration
//! into a report; the engine adds the facts only it knows: backend, measured duration, extra
//! warnings) and [`interval_log`] (the run's per-second histograms as an HdrHistogram interval
//! log, see [`ringport_report::hdrlog`]). The result type, its JSON and its exporters (human,
//! JSON, CSV, interval log) are `ringport-report`'s.
//!
//! * [`warnings`]: the warnings beyond the figures (starved connections, the client's ports).

pub mod warnings;

use std::time::{Duration, SystemTime};

use ringport_report::errors::FirstError;
use ringport_report::fairness::run_lengths;
use ringport_report::fairness::Fairness;
use ringport_report::hdrlog::{
    IntervalLog, LogInterval, TAG_CONNECT, TAG_LATENCY, TAG_UNCORRECTED,
};
use ringport_report::histogram::LatencySummary;
pub use ringport_report::run::{AgentRun, Spread, StepFigures, StreamFigures, StressReport};

use crate::config::{Stop, StressConfig, Workload};
use crate::measure::thread::ThreadStats;
use crate::report::warnings::starved_warning;

/// In rate mode, a run that reaches less than this fraction of `--rate` gets a warning.
pub const RATE_SHORTFALL: f64 = 0.95;

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
            "echo".to_string()
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
        echoed_bytes_per_connection: stream_mode.then(|| run_lengths(&stats.per_connection_echoed)),
        client_cpu_pct: stats
            .cpu
            .iter()
            .map(|c| (c.utilization() * 1000.0).round() / 10.0)
            .collect(),
        stream: stream_mode.then(|| {
            stream_figures(
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

/// The run's interval log: a `connect` interval over the run, and from `stats`' per-second
/// intervals ([`ThreadStats::start_intervals`]) a `latency` interval per second that has
/// values (and in rate mode an `uncorrected` one beside it), stamped from
/// [`started_at_unix_s`](StressReport::started_at_unix_s).
pub fn interval_log(report: &StressReport, stats: &ThreadStats) -> IntervalLog {
    let measured = Duration::from_secs_f64(report.duration_s.max(0.0));
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(report.started_at_unix_s);
    let mut intervals = vec![LogInterval::new(
        TAG_CONNECT,
        Duration::ZERO,
        measured,
        &stats.connect,
    )];
    let rate_mode = report.mode == "rate";
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
        run_id: Some(report.run_id.clone()),
        segment: report.segment,
        intervals,
    }
}

/// The figures of `stats` over `secs` seconds, for chunks of `chunk` bytes and `in_flight`
/// chunks per connection.
pub fn stream_figures(
    stats: &ThreadStats,
    secs: f64,
    chunk: usize,
    in_flight: usize,
) -> StreamFigures {
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
                        LatencySummary::of_or_zero(&ringport_report::histogram::new_histogram()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ConnError;
    use crate::measure::cpu::ThreadCpu;
    use crate::protocol::echo::{Completed, SendStamp};
    use ringport_report::export::OutputTarget;
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
        let r = build(
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
        let r = build(&c, &s, Duration::from_secs(2), "uring");
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
        let echo = build(&config(), &s, Duration::from_secs(2), "uring");
        let v: serde_json::Value = serde_json::from_str(&echo.to_json()).unwrap();
        assert!(v["stream"].is_null());
    }

    #[test]
    fn rate_mode_reports_both_latencies_and_a_shortfall() {
        let c = StressConfig {
            rate: Some(1000.0),
            ..config()
        };
        let r = build(&c, &stats_with(100, 4), Duration::from_secs(1), "epoll");
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
        let r = build(&config(), &s, Duration::from_secs(1), "uring");
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
        let r = build(
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
        let r = build(&config(), &s, Duration::from_secs(1), "uring");
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
        let r = build(
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
    fn json_goes_to_a_file() {
        let dir = std::env::temp_dir().join(format!("ringport-stress-json-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.json");
        let r = build(
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
        let mut r = build(&c, &s, Duration::from_millis(2500), "uring");
        r.started_at_unix_s = 1_700_000_000.0;
        let log = interval_log(&r, &s);
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
        let r = build(&config(), &s, Duration::from_secs(2), "uring");
        let back = StressReport::from_json(&r.to_json()).unwrap();
        assert_eq!(back, r);
        assert_eq!(r.protocol, "echo");
        // A result written before `protocol` existed reads back as echo.
        let mut old: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        old.as_object_mut().unwrap().remove("protocol");
        let back = StressReport::from_json(&old.to_string()).unwrap();
        assert_eq!(back.protocol, "echo");
    }

    /// Issue 14: `1 connections on 1 threads`.
    #[test]
    fn issue14_the_header_counts_in_the_right_number() {
        let mut c = config();
        c.connections = 1;
        c.threads = 1;
        let r = build(&c, &stats_with(10, 1), Duration::from_secs(1), "uring");
        let text = r.render();
        assert!(
            text.contains("(uring): 1 connection on 1 thread,"),
            "{text}"
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
        let r = build(&c, &s, Duration::from_secs(1), "uring");
        assert_eq!(r.fairness.min, 0);
        assert!(
            r.render().contains("warning: starved: 2 of 3 connections"),
            "{}",
            r.render()
        );
    }
}
