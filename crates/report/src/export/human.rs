//! The human exporter: the report a person reads on a terminal, aligned columns in the manner
//! of wrk and fortio, for a run ([`StressReport`]) and for a latency search ([`SearchReport`]).

use std::fmt::Write as _;
use std::io;

pub use ringport_os::human::{human_bytes, plural};

use super::Exporter;
use crate::datagrams::DatagramFlow;
use crate::histogram::LatencySummary;
use crate::reconnects::{ReconnectErrorKind, ReconnectFigures};
use crate::run::StressReport;
use crate::search::{Phase, Probe, SearchReport, Verdict};

/// The human report.
#[derive(Debug, Clone, Copy, Default)]
pub struct Human;

/// The flows a UDP run's human report lists by default: the ones that lost most.
pub const FLOWS_SHOWN: usize = 10;

impl Exporter<StressReport> for Human {
    fn write(&self, report: &StressReport, out: &mut dyn io::Write) -> io::Result<()> {
        HumanRun::default().write(report, out)
    }
}

/// The human report of a run, with the number of flows a UDP run's flow table lists.
#[derive(Debug, Clone, Copy)]
pub struct HumanRun {
    /// The flows listed, those that lost most first; `None` lists every flow, in order.
    pub flows: Option<usize>,
}

impl Default for HumanRun {
    fn default() -> Self {
        HumanRun {
            flows: Some(FLOWS_SHOWN),
        }
    }
}

impl Exporter<StressReport> for HumanRun {
    fn write(&self, report: &StressReport, out: &mut dyn io::Write) -> io::Result<()> {
        out.write_all(render_run(report, self.flows).as_bytes())
    }
}

impl Exporter<SearchReport> for Human {
    fn write(&self, report: &SearchReport, out: &mut dyn io::Write) -> io::Result<()> {
        out.write_all(render_search(report).as_bytes())
    }
}

