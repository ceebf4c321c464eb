//! Tests of building a result: its figures, warnings and JSON from a run's measurements, and
//! what the human report and the interval log then show.

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
        "the figure is labelled: {}",
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
    assert!(
        lines[0].starts_with("ringport stress 127.0.0.1:3333 (uring): 4 connections on 2 threads")
    );
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
fn the_header_counts_in_the_right_number() {
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
fn a_starved_connection_is_warned_about() {
    let w = starved_warning(&[0, 500, 0], false, 0).expect("a warning");
    assert!(
        w.starts_with("starved: 2 of 3 connections had no round trip"),
        "{w}"
    );
    assert!(w.contains("another had 500"), "{w}");
    assert_eq!(starved_warning(&[3, 500, 7], false, 0), None);
    assert_eq!(
        starved_warning(&[0, 0], false, 0),
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

/// Connections reset by `--max-per-ip` before a byte were warned about as starved "as
/// --model single" does; they are the server's limit, warned about as such.
#[test]
fn connections_turned_away_are_not_starved() {
    assert_eq!(starved_warning(&[0, 500, 0], false, 2), None);
    let w = starved_warning(&[0, 500, 0], false, 1).expect("one is starved");
    assert!(w.starts_with("starved: 1 of 3"), "{w}");
    let mut s = ThreadStats::new(3);
    let t0 = Instant::now();
    s.record_message(
        1,
        &Completed {
            stamp: SendStamp {
                index: 1,
                intended: t0,
                sent: t0,
            },
            len: 64,
        },
        t0,
    );
    let reset = || crate::error::ConnError::Reset {
        offset: 0,
        source: std::io::Error::from(std::io::ErrorKind::ConnectionReset),
    };
    s.record_error(0, &reset(), t0);
    s.record_error(2, &reset(), t0);
    let mut c = config();
    c.connections = 3;
    let text = build(&c, &s, Duration::from_secs(1), "uring").render();
    assert!(!text.contains("starved"), "{text}");
    assert!(
        text.contains("a server-side connection limit is the likely cause"),
        "{text}"
    );
    // Connects failing too: the server went away (a churn run whose server was killed).
    let refused = crate::error::ConnError::ConnectFailed(std::io::Error::from(
        std::io::ErrorKind::ConnectionRefused,
    ));
    s.record_error(2, &refused, t0);
    let text = build(&c, &s, Duration::from_secs(1), "uring").render();
    assert!(
        text.contains("and 1 connects failed: the server likely stopped"),
        "{text}"
    );
    assert!(!text.contains("connection limit"), "{text}");
}

/// A server that died during the warm-up was reported "in 0.00s (after 2.0s warm-up)", as if
/// the warm-up had been done.
#[test]
fn a_run_that_ended_in_its_warm_up_says_so() {
    let mut c = config();
    c.warmup = Duration::from_secs(2);
    let text = build(&c, &ThreadStats::new(1), Duration::ZERO, "uring").render();
    assert!(
        text.contains("(the run ended during the 2.0s warm-up: nothing measured)"),
        "{text}"
    );
    assert!(!text.contains("after 2.0s warm-up"), "{text}");
    let text = build(&c, &ThreadStats::new(1), Duration::from_secs(1), "uring").render();
    assert!(text.contains("(after 2.0s warm-up)"), "{text}");
}

/// `merge` printed `duration_s` as 1.9942885700000001 (a difference of two Unix times).
#[test]
fn seconds_are_kept_to_the_microsecond() {
    // Two wall-clock times a run apart, as merge takes them from the agents' JSON.
    let (start, end) = (1_764_583_200.0_f64, 1_764_583_201.994_288_6_f64);
    let merged = end - start;
    assert_ne!(
        merged.to_string(),
        "1.994289",
        "the difference is not a round figure"
    );
    assert_eq!(round_to_micros(merged).to_string(), "1.994289");
    assert_eq!(round_to_micros(2.5), 2.5);
    let r = build(
        &config(),
        &ThreadStats::new(4),
        Duration::from_nanos(1_994_288_570),
        "uring",
    );
    assert_eq!(r.duration_s.to_string(), "1.994289");
}
