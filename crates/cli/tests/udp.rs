//! `serve --udp` and `--udp-only` on the real binary, on every backend: every size echoed byte
//! for byte to its sender, truncation counted and never echoed cut, the reflector rules (denied
//! source ports, the per-source rate) holding and counted, a flood not growing the server, and
//! `send --udp`.

mod support;

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use support::{bin, Rng, Server};

for_each_backend!(
    every_size_is_echoed_byte_for_byte_to_its_sender,
    a_datagram_longer_than_the_buffer_is_counted_and_never_echoed_cut,
    denied_source_ports_are_not_echoed_and_counted,
    the_rate_limit_holds_and_is_counted,
    a_flood_does_not_grow_the_server,
);

/// `ringport serve --port 0 --udp-only --backend BACKEND` with `extra` flags.
fn serve_udp(backend: &str, extra: &[&str]) -> Server {
    let mut cmd = bin();
    cmd.args(["serve", "--port", "0", "--udp-only", "--backend", backend]);
    cmd.args(extra);
    Server::spawn(cmd)
}

/// A client socket on loopback whose receives give up after 5 s.
fn client() -> UdpSocket {
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c
}

/// Sends `payload` from `c` to `to` and checks that the one datagram that comes back is it,
/// from `to`.
#[track_caller]
fn round_trip(c: &UdpSocket, to: SocketAddr, payload: &[u8]) {
    c.send_to(payload, to).unwrap();
    let mut back = vec![0u8; 65_536];
    let (n, from) = c
        .recv_from(&mut back)
        .unwrap_or_else(|e| panic!("no echo of {} bytes: {e}", payload.len()));
    assert_eq!(from, to);
    assert_eq!(n, payload.len(), "the echo's length");
    assert!(
        back[..n] == *payload,
        "{} bytes, byte for byte",
        payload.len()
    );
}

/// What the UDP echo's summary says, once the server has stopped.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    datagrams_in: u64,
    datagrams_out: u64,
    bytes_out: u64,
    truncated: u64,
    denied_port: u64,
    rate_limited: u64,
}

/// Stops `server` gracefully and reads its summary's UDP lines.
#[track_caller]
fn stop(mut server: Server) -> Counts {
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(20)).success());
    let out = server.stdout();
    let line = |prefix: &str| -> String {
        out.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in {out:?}"))
            .to_string()
    };
    let num_before = |line: &str, word: &str| -> u64 {
        let at = line
            .find(word)
            .unwrap_or_else(|| panic!("no {word:?} in {line}"));
        line[..at]
            .split_whitespace()
            .last()
            .and_then(|n| n.trim_start_matches('(').parse().ok())
            .unwrap_or_else(|| panic!("no number before {word:?} in {line}"))
    };
    let udp = line("udp:");
    let policy = line("udp dropped by policy:");
    Counts {
        datagrams_out: num_before(&udp, " echoed of"),
        datagrams_in: num_before(&udp, " datagram"),
        bytes_out: num_before(&udp, " bytes echoed"),
        truncated: num_before(&udp, " truncated"),
        denied_port: num_before(&policy, " from denied ports"),
        rate_limited: num_before(&policy, " over --udp-max-pps-per-ip"),
    }
}

/// Every datagram that arrives on `c` within `limit` of the last.
fn drain(c: &UdpSocket, limit: Duration) -> Vec<Vec<u8>> {
    c.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while let Ok(n) = c.recv(&mut buf) {
        got.push(buf[..n].to_vec());
    }
    got
}

/// Datagrams waiting on `c` now (none will come: the server has exited).
fn left_on(c: &UdpSocket) -> usize {
    c.set_nonblocking(true).unwrap();
    let mut buf = vec![0u8; 65_536];
    let mut n = 0;
    loop {
        match c.recv(&mut buf) {
            Ok(_) => n += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return n,
            Err(e) => panic!("{e}"),
        }
    }
}

