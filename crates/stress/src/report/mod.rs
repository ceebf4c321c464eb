//! Building the result of a run: the [`StressReport`] (the result model of `ringport-report`)
//! made from what the client threads measured, with the warnings the numbers call for.
//!
//! This module is responsible for [`build`] (the merged [`ThreadStats`] and the configuration
//! into a report; the engine adds the facts only it knows: backend, measured duration, extra
//! warnings) and [`interval_log`] (the run's per-second histograms as an HdrHistogram interval
//! log, see [`ringport_report::hdrlog`]). The result type, its JSON and its exporters (human,
//! JSON, CSV, interval log) are `ringport-report`'s.
//!
//! * [`tls`]: the `tls` object and the `handshake` interval (`--tls`).
//! * [`ws`]: the `websocket` object and the `upgrade` interval (`--websocket`).
//! * [`warnings`]: the warnings beyond the figures (starved connections, the client's ports).

pub mod tls;
pub mod warnings;
pub mod ws;

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
use crate::error::ErrorKind;
use crate::measure::thread::ThreadStats;
use crate::report::warnings::starved_warning;

/// In rate mode, a run that reaches less than this fraction of `--rate` gets a warning.
pub const RATE_SHORTFALL: f64 = 0.95;

/// Seconds rounded to the microsecond, the precision they are measured to: a difference of two
/// wall-clock times is not printed as `1.9942885700000001`.
pub fn round_to_micros(secs: f64) -> f64 {
    (secs * 1e6).round() / 1e6
}

/// Builds the report of a run of `config` from the merged `stats`, measured over `measured`
/// (warm-up excluded), on `backend`. Adds the warnings the numbers call for.
pub fn build(
    config: &StressConfig,
    stats: &ThreadStats,
    measured: Duration,
    backend: &str,
) -> StressReport {
    let secs = round_to_micros(measured.as_secs_f64());
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
    if let Some(w) = starved_warning(&stats.per_connection, stream_mode, stats.closed_at_byte_0) {
        warnings.push(w);
    }
    if stats.server_closes > 0 {
        warnings.push(format!(
            "the server closed {} connection{} after a reply that said `Connection: close` (as \
             nginx does after keepalive_requests replies); each was replaced by a new \
             connection and the run went on, so the figures include those reconnects",
            stats.server_closes,
            if stats.server_closes == 1 { "" } else { "s" }
        ));
    }
    let connects_failed = stats.errors.get(ErrorKind::ConnectFailed);
    if stats.closed_at_byte_0 > 0 {
        // Connects that failed as well: the server went away, rather than turning clients away.
        let cause = if connects_failed > 0 {
            format!(
                "and {connects_failed} connects failed: the server likely stopped (was stopped, \
                 killed or crashed) during the run"
            )
        } else {
            "a server-side connection limit is the likely cause (for ringport serve: \
             --max-per-ip, --max-connections; its log says which)"
                .to_string()
        };
        warnings.push(format!(
            "{} of {} connections were closed or reset by the server before it echoed a \
             byte: {cause}",
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
        target: config.target(),
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
            Stop::Count(1) if stream_mode => "1 chunk per connection".to_string(),
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
        errors_over_time: stats.error_times.seconds(),
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
        tls: None,
        websocket: None,
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
        datagrams: None,
        datagram_flows: Vec::new(),
        datagrams_over_time: Vec::new(),
        jitter_us: None,
        max_loss_pct: None,
        udp_offload: None,
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
mod tests;
