//! The engine with `--websocket` against an in-test WebSocket echo made of the codec
//! (`ringport-ws`): messages verified as messages on every backend, the server's pings
//! answered, failed upgrades counted by cause (a wrong accept key, no answer), and a refused
//! upgrade stopping the run before any load with its status line.

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use ringport_stress::config::StressConfig;
use ringport_stress::engine::{run, StressError};
use ringport_stress::error::ErrorKind;
use ringport_stress::ws::options::WsOptions;
use ringport_ws::{accept_key, apply_mask, handshake, FrameHeader, Opcode};
use util::{config, BACKENDS};

/// What the test server does with each connection after the first (the probe's).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// A correct echo that pings each connection once, right after the upgrade.
    EchoWithPing,
    /// Answers the upgrade with an accept key for another key.
    WrongAccept,
    /// Never answers the upgrade.
    Silent,
    /// Refuses every upgrade (the probe's too) with 403.
    Refuse,
}

/// What the server saw.
#[derive(Debug, Default)]
struct Seen {
    /// Pongs that carried the ping's payload back.
    pongs: AtomicU64,
    /// Upgrade requests with the `--header` the test sets.
    with_header: AtomicU64,
}

/// Starts a server in `mode`; returns its port and what it sees.
fn ws_server(mode: Mode) -> (u16, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    let s = Arc::clone(&seen);
    thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { continue };
            let seen = Arc::clone(&s);
            // The first connection is the probe's: answered right except under Refuse.
            let mode = if n == 0 && mode != Mode::Refuse {
                Mode::EchoWithPing
            } else {
                mode
            };
            thread::spawn(move || serve(stream, mode, &seen));
        }
    });
    (port, seen)
}

fn serve(mut s: TcpStream, mode: Mode, seen: &Seen) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 << 10];
    let consumed = loop {
        let n = match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        match handshake::parse_request(&buf) {
            Ok(Some(req)) => {
                let head = String::from_utf8_lossy(&buf[..req.consumed]).to_string();
                if head.contains("\r\nX-Test: yes\r\n") {
                    seen.with_header.fetch_add(1, Ordering::Relaxed);
                }
                let mut out = Vec::new();
                match mode {
                    Mode::Refuse => handshake::write_refusal(403, "Forbidden", &mut out),
                    Mode::WrongAccept => {
                        handshake::write_response(&accept_key(b"another key"), None, &mut out)
                    }
                    Mode::Silent => {
                        // Holds the connection, answering nothing, until the client leaves.
                        while matches!(s.read(&mut chunk), Ok(n) if n > 0) {}
                        return;
                    }
                    Mode::EchoWithPing => {
                        handshake::write_response(&accept_key(req.key), None, &mut out);
                        frame(Opcode::Ping, b"are you there", &mut out);
                    }
                }
                let _ = s.write_all(&out);
                if mode == Mode::Refuse || mode == Mode::WrongAccept {
                    let _ = s.shutdown(Shutdown::Write);
                    return;
                }
                break req.consumed;
            }
            Ok(None) => {}
            Err(_) => return,
        }
    };
    buf.drain(..consumed);
    loop {
        // Whole frames out of `buf`, each answered.
        while let Ok(Some((h, n))) = FrameHeader::parse(&buf) {
            let len = h.len as usize;
            if buf.len() < n + len {
                break;
            }
            let mut body = buf[n..n + len].to_vec();
            apply_mask(&mut body, h.mask.expect("a client masks its frames"), 0);
            buf.drain(..n + len);
            let mut out = Vec::new();
            match h.opcode {
                Opcode::Pong if body == b"are you there" => {
                    seen.pongs.fetch_add(1, Ordering::Relaxed);
                }
                Opcode::Close => {
                    frame(Opcode::Close, &body, &mut out);
                    let _ = s.write_all(&out);
                    let _ = s.shutdown(Shutdown::Write);
                    return;
                }
                Opcode::Text | Opcode::Binary => {
                    assert!(h.fin, "one frame per message");
                    frame(h.opcode, &body, &mut out);
                }
                _ => {}
            }
            if s.write_all(&out).is_err() {
                return;
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Appends a server frame (unmasked) of `body`.
fn frame(opcode: Opcode, body: &[u8], out: &mut Vec<u8>) {
    let mut head = [0u8; 14];
    let n = FrameHeader {
        fin: true,
        opcode,
        mask: None,
        len: body.len() as u64,
    }
    .encode(&mut head);
    out.extend_from_slice(&head[..n]);
    out.extend_from_slice(body);
}

fn ws_config(port: u16) -> StressConfig {
    StressConfig {
        connections: 4,
        count: Some(30),
        pipeline: 3,
        size: Some(500),
        websocket: Some(WsOptions::new(Some("/echo"), &["X-Test: yes".to_string()]).unwrap()),
        ..config(port)
    }
}

#[test]
fn messages_verified_and_pings_answered_on_every_backend() {
    for &backend in BACKENDS {
        let (port, seen) = ws_server(Mode::EchoWithPing);
        let c = StressConfig {
            backend,
            ..ws_config(port)
        };
        let o = run(&c).unwrap_or_else(|e| panic!("{backend:?}: {e}"));
        let r = &o.report;
        assert_eq!(r.errors, 0, "{backend:?}: {:?}", r.first_error);
        assert_eq!(r.messages, 4 * 30);
        let ws = r.websocket.as_ref().expect("a websocket object");
        assert_eq!(
            (ws.upgrades, ws.messages_sent, ws.messages_echoed),
            (4, 120, 120)
        );
        assert_eq!(ws.upgrade_us.count, 4);
        assert_eq!(ws.close_codes.get(&1000), Some(&4), "{ws:?}");
        assert_eq!(ws.path, "/echo");
        // The probe's connection and the run's four each sent the header.
        assert_eq!(seen.with_header.load(Ordering::Relaxed), 5);
        // Each of the run's connections answered its ping (the probe closes at once).
        assert!(seen.pongs.load(Ordering::Relaxed) >= 4, "{backend:?}");
        assert_eq!(o.ws.as_ref().unwrap().upgrade.len(), 4);
    }
}

#[test]
fn failed_upgrades_are_counted_by_cause() {
    let (port, _) = ws_server(Mode::WrongAccept);
    let o = run(&ws_config(port)).unwrap();
    let r = &o.report;
    let ws = r.websocket.as_ref().unwrap();
    assert_eq!(ws.failed.accept_key, 4, "{ws:?}");
    assert_eq!((ws.upgrades, ws.failed.total()), (0, 4));
    assert_eq!(r.errors_by_kind.get(ErrorKind::ConnectFailed), 4, "{r:?}");
    assert!(
        r.first_error
            .as_ref()
            .is_some_and(|e| e.detail.contains("WebSocket upgrade failed: accept_key")),
        "{:?}",
        r.first_error
    );
    assert_eq!(r.exit_code(), 1);

    let (port, _) = ws_server(Mode::Silent);
    let c = StressConfig {
        timeout: Duration::from_millis(500),
        ..ws_config(port)
    };
    let o = run(&c).unwrap();
    let ws = o.report.websocket.as_ref().unwrap();
    assert_eq!((ws.failed.timeout, ws.upgrades), (4, 0), "{ws:?}");
}

#[test]
fn a_refused_upgrade_stops_the_run_before_any_load() {
    let (port, _) = ws_server(Mode::Refuse);
    match run(&ws_config(port)) {
        Err(e @ StressError::WebSocket(_)) => {
            let text = e.to_string();
            assert!(
                text.contains("refused the upgrade to /echo: status: HTTP/1.1 403 Forbidden"),
                "{text}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
