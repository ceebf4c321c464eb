//! `ringport serve --websocket` against a real client: Debian's `python3-websockets`, driven by
//! a small script this test writes. On every model and backend: text and binary messages of 0 B
//! to 1 MiB echoed with their type, fragmented sends, a ping, the close handshake with the
//! client's code; messages over `--ws-max-message` (1 MiB by default) closed with 1009; the graceful shutdown's
//! close frame (1001); the summary's `websocket:` line and the ready line. `wss` against
//! `serve --websocket --tls-self-signed --tls-cert-out F`. Without the python module the test
//! is skipped with a loud message, except under `CI=true`, where it is a failure (`.ci/run`
//! installs `python3-websockets`).
#![cfg(unix)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{bin, Server};

const SCRIPT: &str = r#"
import asyncio, ssl, sys
import websockets

uri, mode, cafile = sys.argv[1], sys.argv[2], sys.argv[3]

def context():
    if not uri.startswith("wss:"):
        return None
    return ssl.create_default_context(cafile=cafile)

def text_of(size):
    # Exactly `size` bytes of UTF-8, two-byte characters among them.
    return "a" * (size % 2) + "\u00e9" * (size // 2)

async def echo():
    async with websockets.connect(uri, ssl=context(), max_size=None, compression=None,
                                  open_timeout=10, close_timeout=10) as ws:
        for size in [0, 1, 125, 126, 65535, 65536, 1 << 20]:
            data = bytes((i * 7 + size) % 256 for i in range(size))
            await ws.send(data)
            got = await asyncio.wait_for(ws.recv(), 20)
            assert isinstance(got, bytes) and got == data, f"binary of {size}"
            text = text_of(size)
            await ws.send(text)
            got = await asyncio.wait_for(ws.recv(), 20)
            assert isinstance(got, str) and got == text, f"text of {size}"
        await ws.send(["frag", "mented ", "t\u00e9xt"])
        assert await asyncio.wait_for(ws.recv(), 20) == "fragmented t\u00e9xt"
        await ws.send([b"\x00" * 70000, b"\x01" * 1000, b""])
        assert await asyncio.wait_for(ws.recv(), 20) == b"\x00" * 70000 + b"\x01" * 1000
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 10)
        await ws.close(code=4000, reason="done")
        assert ws.close_code == 4000, ws.close_code
    print("echo ok", flush=True)

async def too_big():
    for message in ["x" * ((1 << 20) + 1), [b"y" * 600000, b"y" * 600000]]:
        async with websockets.connect(uri, ssl=context(), max_size=None, compression=None,
                                      open_timeout=10, close_timeout=10) as ws:
            await ws.send(message)
            try:
                await asyncio.wait_for(ws.recv(), 20)
                raise AssertionError("no close")
            except websockets.exceptions.ConnectionClosed:
                pass
            assert ws.close_code == 1009, ws.close_code
    print("too big ok", flush=True)

async def drain():
    async with websockets.connect(uri, ssl=context(), open_timeout=10, close_timeout=10) as ws:
        await ws.send("last words")
        assert await asyncio.wait_for(ws.recv(), 20) == "last words"
        print("upgraded", flush=True)
        try:
            await asyncio.wait_for(ws.recv(), 30)
            raise AssertionError("a message instead of the close")
        except websockets.exceptions.ConnectionClosed:
            pass
        print(f"closed {ws.close_code}", flush=True)

asyncio.run({"echo": echo, "too-big": too_big, "drain": drain}[mode]())
"#;

/// A python 3 that has the `websockets` module (Debian's `python3-websockets`), or `None` (the
/// test is skipped, except under `CI=true`).
fn python() -> Option<PathBuf> {
    let found = ["python3", "/usr/bin/python3"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| {
            Command::new(p)
                .args(["-c", "import websockets"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3-websockets is not installed and CI=true: install it (.ci/run does)"
        );
        eprintln!(
            "\n=== SKIPPED: the python module `websockets` is not installed; install it \
             (Debian: apt-get install python3-websockets) to run this test ===\n"
        );
    }
    found
}

/// A directory of this test's own, with the script in it.
fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringport-ws-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("client.py"), SCRIPT).unwrap();
    dir
}

