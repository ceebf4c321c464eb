//! `ringport stress --tls` and `ringport send --tls` against real TLS servers from Debian:
//! `socat` as a TLS echo (OpenSSL, `EXEC:cat`), `nginx` serving HTTPS and `redis-server` on
//! its `--tls-port`, each started by the test on a free loopback port with certificates the
//! test makes (rcgen): a CA, a server certificate it signed for `localhost` and 127.0.0.1, one
//! expired, one for another name, one from an unknown CA. Echoes are byte-exact at TLS 1.2 and
//! 1.3; each untrusted certificate stops the run before any load with its reason and exit code
//! 1; `--insecure` passes; `--tls-resume` resumes under churn. A server that is not installed
//! is skipped with a loud message, except under `CI=true`, where it is a failure (`.ci/run`
//! installs them).
#![cfg(unix)]

mod support;

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;

use support::{bin, free_port, json_of, require, said_lines, temp_dir, Daemon, TestCa};

impl Daemon {
    /// `ringport stress 127.0.0.1 PORT --tls --threads 2 --json - --timeout 5 ARGS...`.
    fn stress(&self, args: &[&str]) -> Output {
        self.run_stress(&["127.0.0.1", &self.port.to_string(), "--tls"], args)
    }

    /// A run that must pass: its JSON.
    #[track_caller]
    fn passes(&self, args: &[&str]) -> serde_json::Value {
        let j = self.passed(&self.stress(args), args);
        assert_eq!(j["tls"]["failed"]["certificate"], 0, "{j}");
        j
    }

    /// A run refused before any load: its one line on standard error.
    #[track_caller]
    fn refused(&self, args: &[&str]) -> String {
        let out = self.stress(args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?} must be refused: {err}"
        );
        assert!(out.stdout.is_empty(), "no report: nothing ran");
        let lines: Vec<&str> = said_lines(&err);
        assert_eq!(lines.len(), 1, "one line: {err}");
        lines[0].to_string()
    }
}

/// The test's certificates, as PEM files in a directory: `ca.pem`; `good`, `expired`,
/// `other-name` (signed by the CA) and `unknown-ca` (by another CA), each `NAME.pem` and
/// `NAME.key`.
struct Certs {
    dir: PathBuf,
}