fn render_run(r: &StressReport, flows_shown: Option<usize>) -> String {
    let mut s = String::new();
    let mode = match (&r.stream, r.target_rate) {
        (Some(st), _) => format!(
            "stream, window {} per connection",
            human_bytes(st.window_bytes)
        ),
        (None, Some(rate)) if r.ramp.as_deref() == Some("rate") => {
            format!(
                "open loop, rate ramp up to {rate} msg/s, pipeline {}",
                r.pipeline
            )
        }
        // A UDP flow sends on schedule whatever is outstanding: no pipeline.
        (None, Some(rate)) if r.datagrams.is_some() => format!("open loop at {rate} datagrams/s"),
        (None, Some(rate)) => format!("open loop at {rate} msg/s, pipeline {}", r.pipeline),
        (None, None) if r.pipeline > 1 => {
            format!("closed loop, pipeline {}", r.pipeline)
        }
        (None, None) => "closed loop".to_string(),
    };
    let unit = if r.stream.is_some() {
        "chunks"
    } else {
        "round trips"
    };
    let _ = writeln!(
        s,
        "ringport {} {} ({}): {} on {}, {}, {}, {}",
        if r.merged_from.is_empty() {
            "stress"
        } else {
            "merge"
        },
        r.target,
        r.backend,
        plural(r.connections as u64, "connection", "connections"),
        plural(r.threads as u64, "thread", "threads"),
        mode,
        r.stop,
        r.payload
    );
    if let Some(seg) = r.segment {
        let range = seg.range(r.connections_total);
        let _ = writeln!(
            s,
            "  {:<14}{seg}: connections {}-{} of {}{}",
            "segment",
            range.start + 1,
            range.end,
            r.connections_total,
            match (r.target_rate, r.target_rate_total) {
                (Some(own), Some(all)) => format!(", {own} of {all} msg/s"),
                _ => String::new(),
            }
        );
    }
    if !r.merged_from.is_empty() {
        let segments: Vec<String> = r
            .merged_from
            .iter()
            .map(|a| {
                a.segment
                    .map_or_else(|| "whole".to_string(), |s| s.to_string())
            })
            .collect();
        let starts = r.merged_from.iter().map(|a| a.started_at_unix_s);
        let spread = starts.clone().fold(f64::MIN, f64::max) - starts.fold(f64::MAX, f64::min);
        let _ = writeln!(
            s,
            "  {:<14}{} agent{} (segments {}), measuring began within {:.3}s of each other",
            "merged",
            r.merged_from.len(),
            if r.merged_from.len() == 1 { "" } else { "s" },
            segments.join(" "),
            spread
        );
    }
    let _ = writeln!(
        s,
        "  {:<14}{} {unit}, {} in {:.2}s{}{}",
        "verified",
        r.messages,
        human_bytes(r.bytes),
        r.duration_s,
        // A run that ended before its warm-up was over (a server that died) measured nothing.
        if r.warmup_s > 0.0 && r.duration_s == 0.0 {
            format!(
                " (the run ended during the {:.1}s warm-up: nothing measured)",
                r.warmup_s
            )
        } else if r.warmup_s > 0.0 {
            format!(" (after {:.1}s warm-up)", r.warmup_s)
        } else {
            String::new()
        },
        if r.interrupted { " (interrupted)" } else { "" }
    );
    match &r.stream {
        Some(st) => {
            let _ = writeln!(
                s,
                "  {:<14}{:.3} Gbit/s, {:.2} MiB/s ({} verified as it arrived)",
                "echoed",
                st.gbit_per_s,
                st.mib_per_s,
                human_bytes(st.bytes)
            );
            let p = &st.per_connection_gbit_per_s;
            let _ = writeln!(
                s,
                "  {:<14}min {:.3}  median {:.3}  max {:.3} Gbit/s per connection",
                "", p.min, p.median, p.max
            );
        }
        None => {
            let _ = writeln!(
                s,
                "  {:<14}{:.1} msg/s, {:.2} MiB/s",
                "throughput", r.msgs_per_s, r.mib_per_s
            );
        }
    }
    let _ = writeln!(
        s,
        "  {:<14}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}",
        "latency (us)", "min", "p50", "p90", "p99", "p99.9", "max"
    );
    let row = |s: &mut String, name: &str, l: &LatencySummary| {
        let _ = writeln!(
            s,
            "  {:<14}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}",
            name, l.min, l.p50, l.p90, l.p99, l.p999, l.max
        );
    };
    match (&r.latency_uncorrected_us, &r.stream) {
        (Some(u), _) => {
            row(&mut s, "  corrected", &r.latency_us);
            row(&mut s, "  uncorrected", u);
        }
        (None, Some(_)) => {
            row(&mut s, "  chunk", &r.latency_us);
            let _ = writeln!(
                s,
                "  {:<14}(from queued for sending, once the window has room, to last byte \
                 echoed)",
                ""
            );
        }
        (None, None) => row(&mut s, "  round trip", &r.latency_us),
    }
    row(&mut s, "connect (us)", &r.connect_us);
    if let (Some(steps), Some(which)) = (&r.steps, &r.ramp) {
        let _ = writeln!(
            s,
            "  {:<14}{:>5}{:>8}{:>11}{:>11}{:>11}{:>9}{:>9}{:>9}",
            "ramp steps",
            "step",
            "start",
            if which == "rate" {
                "target/s"
            } else {
                "target"
            },
            "sent/s",
            "done/s",
            "p50",
            "p99",
            "p99.9"
        );
        for st in steps {
            let _ = writeln!(
                s,
                "  {:<14}{:>5}{:>7.1}s{:>11.1}{:>11.1}{:>11.1}{:>9}{:>9}{:>9}",
                "",
                st.step,
                st.start_s,
                st.target,
                st.sent_per_s,
                st.msgs_per_s,
                st.latency_us.p50,
                st.latency_us.p99,
                st.latency_us.p999
            );
        }
    }
    if let Some(churn) = &r.churn {
        s.push_str(&render_reconnects(churn));
    }
    if let Some(tls) = &r.tls {
        s.push_str(&super::human_tls::render_tls(tls));
    }
    if let Some(d) = &r.datagrams {
        s.push_str(&render_datagrams(d, r.jitter_us.as_ref(), r.max_loss_pct));
        s.push_str(&render_flows(&r.datagram_flows, flows_shown));
        if let Some(o) = &r.udp_offload {
            s.push_str(&render_offload(o));
        }
    }
    if let Some(ws) = &r.websocket {
        s.push_str(&super::human_ws::render_websocket(ws));
    }
    let _ = writeln!(
        s,
        "  {:<14}min {}  median {}  max {} {} per connection ({} of {} connected)",
        "fairness",
        r.fairness.min,
        r.fairness.median,
        r.fairness.max,
        if r.stream.is_some() {
            "chunks"
        } else {
            "messages"
        },
        r.connections_established,
        r.connections
    );
    if r.churn.is_some() {
        // Churn: "per connection" is per connection slot, each of which reconnected.
        let at = s.trim_end_matches('\n').rfind('(').unwrap_or(s.len());
        s.truncate(at);
        s.push_str("(per connection slot, reconnecting)\n");
    }
    if r.errors == 0 {
        let _ = writeln!(s, "  {:<14}0", "errors");
    } else {
        let kinds: Vec<String> = r
            .errors_by_kind
            .nonzero()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(s, "  {:<14}{} ({})", "errors", r.errors, kinds.join(", "));
    }
    if let Some(e) = &r.first_error {
        let _ = writeln!(
            s,
            "  {:<14}connection {}{}: {}",
            "first error",
            e.connection,
            e.offset.map(|o| format!(", byte {o}")).unwrap_or_default(),
            e.detail
        );
    }
    if !r.client_cpu_pct.is_empty() {
        let _ = writeln!(
            s,
            "  {:<14}{}",
            "client cpu",
            describe_client_cpu(&r.client_cpu_pct)
        );
    }
    for w in &r.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    s
}

