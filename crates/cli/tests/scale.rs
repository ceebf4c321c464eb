//! `serve --reuse-port`: several server processes on one port (what `benches/scale.sh` uses to
//! get past one process's open-file limit), while a plain `serve` still finds the port in use.

// Linux only: several processes on one port need SO_REUSEPORT, which Windows lacks.
#![cfg(target_os = "linux")]

mod support;

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{bin, model_args, Server};

/// Starts `serve --reuse-port` for `model` on `port` (0: a free one).
#[track_caller]
fn start_shared(model: &str, port: u16) -> Server {
    let mut cmd = bin();
    cmd.args(["serve", "--port", &port.to_string(), "--reuse-port"])
        .args(["--workers", "2", "--max-per-ip", "0"])
        .args(model_args(model));
    Server::spawn(cmd)
}

/// Runs `serve --port PORT` with `extra` flags, expecting it to exit; returns its exit success
/// and stderr (killed after 10 s).
#[track_caller]
fn serve_expecting_exit(port: u16, extra: &[&str]) -> (bool, String) {
    let mut child = bin()
        .args(["serve", "--port", &port.to_string()])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ringport serve");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve {extra:?} on port {port} did not exit in 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.success(), err)
}

fn two_reuse_port_servers_share_a_port_and_a_plain_serve_finds_it_in_use(model: &str) {
    let a = start_shared(model, 0);
    let b = start_shared(model, a.addr.port());
    assert_eq!(
        b.addr, a.addr,
        "the second server listens on the same address"
    );
    let (fds_a, fds_b) = (a.fd_count(), b.fd_count());

    // The kernel spreads connections over the group by a hash of their addresses: with 64
    // connections from distinct ports, each server gets some (a miss has odds of 2^-63).
    let mut conns: Vec<_> = (0..64).map(|_| a.connect()).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        let msg = format!("shared port {i}\n");
        c.write_all(msg.as_bytes()).unwrap();
        let mut back = vec![0u8; msg.len()];
        c.read_exact(&mut back).unwrap();
        assert_eq!(back, msg.as_bytes(), "echo on connection {i}");
    }
    a.eventually(
        Duration::from_secs(10),
        "both servers hold connections",
        |_| a.fd_count() > fds_a && b.fd_count() > fds_b,
    );
    let (held_a, held_b) = (a.fd_count() - fds_a, b.fd_count() - fds_b);
    assert_eq!(
        held_a + held_b,
        64,
        "every connection is held by one of them"
    );
    println!("{model}: 64 connections over two --reuse-port servers: {held_a} + {held_b}");

    let (ok, err) = serve_expecting_exit(a.addr.port(), &model_args(model));
    assert!(!ok, "a plain serve must not start on the shared port");
    assert!(
        err.contains("already in use"),
        "a plain serve reports the shared port as in use; stderr: {err}"
    );
}

#[test]
fn completion_reuse_port() {
    two_reuse_port_servers_share_a_port_and_a_plain_serve_finds_it_in_use("completion");
}

#[test]
fn completion_epoll_reuse_port() {
    two_reuse_port_servers_share_a_port_and_a_plain_serve_finds_it_in_use("completion-epoll");
}

#[test]
fn threaded_reuse_port() {
    two_reuse_port_servers_share_a_port_and_a_plain_serve_finds_it_in_use("threaded");
}

/// A plain server with one listener (one worker, or a blocking model) has no `SO_REUSEPORT`, so
/// a `--reuse-port` server cannot join it. (A plain completion server with several workers does
/// put its listeners in a `SO_REUSEPORT` group, which the kernel lets any process of the same
/// user join.)
#[test]
fn a_reuse_port_server_cannot_join_a_plain_single_listener() {
    for model in ["completion", "threaded"] {
        let mut cmd = bin();
        cmd.args(["serve", "--port", "0", "--workers", "1"])
            .args(model_args(model));
        let plain = Server::spawn(cmd);
        let (ok, err) = serve_expecting_exit(plain.addr.port(), &["--reuse-port"]);
        assert!(
            !ok,
            "{model}: a --reuse-port serve must not join a plain server's port"
        );
        assert!(err.contains("already in use"), "{model}: stderr: {err}");
    }
}

#[test]
fn help_documents_reuse_port() {
    let out = bin()
        .args(["serve", "--help"])
        .output()
        .expect("run --help");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--reuse-port"), "{help}");
    assert!(help.contains("SO_REUSEPORT"), "{help}");
}
