//! TLS in the completion model allocates nothing per message: after the handshake, thousands
//! of round trips on several connections (ciphertext received into each connection's own
//! buffer, opened there, the echo sealed into its send buffers) make no allocation at all, on
//! either backend, over TLS 1.3 and 1.2. (rustls 0.23 itself would allocate twice per record:
//! the session protects records itself once the handshake is complete, `tls::record`.) When
//! one is found, the call stacks of the first few name it.
//!
//! The server runs in this process with a counting global allocator ([`CountingAlloc`], every
//! thread); the clients are `openssl s_client` processes, whose allocations are their own.
//! This file holds one test, so no other test's allocations run beside it. Linux only: under
//! Wine a Debian program cannot be started from the test.
#![cfg(unix)]

mod support;

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ringport_port::os::CountingAlloc;
use ringport_port::BackendChoice;
use ringport_server::ServeConfig;

#[global_allocator]
static COUNTER: CountingAlloc = CountingAlloc::new();

const CONNECTIONS: usize = 4;
/// Past the worker's first tick (at most a second), whose one-time set-up is not per message.
const WARMUP_TIME: Duration = Duration::from_millis(1_300);

/// Whether `openssl` can be run; under CI it must.
fn have_openssl() -> bool {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "openssl is missing under CI (.ci/run installs it)"
        );
        eprintln!("SKIPPED: openssl is not installed");
    }
    found
}

/// An `openssl s_client` talking to `addr`, its standard input and output piped.
fn s_client(addr: std::net::SocketAddr, ca: &std::path::Path, version: &str) -> Child {
    Command::new("openssl")
        .args([
            "s_client",
            version,
            "-quiet",
            "-verify_return_error",
            "-servername",
            "localhost",
        ])
        .arg("-connect")
        .arg(addr.to_string())
        .arg("-CAfile")
        .arg(ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start openssl s_client")
}

/// Round trips of `msg` on every client at once.
fn round_trips(clients: &mut [Child], rounds: usize, msg: &mut [u8], back: &mut [u8]) {
    for round in 0..rounds {
        msg[0] = b'a' + (round % 26) as u8;
        for c in clients.iter_mut() {
            c.stdin.as_mut().unwrap().write_all(msg).unwrap();
        }
        for c in clients.iter_mut() {
            c.stdout.as_mut().unwrap().read_exact(back).unwrap();
            assert_eq!(&back[..], &msg[..]);
        }
    }
}

/// Allocations while `measured` round trips of `size` bytes run on every connection of
/// protocol `version` (an `s_client` flag), and the call stacks of the first few.
fn allocations_during_round_trips(
    backend: BackendChoice,
    version: &str,
    size: usize,
    measured: usize,
) -> (u64, Vec<String>) {
    let tls = support::self_signed_tls();
    let ca = std::env::temp_dir().join(format!("ringport-alloc-tls-{}.pem", std::process::id()));
    std::fs::write(&ca, tls.self_signed_pem.as_ref().unwrap()).unwrap();
    let cfg = ServeConfig {
        tls: Some(tls),
        ..support::one_worker(backend)
    };
    let (shutdown, running) = support::start_in_process(&cfg);
    let addr = running.local_addr();
    let mut clients: Vec<Child> = (0..CONNECTIONS)
        .map(|_| s_client(addr, &ca, version))
        .collect();
    // Printable bytes: s_client passes them through unchanged.
    let mut msg: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    let mut back = vec![0u8; size];
    let t0 = std::time::Instant::now();
    while t0.elapsed() < WARMUP_TIME {
        round_trips(&mut clients, 20, &mut msg, &mut back);
    }
    COUNTER.trace(3);
    let before = COUNTER.allocations();
    round_trips(&mut clients, measured, &mut msg, &mut back);
    let during = COUNTER.allocations() - before;
    let traces = COUNTER.traces();
    for mut c in clients {
        let _ = c.kill();
        let _ = c.wait();
    }
    shutdown.trigger();
    let summary = running.wait().expect("a clean shutdown");
    let _ = std::fs::remove_file(&ca);
    let total = summary.total();
    let handshakes = if version == "-tls1_3" {
        total.tls.tls13
    } else {
        total.tls.tls12
    };
    assert_eq!(handshakes, CONNECTIONS as u64, "{version}: {:?}", total.tls);
    assert!(
        total.bytes_out >= (CONNECTIONS * measured * size) as u64,
        "{total:?}"
    );
    eprintln!(
        "{backend} {version}: {during} allocations in {} TLS round trips of {size} bytes",
        CONNECTIONS * measured
    );
    (during, traces)
}

#[test]
fn tls_in_the_completion_model_allocates_nothing_per_message_on_either_backend() {
    if !have_openssl() {
        return;
    }
    support::assert_counting(&COUNTER);

    // (version, size, round trips): a pipe write of up to 4 KiB is one read for s_client,
    // sent as one record, echoed as one.
    let cases = [
        ("-tls1_3", 64, 1_000),
        ("-tls1_3", 4_096, 300),
        ("-tls1_2", 64, 500),
    ];
    for backend in support::BACKENDS {
        for (version, size, measured) in cases {
            let (during, traces) = allocations_during_round_trips(backend, version, size, measured);
            assert_eq!(
                during,
                0,
                "allocations per message on {backend}, {version}, {size} bytes; the first ones:\n{}",
                traces.join("\n")
            );
        }
    }
}
