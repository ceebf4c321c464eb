#![cfg(target_os = "linux")]
//! Under `seccomp-exec`, io_uring is reported unavailable with a seccomp/EPERM cause and
//! `BackendChoice::Auto` falls back to epoll, which still echoes.
//!
//! The checks that need the filter run in a child: this very test binary, run again under
//! `seccomp-exec` with only the ignored test [`child_under_seccomp`] selected.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringport_port::{
    probe_uring, Backend, BackendChoice, Completion, Op, Outcome, Port, PortConfig, PortError,
    Socket,
};

const SECCOMP_EXEC: &str = env!("CARGO_BIN_EXE_seccomp-exec");
const CHILD_ENV: &str = "SECCOMP_EXEC_TEST_CHILD";

/// Runs `seccomp-exec ARGS...` and returns its output.
#[track_caller]
fn seccomp_exec(args: &[&str]) -> Output {
    Command::new(SECCOMP_EXEC)
        .args(args)
        .output()
        .expect("run seccomp-exec")
}

#[test]
fn under_the_filter_auto_falls_back_to_epoll_and_echoes() {
    let me = std::env::current_exe().expect("test binary path");
    let out = Command::new(SECCOMP_EXEC)
        .arg("--")
        .arg(&me)
        .args([
            "--exact",
            "child_under_seccomp",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the child under seccomp-exec");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("1 passed"),
        "the child test did not run\n{stdout}"
    );
    assert!(stdout.contains("echoed through epoll"), "no echo\n{stdout}");
    // One warning from `resolve`, none from ports given the resolved choice, one from a port
    // created with `Auto`.
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("io_uring is unavailable"))
        .collect();
    assert_eq!(warnings.len(), 2, "{stderr}");
    assert!(
        warnings
            .iter()
            .all(|l| l.contains("seccomp") && l.contains("WARN")),
        "{stderr}"
    );
}

#[test]
fn without_a_command_it_explains_and_fails() {
    let out = seccomp_exec(&["--"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: seccomp-exec -- CMD"));
}

#[test]
fn the_command_runs_and_its_exit_status_is_passed_on() {
    let out = seccomp_exec(&["--", "sh", "-c", "echo ran; exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran\n");
    let out = seccomp_exec(&["--", "/nonexistent/seccomp-exec-test"]);
    assert_eq!(out.status.code(), Some(127));
}

/// Waits until one completion is ready (bounded) and takes it.
#[track_caller]
fn next(port: &mut Port, pending: &mut Vec<Completion>) -> Completion {
    let deadline = Instant::now() + Duration::from_secs(5);
    while pending.is_empty() {
        assert!(Instant::now() < deadline, "no completion within 5 s");
        port.wait(pending, Some(Duration::from_millis(100)))
            .expect("wait");
    }
    pending.remove(0)
}

/// Echoes one message through `port`: accept, recv, send back, close.
fn echo_once(port: &mut Port) -> usize {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let listener: Rc<Socket> = Rc::new(listener.into());
    let message = b"hello through the fallback\0and all bytes \xff";
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(message).unwrap();
        let mut back = Vec::new();
        s.read_to_end(&mut back).unwrap();
        back
    });
    let mut pending = Vec::new();
    port.submit(1, Op::Accept { listener }).unwrap();
    let Outcome::Accepted(Ok(acc)) = next(port, &mut pending).outcome else {
        panic!("accept failed")
    };
    let fd = Rc::new(acc.fd);
    let mut buf = Vec::with_capacity(1024);
    while buf.len() < message.len() {
        port.submit(
            2,
            Op::Recv {
                fd: fd.clone(),
                buf,
                nowait: false,
            },
        )
        .unwrap();
        let Outcome::Received { buf: b, result } = next(port, &mut pending).outcome else {
            panic!("recv")
        };
        assert!(result.unwrap() > 0, "early end of stream");
        buf = b;
    }
    let mut at = 0;
    while at < buf.len() {
        port.submit(
            3,
            Op::Send {
                fd: fd.clone(),
                buf,
                at,
            },
        )
        .unwrap();
        let Outcome::Sent { buf: b, result, .. } = next(port, &mut pending).outcome else {
            panic!("send")
        };
        at += result.unwrap();
        buf = b;
    }
    port.submit(4, Op::Close { fd }).unwrap();
    assert!(matches!(
        next(port, &mut pending).outcome,
        Outcome::Closed(Ok(()))
    ));
    let back = client.join().unwrap();
    assert_eq!(&back[..], &message[..], "echoed byte for byte");
    back.len()
}

#[test]
#[ignore = "run under seccomp-exec by under_the_filter_auto_falls_back_to_epoll_and_echoes"]
fn child_under_seccomp() {
    assert!(
        std::env::var_os(CHILD_ENV).is_some(),
        "this test runs only under seccomp-exec, started by its parent test"
    );
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .without_time()
        .with_ansi(false)
        .init();

    // The probe names the cause.
    let e = probe_uring().expect_err("io_uring must be blocked under seccomp-exec");
    assert!(e.cause.contains("seccomp"), "{e}");
    assert!(e.cause.contains("EPERM"), "{e}");
    assert_eq!(
        e.source.as_ref().and_then(|s| s.raw_os_error()),
        Some(libc::EPERM)
    );

    // Asking for io_uring fails with that cause.
    let config = |backend| PortConfig {
        backend,
        ..PortConfig::default()
    };
    match Port::new(&config(BackendChoice::Uring)) {
        Err(PortError::UringUnavailable(e)) => {
            assert!(e.to_string().contains("seccomp"), "{e}");
            assert!(e.to_string().contains("--backend epoll"), "{e}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(port) => panic!("io_uring port under seccomp: {}", port.describe()),
    }
    assert!(BackendChoice::Uring.resolve().is_err());

    // Deciding once: one warning, then every worker's port on epoll without another.
    let backend = BackendChoice::Auto.resolve().expect("auto always resolves");
    assert_eq!(backend, Backend::Epoll);
    for _ in 0..2 {
        let port = Port::new(&config(backend.into())).unwrap();
        assert_eq!(port.backend(), Backend::Epoll);
        assert_eq!(port.describe(), "epoll (edge-triggered)");
    }

    // A port created with Auto falls back by itself, says why, and echoes.
    let mut port = Port::new(&config(BackendChoice::Auto)).expect("auto falls back");
    assert_eq!(port.backend(), Backend::Epoll);
    let described = port.describe();
    assert!(
        described.starts_with("epoll") && described.contains("io_uring unavailable"),
        "{described}"
    );
    assert!(described.contains("seccomp"), "{described}");
    let n = echo_once(&mut port);
    println!("echoed through epoll: {n} bytes ({described})");
}
