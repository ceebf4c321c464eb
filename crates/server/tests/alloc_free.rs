//! The completion model allocates nothing per message: after warm-up, thousands of round trips
//! on several connections (receives into the pool's buffers, echoes sent from them, buffers given
//! back, completions reaped in batches) make no heap allocation in any thread, on either backend.
//!
//! The server runs in this process, with a counting global allocator
//! ([`CountingAlloc`], which counts every thread); the client side is plain blocking `std`
//! sockets with fixed buffers, which allocate nothing either. This file holds one test, so no
//! other test's allocations run beside it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ringport_port::os::CountingAlloc;
use ringport_port::{BackendChoice, PortConfig};
use ringport_server::{ServeConfig, Shutdown};

#[global_allocator]
static COUNTER: CountingAlloc = CountingAlloc::new();

const CONNECTIONS: usize = 8;
const WARMUP: usize = 500;
/// Past the worker's first tick (at most a second), whose one-time set-up is not per message.
const WARMUP_TIME: Duration = Duration::from_millis(1_300);
const MEASURED: usize = 4_000;

/// Round trips of 64 bytes on every connection at once (so completions come in batches).
fn round_trips(conns: &mut [TcpStream], rounds: usize, msg: &mut [u8; 64], back: &mut [u8; 64]) {
    for round in 0..rounds {
        msg[0] = round as u8;
        for c in conns.iter_mut() {
            c.write_all(&msg[..]).unwrap();
        }
        for c in conns.iter_mut() {
            c.read_exact(&mut back[..]).unwrap();
            assert_eq!(&back[..], &msg[..]);
        }
    }
}

fn allocations_during_round_trips(backend: BackendChoice) -> u64 {
    let cfg = ServeConfig {
        port: 0,
        workers: 1,
        port_config: PortConfig {
            backend,
            ..PortConfig::default()
        },
        max_per_ip: 0,
        ..ServeConfig::default()
    };
    let shutdown = Shutdown::new();
    let running = ringport_server::start(&cfg, shutdown.clone()).expect("the server starts");
    let addr = running.local_addr();
    let mut conns: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| {
            let c = TcpStream::connect(addr).unwrap();
            c.set_nodelay(true).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            c
        })
        .collect();
    let mut msg = [7u8; 64];
    let mut back = [0u8; 64];
    let t0 = std::time::Instant::now();
    let mut warm = 0;
    while warm < WARMUP || t0.elapsed() < WARMUP_TIME {
        round_trips(&mut conns, 100, &mut msg, &mut back);
        warm += 100;
    }
    let before = COUNTER.allocations();
    round_trips(&mut conns, MEASURED, &mut msg, &mut back);
    let during = COUNTER.allocations() - before;
    drop(conns);
    shutdown.trigger();
    let summary = running.wait().expect("a clean shutdown");
    let total = summary.total();
    assert!(
        total.bytes_out >= (CONNECTIONS * (warm + MEASURED) * 64) as u64,
        "{total:?}"
    );
    eprintln!(
        "{backend}: {during} allocations in {} round trips",
        CONNECTIONS * MEASURED
    );
    during
}

#[test]
fn the_completion_model_allocates_nothing_per_message_on_either_backend() {
    let before = COUNTER.allocations();
    std::hint::black_box(vec![1u8; 10]);
    assert!(COUNTER.allocations() > before, "the counter is installed");

    for backend in [BackendChoice::Uring, BackendChoice::Epoll] {
        assert_eq!(
            allocations_during_round_trips(backend),
            0,
            "allocations on the hot path on {backend}"
        );
    }
}
