//! Network faults between test hosts (`support::netns`): random loss (nftables), a bandwidth
//! limit (tc tbf), a link down for 2 s, a client host deleted mid-transfer, a burst of connects
//! against a small backlog. Each test prints its figure; timings are printed, never asserted.

// Linux only: the faults are made with network namespaces, nftables and tc.
#![cfg(target_os = "linux")]

mod support;

use std::time::{Duration, Instant};

use support::netns::Hosts;
use support::*;

const SERVER: usize = 1;
const CLIENT: usize = 2;
const PORT: u16 = 7000;
const TARGET: &str = "198.18.0.1:7000";
const LIMIT: Duration = Duration::from_secs(50);

/// Drops `percent`% of the packets to and from host `i`, at random, on the bridge between the
/// hosts (the nftables bridge family, forward hook); returns a reader of the packets dropped so
/// far.
///
/// The loss is in the network, not in the host: a packet dropped by a rule on the host's own
/// output hook is a failed send to its TCP (`EPERM`), which a real lost packet is not, and the
/// kernel handles that differently. A listener whose SYN-ACK retransmission fails to send drops
/// the half-open connection at once (`reqsk_timer_handler`), so when the client's ACK had been
/// lost too, the client's first data then meets no connection and is answered with a reset:
/// about one handshake in 150 at 5% loss, with the loss on the server host's output hook.
fn random_loss(hosts: &Hosts, i: usize, percent: u32) -> impl Fn() -> u64 + '_ {
    hosts.on_bridge(&["nft", "add table bridge fault"]);
    hosts.on_bridge(&[
        "nft",
        "add chain bridge fault lossy { type filter hook forward priority 0 ; }",
    ]);
    for dir in ["iifname", "oifname"] {
        hosts.on_bridge(&[
            "nft",
            &format!(
                "add rule bridge fault lossy {dir} h{i} numgen random mod 100 < {percent} counter drop"
            ),
        ]);
    }
    move || {
        let table = hosts.on_bridge(&["nft", "list table bridge fault"]);
        table
            .split("counter packets ")
            .skip(1)
            .filter_map(|t| t.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }
}

fn loss_run(percent: u32) {
    let Some(hosts) = Hosts::up(2) else { return };
    raise_fd_limit();
    let _server = hosts.serve(SERVER, PORT, &["--workers", "1"]);
    let dropped = random_loss(&hosts, SERVER, percent);
    let run = hosts.stress(
        CLIENT,
        TARGET,
        &[
            "--connections",
            "100",
            "--count",
            "100",
            "--size",
            "200",
            "--threads",
            "1",
            // A segment lost again after its retransmission waits twice as long (the
            // retransmission timeout backs off): at 5% loss an echo can take several seconds,
            // close to the default 10 s. The test is that nothing is lost, however long TCP
            // takes.
            "--timeout",
            "60",
        ],
        LIMIT * 2,
    );
    let dropped = dropped();
    println!(
        "{percent}% random loss, 10,000 round trips: {}; {dropped} packets dropped; {:.1} s",
        run.figure(),
        run.elapsed.as_secs_f64()
    );
    assert!(dropped > 0, "the loss rule dropped nothing");
    assert_eq!(run.num("connections_established"), 100.0, "{}", run.stderr);
    // Not one wrong, missing or reset byte: the loss is in the network, so TCP recovers every
    // packet, handshakes included (see `random_loss`).
    assert_eq!(run.num("errors"), 0.0, "{}", run.stderr);
    assert_eq!(run.num("messages"), 10_000.0, "{}", run.stderr);
    assert_eq!(run.num("bytes"), 2_000_000.0);
}

#[test]
fn one_percent_random_loss_loses_nothing() {
    loss_run(1);
}

#[test]
fn five_percent_random_loss_loses_nothing() {
    loss_run(5);
}

#[test]
fn a_bandwidth_limit_starves_no_stream() {
    let Some(hosts) = Hosts::up(2) else { return };
    let _server = hosts.serve(SERVER, PORT, &["--workers", "1"]);
    // 40 Mbit/s out of the server host: the echo path is the bottleneck.
    hosts.sh(
        SERVER,
        &[
            "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "40mbit", "burst", "32kb",
            "latency", "100ms",
        ],
    );
    let run = hosts.stress(
        CLIENT,
        TARGET,
        &[
            "--stream",
            "--connections",
            "8",
            "--duration",
            "4",
            "--size",
            "16384",
            "--window",
            "65536",
            "--threads",
            "1",
        ],
        LIMIT,
    );
    let total = run.num("stream/gbit_per_s") * 1000.0;
    let min = run.num("stream/per_connection_gbit_per_s/min") * 1000.0;
    let median = run.num("stream/per_connection_gbit_per_s/median") * 1000.0;
    let max = run.num("stream/per_connection_gbit_per_s/max") * 1000.0;
    println!(
        "tbf 40 Mbit/s, 8 streams for 4 s: {total:.1} Mbit/s echoed in total; per connection min {min:.2} median {median:.2} max {max:.2} Mbit/s (min/max {:.2}); errors {}",
        min / max.max(1e-9),
        run.json["errors_by_kind"]
    );
    assert_eq!(run.num("errors"), 0.0, "{}", run.stderr);
    assert_eq!(run.num("connections_established"), 8.0);
    // No connection starves: each gets at least a tenth of an equal share.
    assert!(
        min >= total / 8.0 / 10.0,
        "a stream starved: min {min:.3} Mbit/s of {total:.1} in total"
    );
}

