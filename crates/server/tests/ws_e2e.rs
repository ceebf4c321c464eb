//! WebSocket end to end, in this process, on every model and every backend of the system
//! (io_uring and epoll on Linux, IOCP on Windows, where this runs under Wine in CI), with a
//! small client written here on the codec crate over blocking sockets: text and binary
//! messages of 0 B to 300 KiB, fragmented sends with a ping between the fragments, the close
//! handshake; misbehaving clients beside them (an unmasked frame, garbage, a stalled upgrade)
//! closed alone and counted by cause; and the graceful shutdown's close frame (1001). `wss` on
//! every model and backend too, with rustls' client. Pipelined messages (many written before
//! any is read, larger than the server's buffers too) come back in order on every model, over
//! ws and wss; a client that never reads holds a bounded part of the server (received minus
//! echoed) and is closed alone at the write timeout while another is served.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use ringport_port::{BackendChoice, PortConfig};
use ringport_server::echo::websocket::WsConfig;
use ringport_server::tls::{provider, Tls};
use ringport_server::{Model, ServeConfig, Shutdown};
use ringport_ws::{apply_mask, client_key, close, handshake, FrameHeader, Opcode};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use support::{designs, self_signed_tls};

/// A WebSocket client over any stream: masked frames out, whole frames in.
struct Client<S: Read + Write> {
    stream: S,
    held: Vec<u8>,
    seed: u32,
}

impl<S: Read + Write> Client<S> {
    /// Upgrades `stream`; panics unless the server answers 101 with the right accept key.
    fn upgrade(mut stream: S, seed: u64) -> Client<S> {
        let key = client_key(seed);
        let mut request = Vec::new();
        handshake::write_request("127.0.0.1", "/echo", &key, &[], &mut request);
        stream.write_all(&request).unwrap();
        let mut held = Vec::new();
        loop {
            if let Some(n) = handshake::parse_response(&held, &key).expect("a valid 101") {
                held.drain(..n);
                break;
            }
            let mut buf = [0u8; 1024];
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "the server closed during the upgrade");
            held.extend_from_slice(&buf[..n]);
        }
        Client {
            stream,
            held,
            seed: seed as u32,
        }
    }

    fn send(&mut self, fin: bool, opcode: Opcode, payload: &[u8]) {
        let mut frame = Vec::new();
        self.frame(fin, opcode, payload, &mut frame);
        self.stream.write_all(&frame).unwrap();
    }

    /// Appends a masked frame to `out`.
    fn frame(&mut self, fin: bool, opcode: Opcode, payload: &[u8], out: &mut Vec<u8>) {
        self.seed = self
            .seed
            .wrapping_mul(1_664_525)
            .wrapping_add(1_013_904_223);
        let mask = self.seed.to_le_bytes();
        let header = FrameHeader {
            fin,
            opcode,
            mask: Some(mask),
            len: payload.len() as u64,
        };
        let mut bytes = [0u8; 14];
        let n = header.encode(&mut bytes);
        let at = out.len() + n;
        out.extend_from_slice(&bytes[..n]);
        out.extend_from_slice(payload);
        apply_mask(&mut out[at..], mask, 0);
    }

    /// The next whole frame: (opcode, fin, payload); `None` at the end of stream.
    fn recv(&mut self) -> Option<(Opcode, bool, Vec<u8>)> {
        loop {
            if let Some((h, n)) = FrameHeader::parse(&self.held).unwrap() {
                assert!(h.mask.is_none(), "a server frame is never masked");
                let end = n + h.len as usize;
                if self.held.len() >= end {
                    let payload = self.held[n..end].to_vec();
                    self.held.drain(..end);
                    return Some((h.opcode, h.fin, payload));
                }
            }
            let mut buf = vec![0u8; 64 * 1024];
            let n = match self.stream.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
                Err(e) => panic!("{e}"),
            };
            if n == 0 {
                assert!(self.held.is_empty(), "a frame cut at the end");
                return None;
            }
            self.held.extend_from_slice(&buf[..n]);
        }
    }

    /// Closes with 1000 and asserts the server answers with 1000, then ends the stream.
    #[track_caller]
    fn close_normally(&mut self, what: &str) {
        self.send(true, Opcode::Close, &[0x03, 0xE8]);
        assert_eq!(self.close_code(), Some(close::NORMAL), "{what}");
    }

    /// The close frame's code, after any other frames; then the end of stream.
    fn close_code(&mut self) -> Option<u16> {
        loop {
            match self.recv() {
                Some((Opcode::Close, _, payload)) => {
                    assert!(self.recv().is_none(), "nothing after the close frame");
                    return close::parse_close_payload(&payload)
                        .unwrap()
                        .map(|(c, _)| c);
                }
                Some(_) => continue,
                None => panic!("the connection ended without a close frame"),
            }
        }
    }
}

fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// A TLS client of the server whose self-signed identity is `tls` (rustls, as "localhost"):
/// connects to an address and returns the stream, its handshake left to the first write.
fn wss_connector(tls: &Tls) -> impl Fn(SocketAddr) -> StreamOwned<ClientConnection, TcpStream> {
    let mut roots = RootCertStore::empty();
    let pem = tls.self_signed_pem.as_ref().unwrap();
    roots
        .add(CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
        .unwrap();
    let config = Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    move |addr| {
        let conn = ClientConnection::new(
            Arc::clone(&config),
            ServerName::try_from("localhost").unwrap(),
        )
        .unwrap();
        StreamOwned::new(conn, tcp(addr))
    }
}

/// Messages of every size class and both types, a fragmented message with a ping between its
/// fragments; returns how many text and binary messages were echoed.
fn exchange<S: Read + Write>(client: &mut Client<S>, what: &str) -> (u64, u64) {
    let (mut text, mut binary) = (0, 0);
    for size in [0usize, 1, 125, 126, 65_535, 65_536, 300_000] {
        let bin: Vec<u8> = (0..size).map(|i| (i * 31 + size) as u8).collect();
        client.send(true, Opcode::Binary, &bin);
        assert!(
            client.recv() == Some((Opcode::Binary, true, bin)),
            "{what}: binary of {size}"
        );
        let txt: String = (0..size)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        client.send(true, Opcode::Text, txt.as_bytes());
        assert!(
            client.recv() == Some((Opcode::Text, true, txt.into_bytes())),
            "{what}: text of {size}"
        );
        text += 1;
        binary += 1;
    }
    client.send(false, Opcode::Text, "héllo, ".as_bytes());
    client.send(true, Opcode::Ping, b"ping!");
    client.send(false, Opcode::Continuation, b"fragmented ");
    client.send(true, Opcode::Continuation, "wörld".as_bytes());
    assert_eq!(
        client.recv(),
        Some((Opcode::Pong, true, b"ping!".to_vec())),
        "{what}"
    );
    assert_eq!(
        client.recv(),
        Some((
            Opcode::Text,
            true,
            "héllo, fragmented wörld".as_bytes().to_vec()
        )),
        "{what}"
    );
    (text + 1, binary)
}

#[test]
fn websocket_echoes_messages_on_every_model_and_backend_and_misbehaving_clients_fail_alone() {
    for (model, backend) in designs() {
        let what = format!("{model} on {backend}");
        let cfg = ServeConfig {
            port: 0,
            workers: 2,
            model,
            port_config: PortConfig {
                backend,
                ..PortConfig::default()
            },
            max_per_ip: 0,
            websocket: Some(WsConfig {
                max_message: 1 << 20,
                handshake_timeout: Duration::from_millis(500),
            }),
            ..ServeConfig::default()
        };
        let shutdown = Shutdown::new();
        let running = ringport_server::start(&cfg, shutdown.clone())
            .unwrap_or_else(|e| panic!("{what}: the server starts: {e}"));
        assert!(running.ready().websocket, "{what}");
        let addr = running.local_addr();

        let mut client = Client::upgrade(tcp(addr), 1);
        let (text, binary) = exchange(&mut client, &what);
        // The close handshake: the client's code comes back, then the end of stream.
        client.send(true, Opcode::Close, &[0x03, 0xE8, b'o', b'k']);
        assert_eq!(client.close_code(), Some(close::NORMAL), "{what}");

        // Misbehaving clients, one at a time (the single model serves one at a time).
        let mut unmasked = Client::upgrade(tcp(addr), 2);
        unmasked
            .stream
            .write_all(&[0x81, 0x02, b'h', b'i'])
            .unwrap();
        assert_eq!(unmasked.close_code(), Some(close::PROTOCOL), "{what}");
        let mut reserved = Client::upgrade(tcp(addr), 3);
        reserved.send(true, Opcode::Binary, b"ok");
        assert!(reserved.recv().is_some());
        reserved
            .stream
            .write_all(&[0x83, 0x80, 1, 2, 3, 4])
            .unwrap();
        assert_eq!(reserved.close_code(), Some(close::PROTOCOL), "{what}");

        let mut garbage = tcp(addr);
        garbage.write_all(b"\x16\x03\x01garbage\r\n\r\n").unwrap();
        let mut refusal = Vec::new();
        let _ = garbage.read_to_end(&mut refusal);
        assert!(
            refusal.starts_with(b"HTTP/1.1 400 "),
            "{what}: {}",
            String::from_utf8_lossy(&refusal)
        );

        let mut stalled = tcp(addr);
        stalled.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        let mut nothing = Vec::new();
        let _ = stalled.read_to_end(&mut nothing);
        assert!(
            nothing.is_empty(),
            "{what}: closed at the handshake timeout, without a word"
        );

        // The graceful shutdown: an upgraded client gets its last echo, then 1001.
        let mut last = Client::upgrade(tcp(addr), 4);
        last.send(true, Opcode::Text, b"last words");
        assert_eq!(
            last.recv(),
            Some((Opcode::Text, true, b"last words".to_vec()))
        );
        shutdown.trigger();
        assert_eq!(last.close_code(), Some(close::GOING_AWAY), "{what}");

        let summary = running.wait().expect("a clean shutdown");
        let ws = summary.total().ws;
        assert_eq!(ws.handshakes, 4, "{what}: {ws:?}");
        assert_eq!(
            (ws.text, ws.binary),
            (text + 1, binary + 1),
            "{what}: {ws:?}"
        );
        assert_eq!(
            (ws.pings, ws.closes_normal, ws.going_away),
            (1, 1, 1),
            "{what}: {ws:?}"
        );
        assert_eq!((ws.unmasked, ws.reserved_opcode), (1, 1), "{what}: {ws:?}");
        assert_eq!(
            (ws.bad_request, ws.handshake_timeout),
            (1, 1),
            "{what}: {ws:?}"
        );
        assert_eq!(ws.failures(), 4, "{what}: {ws:?}");
        let text = summary.to_string();
        assert!(text.contains("websocket: 4 upgrades"), "{text}");
    }
}

#[test]
fn a_fragmented_message_over_the_limit_is_closed_with_1009_on_every_model() {
    for (model, backend) in designs() {
        let what = format!("{model} on {backend}");
        let cfg = ServeConfig {
            port: 0,
            workers: 1,
            model,
            port_config: PortConfig {
                backend,
                ..PortConfig::default()
            },
            websocket: Some(WsConfig {
                max_message: 1000,
                ..WsConfig::default()
            }),
            ..ServeConfig::default()
        };
        let shutdown = Shutdown::new();
        let running = ringport_server::start(&cfg, shutdown.clone()).unwrap();
        let mut client = Client::upgrade(tcp(running.local_addr()), 9);
        client.send(false, Opcode::Binary, &[1; 600]);
        client.send(true, Opcode::Continuation, &[2; 600]);
        assert_eq!(client.close_code(), Some(close::TOO_BIG), "{what}");
        let mut client = Client::upgrade(tcp(running.local_addr()), 10);
        client.send(true, Opcode::Text, b"not \xff utf-8");
        assert_eq!(client.close_code(), Some(close::INVALID_PAYLOAD), "{what}");
        shutdown.trigger();
        let ws = running.wait().unwrap().total().ws;
        assert_eq!((ws.too_big, ws.invalid_utf8), (1, 1), "{what}: {ws:?}");
    }
}

#[test]
fn wss_on_every_model_and_backend() {
    let tls = self_signed_tls();
    let connect = wss_connector(&tls);
    for (model, backend) in designs() {
        let what = format!("wss, {model} on {backend}");
        let cfg = ServeConfig {
            port: 0,
            model,
            port_config: PortConfig {
                backend,
                ..PortConfig::default()
            },
            max_per_ip: 0,
            tls: Some(tls.clone()),
            websocket: Some(WsConfig {
                max_message: 1 << 20,
                handshake_timeout: Duration::from_millis(500),
            }),
            ..ServeConfig::default()
        };
        let shutdown = Shutdown::new();
        let running = ringport_server::start(&cfg, shutdown.clone())
            .unwrap_or_else(|e| panic!("{what}: the server starts: {e}"));
        assert!(running.ready().tls && running.ready().websocket);
        let addr = running.local_addr();

        let mut client = Client::upgrade(connect(addr), 5);
        let (text, binary) = exchange(&mut client, &what);
        client.send(true, Opcode::Close, &[0x03, 0xE8]);
        assert_eq!(client.close_code(), Some(close::NORMAL), "{what}");

        // TLS is up but the upgrade never comes: closed at the WebSocket handshake timeout.
        let mut stalled = connect(addr);
        stalled.conn.complete_io(&mut stalled.sock).unwrap();
        let mut nothing = Vec::new();
        let _ = stalled.read_to_end(&mut nothing);
        assert!(nothing.is_empty(), "{what}: closed without a word");

        // The graceful shutdown: the last echo, then 1001, then close_notify.
        let mut last = Client::upgrade(connect(addr), 6);
        last.send(true, Opcode::Binary, b"last words");
        assert_eq!(
            last.recv(),
            Some((Opcode::Binary, true, b"last words".to_vec())),
            "{what}"
        );
        shutdown.trigger();
        assert_eq!(last.close_code(), Some(close::GOING_AWAY), "{what}");
        let state = last.stream.conn.process_new_packets().unwrap();
        assert!(
            state.peer_has_closed(),
            "{what}: close_notify after the close frame"
        );

        let t = running.wait().unwrap().total();
        assert_eq!(t.ws.handshakes, 2, "{what}: {:?}", t.ws);
        assert_eq!(
            (t.ws.text, t.ws.binary),
            (text, binary + 1),
            "{what}: {:?}",
            t.ws
        );
        assert_eq!(
            (t.ws.closes_normal, t.ws.going_away, t.ws.handshake_timeout),
            (1, 1, 1),
            "{what}: {:?}",
            t.ws
        );
        assert_eq!(t.ws.failures(), 1, "{what}: {:?}", t.ws);
        assert_eq!(t.tls.failures(), 0, "{what}: {:?}", t.tls);
        assert_eq!(t.tls.close_notify, 3, "{what}: {:?}", t.tls);
    }
}

/// The messages of the pipelining tests: sizes from 0 B to past the server's 16 KiB buffers,
/// both types, each with its own bytes.
fn pipelined_messages(count: usize, largest: usize) -> Vec<(Opcode, Vec<u8>)> {
    (0..count)
        .map(|i| {
            let size = match i % 7 {
                0 => 0,
                1 => 1,
                2 => 125,
                3 => 126 + i,
                4 => 2_000 + 13 * i,
                5 => largest,
                _ => 64,
            };
            let opcode = if i % 3 == 0 {
                Opcode::Text
            } else {
                Opcode::Binary
            };
            let body = (0..size).map(|j| b'a' + ((i * 7 + j) % 26) as u8).collect();
            (opcode, body)
        })
        .collect()
}

/// The server of the pipelining and never-reader tests: one worker, 16 KiB buffers.
fn ws_server(
    model: Model,
    backend: BackendChoice,
    tls: Option<Tls>,
) -> (ringport_server::Running, Shutdown) {
    let cfg = ServeConfig {
        buffer_size: 16 * 1024,
        write_timeout: Some(Duration::from_secs(1)),
        tls,
        websocket: Some(WsConfig::default()),
        ..support::design(model, backend)
    };
    let shutdown = Shutdown::new();
    (
        ringport_server::start(&cfg, shutdown.clone()).unwrap(),
        shutdown,
    )
}

/// How a pipelining test reaches the server.
#[derive(Clone, Copy)]
enum Transport {
    /// WebSocket on plain TCP.
    Ws,
    /// WebSocket over TLS (the server's self-signed identity, rustls' client).
    Wss,
}

/// Pipelined messages come back in order on every model over `transport`, and the close
/// handshake ends each connection; the server counts every message and no failure.
fn pipelined_messages_come_back_in_order(transport: Transport) {
    let tls = match transport {
        Transport::Ws => None,
        Transport::Wss => Some(self_signed_tls()),
    };
    let connect = tls.as_ref().map(wss_connector);
    for (model, backend) in designs() {
        let (running, shutdown) = ws_server(model, backend, tls.clone());
        let addr = running.local_addr();
        let (what, echoed) = match &connect {
            None => {
                let what = format!("{model} on {backend}");
                let mut client = Client::upgrade(tcp(addr), 11);
                let echoed = pipelined_from_another_thread(&mut client, &what);
                client.close_normally(&what);
                (what, echoed)
            }
            Some(connect) => {
                let what = format!("wss, {model} on {backend}");
                let mut client = Client::upgrade(connect(addr), 12);
                let echoed = pipelined_in_batches(&mut client, &what);
                client.close_normally(&what);
                (what, echoed)
            }
        };
        shutdown.trigger();
        let ws = running.wait().unwrap().total().ws;
        assert_eq!(ws.text + ws.binary, echoed, "{what}: {ws:?}");
        assert_eq!(ws.failures(), 0, "{what}: {ws:?}");
    }
}

/// 2,000 messages (about 20 MiB) written by another thread while this one reads them back:
/// more than the server holds, so its receives and sends overlap and back off in turn.
/// Returns how many were echoed.
fn pipelined_from_another_thread(client: &mut Client<TcpStream>, what: &str) -> u64 {
    let messages = pipelined_messages(2_000, 60_000);
    let mut wire = Vec::new();
    for (opcode, body) in &messages {
        client.frame(true, *opcode, body, &mut wire);
    }
    let mut writer = client.stream.try_clone().unwrap();
    let writing = std::thread::spawn(move || writer.write_all(&wire).unwrap());
    for (i, (opcode, body)) in messages.iter().enumerate() {
        let got = client.recv();
        assert!(
            got.as_ref() == Some(&(*opcode, true, body.clone())),
            "{what}: message {i} ({} bytes) came back as {:?}",
            body.len(),
            got.map(|(o, f, b)| (o, f, b.len()))
        );
    }
    writing.join().unwrap();
    messages.len() as u64
}

/// Batches written whole before any echo is read (a TLS stream is one thread's), small enough
/// (about 24 KiB) that the sockets hold them whatever the server does first. Returns how many
/// messages were echoed.
fn pipelined_in_batches<S: Read + Write>(client: &mut Client<S>, what: &str) -> u64 {
    let mut echoed = 0;
    for round in 0..20 {
        let messages = pipelined_messages(40, 3_000 + round);
        let mut wire = Vec::new();
        for (opcode, body) in &messages {
            client.frame(true, *opcode, body, &mut wire);
        }
        client.stream.write_all(&wire).unwrap();
        for (i, (opcode, body)) in messages.iter().enumerate() {
            assert!(
                client.recv().as_ref() == Some(&(*opcode, true, body.clone())),
                "{what}: round {round}, message {i}"
            );
        }
        echoed += messages.len() as u64;
    }
    echoed
}

#[test]
fn pipelined_messages_come_back_in_order_on_every_model() {
    pipelined_messages_come_back_in_order(Transport::Ws);
}

#[test]
fn pipelined_messages_come_back_in_order_over_wss_on_every_model() {
    pipelined_messages_come_back_in_order(Transport::Wss);
}

#[test]
fn a_client_that_never_reads_holds_a_bounded_part_of_the_server_and_is_closed_alone() {
    for (model, backend) in designs() {
        let what = format!("{model} on {backend}");
        let (running, shutdown) = ws_server(model, backend, None);
        let addr = running.local_addr();
        let mut hog = Client::upgrade(tcp(addr), 13);
        // 64 MiB of 60 KB messages, written and never read: the server must stop receiving
        // once its echo backs up (the sockets hold some MiB), not take the rest in.
        let body = vec![7u8; 60_000];
        let mut frame = Vec::new();
        hog.frame(true, Opcode::Binary, &body, &mut frame);
        let mut writer = hog.stream.try_clone().unwrap();
        let total: u64 = 64 << 20;
        let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let progress = Arc::clone(&written);
        let writing = std::thread::spawn(move || {
            while progress.load(std::sync::atomic::Ordering::SeqCst) < total {
                if writer.write_all(&frame).is_err() {
                    return;
                }
                progress.fetch_add(frame.len() as u64, std::sync::atomic::Ordering::SeqCst);
            }
        });
        // Received minus echoed, once the writer stalled and the counters settled.
        let live = running.live();
        let mut last = (u64::MAX, u64::MAX);
        let held = loop {
            std::thread::sleep(Duration::from_millis(300));
            let t = live.snapshot().totals;
            let now = (
                written.load(std::sync::atomic::Ordering::SeqCst),
                t.bytes_in,
            );
            if now == last {
                break t.bytes_in - t.bytes_out.min(t.bytes_in);
            }
            last = now;
        };
        let sent = written.load(std::sync::atomic::Ordering::SeqCst);
        assert!(sent < total, "{what}: the server took all {sent} bytes in");
        // At most its input buffer, its bounded output and a message's frame header per
        // message: far from the megabytes the hog offered.
        assert!(
            held <= 64 * 1024,
            "{what}: {held} bytes received and not echoed, of {sent} sent"
        );
        // Another client is served meanwhile (after it, by the model that serves one at a
        // time); the hog is closed at the write timeout: its writer fails (or, where the
        // server discards what follows its close for a moment, ends).
        let other = || {
            let mut other = Client::upgrade(tcp(addr), 14);
            let (_, _) = exchange(&mut other, &what);
            other.send(true, Opcode::Close, &[0x03, 0xE8]);
            assert_eq!(other.close_code(), Some(close::NORMAL), "{what}");
        };
        if model == Model::Single {
            writing.join().unwrap();
            other();
        } else {
            other();
            writing.join().unwrap();
        }
        shutdown.trigger();
        let stats = running.wait().unwrap().total();
        assert!(stats.write_timeouts >= 1, "{what}: {stats:?}");
        assert_eq!(stats.ws.handshakes, 2, "{what}: {:?}", stats.ws);
    }
}
