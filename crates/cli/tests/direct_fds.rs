//! `serve --direct-fds on`: the plaintext echo's connections as io_uring direct descriptors.
//! The echo at 1 and 1,000 connections, a burst of resets, the per-address cap and the
//! graceful drain behave as with descriptors; the server's descriptor table does not grow with
//! connections (it does with `--direct-fds off`); where direct descriptors cannot be used
//! (epoll, TLS) the server serves with descriptors.

#![cfg(target_os = "linux")]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::*;

/// A completion server on io_uring with `--direct-fds on` and `extra`, whose ready line says
/// that every worker accepts direct descriptors; `None` (said on stderr) where the kernel has
/// no io_uring or refuses the table, which under `CI=true` is a failure.
fn direct_server(extra: &[&str]) -> Option<Server> {
    if ringport_port::probe_uring().is_err() {
        assert!(!in_ci(), "no io_uring in CI");
        eprintln!("skipped: no io_uring here");
        return None;
    }
    let mut args = vec!["--direct-fds", "on"];
    args.extend_from_slice(extra);
    let server = Server::start("completion", &args);
    if !server.ready.direct_fds {
        let log = server.stderr();
        assert!(!in_ci(), "no direct descriptors in CI: {log}");
        assert!(log.contains("direct descriptors unavailable"), "{log}");
        eprintln!("skipped: the kernel refuses direct descriptors: {log}");
        return None;
    }
    assert!(
        server.ready.backend_detail.contains("direct descriptors"),
        "{:?}",
        server.ready
    );
    Some(server)
}

/// One message there and back on `s`.
fn echoes(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
}

#[test]
fn one_connection_echoes_every_size_byte_exact() {
    let Some(mut server) = direct_server(&[]) else {
        return;
    };
    let mut s = server.connect();
    let mut rng = Rng::new(7);
    for n in [1, 64, 1500, 16_384, 100_000, 1 << 20] {
        let data = rng.bytes(n);
        let got = echo_chunked(s.try_clone().unwrap(), &data, n as u64);
        assert_same(&got, &data);
    }
    echoes(&mut s, b"still here");
    drop(s);
    server.signal("TERM");
    assert!(
        server.wait_exit(Duration::from_secs(10)).success(),
        "{}",
        server.stderr()
    );
}

/// The server's open descriptors with `conns` connections open, each having echoed once, minus
/// those before; the connections are closed again after.
fn fds_for(server: &Server, conns: usize) -> usize {
    let before = server.fd_count();
    let mut open = Vec::with_capacity(conns);
    for i in 0..conns {
        let mut s = server.connect();
        echoes(&mut s, &(i as u32).to_le_bytes());
        open.push(s);
    }
    let during = server.fd_count();
    // Every connection still served, the first ones too.
    for (i, s) in open.iter_mut().enumerate().step_by(97) {
        echoes(s, format!("again {i}").as_bytes());
    }
    drop(open);
    during.saturating_sub(before)
}

#[test]
fn a_thousand_connections_echo_and_take_no_descriptor() {
    raise_fd_limit();
    let Some(server) = direct_server(&["--max-connections", "4000"]) else {
        return;
    };
    let grown = fds_for(&server, 1000);
    assert!(
        grown < 20,
        "{grown} descriptors more with 1000 direct connections"
    );
    // The same server with descriptors: one per connection (the check can fail).
    let plain = Server::start(
        "completion",
        &["--direct-fds", "off", "--max-connections", "4000"],
    );
    assert!(!plain.ready.direct_fds);
    let grown = fds_for(&plain, 1000);
    assert!(
        grown >= 1000,
        "{grown} descriptors more with 1000 connections"
    );
}

