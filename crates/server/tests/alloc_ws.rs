//! WebSocket in the completion model allocates nothing per message: after the upgrades and a
//! warm-up, thousands of messages of 64 bytes (eight written at once, so that receives and
//! sends overlap) and hundreds of 64 KiB (four times the connection's output bound, streamed
//! through it) on several connections make no heap allocation in any thread, on either
//! backend. When one is found, the call stacks of the first few name it.
//!
//! The server runs in this process, with a counting global allocator ([`CountingAlloc`], every
//! thread); the clients are blocking `std` sockets writing frames masked once beforehand and
//! reading the echo into fixed buffers, which allocate nothing. This file holds one test, so no
//! other test's allocations run beside it.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ringport_port::os::CountingAlloc;
use ringport_port::BackendChoice;
use ringport_server::echo::websocket::WsConfig;
use ringport_server::ServeConfig;
use ringport_ws::{apply_mask, client_key, handshake, FrameHeader, Opcode};

#[global_allocator]
static COUNTER: CountingAlloc = CountingAlloc::new();

const CONNECTIONS: usize = 4;
/// Past the worker's first tick (at most a second), whose one-time set-up is not per message.
const WARMUP_TIME: Duration = Duration::from_millis(1_300);

/// Upgrades a new connection to `addr`.
fn upgrade(addr: std::net::SocketAddr, seed: u64) -> TcpStream {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let key = client_key(seed);
    let mut request = Vec::new();
    handshake::write_request("127.0.0.1", "/", &key, &[], &mut request);
    c.write_all(&request).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte, so that nothing past the response is read.
    while handshake::parse_response(&head, &key).unwrap().is_none() {
        c.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    c
}

/// `count` binary messages of `size` bytes as the client sends them (masked) and as the server
/// echoes them (unmasked).
fn frames(size: usize, count: usize) -> (Vec<u8>, Vec<u8>) {
    let (mut wire, mut echo) = (Vec::new(), Vec::new());
    for m in 0..count {
        let body: Vec<u8> = (0..size).map(|i| ((i + m) % 251) as u8).collect();
        let mut bytes = [0u8; 14];
        for (mask, out) in [(Some([1, 2, 3, 4 + m as u8]), &mut wire), (None, &mut echo)] {
            let header = FrameHeader {
                fin: true,
                opcode: Opcode::Binary,
                mask,
                len: size as u64,
            };
            let n = header.encode(&mut bytes);
            out.extend_from_slice(&bytes[..n]);
            let at = out.len();
            out.extend_from_slice(&body);
            if let Some(mask) = mask {
                apply_mask(&mut out[at..], mask, 0);
            }
        }
    }
    (wire, echo)
}

/// Rounds of `wire` written on every connection at once, then its echo read back on each.
fn round_trips(conns: &mut [TcpStream], rounds: usize, wire: &[u8], echo: &[u8], back: &mut [u8]) {
    for _ in 0..rounds {
        for c in conns.iter_mut() {
            c.write_all(wire).unwrap();
        }
        for c in conns.iter_mut() {
            c.read_exact(back).unwrap();
            assert!(back == echo, "the echo differs");
        }
    }
}

/// Allocations while `measured` rounds of `pipelined` messages of `size` bytes run on every
/// connection, after `warmup` of them (and at least [`WARMUP_TIME`]), with the call stacks of
/// the first few.
fn allocations_during_messages(
    backend: BackendChoice,
    size: usize,
    pipelined: usize,
    warmup: usize,
    measured: usize,
) -> (u64, Vec<String>) {
    let cfg = ServeConfig {
        buffer_size: 16 * 1024,
        websocket: Some(WsConfig::default()),
        ..support::one_worker(backend)
    };
    let (shutdown, running) = support::start_in_process(&cfg);
    let addr = running.local_addr();
    let mut conns: Vec<TcpStream> = (0..CONNECTIONS as u64).map(|i| upgrade(addr, i)).collect();
    let (wire, echo) = frames(size, pipelined);
    let mut back = vec![0u8; echo.len()];
    let t0 = std::time::Instant::now();
    let mut warm = 0;
    while warm < warmup || t0.elapsed() < WARMUP_TIME {
        round_trips(&mut conns, 10, &wire, &echo, &mut back);
        warm += 10;
    }
    COUNTER.trace(3);
    let before = COUNTER.allocations();
    round_trips(&mut conns, measured, &wire, &echo, &mut back);
    let during = COUNTER.allocations() - before;
    let traces = COUNTER.traces();
    drop(conns);
    shutdown.trigger();
    let summary = running.wait().expect("a clean shutdown");
    let ws = summary.total().ws;
    assert_eq!(
        ws.binary,
        (CONNECTIONS * (warm + measured) * pipelined) as u64,
        "{ws:?}"
    );
    eprintln!(
        "{backend}: {during} allocations in {} messages of {size} bytes",
        CONNECTIONS * measured * pipelined
    );
    (during, traces)
}

#[test]
fn websocket_in_the_completion_model_allocates_nothing_per_message_on_either_backend() {
    support::assert_counting(&COUNTER);
    // Fewer messages under Wine, where each costs about 0.3 ms of wineserver.
    #[cfg(unix)]
    let rounds = [(64, 8, 200, 1_000), (65_536, 1, 50, 300)];
    #[cfg(windows)]
    let rounds = [(64, 8, 100, 150), (65_536, 1, 20, 60)];
    for backend in support::BACKENDS {
        for (size, pipelined, warmup, measured) in rounds {
            let (allocations, traces) =
                allocations_during_messages(backend, size, pipelined, warmup, measured);
            assert_eq!(
                allocations,
                0,
                "allocations on the hot path on {backend} at {size} bytes; the first ones:\n{}",
                traces.join("\n")
            );
        }
    }
}
