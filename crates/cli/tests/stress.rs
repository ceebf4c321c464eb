//! `ringport stress` end to end: the real binary against the real server, on both backends, and
//! against a broken echo server.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Output, Stdio};

use support::*;

fn stress(args: &[&str]) -> Output {
    bin()
        .arg("stress")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ringport stress")
}

fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Runs a verified load on each client backend against each server model.
macro_rules! for_each_client_backend {
    ($(fn $name:ident($backend:ident: &str) $body:block)*) => {$(
        mod $name {
            use super::*;
            fn body($backend: &str) $body
            #[test]
            fn uring() { body("uring") }
            #[test]
            fn epoll() { body("epoll") }
        }
    )*};
}

for_each_client_backend! {
    fn exact_counts_and_json_keys(backend: &str) {
        for model in ["completion", "completion-epoll", "threaded"] {
            let server = Server::start(model, &[]);
            let port = server.addr.port().to_string();
            let out = stress(&[
                "127.0.0.1", &port, "--connections", "20", "--count", "50", "--size", "300",
                "--threads", "2", "--backend", backend, "--json", "-",
            ]);
            assert!(out.status.success(), "{model}: {}", String::from_utf8_lossy(&out.stderr));
            let j = json_of(&out);
            assert_eq!(j["connections"], 20, "{model}: {j}");
            assert_eq!(j["messages"], 20 * 50, "{model}: {j}");
            assert_eq!(j["bytes"], 20 * 50 * 300, "{model}: {j}");
            assert_eq!(j["errors"], 0, "{model}: {j}");
            for key in ["duration_s", "msgs_per_s"] {
                assert!(j[key].as_f64().is_some_and(|v| v > 0.0), "{key}: {j}");
            }
            for p in ["p50", "p90", "p99", "p999", "max"] {
                assert!(j["latency_us"][p].as_u64().is_some(), "latency_us.{p}: {j}");
            }
            assert!(j.get("errors_by_kind").is_some(), "{j}");
            // The human report went to stderr, so stdout stayed pure JSON.
            assert!(String::from_utf8_lossy(&out.stderr).contains("verified"));
        }
    }

    fn pipelined_text_messages_verify(backend: &str) {
        let server = Server::start("completion", &[]);
        let port = server.addr.port().to_string();
        let out = stress(&[
            &port, "--connections", "8", "--count", "200", "--pipeline", "8",
            "--message", "hello\tworld, ünïcode", "--backend", backend, "--json", "-",
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let j = json_of(&out);
        assert_eq!(j["messages"], 8 * 200, "{j}");
        assert_eq!(j["errors"], 0, "{j}");
    }
}

/// An "echo" server that flips one bit in its 1000th byte on every connection.
fn bit_flipping_server() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let srv = l.try_clone().unwrap();
    std::thread::spawn(move || {
        for s in srv.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut seen = 0usize;
                loop {
                    let n = match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if seen <= 999 && 999 < seen + n {
                        buf[999 - seen] ^= 0x10;
                    }
                    seen += n;
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (l, port)
}

#[test]
fn a_wrong_echo_is_reported_with_its_offset_and_exit_code_1() {
    let (_l, port) = bit_flipping_server();
    let out = stress(&[
        &port.to_string(),
        "--connections",
        "2",
        "--count",
        "20",
        "--size",
        "100",
        "--json",
        "-",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = json_of(&out);
    assert!(j["errors"].as_u64().unwrap() >= 1, "{j}");
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(
        report.contains("999"),
        "the report names the byte offset: {report}"
    );
}

#[test]
fn no_server_means_connect_failures_and_exit_code_1() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = stress(&[
        &port.to_string(),
        "--connections",
        "3",
        "--count",
        "1",
        "--timeout",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn bad_flags_are_one_line_errors() {
    for args in [
        &["--count", "5", "--duration", "1"][..],
        &["--size", "0"],
        &["--pipeline", "0"],
        &["--connections", "0"],
        &["--backend", "kqueue"],
        &["notaport", "7"],
    ] {
        let out = stress(args);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(!out.stderr.is_empty(), "{args:?} must say why");
    }
}

#[test]
fn without_a_terminal_defaults_are_used_and_stdin_is_never_read() {
    let server = Server::start("completion", &[]);
    // stdin is /dev/null: the article's questions must not be asked.
    let out = stress(&[
        &server.addr.port().to_string(),
        "--connections",
        "2",
        "--json",
        "-",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = json_of(&out);
    assert_eq!(
        j["messages"],
        2 * 1000,
        "default count is 1000 per connection: {j}"
    );
}

#[test]
fn hdr_log_is_written() {
    let server = Server::start("completion", &[]);
    let dir = std::env::temp_dir().join(format!("ringport-hdr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("run.hlog");
    let out = stress(&[
        &server.addr.port().to_string(),
        "--connections",
        "4",
        "--count",
        "100",
        "--hdr-log",
        path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(&path).unwrap();
    assert!(
        log.contains("#[StartTime:") || log.contains("StartTime"),
        "{log}"
    );
    assert!(
        log.lines().any(|l| !l.starts_with('#') && l.contains(",")),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
