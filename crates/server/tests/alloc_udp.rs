//! The UDP echo allocates nothing per datagram, of any size, on either path: after warm-up,
//! thousands of datagrams from several sources at once (so completions come in batches) make
//! no heap allocation in any thread, on every backend (io_uring and epoll; IOCP on Windows),
//! with the batched path (multishot `recvmsg` or `recvmmsg` into the port's pool, echoes sent
//! from it) and with the one-operation-per-datagram path it falls back to where the port cannot
//! batch (on IOCP, always). Every echo is checked byte for byte, so this is also the fallback
//! path's end-to-end test. On the batched path the clients also send bursts in one segmented
//! send (`UDP_SEGMENT`), which the echo receives coalesced and echoes in one segmented send: no
//! allocation for those either.
//!
//! The server runs in this process, with a counting global allocator ([`CountingAlloc`], which
//! counts every thread); the clients are plain blocking `std` sockets with fixed buffers, which
//! allocate nothing either. This file holds one test, so no other test's allocations run
//! beside it.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

#[cfg(target_os = "linux")]
use ringport_port::os::udp_segment;
use ringport_port::os::CountingAlloc;
use ringport_port::{BackendChoice, Port, PortConfig};
use ringport_server::udp::UdpConfig;
use ringport_server::{ServeConfig, Shutdown};

#[global_allocator]
static COUNTER: CountingAlloc = CountingAlloc::new();

/// Past the worker's first tick (at most a second), whose one-time set-up is not per datagram.
const WARMUP_TIME: Duration = Duration::from_millis(1_300);

/// Rounds of `msg` from every client at once, each echo checked: one datagram, or (`size`
/// shorter than `msg`) datagrams of `size` bytes in one segmented send.
fn round_trips(
    clients: &[UdpSocket],
    to: SocketAddr,
    rounds: usize,
    (msg, size): (&mut [u8], usize),
    back: &mut [u8],
) {
    for round in 0..rounds {
        if let Some(first) = msg.first_mut() {
            *first = round as u8;
        }
        for c in clients {
            c.send_to(msg, to).unwrap();
        }
        for c in clients {
            let burst = msg.len().checked_div(size).unwrap_or(1);
            for k in 0..burst {
                let want = &msg[k * size..(k + 1) * size];
                let (n, from) = loop {
                    match c.recv_from(back) {
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        got => break got.expect("an echo within 5 s"),
                    }
                };
                assert_eq!(from, to);
                assert_eq!(&back[..n], want, "echoed whole");
            }
        }
    }
}

/// Allocations while `measured` rounds of `size`-byte datagrams (`burst` per segmented send)
/// from `clients` sources run, after `warmup` of them (and at least [`WARMUP_TIME`]).
fn allocations_during_echoes(
    backend: BackendChoice,
    batched: bool,
    burst: usize,
    (size, clients, warmup, measured): (usize, usize, usize, usize),
) -> u64 {
    let cfg = ServeConfig {
        port: 0,
        workers: 1,
        port_config: PortConfig {
            backend,
            ..PortConfig::default()
        },
        udp: Some(UdpConfig {
            only: true,
            batched,
            ..UdpConfig::default()
        }),
        ..ServeConfig::default()
    };
    let shutdown = Shutdown::new();
    let running = ringport_server::start(&cfg, shutdown.clone()).expect("the server starts");
    let to = running.local_addr();
    let clients: Vec<UdpSocket> = (0..clients)
        .map(|_| {
            let c = UdpSocket::bind("127.0.0.1:0").unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            // Segmented sends exist on Linux only (the bursts run there only).
            #[cfg(target_os = "linux")]
            if burst > 1 {
                udp_segment(&c, u16::try_from(size).unwrap()).unwrap();
            }
            c
        })
        .collect();
    let mut msg: Vec<u8> = (0..size * burst).map(|i| (i % 251) as u8).collect();
    let mut back = vec![0u8; 65_536];
    let t0 = Instant::now();
    let mut warm = 0;
    while warm < warmup || t0.elapsed() < WARMUP_TIME {
        round_trips(&clients, to, 10, (&mut msg, size), &mut back);
        warm += 10;
    }
    let before = COUNTER.allocations();
    round_trips(&clients, to, measured, (&mut msg, size), &mut back);
    let during = COUNTER.allocations() - before;
    shutdown.trigger();
    let summary = running.wait().expect("a clean shutdown");
    let path = if batched {
        "datagrams in batches"
    } else {
        "one operation per datagram"
    };
    // Whether the backend batches here (io_uring: Linux 6.0+; epoll: yes; IOCP: no).
    let mut probe = Port::new(&PortConfig {
        backend,
        ..PortConfig::default()
    })
    .unwrap();
    probe.provide_buffers(1, 1000).unwrap();
    let path = if probe.datagram_batches() {
        path
    } else {
        "one operation per datagram"
    };
    assert!(summary.backend.contains(path), "{}", summary.backend);
    let udp = summary.udp.expect("the UDP echo's counters");
    let echoed = (clients.len() * (warm + measured) * burst) as u64;
    assert_eq!(udp.datagrams_out, echoed, "{udp:?}");
    if burst > 1 && summary.backend.ends_with("GRO/GSO") {
        assert!(udp.coalesced_in > 0 && udp.segmented_out > 0, "{udp:?}");
    }
    assert_eq!(udp.truncated, 0, "{udp:?}");
    eprintln!(
        "{backend} (batched: {batched}): {during} allocations in {} echoes of {size} bytes \
         ({burst} per send); {} waits for {} completions in all",
        clients.len() * measured * burst,
        udp.waits,
        udp.completions
    );
    during
}

#[test]
fn the_udp_echo_allocates_nothing_per_datagram_on_either_path() {
    support::assert_counting(&COUNTER);

    // (size, sources, warm-up rounds, measured rounds): few sources for the largest, whose
    // datagrams at once must fit in the socket's receive buffer.
    let rounds = [
        (0, 8, 100, 300),
        (64, 8, 500, 2_000),
        (1_400, 8, 200, 1_000),
        (65_507, 2, 20, 100),
    ];
    for backend in support::BACKENDS {
        for batched in [true, false] {
            for round in rounds {
                assert_eq!(
                    allocations_during_echoes(backend, batched, 1, round),
                    0,
                    "allocations per datagram on {backend} (batched: {batched}) at {} bytes",
                    round.0
                );
            }
        }
        // Segmented bursts, coalesced by the batched echo (Linux).
        #[cfg(target_os = "linux")]
        for (burst, round) in [(16, (64, 4, 100, 500)), (8, (1_400, 4, 50, 200))] {
            assert_eq!(
                allocations_during_echoes(backend, true, burst, round),
                0,
                "allocations per datagram on {backend} in bursts of {burst} of {} bytes",
                round.0
            );
        }
    }
}
