//! `ringport stress --messages-per-connection` (churn) end to end: the real binary against
//! `ringport serve` (completion model and thread per client), against a closed port and
//! against a listener that resets every connection; and the churn point of `ringport bench`.
//!
//! Counts and kinds are asserted, never timings.

mod support;

use std::net::TcpListener;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use support::*;

fn stress(args: &[&str]) -> Output {
    bin()
        .arg("stress")
        .args(args)
        .args(["--interval", "0"])
        .stdin(Stdio::null())
        .output()
        .expect("run ringport stress")
}

/// The server's `N connections served` from its summary, after SIGTERM.
#[track_caller]
fn served(mut server: Server) -> u64 {
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(20)).success());
    server.summary_counts().0
}

/// `connections` slots of `count` messages, `per` per connection: every message verified, and
/// exactly `count / per` connections per slot, seen by the client and the server alike.
#[track_caller]
fn churn_against(model: &str, extra: &[&str]) {
    let server = Server::start(model, &[]);
    let port = server.addr.port().to_string();
    let (connections, count, per) = (6u64, 30u64, 5u64);
    let mut args = vec![
        "127.0.0.1".to_string(),
        port,
        "--connections".into(),
        connections.to_string(),
        "--count".into(),
        count.to_string(),
        "--messages-per-connection".into(),
        per.to_string(),
        "--size".into(),
        "100".into(),
        "--threads".into(),
        "2".into(),
        "--json".into(),
        "-".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = stress(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{model}: {stderr}");
    let j = json_of(&out);
    let made = connections * count / per;
    assert_eq!(j["messages"], connections * count, "{model}: {j}");
    assert_eq!(j["errors"], 0, "{model}: {j}");
    let churn = &j["churn"];
    assert_eq!(churn["messages_per_connection"], per, "{j}");
    assert_eq!(churn["connections"], made, "{model}: {j}");
    assert_eq!(churn["attempts"], made, "{model}: {j}");
    assert_eq!(churn["connect_latency_us"]["count"], made, "{j}");
    for p in ["p50", "p99", "p999"] {
        assert!(
            churn["connect_latency_us"][p].as_u64().is_some(),
            "connect_latency_us.{p}: {j}"
        );
    }
    assert!(
        churn["connections_per_s"].as_f64().is_some_and(|r| r > 0.0),
        "{j}"
    );
    assert!(churn["connect_rate"].as_f64().is_some(), "{j}");
    for kind in ["refused", "reset", "timeout", "addr_not_available", "other"] {
        assert_eq!(churn["errors"][kind], 0, "{kind}: {j}");
    }
    // The human report (on stderr with --json -) says the same.
    assert!(
        stderr.contains(&format!(
            "{per} messages per connection, {made} connections ({made} attempts) at"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("connections/s (--connect-rate"), "{stderr}");
    assert!(stderr.contains("connect p50 "), "{stderr}");
    assert!(
        stderr.contains("0 failed connections (refused 0, reset 0, timeout 0"),
        "{stderr}"
    );
    assert_eq!(served(server), made, "{model}: the server's count");
}

#[test]
fn churn_against_the_completion_model_makes_count_over_n_connections() {
    churn_against("completion", &[]);
}

#[test]
fn churn_against_the_thread_per_client_model_makes_count_over_n_connections() {
    churn_against("threaded", &[]);
}

/// Churn composes with request/response: a sequence of two requests of different lengths,
/// pipelined, over connections of three requests each; every reply framed and verified.
#[test]
fn churn_in_request_response_mode_makes_count_over_n_connections() {
    let server = Server::start("completion", &[]);
    let port = server.addr.port().to_string();
    let out = stress(&[
        "127.0.0.1",
        &port,
        "--connections",
        "4",
        "--count",
        "12",
        "--messages-per-connection",
        "3",
        "--pipeline",
        "2",
        "--request",
        r"ping\n",
        "--expect-until",
        r"\n",
        "--request",
        r"a longer request\n",
        "--expect",
        r"a longer request\n",
        "--json",
        "-",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = json_of(&out);
    assert_eq!(j["protocol"], "request-response", "{j}");
    assert_eq!(j["messages"], 48, "{j}");
    assert_eq!(j["errors"], 0, "{j}");
    assert_eq!(j["churn"]["connections"], 16, "{j}");
    assert_eq!(served(server), 16);
}

#[test]
fn churn_closing_with_a_reset_makes_the_same_connections() {
    // On Linux on the client's other backend too.
    #[cfg(unix)]
    churn_against("completion", &["--linger0", "--backend", "epoll"]);
    #[cfg(windows)]
    churn_against("completion", &["--linger0"]);
}

#[test]
fn churn_in_rate_mode_for_a_duration_reconnects_until_the_end() {
    let server = Server::start("completion", &[]);
    let port = server.addr.port().to_string();
    let out = stress(&[
        "127.0.0.1",
        &port,
        "--connections",
        "4",
        "--rate",
        "400",
        "--duration",
        "1",
        "--messages-per-connection",
        "4",
        "--connect-rate",
        "1000",
        "--json",
        "-",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = json_of(&out);
    let messages = j["messages"].as_u64().unwrap();
    let connections = j["churn"]["connections"].as_u64().unwrap();
    assert!(messages > 0, "{j}");
    // Every connection but the last of each slot had its 4 exchanges.
    assert!(
        connections >= messages / 4 && connections <= messages / 4 + 4 + 4,
        "{connections} connections for {messages} messages: {j}"
    );
    assert_eq!(served(server), connections);
}

#[test]
fn a_closed_port_counts_refused_connections() {
    // A port that was free a moment ago: nothing listens there.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let out = stress(&[
        "127.0.0.1",
        &port,
        "--connections",
        "2",
        "--count",
        "10",
        "--messages-per-connection",
        "5",
        "--threads",
        "1",
        "--json",
        "-",
    ]);
    assert_eq!(out.status.code(), Some(1), "errors make the run fail");
    let j = json_of(&out);
    // Two slots, 10 messages of 5 per connection: two attempts each, every one refused.
    assert_eq!(j["churn"]["attempts"], 4, "{j}");
    assert_eq!(j["churn"]["connections"], 0, "{j}");
    assert_eq!(j["churn"]["errors"]["refused"], 4, "{j}");
    assert_eq!(j["churn"]["errors"]["reset"], 0, "{j}");
    assert_eq!(j["errors_by_kind"]["connect_failed"], 4, "{j}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("4 failed connections (refused 4, reset 0"),
        "{stderr}"
    );
}

/// A listener that accepts every connection and closes it at once with a reset (SO_LINGER 0),
/// until dropped.
struct Resetter {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Resetter {
    fn start() -> Resetter {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        socket.set_reuse_address(true).unwrap();
        socket
            .bind(
                &"127.0.0.1:0"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            )
            .unwrap();
        socket.listen(128).unwrap();
        socket.set_nonblocking(true).unwrap();
        let port = socket.local_addr().unwrap().as_socket().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut reset = 0;
            while !flag.load(Ordering::Relaxed) {
                match socket.accept() {
                    Ok((conn, _)) => {
                        conn.set_linger(Some(Duration::ZERO)).unwrap();
                        drop(conn);
                        reset += 1;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
            reset
        });
        Resetter {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops it; returns how many connections it reset.
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Resetter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn a_server_that_resets_counts_reset_connections() {
    let server = Resetter::start();
    let port = server.port.to_string();
    let out = stress(&[
        "127.0.0.1",
        &port,
        "--connections",
        "3",
        "--count",
        "6",
        "--messages-per-connection",
        "2",
        "--threads",
        "1",
        "--timeout",
        "5",
        "--json",
        "-",
    ]);
    let reset = server.finish();
    assert_eq!(out.status.code(), Some(1), "errors make the run fail");
    let j = json_of(&out);
    // Three slots, 6 messages of 2 per connection: three connections each, all reset.
    assert_eq!(j["churn"]["attempts"], 9, "{j}");
    assert_eq!(j["churn"]["errors"]["reset"], 9, "{j}");
    assert_eq!(j["churn"]["errors"]["refused"], 0, "{j}");
    assert_eq!(j["messages"], 0, "{j}");
    // And one connection more, of stress's own: a ClientHello asking whether a server that
    // closes connections before any echo speaks TLS (reset too: it does not).
    assert_eq!(
        reset,
        9 + 1,
        "the listener reset every connection it accepted"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("reset 9"), "{stderr}");
}

#[test]
fn bad_churn_values_are_refused_in_one_line() {
    for (args, needle) in [
        (
            &["--messages-per-connection", "0"][..],
            "--messages-per-connection must be at least 1",
        ),
        (
            &["--messages-per-connection", "5", "--stream"][..],
            "cannot be used with --stream",
        ),
    ] {
        let out = stress(&[&["127.0.0.1", "9"][..], args].concat());
        assert_eq!(out.status.code(), Some(2), "{args:?}: a usage error");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
}

// `ringport bench` needs Linux (/proc figures, SIGTERM, CPU pinning).
#[cfg(target_os = "linux")]
#[test]
fn the_bench_churn_point_is_in_every_output() {
    let dir = std::env::temp_dir().join(format!("ringport-churn-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let args = [
        "bench",
        "--designs",
        "completion-epoll,threaded",
        "--connections",
        "1",
        "--size",
        "64",
        "--duration",
        "1",
        "--warmup",
        "0",
        "--repeat",
        "1",
        "--client-threads",
        "1",
    ];
    let dry = bin()
        .args(args)
        .arg("--dry-run")
        .output()
        .expect("bench --dry-run");
    let dry = String::from_utf8_lossy(&dry.stdout);
    assert!(dry.contains("\n4 runs ("), "{dry}");
    let out = bin()
        .args(args)
        .arg("--out")
        .arg(&dir)
        .output()
        .expect("run ringport bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // The progress lines count the sweep and the churn point together, as --dry-run did: the
    // churn runs were numbered [1/2] [2/2] again, and showed "server 0.00+0.00 s".
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with('[')).collect();
    let numbers: Vec<&str> = lines
        .iter()
        .map(|l| &l[..l.find(']').unwrap() + 1])
        .collect();
    assert_eq!(
        numbers,
        ["[  1/4]", "[  2/4]", "[  3/4]", "[  4/4]"],
        "{stderr}"
    );
    for line in &lines[2..] {
        assert!(line.contains("  churn  "), "{line}");
        assert!(!line.contains("server 0.00+0.00"), "{line}");
    }
    assert!(
        stdout.contains("## Churn: 10 connections, each closed and reopened after 10 round trips"),
        "{stdout}"
    );
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let j: serde_json::Value = serde_json::from_str(&read("results.json")).unwrap();
    assert_eq!(j["settings"]["churn"]["connections"], 10, "{j}");
    assert_eq!(j["settings"]["churn"]["messages_per_connection"], 10, "{j}");
    let churn = j["churn"].as_array().expect("a churn array");
    let designs: Vec<&str> = churn
        .iter()
        .map(|p| p["design"].as_str().unwrap())
        .collect();
    assert_eq!(designs, ["completion-epoll", "threaded"], "{j}");
    for p in churn {
        let m = &p["median"];
        assert!(m["connections_per_s"].as_f64().unwrap() > 0.0, "{p}");
        assert!(m["connections"].as_u64().unwrap() >= 10, "{p}");
        assert!(
            m["connect_p50_us"].as_u64().unwrap() <= m["connect_p99_us"].as_u64().unwrap(),
            "{p}"
        );
        assert_eq!(m["errors"], 0, "{p}");
        assert_eq!(p["rounds"].as_array().unwrap().len(), 1, "{p}");
    }
    assert!(read("results.md").contains("| design | conns/s | vs best | connect p50 µs |"));
    let svg = read("churn.svg");
    assert!(svg.starts_with("<svg"), "churn.svg");
    for d in designs {
        assert!(svg.contains(d), "churn.svg has no bar for {d}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn merged_segments_add_their_churn() {
    let server = Server::start("completion", &[]);
    let port = server.addr.port().to_string();
    let dir = std::env::temp_dir().join(format!("ringport-churn-merge-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let mut inputs = Vec::new();
    for i in 1..=2 {
        let (json, hlog) = (file(&format!("{i}.json")), file(&format!("{i}.hlog")));
        let segment = format!("{i}/2");
        let out = stress(&[
            "127.0.0.1",
            &port,
            "--connections",
            "4",
            "--count",
            "10",
            "--messages-per-connection",
            "5",
            "--segment",
            &segment,
            "--json",
            &json,
            "--hdr-log",
            &hlog,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        inputs.extend([json, hlog]);
    }
    let out = bin()
        .arg("merge")
        .args(&inputs)
        .args(["--json", "-"])
        .output()
        .expect("run ringport merge");
    let m = json_of(&out);
    // 4 slots of 10 messages, 5 per connection: 8 connections over the two agents.
    assert_eq!(m["churn"]["connections"], 8, "{m}");
    assert_eq!(m["churn"]["attempts"], 8, "{m}");
    assert_eq!(m["churn"]["connect_latency_us"]["count"], 8, "{m}");
    assert_eq!(m["churn"]["errors"]["refused"], 0, "{m}");
    assert_eq!(served(server), 8);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `ringport stress ARGS --json -` against `ringport serve --port 3333` inside a network
/// namespace of its own (`unshare -n`, gone when the command ends) whose ephemeral port range
/// is ten ports and which never reuses a port in `TIME_WAIT`; `None` (with a message) where a
/// namespace cannot be made, which fails under `CI=true`.
#[cfg(target_os = "linux")]
fn in_ten_port_namespace(args: &str) -> Option<Output> {
    let exe = env!("CARGO_BIN_EXE_ringport");
    let script = format!(
        "ip link set lo up && sysctl -qw net.ipv4.ip_local_port_range='40000 40009' && \
         sysctl -qw net.ipv4.tcp_tw_reuse=0 || exit 77
         {exe} serve --port 3333 --workers 1 >/dev/null 2>&1 & server=$!
         trap 'kill $server; wait $server' EXIT
         for i in $(seq 50); do {exe} send 3333 ready >/dev/null 2>&1 && break; sleep 0.1; done
         {exe} stress 127.0.0.1 3333 {args} --threads 1 --interval 0 --json -"
    );
    let out = std::process::Command::new("timeout")
        .args(["60", "unshare", "-n", "sh", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .expect("run unshare");
    if out.status.code() == Some(77) || out.stdout.is_empty() {
        let why = String::from_utf8_lossy(&out.stderr);
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "cannot make a network namespace under CI: {why}"
        );
        eprintln!("skipped: cannot make a network namespace here: {why}");
        return None;
    }
    Some(out)
}

// A network namespace (`unshare -n`): Linux only.
#[cfg(target_os = "linux")]
#[test]
fn running_out_of_ephemeral_ports_counts_eaddrnotavail_and_warns() {
    // 2 slots x 100 connections of one exchange, through 10 local ports held 60 s each.
    let args = "--connections 2 --count 100 --messages-per-connection 1 --connect-rate 1000";
    let Some(out) = in_ten_port_namespace(args) else {
        return;
    };
    assert_eq!(out.status.code(), Some(1), "errors make the run fail");
    let j = json_of(&out);
    let churn = &j["churn"];
    assert_eq!(churn["attempts"], 200, "{j}");
    assert_eq!(churn["ephemeral_ports"], 10, "{j}");
    let failed = churn["errors"]["addr_not_available"].as_u64().unwrap();
    assert!(failed > 0, "{j}");
    assert_eq!(
        churn["connections"].as_u64().unwrap() + failed,
        200,
        "every attempt connected or found no port: {j}"
    );
    let warning = j["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w.as_str())
        .find(|w| w.starts_with("ephemeral ports ran out"))
        .unwrap_or_else(|| panic!("no ephemeral-port warning: {j}"));
    assert!(
        warning.contains("EADDRNOTAVAIL") && warning.contains("--linger0"),
        "{warning}"
    );
}

// A network namespace (`unshare -n`): Linux only.
#[cfg(target_os = "linux")]
#[test]
fn closing_with_a_reset_leaves_the_ports_free() {
    // The same churn with --linger0: no TIME_WAIT, so ten ports are enough.
    let args =
        "--connections 2 --count 100 --messages-per-connection 1 --connect-rate 1000 --linger0";
    let Some(out) = in_ten_port_namespace(args) else {
        return;
    };
    let j = json_of(&out);
    assert!(out.status.success(), "{j}");
    assert_eq!(j["churn"]["connections"], 200, "{j}");
    assert_eq!(j["churn"]["errors"]["addr_not_available"], 0, "{j}");
    assert_eq!(j["churn"]["linger0"], true, "{j}");
}
