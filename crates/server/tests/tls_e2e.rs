//! TLS end to end, in this process, on every model and every backend of the system (io_uring
//! and epoll on Linux, IOCP on Windows, where this runs under Wine in CI): several clients at
//! once on TLS 1.3 and 1.2 (rustls' own client on blocking sockets), byte-exact echoes of 1 B
//! to 100 KiB, a plaintext client beside them closed alone and counted, and the graceful
//! shutdown: what was received is echoed, then close_notify reaches each client, a client
//! still sending at the stop and after it included.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use ringport_server::tls::{provider, Tls};
use ringport_server::{Model, ServeConfig, Shutdown};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

fn client_config(
    tls: &Tls,
    version: &'static rustls::SupportedProtocolVersion,
) -> Arc<ClientConfig> {
    let pem = tls.self_signed_pem.as_ref().unwrap();
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
        .unwrap();
    Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn connect(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
) -> StreamOwned<ClientConnection, TcpStream> {
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let conn = ClientConnection::new(
        Arc::clone(config),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    StreamOwned::new(conn, sock)
}

#[test]
fn tls_echoes_byte_exact_on_every_model_and_backend_and_ends_with_close_notify() {
    let tls = support::self_signed_tls();
    let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
    for (model, backend) in support::designs() {
        let what = format!("{model} on {backend}");
        let cfg = ServeConfig {
            workers: 2,
            tls: Some(tls.clone()),
            ..support::design(model, backend)
        };
        let shutdown = Shutdown::new();
        let running = ringport_server::start(&cfg, shutdown.clone())
            .unwrap_or_else(|e| panic!("{what}: the server starts: {e}"));
        assert!(running.ready().tls, "{what}");
        let addr = running.local_addr();
        // The single model serves one client at a time: one client, one after the other.
        let at_once = if model == Model::Single { 1 } else { 2 };
        let mut echoed = 0u64;
        for version in versions {
            let config = client_config(&tls, version);
            let mut clients: Vec<_> = (0..at_once).map(|_| connect(addr, &config)).collect();
            for size in [1usize, 1000, 16_384, 100_000] {
                for (c, client) in clients.iter_mut().enumerate() {
                    let msg: Vec<u8> = (0..size).map(|i| (i * 31 + c + size) as u8).collect();
                    client.write_all(&msg).unwrap();
                    let mut back = vec![0u8; size];
                    client.read_exact(&mut back).unwrap();
                    assert!(
                        back == msg,
                        "{what} {version:?}: the echo of {size} bytes differs"
                    );
                    echoed += size as u64;
                }
            }
            if model != Model::Single {
                // A plaintext client beside them: closed alone, after an alert.
                let mut plain = TcpStream::connect(addr).unwrap();
                plain
                    .set_read_timeout(Some(Duration::from_secs(30)))
                    .unwrap();
                plain.write_all(b"hello?\r\n").unwrap();
                let mut got = Vec::new();
                let _ = plain.read_to_end(&mut got);
                assert_eq!(got.first(), Some(&21), "{what}: an alert: {got:?}");
                // The others are still served.
                clients[0].write_all(b"still").unwrap();
                let mut back = [0u8; 5];
                clients[0].read_exact(&mut back).unwrap();
                assert_eq!(&back, b"still");
                echoed += 5;
            }
            for mut client in clients {
                // The client's close_notify: the server answers with its own and closes.
                client.conn.send_close_notify();
                client.flush().unwrap();
                let mut rest = Vec::new();
                client.read_to_end(&mut rest).unwrap();
                assert!(rest.is_empty(), "{what}");
            }
        }
        shutdown.trigger();
        let summary = running.wait().expect("a clean shutdown");
        let t = summary.total();
        assert_eq!(t.bytes_out, echoed, "{what}: {t:?}");
        assert_eq!(t.bytes_in, echoed, "{what}: {t:?}");
        let n = at_once as u64;
        assert_eq!((t.tls.tls13, t.tls.tls12), (n, n), "{what}: {:?}", t.tls);
        assert_eq!(t.tls.close_notify, 2 * n, "{what}: {:?}", t.tls);
        let plaintext = u64::from(model != Model::Single) * 2;
        assert_eq!(t.tls.plaintext, plaintext, "{what}: {:?}", t.tls);
        assert_eq!(t.tls.failures(), plaintext, "{what}: {:?}", t.tls);
    }
}

/// A TLS client on a non-blocking socket that sends a pattern and keeps what comes back.
struct Pushing {
    conn: ClientConnection,
    s: TcpStream,
    sent: usize,
    got: Vec<u8>,
    close_notify: bool,
}

impl Pushing {
    /// One turn: sends what the socket takes (up to `limit` bytes of `data` in all), then,
    /// when `read`, reads what came back. Returns whether anything moved, and whether the
    /// stream ended.
    fn turn(&mut self, data: &[u8], limit: usize, read: bool) -> (bool, bool) {
        let mut moved = false;
        if !self.conn.wants_write() && self.sent < limit {
            let end = (self.sent + 16_384).min(limit);
            self.sent += self.conn.writer().write(&data[self.sent..end]).unwrap();
        }
        // An error: a reset, once the server is gone; its end is found by the read.
        if let Ok(n) = self.conn.write_tls(&mut self.s) {
            moved |= n > 0;
        }
        if !read {
            return (moved, false);
        }
        match self.conn.read_tls(&mut self.s) {
            Ok(0) => return (true, true),
            Ok(_) => {
                self.conn.process_new_packets().unwrap();
                let mut chunk = [0u8; 16_384];
                loop {
                    match self.conn.reader().read(&mut chunk) {
                        Ok(0) => {
                            self.close_notify = true;
                            break;
                        }
                        Ok(n) => self.got.extend_from_slice(&chunk[..n]),
                        Err(_) => break,
                    }
                }
                moved = true;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return (true, true),
        }
        (moved, false)
    }
}

/// A client still sending when the server is stopped, and after it, now and then (it had not
/// read its echo for a while, so the echo waits in the server's socket), receives the echo of every byte the
/// server counts as echoed, byte-exact and in order, then close_notify: the server does not
/// close under it. Closing with the client's latest bytes unread would make the kernel reset
/// the connection, which drops the records still queued.
#[test]
fn a_client_still_sending_at_the_stop_receives_every_byte_echoed() {
    let tls = support::self_signed_tls();
    let config = client_config(&tls, &rustls::version::TLS13);
    let data: Vec<u8> = (0..64usize << 20)
        .map(|i| (i * 7 + i / 251) as u8)
        .collect();
    for (model, backend) in support::designs() {
        let what = format!("{model} on {backend}");
        let cfg = ServeConfig {
            tls: Some(tls.clone()),
            // Time enough for the slow reader below.
            drain_timeout: Duration::from_secs(20),
            ..support::design(model, backend)
        };
        let (shutdown, running) = support::start_in_process(&cfg);
        let mut s = TcpStream::connect(running.local_addr()).unwrap();
        let mut conn = ClientConnection::new(
            Arc::clone(&config),
            ServerName::try_from("localhost").unwrap(),
        )
        .unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut s).unwrap();
        }
        s.set_nonblocking(true).unwrap();
        let mut c = Pushing {
            conn,
            s,
            sent: 0,
            got: Vec::new(),
            close_notify: false,
        };
        // Sending, reading nothing, until the sockets' buffers are full both ways (the
        // client's writes would block) for a while.
        let mut blocked = 0;
        while blocked < 40 {
            if !c.turn(&data, data.len(), false).0 {
                blocked += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        assert!(
            c.sent < data.len() / 2,
            "{what}: the server took 32 MiB unechoed"
        );
        shutdown.trigger();
        // Sending goes on, 1 KiB every 10 ms (what arrives in the gaps finds the server's
        // receive waiting for nothing), and what comes back is read slowly (the server's
        // socket holds echo until the end), to the end of the stream (or a reset once the
        // client's unread bytes meet the close).
        let mut limit = c.sent;
        let mut pushed = std::time::Instant::now();
        let deadline = pushed + Duration::from_secs(30);
        loop {
            assert!(std::time::Instant::now() < deadline, "{what}: no end");
            if pushed.elapsed() >= Duration::from_millis(10) {
                limit += 1024;
                pushed = std::time::Instant::now();
            }
            if c.turn(&data, limit, true).1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        // A client closes at the end of its echo (a server on Windows waits for that).
        drop(c.s);
        let summary = running.wait().expect("a clean shutdown");
        let t = summary.total();
        assert_eq!(
            c.got.len() as u64,
            t.bytes_out,
            "{what}: {} bytes sent",
            c.sent
        );
        assert!(c.got == data[..c.got.len()], "{what}: the echo differs");
        assert!(c.close_notify, "{what}: close_notify after the echo");
    }
}
