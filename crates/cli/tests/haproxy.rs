//! Three `ringport serve` hosts behind one HAProxy host (TCP mode, leastconn, health checks),
//! clients on a fifth: byte-exact echo through the proxy, connections spread, a backend drained
//! by SIGTERM with nothing lost, taken out by the health check, and back when restarted.

// Linux only: the test hosts are network namespaces (`ip netns`), and HAProxy and
// SIGTERM are driven from Linux.
#![cfg(target_os = "linux")]

mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::netns::Hosts;
use support::*;

const PORT: u16 = 7000;
const PROXY: usize = 4;
const CLIENT: usize = 5;
const TARGET: &str = "198.18.0.4:7000";

/// A running HAProxy, killed on drop.
struct Haproxy {
    child: Child,
    dir: PathBuf,
}

impl Haproxy {
    /// Writes the config and starts `haproxy -db` on the proxy host.
    fn start(hosts: &Hosts) -> Option<Haproxy> {
        require("haproxy")?;
        let dir = std::env::temp_dir().join(format!("ringport-haproxy-{}", hosts.ns(PROXY)));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let servers: String = (1..=3)
            .map(|i| format!("    server s{i} {}:{PORT}\n", hosts.addr(i)))
            .collect();
        let cfg = format!(
            "global\n    maxconn 3000\n    stats socket {sock} mode 600 level admin\n\n\
             defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 30s\n    \
             timeout server 30s\n    retries 2\n    option redispatch\n\n\
             frontend echo\n    bind {proxy}:{PORT}\n    default_backend servers\n\n\
             backend servers\n    balance leastconn\n    \
             default-server check inter 250ms fall 2 rise 2\n{servers}",
            sock = dir.join("admin.sock").display(),
            proxy = hosts.addr(PROXY),
        );
        std::fs::write(dir.join("haproxy.cfg"), cfg).unwrap();
        let child = hosts
            .command(PROXY, "haproxy")
            .arg("-db")
            .arg("-f")
            .arg(dir.join("haproxy.cfg"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("haproxy.log")).unwrap())
            .spawn()
            .expect("spawn haproxy");
        Some(Haproxy { child, dir })
    }

    /// Per server (`s1`..`s3`): its check status (`UP`, `DOWN`, ...) and sessions in total.
    fn servers(&self) -> HashMap<String, (String, u64)> {
        haproxy_stats(&self.dir.join("admin.sock"))
            .into_iter()
            .filter(|r| r["pxname"] == "servers" && r["svname"].starts_with('s'))
            .map(|r| {
                let total = r["stot"].parse().unwrap_or(0);
                (r["svname"].clone(), (r["status"].clone(), total))
            })
            .collect()
    }

