//! The completion races that matter most on IOCP, on every backend: an operation that the
//! system finishes at once (IOCP's skip-on-success posts no packet, the driver delivers the
//! result itself) is delivered exactly once; a cancellation asked for while the operations are
//! completing ends each exactly once, as cancelled or with its bytes, and loses no byte; a port
//! dropped with operations in flight while their peers send gives the system nothing to write
//! into freed memory (every operation is cancelled and drained first).

mod util;

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use ringport_port::{is_cancelled, BackendChoice, Op, Outcome, SharedFd, Token};
use util::{connected_pair, next, nothing_completes, pattern, port};

on_every_backend!(
    operations_that_finish_at_once_are_delivered_exactly_once,
    cancels_racing_arriving_bytes_end_each_receive_once_and_lose_nothing,
    a_port_dropped_while_its_receives_complete_leaves_the_sockets_usable,
);

fn operations_that_finish_at_once_are_delivered_exactly_once(backend: BackendChoice) {
    let (fd, mut client) = connected_pair();
    let mut port = port(backend);
    let mut pending = Vec::new();
    const ROUNDS: u64 = 300;
    for round in 0..ROUNDS {
        let msg = pattern(1 + (round as usize * 37) % 1000);
        // The bytes are there before the receive starts, and the send fits the socket buffer:
        // both can finish inside the submitting call.
        client.write_all(&msg).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = Vec::new();
        // A receive may take part of the message; take the rest with further receives.
        while buf.len() < msg.len() {
            port.submit(
                round,
                Op::Recv {
                    fd: fd.clone(),
                    buf: Vec::with_capacity(msg.len() - buf.len()),
                    nowait: false,
                },
            )
            .unwrap();
            let c = next(&mut port, &mut pending);
            assert_eq!(c.key, round);
            let Outcome::Received { buf: got, result } = c.outcome else {
                panic!("{:?}", c.outcome)
            };
            assert!(result.unwrap() > 0);
            buf.extend_from_slice(&got);
            assert!(Instant::now() < deadline, "round {round}: no end");
        }
        assert_eq!(buf, msg, "round {round}");
        port.submit(
            round + ROUNDS,
            Op::Send {
                fd: fd.clone(),
                buf,
                at: 0,
            },
        )
        .unwrap();
        let c = next(&mut port, &mut pending);
        assert_eq!(c.key, round + ROUNDS);
        let Outcome::Sent { result, .. } = c.outcome else {
            panic!("{:?}", c.outcome)
        };
        assert_eq!(result.unwrap(), msg.len());
        let mut back = vec![0u8; msg.len()];
        client.read_exact(&mut back).unwrap();
        assert_eq!(back, msg);
    }
    // Nothing more: no second delivery of anything that finished inline.
    nothing_completes(&mut port, &mut pending);
    let stats = port.stats();
    assert_eq!(stats.stale, 0, "{stats:?}");
    assert_eq!(stats.completions, stats.submitted, "{stats:?}");
    assert_eq!(port.in_flight(), 0);
    if backend == BackendChoice::Iocp {
        // The path under test was taken: under Wine most of these finish inline.
        assert!(stats.inline > 0, "no inline completion: {stats:?}");
    }
    eprintln!("{backend}: {stats:?}");
}