#[test]
fn a_link_down_for_two_seconds_loses_nothing() {
    let Some(hosts) = Hosts::up(2) else { return };
    let _server = hosts.serve(SERVER, PORT, &["--workers", "1"]);
    let (run, down_at) = std::thread::scope(|scope| {
        let client = scope.spawn(|| {
            hosts.stress(
                CLIENT,
                TARGET,
                &[
                    "--connections",
                    "50",
                    "--duration",
                    "7",
                    "--rate",
                    "1000",
                    "--size",
                    "200",
                    "--threads",
                    "1",
                ],
                LIMIT,
            )
        });
        std::thread::sleep(Duration::from_secs(2));
        let at = Instant::now();
        hosts.link_down(CLIENT);
        std::thread::sleep(Duration::from_secs(2));
        hosts.link_up(CLIENT);
        let down = at.elapsed();
        (client.join().unwrap(), down)
    });
    println!(
        "link down for {:.1} s mid-run, 50 connections: {}",
        down_at.as_secs_f64(),
        run.figure()
    );
    assert_eq!(run.num("connections_established"), 50.0, "{}", run.stderr);
    assert_eq!(run.num("errors"), 0.0, "{}", run.stderr);
    assert!(run.num("messages") > 0.0);
    // The outage shows in the tail: some message waited out the 2 s.
    println!("latency max {} us", run.num("latency_us/max"));
}

#[test]
fn a_client_host_deleted_mid_transfer_frees_every_connection() {
    let Some(hosts) = Hosts::up(2) else { return };
    let server = hosts.serve(
        SERVER,
        PORT,
        &[
            "--workers",
            "1",
            "--idle-timeout",
            "2",
            "--write-timeout",
            "2",
            "--stats",
            "0.5",
        ],
    );
    let baseline = server.fd_count();
    let rss_before = server.rss_kib();
    // Streams that never end on their own: the host is deleted under them.
    let mut client = hosts
        .ringport(CLIENT)
        .args([
            "stress",
            TARGET,
            "--stream",
            "--connections",
            "40",
            "--duration",
            "60",
        ])
        .args(["--size", "16384", "--threads", "1", "--json", "-"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    server.eventually(Duration::from_secs(10), "40 connections open", |s| {
        s.fd_count() >= baseline + 40
    });
    std::thread::sleep(Duration::from_millis(500));
    let open = server.fd_count() - baseline;
    let rss_peak = server.rss_kib();
    // Its link goes first, so the FIN or RST of the killed client never reaches the server.
    hosts.delete_host(CLIENT);
    let _ = client.wait();
    let took = server.fds_back_to(baseline, Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(1100));
    let stats = server.last_stats().expect("a --stats line");
    let rss_after = server.rss_kib();
    println!(
        "client host deleted with {open} connections streaming: all freed {:.2} s later (--idle-timeout 2, --write-timeout 2); descriptors back to {baseline}; rss {rss_before} KiB before, {rss_peak} KiB loaded, {rss_after} KiB after",
        took.as_secs_f64()
    );
    println!(
        "server: {}",
        server
            .stderr()
            .lines()
            .rev()
            .find(|l| l.starts_with("stats:"))
            .unwrap_or("")
    );
    assert_eq!(stats.0, 0, "connections still open: {stats:?}");
    assert!(
        server.stderr().contains("idle ") || server.stderr().contains("write-timeout "),
        "{}",
        server.stderr()
    );
}

#[test]
fn a_burst_of_5000_connects_against_a_small_backlog() {
    let Some(hosts) = Hosts::up(2) else { return };
    raise_fd_limit();
    let mut server = hosts.serve(SERVER, PORT, &["--workers", "1", "--backlog", "16"]);
    let overflows = |h: &Hosts| -> u64 {
        let netstat = h.sh(SERVER, &["cat", "/proc/net/netstat"]);
        let mut lines = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
        let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
            return 0;
        };
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(n, _)| *n == "ListenOverflows")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    };
    let before = overflows(&hosts);
    let run = hosts.stress(
        CLIENT,
        TARGET,
        &[
            "--connections",
            "5000",
            "--connect-rate",
            "1000000",
            "--count",
            "2",
            "--size",
            "64",
            "--threads",
            "2",
            "--timeout",
            "15",
        ],
        LIMIT,
    );
    let overflowed = overflows(&hosts) - before;
    let established = run.num("connections_established");
    println!(
        "5,000 connects at once, --backlog 16: {established} established, {} ; listen queue overflowed {overflowed} times; {:.1} s",
        run.figure(),
        run.elapsed.as_secs_f64()
    );
    for kind in ["mismatch", "short_echo", "early_close", "reset", "other"] {
        assert_eq!(run.errors(kind), 0, "{kind}: {}", run.stderr);
    }
    let refused = run.errors("connect_failed") + run.errors("timeout");
    assert_eq!(run.num("errors") as u64, refused);
    // Every accepted connection was served: two verified round trips each.
    assert!(established > 0.0);
    let messages = run.num("messages") as u64;
    let established = established as u64;
    assert!(
        messages >= 2 * (established - run.errors("timeout").min(established))
            && messages <= 2 * established,
        "{messages} round trips on {established} connections: {}",
        run.stderr
    );
    // The server echoed everything it received, on every connection it accepted.
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(15)).success());
    let (served, echoed, received) = server.summary_counts();
    println!("server: {served} connections served, {echoed} of {received} bytes echoed");
    assert_eq!(echoed, received, "{}", server.stdout());
    assert!(
        served >= messages / 2,
        "{served} served, {messages} round trips"
    );
}
