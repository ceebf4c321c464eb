//! `ringport merge`: several agents' results and interval logs added into one result.
//!
//! This module is responsible for [`merge`]: given the `--json` results and `--hdr-log`
//! interval logs of runs of one workload on several hosts (usually `--segment 1/N` .. `N/N`
//! started together with `--start-at`), it produces the [`StressReport`] and [`IntervalLog`]
//! that one run of the whole workload would have written. Nothing is averaged:
//!
//! * **Histograms are added.** Latency and connect-time percentiles are read from the sum of
//!   the agents' histograms (their interval logs), never from their percentiles: averaging
//!   p99s is wrong whenever the agents saw different loads.
//! * **Counts are summed**: messages, bytes, errors by kind, connections, threads, client CPU.
//!   Fairness (messages per connection) is taken exactly over the union of the agents'
//!   connections (the results carry per-connection counts run-length encoded). A UDP run's
//!   datagrams are summed, per second and in total; each agent's flows are listed with the
//!   agent's number (its place in `merged_from`, from 1), so they add up to the total.
//! * **Time is wall-clock time.** The merged run starts at the earliest agent's measured start
//!   and ends at the latest agent's end; rates are divided by that span. Per-second intervals
//!   are aligned on wall-clock time: an agent's interval starting `d` seconds after the merged
//!   start is added into merged interval `round(d)` (agents started by `--start-at` are
//!   milliseconds apart, so their seconds coincide).
//!
//! # Refusals
//!
//! A result is paired with its log by the run id both carry. Each error is one line: a file that
//! is neither kind; a result without its log (percentiles cannot be merged without histograms)
//! or a log without its result; a log whose histograms do not hold its result's count; the same
//! run or segment twice; an already merged result; and runs of **different workloads** (target,
//! mode, payload and size, stop condition, pipeline, window, seed, warm-up, whole-run
//! connections and rate, number of segments), naming the first field that differs.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;

use crate::report::{AgentRun, Spread, StreamFigures, StressReport};
use ringport_report::datagrams::{DatagramFlow, DatagramSecond};
use ringport_report::errors::{ErrorCounts, ErrorSecond};
use ringport_report::fairness::fairness_of_runs;
use ringport_report::hdrlog::{
    IntervalLog, LogInterval, TAG_CONNECT, TAG_HANDSHAKE, TAG_LATENCY, TAG_UNCORRECTED, TAG_UPGRADE,
};
use ringport_report::histogram::{new_histogram, LatencySummary};

/// One input file: its name (for messages) and contents.
#[derive(Debug, Clone)]
pub struct Input {
    /// The file name as given.
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Why the files cannot be merged: one line naming the file(s) and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MergeError(pub String);

fn refuse<T>(msg: impl Into<String>) -> Result<T, MergeError> {
    Err(MergeError(msg.into()))
}

/// The merged run.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The result, as one run's (with `merged_from` listing the agents).
    pub report: StressReport,
    /// The interval log, as one run's.
    pub log: IntervalLog,
}

/// One agent: its result, its log, and where they came from.
struct Agent {
    report: StressReport,
    log: IntervalLog,
    json_name: String,
    log_name: String,
}

/// What must be equal for two runs to be parts of one workload: `(field, value)`.
fn workload(r: &StressReport) -> Vec<(&'static str, String)> {
    let window = r.stream.as_ref().map(|s| s.window_bytes);
    vec![
        ("target", r.target.clone()),
        ("mode", r.mode.clone()),
        ("protocol", r.protocol.clone()),
        ("payload", r.payload.clone()),
        ("stop", r.stop.clone()),
        ("pipeline", r.pipeline.to_string()),
        ("window", format!("{window:?}")),
        ("seed", r.seed.to_string()),
        (
            "messages per connection",
            r.churn.as_ref().map_or_else(
                || "none".to_string(),
                |c| c.messages_per_connection.to_string(),
            ),
        ),
        ("warm-up", format!("{}s", r.warmup_s)),
        ("connections", r.connections_total.to_string()),
        (
            "rate",
            r.target_rate_total
                .map_or_else(|| "none".to_string(), |x| x.to_string()),
        ),
        (
            "segments",
            r.segment
                .map_or_else(|| "none".to_string(), |s| s.count.to_string()),
        ),
    ]
}

