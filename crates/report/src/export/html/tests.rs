//! The HTML pages against their results: every figure's `data-value` is the JSON's, every
//! chart is there, and the pages stay small for long runs and many agents.

use std::time::{Duration, SystemTime};

use super::*;
use crate::errors::{ErrorCounts, ErrorKind, ErrorSecond};
use crate::export::Exporter;
use crate::fairness::Fairness;
use crate::hdrlog::{
    IntervalLog, LogInterval, TAG_CONNECT, TAG_HANDSHAKE, TAG_LATENCY, TAG_UNCORRECTED,
};
use crate::histogram::{new_histogram, LatencySummary};
use crate::run::{AgentRun, StressReport};
use crate::search::{LatencyTarget, Phase, Probe, Quantile, SearchReport, Verdict};
use crate::segment::Segment;
use crate::tls::{HandshakeFailure, HandshakeFailures, TlsFigures};
use crate::websocket::UpgradeFailure;

fn latency(base: u64) -> LatencySummary {
    LatencySummary {
        min: base / 2,
        p50: base,
        p90: base * 2,
        p99: base * 4,
        p999: base * 9,
        max: base * 30,
        mean: base as f64 * 1.25,
        stdev: base as f64 / 3.0,
        count: 60_000,
    }
}

/// A rate-mode run of `connections` connections, 60 s, every connection a different count,
/// with errors of two kinds over time.
fn report(connections: usize) -> StressReport {
    let mut errors = ErrorCounts::default();
    errors.add(ErrorKind::Timeout);
    errors.add(ErrorKind::Reset);
    errors.add(ErrorKind::Reset);
    let mut early = ErrorCounts::default();
    early.add(ErrorKind::Reset);
    let mut later = ErrorCounts::default();
    later.add(ErrorKind::Timeout);
    later.add(ErrorKind::Reset);
    StressReport {
        target: "127.0.0.1:3333".into(),
        backend: "uring".into(),
        mode: "rate".into(),
        protocol: "echo".into(),
        run_id: "00ff00ff00ff00ff".into(),
        segment: None,
        connections,
        connections_total: connections,
        connections_established: connections as u64,
        threads: 2,
        pipeline: 1,
        payload: "64-byte random".into(),
        stop: "60.0s".into(),
        interrupted: false,
        target_rate: Some(50_000.0),
        target_rate_total: Some(50_000.0),
        seed: 7,
        messages: 2_999_876,
        bytes: 2_999_876 * 64,
        errors: 3,
        errors_by_kind: errors,
        first_error: None,
        errors_over_time: vec![
            ErrorSecond {
                second: None,
                errors: early,
            },
            ErrorSecond {
                second: Some(41),
                errors: later,
            },
        ],
        started_at_unix_s: 1_796_119_200.25,
        start_late_s: None,
        duration_s: 60.000_123,
        warmup_s: 1.0,
        msgs_per_s: 49_997.933_333_3,
        mib_per_s: 3.051_631_5,
        latency_us: latency(100),
        latency_uncorrected_us: Some(latency(80)),
        connect_us: latency(40),
        churn: None,
        tls: None,
        websocket: None,
        fairness: Fairness {
            min: 2_000,
            median: 2_000 + connections as u64 / 2,
            max: 2_000 + connections as u64 - 1,
        },
        messages_per_connection: (0..connections as u64).map(|i| [2_000 + i, 1]).collect(),
        echoed_bytes_per_connection: None,
        client_cpu_pct: vec![41.5, 39.0],
        sent_per_s: Some(50_000.1),
        ramp: None,
        steps: None,
        stream: None,
        datagrams: None,
        datagram_flows: Vec::new(),
        datagrams_over_time: Vec::new(),
        jitter_us: None,
        max_loss_pct: None,
        udp_offload: None,
        warnings: vec!["a <warning> & its remedy".into()],
        merged_from: Vec::new(),
    }
}

/// `seconds` seconds of latency intervals, each with a spread of values (and uncorrected ones).
fn log(seconds: u64) -> IntervalLog {
    let mut intervals = vec![LogInterval::new(
        TAG_CONNECT,
        Duration::ZERO,
        Duration::from_secs(seconds),
        &new_histogram(),
    )];
    for s in 0..seconds {
        let mut h = new_histogram();
        for v in 0..5_000u64 {
            h.record(50 + (v * v) % 20_000 + s).unwrap();
        }
        let at = Duration::from_secs(s);
        intervals.push(LogInterval::new(
            TAG_LATENCY,
            at,
            Duration::from_secs(1),
            &h,
        ));
        intervals.push(LogInterval::new(
            TAG_UNCORRECTED,
            at,
            Duration::from_secs(1),
            &h,
        ));
    }
    IntervalLog {
        start: SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_119_200),
        run_id: Some("00ff00ff00ff00ff".into()),
        segment: None,
        intervals,
    }
}

