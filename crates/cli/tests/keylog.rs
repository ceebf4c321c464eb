//! `SSLKEYLOGFILE`: `serve`, `stress` and `send` over TLS append every handshake's secrets to
//! the file it names, in the format OpenSSL's `-keylogfile` writes (and Wireshark reads): the
//! lines `openssl s_client` logs for a connection to `serve` are in the server's file, at TLS
//! 1.3 and 1.2, on every model; a `stress` run and a `send` log the very lines the server does;
//! a file that cannot be opened is refused before anything starts, in one line, exit code 2.
//!
//! `openssl` is a Debian package that `.ci/run` installs; without it the OpenSSL test is
//! skipped (and fails under `CI=true`).
#![cfg(unix)]

mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// The secret lines of a key log (comments and blank lines left out).
fn lines_of(path: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// The labels of `lines`.
fn labels(lines: &BTreeSet<String>) -> BTreeSet<&str> {
    lines.iter().map(|l| l.split(' ').next().unwrap()).collect()
}

/// Every line is `LABEL HEX HEX`, the client random 32 bytes.
#[track_caller]
fn well_formed(lines: &BTreeSet<String>) {
    for l in lines {
        let parts: Vec<&str> = l.split(' ').collect();
        assert_eq!(parts.len(), 3, "{l}");
        assert_eq!(parts[1].len(), 64, "the client random is 32 bytes: {l}");
        for hex in &parts[1..] {
            assert!(
                hex.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "lowercase hex: {l}"
            );
        }
    }
}

/// The labels of a TLS 1.3 handshake.
const TLS13: [&str; 5] = [
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    "CLIENT_TRAFFIC_SECRET_0",
    "EXPORTER_SECRET",
    "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    "SERVER_TRAFFIC_SECRET_0",
];

for_each_model! {
    fn the_server_logs_what_openssl_logs_at_tls_1_3_and_1_2(model: &str) {
        let found = Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success());
        if !found {
            skip_missing("openssl", "apt-get install openssl");
            return;
        }
        let dir = TempDir::new(&format!("keylog-openssl-{model}"));
        let server_log = dir.path("server.keys");
        let cert = dir.arg("cert.pem");
        let mut cmd = bin();
        cmd.args(["serve", "--port", "0", "--workers", "2"])
            .args(model_args(model))
            .args(["--tls-self-signed", "--tls-cert-out", &cert])
            .env("SSLKEYLOGFILE", &server_log);
        let mut server = Server::spawn(cmd);
        let mode = std::fs::metadata(&server_log).expect("the server created its key log").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "readable by its owner alone");
        let mut seen = BTreeSet::new();
        for (flag, want) in [("-tls1_3", TLS13.to_vec()), ("-tls1_2", vec!["CLIENT_RANDOM"])] {
            let theirs_path = dir.path(&format!("openssl{flag}.keys"));
            let mut client = Command::new("openssl")
                .args(["s_client", "-quiet", "-no_ign_eof", flag, "-verify_return_error"])
                .args(["-connect", &server.addr.to_string(), "-CAfile", &cert, "-keylogfile"])
                .arg(&theirs_path)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start openssl s_client");
            client.stdin.take().unwrap().write_all(b"hello\n").unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            let status = loop {
                if let Some(status) = client.try_wait().unwrap() {
                    break status;
                }
                assert!(Instant::now() < deadline, "openssl s_client did not end within 10 s");
                std::thread::sleep(Duration::from_millis(20));
            };
            assert!(status.success(), "{model} {flag}: s_client failed");
            let theirs = lines_of(&theirs_path);
            assert_eq!(labels(&theirs), want.iter().copied().collect(), "{model} {flag}: {theirs:?}");
            // The server may write its lines a moment after the client has them.
            server.eventually(Duration::from_secs(5), "the server's key log", |_| {
                lines_of(&server_log).is_superset(&theirs)
            });
            well_formed(&theirs);
            seen.extend(theirs);
        }
        server.signal("TERM");
        assert!(server.wait_exit(Duration::from_secs(10)).success(), "{}", server.stderr());
        assert_eq!(lines_of(&server_log), seen, "{model}: nothing but those two handshakes");
    }
}

/// A `stress` run and a `send` log the same secrets as the server they talk to: the server's
/// lines are exactly the clients' (the completion model's server, whose connections protect
/// their records themselves after the handshake).
#[test]
fn stress_and_send_log_the_lines_the_server_logs() {
    let dir = TempDir::new("keylog-clients");
    let server_log = dir.path("server.keys");
    let client_log = dir.path("client.keys");
    let cert = dir.arg("cert.pem");
    let mut cmd = bin();
    cmd.args(["serve", "--port", "0", "--workers", "2"])
        .args(["--tls-self-signed", "--tls-cert-out", &cert])
        .env("SSLKEYLOGFILE", &server_log);
    let mut server = Server::spawn(cmd);
    let port = server.addr.port().to_string();
    // A client run with the key log, which must pass.
    let passes = |args: &[&str]| {
        let out = bin()
            .args(args)
            .env("SSLKEYLOGFILE", &client_log)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    passes(&[
        "stress",
        "127.0.0.1",
        &port,
        "--tls",
        "--tls-ca",
        &cert,
        "--connections",
        "3",
    ]);
    let after_stress = lines_of(&client_log);
    let handshakes = |lines: &BTreeSet<String>| {
        lines
            .iter()
            .filter(|l| l.starts_with("CLIENT_TRAFFIC_SECRET_0 "))
            .count()
    };
    assert!(
        handshakes(&after_stress) >= 3,
        "one per connection: {after_stress:?}"
    );
    passes(&[
        "send",
        "127.0.0.1",
        &port,
        "hello",
        "--tls",
        "--tls-ca",
        &cert,
    ]);
    let clients = lines_of(&client_log);
    assert_eq!(
        handshakes(&clients),
        handshakes(&after_stress) + 1,
        "send appended its own"
    );
    well_formed(&clients);
    assert_eq!(labels(&clients), TLS13.iter().copied().collect());
    server.eventually(Duration::from_secs(5), "the server's key log", |_| {
        lines_of(&server_log) == clients
    });
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(10)).success());
}

/// A key log that cannot be opened stops each command before it starts: one line naming the
/// variable and the path, exit code 2.
#[test]
fn a_key_log_that_cannot_be_opened_is_a_usage_error() {
    let missing = "/nonexistent-ringport-dir/keys.log";
    let runs: [&[&str]; 3] = [
        &["serve", "--port", "0", "--tls-self-signed"],
        &["stress", "127.0.0.1", "9", "--tls", "--count", "1"],
        &["send", "127.0.0.1", "9", "hi", "--tls"],
    ];
    for args in runs {
        let out = bin()
            .args(args)
            .env("SSLKEYLOGFILE", missing)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains(&format!("SSLKEYLOGFILE={missing}: cannot open it")),
            "{args:?}: {err}"
        );
    }
    // Unset or empty: no key log, nothing refused.
    let out = bin()
        .args(["send", "127.0.0.1", "9", "hi", "--tls", "--timeout", "2"])
        .env("SSLKEYLOGFILE", "")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("SSLKEYLOGFILE"));
}