/// The `datagrams` lines of the human report (`--udp`): the counts, the loss against its
/// target, the jitter.
fn render_datagrams(
    d: &crate::datagrams::Datagrams,
    jitter: Option<&crate::datagrams::Jitter>,
    max_loss: Option<f64>,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "  {:<14}sent {}  echoed {}  lost {} ({:.3}%{})",
        "datagrams",
        d.sent,
        d.echoed,
        d.lost,
        d.loss_pct(),
        max_loss.map_or_else(String::new, |m| format!(", at most {m}%"))
    );
    let _ = writeln!(
        s,
        "  {:<14}duplicated {}  reordered {}  corrupted {}",
        "", d.duplicated, d.reordered, d.corrupted
    );
    if let Some(j) = jitter {
        let _ = writeln!(
            s,
            "  {:<14}mean {:.1}  max {:.1} over {}",
            "jitter (us)",
            j.mean,
            j.max,
            plural(j.flows, "flow", "flows")
        );
    }
    s
}

/// The `flows` table of a UDP run's human report: each flow's counts and jitter, every flow
/// in order when `shown` allows (`None`: all), else the `shown` that lost most, worst first,
/// and how many are left out. Nothing for fewer than two flows (the totals say it all).
fn render_flows(flows: &[DatagramFlow], shown: Option<usize>) -> String {
    let mut s = String::new();
    if flows.len() < 2 {
        return s;
    }
    let listed: Vec<DatagramFlow> = match shown {
        Some(n) if n < flows.len() => DatagramFlow::worst_first(flows)
            .into_iter()
            .take(n)
            .collect(),
        _ => flows.to_vec(),
    };
    let title = if listed.len() < flows.len() {
        format!(
            "the {} of {} flows that lost most (--flows all lists every one)",
            listed.len(),
            flows.len()
        )
    } else {
        plural(flows.len() as u64, "flow", "flows")
    };
    let _ = writeln!(s, "  {:<14}{title}", "flows");
    let _ = writeln!(
        s,
        "  {:<14}{:<8}{:>10}{:>10}{:>9}{:>9}{:>7}{:>7}{:>8}{:>11}",
        "", "flow", "sent", "echoed", "lost", "loss", "dup", "reord", "corrupt", "jitter us"
    );
    for f in &listed {
        let c = &f.counts;
        let _ = writeln!(
            s,
            "  {:<14}{:<8}{:>10}{:>10}{:>9}{:>8.3}%{:>7}{:>7}{:>8}{:>11}",
            "",
            f.label(),
            c.sent,
            c.echoed,
            c.lost,
            c.loss_pct(),
            c.duplicated,
            c.reordered,
            c.corrupted,
            f.jitter_us
                .map_or_else(|| "-".to_string(), |j| format!("{j:.1}"))
        );
    }
    if listed.len() < flows.len() {
        let _ = writeln!(
            s,
            "  {:<14}... {} not listed, none lost a larger share",
            "",
            plural(
                (flows.len() - listed.len()) as u64,
                "more flow",
                "more flows"
            ),
        );
    }
    s
}

