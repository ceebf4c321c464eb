//! The test-host harness (`scripts/netns.sh`, `support::netns`): hosts reach each other and
//! nothing else, and are always torn down, also when the test using them panics.

// Linux only: the test-host harness is made of network namespaces (`ip netns`).
#![cfg(target_os = "linux")]

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use support::netns::{script, Hosts};

fn namespaces(prefix: &str) -> Vec<String> {
    let out = Command::new(script())
        .args(["ls", prefix])
        .output()
        .expect("netns.sh ls");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn hosts_reach_each_other_and_nothing_else() {
    let Some(hosts) = Hosts::up(3) else { return };
    let prefix = hosts.ns(1).trim_end_matches("-h1").to_string();
    assert_eq!(namespaces(&prefix).len(), 4, "three hosts and the bridge");
    for i in 1..=3 {
        // Only loopback and the one veth, and only the bridged /15 in the routing table.
        let links = hosts.sh(i, &["ip", "-o", "link", "show"]);
        let names: Vec<&str> = links
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap())
            .collect();
        assert_eq!(names, ["lo", "eth0"], "host {i}: {links}");
        let routes = hosts.sh(i, &["ip", "-4", "route", "show"]);
        assert!(
            !routes.contains("default"),
            "host {i} has a default route: {routes}"
        );
        assert_eq!(routes.lines().count(), 1, "host {i}: {routes}");
        assert!(routes.starts_with("198.18.0.0/15 dev eth0"), "{routes}");
        let addrs = hosts.sh(i, &["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
        assert!(addrs.contains(&format!("{}/15", hosts.addr(i))), "{addrs}");
    }
    // A connect out of the range finds no route.
    let out = hosts
        .ringport(2)
        .args([
            "stress",
            "192.0.2.1",
            "9",
            "--connections",
            "1",
            "--count",
            "1",
        ])
        .args(["--timeout", "2", "--json", "-"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(
        json["connections_established"],
        0,
        "a connection left the test hosts: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // An echo from host 3 to a server on host 1, over the bridge.
    let server = hosts.serve(1, 7000, &["--workers", "1"]);
    assert_eq!(server.addr, SocketAddr::from((hosts.addr(1), 7000)));
    let run = hosts.stress(
        3,
        "198.18.0.1:7000",
        &["--connections", "20", "--count", "50", "--size", "300"],
        Duration::from_secs(30),
    );
    println!("host 3 -> host 1: {}", run.figure());
    assert_eq!(run.num("errors"), 0.0, "{}", run.stderr);
    assert_eq!(run.num("messages"), 1000.0);
    drop(server);
    drop(hosts);
    assert!(
        namespaces(&prefix).is_empty(),
        "left behind: {:?}",
        namespaces(&prefix)
    );
}

#[test]
fn hosts_are_torn_down_when_the_test_panics_and_stale_ones_are_removed() {
    // A panicking test body: its hosts go when it unwinds.
    let mut prefix = String::new();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let Some(hosts) = Hosts::up(2) else {
            return false;
        };
        prefix = hosts.ns(1).trim_end_matches("-h1").to_string();
        let server = hosts.serve(1, 7001, &["--workers", "1"]);
        let _ = &server;
        panic!("a failing test");
    }));
    match caught {
        Ok(false) => return, // skipped: no namespaces here
        Ok(true) => unreachable!(),
        Err(_) => {}
    }
    assert!(!prefix.is_empty());
    assert!(
        namespaces(&prefix).is_empty(),
        "left behind: {:?}",
        namespaces(&prefix)
    );

    // Hosts of a test process that died before tearing down (pid 0 is never a test's): the next
    // `Hosts::up` removes them, processes included.
    let stale = &format!("rpt-0-{}", std::process::id());
    let ok = Command::new(script())
        .args(["up", stale, "2"])
        .status()
        .unwrap()
        .success();
    assert!(ok, "netns.sh up");
    let mut sleeper = Command::new("ip")
        .args(["netns", "exec", &format!("{stale}-h1"), "sleep", "60"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let hosts = Hosts::up(1).expect("namespaces were created a moment ago");
    assert!(
        namespaces(stale).is_empty(),
        "stale hosts left: {:?}",
        namespaces(stale)
    );
    let status = sleeper.wait().unwrap();
    assert!(!status.success(), "the stale host's process was killed");

    // And the one host works: a round trip to itself.
    let server = hosts.serve(1, 7002, &["--workers", "1"]);
    let out = hosts
        .ringport(1)
        .args([
            "stress",
            "198.18.0.1:7002",
            "--connections",
            "1",
            "--count",
            "3",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(server);
}
