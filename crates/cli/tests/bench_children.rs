//! `ringport bench` killed while a server it started runs (SIGTERM, or SIGKILL, which it cannot
//! catch): the server dies with it instead of running on, orphaned.

// Linux only: bench runs on Linux alone, and the processes are looked up in /proc.
#![cfg(target_os = "linux")]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The parent and the state of process `pid` (`/proc/PID/stat`), `None` once it is gone.
fn parent_and_state(pid: u32) -> Option<(u32, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold anything: look after the last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((ppid, state))
}

/// The children of process `parent`, from every process's `/proc/PID/stat`.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| parent_and_state(pid).is_some_and(|(ppid, _)| ppid == parent))
        .collect()
}

/// Whether process `pid` is gone (a zombie that nobody reaped is dead too).
fn gone(pid: u32) -> bool {
    parent_and_state(pid).is_none_or(|(_, state)| matches!(state, 'Z' | 'X'))
}

/// `ringport bench` of one long point of the completion model on io_uring (its server runs for 30 s).
fn start_bench(name: &str) -> (Child, PathBuf) {
    let out = std::env::temp_dir().join(format!(
        "ringport-bench-children-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&out);
    let child = Command::new(env!("CARGO_BIN_EXE_ringport"))
        .args([
            "bench",
            "--designs",
            "completion-uring",
            "--connections",
            "1",
            "--size",
            "64",
            "--duration",
            "30",
            "--warmup",
            "0.5",
            "--repeat",
            "1",
            "--no-churn",
            "--no-pin",
            "--out",
        ])
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ringport bench");
    (child, out)
}

/// Waits (at most 10 s) for the server `bench` started; returns its pid.
#[track_caller]
fn server_of(bench: &Child) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(&pid) = children_of(bench.id()).first() {
            return pid;
        }
        assert!(Instant::now() < deadline, "bench started no server in 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[track_caller]
fn killing_bench_kills_its_server(signal: &str) {
    let (mut bench, out) = start_bench(signal);
    let server = server_of(&bench);
    // Let the load begin, so the server is busy when its parent goes.
    std::thread::sleep(Duration::from_millis(500));
    let killed = Command::new("kill")
        .args([&format!("-{signal}"), &bench.id().to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(killed, "kill -{signal}");
    bench.wait().expect("reap bench");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gone(server) {
        if Instant::now() >= deadline {
            let _ = Command::new("kill")
                .args(["-KILL", &server.to_string()])
                .status();
            panic!("the server (pid {server}) outlived bench killed with SIG{signal}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn sigterm_to_bench_ends_its_server() {
    killing_bench_kills_its_server("TERM");
}

#[test]
fn sigkill_to_bench_ends_its_server() {
    killing_bench_kills_its_server("KILL");
}