/// The `offload` line of the human report (`--udp`): whether sends were segmented and
/// receives coalesced, and how many.
fn render_offload(o: &crate::datagrams::UdpOffload) -> String {
    let on = |used: bool| if used { "on" } else { "off" };
    format!(
        "  {:<14}GSO {} ({} of several datagrams)  GRO {} ({} of several)\n",
        "offload",
        on(o.gso),
        plural(o.segmented_sends, "send", "sends"),
        on(o.gro),
        plural(o.coalesced_receives, "receive", "receives"),
    )
}

/// The `churn` lines of the human report (each starting with two spaces, ending in a
/// newline).
fn render_reconnects(r: &ReconnectFigures) -> String {
    let mut s = format!(
        "  {:<14}{} per connection, {} ({}) at {:.1} connections/s (--connect-rate {}), \
         closed with {}\n",
        "churn",
        count(r.messages_per_connection, "message"),
        count(r.connections, "connection"),
        count(r.attempts, "attempt"),
        r.connections_per_s,
        r.connect_rate,
        if r.linger0 { "RST (--linger0)" } else { "FIN" },
    );
    let l = &r.connect_latency_us;
    s.push_str(&format!(
        "  {:<14}connect p50 {} us  p99 {} us  p99.9 {} us{}\n",
        "",
        l.p50,
        l.p99,
        l.p999,
        match r.time_wait {
            Some(tw) => format!("; {tw} sockets in TIME_WAIT at the end"),
            None => String::new(),
        }
    ));
    let kinds: Vec<String> = ReconnectErrorKind::ALL
        .iter()
        .map(|&k| format!("{k} {}", r.errors.get(k)))
        .collect();
    s.push_str(&format!(
        "  {:<14}{} failed connections ({})\n",
        "",
        r.errors.total(),
        kinds.join(", ")
    ));
    s
}

/// The header of the probe table.
pub fn probe_table_header() -> String {
    format!(
        "{:<7}{:>12}{:>12}{:>12}{:>9}{:>9}{:>9}{:>7}  verdict",
        "phase", "rate/s", "sent/s", "done/s", "p50", "p99", "p99.9", "cpu%"
    )
}

