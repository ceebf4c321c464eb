//! Tests of the options: what is refused, and what the accepted ones resolve to.

use std::time::Duration;

use super::*;
use crate::protocol::payload::PayloadSpec;

fn cfg() -> StressConfig {
    test_config()
}

#[track_caller]
fn rejects(c: StressConfig, needle: &str) {
    let e = c.validate().expect_err("configuration should be rejected");
    assert!(e.0.contains(needle), "{e:?} should mention {needle:?}");
    assert!(!e.0.contains('\n'), "one line: {e:?}");
}
#[test]
fn defaults_are_valid_and_resolve() {
    let c = cfg();
    c.validate().unwrap();
    assert_eq!(c.payload(), PayloadSpec::Text(DEFAULT_MESSAGE.into()));
    assert_eq!(c.stop(), Stop::Count(DEFAULT_COUNT));
    assert_eq!(c.workload(), Workload::Closed { pipeline: 1 });
    assert_eq!(
        (c.host.as_str(), c.port, c.connections),
        ("127.0.0.1", 3333, 50)
    );
    assert!(c.is_interactive_candidate());
}

#[test]
fn a_spin_longer_than_10_ms_is_refused() {
    let c = |us| StressConfig {
        spin: Some(Duration::from_micros(us)),
        ..StressConfig::default()
    };
    assert!(c(0).validate().is_ok());
    assert!(c(10_000).validate().is_ok());
    let e = c(10_001).validate().unwrap_err().to_string();
    assert!(e.contains("--spin-us 10001 is more than 10000"), "{e}");
}

#[test]
fn bad_combinations_are_rejected_with_the_flags_named() {
    rejects(
        StressConfig {
            count: Some(5),
            duration: Some(Duration::from_secs(1)),
            ..cfg()
        },
        "--count and --duration",
    );
    rejects(
        StressConfig {
            message: Some("x".into()),
            size: Some(4),
            ..cfg()
        },
        "--message and --size",
    );
    rejects(
        StressConfig {
            size: Some(0),
            ..cfg()
        },
        "--size",
    );
    rejects(
        StressConfig {
            size: Some(MAX_MESSAGE_SIZE + 1),
            ..cfg()
        },
        "--size",
    );
    rejects(
        StressConfig {
            message: Some(String::new()),
            ..cfg()
        },
        "--message",
    );
    rejects(
        StressConfig {
            pipeline: 0,
            ..cfg()
        },
        "--pipeline",
    );
    rejects(
        StressConfig {
            connections: 0,
            ..cfg()
        },
        "--connections",
    );
    rejects(
        StressConfig {
            threads: 0,
            ..cfg()
        },
        "--threads",
    );
    rejects(
        StressConfig {
            count: Some(0),
            ..cfg()
        },
        "--count",
    );
    rejects(
        StressConfig {
            duration: Some(Duration::ZERO),
            ..cfg()
        },
        "--duration",
    );
    rejects(
        StressConfig {
            rate: Some(0.0),
            ..cfg()
        },
        "--rate",
    );
    rejects(
        StressConfig {
            rate: Some(f64::NAN),
            ..cfg()
        },
        "--rate",
    );
    rejects(
        StressConfig {
            connect_rate: -1.0,
            ..cfg()
        },
        "--connect-rate",
    );
    rejects(StressConfig { port: 0, ..cfg() }, "PORT");
    rejects(
        StressConfig {
            messages_per_connection: Some(0),
            ..cfg()
        },
        "--messages-per-connection",
    );
    rejects(
        StressConfig {
            messages_per_connection: Some(10),
            stream: true,
            ..cfg()
        },
        "--messages-per-connection cannot be used with --stream",
    );
    rejects(
        StressConfig {
            connections: 10_000,
            pipeline: 100,
            size: Some(4096),
            ..cfg()
        },
        "in flight",
    );
    rejects(
        StressConfig {
            source_ips: vec!["0.0.0.0".parse().unwrap()],
            ..cfg()
        },
        "--source-ip",
    );
}

