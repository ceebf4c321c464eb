//! TLS with ringport on both ends, on every platform (IOCP under Wine too): `ringport serve
//! --tls-self-signed --tls-cert-out F` and `ringport stress --tls --tls-ca F` / `ringport send
//! --tls`. Echoes are byte-exact at TLS 1.2 and 1.3, in ping-pong and in streams, and the
//! server's byte counts equal the client's; the name is checked (`--sni`); sessions resume
//! under churn with `--tls-resume` (and not without it); a certificate the client does not
//! trust stops the run before any load; a plaintext client is counted by the server as a failed
//! handshake of cause `plaintext`, and stops at its first connection, as a TLS client of a
//! plaintext server does (servers that answer otherwise are stood in for by the test); with `serve --tls-client-ca` (mutual TLS) only clients with
//! a certificate of that CA (`--tls-cert`, `--tls-key`) are served.
//!
//! The other TLS tests start Debian programs (openssl, socat, nginx, redis, haproxy) and so run
//! on Linux only; these need nothing but the binary under test.

mod support;

use std::time::Duration;

use support::*;

/// `ringport serve` on `model` with a self-signed certificate written to `cert`.
fn tls_server(model: &str, cert: &str) -> Server {
    let server = Server::start(model, &["--tls-self-signed", "--tls-cert-out", cert]);
    assert!(
        server.ready.tls,
        "the ready line says tls: {:?}",
        server.ready
    );
    server
}

/// `ringport stress` against `server` over TLS with `args`, which must pass: its JSON.
#[track_caller]
fn passes(server: &Server, args: &[&str]) -> serde_json::Value {
    let port = server.addr.port().to_string();
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
    stress_passes(&all, "server", || server.stderr())
}

/// Stops `server` gracefully and returns its summary's `tls:` line and (connections served,
/// bytes echoed, bytes received).
#[track_caller]
fn stop(mut server: Server) -> (String, (u64, u64, u64)) {
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{}", server.stderr());
    // The summary is read from the pipe by another thread: wait for it.
    server.eventually(Duration::from_secs(5), "the summary's tls line", |s| {
        s.stdout()
            .lines()
            .any(|l| l.trim_start().starts_with("tls:"))
    });
    let out = server.stdout();
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("tls:"))
        .unwrap_or_else(|| panic!("no tls line in the summary: {out}"))
        .trim()
        .to_string();
    (line, server.summary_counts())
}

/// The models that serve several connections at once (`single` serves one at a time).
const CONCURRENT: &[&str] = &["completion", "completion-epoll", "threaded"];

/// Ping-pong at TLS 1.3 and 1.2 and a stream, every byte checked by the client; the server
/// echoed exactly what the ping-pong runs sent, and at least what the stream's client counted
/// (the stream's last chunks in flight are echoed after the client stops counting). Each run
/// starts with one handshake of its own, which checks the certificate before any load: the
/// server counts one connection and one handshake more per run.
#[test]
fn ping_pong_and_streams_are_byte_exact_and_counted_alike() {
    for model in models(CONCURRENT) {
        let dir = TempDir::new(&format!("tls-self-echo-{model}"));
        let cert = dir.arg("cert.pem");
        let server = tls_server(model, &cert);
        let mut sent = 0;
        for (version, name) in [("1.3", "TLSv1.3"), ("1.2", "TLSv1.2")] {
            let j = passes(
                &server,
                &[
                    "--tls-ca",
                    &cert,
                    "--tls-version",
                    version,
                    "--connections",
                    "4",
                    "--count",
                    "50",
                    "--size",
                    "3000",
                    "--pipeline",
                    "4",
                ],
            );
            assert_eq!(j["messages"], 200, "{j}");
            assert_eq!(j["bytes"], 200 * 3000, "{j}");
            assert_eq!(j["tls"]["version"], name, "{j}");
            assert_eq!(j["tls"]["handshakes"], 4, "{j}");
            assert_eq!(j["tls"]["full"], 4, "{j}");
            sent += 200 * 3000;
        }
        // Messages larger than a record (16 KiB): split into records and joined again.
        let j = passes(
            &server,
            &[
                "--tls-ca",
                &cert,
                "--connections",
                "2",
                "--count",
                "10",
                "--size",
                "70000",
            ],
        );
        assert_eq!(j["bytes"], 20 * 70000, "{j}");
        sent += 20 * 70000;
        let j = passes(
            &server,
            &[
                "--tls-ca",
                &cert,
                "--stream",
                "--duration",
                "1",
                "--connections",
                "2",
            ],
        );
        let streamed = j["stream"]["bytes"].as_u64().unwrap();
        assert!(streamed > 0, "{j}");
        let (line, (served, echoed, received)) = stop(server);
        assert_eq!(served, 4 + 4 + 2 + 2 + 4, "{model}: {line}");
        assert_eq!(echoed, received, "{model}: {line}");
        assert!(
            echoed >= sent + streamed,
            "{model}: {echoed} < {sent} + {streamed}: {line}"
        );
        assert!(
            line.contains("16 handshakes (TLS 1.3 11, TLS 1.2 5)"),
            "{model}: {line}"
        );
        assert!(line.ends_with("none failed"), "{model}: {line}");
    }
}