/// Reads `inputs` (results and interval logs, in any order) and adds them into one run. See
/// the module docs.
///
/// # Errors
///
/// A [`MergeError`] for each refusal listed in the module docs.
pub fn merge(inputs: &[Input]) -> Result<Merged, MergeError> {
    let mut results: Vec<(String, StressReport)> = Vec::new();
    let mut logs: Vec<(String, IntervalLog)> = Vec::new();
    for input in inputs {
        let is_json = input
            .bytes
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|&b| b == b'{');
        if is_json {
            let text = String::from_utf8_lossy(&input.bytes);
            let r = StressReport::from_json(&text).map_err(|e| {
                MergeError(format!(
                    "{}: not a ringport stress --json result ({e})",
                    input.name
                ))
            })?;
            if !r.merged_from.is_empty() {
                return refuse(format!(
                    "{}: already a merged result; merge the agents' own results instead",
                    input.name
                ));
            }
            results.push((input.name.clone(), r));
        } else {
            let log = IntervalLog::parse(&input.bytes).map_err(|e| {
                MergeError(format!(
                    "{}: neither a ringport stress --json result nor an interval log: {e}",
                    input.name
                ))
            })?;
            logs.push((input.name.clone(), log));
        }
    }
    if results.is_empty() {
        return refuse(
            "no --json result among the files: give each agent's --json result and its --hdr-log",
        );
    }
    let agents = pair(results, logs)?;
    check_workloads(&agents)?;
    let mut warnings = check_segments(&agents)?;
    add(agents, &mut warnings)
}

/// Pairs each result with the log of the same run id.
fn pair(
    results: Vec<(String, StressReport)>,
    mut logs: Vec<(String, IntervalLog)>,
) -> Result<Vec<Agent>, MergeError> {
    let mut agents = Vec::with_capacity(results.len());
    for (json_name, report) in results {
        if let Some(other) = agents
            .iter()
            .find(|a: &&Agent| a.report.run_id == report.run_id)
        {
            return refuse(format!(
                "{json_name} and {} are the same run ({}): give each agent's result once",
                other.json_name, report.run_id
            ));
        }
        let Some(k) = logs
            .iter()
            .position(|(_, l)| l.run_id.as_deref() == Some(report.run_id.as_str()))
        else {
            return refuse(format!(
                "{json_name} (run {}): its --hdr-log is not among the files; percentiles can \
                 only be merged from histograms, so give each agent's --json and --hdr-log",
                report.run_id
            ));
        };
        let (log_name, log) = logs.swap_remove(k);
        let held = log
            .total(TAG_LATENCY)
            .map_err(|e| MergeError(format!("{log_name}: {e}")))?
            .map_or(0, |h| h.len());
        if held != report.latency_us.count {
            return refuse(format!(
                "{log_name}: its latency histograms hold {held} values but {json_name} counts {}: \
                 the log is not complete (written by an older ringport, or cut short)",
                report.latency_us.count
            ));
        }
        agents.push(Agent {
            report,
            log,
            json_name,
            log_name,
        });
    }
    if let Some((name, log)) = logs.first() {
        return refuse(match &log.run_id {
            Some(id) => format!(
                "{name} (run {id}) has no --json result among the files: give each agent's \
                 result with its log"
            ),
            None => format!(
                "{name} names no ringport run: only logs written by ringport stress --hdr-log \
                 can be paired with their results"
            ),
        });
    }
    // In segment order, then by start: the merged report lists them so.
    agents.sort_by(|a, b| {
        let key = |x: &Agent| x.report.segment.map_or(0, |s| s.index);
        key(a).cmp(&key(b)).then(
            a.report
                .started_at_unix_s
                .total_cmp(&b.report.started_at_unix_s),
        )
    });
    Ok(agents)
}

fn check_workloads(agents: &[Agent]) -> Result<(), MergeError> {
    let first = &agents[0];
    let want = workload(&first.report);
    for a in &agents[1..] {
        for ((field, x), (_, y)) in want.iter().zip(workload(&a.report)) {
            if *x != y {
                return refuse(format!(
                    "cannot merge {} and {}: different workloads ({field} {x} vs {y}); merge \
                     only the agents of one run",
                    first.json_name, a.json_name
                ));
            }
        }
    }
    Ok(())
}

