//! `ringport serve` over TLS end to end, against OpenSSL's `s_client` (TLS 1.3 and 1.2,
//! byte-exact, close_notify at shutdown), on every model and backend: the self-signed
//! certificate and its fingerprint, certificates of every key type and a chain, ALPN, the
//! ready line, clients that do not speak TLS or stall (each closed alone and counted by cause
//! while others are served), a client that never reads, and files that do not do.
//!
//! `openssl` is a Debian package that `.ci/run` installs; without it these tests are skipped
//! (and fail under `CI=true`). Linux only: under Wine a Debian program cannot be started from
//! the test; the server crate's `tls_e2e` test covers TLS on IOCP with rustls' own client.
#![cfg(unix)]

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::*;

/// Whether `openssl` runs; under CI it must.
fn have_openssl() -> bool {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        skip_missing("openssl", "apt-get install openssl");
    }
    found
}

/// Runs `openssl ARGS` and panics with its output if it fails.
#[track_caller]
fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `openssl s_client` to `addr` trusting `ca`, checking the name `localhost`, with `extra`
/// flags; standard input and output piped, errors kept.
fn s_client(addr: SocketAddr, ca: &Path, extra: &[&str]) -> Child {
    Command::new("openssl")
        .args([
            "s_client",
            "-verify_return_error",
            "-verify_hostname",
            "localhost",
        ])
        .args(["-servername", "localhost", "-connect", &addr.to_string()])
        .arg("-CAfile")
        .arg(ca)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start openssl s_client")
}

/// Reads exactly `n` bytes from the client's output within 20 s.
#[track_caller]
fn read_n(client: &mut Child, n: usize) -> Vec<u8> {
    let mut out = client.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut got = vec![0u8; n];
        let r = out.read_exact(&mut got).map(|()| got);
        let _ = tx.send((r, out));
    });
    let (got, out) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("no echo from the TLS server within 20 s");
    client.stdout = Some(out);
    got.unwrap_or_else(|e| panic!("reading the echo: {e}"))
}

