//! `stress --udp`: loading a UDP echo with flows of datagrams, every datagram accounted for.
//!
//! `--connections` flows, each one UDP socket, spread over the client threads (each with its
//! own completion port, as the TCP client's). Each datagram begins with its flow, sequence
//! number and send time ([`header`]), then the payload (`--size` bytes in all, or the header
//! and the text of `--message`). Every echo is attributed by its header and compared byte for
//! byte with what was sent; each flow's [`tracker`] counts what became of its datagrams:
//!
//! - `sent`; `echoed`: distinct datagrams whose echo came back within `--timeout`, damaged or
//!   not; `lost` = `sent - echoed` (an echo later than the timeout does not count);
//! - `duplicated`: extra copies; `reordered`: echoes that arrived after an echo of a later
//!   datagram of the same flow; `corrupted`: echoes (every copy) whose bytes differ from what
//!   was sent, or whose header names no datagram sent;
//! - latency (from the intended send time in open loop) of the intact first copies, and the
//!   interarrival jitter of RFC 3550 per flow.
//!
//! The report has the counts in total, per flow (`datagram_flows`, each with its jitter) and
//! per second of sending (`datagrams_over_time`, each with the mean transit difference of its
//! intact first copies); the progress line has the datagrams lost so far.
//!
//! Closed loop keeps `--pipeline` datagrams outstanding per flow (a lost one frees its place
//! when its timeout passes); open loop (`--rate`, ramps, `--segment`) sends on the TCP
//! client's schedule whatever comes back. Only datagrams intended inside the measured window
//! (after `--warmup`) are counted. When every flow is done, the client listens for a quiet
//! spell (a tenth of `--timeout`, at most 100 ms) for copies still on their way.
//!
//! A corrupted echo is counted as a `mismatch` error, so the run exits 1; loss alone fails the
//! run only beyond `--max-loss`.
//!
//! # Modules
//!
//! - this one: [`run`], the threads and the report;
//! - [`header`]: the datagram's header;
//! - [`tracker`]: one flow's account of its datagrams;
//! - `client`: one thread's loop on its port.

mod client;
pub mod header;
pub mod tracker;

use std::sync::{Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use ringport_report::datagrams::{
    DatagramFlow, DatagramSecond, Datagrams, Jitter, SecondAccount, UdpOffload,
};

use crate::config::preflight::preflight;
use crate::config::{Stop, StressConfig, Workload};
use crate::engine::{RunOptions, StressError, StressOutcome};
use crate::measure::thread::ThreadStats;
use crate::plan::segment::unix_secs;
use crate::protocol::payload::PayloadSpec;
use client::{ThreadOut, UdpShared};
use header::HEADER_LEN;

/// The payload after the header for `config`: `--size` minus the header in random bytes, or
/// the text of `--message` (the default message without either).
pub fn payload(config: &StressConfig) -> PayloadSpec {
    match config.payload() {
        PayloadSpec::Random { size, seed } => PayloadSpec::Random {
            size: size.saturating_sub(HEADER_LEN),
            seed,
        },
        text => text,
    }
}

/// The sequence numbers each flow remembers: twice what can be outstanding (`--pipeline` in
/// closed loop; a flow's share of the rate over `--timeout` in open loop), from 64 to 65,536.
fn horizon(config: &StressConfig) -> usize {
    let outstanding = match config.workload() {
        Workload::Rate { rate, .. } => {
            let per_flow = rate / config.connections.max(1) as f64;
            (per_flow * config.timeout.as_secs_f64()).ceil() as usize + 1
        }
        _ => config.pipeline,
    };
    outstanding.saturating_mul(2).clamp(64, 1 << 16)
}

/// The threads' datagrams per second added, seconds without any datagram left out.
fn over_time<'a>(threads: impl Iterator<Item = &'a [SecondAccount]>) -> Vec<DatagramSecond> {
    let mut all: Vec<SecondAccount> = Vec::new();
    for seconds in threads {
        if all.len() < seconds.len() {
            all.resize(seconds.len(), SecondAccount::default());
        }
        for (sum, d) in all.iter_mut().zip(seconds) {
            sum.add(d);
        }
    }
    all.into_iter()
        .enumerate()
        .filter(|(_, d)| d.counts != Datagrams::default())
        .map(|(second, account)| account.to_second(second as u64))
        .collect()
}

