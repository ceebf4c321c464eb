//! Test helpers: small blocking echo servers, right and deliberately wrong, and run helpers.
//!
//! Every server listens on 127.0.0.1 on a free port, serves each client on its own thread (it
//! is a test fixture, not the system under test) and lives until the test process ends.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use ringport_port::BackendChoice;
use ringport_stress::config::StressConfig;
use ringport_stress::engine::{run, StressOutcome};

/// How a test server treats the bytes of each connection. Offsets are connection-relative.
#[derive(Debug, Clone, Copy)]
pub enum Behavior {
    /// A correct echo.
    Echo,
    /// Flips bit 0 of the byte at each of these offsets ("now and then").
    FlipBitsAt(u64, u64),
    /// Never echoes the byte at this offset.
    DropByteAt(u64),
    /// Echoes this many bytes, then closes the connection.
    CloseAfter(u64),
    /// Reads and never echoes.
    Silent,
}

/// Starts a server with `behavior`; returns its port.
pub fn server(behavior: Behavior) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a test server");
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            thread::spawn(move || serve(stream, behavior));
        }
    });
    port
}

/// Starts a correct echo server that records each client's source address; returns its port
/// and the addresses seen.
pub fn recording_server() -> (u16, Arc<Mutex<Vec<IpAddr>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a test server");
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            if let Ok(peer) = stream.peer_addr() {
                record.lock().unwrap().push(peer.ip());
            }
            thread::spawn(move || serve(stream, Behavior::Echo));
        }
    });
    (port, seen)
}

fn serve(mut s: TcpStream, behavior: Behavior) {
    let _ = s.set_nodelay(true);
    let mut buf = vec![0u8; 16 * 1024];
    let mut offset: u64 = 0;
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &mut buf[..n];
        let range = offset..offset + n as u64;
        let mut out: Vec<u8> = chunk.to_vec();
        match behavior {
            Behavior::Echo => {}
            Behavior::FlipBitsAt(a, b) => {
                for at in [a, b] {
                    if range.contains(&at) {
                        out[(at - offset) as usize] ^= 1;
                    }
                }
            }
            Behavior::DropByteAt(at) => {
                if range.contains(&at) {
                    out.remove((at - offset) as usize);
                }
            }
            Behavior::CloseAfter(limit) => {
                if range.end >= limit {
                    let keep = (limit - offset.min(limit)) as usize;
                    let _ = s.write_all(&out[..keep]);
                    let _ = s.shutdown(Shutdown::Both);
                    return;
                }
            }
            Behavior::Silent => out.clear(),
        }
        offset += n as u64;
        if s.write_all(&out).is_err() {
            break;
        }
    }
    // The client finished sending: close our side too, as an echo server does.
    let _ = s.shutdown(Shutdown::Write);
}

/// A configuration for `port` with test-sized defaults: 2 threads, 8 connections, 5 s timeout.
pub fn config(port: u16) -> StressConfig {
    StressConfig {
        port,
        threads: 2,
        connections: 8,
        timeout: Duration::from_secs(5),
        ..StressConfig::default()
    }
}

/// The backends of this system: io_uring and epoll on Linux, IOCP on Windows.
#[cfg(unix)]
pub const BACKENDS: &[BackendChoice] = &[BackendChoice::Uring, BackendChoice::Epoll];
/// The backends of this system: io_uring and epoll on Linux, IOCP on Windows.
#[cfg(windows)]
pub const BACKENDS: &[BackendChoice] = &[BackendChoice::Iocp];

/// Runs `config` on each backend of this system in turn and hands every outcome to `check`.
/// Where io_uring is unavailable the test fails, naming why, as the port's own tests do: a
/// backend that did not run is not a backend that passed.
#[track_caller]
pub fn on_every_backend(config: &StressConfig, check: impl Fn(&StressOutcome)) {
    for &backend in BACKENDS {
        if let Err(e) = backend.resolve() {
            panic!("a run on {backend}: {e}");
        }
        let c = StressConfig {
            backend,
            ..config.clone()
        };
        let outcome = run(&c).unwrap_or_else(|e| panic!("run on {backend:?} failed: {e}"));
        eprintln!("--- {backend:?}\n{}", outcome.report.render());
        check(&outcome);
    }
}