/// Waits (at most 10 s) for the client to exit; its remaining output.
#[track_caller]
fn finish(mut client: Child) -> (std::process::ExitStatus, Vec<u8>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = client.try_wait().unwrap() {
            let mut rest = Vec::new();
            let _ = client.stdout.take().unwrap().read_to_end(&mut rest);
            return (status, rest);
        }
        if Instant::now() > deadline {
            let _ = client.kill();
            panic!("openssl s_client did not exit within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One byte-exact echo of `data` through a quiet s_client (`-quiet` passes bytes through
/// unchanged and interprets no command letters); returns the client, still connected.
#[track_caller]
fn echo_through(addr: SocketAddr, ca: &Path, extra: &[&str], data: &[u8]) -> Child {
    let mut args = vec!["-quiet"];
    args.extend_from_slice(extra);
    let mut client = s_client(addr, ca, &args);
    client.stdin.as_mut().unwrap().write_all(data).unwrap();
    let got = read_n(&mut client, data.len());
    assert_same(&got, data);
    client
}

/// The summary's `tls:` line.
#[track_caller]
fn tls_line(server: &Server) -> String {
    let out = server.stdout();
    out.lines()
        .find(|l| l.trim_start().starts_with("tls:"))
        .unwrap_or_else(|| panic!("no tls line in the summary: {out}"))
        .trim()
        .to_string()
}

for_each_model! {
    fn openssl_s_client_echoes_byte_exact_on_tls13_and_tls12_and_gets_close_notify(model: &str) {
        if !have_openssl() {
            return;
        }
        let dir = TempDir::new(&format!("tls-echo-{model}"));
        for (flag, name) in [("-tls1_3", "TLS 1.3 1"), ("-tls1_2", "TLS 1.2 1")] {
            let cert = dir.arg("cert.pem");
            let mut server = Server::start(model, &["--tls-self-signed", "--tls-cert-out", &cert]);
            assert!(server.ready.tls, "the ready line says tls: {:?}", server.ready);
            // The fingerprint printed is the certificate's, as openssl computes it.
            server.eventually(Duration::from_secs(5), "the fingerprint on stderr", |s| {
                s.stderr().contains("fingerprint")
            });
            let printed = server.stderr();
            let theirs = openssl(&["x509", "-in", &cert, "-noout", "-fingerprint", "-sha256"]);
            let theirs = theirs.trim().rsplit('=').next().unwrap().to_uppercase();
            assert!(
                printed.contains(&format!("SHA-256 fingerprint {theirs}")),
                "{printed} vs {theirs}"
            );
            // A few KiB of every byte value, echoed byte for byte.
            let data = Rng::new(7).bytes(5000);
            let client = echo_through(server.addr, &dir.path("cert.pem"), &[flag], &data);
            // The graceful shutdown: the server sends close_notify, the client ends cleanly.
            server.signal("TERM");
            let (_, rest) = finish(client);
            assert!(rest.is_empty(), "{} bytes after the echo", rest.len());
            assert!(server.wait_exit(Duration::from_secs(10)).success(), "{}", server.stderr());
            let line = tls_line(&server);
            assert!(line.contains(name), "{model} {flag}: {line}");
            assert!(line.contains("1 close_notify sent; none failed"), "{model} {flag}: {line}");
            let (served, echoed, received) = server.summary_counts();
            assert_eq!((served, echoed, received), (1, 5000, 5000), "{model} {flag}");
        }
    }
}

/// Clients that do not speak TLS, cut their handshake short or stall it: each is closed alone
/// (with an alert where TLS has one) and counted by cause, while a good client is served. The
/// single model serves one client at a time by design, so it is left out.
mod bad_clients_are_closed_alone_and_counted_by_cause {
    use super::*;

    #[test]
    fn completion() {
        body("completion")
    }
    #[cfg(unix)]
    #[test]
    fn completion_epoll() {
        body("completion-epoll")
    }
    #[test]
    fn threaded() {
        body("threaded")
    }

    /// Sends `bytes` (then half-closes when `fin`), and returns what the server sent back
    /// before closing.
    fn send(addr: SocketAddr, bytes: &[u8], fin: bool) -> mpsc::Receiver<Vec<u8>> {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(bytes).unwrap();
        if fin {
            s.shutdown(Shutdown::Write).unwrap();
        }
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            let _ = tx.send(got);
        });
        rx
    }

    fn body(model: &str) {
        if !have_openssl() {
            return;
        }
        let dir = TempDir::new(&format!("tls-bad-{model}"));
        let cert = dir.arg("cert.pem");
        let mut server = Server::start(
            model,
            &[
                "--tls-self-signed",
                "--tls-cert-out",
                &cert,
                "--tls-handshake-timeout",
                "1",
            ],
        );
        let addr = server.addr;
        // A handshake record announced and never completed: stalled, then cut short.
        let partial = [
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ];
        let silent = send(addr, &[], false);
        let stalled = send(addr, &partial, false);
        let truncated = send(addr, &partial, true);
        let plaintext = send(addr, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", false);
        let garbage = send(
            addr,
            &[0x99, 0x01, 0xfe, 0x00, 0x13, 0x37, 0x00, 0x00, 0x01],
            false,
        );
        // A handshake record of protocol version 4.0.
        let version = send(
            addr,
            &[0x16, 0x04, 0x00, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00],
            false,
        );
        // Meanwhile a good client is served.
        let data = Rng::new(3).bytes(3000);
        let good = echo_through(addr, &dir.path("cert.pem"), &[], &data);
        let wait = |rx: mpsc::Receiver<Vec<u8>>, what: &str| {
            rx.recv_timeout(Duration::from_secs(15))
                .unwrap_or_else(|_| panic!("{model}: the {what} client was not closed"))
        };
        for (rx, what) in [
            (plaintext, "plaintext"),
            (garbage, "garbage"),
            (version, "version"),
        ] {
            let got = wait(rx, what);
            // An alert record: content type 21.
            assert_eq!(got.first(), Some(&21), "{model}: {what}: {got:?}");
        }
        wait(truncated, "truncated");
        // The stalled ones are closed by the handshake timeout, the good one still open.
        wait(stalled, "stalled");
        wait(silent, "silent");
        let mut good = good;
        good.stdin
            .as_mut()
            .unwrap()
            .write_all(b"still here")
            .unwrap();
        assert_eq!(read_n(&mut good, 10), b"still here");
        server.signal("TERM");
        finish(good);
        assert!(
            server.wait_exit(Duration::from_secs(10)).success(),
            "{}",
            server.stderr()
        );
        let line = tls_line(&server);
        assert!(
            line.ends_with("failed: plaintext 1, garbage 1, version 1, truncated 1, timeout 2"),
            "{model}: {line}"
        );
        assert!(line.contains("1 handshakes"), "{model}: {line}");
    }
}

/// Certificates of every key type openssl makes (EC P-256, RSA in PKCS#8 and PKCS#1, Ed25519)
/// and a chain (a leaf signed by a CA of its own), served from files.
#[test]
fn own_certificates_of_every_key_type_and_a_chain_are_served() {
    if !have_openssl() {
        return;
    }
    let dir = TempDir::new("tls-own");
    let san = "subjectAltName=DNS:localhost,IP:127.0.0.1";
    let self_signed = |name: &str, newkey: &[&str]| {
        let (key, cert) = (
            dir.arg(&format!("{name}.key")),
            dir.arg(&format!("{name}.crt")),
        );
        let mut args = vec![
            "req",
            "-x509",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ];
        args.extend_from_slice(newkey);
        args.extend_from_slice(&["-addext", san, "-keyout", &key, "-out", &cert]);
        openssl(&args);
        (key, cert)
    };
    let ec = self_signed(
        "ec",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    let rsa = self_signed("rsa", &["-newkey", "rsa:2048"]);
    let ed = self_signed("ed", &["-newkey", "ed25519"]);
    let pkcs1 = dir.arg("rsa1.key");
    openssl(&["rsa", "-in", &rsa.0, "-traditional", "-out", &pkcs1]);
    assert!(std::fs::read_to_string(&pkcs1)
        .unwrap()
        .contains("BEGIN RSA PRIVATE KEY"));
    // A chain: a CA, and a leaf it signs.
    let (ca_key, ca) = self_signed(
        "ca",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    let (leaf_key, csr) = (dir.arg("leaf.key"), dir.arg("leaf.csr"));
    openssl(&[
        "req",
        "-new",
        "-nodes",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-subj",
        "/CN=localhost",
        "-keyout",
        &leaf_key,
        "-out",
        &csr,
    ]);
    let ext = dir.path("leaf.ext");
    std::fs::write(&ext, format!("{san}\n")).unwrap();
    let leaf = dir.arg("leaf.crt");
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &ext.display().to_string(),
        "-out",
        &leaf,
    ]);
    let chain = dir.path("chain.pem");
    let chain_text =
        std::fs::read_to_string(&leaf).unwrap() + &std::fs::read_to_string(&ca).unwrap();
    std::fs::write(&chain, chain_text).unwrap();
    let chain = chain.display().to_string();

    let cases = [
        ("EC", &ec.1, &ec.0, &ec.1),
        ("RSA PKCS#8", &rsa.1, &rsa.0, &rsa.1),
        ("RSA PKCS#1", &rsa.1, &pkcs1, &rsa.1),
        ("Ed25519", &ed.1, &ed.0, &ed.1),
        ("a chain", &chain, &leaf_key, &ca),
    ];
    for (what, cert, key, trust) in cases {
        let mut server = Server::start("completion", &["--tls-cert", cert, "--tls-key", key]);
        let client = echo_through(server.addr, Path::new(trust), &[], b"hello over TLS\n");
        server.signal("TERM");
        finish(client);
        assert!(
            server.wait_exit(Duration::from_secs(10)).success(),
            "{what}: {}",
            server.stderr()
        );
        assert!(
            tls_line(&server).contains("none failed"),
            "{what}: {}",
            tls_line(&server)
        );
    }
}

/// `--log-messages` prints what a TLS client sent, decrypted, on every model.
#[test]
fn log_messages_prints_the_decrypted_bytes() {
    if !have_openssl() {
        return;
    }
    for model in models(&["completion", "threaded", "single"]) {
        let dir = TempDir::new(&format!("tls-log-{model}"));
        let cert = dir.arg("cert.pem");
        let mut server = Server::start(
            model,
            &[
                "--tls-self-signed",
                "--tls-cert-out",
                &cert,
                "--log-messages",
            ],
        );
        let client = echo_through(server.addr, &dir.path("cert.pem"), &[], b"secret words\n");
        server.signal("TERM");
        finish(client);
        assert!(server.wait_exit(Duration::from_secs(10)).success());
        // `--log-messages` lines go to stderr (stdout carries only the listening line and the
        // summary).
        let out = server.stderr();
        assert!(
            out.contains("(conn 1): 13 bytes: \"secret words\\n\""),
            "{model}: {out}"
        );
    }
}

/// `--tls-alpn`: the protocol agreed on is the server's first that the client offers.
#[test]
fn alpn_agrees_on_a_protocol_of_the_server() {
    if !have_openssl() {
        return;
    }
    let dir = TempDir::new("tls-alpn");
    let cert = dir.arg("cert.pem");
    let server = Server::start(
        "completion",
        &[
            "--tls-self-signed",
            "--tls-cert-out",
            &cert,
            "--tls-alpn",
            "echo",
            "--tls-alpn",
            "h2",
        ],
    );
    let mut client = s_client(server.addr, &dir.path("cert.pem"), &["-alpn", "h2,echo"]);
    drop(client.stdin.take());
    let (_, out) = finish(client);
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("ALPN protocol: echo"), "{out}");
}

/// A client that sends and never reads holds no more of the server than a plaintext one: the
/// bytes received and not yet echoed (`--stats`: in minus out) stop at one record for TLS, at
/// the connection's bound for plaintext; the kernel holds the rest. Others are served meanwhile.
mod a_never_reading_tls_client_holds_no_more_than_a_plaintext_one {
    use super::*;

    #[test]
    fn completion() {
        body("completion")
    }
    #[cfg(unix)]
    #[test]
    fn completion_epoll() {
        body("completion-epoll")
    }
    #[test]
    fn threaded() {
        body("threaded")
    }

    /// Received minus echoed, once the server's counters stopped moving (bounded).
    fn held(server: &Server) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut last = None;
        let mut since = Instant::now();
        loop {
            assert!(
                Instant::now() < deadline,
                "the server's counters never settled"
            );
            std::thread::sleep(Duration::from_millis(100));
            let Some((_, _, bytes_in, bytes_out)) = server.last_stats() else {
                continue;
            };
            if last != Some((bytes_in, bytes_out)) || bytes_in == 0 {
                last = Some((bytes_in, bytes_out));
                since = Instant::now();
            } else if since.elapsed() > Duration::from_millis(1200) {
                return bytes_in - bytes_out;
            }
        }
    }

    fn body(model: &str) {
        if !have_openssl() {
            return;
        }
        let dir = TempDir::new(&format!("tls-never-{model}"));
        let cert = dir.arg("cert.pem");
        // Plaintext: a client that writes until the kernel refuses, and never reads.
        let plain = Server::start(model, &["--stats", "0.2"]);
        let mut s = TcpStream::connect(plain.addr).unwrap();
        s.set_nonblocking(true).unwrap();
        let chunk = vec![b'p'; 65_536];
        let mut idle_since = Instant::now();
        while idle_since.elapsed() < Duration::from_millis(1500) {
            // Any amount taken is progress; none (the kernel's buffers are full) is not.
            match s.write(&chunk) {
                Ok(n) if n > 0 => idle_since = Instant::now(),
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        let plain_held = held(&plain);
        // TLS: s_client with 8 MiB to send, its output never read.
        let tls = Server::start(
            model,
            &[
                "--stats",
                "0.2",
                "--tls-self-signed",
                "--tls-cert-out",
                &cert,
            ],
        );
        let input = dir.path("input");
        std::fs::write(&input, vec![b't'; 8 << 20]).unwrap();
        let mut never = Command::new("openssl")
            .args(["s_client", "-quiet", "-connect", &tls.addr.to_string()])
            .stdin(std::fs::File::open(&input).unwrap())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let tls_held = held(&tls);
        eprintln!(
            "FIGURE never-reader [{model}]: held by the server: TLS {tls_held} bytes, plaintext {plain_held} bytes"
        );
        assert!(tls_held > 0, "the TLS client's bytes reached the server");
        // The plaintext connection's bound at the default --buffer-size (the completion
        // model's five pool buffers of 16 KiB, the blocking models' one buffer of 64 KiB),
        // which a plaintext never-reader may not quite reach.
        let bound = if model.starts_with("completion") {
            5 * 16_384
        } else {
            65_536
        };
        assert!(
            tls_held <= plain_held.max(bound),
            "{model}: TLS holds {tls_held} bytes, plaintext {plain_held} (bound {bound})"
        );
        // Another client is served meanwhile.
        let other = echo_through(tls.addr, &dir.path("cert.pem"), &[], b"served\n");
        let _ = never.kill();
        let _ = never.wait();
        drop(other);
    }
}

/// Files and flags that do not do: one line, exit code 2, before anything listens.
#[test]
fn bad_files_keys_and_flag_combinations_are_one_line_and_exit_2() {
    let dir = TempDir::new("tls-bad-files");
    let missing = dir.arg("missing.pem");
    let empty = dir.path("empty.pem");
    std::fs::write(&empty, "no PEM here\n").unwrap();
    let empty = empty.display().to_string();
    let mut cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--tls-cert".into(),
                missing.clone(),
                "--tls-key".into(),
                missing.clone(),
            ],
            "--tls-cert ",
        ),
        (
            vec![
                "--tls-cert".into(),
                empty.clone(),
                "--tls-key".into(),
                empty.clone(),
            ],
            "no certificate",
        ),
        (vec!["--tls-cert".into(), empty.clone()], "needs --tls-key"),
        (vec!["--tls-key".into(), empty.clone()], "needs --tls-cert"),
        (
            vec![
                "--tls-self-signed".into(),
                "--tls-cert".into(),
                empty.clone(),
            ],
            "--tls-self-signed",
        ),
        (
            vec!["--tls-alpn".into(), "h2".into()],
            "--tls-alpn needs TLS",
        ),
        (
            vec!["--tls-cert-out".into(), dir.arg("out.pem")],
            "--tls-cert-out",
        ),
        (
            vec![
                "--tls-self-signed".into(),
                "--tls-handshake-timeout".into(),
                "0".into(),
            ],
            "more than 0",
        ),
    ];
    let (mut cert_a, mut key_b) = (String::new(), String::new());
    if have_openssl() {
        // A key that is not the certificate's.
        for name in ["a", "b"] {
            openssl(&[
                "req",
                "-x509",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-keyout",
                &dir.arg(&format!("{name}.key")),
                "-out",
                &dir.arg(&format!("{name}.crt")),
            ]);
        }
        cert_a = dir.arg("a.crt");
        key_b = dir.arg("b.key");
        // A certificate given as the key.
        cases.push((
            vec![
                "--tls-cert".into(),
                cert_a.clone(),
                "--tls-key".into(),
                cert_a.clone(),
            ],
            "no private key",
        ));
    }
    if !key_b.is_empty() {
        cases.push((
            vec!["--tls-cert".into(), cert_a, "--tls-key".into(), key_b],
            "--tls-cert/--tls-key",
        ));
    }
    for (args, expect) in cases {
        let out = bin()
            .args(["serve", "--port", "0"])
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing listened");
    }
}