/// A `--tls` run's figures: resumed handshakes with churn, and failures of two causes.
fn tls_figures() -> TlsFigures {
    let mut failed = HandshakeFailures::default();
    failed.add(HandshakeFailure::Name);
    failed.add(HandshakeFailure::Timeout);
    failed.add(HandshakeFailure::Timeout);
    TlsFigures {
        version: "TLSv1.3".into(),
        handshakes: 12_345,
        full: 345,
        resumed: 12_000,
        handshakes_per_s: 205.748_333,
        handshake_us: latency(700),
        failed,
    }
}

/// `log` with the whole run's handshake latency under the `handshake` tag, as `--tls` writes.
fn with_handshakes(mut log: IntervalLog, seconds: u64) -> IntervalLog {
    let mut h = new_histogram();
    for v in 0..12_345u64 {
        h.record(300 + (v * 7) % 5_000).unwrap();
    }
    log.intervals.push(LogInterval::new(
        TAG_HANDSHAKE,
        Duration::ZERO,
        Duration::from_secs(seconds),
        &h,
    ));
    log
}

/// Every `(data-key, data-value)` of `html`.
fn figures(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find("data-key=\"") {
        rest = &rest[at + 10..];
        let key = &rest[..rest.find('"').unwrap()];
        let v = rest.find("data-value=\"").unwrap() + 12;
        let value = &rest[v..v + rest[v..].find('"').unwrap()];
        out.push((key.to_string(), value.to_string()));
    }
    out
}

/// The JSON value at a dotted `path` (`latency_us.p99`, `probes.3.rate`, `probes.length`).
fn at(json: &serde_json::Value, path: &str) -> Option<serde_json::Value> {
    let mut v = json;
    for part in path.split('.') {
        v = match (v, part.parse::<usize>()) {
            (serde_json::Value::Array(a), _) if part == "length" => {
                return Some(serde_json::Value::from(a.len()))
            }
            (serde_json::Value::Array(a), Ok(i)) => a.get(i)?,
            (serde_json::Value::Object(o), _) => o.get(part)?,
            _ => return None,
        };
    }
    Some(v.clone())
}

/// Asserts every figure of `html` is its JSON field's value, and returns how many there are.
#[track_caller]
fn figures_equal_the_json(html: &str, json: &serde_json::Value) -> usize {
    let all = figures(html);
    for (key, value) in &all {
        let want = at(json, key).unwrap_or_else(|| panic!("{key} is not a field of the JSON"));
        let want = want
            .as_f64()
            .unwrap_or_else(|| panic!("{key} is not a number"));
        let got: f64 = value.parse().unwrap();
        assert_eq!(got, want, "{key}");
    }
    all.len()
}

#[test]
fn a_run_page_shows_the_json_figures_and_every_chart() {
    let r = report(100);
    let l = log(60);
    let html = Html.to_string(&RunPage {
        report: &r,
        log: Some(&l),
    });
    let json = serde_json::to_value(&r).unwrap();
    let n = figures_equal_the_json(&html, &json);
    assert!(n > 40, "{n} figures");
    for key in [
        "messages",
        "errors_by_kind.reset",
        "latency_us.p999",
        "fairness.median",
    ] {
        assert!(html.contains(&format!("data-key=\"{key}\"")), "{key}");
    }
    for chart in [
        "errors",
        "throughput",
        "latency",
        "latency-uncorrected",
        "spectrum",
        "fairness",
    ] {
        assert!(
            html.contains(&format!("data-chart=\"{chart}\"")),
            "no {chart} chart"
        );
    }
    assert!(html.contains("data-report=\"stress\""));
    assert!(
        html.contains("data-passed=\"false\""),
        "errors fail the run"
    );
    assert!(html.contains("a &lt;warning&gt; &amp; its remedy"));
    assert!(html.contains("1 errors before the measured phase"));
    // The spectrum reads out percentiles, the time series seconds.
    assert!(html.contains("<title>corrected: 99.9"), "spectrum read-out");
    assert!(html.contains("<title>verified: 59 s → 5,000/s</title>"));
    assert!(html.contains("<title>timeout: 41 s → 1</title>"));
    for forbidden in ["<script", "<link", "@import", "url(", "src="] {
        assert!(!html.contains(forbidden), "{forbidden} in the page");
    }
}