#[test]
fn stream_defaults_and_resolved_forms() {
    let c = StressConfig {
        stream: true,
        ..cfg()
    };
    c.validate().unwrap();
    assert_eq!(
        c.payload(),
        PayloadSpec::Random {
            size: DEFAULT_STREAM_CHUNK,
            seed: 0
        }
    );
    assert_eq!(
        c.workload(),
        Workload::Stream {
            window: DEFAULT_WINDOW
        }
    );
    assert_eq!(c.messages_in_flight(), 4, "256 KiB of 64 KiB chunks");
    assert!(!c.is_interactive_candidate(), "--stream alone asks nothing");
    let odd = StressConfig {
        size: Some(100_000),
        window: Some(250_000),
        ..c.clone()
    };
    odd.validate().unwrap();
    assert_eq!(odd.messages_in_flight(), 2, "whole chunks only");
    let echo = cfg();
    assert_eq!(echo.messages_in_flight(), 1);
}

#[test]
fn stream_flags_are_checked() {
    let stream = StressConfig {
        stream: true,
        ..cfg()
    };
    rejects(
        StressConfig {
            window: Some(1 << 20),
            ..cfg()
        },
        "--window applies only with --stream",
    );
    rejects(
        StressConfig {
            message: Some("x".into()),
            ..stream.clone()
        },
        "--message",
    );
    rejects(
        StressConfig {
            rate: Some(10.0),
            ..stream.clone()
        },
        "--rate",
    );
    rejects(
        StressConfig {
            pipeline: 4,
            ..stream.clone()
        },
        "--pipeline",
    );
    rejects(
        StressConfig {
            window: Some(0),
            ..stream.clone()
        },
        "--window",
    );
    rejects(
        StressConfig {
            window: Some(1000),
            size: Some(4096),
            ..stream.clone()
        },
        "smaller than one chunk",
    );
    rejects(
        StressConfig {
            connections: 10_000,
            window: Some(1 << 20),
            ..stream
        },
        "--connections x --window",
    );
}

#[test]
fn resolved_forms() {
    let c = StressConfig {
        size: Some(64),
        seed: 9,
        duration: Some(Duration::from_secs(3)),
        rate: Some(1000.0),
        pipeline: 4,
        ..cfg()
    };
    c.validate().unwrap();
    assert_eq!(c.payload(), PayloadSpec::Random { size: 64, seed: 9 });
    assert_eq!(c.stop(), Stop::Duration(Duration::from_secs(3)));
    assert_eq!(
        c.workload(),
        Workload::Rate {
            rate: 1000.0,
            pipeline: 4
        }
    );
    assert!(!c.is_interactive_candidate());
    assert_eq!(
        StressConfig {
            connections: 1,
            threads: 8,
            ..cfg()
        }
        .effective_threads(),
        1
    );
}

#[test]
fn request_response_is_checked_and_sized_by_its_requests() {
    use crate::config::request::{Expect, RequestSpec};
    let req = |bytes: &[u8], len: usize| RequestSpec {
        bytes: bytes.to_vec(),
        expect: Expect {
            len: Some(len),
            ..Expect::default()
        },
    };
    let c = StressConfig {
        requests: vec![req(b"PING\r\n", 7), req(&[b'x'; 1000], 1)],
        ..cfg()
    };
    c.validate().unwrap();
    assert_eq!(c.max_send_len(), 1000);
    assert!(
        !c.is_interactive_candidate(),
        "the requests are the payload"
    );
    assert_eq!(c.script().unwrap().unwrap().steps.len(), 2);
    assert!(cfg().script().unwrap().is_none(), "echo");
    rejects(
        StressConfig {
            message: Some("m".into()),
            ..c.clone()
        },
        "--message and --size are echo payloads",
    );
    rejects(
        StressConfig {
            stream: true,
            ..c.clone()
        },
        "--stream cannot be used with --request",
    );
    rejects(
        StressConfig {
            requests: vec![req(b"x", 0)],
            ..cfg()
        },
        "--expect-len must be at least 1",
    );
    rejects(
        StressConfig {
            connections: 10_000,
            pipeline: 100,
            requests: vec![req(&[b'x'; 4096], 1)],
            ..cfg()
        },
        "in flight",
    );
}

#[test]
fn output_target() {
    assert_eq!(OutputTarget::parse("-"), OutputTarget::Stdout);
    assert_eq!(
        OutputTarget::parse("r.json"),
        OutputTarget::Path("r.json".into())
    );
}
