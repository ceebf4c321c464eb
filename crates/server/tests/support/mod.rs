//! Helpers the server crate's integration tests share: the designs and backends of this
//! system, a self-signed TLS identity, the check that a counting allocator is installed, and
//! the one-worker server the allocation counts start in this process.
#![allow(dead_code)]

use ringport_port::os::CountingAlloc;
use ringport_port::{BackendChoice, PortConfig};
use ringport_server::tls::{CertSource, Tls, TlsOptions, DEFAULT_HANDSHAKE_TIMEOUT};
use ringport_server::{Model, Running, ServeConfig, Shutdown};

/// The completion model's backends on this system: io_uring and epoll on Unix, IOCP on
/// Windows.
#[cfg(unix)]
pub const BACKENDS: [BackendChoice; 2] = [BackendChoice::Uring, BackendChoice::Epoll];
/// The completion model's backends on this system: io_uring and epoll on Unix, IOCP on
/// Windows.
#[cfg(windows)]
pub const BACKENDS: [BackendChoice; 1] = [BackendChoice::Iocp];

/// (model, backend) pairs of this system: the completion model on each backend that works here
/// (io_uring only if the kernel allows it), and the two naive models.
pub fn designs() -> Vec<(Model, BackendChoice)> {
    let mut all = Vec::new();
    #[cfg(unix)]
    {
        if BackendChoice::Uring.resolve().is_ok() {
            all.push((Model::Completion, BackendChoice::Uring));
        }
        all.push((Model::Completion, BackendChoice::Epoll));
    }
    #[cfg(windows)]
    all.push((Model::Completion, BackendChoice::Iocp));
    all.push((Model::Threaded, BackendChoice::Auto));
    all.push((Model::Single, BackendChoice::Auto));
    all
}

/// A TLS identity made for 127.0.0.1 at start (self-signed, no ALPN, the default handshake
/// timeout, no client certificates).
pub fn self_signed_tls() -> Tls {
    Tls::new(
        &TlsOptions {
            source: CertSource::SelfSigned,
            alpn: Vec::new(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            client_ca: None,
            key_log: None,
        },
        "127.0.0.1".parse().unwrap(),
    )
    .expect("a self-signed identity")
}

/// Asserts that `counter` is the global allocator: an allocation made here is counted.
#[track_caller]
pub fn assert_counting(counter: &CountingAlloc) {
    let before = counter.allocations();
    std::hint::black_box(vec![1u8; 10]);
    assert!(counter.allocations() > before, "the counter is installed");
}

/// One worker of the completion model on `backend`, on a free port of 127.0.0.1, with no
/// per-address cap: what the allocation counts serve, each with settings of its own on top.
pub fn one_worker(backend: BackendChoice) -> ServeConfig {
    design(Model::Completion, backend)
}

/// One worker of `model` (on `backend`, for the completion model), on a free port of
/// 127.0.0.1, with no per-address cap: what the end-to-end tests start, each with settings of
/// its own on top.
pub fn design(model: Model, backend: BackendChoice) -> ServeConfig {
    ServeConfig {
        port: 0,
        workers: 1,
        model,
        port_config: PortConfig {
            backend,
            ..PortConfig::default()
        },
        max_per_ip: 0,
        ..ServeConfig::default()
    }
}

/// Starts the server `cfg` in this process: its shutdown, and the server running.
#[track_caller]
pub fn start_in_process(cfg: &ServeConfig) -> (Shutdown, Running) {
    let shutdown = Shutdown::new();
    let running = ringport_server::start(cfg, shutdown.clone()).expect("the server starts");
    (shutdown, running)
}
