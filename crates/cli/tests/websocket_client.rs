//! `ringport stress --websocket` and `ringport send --websocket` against a real WebSocket
//! server: Debian's `python3-websockets` (a small asyncio echo written by the test into its own
//! directory), plaintext and over TLS (wss), and deliberately wrong variants of it (one that
//! corrupts a byte, one that echoes a message as two); a plain HTTP server (`python3 -m
//! http.server`) refusing the upgrade; and the `tokio-ws-echo` peer if it is built. Without
//! `python3-websockets` the tests are skipped with a loud message, except under `CI=true`,
//! where that is a failure (`.ci/run` installs it).
#![cfg(unix)]

mod support;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::{bin, free_port, json_of, said_lines, skip_missing, temp_dir, Daemon};

/// Debian's interpreter, the one `python3-websockets` is installed for.
const PYTHON: &str = "/usr/bin/python3";

/// The echo server: `MODE [CERT KEY]`; prints its port, then serves. `echo` sends every
/// message back; `corrupt` flips a byte of the third message of each connection; `split`
/// sends each message back as two.
const SERVER: &str = r#"
import asyncio, ssl, sys
import websockets

MODE = sys.argv[1]

async def handler(ws, path=None):
    n = 0
    async for m in ws:
        n += 1
        if MODE == "corrupt" and n == 3:
            b = bytearray(m if isinstance(m, bytes) else m.encode())
            b[len(b) // 2] ^= 0x01
            m = bytes(b)
        if MODE == "split" and len(m) > 1:
            await ws.send(m[: len(m) // 2])
            await ws.send(m[len(m) // 2 :])
        else:
            await ws.send(m)

async def main():
    tls = None
    if len(sys.argv) > 3:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(sys.argv[2], sys.argv[3])
    async with websockets.serve(handler, "127.0.0.1", 0, ssl=tls, max_size=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

asyncio.run(main())
"#;

impl Daemon {
    /// `ringport stress 127.0.0.1:PORT --json - --timeout 5 --threads 2 ARGS...`.
    fn stress(&self, args: &[&str]) -> Output {
        self.run_stress(&[&format!("127.0.0.1:{}", self.port)], args)
    }

    /// A run that must pass: its JSON, with the `websocket` object's counts checked.
    #[track_caller]
    fn passes(&self, args: &[&str]) -> serde_json::Value {
        let j = self.passed(&self.stress(args), args);
        let ws = &j["websocket"];
        assert_eq!(ws["messages_sent"], ws["messages_echoed"], "{ws}");
        assert!(ws["messages_sent"].as_u64().unwrap() > 0, "{ws}");
        for cause in ["status", "accept_key", "timeout", "other"] {
            assert_eq!(ws["failed"][cause], 0, "{ws}");
        }
        assert!(ws["upgrade_us"]["count"].as_u64().unwrap() > 0, "{ws}");
        j
    }
}

/// Whether Debian's `python3-websockets` is there; if not, a loud skip (a failure in CI).
fn have_websockets() -> bool {
    let ok = Command::new(PYTHON)
        .args(["-c", "import websockets"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skip_missing("python3-websockets", "apt-get install python3-websockets");
    }
    ok
}

/// The python echo in `mode` (with `tls`: its certificate and key), once it printed its port.
fn ws_server(mode: &str, tls: Option<(&Path, &Path)>) -> Daemon {
    let dir = temp_dir(&format!("ws-{mode}"));
    let script = dir.join("server.py");
    fs::write(&script, SERVER).unwrap();
    let mut cmd = Command::new(PYTHON);
    cmd.arg(&script).arg(mode);
    if let Some((cert, key)) = tls {
        cmd.args([cert, key]);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the python server");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the python server prints its port within 20 s");
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a port: {line:?}"));
    Daemon {
        name: "the python server",
        child,
        dir,
        port,
    }
}

/// `python3 -m http.server` on a free port: it answers the upgrade with 404.
fn http_server() -> Daemon {
    let dir = temp_dir("ws-http");
    let port = free_port();
    let child = Command::new(PYTHON)
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .arg("--directory")
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start python3 -m http.server");
    Daemon::accepting("http.server", child, dir, port, Duration::from_secs(20))
}

#[test]
fn echo_of_messages_pipelined_with_headers_verified_as_messages() {
    if !have_websockets() {
        return;
    }
    let server = ws_server("echo", None);
    let j = server.passes(&[
        "--websocket=/chat?room=1",
        "--header",
        "Origin: http://127.0.0.1",
        "--header",
        "X-Token: abc",
        "--connections",
        "4",
        "--count",
        "50",
        "--pipeline",
        "4",
        "--size",
        "1000",
    ]);
    let ws = &j["websocket"];
    assert_eq!(ws["path"], "/chat?room=1", "{ws}");
    assert_eq!(ws["upgrades"], 4, "{ws}");
    assert_eq!(ws["messages_sent"], 200, "{ws}");
    assert_eq!(j["messages"], 200, "{j}");
    // Every connection closed with the close handshake: the server's 1000 back.
    assert_eq!(ws["close_codes"]["1000"], 4, "{ws}");
    // Messages of both header sizes (7-bit and 16-bit lengths) and the article's text.
    server.passes(&[
        "--websocket",
        "--connections",
        "2",
        "--count",
        "20",
        "--size",
        "100",
    ]);
    server.passes(&[
        "--websocket",
        "--connections",
        "2",
        "--count",
        "5",
        "--size",
        "70000",
    ]);
    server.passes(&[
        "--websocket",
        "--connections",
        "2",
        "--count",
        "5",
        "--message",
        "héllo",
    ]);
}

#[test]
fn stream_churn_and_rate_compose_with_websocket() {
    if !have_websockets() {
        return;
    }
    let server = ws_server("echo", None);
    let j = server.passes(&[
        "--websocket",
        "--connections",
        "3",
        "--stream",
        "--window",
        "262144",
        "--duration",
        "1",
    ]);
    assert_eq!(j["websocket"]["upgrades"], 3, "{j}");
    assert!(j["stream"]["bytes"].as_u64().unwrap() > 0, "{j}");
    // Churn at a rate: every new connection upgrades again.
    let j = server.passes(&[
        "--websocket",
        "--connections",
        "4",
        "--messages-per-connection",
        "5",
        "--count",
        "20",
        "--rate",
        "400",
    ]);
    let ws = &j["websocket"];
    assert_eq!(ws["upgrades"], j["churn"]["connections"], "{j}");
    assert_eq!(ws["upgrades"], 16, "{ws}");
    assert_eq!(ws["messages_sent"], 80, "{ws}");
    assert_eq!(ws["close_codes"]["1000"], 16, "{ws}");
}

#[test]
fn wss_over_tls() {
    if !have_websockets() {
        return;
    }
    let dir = temp_dir("ws-certs");
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    fs::write(&cert, ck.cert.pem()).unwrap();
    fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let server = ws_server("echo", Some((&cert, &key)));
    let ca = cert.to_str().unwrap();
    let j = server.passes(&[
        "--websocket",
        "--tls",
        "--tls-ca",
        ca,
        "--connections",
        "3",
        "--count",
        "30",
        "--size",
        "3000",
        "--messages-per-connection",
        "10",
    ]);
    assert_eq!(j["tls"]["handshakes"], 9, "{j}");
    assert_eq!(j["websocket"]["upgrades"], 9, "{j}");
    assert_eq!(j["websocket"]["messages_echoed"], 90, "{j}");
    // send: one text message, then one binary from a file.
    let out = bin()
        .args(["send", "--websocket", "--tls", "--tls-ca", ca])
        .arg(format!("127.0.0.1:{}", server.port))
        .arg("hello over wss")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, b"hello over wss\n");
    let file = dir.join("bytes.bin");
    let bytes: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 256) as u8).collect();
    fs::write(&file, &bytes).unwrap();
    let out = bin()
        .args(["send", "--websocket", "--tls", "--tls-ca", ca, "--file"])
        .arg(&file)
        .arg(format!("127.0.0.1:{}", server.port))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, bytes);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_refused_upgrade_stops_the_run_with_its_status_line() {
    if !have_websockets() {
        return;
    }
    let server = http_server();
    let out = server.stress(&["--websocket=/ws", "--connections", "2", "--count", "5"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        out.stdout.is_empty(),
        "no report: nothing ran: {}\n{err}",
        String::from_utf8_lossy(&out.stdout)
    );
    let lines: Vec<&str> = said_lines(&err);
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(lines[0].contains("refused the upgrade to /ws"), "{err}");
    assert!(lines[0].contains("404"), "the status line is named: {err}");
    let out = bin()
        .args(["send", "--websocket=/ws"])
        .arg(format!("127.0.0.1:{}", server.port))
        .arg("hi")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("refused the WebSocket upgrade: status: HTTP/1.0 404"),
        "{out:?}"
    );
}

#[test]
fn a_corrupted_byte_or_a_split_echo_fails_the_run() {
    if !have_websockets() {
        return;
    }
    let corrupt = ws_server("corrupt", None);
    let out = corrupt.stress(&["--websocket", "--connections", "2", "--count", "10"]);
    let j = json_of(&out);
    assert_eq!(out.status.code(), Some(1), "{j}");
    assert_eq!(j["errors_by_kind"]["mismatch"], 2, "{j}");
    assert!(
        j["first_error"]["detail"]
            .as_str()
            .is_some_and(|m| m.contains("message 3")),
        "the wrong byte is attributed to its message: {j}"
    );
    let split = ws_server("split", None);
    let out = split.stress(&["--websocket", "--connections", "2", "--count", "10"]);
    let j = json_of(&out);
    assert_eq!(out.status.code(), Some(1), "{j}");
    assert_eq!(j["errors"], 2, "{j}");
    assert!(
        j["first_error"]["detail"]
            .as_str()
            .is_some_and(|m| m.contains("each message must come back as one message")),
        "{j}"
    );
}

#[test]
fn segments_merge_their_websocket_figures() {
    if !have_websockets() {
        return;
    }
    let server = ws_server("echo", None);
    let dir = temp_dir("ws-merge");
    let path = |f: &str| dir.join(f).to_str().unwrap().to_string();
    for seg in ["1/2", "2/2"] {
        let n = &seg[..1];
        let out = bin()
            .args([
                "stress",
                &format!("127.0.0.1:{}", server.port),
                "--websocket",
            ])
            .args(["--connections", "4", "--count", "10", "--segment", seg])
            .args(["--json", &path(&format!("{n}.json"))])
            .args(["--hdr-log", &path(&format!("{n}.hlog"))])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
    }
    let out = bin()
        .args(["merge", &path("1.hlog"), &path("1.json")])
        .args([&path("2.hlog"), &path("2.json"), "--json", "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let j = json_of(&out);
    let ws = &j["websocket"];
    assert_eq!(ws["upgrades"], 4, "{ws}");
    assert_eq!(ws["messages_sent"], 40, "{ws}");
    assert_eq!(ws["close_codes"]["1000"], 4, "{ws}");
    assert_eq!(
        ws["upgrade_us"]["count"], 4,
        "from the added histograms: {ws}"
    );
    let _ = fs::remove_dir_all(&dir);
}

/// The `tokio-ws-echo` peer (tokio-tungstenite), when it is built beside the repository.
#[test]
fn tokio_tungstenite_peer_if_built() {
    let peer = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../../shared/peers/tokio-ws-echo/target/release/tokio-ws-echo");
    if !peer.is_file() {
        eprintln!(
            "\n=== SKIPPED: {} is not built (cargo build --release in its folder) ===\n",
            peer.display()
        );
        return;
    }
    let port = free_port();
    let child = Command::new(&peer)
        .args(["--port", &port.to_string(), "--threads", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Daemon::accepting(
        "tokio-ws-echo",
        child,
        temp_dir("ws-tokio"),
        port,
        Duration::from_secs(10),
    );
    let j = server.passes(&["--websocket", "--connections", "4", "--count", "100"]);
    assert_eq!(j["websocket"]["upgrades"], 4, "{j}");
}

/// Flags that cannot be sent are usage errors (exit code 2), one line each, before anything
/// connects.
#[test]
fn bad_websocket_flags_are_usage_errors() {
    for (args, says) in [
        (
            &["stress", "--websocket=chat"][..],
            "the path must start with /",
        ),
        (&["stress", "--header", "X-A: b"][..], "--websocket"),
        (
            &["stress", "--websocket", "--header", "Sec-WebSocket-Key: x"][..],
            "writes Sec-WebSocket-Key itself",
        ),
        (
            &["stress", "--websocket", "--header", "no colon"][..],
            "'Name: value'",
        ),
        (
            &["send", "--websocket", "--udp", "hi"][..],
            "cannot be used with",
        ),
    ] {
        let out = bin()
            .args(args)
            .arg("127.0.0.1:1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}