impl Certs {
    fn make(dir: &Path) -> Certs {
        let ca = TestCa::new("ringport test CA");
        let unknown_ca = TestCa::new("ringport unknown CA");
        fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        let write = |name: &str, (cert, key): (String, String)| {
            fs::write(dir.join(format!("{name}.pem")), cert).unwrap();
            fs::write(dir.join(format!("{name}.key")), key).unwrap();
        };
        write("good", ca.issue(&["localhost", "127.0.0.1"]));
        write("expired", ca.issue_expired(&["localhost", "127.0.0.1"]));
        write("other-name", ca.issue(&["other.example"]));
        write("unknown-ca", unknown_ca.issue(&["localhost", "127.0.0.1"]));
        write("client", ca.issue(&["ringport-client"]));
        Certs {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_str().unwrap().to_string()
    }
}

/// socat as a TLS echo server with certificate `name`: every connection its own `cat`.
fn socat_echo(certs: &Certs, name: &str) -> Option<Daemon> {
    let program = require("socat")?;
    let port = free_port();
    let dir = temp_dir(&format!("tls-socat-{name}"));
    let listen = format!(
        "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
        certs.path(&format!("{name}.pem")),
        certs.path(&format!("{name}.key"))
    );
    let args = vec![listen, "EXEC:cat".to_string()];
    Some(Daemon::start("socat", &program, &args, &dir, port))
}

#[test]
fn tls_echo_is_byte_exact_at_tls_1_2_and_1_3() {
    let certs_dir = temp_dir("tls-certs");
    let certs = Certs::make(&certs_dir);
    let Some(echo) = socat_echo(&certs, "good") else {
        return;
    };
    let ca = certs.path("ca.pem");
    for (version, name) in [("1.2", "TLSv1.2"), ("1.3", "TLSv1.3")] {
        let j = echo.passes(&[
            "--tls-ca",
            &ca,
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
        assert_eq!(j["tls"]["version"], name, "{j}");
        assert_eq!(j["tls"]["handshakes"], 4, "{j}");
        assert_eq!(j["tls"]["full"], 4, "{j}");
        assert_eq!(j["tls"]["handshake_us"]["count"], 4, "{j}");
    }
    // A stream of 64 KiB chunks: records of 16 KiB, every byte checked.
    let j = echo.passes(&[
        "--tls-ca",
        &ca,
        "--stream",
        "--duration",
        "1",
        "--connections",
        "2",
    ]);
    assert!(j["stream"]["bytes"].as_u64().unwrap() > 0, "{j}");
    // By name, with SNI: the certificate is for localhost too.
    let j = echo.passes(&[
        "--tls-ca",
        &ca,
        "--sni",
        "localhost",
        "--connections",
        "5",
        "--count",
        "10",
    ]);
    assert_eq!(j["messages"], 50, "{j}");
    // Two segments, each with its interval log and CSV, merged: the handshakes add up, the
    // `handshake` interval is in every log.
    let dir = temp_dir("tls-segments");
    let file = |name: &str| dir.join(name).to_str().unwrap().to_string();
    for seg in ["1", "2"] {
        let j = echo.passes(&[
            "--tls-ca",
            &ca,
            "--connections",
            "4",
            "--rate",
            "200",
            "--duration",
            "1",
            "--segment",
            &format!("{seg}/2"),
            "--hdr-log",
            &file(&format!("{seg}.hlog")),
            "--csv",
            &file(&format!("{seg}.csv")),
        ]);
        assert_eq!(j["tls"]["handshakes"], 2, "{j}");
        fs::write(file(&format!("{seg}.json")), j.to_string()).unwrap();
        let csv = fs::read_to_string(file(&format!("{seg}.csv"))).unwrap();
        assert!(
            csv.lines().nth(2).unwrap().starts_with("handshake,0.000,"),
            "{csv}"
        );
    }
    let out = bin()
        .args([
            "merge",
            &file("1.json"),
            &file("1.hlog"),
            &file("2.json"),
            &file("2.hlog"),
        ])
        .args(["--json", "-", "--hdr-log", &file("merged.hlog")])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = json_of(&out);
    assert_eq!(j["tls"]["handshakes"], 4, "{j}");
    assert_eq!(j["tls"]["handshake_us"]["count"], 4, "{j}");
    let log = fs::read_to_string(file("merged.hlog")).unwrap();
    assert_eq!(log.matches("Tag=handshake,").count(), 1, "{log}");
    let _ = fs::remove_dir_all(&dir);
    // send: one message, any bytes, its echo byte for byte.
    let out = bin()
        .args([
            "send",
            "127.0.0.1",
            &echo.port.to_string(),
            "héllo\u{1} tls",
        ])
        .args(["--tls", "--tls-ca", &ca])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, "héllo\u{1} tls\n".as_bytes());
    drop(echo);
    let _ = fs::remove_dir_all(certs_dir);
}

#[test]
fn untrusted_certificates_stop_the_run_with_their_reason() {
    let certs_dir = temp_dir("tls-certs");
    let certs = Certs::make(&certs_dir);
    let ca = certs.path("ca.pem");
    for (name, reason) in [
        ("expired", "certificate: the certificate has expired"),
        ("other-name", "name: the certificate is for another name"),
        (
            "unknown-ca",
            "certificate: the certificate's issuer is not trusted",
        ),
    ] {
        let Some(server) = socat_echo(&certs, name) else {
            return;
        };
        let line = server.refused(&["--tls-ca", &ca, "--count", "10"]);
        assert!(line.contains("cannot be trusted"), "{name}: {line}");
        assert!(line.contains(reason), "{name}: {line}");
        // send says the same, with exit code 1.
        let out = bin()
            .args(["send", "127.0.0.1", &server.port.to_string(), "x"])
            .args(["--tls", "--tls-ca", &ca])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(reason),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // --insecure: not verified (warned once), every byte still checked.
        let out = server.stress(&["--insecure", "--count", "20", "--connections", "2"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{name}: {err}");
        assert_eq!(err.matches("--insecure").count(), 1, "warned once: {err}");
        assert_eq!(json_of(&out)["messages"], 40);
    }
    // The system's roots do not know the test CA either.
    let Some(server) = socat_echo(&certs, "good") else {
        return;
    };
    let line = server.refused(&["--count", "1"]);
    assert!(
        line.contains("issuer is not trusted")
            || line.contains("no trusted root certificates found on this system"),
        "{line}"
    );
    drop(server);
    let _ = fs::remove_dir_all(certs_dir);
}

/// nginx serving HTTPS from `dir` with the good certificate.
fn nginx_https(certs: &Certs) -> Option<Daemon> {
    let program = require("nginx")?;
    let port = free_port();
    let dir = temp_dir("tls-nginx");
    let d = dir.to_str().unwrap();
    fs::create_dir_all(dir.join("www")).unwrap();
    fs::write(dir.join("www/index.html"), "<h1>ringport</h1>\n").unwrap();
    let conf = format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  \
         proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
         uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
         keepalive_requests 1000000;\n  \
         server {{\n    listen 127.0.0.1:{port} ssl;\n    root {d}/www;\n    \
         ssl_certificate {};\n    ssl_certificate_key {};\n    \
         ssl_protocols TLSv1.2 TLSv1.3;\n    ssl_session_tickets on;\n    \
         ssl_session_cache shared:tls:1m;\n  }}\n}}\n",
        certs.path("good.pem"),
        certs.path("good.key")
    );
    fs::write(dir.join("nginx.conf"), conf).unwrap();
    let args: Vec<String> = [
        "-c",
        &format!("{d}/nginx.conf"),
        "-p",
        d,
        "-e",
        &format!("{d}/error.log"),
    ]
    .map(String::from)
    .to_vec();
    Some(Daemon::start("nginx", &program, &args, &dir, port))
}

#[test]
fn nginx_https_and_resumed_handshakes_under_churn() {
    let certs_dir = temp_dir("tls-certs");
    let certs = Certs::make(&certs_dir);
    let Some(nginx) = nginx_https(&certs) else {
        return;
    };
    let ca = certs.path("ca.pem");
    let get = r"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let j = nginx.passes(&[
        "--tls-ca",
        &ca,
        "--alpn",
        "http/1.1",
        "--connections",
        "4",
        "--count",
        "100",
        "--pipeline",
        "4",
        "--request",
        get,
        "--expect-http=200",
        "--expect-regex",
        r"<h1>ringport</h1>",
    ]);
    assert_eq!(j["messages"], 400, "{j}");
    assert_eq!(j["tls"]["handshakes"], 4, "{j}");
    // Churn: a handshake per connection, every one full without --tls-resume ...
    let churn = |resume: bool, version: &str| {
        let mut args = vec![
            "--tls-ca",
            &ca,
            "--tls-version",
            version,
            "--connections",
            "2",
            "--count",
            "40",
            "--messages-per-connection",
            "4",
            "--request",
            get,
            "--expect-http=200",
        ];
        if resume {
            args.push("--tls-resume");
        }
        nginx.passes(&args)
    };
    for version in ["1.2", "1.3"] {
        let j = churn(false, version);
        assert_eq!(j["messages"], 80, "{j}");
        assert_eq!(j["tls"]["handshakes"], 20, "10 connections per slot: {j}");
        assert_eq!(j["tls"]["resumed"], 0, "{j}");
        // ... and with it, all but the first few resumed from the shared store.
        let j = churn(true, version);
        assert_eq!(j["tls"]["handshakes"], 20, "{j}");
        assert!(
            j["tls"]["resumed"].as_u64().unwrap() >= 15,
            "TLS {version}: {j}"
        );
        assert!(j["tls"]["full"].as_u64().unwrap() >= 1, "{j}");
    }
    drop(nginx);
    let _ = fs::remove_dir_all(certs_dir);
}