/// Refuses a segment given twice; warns about missing ones.
fn check_segments(agents: &[Agent]) -> Result<Vec<String>, MergeError> {
    let Some(count) = agents[0].report.segment.map(|s| s.count) else {
        return Ok(Vec::new());
    };
    let mut seen: BTreeMap<usize, &str> = BTreeMap::new();
    for a in agents {
        let seg = a
            .report
            .segment
            .expect("same workload: every agent has a segment");
        if let Some(other) = seen.insert(seg.index, &a.json_name) {
            return refuse(format!(
                "segment {seg} given twice ({other} and {}): each agent must run its own share",
                a.json_name
            ));
        }
    }
    let missing: Vec<String> = (1..=count)
        .filter(|i| !seen.contains_key(i))
        .map(|i| format!("{i}/{count}"))
        .collect();
    Ok(if missing.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "segments {} missing: the merged result covers {} of {count} shares of the run",
            missing.join(" "),
            seen.len()
        )]
    })
}

fn add(agents: Vec<Agent>, warnings: &mut Vec<String>) -> Result<Merged, MergeError> {
    let rate_mode = agents[0].report.mode == "rate";
    let bad_log = |a: &Agent, e: String| MergeError(format!("{}: {e}", a.log_name));
    // Histograms, added.
    let mut latency = new_histogram();
    let mut uncorrected = new_histogram();
    let mut connect = new_histogram();
    let mut handshake = new_histogram();
    let mut upgrade = new_histogram();
    for a in &agents {
        for (tag, into) in [
            (TAG_LATENCY, &mut latency),
            (TAG_UNCORRECTED, &mut uncorrected),
            (TAG_CONNECT, &mut connect),
            (TAG_HANDSHAKE, &mut handshake),
            (TAG_UPGRADE, &mut upgrade),
        ] {
            if let Some(h) = a.log.total(tag).map_err(|e| bad_log(a, e))? {
                into.add(&h).map_err(|e| bad_log(a, format!("{e:?}")))?;
            }
        }
    }
    // Wall-clock span.
    let start = agents
        .iter()
        .map(|a| a.report.started_at_unix_s)
        .fold(f64::INFINITY, f64::min);
    let end = agents
        .iter()
        .map(|a| a.report.started_at_unix_s + a.report.duration_s)
        .fold(f64::NEG_INFINITY, f64::max);
    let secs = crate::report::round_to_micros((end - start).max(0.0));
    let per_s = |x: f64| if secs > 0.0 { x / secs } else { 0.0 };
    let spread = agents
        .iter()
        .map(|a| a.report.started_at_unix_s - start)
        .fold(0.0, f64::max);
    if spread > 1.0 {
        warnings.push(format!(
            "the agents began measuring up to {spread:.3}s apart: their loads overlapped only in \
             part; start them together with --start-at"
        ));
    }
    let mut backends: Vec<String> = Vec::new();
    for a in &agents {
        if !backends.contains(&a.report.backend) {
            backends.push(a.report.backend.clone());
        }
    }
    let mut report = agents[0].report.clone();
    report.backend = backends.join("+");
    report.run_id = format!("{:016x}", rand::random::<u64>());
    report.segment = None;
    report.connections = 0;
    report.connections_established = 0;
    report.threads = 0;
    report.messages = 0;
    report.bytes = 0;
    report.errors = 0;
    report.errors_by_kind = Default::default();
    report.first_error = None;
    report.interrupted = false;
    report.client_cpu_pct.clear();
    report.warnings.clear();
    report.start_late_s = None;
    let mut target_rate = None::<f64>;
    let mut per_connection = Vec::new();
    let mut echoed_per_connection = Vec::new();
    let mut stream_bytes = 0;
    for a in &agents {
        let r = &a.report;
        report.connections += r.connections;
        report.connections_established += r.connections_established;
        report.threads += r.threads;
        report.messages += r.messages;
        report.bytes += r.bytes;
        report.errors += r.errors;
        report.errors_by_kind.merge(&r.errors_by_kind);
        if report.first_error.is_none() {
            report.first_error.clone_from(&r.first_error);
        }
        report.interrupted |= r.interrupted;
        report.client_cpu_pct.extend_from_slice(&r.client_cpu_pct);
        if let Some(late) = r.start_late_s {
            report.start_late_s = Some(report.start_late_s.map_or(late, |l| l.max(late)));
        }
        if let Some(rate) = r.target_rate {
            *target_rate.get_or_insert(0.0) += rate;
        }
        per_connection.extend_from_slice(&r.messages_per_connection);
        if let Some(e) = &r.echoed_bytes_per_connection {
            echoed_per_connection.extend_from_slice(e);
        }
        if let Some(st) = &r.stream {
            stream_bytes += st.bytes;
        }
        let who = r
            .segment
            .map_or_else(|| format!("run {}", r.run_id), |s| format!("segment {s}"));
        report
            .warnings
            .extend(r.warnings.iter().map(|w| format!("{who}: {w}")));
    }
    report.warnings.append(warnings);
    report.target_rate = target_rate;
    report.started_at_unix_s = start;
    report.duration_s = secs;
    report.msgs_per_s = per_s(report.messages as f64);
    report.mib_per_s = per_s(report.bytes as f64) / (1u64 << 20) as f64;
    report.latency_us = LatencySummary::of_or_zero(&latency);
    report.latency_uncorrected_us = rate_mode.then(|| LatencySummary::of_or_zero(&uncorrected));
    report.connect_us = LatencySummary::of_or_zero(&connect);
    // Churn: the agents' counts added; the connect latency is the merged histogram's.
    if let Some(c) = &mut report.churn {
        let all = agents.iter().filter_map(|a| a.report.churn.as_ref());
        c.attempts = all.clone().map(|x| x.attempts).sum();
        c.connections = all.clone().map(|x| x.connections).sum();
        c.connections_per_s = all.clone().map(|x| x.connections_per_s).sum();
        c.connect_rate = all.clone().map(|x| x.connect_rate).sum();
        c.errors = Default::default();
        for x in all.clone() {
            c.errors.merge(&x.errors);
        }
        c.time_wait = all.clone().filter_map(|x| x.time_wait).max();
        c.connect_latency_us = report.connect_us;
    }
    // TLS: the agents' counts added; the handshake latency is the merged histogram's.
    report.tls = crate::report::tls::merged(
        agents.iter().filter_map(|a| a.report.tls.as_ref()),
        &handshake,
    );
    // UDP: the datagram counts added; the jitter's mean weighted by flows, its max the largest.
    report.datagrams = agents
        .iter()
        .filter_map(|a| a.report.datagrams)
        .reduce(|mut sum, d| {
            sum.add(&d);
            sum
        });
    report.udp_offload = agents
        .iter()
        .filter_map(|a| a.report.udp_offload)
        .reduce(|mut sum, o| {
            sum.add(&o);
            sum
        });
    report.jitter_us = report.jitter_us.map(|_| {
        ringport_report::datagrams::Jitter::merged(
            agents.iter().filter_map(|a| a.report.jitter_us.as_ref()),
        )
    });
    // WebSocket: the agents' counts added; the upgrade latency is the merged histogram's.
    report.websocket = crate::report::ws::merged(
        agents.iter().filter_map(|a| a.report.websocket.as_ref()),
        &upgrade,
    );
    report.messages_per_connection = sorted_runs(&per_connection);
    report.fairness = fairness_of_runs(&per_connection).unwrap_or(report.fairness);
    report.echoed_bytes_per_connection = report
        .stream
        .is_some()
        .then(|| sorted_runs(&echoed_per_connection));
    if let Some(st) = &mut report.stream {
        let gbit = |bytes: f64| per_s(bytes * 8.0) / 1e9;
        let f = fairness_of_runs(&echoed_per_connection);
        *st = StreamFigures {
            bytes: stream_bytes,
            seconds: secs,
            gbit_per_s: gbit(stream_bytes as f64),
            mib_per_s: per_s(stream_bytes as f64) / (1u64 << 20) as f64,
            per_connection_gbit_per_s: f.map_or(st.per_connection_gbit_per_s, |f| Spread {
                min: gbit(f.min as f64),
                median: gbit(f.median as f64),
                max: gbit(f.max as f64),
            }),
            ..st.clone()
        };
    }
    report.merged_from = agents
        .iter()
        .map(|a| AgentRun {
            run_id: a.report.run_id.clone(),
            segment: a.report.segment,
            backend: a.report.backend.clone(),
            connections: a.report.connections,
            messages: a.report.messages,
            errors: a.report.errors,
            started_at_unix_s: a.report.started_at_unix_s,
            duration_s: a.report.duration_s,
            start_late_s: a.report.start_late_s,
        })
        .collect();
    report.errors_over_time = merged_error_times(&agents, start);
    report.datagrams_over_time = merged_datagram_times(&agents, start);
    report.datagram_flows = merged_flows(&agents);
    let mut log = merged_log(&agents, &report, connect)?;
    if report.tls.is_some() {
        crate::report::tls::add_handshake_interval(&mut log, &handshake);
    }
    if report.websocket.is_some() {
        crate::report::ws::add_upgrade_interval(&mut log, &upgrade);
    }
    Ok(Merged { report, log })
}