/// One probe as a table row.
pub fn probe_table_row(p: &Probe) -> String {
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

/// The human report of a search: the settings, the curve (rate vs p50/p99/p99.9, latency
/// in µs) and the conclusion.
fn render_search(r: &SearchReport) -> String {
    let mut s = String::new();
    let targets: Vec<String> = r
        .targets
        .iter()
        .map(|t| format!("{} <= {}us", t.quantile.name(), t.limit_us))
        .collect();
    let _ = writeln!(
        s,
        "ringport stress --find-max-rate {}: {} connections, pipeline {}, {} threads, {}, \
         {:.1}s window after {:.1}s warm-up per probe, target {}",
        r.target,
        r.connections,
        r.pipeline,
        r.threads,
        r.payload,
        r.window_s,
        r.warmup_s,
        targets.join(" and ")
    );
    let _ = writeln!(
        s,
        "curve (latency in us, corrected for coordinated omission):"
    );
    let _ = writeln!(s, "  {}", probe_table_header());
    for p in r.curve() {
        let _ = writeln!(s, "  {}", probe_table_row(p));
    }
    let _ = writeln!(s, "{}", r.conclusion);
    s
}

/// The client threads' CPU use, labelled: each thread's (numbered from 1) up to eight threads,
/// otherwise their spread. 100% is one core.
fn describe_client_cpu(pct: &[f64]) -> String {
    if pct.len() <= 8 {
        let each: Vec<String> = pct
            .iter()
            .enumerate()
            .map(|(i, p)| format!("thread {} {p:.0}%", i + 1))
            .collect();
        format!("{} (100% = one core)", each.join(", "))
    } else {
        let mut sorted = pct.to_vec();
        sorted.sort_by(f64::total_cmp);
        format!(
            "min {:.0}%  median {:.0}%  max {:.0}% over {} threads (100% = one core)",
            sorted[0],
            sorted[sorted.len() / 2],
            sorted[sorted.len() - 1],
            sorted.len()
        )
    }
}

/// `n` and `noun`, plural unless `n` is 1: `1 message`, `2 messages`.
fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "1 messages per connection", "1 agents": one is singular.
    #[test]
    fn one_is_singular() {
        assert_eq!(count(1, "message"), "1 message");
        assert_eq!(count(0, "attempt"), "0 attempts");
        assert_eq!(count(10, "connection"), "10 connections");
    }

    fn flows(n: u64) -> Vec<DatagramFlow> {
        (1..=n)
            .map(|flow| {
                let sent = 100;
                let echoed = 100 - flow % 4;
                DatagramFlow {
                    flow,
                    agent: None,
                    counts: crate::datagrams::Datagrams {
                        sent,
                        echoed,
                        lost: sent - echoed,
                        duplicated: flow,
                        ..Default::default()
                    },
                    jitter_us: (flow != 2).then_some(flow as f64 * 1.5),
                }
            })
            .collect()
    }

    #[test]
    fn every_flow_in_order_when_few() {
        let text = render_flows(&flows(3), Some(FLOWS_SHOWN));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert_eq!(lines[0].trim_end(), "  flows         3 flows");
        let cells: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            cells,
            ["1", "100", "99", "1", "1.000%", "1", "0", "0", "1.5"],
            "{text}"
        );
        assert!(lines[3].trim_end().ends_with(" -"), "no jitter: {text}");
        assert!(lines[4].split_whitespace().next() == Some("3"));
        assert_eq!(render_flows(&flows(1), None), "", "one flow: the totals");
    }

    #[test]
    fn many_flows_show_the_worst_and_say_how_many_are_hidden() {
        let all = flows(12);
        let text = render_flows(&all, Some(3));
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].contains("the 3 of 12 flows that lost most (--flows all"),
            "{text}"
        );
        let listed: Vec<&str> = lines[2..5]
            .iter()
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(listed, ["11", "7", "3"], "3 lost, most duplicates first");
        assert!(
            lines[5].contains("9 more flows not listed, none lost a larger share"),
            "{text}"
        );
        let everything = render_flows(&all, None);
        assert_eq!(everything.lines().count(), 2 + 12);
    }

    #[test]
    fn the_offload_line_says_what_was_on_and_how_often() {
        let o = crate::datagrams::UdpOffload {
            gso: true,
            gro: false,
            segmented_sends: 1,
            coalesced_receives: 0,
        };
        assert_eq!(
            render_offload(&o),
            "  offload       GSO on (1 send of several datagrams)  GRO off (0 receives of several)\n"
        );
    }

    #[test]
    fn many_threads_cpu_is_a_spread() {
        let pct: Vec<f64> = (1..=10).map(|i| f64::from(i) * 10.0).collect();
        assert_eq!(
            describe_client_cpu(&pct),
            "min 10%  median 60%  max 100% over 10 threads (100% = one core)"
        );
    }
}
