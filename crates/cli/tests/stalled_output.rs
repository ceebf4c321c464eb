//! `serve` with standard error or standard output that nobody reads (a full pipe: a stalled
//! log collector, a FIFO opened once) or that broke (its reader gone): SIGTERM and SIGINT still
//! stop it, and it exits 0, since the server itself stopped normally.

// Unix only: the signals, and pipes handed to the server as its standard streams.
#![cfg(unix)]

mod support;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;

/// A new pipe, (read end, write end), closed on exec: the server gets only what it is handed.
fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe2")
}

/// How long a stopping server may take, far more than a drain of nothing.
const EXIT_LIMIT: Duration = Duration::from_secs(15);

/// Fills the pipe whose write end is `w` until nobody can write to it without waiting: a
/// thread writes one byte at a time until the pipe is full and its write blocks (for good: the
/// test never reads), or until the read end is closed. Returns once the pipe is full.
#[track_caller]
fn fill(w: OwnedFd) {
    let written = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&written);
    std::thread::spawn(move || {
        let mut w = std::fs::File::from(w);
        while w.write_all(b"x").is_ok() {
            count.fetch_add(1, Ordering::Relaxed);
        }
    });
    // Full when the count has stood still for a while.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = u64::MAX;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = written.load(Ordering::Relaxed);
        if now == last && now > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the pipe did not fill");
        last = now;
    }
}

/// `ringport serve` on a free port with `stderr` as its standard error (default log level:
/// info) and the write end of a new pipe as its standard output; returns it, the pipe's read
/// end (its `listening on` line read), a spare write end of the pipe, and its address.
#[track_caller]
fn serve(stderr: Stdio) -> (Child, BufReader<File>, OwnedFd, SocketAddr) {
    let (r, w) = pipe();
    let spare = w.try_clone().unwrap();
    let child = bin()
        .args(["serve", "--port", "0", "--workers", "2"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::from(w))
        .stderr(stderr)
        .spawn()
        .expect("spawn ringport serve");
    let mut out = BufReader::new(File::from(r));
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut line = String::new();
        let _ = out.read_line(&mut line);
        let _ = tx.send(line);
        out
    });
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("a `listening on` line within 10 s");
    let addr = line
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line {line:?}"))
        .parse()
        .expect("IP:PORT");
    (child, reader.join().unwrap(), spare, addr)
}

/// Reads what `child` writes on its standard error (piped) until it ends.
fn collect_stderr(child: &mut Child) -> std::thread::JoinHandle<String> {
    let mut err = child.stderr.take().expect("stderr piped");
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        text
    })
}

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{name}");
}

/// Waits for `child` to exit, at most [`EXIT_LIMIT`]; kills it and panics if it does not.
#[track_caller]
fn exits(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + EXIT_LIMIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve did not stop within {EXIT_LIMIT:?} {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One echo, to show the server serves.
fn echo(addr: SocketAddr) {
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    round_trip(&mut s, b"hello");
}

#[test]
fn sigterm_and_sigint_stop_serve_while_nobody_reads_its_stderr() {
    for sig in ["TERM", "INT"] {
        let (r, w) = pipe();
        fill(w.try_clone().unwrap());
        let (mut child, _out, _spare, addr) = serve(Stdio::from(w));
        echo(addr);
        signal(&child, sig);
        let status = exits(&mut child, &format!("after SIG{sig}, its stderr full"));
        assert!(status.success(), "SIG{sig}: {status}");
        // The filling thread ends with the pipe.
        drop(r);
    }
}

#[test]
fn sigterm_stops_serve_while_nobody_reads_its_stdout() {
    let (mut child, out, spare, addr) = serve(Stdio::piped());
    let log = collect_stderr(&mut child);
    echo(addr);
    // Nobody reads standard output from now on, and it is full.
    fill(spare);
    signal(&child, "TERM");
    let status = exits(&mut child, "after SIGTERM, its stdout full");
    let log = log.join().unwrap();
    assert!(status.success(), "{status}; stderr:\n{log}");
    assert!(
        log.contains("the summary could not be written on standard output"),
        "{log}"
    );
    drop(out);
}

#[test]
fn a_broken_stdout_after_start_is_not_a_failure() {
    let (mut child, out, spare, addr) = serve(Stdio::piped());
    let log = collect_stderr(&mut child);
    // The reader of standard output goes away.
    drop((out, spare));
    echo(addr);
    signal(&child, "TERM");
    let status = exits(&mut child, "after SIGTERM, its stdout broken");
    let log = log.join().unwrap();
    assert!(status.success(), "{status}; stderr:\n{log}");
    assert!(
        log.contains("the summary could not be written on standard output"),
        "{log}"
    );
}
