//! `ringport send` against servers that stand in for wrong ones, on every transport: one that
//! sends more than the echo (plaintext, TLS, WebSocket and wss alike: one rule, one line).

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use support::{bin, TempDir, TestCa};

/// How a stand-in server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Plain,
    Tls,
    WebSocket,
    Wss,
}

impl Transport {
    const ALL: [Transport; 4] = [
        Transport::Plain,
        Transport::Tls,
        Transport::WebSocket,
        Transport::Wss,
    ];

    fn tls(self) -> bool {
        matches!(self, Transport::Tls | Transport::Wss)
    }

    fn websocket(self) -> bool {
        matches!(self, Transport::WebSocket | Transport::Wss)
    }
}

/// A certificate for 127.0.0.1 and the CA file that trusts it.
struct Certs {
    dir: TempDir,
    config: Arc<rustls::ServerConfig>,
}

impl Certs {
    /// Certificates in a directory of their own, named after `test`.
    fn make(test: &str) -> Certs {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let dir = TempDir::new(&format!("send-certs-{test}"));
        let ca = TestCa::new("ringport send test CA");
        std::fs::write(dir.path("ca.pem"), ca.pem()).unwrap();
        let (cert, key) = ca.issue(&["127.0.0.1"]);
        let chain = vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(ringport_tls_record::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        Certs {
            dir,
            config: Arc::new(config),
        }
    }

    fn ca(&self) -> String {
        self.dir.arg("ca.pem")
    }
}

/// A stream a stand-in server speaks over.
trait Stream: Read + Write + Send {}
impl<S: Read + Write + Send> Stream for S {}

/// One connection of a stand-in server on `listener`, speaking `transport`: it reads a message
/// of `len` bytes, echoes it, sends `extra` after it (with WebSocket, as a message of its own),
/// then reads until the client's end. Returns at once; the server serves one connection.
fn echo_and_more(
    listener: TcpListener,
    transport: Transport,
    certs: &Certs,
    len: usize,
    extra: &'static [u8],
) -> std::thread::JoinHandle<()> {
    let config = Arc::clone(&certs.config);
    std::thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut stream: Box<dyn Stream> = if transport.tls() {
            let conn = rustls::ServerConnection::new(config).unwrap();
            Box::new(rustls::StreamOwned::new(conn, sock))
        } else {
            Box::new(sock)
        };
        if transport.websocket() {
            ws_echo_and_more(&mut stream, len, extra);
        } else {
            let mut got = vec![0u8; len];
            stream.read_exact(&mut got).unwrap();
            stream.write_all(&got).unwrap();
            stream.write_all(extra).unwrap();
            stream.flush().unwrap();
        }
        let _ = std::io::copy(&mut stream, &mut std::io::sink());
    })
}

/// The WebSocket side of [`echo_and_more`]: the upgrade, one message of `len` bytes in one
/// frame, its echo, and `extra` as a binary message after it (none if empty).
fn ws_echo_and_more(stream: &mut dyn Stream, len: usize, extra: &[u8]) {
    use ringport_ws::{accept_key, apply_mask, handshake, FrameHeader, Opcode};
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let request = handshake::parse_request(&head).unwrap().unwrap();
    let mut out = Vec::new();
    handshake::write_response(&accept_key(request.key), None, &mut out);
    stream.write_all(&out).unwrap();
    stream.flush().unwrap();
    let mut frame = Vec::new();
    let (header, at) = loop {
        stream.read_exact(&mut byte).unwrap();
        frame.push(byte[0]);
        if let Some(parsed) = FrameHeader::parse(&frame).unwrap() {
            break parsed;
        }
    };
    assert_eq!((header.len, at), (len as u64, frame.len()));
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).unwrap();
    apply_mask(&mut payload, header.mask.unwrap(), 0);
    let mut out = Vec::new();
    for (opcode, body) in [(header.opcode, &payload[..]), (Opcode::Binary, extra)] {
        if opcode == Opcode::Binary && body.is_empty() {
            continue;
        }
        let mut bytes = [0u8; 14];
        let n = FrameHeader {
            fin: true,
            opcode,
            mask: None,
            len: body.len() as u64,
        }
        .encode(&mut bytes);
        out.extend_from_slice(&bytes[..n]);
        out.extend_from_slice(body);
    }
    stream.write_all(&out).unwrap();
    stream.flush().unwrap();
}

/// `ringport send 127.0.0.1 PORT MESSAGE` over `transport`.
fn send(port: u16, transport: Transport, certs: &Certs, message: &str) -> Output {
    let mut cmd = bin();
    cmd.args(["send", "127.0.0.1", &port.to_string(), message]);
    if transport.tls() {
        cmd.args(["--tls", "--tls-ca", &certs.ca()]);
    }
    if transport.websocket() {
        cmd.arg("--websocket");
    }
    cmd.stdin(std::process::Stdio::null()).output().unwrap()
}