#[test]
fn redis_over_tls_ping_pong() {
    let Some(program) = require("redis-server") else {
        return;
    };
    let certs_dir = temp_dir("tls-certs");
    let certs = Certs::make(&certs_dir);
    let port = free_port();
    let dir = temp_dir("tls-redis");
    let args: Vec<String> = [
        "--port",
        "0",
        "--tls-port",
        &port.to_string(),
        "--tls-cert-file",
        &certs.path("good.pem"),
        "--tls-key-file",
        &certs.path("good.key"),
        "--tls-ca-cert-file",
        &certs.path("ca.pem"),
        "--tls-auth-clients",
        "no",
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        dir.to_str().unwrap(),
        "--daemonize",
        "no",
    ]
    .map(String::from)
    .to_vec();
    let redis = Daemon::start("redis-server", &program, &args, &dir, port);
    let j = redis.passes(&[
        "--tls-ca",
        &certs.path("ca.pem"),
        "--connections",
        "4",
        "--count",
        "200",
        "--pipeline",
        "4",
        "--request",
        r"PING\r\n",
        "--expect",
        r"+PONG\r\n",
    ]);
    assert_eq!(j["messages"], 800, "{j}");
    assert_eq!(j["tls"]["version"], "TLSv1.3", "{j}");
    drop(redis);
    let _ = fs::remove_dir_all(certs_dir);
}

