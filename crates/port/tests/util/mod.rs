//! Helpers for the port's integration tests: they read like the behaviour they check and point
//! failures at the caller.

#![allow(dead_code)] // each test file uses its own share of the helpers

use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringport_port::{BackendChoice, Completion, OwnedFd, Port, PortConfig, SharedFd};

/// Expands each named test function `fn name(backend: BackendChoice)` into one `#[test]` per
/// backend, `uring::name` and `epoll::name` (in the spirit of monoio's `test_all`), so
/// `cargo test epoll::` runs the whole contract on one backend. On Windows the one backend is
/// IOCP: `iocp::name`.
#[cfg(windows)]
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod iocp {
            $(
                #[test]
                fn $name() {
                    super::$name(ringport_port::BackendChoice::Iocp)
                }
            )*
        }
    };
}

/// Expands each named test function `fn name(backend: BackendChoice)` into one `#[test]` per
/// backend, `uring::name` and `epoll::name` (in the spirit of monoio's `test_all`), so
/// `cargo test epoll::` runs the whole contract on one backend. On Windows the one backend is
/// IOCP: `iocp::name`.
#[cfg(unix)]
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod uring {
            $(
                #[test]
                fn $name() {
                    super::$name(ringport_port::BackendChoice::Uring)
                }
            )*
        }
        mod epoll {
            $(
                #[test]
                fn $name() {
                    super::$name(ringport_port::BackendChoice::Epoll)
                }
            )*
        }
    };
}

/// A port on exactly `backend` (never a silent fallback).
#[track_caller]
pub fn port(backend: BackendChoice) -> Port {
    port_with(backend, PortConfig::default().entries)
}

/// A port on exactly `backend` with `entries` submission entries.
#[track_caller]
pub fn port_with(backend: BackendChoice, entries: u32) -> Port {
    let port = Port::new(&PortConfig { entries, backend })
        .unwrap_or_else(|e| panic!("a port on {backend}: {e}"));
    assert_eq!(
        ringport_port::BackendChoice::from(port.backend()),
        backend,
        "{}",
        port.describe()
    );
    port
}

/// Waits until one completion is ready (bounded) and takes it.
#[track_caller]
pub fn next(port: &mut Port, pending: &mut Vec<Completion>) -> Completion {
    let deadline = Instant::now() + Duration::from_secs(5);
    while pending.is_empty() {
        assert!(Instant::now() < deadline, "no completion within 5 s");
        port.wait(pending, Some(Duration::from_millis(100)))
            .expect("wait");
    }
    pending.remove(0)
}

/// Gives the port a moment and asserts that nothing completed.
#[track_caller]
pub fn nothing_completes(port: &mut Port, pending: &mut Vec<Completion>) {
    port.wait(pending, Some(Duration::from_millis(20)))
        .expect("wait");
    assert!(pending.is_empty(), "unexpected completion: {pending:?}");
}

/// A connected pair over loopback: the server side as the port's fd handle, the client side as
/// a plain blocking stream.
#[track_caller]
pub fn connected_pair() -> (SharedFd, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let client = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    (Rc::new(OwnedFd::from(server).into()), client)
}

/// A listener over loopback as the port's fd handle, and its address.
#[track_caller]
pub fn listener() -> (SharedFd, std::net::SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    (Rc::new(OwnedFd::from(listener).into()), addr)
}

/// `len` bytes of a pattern that shows where a byte came from, for byte-exact checks.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}