/// Runs `config` (with `udp` set) to completion. See the module docs.
///
/// # Errors
///
/// A [`StressError`] when the run cannot start (bad options, limits, name resolution, no port).
pub fn run(config: &StressConfig, opts: &RunOptions) -> Result<StressOutcome, StressError> {
    config.validate()?;
    crate::engine::check_outputs(config)?;
    let addrs =
        crate::engine::resolve::resolve_all(&config.host, config.port).map_err(|source| {
            StressError::Resolve {
                host: config.host.clone(),
                source,
            }
        })?;
    let addr = addrs[0];
    let pre = preflight(config, addr.ip())?;
    let backend = config
        .backend
        .resolve()
        .map_err(|e| StressError::Port(e.to_string()))?;
    let threads = config.effective_threads();
    let shared = UdpShared {
        config,
        first: config.own_connections().start,
        payload: payload(config),
        addr,
        barrier: Barrier::new(threads),
        load_start: OnceLock::new(),
        start_late: OnceLock::new(),
        backend,
        opts,
        horizon: horizon(config),
    };
    let results: Vec<Result<ThreadOut, String>> = thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let shared = &shared;
                thread::Builder::new()
                    .name(format!("stress-udp-{t}"))
                    .spawn_scoped(s, move || client::run_thread(shared, t, threads))
                    .expect("spawning a client thread")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("panicked".to_string())))
            .collect()
    });
    let mut parts = Vec::with_capacity(threads);
    for (t, r) in results.into_iter().enumerate() {
        parts.push(r.map_err(|detail| StressError::Thread { thread: t, detail })?);
    }
    let stats = ThreadStats::merge_all(
        config.own_connections().len(),
        parts.iter().map(|p| &p.stats),
    );
    let mut flows: Vec<DatagramFlow> = parts.iter().flat_map(|p| p.flows.clone()).collect();
    flows.sort_by_key(|f| f.flow);
    let mut datagrams = Datagrams::default();
    for f in &flows {
        datagrams.add(&f.counts);
    }
    let jitters: Vec<f64> = flows.iter().filter_map(|f| f.jitter_us).collect();
    let measure_start = parts
        .iter()
        .map(|p| p.measure_start)
        .min()
        .unwrap_or_else(Instant::now);
    let stopped = parts.iter().filter_map(|p| p.stopped_early).min();
    let load_end = parts.iter().filter_map(|p| p.load_end).max();
    let last_echo = parts.iter().filter_map(|p| p.last_echo).max();
    let end = match config.stop() {
        Stop::Duration(d) => [Some(measure_start + d), stopped, load_end]
            .into_iter()
            .flatten()
            .min(),
        Stop::Count(_) => last_echo.or(load_end),
    };
    let measured = end.map_or(Duration::ZERO, |end| {
        end.saturating_duration_since(measure_start)
    });
    let measure_started =
        SystemTime::now() - Instant::now().saturating_duration_since(measure_start);
    let mut report = crate::report::build(config, &stats, measured, backend.name());
    report.protocol = "udp-echo".to_string();
    report.payload = match &shared.payload {
        PayloadSpec::Random { size, .. } => {
            format!("{}-byte datagrams, random", size + HEADER_LEN)
        }
        PayloadSpec::Text(text) => format!("datagrams, text {text:?}"),
    };
    report.datagrams = Some(datagrams);
    report.datagram_flows = flows;
    report.datagrams_over_time = over_time(parts.iter().map(|p| p.seconds.as_slice()));
    report.jitter_us = Some(Jitter::of(&jitters));
    report.max_loss_pct = config.max_loss_pct;
    report.udp_offload = parts
        .iter()
        .map(|p| UdpOffload {
            gso: p.offload.burst_max > 1 || p.offload.segmented_sends > 0,
            gro: p.offload.gro,
            segmented_sends: p.offload.segmented_sends,
            coalesced_receives: p.offload.coalesced_receives,
        })
        .reduce(|mut sum, o| {
            sum.add(&o);
            sum
        });
    report.started_at_unix_s = (unix_secs(measure_started) * 1000.0).round() / 1000.0;
    let refused: u64 = parts.iter().map(|p| p.refused).sum();
    if refused > 0 {
        report.warnings.push(format!(
            "{refused} receives were refused (ICMP port unreachable): nothing serves UDP on {}",
            config.target()
        ));
    }
    let io_errors: u64 = parts.iter().map(|p| p.io_errors).sum();
    if io_errors > 0 {
        report.warnings.push(format!(
            "{io_errors} datagram sends or receives failed (their datagrams count as lost)"
        ));
    }
    if datagrams.sent > 0 && datagrams.echoed == 0 {
        report.warnings.push(format!(
            "no datagram came back: is a UDP echo serving {} (`ringport serve --udp`)?",
            config.target()
        ));
    }
    if report.loss_exceeded() {
        report.warnings.push(format!(
            "{:.3}% of the datagrams were lost, more than --max-loss {}%",
            datagrams.loss_pct(),
            config.max_loss_pct.unwrap_or_default()
        ));
    }
    if let Some(&late) = shared.start_late.get() {
        report.start_late_s = Some(late.as_secs_f64());
    }
    if stopped.is_some() {
        report.mark_interrupted();
    }
    Ok(StressOutcome {
        report,
        stats,
        measure_started,
        measured,
        preflight: pre,
        tls: None,
        ws: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_add_across_threads_and_lost_is_per_second() {
        let d = |sent, echoed| SecondAccount {
            counts: Datagrams {
                sent,
                echoed,
                ..Datagrams::default()
            },
            ..SecondAccount::default()
        };
        let mut jittery = d(10, 9);
        jittery.transit_difference(4000);
        let a = [jittery, SecondAccount::default(), d(5, 5)];
        let mut b = [d(1, 0)];
        b[0].transit_difference(2000);
        let got = over_time([a.as_slice(), b.as_slice()].into_iter());
        let seconds: Vec<(u64, u64, u64, u64)> = got
            .iter()
            .map(|s| (s.second, s.counts.sent, s.counts.echoed, s.counts.lost))
            .collect();
        assert_eq!(seconds, [(0, 11, 9, 2), (2, 5, 5, 0)]);
        assert_eq!((got[0].jitter_us, got[0].jitter_samples), (Some(3.0), 2));
        assert_eq!(got[1].jitter_us, None);
    }

    #[test]
    fn the_size_is_the_whole_datagram() {
        let config = StressConfig {
            udp: true,
            size: Some(64),
            ..StressConfig::default()
        };
        assert_eq!(payload(&config).max_len(), 64 - HEADER_LEN);
    }

    #[test]
    fn the_horizon_covers_what_can_be_outstanding() {
        let closed = StressConfig {
            udp: true,
            pipeline: 100,
            ..StressConfig::default()
        };
        assert_eq!(horizon(&closed), 200);
        let open = StressConfig {
            udp: true,
            rate: Some(10_000.0),
            connections: 10,
            timeout: Duration::from_secs(2),
            ..StressConfig::default()
        };
        assert_eq!(horizon(&open), 4002);
    }
}