/// Churn with one session store: resumed handshakes at TLS 1.3 and 1.2 with `--tls-resume`,
/// none without it; the server completes every one (and each run's certificate check).
#[test]
fn sessions_resume_under_churn() {
    for model in models(CONCURRENT) {
        let dir = TempDir::new(&format!("tls-self-resume-{model}"));
        let cert = dir.arg("cert.pem");
        let server = tls_server(model, &cert);
        for version in ["1.3", "1.2"] {
            let churn = |resume: bool| {
                let mut args = vec![
                    "--tls-ca",
                    &cert,
                    "--tls-version",
                    version,
                    "--connections",
                    "2",
                    "--count",
                    "20",
                    "--messages-per-connection",
                    "2",
                    "--size",
                    "100",
                ];
                if resume {
                    args.push("--tls-resume");
                }
                passes(&server, &args)
            };
            let j = churn(false);
            assert_eq!(j["messages"], 40, "{j}");
            assert_eq!(j["tls"]["handshakes"], 20, "10 connections per slot: {j}");
            assert_eq!(j["tls"]["resumed"], 0, "{j}");
            let j = churn(true);
            assert_eq!(j["messages"], 40, "{j}");
            assert_eq!(j["tls"]["handshakes"], 20, "{j}");
            let resumed = j["tls"]["resumed"].as_u64().unwrap();
            assert!(resumed >= 15, "TLS {version}: {j}");
            assert_eq!(j["tls"]["full"].as_u64().unwrap() + resumed, 20, "{j}");
        }
        let (line, (served, echoed, _)) = stop(server);
        assert_eq!(served, 84, "{model}: {line}");
        assert_eq!(echoed, 4 * 40 * 100, "{model}: {line}");
        assert!(
            line.contains("84 handshakes (TLS 1.3 42, TLS 1.2 42)"),
            "{model}: {line}"
        );
        assert!(line.ends_with("none failed"), "{model}: {line}");
    }
}

