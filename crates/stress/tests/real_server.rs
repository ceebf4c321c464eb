//! The engine against the real completion-port server (`ringport-server`), in process: exact
//! counts, pipelining, rate, and the JSON keys of the contract.

mod util;

use std::time::Duration;

use ringport_server::{ServeConfig, Shutdown};
use ringport_stress::config::StressConfig;
use util::{config, on_every_backend};

/// Starts the real server on a free port with one worker; returns the port and its shutdown.
fn real_server() -> (u16, Shutdown) {
    let shutdown = Shutdown::new();
    let running = ringport_server::start(
        &ServeConfig {
            port: 0,
            workers: 1,
            ..ServeConfig::default()
        },
        shutdown.clone(),
    )
    .expect("start the real server");
    let port = running.local_addr().port();
    std::thread::spawn(move || running.wait());
    (port, shutdown)
}

#[test]
fn exact_counts_and_json_keys_against_the_real_server() {
    let (port, shutdown) = real_server();
    let c = StressConfig {
        connections: 20,
        count: Some(100),
        size: Some(256),
        ..config(port)
    };
    on_every_backend(&c, |o| {
        let r = &o.report;
        assert_eq!(r.errors, 0, "{:?}", r.first_error);
        assert_eq!(r.messages, 20 * 100);
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        for key in [
            "connections",
            "messages",
            "bytes",
            "errors",
            "duration_s",
            "msgs_per_s",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        for q in ["p50", "p90", "p99", "p999", "max"] {
            assert!(v["latency_us"][q].is_u64(), "missing latency_us.{q}");
        }
        assert_eq!(v["messages"], 2000);
    });
    shutdown.trigger();
}

#[test]
fn pipelining_verifies_against_the_real_server() {
    let (port, shutdown) = real_server();
    let c = StressConfig {
        connections: 6,
        count: Some(200),
        pipeline: 16,
        size: Some(1500),
        ..config(port)
    };
    on_every_backend(&c, |o| {
        assert_eq!(o.report.errors, 0, "{:?}", o.report.first_error);
        assert_eq!(o.report.messages, 6 * 200);
    });
    shutdown.trigger();
}

#[test]
fn rate_mode_reaches_a_modest_target_against_the_real_server() {
    let (port, shutdown) = real_server();
    // 2000 msg/s is far below what the server does on any machine: the client must hit it.
    // Under Wine (the Windows tests) every operation goes through wineserver, about 0.3 ms, and
    // a loaded 2-core CI machine was seen at 577 msg/s: a tenth of the Linux rate there.
    const RATE: f64 = if cfg!(windows) { 200.0 } else { 2000.0 };
    let c = StressConfig {
        connections: 10,
        rate: Some(RATE),
        duration: Some(Duration::from_secs(1)),
        ..config(port)
    };
    on_every_backend(&c, |o| {
        let r = &o.report;
        assert_eq!(r.errors, 0, "{:?}", r.first_error);
        // Never faster than asked (the schedule is kept); well above nothing. How close it comes
        // to 2000 is a timing, for benchmarks: one 100 ms stall of a busy machine (seen in CI)
        // costs a 1 s window 10%.
        let achieved = r.msgs_per_s / RATE;
        assert!(
            (0.5..=1.05).contains(&achieved),
            "achieved {:.1} msg/s of {RATE}",
            r.msgs_per_s
        );
    });
    shutdown.trigger();
}

#[test]
fn a_stream_verifies_against_the_real_server() {
    let (port, shutdown) = real_server();
    let c = StressConfig {
        stream: true,
        connections: 4,
        count: Some(40),
        size: Some(64 << 10),
        ..config(port)
    };
    on_every_backend(&c, |o| {
        let r = &o.report;
        assert_eq!(r.errors, 0, "{:?}", r.first_error);
        assert_eq!(r.messages, 4 * 40);
        let st = r.stream.as_ref().expect("stream figures");
        assert_eq!(st.bytes, 4 * 40 * (64 << 10));
    });
    shutdown.trigger();
}