/// Every agent's entries of one second each (`entries` of its result; `second` of an entry,
/// `None` before the measured phase) added by `add` into the merged run's seconds: an agent's
/// second `s` goes into merged second `round(d + s)`, `d` its start after the merged start, as
/// its intervals do. Returns the sum of the entries before the measured phase, and the sums by
/// merged second.
fn add_by_merged_second<'a, T: 'a, S: Default>(
    agents: &'a [Agent],
    start: f64,
    entries: impl Fn(&'a StressReport) -> &'a [T],
    second: impl Fn(&T) -> Option<u64>,
    mut add: impl FnMut(&mut S, &T),
) -> (S, BTreeMap<u64, S>) {
    let mut before = S::default();
    let mut by_second: BTreeMap<u64, S> = BTreeMap::new();
    for a in agents {
        let offset = a.report.started_at_unix_s - start;
        for e in entries(&a.report) {
            let sum = match second(e) {
                None => &mut before,
                Some(s) => by_second
                    .entry((offset + s as f64).round().max(0.0) as u64)
                    .or_default(),
            };
            add(sum, e);
        }
    }
    (before, by_second)
}

/// The agents' errors over time on the merged run's seconds ([`add_by_merged_second`]);
/// errors before an agent's measured phase stay before the merged one.
fn merged_error_times(agents: &[Agent], start: f64) -> Vec<ErrorSecond> {
    let (before, by_second) = add_by_merged_second(
        agents,
        start,
        |r| &r.errors_over_time,
        |e| e.second,
        |sum: &mut ErrorCounts, e| sum.merge(&e.errors),
    );
    let before = (before.total() > 0).then_some(ErrorSecond {
        second: None,
        errors: before,
    });
    before
        .into_iter()
        .chain(by_second.into_iter().map(|(s, errors)| ErrorSecond {
            second: Some(s),
            errors,
        }))
        .collect()
}

/// The agents' datagrams per second on the merged run's seconds ([`add_by_merged_second`]).
fn merged_datagram_times(agents: &[Agent], start: f64) -> Vec<DatagramSecond> {
    let (_, by_second) = add_by_merged_second(
        agents,
        start,
        |r| &r.datagrams_over_time,
        |d| Some(d.second),
        |sum: &mut DatagramSecond, d| sum.add(d),
    );
    by_second
        .into_iter()
        .map(|(second, sum)| DatagramSecond { second, ..sum })
        .collect()
}

/// The agents' flows, each labelled with its agent (its place among `agents`, from 1), by
/// agent and then flow.
fn merged_flows(agents: &[Agent]) -> Vec<DatagramFlow> {
    agents
        .iter()
        .enumerate()
        .flat_map(|(i, a)| {
            a.report.datagram_flows.iter().map(move |f| DatagramFlow {
                agent: Some(i as u64 + 1),
                ..*f
            })
        })
        .collect()
}

/// Run-length pairs combined and sorted.
fn sorted_runs(runs: &[[u64; 2]]) -> Vec<[u64; 2]> {
    let mut m: BTreeMap<u64, u64> = BTreeMap::new();
    for &[v, n] in runs {
        *m.entry(v).or_default() += n;
    }
    m.into_iter().map(|(v, n)| [v, n]).collect()
}

/// The agents' intervals aligned on wall-clock seconds and added (see the module docs), with
/// one `connect` interval over the merged run. One histogram is decoded at a time.
fn merged_log(
    agents: &[Agent],
    report: &StressReport,
    connect: Histogram<u64>,
) -> Result<IntervalLog, MergeError> {
    let start = agents
        .iter()
        .map(|a| a.log.start)
        .min()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let tag_order = |t: &str| match t {
        TAG_LATENCY => Some(0u8),
        TAG_UNCORRECTED => Some(1),
        _ => None,
    };
    // (second, tag order) -> the agents' intervals that fall there.
    let mut slots: BTreeMap<(u64, u8), Vec<&LogInterval>> = BTreeMap::new();
    for a in agents {
        let offset = a.log.start.duration_since(start).unwrap_or_default();
        for i in &a.log.intervals {
            let Some(order) = tag_order(&i.tag) else {
                continue;
            };
            let second = (offset + i.start).as_secs_f64().round() as u64;
            slots.entry((second, order)).or_default().push(i);
        }
    }
    let measured = Duration::from_secs_f64(report.duration_s.max(0.0));
    let mut intervals = vec![LogInterval::new(
        TAG_CONNECT,
        Duration::ZERO,
        measured,
        &connect,
    )];
    for ((second, order), parts) in slots {
        let mut sum = new_histogram();
        let mut length = Duration::ZERO;
        for i in parts {
            let h = i.histogram().map_err(MergeError)?;
            sum.add(&h).map_err(|e| MergeError(format!("{e:?}")))?;
            length = length.max(i.length);
        }
        let tag = if order == 0 {
            TAG_LATENCY
        } else {
            TAG_UNCORRECTED
        };
        intervals.push(LogInterval::new(
            tag,
            Duration::from_secs(second),
            length,
            &sum,
        ));
    }
    Ok(IntervalLog {
        start,
        run_id: Some(report.run_id.clone()),
        segment: None,
        intervals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StressConfig;
    use crate::measure::thread::ThreadStats;
    use crate::plan::segment::Segment;
    use crate::protocol::echo::{Completed, SendStamp};
    use std::time::Instant;

    /// Agent `index` of `count`: its result and log as files, with `latencies` completing at
    /// the given milliseconds into its run, which began at `started` (unix seconds).
    fn agent(index: usize, count: usize, started: f64, latencies: &[(u64, u64)]) -> [Input; 2] {
        let config = StressConfig {
            connections: 4,
            count: Some(3),
            size: Some(64),
            segment: Some(Segment { index, count }),
            ..StressConfig::default()
        };
        let t0 = Instant::now();
        let mut stats = ThreadStats::new(config.own_connections().len());
        stats.start_intervals(t0);
        for (k, &(at_ms, lat_us)) in latencies.iter().enumerate() {
            let done_at = t0 + Duration::from_millis(at_ms);
            let sent = done_at - Duration::from_micros(lat_us);
            let stamp = SendStamp {
                index: k as u64 + 1,
                intended: sent,
                sent,
            };
            // Spread over the agent's connections: none starved (that would be warned about).
            let conn = k % config.own_connections().len();
            stats.record_message(conn, &Completed { stamp, len: 64 }, done_at);
        }
        let mut r = crate::report::build(&config, &stats, Duration::from_millis(2500), "uring");
        r.started_at_unix_s = started;
        let mut log = Vec::new();
        crate::report::interval_log(&r, &stats)
            .write_to(&mut log)
            .unwrap();
        [
            Input {
                name: format!("a{index}.json"),
                bytes: r.to_json().into_bytes(),
            },
            Input {
                name: format!("a{index}.hlog"),
                bytes: log,
            },
        ]
    }

    #[test]
    fn intervals_align_on_wall_clock_seconds() {
        // Agent 2 began 0.3 s after agent 1: its second 0 is merged second 0, and so on.
        let a = agent(1, 2, 1_000.0, &[(100, 10), (1100, 20), (2100, 30)]);
        let b = agent(2, 2, 1_000.3, &[(100, 40), (1100, 50)]);
        let m = merge(&[a, b].concat()).unwrap();
        let seconds: Vec<(u64, Vec<u64>)> = m
            .log
            .intervals
            .iter()
            .filter(|i| i.tag == TAG_LATENCY)
            .map(|i| {
                let h = i.histogram().unwrap();
                let values = h.iter_recorded().map(|v| v.value_iterated_to()).collect();
                (i.start.as_secs(), values)
            })
            .collect();
        assert_eq!(
            seconds,
            vec![(0, vec![10, 40]), (1, vec![20, 50]), (2, vec![30])]
        );
        assert_eq!(m.report.messages, 5);
        assert_eq!(m.report.latency_us.max, 50);
        assert_eq!(m.report.started_at_unix_s, 1_000.0);
        assert!(
            (m.report.duration_s - 2.8).abs() < 1e-9,
            "{}",
            m.report.duration_s
        );
        assert!(m.report.warnings.is_empty(), "{:?}", m.report.warnings);
    }

    /// `input` (an agent's files) with its result changed by `edit`.
    fn edited(input: [Input; 2], edit: impl FnOnce(&mut StressReport)) -> [Input; 2] {
        let [json, log] = input;
        let mut r = StressReport::from_json(&String::from_utf8(json.bytes).unwrap()).unwrap();
        edit(&mut r);
        let json = Input {
            name: json.name,
            bytes: r.to_json().into_bytes(),
        };
        [json, log]
    }

    /// `input` (an agent's files) with `seconds` of timeouts as its errors over time.
    fn with_errors(input: [Input; 2], seconds: &[(Option<u64>, u64)]) -> [Input; 2] {
        edited(input, |r| {
            r.errors_over_time = seconds
                .iter()
                .map(|&(second, n)| {
                    let mut errors = ErrorCounts::default();
                    for _ in 0..n {
                        errors.add(ringport_report::errors::ErrorKind::Timeout);
                    }
                    ErrorSecond { second, errors }
                })
                .collect();
        })
    }

    #[test]
    fn errors_over_time_add_up_on_wall_clock_seconds() {
        // Agent 2 began 0.6 s after agent 1: its second 1 is merged second 2.
        let a = with_errors(
            agent(1, 2, 1_000.0, &[(100, 10)]),
            &[(None, 1), (Some(0), 2), (Some(2), 1)],
        );
        let b = with_errors(
            agent(2, 2, 1_000.6, &[(100, 10)]),
            &[(None, 3), (Some(1), 4)],
        );
        let m = merge(&[a, b].concat()).unwrap();
        let got: Vec<(Option<u64>, u64)> = m
            .report
            .errors_over_time
            .iter()
            .map(|e| (e.second, e.errors.total()))
            .collect();
        assert_eq!(got, [(None, 4), (Some(0), 2), (Some(2), 5)]);
    }

    /// `input` (an agent's files) as a UDP run's with these counts and this jitter.
    fn with_datagrams(
        input: [Input; 2],
        d: ringport_report::datagrams::Datagrams,
        jitter: &[f64],
    ) -> [Input; 2] {
        edited(input, |r| {
            r.protocol = "udp-echo".into();
            r.datagrams = Some(d);
            r.jitter_us = Some(ringport_report::datagrams::Jitter::of(jitter));
            r.max_loss_pct = Some(10.0);
        })
    }

    #[test]
    fn udp_counts_add_exactly_and_jitter_is_weighted_by_flows() {
        use ringport_report::datagrams::Datagrams;
        let d = |sent, echoed, duplicated, reordered, corrupted| Datagrams {
            sent,
            echoed,
            lost: sent - echoed,
            duplicated,
            reordered,
            corrupted,
        };
        let a = with_datagrams(
            agent(1, 2, 1_000.0, &[(100, 10)]),
            d(100, 90, 1, 2, 0),
            &[10.0, 20.0],
        );
        let b = with_datagrams(
            agent(2, 2, 1_000.0, &[(100, 10)]),
            d(50, 30, 3, 4, 0),
            &[60.0],
        );
        let m = merge(&[a, b].concat()).unwrap();
        assert_eq!(m.report.datagrams, Some(d(150, 120, 4, 6, 0)));
        let j = m.report.jitter_us.unwrap();
        assert_eq!((j.mean, j.max, j.flows), (30.0, 60.0, 3));
        assert!(
            m.report.loss_exceeded(),
            "20% lost over both, more than 10%"
        );
        assert_eq!(m.report.exit_code(), 1);
    }

    /// `input` as a UDP run's with these flows (global numbers from 1: sent, echoed,
    /// duplicated, jitter) and these seconds (second, sent, echoed, jitter µs, samples); the
    /// totals are the flows'.
    fn with_flows(
        input: [Input; 2],
        flows: &[(u64, u64, u64, u64, Option<f64>)],
        seconds: &[(u64, u64, u64, Option<f64>, u64)],
    ) -> [Input; 2] {
        use ringport_report::datagrams::Datagrams;
        let flows: Vec<DatagramFlow> = flows
            .iter()
            .map(
                |&(flow, sent, echoed, duplicated, jitter_us)| DatagramFlow {
                    flow,
                    agent: None,
                    counts: Datagrams {
                        sent,
                        echoed,
                        lost: sent - echoed,
                        duplicated,
                        ..Datagrams::default()
                    },
                    jitter_us,
                },
            )
            .collect();
        let mut total = Datagrams::default();
        for f in &flows {
            total.add(&f.counts);
        }
        let jitters: Vec<f64> = flows.iter().filter_map(|f| f.jitter_us).collect();
        edited(with_datagrams(input, total, &jitters), |r| {
            r.datagram_flows = flows;
            r.datagrams_over_time = seconds
                .iter()
                .map(
                    |&(second, sent, echoed, jitter_us, jitter_samples)| DatagramSecond {
                        second,
                        counts: Datagrams {
                            sent,
                            echoed,
                            lost: sent - echoed,
                            ..Datagrams::default()
                        },
                        jitter_us,
                        jitter_samples,
                    },
                )
                .collect();
        })
    }

    #[test]
    fn udp_flows_are_listed_by_agent_and_add_up_per_flow_and_per_second() {
        let a = with_flows(
            agent(1, 2, 1_000.0, &[(100, 10)]),
            &[(1, 100, 90, 1, Some(10.0)), (2, 100, 100, 0, Some(20.0))],
            &[(0, 120, 115, Some(4.0), 100), (1, 80, 75, Some(8.0), 50)],
        );
        let b = with_flows(
            agent(2, 2, 1_000.0, &[(100, 10)]),
            &[(3, 50, 30, 3, None), (4, 60, 59, 0, Some(30.0))],
            &[(0, 60, 50, Some(16.0), 100), (1, 50, 39, None, 0)],
        );
        let m = merge(&[a, b].concat()).unwrap();
        type Row = (Option<u64>, u64, u64, u64, u64, Option<f64>);
        let flows: Vec<Row> = m
            .report
            .datagram_flows
            .iter()
            .map(|f| {
                let c = f.counts;
                (f.agent, f.flow, c.sent, c.lost, c.duplicated, f.jitter_us)
            })
            .collect();
        assert_eq!(
            flows,
            [
                (Some(1), 1, 100, 10, 1, Some(10.0)),
                (Some(1), 2, 100, 0, 0, Some(20.0)),
                (Some(2), 3, 50, 20, 3, None),
                (Some(2), 4, 60, 1, 0, Some(30.0)),
            ],
            "each agent's flows, labelled with it, unchanged"
        );
        let mut by_flow = ringport_report::datagrams::Datagrams::default();
        for f in &m.report.datagram_flows {
            by_flow.add(&f.counts);
        }
        assert_eq!(Some(by_flow), m.report.datagrams, "the flows add up");
        let seconds: Vec<(u64, u64, u64, Option<f64>, u64)> = m
            .report
            .datagrams_over_time
            .iter()
            .map(|s| {
                let c = s.counts;
                (s.second, c.sent, c.lost, s.jitter_us, s.jitter_samples)
            })
            .collect();
        assert_eq!(
            seconds,
            [(0, 180, 15, Some(10.0), 200), (1, 130, 16, Some(8.0), 50)],
            "counts summed, jitter weighted by its samples"
        );
    }

    #[test]
    fn a_missing_segment_is_warned_and_a_repeated_one_refused() {
        let a = agent(1, 3, 1_000.0, &[(100, 10)]);
        let b = agent(3, 3, 1_000.0, &[(100, 10), (200, 10)]);
        let m = merge(&[a, b].concat()).unwrap();
        assert!(
            m.report.warnings[0].starts_with("segments 2/3 missing"),
            "{:?}",
            m.report.warnings
        );
        let a = agent(1, 3, 1_000.0, &[(100, 10)]);
        let again = agent(1, 3, 1_000.0, &[(100, 10)]);
        let e = merge(&[a, again].concat()).unwrap_err();
        assert!(e.0.contains("segment 1/3 given twice"), "{e}");
    }
}