#[test]
fn connections_closed_by_their_clients_free_their_slots() {
    // Tables of 64 + the parked reserve: 2,000 connections one after another only fit if each
    // close frees its slot.
    let Some(mut server) = direct_server(&["--max-connections", "64"]) else {
        return;
    };
    for i in 0..2000u32 {
        let mut s = server.connect();
        echoes(&mut s, &i.to_le_bytes());
        // The server sees the end and closes (by its slot) before the next client's accept
        // may need that slot: wait for the server's close.
        s.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(s.read(&mut [0u8; 4]).unwrap(), 0, "connection {i}");
    }
    let log = server.stderr();
    assert!(!log.contains("pausing accepts"), "{log}");
    server.signal("TERM");
    assert!(
        server.wait_exit(Duration::from_secs(10)).success(),
        "{}",
        server.stderr()
    );
}

#[test]
fn a_burst_of_resets_before_accept_leaves_the_next_client_served() {
    let Some(mut server) = direct_server(&["--backlog", "1024"]) else {
        return;
    };
    server.signal("STOP");
    for i in 0..200 {
        let mut s = TcpStream::connect_timeout(&server.addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect {i}: {e}"));
        s.write_all(b"gone before accept").unwrap();
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(s);
    }
    server.signal("CONT");
    let mut s = server.connect();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    echoes(&mut s, b"still served");
    let log = server.stderr();
    assert!(!log.contains("pausing accepts"), "accepting paused:\n{log}");
    server.signal("TERM");
    assert!(
        server.wait_exit(Duration::from_secs(20)).success(),
        "{}",
        server.stderr()
    );
}

#[test]
fn the_per_address_cap_closes_the_third_connection() {
    // The cap needs each peer's address, which single accepts of direct descriptors carry.
    let Some(mut server) = direct_server(&["--max-per-ip", "2"]) else {
        return;
    };
    let mut a = server.connect();
    let mut b = server.connect();
    echoes(&mut a, b"hi");
    echoes(&mut b, b"hi");
    let mut c = server.connect();
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    match c.read(&mut [0u8; 4]) {
        Ok(0) => {}
        Ok(n) => panic!("the third connection got {n} bytes"),
        Err(e) => assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "not closed: {e}"
        ),
    }
    echoes(&mut a, b"on");
    drop((a, b, c));
    // Once the two close, the address has room again.
    let mut d = None;
    for _ in 0..200 {
        let mut s = server.connect();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        if s.write_all(b"ok").is_ok() {
            let mut back = [0u8; 2];
            if s.read_exact(&mut back).is_ok() {
                d = Some(s);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(d.is_some(), "the address never had room again");
    drop(d);
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(8)).success());
    let out = server.stdout();
    assert!(out.contains("refused at --max-per-ip"), "{out}");
}

#[test]
fn sigterm_echoes_what_was_sent_then_exits_zero() {
    let Some(mut server) = direct_server(&["--drain-timeout", "5"]) else {
        return;
    };
    sigterm_echoes_what_was_sent(&mut server);
}

#[test]
fn where_direct_descriptors_cannot_be_used_the_server_serves_with_descriptors() {
    // epoll has none; TLS and WebSocket connections keep descriptors on io_uring too.
    for extra in [
        &["--backend", "epoll"][..],
        &["--tls-self-signed"][..],
        &["--websocket"][..],
    ] {
        let mut args = vec!["--model", "completion", "--direct-fds", "on"];
        args.extend_from_slice(extra);
        let mut cmd = bin();
        cmd.args(["serve", "--port", "0", "--workers", "2"])
            .args(&args);
        let mut server = Server::spawn(cmd);
        assert!(!server.ready.direct_fds, "{extra:?}: {:?}", server.ready);
        if extra == ["--backend", "epoll"] {
            let mut s = server.connect();
            echoes(&mut s, b"served by epoll");
        }
        server.signal("TERM");
        assert!(
            server.wait_exit(Duration::from_secs(10)).success(),
            "{}",
            server.stderr()
        );
    }
}

#[test]
fn serve_help_documents_the_flag() {
    let out = bin().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--direct-fds <on|off>"), "{help}");
    let out = bin()
        .args(["serve", "--direct-fds", "maybe"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