#[test]
fn failed_handshakes_are_counted_by_cause() {
    // A server that accepts and never answers: every handshake times out.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let out = bin()
        .args([
            "stress",
            "127.0.0.1",
            &port,
            "--tls",
            "--insecure",
            "--json",
            "-",
        ])
        .args([
            "--connections",
            "2",
            "--count",
            "1",
            "--timeout",
            "1",
            "--threads",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = json_of(&out);
    assert_eq!(j["tls"]["failed"]["timeout"], 2, "{j}");
    assert_eq!(j["errors_by_kind"]["connect_failed"], 2, "{j}");
    assert_eq!(j["tls"]["handshakes"], 0, "{j}");
    drop(silent);
    // A server that answers every ClientHello with a fatal alert (handshake_failure): the
    // probe's handshake fails as each connection's does, so the run goes on and counts them.
    let refusing = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = refusing.local_addr().unwrap().port().to_string();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for conn in refusing.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                // The whole ClientHello, then the alert; the client's end is read, so that no
                // reset overtakes the alert.
                let mut head = [0u8; 5];
                if conn.read_exact(&mut head).is_err() {
                    return;
                }
                let mut body = vec![0u8; u16::from_be_bytes([head[3], head[4]]).into()];
                if conn.read_exact(&mut body).is_ok() {
                    let _ = conn.write_all(&[21, 3, 3, 0, 2, 2, 40]);
                    let _ = std::io::copy(&mut conn, &mut std::io::sink());
                }
            });
        }
    });
    let out = bin()
        .args(["stress", "127.0.0.1", &port, "--tls", "--insecure"])
        .args([
            "--json",
            "-",
            "--connections",
            "2",
            "--count",
            "1",
            "--timeout",
            "2",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = json_of(&out);
    assert_eq!(j["tls"]["failed"]["protocol"], 2, "{j}");
    let detail = j["first_error"]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("TLS handshake failed: protocol: "),
        "{detail}"
    );
}

#[test]
fn mutual_tls_with_redis_asking_for_client_certificates() {
    let Some(program) = require("redis-server") else {
        return;
    };
    let certs_dir = temp_dir("tls-certs");
    let certs = Certs::make(&certs_dir);
    let port = free_port();
    let dir = temp_dir("tls-redis-mtls");
    let args: Vec<String> = [
        "--port",
        "0",
        "--tls-port",
        &port.to_string(),
        "--tls-cert-file",
        &certs.path("good.pem"),
        "--tls-key-file",
        &certs.path("good.key"),
        "--tls-ca-cert-file",
        &certs.path("ca.pem"),
        "--tls-auth-clients",
        "yes",
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        dir.to_str().unwrap(),
        "--daemonize",
        "no",
    ]
    .map(String::from)
    .to_vec();
    let redis = Daemon::start("redis-server", &program, &args, &dir, port);
    let ping = [r"--request", r"PING\r\n", "--expect", r"+PONG\r\n"];
    let (cert, key) = (certs.path("client.pem"), certs.path("client.key"));
    let ca = certs.path("ca.pem");
    let mut with = vec!["--tls-ca", &ca, "--tls-cert", &cert, "--tls-key", &key];
    with.extend(["--connections", "2", "--count", "50"]);
    with.extend(ping);
    let j = redis.passes(&with);
    assert_eq!(j["messages"], 100, "{j}");
    // Without a client certificate the server refuses every connection.
    let mut without = vec![
        "--tls-ca",
        ca.as_str(),
        "--connections",
        "2",
        "--count",
        "50",
    ];
    without.extend(ping);
    let out = redis.stress(&without);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = json_of(&out);
    assert_eq!(j["messages"], 0, "{j}");
    assert!(j["errors"].as_u64().unwrap() >= 2, "{j}");
    drop(redis);
    let _ = fs::remove_dir_all(certs_dir);
}
