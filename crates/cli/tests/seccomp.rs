//! The epoll fallback end to end: `ringport serve` and `ringport stress` with io_uring's system
//! calls blocked by a seccomp filter (EPERM, as Docker's default profile does), installed by the
//! workspace's `seccomp-exec` helper before exec.

// Linux only: seccomp and io_uring's system calls exist only there.
#![cfg(target_os = "linux")]

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

/// The `seccomp-exec` binary, next to `ringport` (built by `cargo test --workspace`; built here
/// when only this package's tests were asked for).
fn seccomp_exec() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_BIN_EXE_ringport"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let path = dir.join("seccomp-exec");
    if !path.exists() {
        let ok = Command::new(env!("CARGO"))
            .args(["build", "-p", "seccomp-exec"])
            .status()
            .expect("run cargo build -p seccomp-exec")
            .success();
        assert!(ok, "cannot build seccomp-exec");
    }
    assert!(path.exists(), "{} is missing", path.display());
    path
}

#[test]
fn auto_falls_back_to_epoll_says_why_and_serves() {
    let mut cmd = Command::new(seccomp_exec());
    cmd.arg("--").arg(env!("CARGO_BIN_EXE_ringport")).args([
        "serve",
        "--port",
        "0",
        "--workers",
        "2",
    ]);
    let mut server = Server::spawn(cmd);
    let data = Rng::new(42).bytes(300_000);
    assert_same(&echo_chunked(server.connect(), &data, 3), &data);
    // The client side can fall back too.
    let out = Command::new(seccomp_exec())
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_ringport"))
        .args([
            "stress",
            &server.addr.port().to_string(),
            "--connections",
            "4",
            "--count",
            "50",
            "--json",
            "-",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["messages"], 200, "{j}");
    assert_eq!(j["backend"], "epoll", "{j}");
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(8)).success());
    let err = server.stderr();
    assert!(
        err.contains("seccomp"),
        "the fallback names its cause: {err}"
    );
    assert_eq!(
        err.lines()
            .filter(|l| l.contains("io_uring is unavailable"))
            .count(),
        1,
        "one line names the cause, once (not once per worker): {err}"
    );
    assert!(
        server.stdout().contains("backend epoll"),
        "{}",
        server.stdout()
    );
}

#[test]
fn backend_uring_fails_with_the_cause_when_blocked() {
    let out = Command::new(seccomp_exec())
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_ringport"))
        .args(["serve", "--port", "0", "--backend", "uring"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("io_uring is unavailable"), "{err}");
    assert!(err.contains("seccomp"), "{err}");
    assert!(err.contains("--backend epoll"), "says what to do: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(out.stdout.is_empty());
}