#[test]
fn a_run_without_its_log_still_has_a_page() {
    let mut r = report(3);
    r.errors = 0;
    r.errors_by_kind = ErrorCounts::default();
    r.errors_over_time.clear();
    let html = Html.to_string(&r);
    figures_equal_the_json(&html, &serde_json::to_value(&r).unwrap());
    assert!(html.contains("data-passed=\"true\""));
    assert!(html.contains("No per-second intervals"));
    assert!(html.contains("data-chart=\"spectrum\""));
}

#[test]
fn a_websocket_run_has_its_upgrade_figures_and_close_codes() {
    let mut r = report(10);
    let mut failed = crate::websocket::UpgradeFailures::default();
    failed.add(UpgradeFailure::AcceptKey);
    r.websocket = Some(crate::websocket::WebSocketFigures {
        path: "/chat".into(),
        upgrades: 40,
        upgrades_per_s: 8.5,
        upgrade_us: latency(900),
        failed,
        messages_sent: 4000,
        messages_echoed: 3999,
        close_codes: [(1000, 39), (1011, 1)].into_iter().collect(),
    });
    let html = Html.to_string(&r);
    let json = serde_json::to_value(&r).unwrap();
    figures_equal_the_json(&html, &json);
    for (key, value) in [
        ("websocket.upgrades", "40"),
        ("websocket.upgrades_per_s", "8.5"),
        ("websocket.messages_sent", "4000"),
        ("websocket.messages_echoed", "3999"),
        ("websocket.upgrade_us.p50", "900"),
        ("websocket.failed.accept_key", "1"),
        ("websocket.failed.status", "0"),
        ("websocket.close_codes.1000", "39"),
        ("websocket.close_codes.1011", "1"),
    ] {
        assert!(
            html.contains(&format!("data-key=\"{key}\" data-value=\"{value}\"")),
            "{key} = {value}"
        );
    }
    assert!(html.contains("id=\"websocket-table\""));
    assert!(html.contains("/chat"));
    // Without a log the spectrum draws the summary's upgrade percentiles.
    assert!(
        html.contains("<title>upgrade: 50% → 900 µs</title>"),
        "no upgrade series"
    );
}

#[test]
fn a_tls_run_has_its_handshake_figures_and_their_spectrum() {
    let mut r = report(10);
    r.tls = Some(tls_figures());
    let l = with_handshakes(log(5), 5);
    let html = Html.to_string(&RunPage {
        report: &r,
        log: Some(&l),
    });
    let json = serde_json::to_value(&r).unwrap();
    figures_equal_the_json(&html, &json);
    for (key, value) in [
        ("tls.handshakes", "12345"),
        ("tls.full", "345"),
        ("tls.resumed", "12000"),
        ("tls.handshakes_per_s", "205.748333"),
        ("tls.handshake_us.p50", "700"),
        ("tls.handshake_us.p99", "2800"),
        ("tls.handshake_us.p999", "6300"),
        ("tls.failed.certificate", "0"),
        ("tls.failed.name", "1"),
        ("tls.failed.timeout", "2"),
    ] {
        assert!(
            html.contains(&format!("data-key=\"{key}\" data-value=\"{value}\"")),
            "{key} = {value}"
        );
    }
    assert!(html.contains("id=\"tls-table\""));
    assert!(html.contains("TLSv1.3"));
    // The spectrum reads the log's handshakes, not the summary (whose p50 is 700).
    assert!(html.contains("<title>handshake: "), "no handshake series");
    assert!(
        html.contains("<title>handshake: 50% → 2,759 µs</title>"),
        "the handshake spectrum is not the log's"
    );

    // Without the log, the summary's percentiles are drawn; without TLS, nothing is.
    let html = Html.to_string(&r);
    figures_equal_the_json(&html, &json);
    assert!(html.contains("<title>handshake: 50% → 700 µs</title>"));
    r.tls = None;
    let html = Html.to_string(&r);
    assert!(!html.contains("tls.") && !html.contains("<title>handshake"));
}

