//! Multipath TCP: `serve --mptcp`, `stress --mptcp` and `send --mptcp` between two test hosts
//! whose path managers open a second subflow from the client's second address. The kernel's
//! own counters on the server's host (`/proc/net/netstat`, per namespace) say what happened:
//! every connection of the run was MPTCP and was joined by a second subflow, every byte was
//! verified, and the server's summary counts the same; a TCP client of an MPTCP server and an
//! MPTCP client of a TCP server get plain TCP (the latter with a warning in the report).

// Linux only: MPTCP and the test hosts (network namespaces) are Linux's.
#![cfg(target_os = "linux")]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use support::netns::Hosts;
use support::{in_ci, Server};

const SERVER: usize = 1;
const CLIENT: usize = 2;
/// The client's second address, from which its path manager opens a second subflow.
const SECOND: &str = "198.18.1.2";

/// The `MPTcpExt` counters of host `i`'s network namespace.
fn mptcp_counters(hosts: &Hosts, i: usize) -> HashMap<String, u64> {
    let text = hosts.sh(i, &["cat", "/proc/net/netstat"]);
    let mut lines = text.lines().filter(|l| l.starts_with("MPTcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        panic!("no MPTcpExt counters in /proc/net/netstat: {text}");
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .skip(1)
        .map(|(n, v)| (n.to_string(), v.parse().unwrap()))
        .collect()
}

/// How much each of `names` grew from `before` to now on host `i`.
fn grew(hosts: &Hosts, i: usize, before: &HashMap<String, u64>, name: &str) -> u64 {
    mptcp_counters(hosts, i)[name] - before[name]
}

/// Whether this kernel has MPTCP on; under CI it must.
fn mptcp_on() -> bool {
    let on = std::fs::read_to_string("/proc/sys/net/mptcp/enabled").is_ok_and(|s| s.trim() == "1");
    if !on {
        assert!(
            !in_ci(),
            "CI=true and MPTCP is off here (net.mptcp.enabled)"
        );
        eprintln!("SKIPPED: MPTCP is not available here (net.mptcp.enabled)");
    }
    on
}

#[test]
fn every_connection_is_multipath_and_every_byte_verified() {
    if !mptcp_on() {
        return;
    }
    let Some(hosts) = Hosts::up(2) else { return };
    // Both accept a second subflow; the client announces its second address as an endpoint.
    let limits = "ip mptcp limits set subflow 2 add_addr_accepted 2";
    let words = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
    let commands = [
        (SERVER, words(limits)),
        (CLIENT, words(limits)),
        (CLIENT, words(&format!("ip addr add {SECOND}/15 dev eth0"))),
        (
            CLIENT,
            words(&format!("ip mptcp endpoint add {SECOND} dev eth0 subflow")),
        ),
    ];
    for (host, args) in &commands {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        hosts.sh(*host, &args);
    }
    let mut server: Server = hosts.serve(SERVER, 7100, &["--mptcp"]);
    let target = hosts.addr(SERVER).to_string();
    let before = mptcp_counters(&hosts, SERVER);

    // Four MPTCP connections, each held for a second: long enough for each to be joined.
    let run = hosts.stress(
        CLIENT,
        &target,
        &[
            "7100",
            "--mptcp",
            "--connections",
            "4",
            "--duration",
            "1",
            "--size",
            "4096",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(run.num("errors"), 0.0, "{}", run.stderr);
    assert!(run.num("messages") > 0.0, "{}", run.stderr);
    assert_eq!(
        run.json["warnings"],
        serde_json::json!([]),
        "{}",
        run.stderr
    );
    // The four connections and the probe made before the load: MPTCP each.
    let capable = grew(&hosts, SERVER, &before, "MPCapableSYNRX");
    assert_eq!(capable, 5, "MP_CAPABLE handshakes the server took");
    let joined = grew(&hosts, SERVER, &before, "MPJoinAckRx");
    assert!(
        joined >= 4,
        "second subflows joined: {joined} of at least 4"
    );

    // `send`: one more MPTCP connection, its echo checked.
    let before = mptcp_counters(&hosts, SERVER);
    let out = hosts
        .ringport(CLIENT)
        .args(["send", &target, "7100", "--mptcp", "over two paths"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "over two paths\n");
    assert_eq!(grew(&hosts, SERVER, &before, "MPCapableSYNRX"), 1);

    // A TCP client of the MPTCP server: served, as TCP.
    let before = mptcp_counters(&hosts, SERVER);
    let run = hosts.stress(
        CLIENT,
        &target,
        &["7100", "--connections", "2", "--count", "100"],
        Duration::from_secs(30),
    );
    assert_eq!(run.num("errors"), 0.0, "{}", run.stderr);
    assert_eq!(grew(&hosts, SERVER, &before, "MPCapableSYNRX"), 0);

    server.signal("TERM");
    assert!(
        server.wait_exit(Duration::from_secs(10)).success(),
        "{}",
        server.stderr()
    );
    // The server asked each connection: the six above spoke MPTCP, the last two plain TCP.
    let summary = server.stdout();
    assert!(
        summary.contains("mptcp: 6 of 8 connections spoke Multipath TCP, 2 plain TCP"),
        "{summary}"
    );

    // An MPTCP client of a TCP server: plain TCP, every byte verified, and the report says so.
    let mut plain = hosts.serve(SERVER, 7101, &[]);
    let run = hosts.stress(
        CLIENT,
        &target,
        &["7101", "--mptcp", "--connections", "2", "--count", "100"],
        Duration::from_secs(30),
    );
    assert_eq!(run.num("errors"), 0.0, "{}", run.stderr);
    let warnings = run.json["warnings"].to_string();
    assert!(
        warnings.contains("answered with plain TCP (it does not speak MPTCP)"),
        "{warnings}"
    );
    plain.signal("TERM");
    assert!(plain.wait_exit(Duration::from_secs(10)).success());
    assert!(!plain.stdout().contains("mptcp:"), "{}", plain.stdout());
}

/// With MPTCP turned off in a host's namespace, each command refuses `--mptcp` in one line
/// that says how to turn it on.
#[test]
fn mptcp_turned_off_is_one_line_naming_the_setting() {
    if !mptcp_on() {
        return;
    }
    let Some(hosts) = Hosts::up(1) else { return };
    hosts.sh(1, &["sysctl", "-qw", "net.mptcp.enabled=0"]);
    let runs: [&[&str]; 3] = [
        &["serve", "--port", "7102", "--mptcp"],
        &["stress", "127.0.0.1", "7102", "--mptcp", "--count", "1"],
        &["send", "127.0.0.1", "7102", "--mptcp", "hi"],
    ];
    for args in runs {
        let out = hosts.ringport(1).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("net.mptcp.enabled=1"), "{args:?}: {err}");
    }
}

for_each_model! {
    /// On loopback, every model and backend serves MPTCP and TCP clients from one `--mptcp`
    /// listener, and its summary counts which spoke which.
    fn every_model_counts_its_mptcp_and_tcp_clients(model: &str) {
        if !mptcp_on() {
            return;
        }
        let mut server = Server::start(model, &["--mptcp"]);
        let port = server.addr.port().to_string();
        for mptcp in [true, false, true] {
            let mut send = support::bin();
            send.args(["send", "127.0.0.1", &port, "hello"]);
            if mptcp {
                send.arg("--mptcp");
            }
            let out = send.output().unwrap();
            assert!(out.status.success(), "{model}: {}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
        }
        server.signal("TERM");
        assert!(server.wait_exit(Duration::from_secs(10)).success(), "{}", server.stderr());
        let summary = server.stdout();
        assert!(
            summary.contains("mptcp: 2 of 3 connections spoke Multipath TCP, 1 plain TCP"),
            "{model}: {summary}"
        );
    }
}
