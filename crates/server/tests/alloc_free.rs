//! The completion model allocates nothing per message, small or large: after warm-up, thousands
//! of round trips of 64 bytes and hundreds of 64 KiB (many pool buffers per message, received
//! as bundles and sent in gathered sends) on several connections (receives into the pool's buffers, echoes sent from them, buffers given
//! back, completions reaped in batches; small messages in the single receives of a busy worker
//! on io_uring) make no heap allocation in any thread, on either backend.
//!
//! The server runs in this process, with a counting global allocator
//! ([`CountingAlloc`], which counts every thread); the client side is plain blocking `std`
//! sockets with fixed buffers, which allocate nothing either. This file holds one test, so no
//! other test's allocations run beside it.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ringport_port::os::CountingAlloc;
use ringport_port::BackendChoice;
use ringport_server::ServeConfig;

#[global_allocator]
static COUNTER: CountingAlloc = CountingAlloc::new();

const CONNECTIONS: usize = 8;
/// Past the worker's first tick (at most a second), whose one-time set-up is not per message.
const WARMUP_TIME: Duration = Duration::from_millis(1_300);

/// Round trips of `msg` on every connection at once (so completions come in batches).
fn round_trips(conns: &mut [TcpStream], rounds: usize, msg: &mut [u8], back: &mut [u8]) {
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

/// Allocations while `measured` round trips of `size` bytes run on every connection, after
/// `warmup` of them (and at least [`WARMUP_TIME`]), with the call stacks of the first few.
fn allocations_during_round_trips(
    backend: BackendChoice,
    direct_fds: bool,
    size: usize,
    warmup: usize,
    measured: usize,
) -> (u64, Vec<String>) {
    let cfg = ServeConfig {
        direct_fds,
        ..support::one_worker(backend)
    };
    let (shutdown, running) = support::start_in_process(&cfg);
    if direct_fds && !running.ready().direct_fds {
        eprintln!("{backend}: no direct descriptors here; measured with descriptors");
    }
    let addr = running.local_addr();
    let mut conns: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| {
            let c = TcpStream::connect(addr).unwrap();
            c.set_nodelay(true).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            c
        })
        .collect();
    let mut msg: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut back = vec![0u8; size];
    let t0 = std::time::Instant::now();
    let mut warm = 0;
    while warm < warmup || t0.elapsed() < WARMUP_TIME {
        round_trips(&mut conns, 10, &mut msg, &mut back);
        warm += 10;
    }
    COUNTER.trace(3);
    let before = COUNTER.allocations();
    round_trips(&mut conns, measured, &mut msg, &mut back);
    let during = COUNTER.allocations() - before;
    let traces = COUNTER.traces();
    drop(conns);
    shutdown.trigger();
    let summary = running.wait().expect("a clean shutdown");
    let total = summary.total();
    assert!(
        total.bytes_out >= (CONNECTIONS * (warm + measured) * size) as u64,
        "{total:?}"
    );
    eprintln!(
        "{backend} (direct descriptors: {direct_fds}): {during} allocations in {} round trips \
         of {size} bytes, {} single receives",
        CONNECTIONS * measured,
        total.single_receives
    );
    // Small messages from every connection at once keep the worker busy: on io_uring they
    // come in single receives, which must allocate nothing either.
    if backend == BackendChoice::Uring && size < 16 * 1024 {
        assert!(
            total.single_receives >= (CONNECTIONS * measured / 2) as u64,
            "{backend}: the single receives were not measured: {total:?}"
        );
    }
    (during, traces)
}

#[test]
fn the_completion_model_allocates_nothing_per_message_of_any_size_on_either_backend() {
    support::assert_counting(&COUNTER);
    COUNTER.trace(1);
    std::hint::black_box(vec![2u8; 10]);
    let traces = COUNTER.traces();
    assert_eq!(traces.len(), 1, "one allocation traced: {traces:?}");
    assert!(
        traces[0].starts_with("10 bytes on thread "),
        "{}",
        traces[0]
    );

    // Every backend of this system: io_uring and epoll on Linux, IOCP on Windows.
    // Fewer round trips under Wine, where each costs about 0.3 ms of wineserver.
    #[cfg(unix)]
    let rounds = [(64, 500, 4_000), (65_536, 50, 300)];
    #[cfg(windows)]
    let rounds = [(64, 1_000, 600), (65_536, 50, 60)];
    // On io_uring, with accepted sockets as descriptors and as direct descriptors.
    let ways = support::BACKENDS.into_iter().flat_map(|backend| {
        let direct = cfg!(target_os = "linux") && backend == BackendChoice::Uring;
        [(backend, false)]
            .into_iter()
            .chain(direct.then_some((backend, true)))
    });
    for (backend, direct) in ways {
        for (size, warmup, measured) in rounds {
            let (allocations, traces) =
                allocations_during_round_trips(backend, direct, size, warmup, measured);
            assert_eq!(
                allocations,
                0,
                "allocations on the hot path on {backend} (direct descriptors: {direct}) at \
                 {size} bytes; the first ones:\n{}",
                traces.join("\n")
            );
        }
    }
}