fn cancels_racing_arriving_bytes_end_each_receive_once_and_lose_nothing(backend: BackendChoice) {
    const PAIRS: usize = 64;
    const BYTES: usize = 3000;
    let mut port = port(backend);
    let mut pending = Vec::new();
    let pairs: Vec<_> = (0..PAIRS).map(|_| connected_pair()).collect();
    let fds: Vec<SharedFd> = pairs.iter().map(|(fd, _)| fd.clone()).collect();
    let clients: Vec<_> = pairs.into_iter().map(|(_, c)| c).collect();
    let mut tokens: HashMap<Token, usize> = HashMap::new();
    for (i, fd) in fds.iter().enumerate() {
        let token = port
            .submit(
                i as u64,
                Op::Recv {
                    fd: fd.clone(),
                    buf: Vec::with_capacity(BYTES),
                    nowait: false,
                },
            )
            .unwrap();
        tokens.insert(token, i);
    }
    // Let the receives reach the system, then send on every connection while cancelling them
    // all: some end with bytes, some cancelled, a few may have both raced.
    port.wait(&mut pending, Some(Duration::ZERO)).unwrap();
    assert!(pending.is_empty(), "{pending:?}");
    let go = Arc::new(Barrier::new(2));
    let writer_go = Arc::clone(&go);
    let writer = std::thread::spawn(move || {
        writer_go.wait();
        let mut clients = clients;
        for (i, c) in clients.iter_mut().enumerate() {
            c.write_all(&pattern_for(i)).unwrap();
        }
        clients
    });
    go.wait();
    for &token in tokens.keys() {
        port.cancel(token).unwrap();
    }
    let mut got: Vec<Vec<u8>> = vec![Vec::new(); PAIRS];
    let mut ended = vec![0u32; PAIRS];
    let mut cancelled = 0;
    for _ in 0..PAIRS {
        let c = next(&mut port, &mut pending);
        let i = c.key as usize;
        ended[i] += 1;
        let Outcome::Received { buf, result } = c.outcome else {
            panic!("{:?}", c.outcome)
        };
        match result {
            Ok(n) => {
                assert!(n > 0, "connection {i}: end of stream");
                got[i].extend_from_slice(&buf);
            }
            Err(e) if is_cancelled(&e) => cancelled += 1,
            Err(e) => panic!("connection {i}: {e}"),
        }
    }
    assert!(ended.iter().all(|&n| n == 1), "{ended:?}");
    nothing_completes(&mut port, &mut pending);
    assert_eq!(port.in_flight(), 0);
    let clients = writer.join().unwrap();
    // What a cancelled receive did not take is still in its socket: take it, byte-exact.
    let deadline = Instant::now() + Duration::from_secs(10);
    for (i, fd) in fds.iter().enumerate() {
        while got[i].len() < BYTES {
            assert!(Instant::now() < deadline, "connection {i}: bytes lost");
            port.submit(
                i as u64,
                Op::Recv {
                    fd: fd.clone(),
                    buf: Vec::with_capacity(BYTES),
                    nowait: false,
                },
            )
            .unwrap();
            let c = next(&mut port, &mut pending);
            let Outcome::Received { buf, result } = c.outcome else {
                panic!("{:?}", c.outcome)
            };
            assert!(result.unwrap() > 0, "connection {i}: end of stream");
            got[i].extend_from_slice(&buf);
        }
        assert_eq!(got[i], pattern_for(i), "connection {i}");
    }
    let stats = port.stats();
    assert_eq!(stats.stale, 0, "{stats:?}");
    eprintln!("{backend}: {cancelled} of {PAIRS} receives ended cancelled; {stats:?}");
    drop(clients);
}

fn pattern_for(i: usize) -> Vec<u8> {
    let mut p = pattern(3000);
    p.rotate_left(i);
    p
}

fn a_port_dropped_while_its_receives_complete_leaves_the_sockets_usable(backend: BackendChoice) {
    const PAIRS: usize = 32;
    for round in 0..5 {
        let pairs: Vec<_> = (0..PAIRS).map(|_| connected_pair()).collect();
        let mut port = port(backend);
        for (i, (fd, _)) in pairs.iter().enumerate() {
            port.submit(
                i as u64,
                Op::Recv {
                    fd: fd.clone(),
                    buf: Vec::with_capacity(4096),
                    nowait: false,
                },
            )
            .unwrap();
        }
        let mut pending = Vec::new();
        port.wait(&mut pending, Some(Duration::ZERO)).unwrap();
        // Bytes arrive as the port goes away: its receives complete, are cancelled, or both.
        for (_, c) in &pairs {
            let mut c = c;
            c.write_all(b"x").unwrap();
        }
        drop(port);
        // The sockets outlive the port and still work: the server side echoes by hand.
        for (i, (fd, c)) in pairs.iter().enumerate() {
            let stream = dup(fd);
            stream.set_nonblocking(true).unwrap();
            // The "x" was taken by a completed receive or is still there.
            let mut one = [0u8; 1];
            match (&stream).read(&mut one) {
                Ok(1) => assert_eq!(&one, b"x", "round {round}, connection {i}"),
                Ok(n) => panic!("round {round}, connection {i}: {n} bytes"),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("round {round}, connection {i}: {e}"),
            }
            stream.set_nonblocking(false).unwrap();
            (&stream).write_all(b"after").unwrap();
            let mut back = [0u8; 5];
            let mut c = c;
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            c.read_exact(&mut back).unwrap();
            assert_eq!(&back, b"after");
        }
    }
}

/// A second handle on the socket of `fd` (the port's handle stays where it is).
fn dup(fd: &SharedFd) -> std::net::TcpStream {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        std::net::TcpStream::from(fd.real().unwrap().as_fd().try_clone_to_owned().unwrap())
    }
    #[cfg(windows)]
    {
        use std::os::windows::io::AsSocket;
        std::net::TcpStream::from(fd.real().unwrap().as_socket().try_clone_to_owned().unwrap())
    }
}