    /// Waits (at most `limit`) until server `name`'s status starts with `want`; returns how long
    /// that took.
    #[track_caller]
    fn wait_status(&self, name: &str, want: &str, limit: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let now = self.servers();
            if now.get(name).is_some_and(|(s, _)| s.starts_with(want)) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "{name} not {want} within {limit:?}: {now:?}; haproxy: {}",
                std::fs::read_to_string(self.dir.join("haproxy.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn sessions(&self, name: &str) -> u64 {
        self.servers().get(name).map_or(0, |s| s.1)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A backend on host `i`, at the default log level (so a health check logged as a warning or
/// an error would show), printing `--stats`.
fn backend(hosts: &Hosts, i: usize) -> Server {
    let mut cmd = hosts.ringport(i);
    cmd.env("RUST_LOG", "info")
        .args(["serve", "--bind", &hosts.addr(i).to_string()])
        .args(["--port", &PORT.to_string(), "--workers", "1"])
        // Every connection comes from the proxy's one address.
        .args(["--max-per-ip", "0", "--stats", "0.5"]);
    Server::spawn(cmd)
}

/// Stops `server` with SIGTERM and returns its summary's (served, echoed, received), after
/// checking it drained: everything received was echoed, nothing forced closed, nothing logged
/// above INFO.
#[track_caller]
fn stop(server: &mut Server, name: &str) -> (u64, u64, u64) {
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{name}: {status}: {}", server.stderr());
    let (served, echoed, received) = server.summary_counts();
    assert_eq!(
        echoed,
        received,
        "{name} did not echo all it received: {}",
        server.stdout()
    );
    assert!(
        server.stdout().contains(" 0 forced closes"),
        "{name}: {}",
        server.stdout()
    );
    let stderr = server.stderr();
    let loud: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    assert!(loud.is_empty(), "{name} logged: {loud:?}");
    println!("{name}: {}", server.stdout().lines().next().unwrap_or(""));
    (served, echoed, received)
}

#[test]
fn three_backends_behind_haproxy_echo_exactly_spread_drain_and_rejoin() {
    let started = Instant::now();
    let Some(hosts) = Hosts::up(5) else { return };
    raise_fd_limit();
    let mut servers: Vec<Server> = (1..=3).map(|i| backend(&hosts, i)).collect();
    let Some(proxy) = Haproxy::start(&hosts) else {
        return;
    };
    for s in ["s1", "s2", "s3"] {
        proxy.wait_status(s, "UP", Duration::from_secs(10));
    }
    let mut echoed_by_clients = 0u64;
    let limit = Duration::from_secs(40);

    // 1. 1,000 connections through the proxy, every byte verified.
    let before: Vec<u64> = ["s1", "s2", "s3"].map(|s| proxy.sessions(s)).to_vec();
    let run = hosts.stress(
        CLIENT,
        TARGET,
        &[
            "--connections",
            "1000",
            "--count",
            "20",
            "--size",
            "100",
            "--threads",
            "2",
        ],
        limit,
    );
    println!(
        "1,000 connections through haproxy: {} ({:.1} s)",
        run.figure(),
        run.elapsed.as_secs_f64()
    );
    assert_eq!(run.num("connections_established"), 1000.0, "{}", run.stderr);
    assert_eq!(run.num("errors"), 0.0, "{}", run.stderr);
    assert_eq!(run.num("messages"), 20_000.0);
    echoed_by_clients += run.num("bytes") as u64;
    // Spread: the proxy's sessions per backend, and each backend's own bytes in (--stats).
    let per: Vec<u64> = ["s1", "s2", "s3"]
        .iter()
        .zip(&before)
        .map(|(s, b)| proxy.sessions(s) - b)
        .collect();
    let want_in = 1000 * 20 * 100;
    let deadline = Instant::now() + Duration::from_secs(5);
    let bytes_in = loop {
        let b: Vec<u64> = servers
            .iter()
            .map(|s| s.last_stats().map_or(0, |t| t.2))
            .collect();
        if b.iter().sum::<u64>() >= want_in || Instant::now() > deadline {
            break b;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    println!(
        "spread: proxy sessions per backend {per:?}, bytes in per backend (--stats) {bytes_in:?}"
    );
    assert_eq!(per.iter().sum::<u64>(), 1000, "sessions {per:?}");
    assert_eq!(
        bytes_in.iter().sum::<u64>(),
        want_in,
        "bytes in {bytes_in:?}"
    );
    for (i, (&n, &b)) in per.iter().zip(&bytes_in).enumerate() {
        assert!(
            n >= 100 && b > 0,
            "backend s{} got {n} of 1,000 connections ({b} bytes): leastconn spreads them",
            i + 1
        );
    }

    // 2. A run under way while s1 is stopped with SIGTERM.
    let (during, s1_first) = std::thread::scope(|scope| {
        let bg = scope.spawn(|| {
            hosts.stress(
                CLIENT,
                TARGET,
                &[
                    "--connections",
                    "300",
                    "--duration",
                    "6",
                    "--rate",
                    "3000",
                    "--size",
                    "100",
                    "--threads",
                    "1",
                ],
                limit,
            )
        });
        std::thread::sleep(Duration::from_secs(2));
        let s1 = stop(&mut servers[0], "s1 (stopped mid-run)");
        let out = proxy.wait_status("s1", "DOWN", Duration::from_secs(5));
        println!(
            "s1 stopped; the health check took it out after {:.2} s",
            out.as_secs_f64()
        );
        // New connections go to the other two.
        let before: Vec<u64> = ["s1", "s2", "s3"].map(|s| proxy.sessions(s)).to_vec();
        let run = hosts.stress(
            CLIENT,
            TARGET,
            &[
                "--connections",
                "100",
                "--count",
                "10",
                "--size",
                "100",
                "--threads",
                "1",
            ],
            limit,
        );
        let after: Vec<u64> = ["s1", "s2", "s3"].map(|s| proxy.sessions(s)).to_vec();
        println!(
            "while s1 is down: {}; new sessions per backend {:?}",
            run.figure(),
            after
                .iter()
                .zip(&before)
                .map(|(a, b)| a - b)
                .collect::<Vec<_>>()
        );
        assert_eq!(run.num("errors"), 0.0, "{}", run.stderr);
        assert_eq!(
            after[0], before[0],
            "a new connection went to the stopped backend"
        );
        assert_eq!(after[1] + after[2] - before[1] - before[2], 100);
        (bg.join().unwrap(), (s1, run.num("bytes") as u64))
    });
    echoed_by_clients += s1_first.1;
    let s1_first = s1_first.0;
    println!(
        "the run across the stop: {} ({:.1} s)",
        during.figure(),
        during.elapsed.as_secs_f64()
    );
    // Nothing lost: no wrong byte, no timeout; s1 echoed everything it received (checked in
    // `stop`) and every byte the backends echoed reached a client verified (checked at the end).
    // The connections s1 held were closed by its drain: between messages (early_close), or with
    // a message the proxy took but could no longer hand to s1 (short_echo: the client is told,
    // by the close, that it was not echoed).
    for kind in ["mismatch", "timeout", "connect_failed", "other"] {
        assert_eq!(during.errors(kind), 0, "{kind}: {}", during.stderr);
    }
    let closed =
        during.errors("early_close") + during.errors("reset") + during.errors("short_echo");
    println!(
        "connections closed by the drain of s1: {closed} ({} with a message sent after s1 stopped reading)",
        during.errors("short_echo")
    );
    assert!(closed > 0 && closed <= 300, "{closed}");
    echoed_by_clients += during.num("bytes") as u64;

    // 3. s1 restarted: the health check brings it back, and leastconn sends it new connections.
    servers[0] = backend(&hosts, 1);
    let back = proxy.wait_status("s1", "UP", Duration::from_secs(5));
    println!("s1 restarted; back in after {:.2} s", back.as_secs_f64());
    let before = proxy.sessions("s1");
    let run = hosts.stress(
        CLIENT,
        TARGET,
        &[
            "--connections",
            "300",
            "--count",
            "10",
            "--size",
            "100",
            "--threads",
            "1",
        ],
        limit,
    );
    let got = proxy.sessions("s1") - before;
    println!(
        "after the rejoin: {}; s1 took {got} of 300 new connections",
        run.figure()
    );
    assert_eq!(run.num("errors"), 0.0, "{}", run.stderr);
    assert!(got > 0, "the restarted backend got no connection");
    echoed_by_clients += run.num("bytes") as u64;

    // Every byte the backends echoed reached a client and was verified there, and every byte
    // they received was echoed.
    let mut echoed_by_servers = s1_first.1;
    for (i, s) in servers.iter_mut().enumerate() {
        echoed_by_servers += stop(s, &format!("s{}", i + 1)).1;
    }
    println!("bytes echoed: by the backends {echoed_by_servers}, verified by the clients {echoed_by_clients}");
    assert_eq!(echoed_by_servers, echoed_by_clients);
    println!("took {:.1} s", started.elapsed().as_secs_f64());
}