/// The name: the certificate is for localhost and 127.0.0.1, so `--sni localhost` passes and
/// another name stops the run before any load with its reason; a certificate nobody said to
/// trust stops it too, and `--insecure` runs without verifying. `send --tls` echoes any bytes.
#[test]
fn names_trust_and_send() {
    let dir = TempDir::new("tls-self-names");
    let cert = dir.arg("cert.pem");
    let server = tls_server("completion", &cert);
    let port = server.addr.port().to_string();
    let j = passes(
        &server,
        &[
            "--tls-ca",
            &cert,
            "--sni",
            "localhost",
            "--connections",
            "1",
            "--count",
            "10",
        ],
    );
    assert_eq!(j["messages"], 10, "{j}");
    for (args, reasons) in [
        (
            vec!["--tls-ca", cert.as_str(), "--sni", "other.example"],
            &["name: the certificate is for another name"][..],
        ),
        // The system's roots do not know a certificate made a moment ago (or there are none).
        (
            vec![],
            &[
                "certificate: the certificate's issuer is not trusted",
                "no trusted root certificates found on this system",
            ][..],
        ),
    ] {
        let said = |err: &str| reasons.iter().any(|r| err.contains(r));
        let mut all = vec![
            "127.0.0.1",
            &port,
            "--tls",
            "--connections",
            "1",
            "--count",
            "10",
            "--json",
            "-",
        ];
        all.extend_from_slice(&args);
        let out = stress(&all);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "no report: nothing ran");
        assert!(err.contains("cannot be trusted"), "{args:?}: {err}");
        assert!(said(&err), "{args:?}: {err}");
        // send says the same.
        let out = bin()
            .args(["send", "127.0.0.1", &port, "x", "--tls"])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(said(&stderr(&out)), "{args:?}: {}", stderr(&out));
    }
    let out = stress(&[
        "127.0.0.1",
        &port,
        "--tls",
        "--insecure",
        "--connections",
        "1",
        "--count",
        "5",
        "--json",
        "-",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out).matches("--insecure").count(), 1, "warned once");
    assert_eq!(json_of(&out)["messages"], 5);
    for message in ["héllo\u{1} tls", "x"] {
        let out = bin()
            .args(["send", "127.0.0.1", &port, message])
            .args(["--tls", "--tls-ca", &cert, "--sni", "localhost"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(out.stdout, format!("{message}\n").as_bytes());
    }
    drop(server);
}

/// A wss server whose certificate nobody said to trust: `send --websocket --tls` refuses it in
/// one line, word for word the line `send --tls` gives against the same server (the reason and
/// what to do: `--tls-ca` or `--insecure`), not as a failed write of the upgrade.
#[test]
fn wss_send_refuses_an_untrusted_certificate_in_the_words_of_tls() {
    let dir = TempDir::new("tls-self-wss-trust");
    let cert = dir.arg("cert.pem");
    let server = Server::start(
        "completion",
        &["--websocket", "--tls-self-signed", "--tls-cert-out", &cert],
    );
    let port = server.addr.port().to_string();
    let refusal = |ws: &[&str]| {
        let out = bin()
            .args(["send", "127.0.0.1", &port, "hi", "--tls"])
            .args(ws)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{ws:?}: {err}");
        let lines: Vec<&str> = said_lines(&err);
        assert_eq!(lines.len(), 1, "{ws:?}: one line: {err}");
        lines[0].to_string()
    };
    let wss = refusal(&["--websocket"]);
    assert_eq!(wss, refusal(&[]), "the words of send --tls");
    // The system's roots do not know a certificate made a moment ago (or there are none).
    assert!(
        wss.contains(
            "certificate: the certificate's issuer is not trusted (give its CA with --tls-ca, \
             or --insecure)"
        ) || wss.contains("no trusted root certificates found on this system"),
        "{wss}"
    );
    let out = bin()
        .args(["send", "127.0.0.1", &port, "hi", "--tls", "--websocket"])
        .args(["--tls-ca", &cert, "--sni", "localhost"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(out.stdout, b"hi\n");
}

/// `stress` (plaintext, or `--tls`) refused at its first connection, before any report: one
/// line on standard error naming `said`, exit code 2 (a flag that does not fit the server).
/// (A progress line a second may come before it on a slow machine: progress, not an error.)
#[track_caller]
fn refused_at_once(args: &[&str], said: &str) {
    let out = stress(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(out.stdout.is_empty(), "{args:?}: no report");
    let lines = said_lines(&err);
    assert_eq!(lines.len(), 1, "{args:?}: one line: {err}");
    assert!(lines[0].contains(said), "{args:?}: {err}");
}

/// `send 127.0.0.1 PORT ARGS` refused with one line naming `said`, exit code 2.
#[track_caller]
fn send_refused(port: &str, args: &[&str], said: &str) {
    let out = bin()
        .args(["send", "127.0.0.1", port])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(out.stdout.is_empty(), "{args:?}");
    assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
    assert!(err.contains(said), "{args:?}: {err}");
}

/// A plaintext client of a TLS server: its bytes are not a ClientHello, so the server counts a
/// failed handshake (`plaintext`), answers with a TLS alert and closes it. `stress` takes the
/// alert for what it is and stops at once with one line (exit code 2), instead of a report of
/// every connection failing; so does `stress --websocket` against a wss server. TLS clients
/// around it are served.
#[test]
fn a_plaintext_client_of_a_tls_server_stops_at_once() {
    let dir = TempDir::new("tls-self-plaintext");
    let cert = dir.arg("cert.pem");
    let server = tls_server("completion", &cert);
    let port = server.addr.port().to_string();
    let line =
        format!("127.0.0.1:{port} speaks TLS (it answered plaintext with a TLS alert): add --tls");
    refused_at_once(
        &[
            "127.0.0.1",
            &port,
            "--connections",
            "20",
            "--count",
            "50",
            "--timeout",
            "5",
        ],
        &line,
    );
    // send says the same, for a message shorter than a record's header too.
    for message in ["hi", "hello, TLS server"] {
        send_refused(&port, &[message], &line);
    }
    let j = passes(
        &server,
        &["--tls-ca", &cert, "--connections", "3", "--count", "20"],
    );
    assert_eq!(j["messages"], 60, "{j}");
    let (line, _) = stop(server);
    assert!(line.contains("4 handshakes"), "{line}");
    assert!(line.contains("failed: plaintext "), "{line}");
    let wss = Server::start("completion", &["--websocket", "--tls-self-signed"]);
    let port = wss.addr.port().to_string();
    refused_at_once(
        &[
            "127.0.0.1",
            &port,
            "--websocket",
            "--connections",
            "2",
            "--count",
            "5",
        ],
        &format!("127.0.0.1:{port} speaks TLS (it answered plaintext with a TLS alert): add --tls"),
    );
}

/// `stress --tls` against a plaintext echo: the echo sends the ClientHello back, and the run
/// stops before any load with one line (exit code 2), `--insecure` or not; `send --tls` (and
/// over WebSocket) stops with the same line.
#[test]
fn a_tls_client_of_a_plaintext_echo_stops_at_once() {
    let server = Server::start("completion", &[]);
    let port = server.addr.port().to_string();
    let line = format!(
        "127.0.0.1:{port} does not speak TLS (it echoed the TLS ClientHello back): leave out --tls"
    );
    for trust in [&["--insecure"][..], &[]] {
        let mut args = vec![
            "127.0.0.1",
            &port,
            "--tls",
            "--connections",
            "20",
            "--count",
            "50",
        ];
        args.extend_from_slice(trust);
        refused_at_once(&args, &line);
        // send --tls and send --websocket --tls say the same.
        for ws in [&[][..], &["--websocket"]] {
            let out = bin()
                .args(["send", "127.0.0.1", &port, "hi", "--tls"])
                .args(trust)
                .args(ws)
                .output()
                .unwrap();
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{err}");
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.contains(&line), "{err}");
        }
    }
}

/// A server on `listener` that answers each connection's first bytes (a whole record if they
/// are a ClientHello, `\x16\x03`) with `hello` to a ClientHello, `plain` to anything else,
/// then closes its side and reads until the client's end (closing with bytes unread would
/// reset the connection under the answer). Serves until the test process ends.
fn answering_server(listener: std::net::TcpListener, hello: &'static [u8], plain: &'static [u8]) {
    use std::io::{Read, Write};
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(20)));
                let mut head = [0u8; 5];
                if conn.read_exact(&mut head).is_err() {
                    return;
                }
                let answer = if head.starts_with(&[0x16, 0x03]) {
                    let mut body = vec![0u8; u16::from_be_bytes([head[3], head[4]]).into()];
                    if conn.read_exact(&mut body).is_err() {
                        return;
                    }
                    hello
                } else {
                    plain
                };
                let _ = conn.write_all(answer);
                let _ = conn.shutdown(std::net::Shutdown::Write);
                let _ = std::io::copy(&mut conn, &mut std::io::sink());
            });
        }
    });
}

