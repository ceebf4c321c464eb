//! Interop with the Windows build, under Wine: the Linux `ringport stress` against
//! `ringport.exe serve` (IOCP), and `ringport.exe stress` against the Linux server. Every echoed
//! byte is verified by the stress client on both sides. And Ctrl-C on both under Wine (`kill
//! -INT` on the Wine process is a CTRL_C_EVENT): the server drains with nothing lost, the stress
//! client says so and exits 130.
//!
//! Needs what `scripts/windows.sh setup` and `scripts/windows.sh build -p ringport` make (the
//! Wine prefix and `ringport.exe`, found as the script finds them: `RINGPORT_WINDOWS_TARGET_DIR`,
//! `RINGPORT_WINE_DIR`). Without them each test says why on stderr and passes as skipped,
//! unless `CI=true` and `RINGPORT_WINDOWS_CI=1` (the Windows step of `.ci/run` is enabled):
//! then a missing Windows build fails.

#![cfg(target_os = "linux")]

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::*;

/// The Windows build and its Wine prefix.
struct Wine {
    exe: PathBuf,
    prefix: PathBuf,
}

impl Wine {
    /// The set-up of `scripts/windows.sh`, or `None` (skipped) when it is missing.
    fn find() -> Option<Wine> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dir = |var: &str, default: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .unwrap_or_else(|| repo.join(default))
        };
        let exe = dir("RINGPORT_WINDOWS_TARGET_DIR", "target/windows")
            .join("x86_64-pc-windows-gnu/debug/ringport.exe");
        let prefix = dir("RINGPORT_WINE_DIR", "target/wine").join("prefix");
        let wine = Command::new("wine")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let missing = if !wine {
            Some("wine is not installed".to_string())
        } else if !prefix.join(".ringport-ready").exists() {
            Some(format!("no Wine prefix at {}", prefix.display()))
        } else if !exe.exists() {
            Some(format!("no {}", exe.display()))
        } else {
            None
        };
        let Some(why) = missing else {
            return Some(Wine { exe, prefix });
        };
        let enabled = std::env::var("CI").is_ok_and(|v| v == "true")
            && std::env::var("RINGPORT_WINDOWS_CI").is_ok_and(|v| v == "1");
        assert!(
            !enabled,
            "the Windows step is enabled (RINGPORT_WINDOWS_CI=1) but {why}"
        );
        eprintln!(
            "skipped: {why}; run scripts/windows.sh setup && scripts/windows.sh build -p ringport"
        );
        None
    }

    /// `wine ringport.exe ARGS` in the prefix.
    fn ringport(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("wine");
        cmd.arg(&self.exe)
            .args(args)
            .env("WINEPREFIX", &self.prefix)
            .env("WINEARCH", "win64")
            .env("WINEDEBUG", "-all");
        cmd
    }
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "stress failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

const LOAD: [&str; 8] = [
    "--connections",
    "20",
    "--count",
    "50",
    "--size",
    "300",
    "--json",
    "-",
];

#[test]
fn linux_stress_against_ringport_exe_serve_under_wine() {
    let Some(wine) = Wine::find() else { return };
    let server = Server::spawn(wine.ringport(&["serve", "--port", "0"]));
    let port = server.addr.port().to_string();
    let out = bin()
        .args(["stress", "127.0.0.1", &port])
        .args(LOAD)
        .stdin(Stdio::null())
        .output()
        .expect("run ringport stress");
    let j = json_of(&out);
    assert_eq!(j["messages"], 20 * 50, "{j}");
    assert_eq!(j["bytes"], 20 * 50 * 300, "{j}");
    assert_eq!(j["errors"], 0, "{j}");
}

#[test]
fn ringport_exe_stress_under_wine_against_the_linux_server() {
    let Some(wine) = Wine::find() else { return };
    let mut serve = bin();
    serve.args(["serve", "--port", "0"]);
    let server = Server::spawn(serve);
    let port = server.addr.port().to_string();
    let out = wine
        .ringport(&["stress", "127.0.0.1", &port])
        .args(LOAD)
        .stdin(Stdio::null())
        .output()
        .expect("run wine ringport.exe stress");
    let j = json_of(&out);
    assert_eq!(j["messages"], 20 * 50, "{j}");
    assert_eq!(j["bytes"], 20 * 50 * 300, "{j}");
    assert_eq!(j["errors"], 0, "{j}");
}

/// Ctrl-C (under Wine `kill -INT` on the Wine process is a CTRL_C_EVENT for the console control
/// handler) drains `ringport.exe serve` with two workers (one listener, connections handed from
/// worker 0 to worker 1): every byte the clients wrote before it comes back, then a clean close,
/// and the server exits 0 with its summary.
#[test]
fn ctrl_c_drains_ringport_exe_serve_with_two_workers_and_nothing_lost() {
    let Some(wine) = Wine::find() else { return };
    let mut server = Server::spawn(wine.ringport(&[
        "serve",
        "--port",
        "0",
        "--workers",
        "2",
        "--drain-timeout",
        "10",
    ]));
    let mut rng = Rng::new(12);
    let mut conns = Vec::new();
    for _ in 0..20 {
        let mut s = server.connect();
        // One round trip first, so that every connection is being served when Ctrl-C comes.
        round_trip(&mut s, b"hello");
        let n = rng.range(1, 60_000);
        let data = rng.bytes(n);
        s.write_all(&data).unwrap();
        conns.push((s, data));
    }
    server.signal("INT");
    for (i, (mut s, data)) in conns.into_iter().enumerate() {
        let mut got = Vec::new();
        s.read_to_end(&mut got)
            .unwrap_or_else(|e| panic!("connection {i}: {e} after {} bytes", got.len()));
        assert_same(&got, &data);
    }
    let status = server.wait_exit(Duration::from_secs(20));
    assert!(
        status.success(),
        "exit status {status:?}; stderr: {}",
        server.stderr()
    );
    assert!(
        server.stderr().contains("Ctrl-C: shutting down gracefully"),
        "{}",
        server.stderr()
    );
    let (served, echoed, received) = server.summary_counts();
    assert_eq!(served, 20, "{}", server.stdout());
    assert_eq!(echoed, received, "{}", server.stdout());
}

/// Ctrl-C stops `ringport.exe stress`: it says so, verifies what is in flight, reports, and
/// exits 130.
#[test]
fn ctrl_c_stops_ringport_exe_stress_with_its_message_and_130() {
    let Some(wine) = Wine::find() else { return };
    let mut serve = bin();
    serve.args(["serve", "--port", "0", "--stats", "0.2"]);
    let server = Server::spawn(serve);
    let port = server.addr.port().to_string();
    let child = wine
        .ringport(&[
            "stress",
            "127.0.0.1",
            &port,
            "--connections",
            "4",
            "--duration",
            "60",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run wine ringport.exe stress");
    // Let it connect and run a little.
    // Running (its handler installed before it connects): the server sees its connections.
    server.eventually(Duration::from_secs(30), "4 stress connections", |s| {
        s.last_stats().is_some_and(|(open, ..)| open >= 4)
    });
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -INT failed");
    let out = child.wait_with_output().expect("stress ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("Ctrl-C: stopping, verifying what is in flight"),
        "{stderr}"
    );
    // The report (on stdout) says the run was cut short.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("interrupted"), "{stdout}\n{stderr}");
}