fn every_size_is_echoed_byte_for_byte_to_its_sender(backend: &str) {
    let server = serve_udp(backend, &[]);
    assert!(server.ready.udp, "the ready line says udp");
    let (a, b) = (client(), client());
    let mut rng = Rng::new(862);
    let mut sizes = vec![0, 1, 2, 64, 1472, 1473, 8192, 65_507];
    sizes.extend((0..8).map(|_| rng.range(0, 65_507)));
    let mut bytes = 0;
    for &size in &sizes {
        let payload = rng.bytes(size);
        // Two senders in turn: each echo goes to its own sender.
        round_trip(&a, server.addr, &payload);
        round_trip(&b, server.addr, &payload);
        bytes += 2 * size as u64;
    }
    let counts = stop(server);
    let n = 2 * sizes.len() as u64;
    assert_eq!(
        counts,
        Counts {
            datagrams_in: n,
            datagrams_out: n,
            bytes_out: bytes,
            ..Counts::default()
        }
    );
    assert_eq!(left_on(&a) + left_on(&b), 0, "one echo per datagram");
}

fn a_datagram_longer_than_the_buffer_is_counted_and_never_echoed_cut(backend: &str) {
    let server = serve_udp(backend, &["--udp-buffer-size", "1000"]);
    let c = client();
    c.send_to(&[7; 1001], server.addr).unwrap();
    c.send_to(&[7; 60_000], server.addr).unwrap();
    // The next one fits: its echo is the only one.
    round_trip(&c, server.addr, &[8; 1000]);
    let counts = stop(server);
    assert_eq!(
        (counts.datagrams_in, counts.truncated, counts.datagrams_out),
        (3, 2, 1)
    );
    assert_eq!(left_on(&c), 0, "no cut echo");
}

fn denied_source_ports_are_not_echoed_and_counted(backend: &str) {
    let denied = client();
    let denied_port = denied.local_addr().unwrap().port().to_string();
    let server = serve_udp(backend, &["--udp-deny-port", &denied_port]);
    denied.send_to(b"from a denied port", server.addr).unwrap();
    let mut expected_denied = 1;
    // Port 19 (chargen) needs the privilege to bind it.
    let chargen = match UdpSocket::bind("127.0.0.1:19") {
        Ok(s) => Some(s),
        Err(e) if matches!(e.kind(), ErrorKind::PermissionDenied | ErrorKind::AddrInUse) => {
            eprintln!("SKIPPED: a datagram from port 19 (cannot bind it: {e})");
            None
        }
        Err(e) => panic!("{e}"),
    };
    if let Some(s) = &chargen {
        s.send_to(b"from chargen", server.addr).unwrap();
        expected_denied += 1;
    }
    let c = client();
    round_trip(&c, server.addr, b"from anywhere else");
    let counts = stop(server);
    assert_eq!(counts.denied_port, expected_denied);
    assert_eq!(counts.datagrams_in, expected_denied + 1);
    assert_eq!(counts.datagrams_out, 1);
    assert_eq!(left_on(&denied), 0, "nothing echoed to the denied port");
    if let Some(s) = &chargen {
        assert_eq!(left_on(s), 0, "nothing echoed to port 19");
    }
}