/// Servers that say what they speak otherwise: one that closes a plaintext connection without
/// a byte (as Go's TLS servers do) but answers a ClientHello with a ServerHello stops a
/// plaintext run; one that answers a ClientHello with an HTTP status line stops a `--tls` run.
/// A server that closes plaintext and ClientHellos alike is not taken for a TLS server: its
/// run fails as runs fail (exit code 1, a report), and `send` with it. `send` reads the
/// answers as `stress` does.
#[test]
fn servers_tell_what_they_speak_by_their_answers() {
    const SERVER_HELLO: &[u8] = b"\x16\x03\x03\x00\x04\x02\x00\x00\x00";
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closing_tls = bind();
    let port = closing_tls.local_addr().unwrap().port().to_string();
    answering_server(closing_tls, SERVER_HELLO, b"");
    let line = format!(
        "127.0.0.1:{port} speaks TLS (it closed the connection on plaintext without a byte, then \
         answered a TLS ClientHello): add --tls"
    );
    refused_at_once(
        &[
            "127.0.0.1",
            &port,
            "--connections",
            "4",
            "--count",
            "10",
            "--timeout",
            "5",
        ],
        &line,
    );
    send_refused(&port, &["hello"], &line);
    let http = bind();
    let port = http.local_addr().unwrap().port().to_string();
    const BAD_REQUEST: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\r\n";
    answering_server(http, BAD_REQUEST, BAD_REQUEST);
    refused_at_once(
        &[
            "127.0.0.1",
            &port,
            "--tls",
            "--insecure",
            "--count",
            "10",
            "--timeout",
            "5",
        ],
        &format!(
            "127.0.0.1:{port} does not speak TLS (it answered the TLS ClientHello with \
             \"HTTP/1.1 400 Bad Request\\r\\n\\r\\n\"): leave out --tls"
        ),
    );
    let closing = bind();
    let port = closing.local_addr().unwrap().port().to_string();
    answering_server(closing, b"", b"");
    let out = stress(&[
        "127.0.0.1",
        &port,
        "--connections",
        "4",
        "--count",
        "10",
        "--timeout",
        "5",
        "--json",
        "-",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(json_of(&out)["errors"], 4);
    let out = bin()
        .args(["send", "127.0.0.1", &port, "hello"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("closed the connection after echoing 0 of 5 bytes"),
        "{err}"
    );
}

/// Writes a CA (`NAME-ca.pem`) and a client certificate it issued (`NAME-client.pem`,
/// `NAME-client.key`) into `dir`.
fn client_certs(dir: &TempDir, name: &str) {
    let ca = TestCa::new(&format!("{name} CA"));
    let (cert, key) = ca.issue(&["ringport-client"]);
    std::fs::write(dir.path(&format!("{name}-ca.pem")), ca.pem()).unwrap();
    std::fs::write(dir.path(&format!("{name}-client.pem")), cert).unwrap();
    std::fs::write(dir.path(&format!("{name}-client.key")), key).unwrap();
}

/// Mutual TLS: `serve --tls-client-ca` serves the clients whose certificate its CA issued
/// (`stress` and `send` with `--tls-cert`/`--tls-key`, at TLS 1.3 and 1.2, and resumed under
/// churn); a client without a certificate, or with one of another CA, fails its handshake
/// (counted by the server, `other`) and the run stops with exit code 1. On every model that
/// serves connections side by side.
#[test]
fn mutual_tls_serves_only_clients_with_a_certificate_of_its_ca() {
    for model in models(CONCURRENT) {
        let dir = TempDir::new(&format!("tls-self-mtls-{model}"));
        client_certs(&dir, "good");
        client_certs(&dir, "other");
        let cert = dir.arg("cert.pem");
        let server = Server::start(
            model,
            &[
                "--tls-self-signed",
                "--tls-cert-out",
                &cert,
                "--tls-client-ca",
                &dir.arg("good-ca.pem"),
            ],
        );
        let port = server.addr.port().to_string();
        let (ccert, ckey) = (dir.arg("good-client.pem"), dir.arg("good-client.key"));
        for version in ["1.3", "1.2"] {
            let j = passes(
                &server,
                &[
                    "--tls-ca",
                    &cert,
                    "--tls-cert",
                    &ccert,
                    "--tls-key",
                    &ckey,
                    "--tls-version",
                    version,
                    "--connections",
                    "2",
                    "--count",
                    "50",
                    "--size",
                    "1000",
                ],
            );
            assert_eq!(j["messages"], 100, "{j}");
        }
        let j = passes(
            &server,
            &[
                "--tls-ca",
                &cert,
                "--tls-cert",
                &ccert,
                "--tls-key",
                &ckey,
                "--connections",
                "2",
                "--count",
                "10",
                "--messages-per-connection",
                "1",
                "--tls-resume",
                "--size",
                "100",
            ],
        );
        assert_eq!(j["tls"]["handshakes"], 20, "{j}");
        assert!(j["tls"]["resumed"].as_u64().unwrap() >= 15, "{j}");
        let out = bin()
            .args(["send", "127.0.0.1", &port, "mutual"])
            .args([
                "--tls",
                "--tls-ca",
                &cert,
                "--tls-cert",
                &ccert,
                "--tls-key",
                &ckey,
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(out.stdout, b"mutual\n");
        let (ocert, okey) = (dir.arg("other-client.pem"), dir.arg("other-client.key"));
        for with in [vec![], vec!["--tls-cert", &ocert, "--tls-key", &okey]] {
            let mut args = vec![
                "127.0.0.1",
                &port,
                "--tls",
                "--tls-ca",
                &cert,
                "--connections",
                "1",
                "--count",
                "5",
                "--timeout",
                "5",
                "--json",
                "-",
            ];
            args.extend_from_slice(&with);
            let out = stress(&args);
            assert_eq!(out.status.code(), Some(1), "{with:?}: {}", stderr(&out));
            let out = bin()
                .args(["send", "127.0.0.1", &port, "x", "--tls", "--tls-ca", &cert])
                .args(&with)
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(1), "{with:?}: {}", stderr(&out));
            assert!(out.stdout.is_empty(), "no echo");
        }
        let (line, (_, echoed, _)) = stop(server);
        assert_eq!(
            echoed,
            2 * 100 * 1000 + 20 * 100 + "mutual".len() as u64,
            "{line}"
        );
        let failed = line.rsplit_once("failed: ").map(|(_, f)| f);
        assert!(
            failed.is_some_and(|f| f.starts_with("other ")),
            "the refused clients fail as other: {line}"
        );
    }
}

/// `--tls-client-ca` needs TLS and a file of CA certificates: otherwise one line and exit
/// code 2, before the server listens.
#[test]
fn tls_client_ca_usage_errors() {
    let dir = TempDir::new("tls-self-client-ca-usage");
    std::fs::write(dir.0.join("empty.pem"), "").unwrap();
    for (args, said) in [
        (
            vec!["--tls-client-ca".to_string(), dir.arg("empty.pem")],
            "--tls-client-ca needs TLS",
        ),
        (
            vec![
                "--tls-self-signed".to_string(),
                "--tls-client-ca".to_string(),
                dir.arg("empty.pem"),
            ],
            "--tls-client-ca",
        ),
        (
            vec![
                "--tls-self-signed".to_string(),
                "--tls-client-ca".to_string(),
                dir.arg("missing.pem"),
            ],
            "--tls-client-ca",
        ),
    ] {
        let out = bin()
            .args(["serve", "--port", "0"])
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(said), "{args:?}: {err}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
    }
}