#[test]
fn a_minute_at_a_thousand_connections_is_under_one_mib() {
    let mut r = report(1_000);
    r.tls = Some(tls_figures());
    let l = with_handshakes(log(60), 60);
    let html = Html.to_string(&RunPage {
        report: &r,
        log: Some(&l),
    });
    eprintln!("a minute at 1,000 connections: {} bytes", html.len());
    assert!(html.len() < 1 << 20, "{} bytes", html.len());
}

#[test]
fn a_merge_of_fifty_agents_is_under_five_mib_with_each_agent() {
    let mut r = report(1_000);
    r.tls = Some(tls_figures());
    r.merged_from = (1..=50)
        .map(|i| AgentRun {
            run_id: format!("{i:016x}"),
            segment: Some(Segment {
                index: i,
                count: 50,
            }),
            backend: "uring".into(),
            connections: 20,
            messages: 60_000 + i as u64,
            errors: 0,
            started_at_unix_s: 1_796_119_200.25 + i as f64 / 1000.0,
            duration_s: 60.0,
            start_late_s: None,
        })
        .collect();
    let l = with_handshakes(log(61), 61);
    let html = Html.to_string(&RunPage {
        report: &r,
        log: Some(&l),
    });
    eprintln!("50 agents merged: {} bytes", html.len());
    assert!(html.len() < 5 << 20, "{} bytes", html.len());
    assert!(html.contains("data-report=\"merge\""));
    assert!(html.contains("data-chart=\"agents\""));
    figures_equal_the_json(&html, &serde_json::to_value(&r).unwrap());
    for i in 0..50 {
        assert!(html.contains(&format!("data-row=\"agent-{i}\"")));
    }
    assert!(html.contains("data-key=\"merged_from.49.messages\" data-value=\"60050\""));
}

#[test]
fn a_ramp_has_its_steps() {
    let mut r = report(10);
    r.ramp = Some("rate".into());
    r.steps = Some(
        (1..=3)
            .map(|i| crate::run::StepFigures {
                step: i,
                start_s: (i - 1) as f64 * 5.0,
                duration_s: 5.0,
                target: 1000.0 * i as f64,
                sent_per_s: 999.5 * i as f64,
                msgs_per_s: 999.0 * i as f64,
                messages: 5000 * i as u64,
                latency_us: latency(100 * i as u64),
            })
            .collect(),
    );
    let html = Html.to_string(&r);
    figures_equal_the_json(&html, &serde_json::to_value(&r).unwrap());
    assert!(html.contains("data-chart=\"steps-latency\""));
    assert!(html.contains("data-key=\"steps.2.latency_us.p99\" data-value=\"1200\""));
}

#[test]
fn a_udp_run_has_its_datagrams_and_jitter() {
    let mut r = report(10);
    r.datagrams = Some(crate::datagrams::Datagrams {
        sent: 1000,
        echoed: 990,
        lost: 10,
        duplicated: 3,
        reordered: 2,
        corrupted: 1,
    });
    r.jitter_us = Some(crate::datagrams::Jitter::of(&[12.5, 30.0]));
    r.max_loss_pct = Some(2.0);
    let flow = |flow, sent, echoed, jitter_us| crate::datagrams::DatagramFlow {
        flow,
        agent: Some(2),
        counts: crate::datagrams::Datagrams {
            sent,
            echoed,
            lost: sent - echoed,
            ..Default::default()
        },
        jitter_us,
    };
    r.datagram_flows = vec![flow(1, 600, 598, Some(12.5)), flow(2, 400, 392, None)];
    r.datagrams_over_time = vec![crate::datagrams::DatagramSecond {
        second: 0,
        counts: r.datagrams.unwrap(),
        jitter_us: Some(7.25),
        jitter_samples: 900,
    }];
    let html = Html.to_string(&RunPage {
        report: &r,
        log: None,
    });
    figures_equal_the_json(&html, &serde_json::to_value(&r).unwrap());
    for key in [
        "datagrams.sent",
        "datagrams.lost",
        "datagrams.corrupted",
        "jitter_us.max",
        "max_loss_pct",
        "datagram_flows.0.agent",
        "datagram_flows.1.lost",
        "datagram_flows.0.jitter_us",
    ] {
        assert!(html.contains(&format!("data-key=\"{key}\"")), "{key}");
    }
    assert!(html.contains("1.000%"), "the loss in percent");
    assert!(html.contains("id=\"datagram-flows-table\""));
    assert!(html.contains("2.000%"), "flow 2's loss in percent");
    assert!(html.contains("data-chart=\"datagrams-jitter\""));
    assert!(html.contains("data-chart=\"datagrams-lost\""));
    assert!(!Html
        .to_string(&RunPage {
            report: &report(10),
            log: None
        })
        .contains("UDP datagrams"));
}