fn the_rate_limit_holds_and_is_counted(backend: &str) {
    // Given explicitly, the rate applies to loopback sources too.
    let server = serve_udp(backend, &["--udp-max-pps-per-ip", "10"]);
    let c = client();
    let sent = 50;
    let t0 = Instant::now();
    for i in 0..sent {
        c.send_to(&[i as u8; 32], server.addr).unwrap();
    }
    // Every datagram is in the server's socket by now (loopback delivers at once); the echoes
    // come back while it works through them.
    let echoes = drain(&c, Duration::from_millis(500));
    let counts = stop(server);
    // The server has made every decision by the time it exits.
    let elapsed = t0.elapsed();
    assert_eq!(counts.datagrams_in, sent, "all received");
    assert_eq!(
        counts.datagrams_out + counts.rate_limited,
        sent,
        "each echoed or refused: {counts:?}"
    );
    // A burst of one second's worth, and what the bucket refilled meanwhile.
    let allowed = 10 + (elapsed.as_secs_f64() * 10.0).ceil() as u64;
    assert!(
        counts.datagrams_out <= allowed,
        "{} echoed, at most {allowed} allowed",
        counts.datagrams_out
    );
    assert!(counts.rate_limited >= sent - allowed, "{counts:?}");
    assert_eq!(
        echoes.len() as u64 + left_on(&c) as u64,
        counts.datagrams_out
    );
}

fn a_flood_does_not_grow_the_server(backend: &str) {
    let server = serve_udp(backend, &["--udp-buffers", "16"]);
    let before = server.rss_kib();
    let addr = server.addr;
    let senders: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                // Windows of 32 datagrams, the first the largest, as fast as the echoes come
                // back (a window that loses some moves on after 100 ms): the server works flat
                // out on thousands.
                let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                s.set_read_timeout(Some(Duration::from_millis(100)))
                    .unwrap();
                let mut rng = Rng::new(t as u64);
                let big = vec![t as u8; 65_507];
                let mut back = vec![0u8; 65_536];
                for _ in 0..100 {
                    for i in 0..32 {
                        let size = if i == 0 { 65_507 } else { rng.range(1, 2000) };
                        let _ = s.send_to(&big[..size], addr);
                    }
                    for _ in 0..32 {
                        if s.recv(&mut back).is_err() {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    // The server still answers (its socket's queue may still be full of the flood, which drops
    // a datagram: asked again until one echo comes back).
    let c = client();
    c.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let answered = (0..20).any(|_| {
        c.send_to(b"still here", addr).unwrap();
        let mut back = [0u8; 64];
        matches!(c.recv(&mut back), Ok(10) if &back[..10] == b"still here")
    });
    assert!(answered, "no echo after the flood");
    let after = server.rss_kib();
    let counts = stop(server);
    eprintln!("flood: RSS {before} KiB before, {after} KiB after; {counts:?}");
    // Its buffers (16 of 64 KiB) and little else: no per-datagram memory.
    let bound = 16 * 64 + 4096;
    assert!(
        after <= before + bound,
        "RSS grew from {before} KiB to {after} KiB, more than the buffers' {bound} KiB"
    );
    assert!(counts.datagrams_in > 1000, "{counts:?}");
}

#[test]
fn udp_beside_tcp_on_the_same_port_number() {
    let mut cmd = bin();
    cmd.args(["serve", "--port", "0", "--workers", "1", "--udp"]);
    let server = Server::spawn(cmd);
    assert!(server.ready.udp);
    let mut tcp = server.connect();
    support::round_trip(&mut tcp, b"over tcp");
    drop(tcp);
    round_trip(&client(), server.addr, b"over udp");
    let counts = stop(server);
    assert_eq!((counts.datagrams_in, counts.datagrams_out), (1, 1));
}

#[test]
fn send_udp_sends_one_datagram_and_checks_its_echo() {
    let server = serve_udp(if cfg!(windows) { "iocp" } else { "auto" }, &[]);
    let target = server.addr.to_string();
    let out = bin()
        .args(["send", "--udp", &target, "hello over udp"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"hello over udp\n");
    // Nothing serves UDP on the TCP-only server's port: a one-line error, exit 1.
    let mut cmd = bin();
    cmd.args(["serve", "--port", "0", "--workers", "1"]);
    let tcp_only = Server::spawn(cmd);
    let out: std::process::Output = Command::new(env!("CARGO_BIN_EXE_ringport"))
        .args([
            "send",
            "--udp",
            "--timeout",
            "2",
            &tcp_only.addr.to_string(),
            "x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    stop(server);
}