/// Runs the script in `mode` against `uri` (bounded), returning its stdout; panics with its
/// stderr when it fails.
fn client(python: &Path, dir: &Path, uri: &str, mode: &str, cafile: &str) -> String {
    let mut child = Command::new(python)
        .arg(dir.join("client.py"))
        .args([uri, mode, cafile])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the python client did not finish within 120 s ({mode})");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the python client ({mode}) failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The summary's `websocket:` line.
fn websocket_line(server: &Server) -> String {
    let out = server.stdout();
    out.lines()
        .find(|l| l.trim_start().starts_with("websocket:"))
        .unwrap_or_else(|| panic!("no websocket line in the summary: {out}"))
        .trim()
        .to_string()
}

/// The drain: the client is upgraded and idle when the server is told to stop; it receives its
/// close frame with 1001.
fn drain(python: &Path, dir: &Path, server: &mut Server, uri: &str, cafile: &str) {
    let mut child = Command::new(python)
        .arg(dir.join("client.py"))
        .args([uri, "drain", cafile])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.by_ref() {
            let _ = tx.send(line.unwrap_or_default());
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
    assert_eq!(first, "upgraded", "the drain client's first line");
    server.signal("TERM");
    let closed = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
    assert_eq!(closed, "closed 1001");
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(server.wait_exit(Duration::from_secs(20)).success());
}

for_each_model! {
    fn python_websockets_client_gets_its_echo_and_its_close_codes(model: &str) {
        let Some(python) = python() else { return };
        let dir = workdir(&format!("plain-{model}"));
        let mut server = Server::start(model, &["--websocket"]);
        assert!(server.ready.websocket && !server.ready.tls);
        let uri = format!("ws://{}/echo", server.addr);
        assert_eq!(client(&python, &dir, &uri, "echo", "-"), "echo ok\n");
        assert_eq!(client(&python, &dir, &uri, "too-big", "-"), "too big ok\n");
        drain(&python, &dir, &mut server, &uri, "-");
        let line = websocket_line(&server);
        // Seven sizes twice, a fragmented text, a fragmented binary, the drain's last words.
        assert!(line.starts_with("websocket: 4 upgrades; messages: text 9, binary 8; 1 pings;"), "{line}");
        assert!(line.contains("closes received: 1000 0, 1001 0, no code 0, other 1; 1001 sent 1"), "{line}");
        assert!(line.ends_with("failed: too big 2"), "{line}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The summary's `tls:` line.
fn tls_line(server: &Server) -> String {
    let out = server.stdout();
    out.lines()
        .find(|l| l.trim_start().starts_with("tls:"))
        .unwrap_or_else(|| panic!("no tls line in the summary: {out}"))
        .trim()
        .to_string()
}

for_each_model! {
    fn wss_with_a_self_signed_certificate(model: &str) {
        let Some(python) = python() else { return };
        let dir = workdir(&format!("wss-{model}"));
        let cert = dir.join("cert.pem");
        let cert_arg = cert.to_str().unwrap();
        let mut server = Server::start(
            model,
            &[
                "--websocket",
                "--tls-self-signed",
                "--tls-cert-out",
                cert_arg,
            ],
        );
        assert!(server.ready.websocket && server.ready.tls);
        let uri = format!("wss://{}/", server.addr);
        assert_eq!(client(&python, &dir, &uri, "echo", cert_arg), "echo ok\n");
        drain(&python, &dir, &mut server, &uri, cert_arg);
        let line = websocket_line(&server);
        assert!(
            line.starts_with("websocket: 2 upgrades; messages: text 9, binary 8;"),
            "{line}"
        );
        assert!(line.ends_with("none failed"), "{line}");
        // The drain's close frame went out before close_notify, on both connections.
        assert!(line.contains("1001 sent 1"), "{line}");
        let tls = tls_line(&server);
        assert!(tls.starts_with("tls: 2 handshakes"), "{tls}");
        assert!(tls.contains("2 close_notify sent"), "{tls}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn ws_max_message_takes_binary_units_and_refuses_nonsense() {
    let out = bin()
        .args(["serve", "--websocket", "--ws-max-message", "1.5M"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ws-max-message"));
}

/// `ringport stress --websocket` (`extra` flags) against this server: its JSON result.
fn stress_ws(server: &Server, extra: &[&str]) -> serde_json::Value {
    let out = bin()
        .args(["stress", "--websocket=/echo", &server.addr.to_string()])
        .args(["--duration", "1", "--warmup", "0", "--json", "-"])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stress {extra:?}: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"))
}

for_each_model! {
    fn ringport_stress_websocket_against_ringport_serve_websocket(model: &str) {
        let mut server = Server::start(model, &["--websocket"]);
        // Ping-pong of 4 KiB messages, a stream of 64 KiB ones, and churn: every echo verified
        // as a message by the client, every upgrade counted by both sides.
        // The single model serves one client at a time.
        let (four, two) = if model == "single" { ("1", "1") } else { ("4", "2") };
        let runs = [
            stress_ws(&server, &["--connections", four, "--size", "4096"]),
            stress_ws(&server, &["--connections", two, "--size", "65536", "--stream"]),
            stress_ws(
                &server,
                &["--connections", two, "--messages-per-connection", "5", "--rate", "200"],
            ),
        ];
        let mut upgrades = 0;
        for json in &runs {
            let ws = &json["websocket"];
            let sent = ws["messages_sent"].as_u64().unwrap();
            let echoed = ws["messages_echoed"].as_u64().unwrap();
            assert!(sent > 0 && echoed > 0, "{ws}");
            // A stream stops with messages in flight; ping-pong and churn only with those
            // not yet answered.
            assert!(echoed <= sent && sent - echoed <= 64, "{ws}");
            assert_eq!(ws["failed"].as_object().map(|f| f.values().filter_map(|v| v.as_u64()).sum::<u64>()), Some(0), "{ws}");
            upgrades += ws["upgrades"].as_u64().unwrap();
        }
        assert!(runs[2]["websocket"]["upgrades"].as_u64().unwrap() >= 10, "churn reconnects");
        server.signal("TERM");
        assert!(server.wait_exit(Duration::from_secs(20)).success());
        let line = websocket_line(&server);
        // The probe of each run's upgrade is an upgrade too.
        let served: u64 = line
            .strip_prefix("websocket: ")
            .and_then(|l| l.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        assert!(served >= upgrades && served <= upgrades + 3, "served {served}, stress saw {upgrades}: {line}");
    }
}

for_each_model! {
    fn ringport_stress_websocket_over_tls_against_ringport_serve_wss(model: &str) {
        let dir = workdir(&format!("stress-wss-{model}"));
        let cert = dir.join("cert.pem");
        let cert_arg = cert.to_str().unwrap();
        let mut server = Server::start(
            model,
            &["--websocket", "--tls-self-signed", "--tls-cert-out", cert_arg],
        );
        assert!(server.ready.websocket && server.ready.tls);
        let tls = ["--tls", "--tls-ca", cert_arg];
        let (four, two) = if model == "single" { ("1", "1") } else { ("4", "2") };
        let runs = [
            stress_ws(&server, &[&["--connections", four, "--size", "4096"][..], &tls].concat()),
            stress_ws(
                &server,
                &[&["--connections", two, "--size", "65536", "--stream"][..], &tls].concat(),
            ),
        ];
        for json in &runs {
            let ws = &json["websocket"];
            let sent = ws["messages_sent"].as_u64().unwrap();
            let echoed = ws["messages_echoed"].as_u64().unwrap();
            assert!(sent > 0 && echoed > 0, "{ws}");
            assert!(echoed <= sent && sent - echoed <= 64, "{ws}");
            assert_eq!(ws["failed"].as_object().map(|f| f.values().filter_map(|v| v.as_u64()).sum::<u64>()), Some(0), "{ws}");
        }
        server.signal("TERM");
        assert!(server.wait_exit(Duration::from_secs(20)).success());
        let line = websocket_line(&server);
        assert!(line.ends_with("none failed"), "{line}");
        let tls = tls_line(&server);
        assert!(tls.ends_with("none failed"), "{tls}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