#[test]
fn churn_has_its_figures() {
    let mut r = report(10);
    r.churn = Some(crate::reconnects::ReconnectFigures {
        messages_per_connection: 10,
        connect_rate: 1000.0,
        linger0: false,
        attempts: 1234,
        connections: 1230,
        connections_per_s: 615.5,
        connect_latency_us: latency(33),
        errors: Default::default(),
        time_wait: Some(40),
        ephemeral_ports: 28_232,
    });
    let html = Html.to_string(&r);
    figures_equal_the_json(&html, &serde_json::to_value(&r).unwrap());
    assert!(html.contains("data-key=\"churn.connect_latency_us.p99\" data-value=\"132\""));
    assert!(html.contains("connection slot (reconnecting)"));
}

fn probe(phase: Phase, rate: f64, p99: u64, verdict: Verdict) -> Probe {
    Probe {
        phase,
        rate,
        sent_per_s: rate * 0.999,
        msgs_per_s: rate * 0.998,
        latency_us: latency(p99 / 4),
        errors: 0,
        client_cpu_max_pct: 12.5,
        verdict,
        reason: format!("p99 {p99}us"),
    }
}

#[test]
fn a_search_page_has_the_curve_the_answer_and_every_probe() {
    let r = SearchReport {
        target: "127.0.0.1:3333".into(),
        targets: vec![LatencyTarget {
            quantile: Quantile::P99,
            limit_us: 2000,
        }],
        connections: 10,
        pipeline: 1,
        threads: 2,
        payload: "64-byte random".into(),
        window_s: 5.0,
        warmup_s: 1.0,
        probes: vec![
            probe(Phase::Probe, 1000.0, 400, Verdict::Pass),
            probe(Phase::Probe, 2000.0, 4000, Verdict::Fail),
            probe(Phase::Bisect, 1500.0, 1600, Verdict::Pass),
            probe(Phase::Probe, 8000.0, 9000, Verdict::ClientBound),
            probe(Phase::Repeat, 1500.0, 1800, Verdict::Pass),
        ],
        answer: Some(1500.0),
        first_failing: Some(2000.0),
        first_failing_verdict: Some(Verdict::Fail),
        repeat_passed: 1,
        repeat_total: 1,
        conclusion: "max 1500 msg/s".into(),
    };
    let html = Html.to_string(&r);
    let json = serde_json::to_value(&r).unwrap();
    figures_equal_the_json(&html, &json);
    assert!(html.contains("data-report=\"search\""));
    assert!(html.contains("data-chart=\"curve\""));
    assert!(html.contains("data-key=\"answer\" data-value=\"1500\""));
    for i in 0..r.probes.len() {
        assert!(html.contains(&format!("data-row=\"probe-{i}\"")));
    }
    assert!(
        html.contains("\nanswer\n</text>"),
        "the answer in the legend"
    );
    assert!(html.contains("\ntarget p99\n</text>"));
    assert!(html.contains("client-bound (p99; not the server)"));
}

#[test]
fn a_page_is_one_document_with_its_policy_and_figures() {
    let mut page = Page::new("stress", "ringport stress <a&b>");
    page.verdict(true, "passed");
    page.section("summary", "Summary");
    page.figures(
        "summary-table",
        &[
            ("verified", num("messages", 1234u64)),
            ("rate", num_unit("msgs_per_s", 12.5, " msg/s")),
        ],
    );
    page.chart("x", Err("no data".into()));
    let html = page.finish();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains(CONTENT_SECURITY_POLICY));
    assert!(html.contains("<title>ringport stress &lt;a&amp;b&gt;</title>"));
    assert!(html.contains("<td class=\"n\" data-key=\"messages\" data-value=\"1234\">1,234</td>"));
    assert!(html.contains("data-key=\"msgs_per_s\" data-value=\"12.5\">12.5 msg/s</td>"));
    assert!(html.contains("could not be drawn: no data"));
    assert_eq!(
        html.matches("<section").count(),
        html.matches("</section>").count()
    );
}
