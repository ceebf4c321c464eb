//! Issue 15, part 3: `ringport stress` rate and connection ramps (each step in the report and
//! the JSON), and the latency-target search (`--find-max-rate`) against the real server and
//! against a deliberately slow echo server (the client-bound check). Structure and consistency
//! are asserted, never timings.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use support::*;

/// An echo server on loopback that waits `delay` before echoing each chunk it reads: one
/// connection with one message in flight can then carry at most `1 / delay` messages per
/// second. Its threads end with their connections (the client closes them).
fn slow_echo(delay: Duration) -> SocketAddr {
    echo_server(delay, false)
}

/// An echo server on loopback that flips the lowest bit of the first byte of every chunk it
/// echoes.
fn corrupting_echo() -> SocketAddr {
    echo_server(Duration::ZERO, true)
}

fn echo_server(delay: Duration, corrupt: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a slow echo server");
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    std::thread::sleep(delay);
                    if corrupt {
                        buf[0] ^= 1;
                    }
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn rate_ramp_steps_appear_in_the_report_and_the_json() {
    let server = Server::start("completion", &[]);
    let port = server.addr.port().to_string();
    let out = stress(&[
        "127.0.0.1",
        &port,
        "--rate",
        "200,400,800",
        "--step",
        "500ms",
        "--connections",
        "4",
        "--threads",
        "1",
        "--json",
        "-",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let j = json_of(&out);
    assert_eq!(j["ramp"], "rate", "{j}");
    assert_eq!(j["mode"], "rate", "{j}");
    assert_eq!(j["target_rate"], 800.0, "the peak: {j}");
    let steps = j["steps"].as_array().expect("steps");
    let targets: Vec<f64> = steps
        .iter()
        .map(|s| s["target"].as_f64().unwrap())
        .collect();
    assert_eq!(targets, [200.0, 400.0, 800.0]);
    let starts: Vec<f64> = steps
        .iter()
        .map(|s| s["start_s"].as_f64().unwrap())
        .collect();
    assert_eq!(starts, [0.0, 0.5, 1.0]);
    // The schedule intends exactly target x dwell messages in each step; the first two are
    // all verified before the run ends (the last one's latest messages may end after it).
    let messages: Vec<u64> = steps
        .iter()
        .map(|s| s["messages"].as_u64().unwrap())
        .collect();
    assert_eq!(messages[..2], [100, 200], "{j}");
    assert!(messages[2] > 0 && messages[2] <= 400, "{j}");
    assert_eq!(
        messages.iter().sum::<u64>(),
        j["messages"].as_u64().unwrap(),
        "every verified message belongs to one step"
    );
    for s in steps {
        for q in ["p50", "p99", "p999"] {
            assert!(s["latency_us"][q].is_u64(), "{s}");
        }
        assert!(s["sent_per_s"].as_f64().unwrap() > 0.0, "{s}");
    }
    let text = stderr(&out);
    assert!(text.contains("ramp steps"), "{text}");
    assert!(text.contains("rate ramp up to 800 msg/s"), "{text}");
    for target in ["200.0", "400.0", "800.0"] {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().nth(2) == Some(target)),
            "no step row with target {target}:\n{text}"
        );
    }
}

#[test]
fn connection_ramp_steps_join_the_load() {
    let server = Server::start("completion", &[]);
    let port = server.addr.port().to_string();
    let out = stress(&[
        "127.0.0.1",
        &port,
        "--connections",
        "1,3",
        "--step",
        "400ms",
        "--threads",
        "1",
        "--json",
        "-",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let j = json_of(&out);
    assert_eq!(j["ramp"], "connections", "{j}");
    assert_eq!(j["connections"], 3, "{j}");
    let steps = j["steps"].as_array().expect("steps");
    let targets: Vec<f64> = steps
        .iter()
        .map(|s| s["target"].as_f64().unwrap())
        .collect();
    assert_eq!(targets, [1.0, 3.0]);
    assert!(
        steps.iter().all(|s| s["messages"].as_u64().unwrap() > 0),
        "{j}"
    );
    // Connection 0 sent through both steps, the two that joined only through the second.
    let per_conn = j["messages_per_connection"].as_array().unwrap();
    let most = per_conn.last().unwrap()[0].as_u64().unwrap();
    let fewest = per_conn[0][0].as_u64().unwrap();
    assert!(fewest > 0 && most > fewest, "{j}");
    assert!(stderr(&out).contains("ramp steps"));
}

#[test]
fn ramp_flags_are_checked() {
    for (args, needle) in [
        (&["--rate", "100..200"][..], "--ramp"),
        (&["--rate", "100,200"][..], "--step"),
        (&["--rate", "100", "--ramp", "2s"][..], "apply to a ramp"),
        (
            &["--rate", "100,200", "--step", "1s", "--duration", "3"][..],
            "do not apply",
        ),
        (
            &["--connections", "1,2", "--step", "1s", "--rate", "100"][..],
            "closed loop",
        ),
        (&["--connections", "1.5,2", "--step", "1s"][..], "whole"),
        (&["--p99", "2ms"][..], "--find-max-rate"),
        (&["--find-max-rate"][..], "latency target"),
        (&["--find-max-rate", "--p99", "soon"][..], "not a duration"),
        (
            &[
                "--find-max-rate",
                "--p99",
                "2ms",
                "--svg",
                "/nonexistent/dir/c.svg",
            ][..],
            "cannot write --svg",
        ),
    ] {
        let out = stress(&[&["127.0.0.1", "9"][..], args].concat());
        assert!(!out.status.success(), "{args:?} was accepted");
        let err = stderr(&out);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn the_search_finds_a_rate_and_reports_its_curve() {
    let server = Server::start("completion", &[]);
    let port = server.addr.port().to_string();
    let dir = std::env::temp_dir().join(format!("ringport-search-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("curve.svg");
    // A generous target at light rates: the search should pass the first probes.
    let out = stress(&[
        "127.0.0.1",
        &port,
        "--find-max-rate",
        "--p99",
        "200ms",
        "--rate",
        "200",
        "--max-rate",
        "1600",
        "--duration",
        "0.3",
        "--warmup",
        "0.1",
        "--connections",
        "8",
        "--threads",
        "1",
        "--json",
        "-",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let j = json_of(&out);
    let answer = j["answer"].as_f64().expect("an answer");
    assert_eq!(j["targets"][0]["quantile"], "p99");
    assert_eq!(j["targets"][0]["limit_us"], 200_000);
    let probes = j["probes"].as_array().unwrap();
    assert!(!probes.is_empty());
    assert!(probes.iter().all(|p| p["rate"].as_f64().unwrap() <= 1600.0));
    if let Some(failing) = j["first_failing"].as_f64() {
        assert!(
            answer < failing,
            "answer {answer} >= first failing {failing}"
        );
    }
    // Every measurement at the answer passed: p99 within the target, the rate generated.
    let at_answer: Vec<&serde_json::Value> = probes
        .iter()
        .filter(|p| p["rate"].as_f64() == Some(answer))
        .collect();
    assert!(at_answer.len() >= 2, "measured and re-measured: {j}");
    for p in at_answer {
        assert_eq!(p["verdict"], "pass", "{p}");
        assert!(p["latency_us"]["p99"].as_u64().unwrap() <= 200_000, "{p}");
        assert!(p["sent_per_s"].as_f64().unwrap() >= 0.95 * answer, "{p}");
    }
    // No passing probe above a failing one is the answer.
    for p in probes {
        if p["verdict"] == "pass" {
            assert!(p["latency_us"]["p99"].as_u64().unwrap() <= 200_000);
        }
    }
    let text = stderr(&out);
    assert!(text.contains("curve (latency in us"), "{text}");
    assert!(text.contains("max rate: "), "{text}");
    let chart = std::fs::read_to_string(&svg).expect("the --svg chart");
    assert!(
        chart.starts_with("<svg"),
        "{}",
        &chart[..80.min(chart.len())]
    );
    for needle in ["p50", "p99", "p99.9", "target p99", "answer"] {
        assert!(chart.contains(needle), "no {needle} in the chart");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_impossible_target_reports_no_passing_rate_with_exit_code_4() {
    let server = Server::start("completion", &[]);
    let port = server.addr.port().to_string();
    let out = stress(&[
        "127.0.0.1",
        &port,
        "--find-max-rate",
        "--p99",
        "1us",
        "--rate",
        "400",
        "--min-rate",
        "100",
        "--duration",
        "0.3",
        "--warmup",
        "0.1",
        "--connections",
        "2",
        "--threads",
        "1",
        "--json",
        "-",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let j = json_of(&out);
    assert!(j["answer"].is_null(), "{j}");
    let rates: Vec<f64> = j["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["rate"].as_f64().unwrap())
        .collect();
    assert_eq!(rates, [400.0, 200.0, 100.0], "halved down to --min-rate");
    assert!(j["probes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["verdict"] != "pass"));
    let conclusion = j["conclusion"].as_str().unwrap();
    assert!(
        conclusion.contains("no rate passed p99 <= 1us"),
        "{conclusion}"
    );
    assert!(stderr(&out).contains("no rate passed"));
}

#[test]
fn the_client_bound_check_fires_when_the_rate_cannot_be_generated() {
    // One connection, one message in flight, 10 ms per echo: at most 100 msg/s.
    let addr = slow_echo(Duration::from_millis(10));
    let port = addr.port().to_string();
    let out = stress(&[
        "127.0.0.1",
        &port,
        "--find-max-rate",
        "--p99",
        "10s",
        "--rate",
        "2000",
        "--min-rate",
        "1000",
        "--duration",
        "0.3",
        "--warmup",
        "0.1",
        "--connections",
        "1",
        "--threads",
        "1",
        "--json",
        "-",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let j = json_of(&out);
    assert!(
        j["answer"].is_null(),
        "never a rate the client could not generate: {j}"
    );
    for p in j["probes"].as_array().unwrap() {
        assert_eq!(p["verdict"], "client-bound", "{p}");
        assert!(p["sent_per_s"].as_f64().unwrap() < 0.95 * p["rate"].as_f64().unwrap());
        assert!(
            p["reason"].as_str().unwrap().contains("client-bound"),
            "{p}"
        );
    }
    assert!(
        j["conclusion"]
            .as_str()
            .unwrap()
            .contains("could not generate"),
        "{j}"
    );
    assert!(stderr(&out).contains("CLIENT-BOUND"));

    // A ramp says which step the client could not generate.
    let out = stress(&[
        "127.0.0.1",
        &port,
        "--rate",
        "20,2000",
        "--step",
        "300ms",
        "--connections",
        "1",
        "--threads",
        "1",
        "--json",
        "-",
    ]);
    let j = json_of(&out);
    let warnings = j["warnings"].to_string();
    assert!(warnings.contains("step 2: the client sent"), "{warnings}");
    let steps = j["steps"].as_array().unwrap();
    assert!(
        steps[1]["sent_per_s"].as_f64().unwrap() < 0.95 * 2000.0,
        "{j}"
    );
}

#[test]
fn wrong_bytes_stop_the_search_with_exit_code_1() {
    let addr = corrupting_echo();
    let port = addr.port().to_string();
    let out = stress(&[
        "127.0.0.1",
        &port,
        "--find-max-rate",
        "--p99",
        "10s",
        "--rate",
        "200",
        "--duration",
        "0.3",
        "--warmup",
        "0.1",
        "--connections",
        "1",
        "--threads",
        "1",
        "--json",
        "-",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let j = json_of(&out);
    let probes = j["probes"].as_array().unwrap();
    assert_eq!(probes.len(), 1, "no probe after wrong bytes: {j}");
    assert_eq!(probes[0]["verdict"], "wrong-bytes", "{j}");
    assert!(
        probes[0]["reason"].as_str().unwrap().contains("mismatch"),
        "{j}"
    );
    assert!(j["answer"].is_null());
    assert!(stderr(&out).contains("WRONG BYTES"));
}
