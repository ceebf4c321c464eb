//! TLS through HAProxy (mode tcp) on loopback, with `ringport stress --tls` as the client:
//!
//! - **termination**: HAProxy holds the certificate (`bind ... ssl crt`) and passes plaintext
//!   to `ringport serve`: every byte verified by the client, and the server echoed exactly
//!   what the client sent;
//! - **pass-through**: HAProxy routes the TLS bytes untouched by the client's SNI
//!   (`req.ssl_sni`) to one of two `ringport serve --tls-cert` servers, each with a
//!   certificate for its own name, so a misrouted client fails its name check; each server
//!   echoed exactly what its clients sent;
//! - **health checks**: HAProxy's plain TCP `check` and its TLS `check-ssl` against
//!   `serve --tls`: the server is up for HAProxy, no check counts as a failed handshake, and
//!   every real client is served.
//!
//! HAProxy is a Debian package that `.ci/run` installs; without it these tests are skipped
//! (and fail under `CI=true`). Linux only: HAProxy is a Linux program.
#![cfg(target_os = "linux")]

mod support;

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// A CA (`ca.pem`) and, for each name, a certificate it signed for that name (`NAME.pem`,
/// `NAME.key`, and both in `NAME.both.pem` as HAProxy's `crt` wants them).
fn make_certs(dir: &TempDir, names: &[&str]) {
    let ca = TestCa::new("ringport test CA");
    fs::write(dir.path("ca.pem"), ca.pem()).unwrap();
    for name in names {
        let (cert, key) = ca.issue(&[name]);
        fs::write(dir.path(&format!("{name}.pem")), &cert).unwrap();
        fs::write(dir.path(&format!("{name}.key")), &key).unwrap();
        fs::write(dir.path(&format!("{name}.both.pem")), cert + &key).unwrap();
    }
}

/// A running HAProxy, killed on drop.
struct Haproxy {
    child: Child,
    log: PathBuf,
    port: u16,
}

impl Haproxy {
    /// Starts `haproxy -db` with `sections` after its `global` and `defaults` (`{port}` in them
    /// is the frontend's port) and waits, at most 10 s, until it accepts. `None`: HAProxy is
    /// not installed (and `CI` is not `true`).
    fn start(dir: &TempDir, sections: &str) -> Option<Haproxy> {
        Haproxy::start_with(dir, "", sections)
    }