/// A server that sends more than the echo (here one byte, or one message of one byte, after
/// it): `send` sees it and fails with one line and exit code 1, in the same words on every
/// transport; an exact echo passes.
#[test]
fn bytes_beyond_the_echo_fail_send_on_every_transport() {
    let certs = Certs::make("beyond");
    for transport in Transport::ALL {
        for extra in [&b""[..], b"X"] {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let server = echo_and_more(listener, transport, &certs, 5, extra);
            let out = send(port, transport, &certs, "hello");
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            server
                .join()
                .unwrap_or_else(|_| panic!("{transport:?}: the server failed; send said {err}"));
            if extra.is_empty() {
                assert!(out.status.success(), "{transport:?}: {err}");
                assert_eq!(out.stdout, b"hello\n", "{transport:?}");
                continue;
            }
            assert_eq!(out.status.code(), Some(1), "{transport:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{transport:?}: one line: {err}");
            assert_eq!(
                err.trim_end(),
                format!(
                    "ringport: error: 127.0.0.1:{port} sent 1 byte more than the echo of 5 bytes \
                     (the first: 0x58)"
                ),
                "{transport:?}"
            );
            assert!(out.stdout.is_empty(), "{transport:?}");
        }
    }
}

/// The connection the server keeps open after an exact echo (it sends nothing more): `send`
/// passes on every transport.
#[test]
fn a_server_that_keeps_the_connection_passes() {
    let certs = Certs::make("kept");
    for transport in Transport::ALL {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let config = Arc::clone(&certs.config);
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let server = std::thread::spawn(move || {
            let (sock, _) = listener.accept().unwrap();
            let mut stream: Box<dyn Stream> = if transport.tls() {
                let conn = rustls::ServerConnection::new(config).unwrap();
                Box::new(rustls::StreamOwned::new(conn, sock.try_clone().unwrap()))
            } else {
                Box::new(sock.try_clone().unwrap())
            };
            if transport.websocket() {
                ws_echo_and_more(&mut stream, 2, b"");
            } else {
                let mut got = [0u8; 2];
                stream.read_exact(&mut got).unwrap();
                stream.write_all(&got).unwrap();
                stream.flush().unwrap();
            }
            // Kept open, and silent, until the client has finished.
            let _ = done_rx.recv_timeout(Duration::from_secs(30));
            drop(sock);
        });
        let out = send(port, transport, &certs, "hi");
        let _ = done_tx.send(());
        server.join().unwrap();
        assert!(
            out.status.success(),
            "{transport:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, b"hi\n", "{transport:?}");
    }
}

/// Plaintext `send --file` streams: a file larger than anything `send` could hold (300 MiB,
/// sparse but for marks at chunk edges and far in) goes to `ringport serve` and comes back
/// whole, byte for byte, with `send`'s data memory capped at 64 MiB (`ulimit -d`: holding the
/// file, or a fraction of it, would fail). Standard output is the file, compared as it comes.
#[cfg(unix)]
#[test]
fn a_file_larger_than_memory_streams_through() {
    use std::process::Stdio;
    const SIZE: u64 = 300 << 20;
    let server = support::Server::start("completion", &[]);
    let dir = TempDir::new("send-stream");
    let path = dir.path("big.bin");
    let mut file = std::fs::File::create(&path).unwrap();
    file.set_len(SIZE).unwrap();
    for (i, at) in [0, (64 << 10) - 3, 1 << 20, (123 << 20) + 7, SIZE - 16]
        .into_iter()
        .enumerate()
    {
        use std::io::{Seek, SeekFrom};
        file.seek(SeekFrom::Start(at)).unwrap();
        file.write_all(&[0xa0 + i as u8; 16]).unwrap();
    }
    drop(file);
    let mut child = std::process::Command::new("sh")
        .args(["-c", "ulimit -d 65536 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_ringport"))
        .args(["send", "--timeout", "30"])
        .arg(server.addr.to_string())
        .arg("--file")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The echo on standard output against the file, a chunk at a time.
    let mut echo = child.stdout.take().unwrap();
    let expected = path.clone();
    let comparing = std::thread::spawn(move || -> (u64, Option<u64>) {
        let mut want = std::io::BufReader::new(std::fs::File::open(expected).unwrap());
        let (mut got, mut mine) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
        let (mut total, mut first_wrong) = (0u64, None);
        loop {
            let n = echo.read(&mut got).unwrap();
            if n == 0 {
                return (total, first_wrong);
            }
            let same = want.read_exact(&mut mine[..n]).is_ok() && got[..n] == mine[..n];
            if first_wrong.is_none() && !same {
                let i = got[..n].iter().zip(&mine[..n]).position(|(a, b)| a != b);
                first_wrong = Some(total + i.unwrap_or(0) as u64);
            }
            total += n as u64;
        }
    });
    // Bounded: a send that never ends is killed, and the test fails.
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("send --file of {SIZE} bytes did not end within 600 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let (total, first_wrong) = comparing.join().unwrap();
    assert!(status.success(), "{status}: {err}");
    assert_eq!(first_wrong, None, "the echo written differs from the file");
    assert_eq!(total, SIZE, "the whole file echoed");
}
