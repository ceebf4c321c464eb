//! `stress --rate` far beyond what the client can send (1e9 messages per second): the run still
//! ends when its duration is over, and one SIGINT stops it early.

// Unix only: SIGINT. The pacing is the same code on every system.
#![cfg(unix)]

mod support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// How long a one-second run (or one stopped by a signal) may take before it counts as wedged:
/// far beyond its duration, its warm-up and its final drain.
const LIMIT: Duration = Duration::from_secs(30);

/// `ringport stress ADDR ARGS` in the background, its output piped.
fn start_stress(server: &Server, args: &[&str]) -> Child {
    bin()
        .arg("stress")
        .arg(server.addr.to_string())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ringport stress")
}

/// Waits for `child` to end by itself, at most [`LIMIT`]; kills it and panics if it does not.
/// Returns its exit code and what it printed.
#[track_caller]
fn ends(mut child: Child, what: &str) -> (Option<i32>, String, String) {
    let deadline = Instant::now() + LIMIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "stress {what} did not end within {LIMIT:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_run_at_a_billion_messages_per_second_ends_when_its_duration_is_over() {
    let server = Server::start("completion", &[]);
    let child = start_stress(
        &server,
        &[
            "--rate",
            "1e9",
            "--duration",
            "1",
            "--connections",
            "2",
            "--json",
            "-",
        ],
    );
    let (code, out, err) = ends(child, "--rate 1e9 --duration 1");
    assert!(
        matches!(code, Some(0 | 1)),
        "a verdict, not {code:?}; stderr:\n{err}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("no JSON report ({e}): {out}"));
    assert!(report.is_object(), "{report}");
}

/// One SIGINT stops a run whose rate the client cannot keep up with: what is in flight is
/// verified, the report printed, and the exit code is 130.
#[test]
fn one_sigint_stops_a_run_at_a_billion_messages_per_second() {
    let server = Server::start("completion", &[]);
    let child = start_stress(
        &server,
        &["--rate", "1e9", "--duration", "60", "--connections", "2"],
    );
    // Well into the measured phase (after the 1 s warm-up).
    std::thread::sleep(Duration::from_secs(3));
    let ok = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -INT");
    let (code, out, err) = ends(child, "after one SIGINT");
    assert_eq!(code, Some(130), "stdout:\n{out}\nstderr:\n{err}");
    assert!(!out.is_empty(), "a report; stderr:\n{err}");
}