    /// [`Haproxy::start`] with `global` lines.
    fn start_with(dir: &TempDir, global: &str, sections: &str) -> Option<Haproxy> {
        require("haproxy")?;
        let port = free_port();
        let cfg = format!(
            "global\n    maxconn 1000\n{global}\n\
             defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 30s\n    \
             timeout server 30s\n\n{}",
            sections.replace("{port}", &port.to_string())
        );
        let path = dir.0.join("haproxy.cfg");
        fs::write(&path, cfg).unwrap();
        let log = dir.0.join("haproxy.log");
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn haproxy");
        let mut h = Haproxy { child, log, port };
        let log = h.log.clone();
        wait_accepting(
            port,
            Duration::from_secs(10),
            "haproxy",
            &mut h.child,
            || fs::read_to_string(&log).unwrap_or_default(),
        );
        Some(h)
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `ringport stress 127.0.0.1 PORT --tls ARGS` through the proxy, which must pass: its JSON.
    #[track_caller]
    fn passes(&self, args: &[&str]) -> serde_json::Value {
        let port = self.port.to_string();
        let mut all = vec![
            "127.0.0.1",
            &port,
            "--tls",
            "--json",
            "-",
            "--timeout",
            "10",
        ];
        all.extend_from_slice(args);
        stress_passes(&all, "haproxy", || self.log())
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Stops `server` gracefully: its summary's `tls:` line (empty for a plaintext server) and
/// (connections served, bytes echoed, bytes received).
#[track_caller]
fn stop(mut server: Server) -> (String, (u64, u64, u64)) {
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{}", server.stderr());
    // The summary is read from the pipe by another thread: wait for it.
    server.eventually(Duration::from_secs(5), "the summary", |s| {
        s.stdout().contains("pool:")
    });
    let line = server
        .stdout()
        .lines()
        .find(|l| l.trim_start().starts_with("tls:"))
        .unwrap_or_default()
        .trim()
        .to_string();
    (line, server.summary_counts())
}

#[test]
fn haproxy_terminates_tls_in_front_of_a_plaintext_server() {
    let dir = TempDir::new("tls-haproxy-terminate");
    make_certs(&dir, &["localhost"]);
    let server = Server::start("completion", &[]);
    assert!(!server.ready.tls);
    let sections = format!(
        "frontend tls_in\n    bind 127.0.0.1:{{port}} ssl crt {}\n    default_backend echo\n\n\
         backend echo\n    server s1 {}\n",
        dir.arg("localhost.both.pem"),
        server.addr
    );
    let Some(proxy) = Haproxy::start(&dir, &sections) else {
        return;
    };
    let ca = dir.arg("ca.pem");
    let mut sent = 0;
    for version in ["1.3", "1.2"] {
        let j = proxy.passes(&[
            "--tls-ca",
            &ca,
            "--sni",
            "localhost",
            "--tls-version",
            version,
            "--connections",
            "4",
            "--count",
            "100",
            "--size",
            "3000",
            "--pipeline",
            "4",
        ]);
        assert_eq!(j["messages"], 400, "{j}");
        assert_eq!(j["bytes"], 400 * 3000, "{j}");
        assert_eq!(j["tls"]["handshakes"], 4, "{j}");
        sent += 400 * 3000;
    }
    // Messages larger than a record, and churn: a handshake with HAProxy per connection.
    let j = proxy.passes(&[
        "--tls-ca",
        &ca,
        "--sni",
        "localhost",
        "--connections",
        "2",
        "--count",
        "20",
        "--size",
        "70000",
        "--messages-per-connection",
        "5",
        "--tls-resume",
    ]);
    assert_eq!(j["bytes"], 40 * 70000, "{j}");
    assert_eq!(j["tls"]["handshakes"], 8, "{j}");
    sent += 40 * 70000;
    drop(proxy);
    let (line, (_, echoed, received)) = stop(server);
    assert!(line.is_empty(), "plaintext behind the proxy: {line}");
    assert_eq!(received, sent, "the server received what the clients sent");
    assert_eq!(echoed, sent, "and echoed it");
}

#[test]
fn haproxy_passes_tls_through_by_sni_to_two_servers() {
    let dir = TempDir::new("tls-haproxy-passthrough");
    make_certs(&dir, &["a.example", "b.example"]);
    let serve = |name: &str| {
        let (cert, key) = (
            dir.arg(&format!("{name}.pem")),
            dir.arg(&format!("{name}.key")),
        );
        let server = Server::start("completion", &["--tls-cert", &cert, "--tls-key", &key]);
        assert!(server.ready.tls);
        server
    };
    let (a, b) = (serve("a.example"), serve("b.example"));
    let sections = format!(
        "frontend tls_in\n    bind 127.0.0.1:{{port}}\n    tcp-request inspect-delay 5s\n    \
         tcp-request content accept if {{ req.ssl_hello_type 1 }}\n    \
         use_backend a if {{ req.ssl_sni -i a.example }}\n    \
         use_backend b if {{ req.ssl_sni -i b.example }}\n\n\
         backend a\n    server a {}\n\n\
         backend b\n    server b {}\n",
        a.addr, b.addr
    );
    let Some(proxy) = Haproxy::start(&dir, &sections) else {
        return;
    };
    let ca = dir.arg("ca.pem");
    // Each name reaches the server whose certificate is for that name (a misrouted client
    // would fail its name check), at both versions; the counts show who served whom.
    let run = |name: &str, version: &str, size: usize| {
        let size = size.to_string();
        let j = proxy.passes(&[
            "--tls-ca",
            &ca,
            "--sni",
            name,
            "--tls-version",
            version,
            "--connections",
            "3",
            "--count",
            "50",
            "--size",
            &size,
        ]);
        assert_eq!(j["messages"], 150, "{j}");
        assert_eq!(j["tls"]["handshakes"], 3, "{j}");
    };
    run("a.example", "1.3", 1000);
    run("a.example", "1.2", 1000);
    run("b.example", "1.3", 20000);
    // SNI that no rule routes: HAProxy has no backend for it and closes the connection.
    let port = proxy.port.to_string();
    let out = stress(&[
        "127.0.0.1",
        &port,
        "--tls",
        "--tls-ca",
        &ca,
        "--sni",
        "c.example",
        "--connections",
        "1",
        "--count",
        "1",
        "--timeout",
        "5",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    drop(proxy);
    // Each run's certificate check is one more connection and handshake on its server.
    let (line_a, (served_a, echoed_a, _)) = stop(a);
    let (line_b, (served_b, echoed_b, _)) = stop(b);
    assert_eq!(echoed_a, 2 * 150 * 1000, "{line_a}");
    assert_eq!(echoed_b, 150 * 20000, "{line_b}");
    assert_eq!(served_a, 2 * (3 + 1), "{line_a}");
    assert_eq!(served_b, 3 + 1, "{line_b}");
    assert!(
        line_a.contains("8 handshakes (TLS 1.3 4, TLS 1.2 4)"),
        "{line_a}"
    );
    assert!(
        line_b.contains("4 handshakes (TLS 1.3 4, TLS 1.2 0)"),
        "{line_b}"
    );
    assert!(line_a.ends_with("none failed"), "{line_a}");
    assert!(line_b.ends_with("none failed"), "{line_b}");
}

/// What HAProxy's stats socket says of server `s1`: (check status, e.g. `UP` or `DOWN`, and its
/// last check's result, e.g. `L4OK`, `L6OK`).
fn check_status(dir: &TempDir) -> (String, String) {
    haproxy_stats(&dir.path("admin.sock"))
        .into_iter()
        .find(|r| r["pxname"] == "echo" && r["svname"] == "s1")
        .map(|r| (r["status"].clone(), r["check_status"].clone()))
        .unwrap_or_default()
}

/// HAProxy's health checks of a `serve --tls` backend, a plain TCP `check` and a TLS one
/// (`check-ssl`): the server is up for HAProxy either way and every real client is served. A
/// plain check is HAProxy's connect and reset before the connection is accepted (the server
/// sees none of them, so none counts as a failed handshake); a TLS check is a real handshake,
/// counted as one (but the one HAProxy is stopped in the middle of: `truncated`).
#[test]
fn haproxy_health_checks_of_a_tls_server_leave_it_up_and_clients_served() {
    for (check, check_result) in [("check", "L4OK"), ("check check-ssl verify none", "L6OK")] {
        let dir = TempDir::new("tls-haproxy-check");
        let cert = dir.arg("cert.pem");
        let server = Server::start(
            "completion",
            &["--tls-self-signed", "--tls-cert-out", &cert],
        );
        let sections = format!(
            "frontend tls_in\n    bind 127.0.0.1:{{port}}\n    default_backend echo\n\n\
             backend echo\n    server s1 {} {check} inter 100ms rise 1\n",
            server.addr
        );
        let socket = format!(
            "    stats socket {} mode 600 level admin\n",
            dir.arg("admin.sock")
        );
        let Some(proxy) = Haproxy::start_with(&dir, &socket, &sections) else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, result) = check_status(&dir);
            if status == "UP" && result == check_result {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{check}: s1 is {status:?} ({result:?}), not UP ({check_result}) within 10 s: {}",
                proxy.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let j = proxy.passes(&[
            "--tls-ca",
            &cert,
            "--connections",
            "4",
            "--count",
            "200",
            "--size",
            "500",
        ]);
        assert_eq!(j["messages"], 800, "{j}");
        assert_eq!(j["tls"]["handshakes"], 4, "{j}");
        // More checks after the load.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(check_status(&dir).0, "UP", "{check}");
        drop(proxy);
        let (line, (_, echoed, _)) = stop(server);
        assert_eq!(echoed, 800 * 500, "{check}: {line}");
        let handshakes: u64 = line
            .strip_prefix("tls: ")
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a handshake count: {line}"));
        if check_result == "L4OK" {
            // The 4 clients and the run's certificate check.
            assert_eq!(handshakes, 5, "{check}: {line}");
            assert!(line.ends_with("none failed"), "{check}: {line}");
        } else {
            // A TLS check cut short (HAProxy stopped in the middle of one) is the only failure.
            let cut = line.rsplit_once("failed: truncated ").map(|(_, n)| n);
            assert!(
                line.ends_with("none failed") || cut.is_some_and(|n| n == "1"),
                "{check}: {line}"
            );
            assert!(
                handshakes >= 5 + 3,
                "{check}: HAProxy checked every 100 ms: {line}"
            );
        }
    }
}
