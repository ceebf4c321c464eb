//! `--metrics ADDR` of `serve` and `stress`, read directly over HTTP: the server's counters
//! after a load equal its summary and the load's report (every model), the UDP echo's counters
//! are exactly the datagrams sent to it (echoed, truncated, denied), the load's endpoint answers
//! while it runs (with `--udp`, its datagrams echoed), other paths are refused, and bad
//! addresses are one-line errors.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{bin, Server};

/// `GET path` over HTTP/1.0; the status line's code, the head and the body, or `None` when
/// nothing answers.
fn get(addr: SocketAddr, path: &str) -> Option<(u16, String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, head.to_string(), body.to_string()))
}

/// The value of the sample `name` (with its labels, as written) in a scrape.
fn sample(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The address of a `metrics on http://ADDR/metrics` line in `text`.
fn metrics_addr(text: &str) -> Option<SocketAddr> {
    text.lines()
        .find_map(|l| l.strip_prefix("metrics on http://"))?
        .strip_suffix("/metrics")?
        .parse()
        .ok()
}

/// A server started with `--metrics 127.0.0.1:0`, and where its metrics are.
#[track_caller]
fn server_with_metrics(model: &str) -> (Server, SocketAddr) {
    let server = Server::start(model, &["--metrics", "127.0.0.1:0"]);
    server.eventually(Duration::from_secs(10), "the metrics line", |s| {
        metrics_addr(&s.stdout()).is_some()
    });
    let addr = metrics_addr(&server.stdout()).unwrap();
    (server, addr)
}

for_each_model! {
    fn the_server_metrics_equal_its_summary_and_the_load(model: &str) {
        let (mut server, metrics) = server_with_metrics(model);
        let out = bin()
            .args(["stress", "127.0.0.1", &server.addr.port().to_string()])
            .args(["--connections", "3", "--count", "50", "--size", "200", "--interval", "0"])
            .args(["--threads", "1"])
            .stdin(Stdio::null())
            .output()
            .expect("run stress");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let bytes = 3 * 50 * 200;
        // The workers publish their counters once a second.
        let text = scrape_until(metrics, "the counters never reached the load's", |text| {
            sample(text, "ringport_bytes_sent_total") == Some(bytes)
                && sample(text, "ringport_connections_open") == Some(0)
        });
        assert_eq!(sample(&text, "ringport_connections_accepted_total"), Some(3), "{text}");
        assert_eq!(sample(&text, "ringport_connections_closed_total"), Some(3), "{text}");
        assert_eq!(sample(&text, "ringport_bytes_received_total"), Some(bytes), "{text}");
        assert_eq!(
            sample(&text, "ringport_connections_refused_total{reason=\"max_per_ip\"}"),
            Some(0),
            "{text}"
        );
        let backend = match model {
            "completion" if cfg!(windows) => "iocp",
            "completion" => "io_uring",
            "completion-epoll" => "epoll",
            _ => "blocking",
        };
        let name = if model.starts_with("completion") { "completion" } else { model };
        assert!(
            text.contains(&format!("model=\"{name}\",backend=\"{backend}\"")),
            "{text}"
        );
        if name == "completion" {
            assert!(
                sample(&text, "ringport_worker_loop_iterations_total{worker=\"1\"}")
                    .is_some_and(|n| n > 0),
                "two workers, each counted: {text}"
            );
            assert!(sample(&text, "ringport_pool_buffers{worker=\"0\"}").is_some_and(|n| n > 0));
        }
        // The summary agrees.
        server.signal("TERM");
        assert!(server.wait_exit(Duration::from_secs(10)).success());
        let (served, echoed, received) = server.summary_counts();
        assert_eq!((served, echoed, received), (3, bytes, bytes));
    }
}

#[test]
fn the_udp_echo_counts_each_datagram_sent_to_it() {
    let client = || {
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c
    };
    let denied = client();
    let denied_port = denied.local_addr().unwrap().port().to_string();
    let mut cmd = bin();
    cmd.args([
        "serve",
        "--port",
        "0",
        "--udp-only",
        "--udp-buffer-size",
        "512",
    ])
    .args(["--udp-deny-port", &denied_port, "--metrics", "127.0.0.1:0"]);
    let server = Server::spawn(cmd);
    server.eventually(Duration::from_secs(10), "the metrics line", |s| {
        metrics_addr(&s.stdout()).is_some()
    });
    let metrics = metrics_addr(&server.stdout()).unwrap();
    let (_, _, text) = get(metrics, "/metrics").expect("an answer");
    assert_eq!(
        sample(&text, "ringport_udp_datagrams_received_total"),
        Some(0),
        "present from the start: {text}"
    );
    // Not echoed: two from the denied port (50 bytes each), one longer than the buffer. They
    // reach the echo's one socket before the datagrams echoed below, so once the last echo is
    // back every datagram has been judged.
    denied.send_to(&[1; 50], server.addr).unwrap();
    denied.send_to(&[2; 50], server.addr).unwrap();
    let c = client();
    c.send_to(&[3; 600], server.addr).unwrap();
    let mut back = [0u8; 1024];
    for i in 0..5u8 {
        c.send_to(&[i; 100], server.addr).unwrap();
        let (n, from) = c.recv_from(&mut back).expect("an echo");
        assert_eq!((n, from, back[0]), (100, server.addr, i));
    }
    // The echo publishes its counters once a second.
    let text = scrape_until(
        metrics,
        "the counters never reached the datagrams sent",
        |text| {
            sample(text, "ringport_udp_datagrams_received_total") == Some(8)
                && sample(text, "ringport_udp_datagrams_echoed_total") == Some(5)
        },
    );
    let dropped = |reason: &str| {
        sample(
            &text,
            &format!("ringport_udp_datagrams_dropped_total{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(dropped("truncated"), Some(1), "{text}");
    assert_eq!(dropped("denied_port"), Some(2), "{text}");
    for reason in ["rate_limited", "table_full", "no_sender", "send_error"] {
        assert_eq!(dropped(reason), Some(0), "{reason}: {text}");
    }
    // A truncated datagram's bytes are not known; a denied one's are.
    assert_eq!(
        sample(&text, "ringport_udp_bytes_received_total"),
        Some(600),
        "{text}"
    );
    assert_eq!(
        sample(&text, "ringport_udp_bytes_sent_total"),
        Some(500),
        "{text}"
    );
    assert_eq!(
        sample(&text, "ringport_udp_receive_errors_total"),
        Some(0),
        "{text}"
    );
    denied.set_nonblocking(true).unwrap();
    assert!(
        denied.recv(&mut back).is_err(),
        "nothing echoed to the denied port"
    );
}

#[test]
fn a_tcp_server_has_no_udp_metrics() {
    let (_server, metrics) = server_with_metrics("completion");
    let (_, _, text) = get(metrics, "/metrics").unwrap();
    assert!(
        text.contains("ringport_connections_accepted_total 0\n"),
        "{text}"
    );
    assert!(!text.contains("ringport_udp_"), "{text}");
}

#[test]
fn other_paths_are_not_found_and_the_root_names_the_metrics() {
    let (_server, metrics) = server_with_metrics("completion");
    let (status, _, _) = get(metrics, "/nothing").unwrap();
    assert_eq!(status, 404);
    let (status, _, body) = get(metrics, "/").unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("/metrics"), "{body}");
}

/// `ringport stress 127.0.0.1 PORT` with `args` and `--metrics 127.0.0.1:0`, running; its
/// standard error (read up to the metrics line) and where its metrics are.
fn load_with_metrics(
    port: u16,
    args: &[&str],
) -> (
    std::process::Child,
    std::io::BufReader<std::process::ChildStderr>,
    SocketAddr,
) {
    let mut load = bin()
        .args(["stress", "127.0.0.1", &port.to_string()])
        .args(args)
        .args(["--metrics", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run stress");
    let mut stderr = std::io::BufReader::new(load.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        let n = std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
        assert!(n > 0, "stress ended without a metrics line");
        if let Some(addr) = metrics_addr(&line) {
            break addr;
        }
    };
    (load, stderr, addr)
}

/// A paced load for the scrape tests: two connections, 100 messages a second, for 3 s.
const PACED: [&str; 10] = [
    "--connections",
    "2",
    "--rate",
    "100",
    "--duration",
    "3",
    "--interval",
    "0",
    "--threads",
    "1",
];

/// Scrapes the metrics at `addr` (a server's or a load's) until `ready` holds of them (within
/// 10 s, or fails saying `what` with the last text); every answer is OpenMetrics text.
fn scrape_until(addr: SocketAddr, what: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, head, text) = get(addr, "/metrics").expect("an answer");
        assert_eq!(status, 200);
        assert!(head.contains("application/openmetrics-text"), "{head}");
        if ready(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{what}:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_load_answers_while_it_runs() {
    let server = Server::start("completion", &[]);
    let (mut load, mut stderr, addr) = load_with_metrics(server.addr.port(), &PACED);
    // The latency histogram is published about every 50 ms, the counts once per loop turn:
    // wait for both (a slow machine may scrape between them).
    let text = scrape_until(addr, "never measuring", |text| {
        sample(text, "ringport_stress_phase{phase=\"measuring\"}") == Some(1)
            && sample(text, "ringport_stress_messages_verified_total").is_some_and(|n| n > 0)
            && sample(text, "ringport_stress_latency_seconds_count").is_some_and(|n| n > 0)
    });
    assert_eq!(
        sample(&text, "ringport_stress_connections_open"),
        Some(2),
        "{text}"
    );
    assert_eq!(
        sample(&text, "ringport_stress_connections_established_total"),
        Some(2)
    );
    assert_eq!(
        sample(&text, "ringport_stress_errors_total{kind=\"mismatch\"}"),
        Some(0)
    );
    assert!(
        text.contains("ringport_stress_target_messages_per_second 100"),
        "{text}"
    );
    assert!(text.contains("workload=\"rate\""), "{text}");
    assert!(!text.contains("datagrams"), "a TCP load: {text}");
    let sent = sample(&text, "ringport_stress_messages_sent_total").unwrap();
    let verified = sample(&text, "ringport_stress_messages_verified_total").unwrap();
    assert!(sent >= verified, "{sent} sent, {verified} verified");
    let count = sample(&text, "ringport_stress_latency_seconds_count").unwrap();
    assert!(count > 0, "{text}");
    assert_eq!(
        sample(&text, "ringport_stress_latency_seconds_bucket{le=\"+Inf\"}"),
        Some(count)
    );
    // Drain the rest of its standard error, so it never blocks on a full pipe.
    let mut rest = String::new();
    let _ = stderr.read_to_string(&mut rest);
    assert!(load.wait().unwrap().success(), "{rest}");
}

#[test]
fn a_udp_load_counts_its_datagrams_echoed() {
    let mut cmd = bin();
    cmd.args(["serve", "--port", "0", "--udp-only"]);
    let server = Server::spawn(cmd);
    let (mut load, mut stderr, addr) =
        load_with_metrics(server.addr.port(), &[&["--udp"][..], &PACED].concat());
    let text = scrape_until(addr, "no datagram echoed", |text| {
        sample(text, "ringport_stress_datagrams_echoed_total").is_some_and(|n| n > 0)
    });
    assert!(
        sample(&text, "ringport_stress_datagrams_lost_total").is_some(),
        "{text}"
    );
    let mut rest = String::new();
    let _ = stderr.read_to_string(&mut rest);
    assert!(load.wait().unwrap().success(), "{rest}");
}

#[test]
fn a_taken_or_malformed_address_is_a_one_line_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = bin()
        .args(["serve", "--port", "0", "--metrics", &addr])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot serve --metrics on {addr}")),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));

    for args in [
        vec!["serve", "--metrics", "localhost"],
        vec!["stress", "--metrics", "1.2.3.4", "--count", "1"],
    ] {
        let out = bin().args(&args).stdin(Stdio::null()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("IP:PORT"), "{err}");
    }
    let out = bin()
        .args([
            "stress",
            "--find-max-rate",
            "--p99",
            "1ms",
            "--metrics",
            "9999",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--metrics does not apply to --find-max-rate"),
        "{err}"
    );
}
