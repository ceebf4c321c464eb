//! Issue 13, part 5: what `benches/scale-active.sh` (many connections, all active) rests on, and
//! the script itself at a small scale. `stress --source-ip FIRST-LAST` binds each connection to
//! an address of the range, round-robin; `--spin-us 0` sleeps until each send is due; the script
//! starts reuse-port servers and `--segment` agents, merges their results and kills everything
//! it started.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener};
#[cfg(target_os = "linux")]
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::bin;
#[cfg(target_os = "linux")]
use support::free_port;

/// Runs `cmd` to its end (killed after `limit`); returns its success, stdout and stderr.
#[track_caller]
fn run_bounded(mut cmd: Command, limit: Duration) -> (bool, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let e = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish in {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status.success(), o.join().unwrap(), e.join().unwrap())
}

/// An echo server on a free loopback port that records each connection's peer address.
fn recording_echo_server(connections: usize) -> (u16, std::thread::JoinHandle<Vec<IpAddr>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let mut peers = Vec::new();
        let mut echoes = Vec::new();
        for _ in 0..connections {
            let (mut s, peer) = listener.accept().unwrap();
            peers.push(peer.ip());
            echoes.push(std::thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }));
        }
        for e in echoes {
            let _ = e.join();
        }
        peers
    });
    (port, handle)
}

#[test]
fn source_ip_range_binds_each_connection_to_an_address_of_the_range() {
    let (port, server) = recording_echo_server(9);
    let mut cmd = bin();
    cmd.args(["stress", "127.0.0.1", &port.to_string()])
        .args(["--connections", "9", "--count", "3", "--threads", "2"])
        .args(["--source-ip", "127.0.0.2-127.0.0.4", "--interval", "0"]);
    let (ok, out, err) = run_bounded(cmd, Duration::from_secs(60));
    assert!(ok, "stress failed: {out}\n{err}");
    let peers = server.join().unwrap();
    let mut per_address = BTreeMap::new();
    for p in &peers {
        *per_address.entry(p.to_string()).or_insert(0) += 1;
    }
    // Round-robin by connection number: three each, nothing outside the range.
    let want: BTreeMap<String, i32> = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        .iter()
        .map(|a| (a.to_string(), 3))
        .collect();
    assert_eq!(per_address, want, "local addresses of the 9 connections");
}

#[test]
fn source_ip_ranges_and_addresses_mix_and_bad_ranges_are_refused() {
    let (port, server) = recording_echo_server(4);
    let mut cmd = bin();
    cmd.args(["stress", "127.0.0.1", &port.to_string()])
        .args(["--connections", "4", "--count", "2", "--interval", "0"])
        .args(["--source-ip", "127.0.0.7,127.0.0.10-127.0.0.11"])
        .args(["--source-ip", "127.0.0.20"]);
    let (ok, out, err) = run_bounded(cmd, Duration::from_secs(60));
    assert!(ok, "stress failed: {out}\n{err}");
    let mut peers: Vec<String> = server
        .join()
        .unwrap()
        .iter()
        .map(|p| p.to_string())
        .collect();
    peers.sort();
    assert_eq!(
        peers,
        ["127.0.0.10", "127.0.0.11", "127.0.0.20", "127.0.0.7"]
    );

    for (bad, says) in [
        ("127.0.0.9-127.0.0.2", "comes before"),
        ("127.0.0.1-::1", "mixes IPv4 and IPv6"),
        ("10.0.0.0-10.2.0.0", "more than 65536"),
        ("127.0.0.1-localhost", "is not an IP address"),
    ] {
        let mut cmd = bin();
        cmd.args(["stress", "--count", "1", "--source-ip", bad]);
        let out = cmd.output().expect("run stress");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains(says), "{bad}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    }
}

#[test]
fn spin_us_zero_still_sends_on_schedule_and_verifies_and_too_long_a_spin_is_refused() {
    let server = support::Server::start("completion", &[]);
    let mut cmd = bin();
    cmd.args(["stress", &server.addr.to_string()])
        .args(["--connections", "20", "--count", "20", "--rate", "2000"])
        .args([
            "--spin-us",
            "0",
            "--size",
            "64",
            "--interval",
            "0",
            "--json",
            "-",
        ]);
    let (ok, out, err) = run_bounded(cmd, Duration::from_secs(60));
    assert!(ok, "stress --spin-us 0 failed: {err}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("JSON on stdout");
    assert_eq!(number(&json, "messages"), 400, "{json}");
    assert_eq!(number(&json, "errors"), 0, "{json}");
    assert_eq!(json["mode"], "rate", "{json}");

    let out = bin()
        .args(["stress", "--count", "1", "--spin-us", "10001"])
        .output()
        .expect("run stress");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "a usage error: {err}");
    assert!(err.contains("--spin-us 10001 is more than 10000"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
}

/// The repository's root (two levels above this crate).
#[cfg(target_os = "linux")]
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// A JSON number field of the merged result.
fn number(json: &serde_json::Value, key: &str) -> u64 {
    json[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {json}"))
}

// The script is bash over Linux's /proc: Linux only.
#[cfg(target_os = "linux")]
#[test]
fn scale_active_script_runs_servers_and_agents_merges_them_and_cleans_up() {
    let out = std::env::temp_dir().join(format!("ringport-scale-active-{}", std::process::id()));
    let port = free_port();
    // 600 connections over 3 servers and 3 agents, 300 msg/s (every connection every 2 s),
    // measured for 2 s after a 1 s warm-up.
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("benches/scale-active.sh"))
        .env("NO_BUILD", "1")
        .env("RINGPORT", env!("CARGO_BIN_EXE_ringport"))
        .env("TARGET", "600")
        .env("PER_SERVER", "250")
        .env("PER_AGENT", "200")
        .env("RATE", "300")
        .env("WARMUP", "1")
        .env("DURATION", "2")
        .env("START_SLACK", "2")
        .env("SAMPLE", "1")
        .env("MIN_AVAIL_MIB", "256")
        .env("PORT", port.to_string())
        .env("OUT", &out)
        .env("RUST_LOG", "warn");
    let (ok, stdout, stderr) = run_bounded(cmd, Duration::from_secs(180));
    let result = std::fs::read_to_string(out.join("result.txt")).unwrap_or_default();
    assert!(ok, "scale-active.sh failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("starting 3 servers") && stdout.contains("starting 3 agents"),
        "{stdout}"
    );
    assert!(
        result.contains("connections   600 established of 600"),
        "{result}"
    );

    // The merged result is the three agents' and every byte was verified.
    let merged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("merged.json")).unwrap()).unwrap();
    assert_eq!(merged["merged_from"].as_array().map(Vec::len), Some(3));
    assert_eq!(number(&merged, "errors"), 0);
    assert_eq!(number(&merged, "connections_established"), 600);
    let messages = number(&merged, "messages");
    assert!(messages > 0, "{merged}");
    let mut agents = 0;
    for i in 1..=3 {
        let a: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(format!("agent-{i}.json"))).unwrap(),
        )
        .unwrap();
        agents += number(&a, "messages");
        assert_eq!(number(&a, "connections"), 200, "agent {i}");
    }
    assert_eq!(messages, agents, "merged messages are the agents' sum");
    assert!(
        result.contains(&format!("{messages} messages verified")),
        "{result}"
    );
    assert!(
        std::fs::read_to_string(out.join("summary.md"))
            .unwrap()
            .starts_with("| "),
        "a table row"
    );

    // Everything it started is gone: the port is free again (no reuse-port listener left).
    TcpListener::bind(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("port {port} still in use after the script: {e}"));
    let _ = std::fs::remove_dir_all(&out);
}
