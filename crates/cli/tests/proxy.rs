//! `serve --proxy-protocol`, on every model: headers of both versions (whole, or cut into
//! pieces that arrive apart) give the connection the client's address, in the logs and under
//! `--max-per-ip`; nothing behind a header is taken from the echo; bad, incomplete and late
//! headers close their connection alone, counted by cause; and HAProxy's `send-proxy` and
//! `send-proxy-v2` in front of the server (Linux, where HAProxy runs), and the clients'
//! own `--proxy-protocol`.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use support::*;

const V2_SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// A version 2 header: PROXY (or LOCAL when `source` is `None`) over TCP.
fn v2(source: Option<SocketAddr>) -> Vec<u8> {
    v2_padded(source, 0)
}

/// [`v2`] with a NOOP TLV of `pad` bytes more (HAProxy pads with those).
fn v2_padded(source: Option<SocketAddr>, pad: u16) -> Vec<u8> {
    let mut h = V2_SIG.to_vec();
    let Some(source) = source else {
        h.extend_from_slice(&[0x20, 0x00, 0, 0]);
        return h;
    };
    let mut block = Vec::new();
    let family = match source {
        SocketAddr::V4(a) => {
            block.extend_from_slice(&a.ip().octets());
            block.extend_from_slice(&[127, 0, 0, 1]);
            0x11
        }
        SocketAddr::V6(a) => {
            block.extend_from_slice(&a.ip().octets());
            block.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
            0x21
        }
    };
    block.extend_from_slice(&source.port().to_be_bytes());
    block.extend_from_slice(&7u16.to_be_bytes());
    // TLVs (an authority, padding), which the server skips.
    block.extend_from_slice(&[0x02, 0x00, 0x04, b'h', b'o', b's', b't']);
    if pad > 0 {
        block.push(0x04);
        block.extend_from_slice(&pad.to_be_bytes());
        block.resize(block.len() + usize::from(pad), 0);
    }
    h.extend_from_slice(&[0x21, family]);
    h.extend_from_slice(&(block.len() as u16).to_be_bytes());
    h.extend_from_slice(&block);
    h
}

/// Sends `header` then `data` (the header in `pieces` writes 30 ms apart), half-closes, and
/// returns everything the server sent back until its end.
fn through(server: &Server, header: &[u8], pieces: usize, data: &[u8]) -> Vec<u8> {
    let mut s = server.connect();
    let step = header.len().div_ceil(pieces.max(1)).max(1);
    // A server that refuses the header may have closed already: writes may fail.
    for piece in header.chunks(step) {
        let _ = s.write_all(piece);
        std::thread::sleep(Duration::from_millis(30));
    }
    let _ = s.write_all(data);
    let _ = s.shutdown(Shutdown::Write);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    got
}

/// The summary's `proxy:` line.
fn proxy_line(server: &Server) -> String {
    let out = server.stdout();
    out.lines()
        .find(|l| l.trim_start().starts_with("proxy:"))
        .unwrap_or_else(|| panic!("no proxy line in {out}"))
        .trim()
        .to_string()
}

fn stop(server: &mut Server) {
    server.signal("TERM");
    assert!(
        server.wait_exit(Duration::from_secs(15)).success(),
        "{}",
        server.stderr()
    );
}

for_each_model! {
    fn headers_of_both_versions_name_the_client_and_only_what_follows_is_echoed(model: &str) {
        let mut server = Server::start(model, &["--proxy-protocol", "--log-messages"]);
        let cases: Vec<(Vec<u8>, Option<&str>)> = vec![
            (
                b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 443\r\n".to_vec(),
                Some("192.0.2.7:40000"),
            ),
            (
                b"PROXY TCP6 2001:db8::5 2001:db8::1 5555 443\r\n".to_vec(),
                Some("[2001:db8::5]:5555"),
            ),
            (b"PROXY UNKNOWN\r\n".to_vec(), None),
            (
                v2(Some("203.0.113.9:6000".parse().unwrap())),
                Some("203.0.113.9:6000"),
            ),
            (
                v2(Some("[2001:db8::9]:6001".parse().unwrap())),
                Some("[2001:db8::9]:6001"),
            ),
            (v2(None), None),
            (
                v2_padded(Some("198.51.100.77:7000".parse().unwrap()), 3000),
                Some("198.51.100.77:7000"),
            ),
        ];
        let mut echoed = 0;
        for (i, (header, client)) in cases.iter().enumerate() {
            for pieces in [1, 3] {
                // Bytes that look like a header's, right behind it.
                let data = format!("PROXY {i} {pieces} \r\n\r\n\0 payload");
                let got = through(&server, header, pieces, data.as_bytes());
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    data,
                    "{model}: {:?} in {pieces}",
                    String::from_utf8_lossy(header)
                );
                echoed += data.len() as u64;
                if let Some(client) = client {
                    let want = format!("{client} (conn ");
                    server.eventually(Duration::from_secs(10), "the client's address in the log", |s| {
                        s.stderr().lines().any(|l| l.contains(&want) && l.contains(&format!("PROXY {i} {pieces}")))
                    });
                }
            }
        }
        stop(&mut server);
        let (_, out, _) = server.summary_counts();
        assert_eq!(out, echoed, "{model}");
        assert_eq!(
            proxy_line(&server),
            "proxy: 14 headers (v1 6, v2 8; 4 without an address); failed: not PROXY 0, bad 0, \
             too long 0, incomplete 0, timeout 0",
            "{model}"
        );
    }

    fn bad_late_and_cut_short_headers_close_their_connection_alone(model: &str) {
        let mut server = Server::start(
            model,
            &["--proxy-protocol", "--proxy-protocol-timeout", "1"],
        );
        let refused = |bytes: &[u8]| {
            let got = through(&server, bytes, 1, b"never echoed");
            assert!(got.is_empty(), "{model}: {:?} got {got:?}", String::from_utf8_lossy(bytes));
        };
        refused(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        refused(b"PROXY TCP4 1.1.1.1 2.2.2.2 1 99999\r\n");
        refused(&[b"PROXY UNKNOWN ".as_slice(), &[b'x'; 120], b"\r\n"].concat());
        let mut v2_bad = v2(Some("192.0.2.1:1".parse().unwrap()));
        v2_bad[12] = 0x31;
        refused(&v2_bad);
        // Cut short: part of a header, then the end.
        let mut s = server.connect();
        s.write_all(b"PROXY TCP4 1.1.").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        assert!(got.is_empty(), "{model}");
        // Late: part of a header, then nothing: closed at the timeout, counted.
        let mut late = server.connect();
        late.write_all(&V2_SIG[..5]).unwrap();
        late.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 16];
        assert!(
            matches!(late.read(&mut buf), Ok(0) | Err(_)),
            "{model}: the late client was not closed"
        );
        // A good client is served after all of them.
        let header = b"PROXY TCP4 192.0.2.8 198.51.100.1 1234 443\r\n";
        assert_eq!(through(&server, header, 1, b"fine"), b"fine", "{model}");
        stop(&mut server);
        assert_eq!(
            proxy_line(&server),
            "proxy: 1 header (v1 1, v2 0; 0 without an address); failed: not PROXY 1, bad 2, \
             too long 1, incomplete 1, timeout 1",
            "{model}"
        );
    }
}

for_each_model! {
    /// `stress --proxy-protocol` and `send --proxy-protocol` send the header first, each
    /// version, naming their connection's own address (here, on Linux, 127.0.0.2 for stress).
    fn stress_and_send_send_the_header_first(model: &str) {
        let mut server = Server::start(model, &["--proxy-protocol", "--log-messages"]);
        let port = server.addr.port().to_string();
        let mut args = vec![
            "127.0.0.1", &port, "--proxy-protocol", "v2", "--connections", "1", "--count",
            "20", "--message", "pushed", "--json", "-",
        ];
        if cfg!(target_os = "linux") {
            args.extend(["--source-ip", "127.0.0.2"]);
        }
        let j = stress_passes(&args, model, || server.stderr());
        assert_eq!(j["messages"], 20, "{j}");
        let out = bin()
            .args(["send", "127.0.0.1", &port, "--proxy-protocol", "v1", "sent"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "sent\n");
        if cfg!(target_os = "linux") {
            server.eventually(Duration::from_secs(10), "stress's address in the log", |s| {
                s.stderr()
                    .lines()
                    .any(|l| l.contains(": 127.0.0.2:") && l.contains("pushed"))
            });
        }
        stop(&mut server);
        assert_eq!(
            proxy_line(&server),
            "proxy: 2 headers (v1 1, v2 1; 0 without an address); failed: not PROXY 0, bad 0, \
             too long 0, incomplete 0, timeout 0",
            "{model}"
        );
    }
}

/// `--max-per-ip` counts the address a header gives, not the proxy's (every connection here
/// comes from 127.0.0.1). The single model serves one client at a time, so it is left out.
mod max_per_ip_counts_the_headers_address {
    use super::*;

    #[test]
    fn completion() {
        body("completion")
    }
    #[test]
    fn threaded() {
        body("threaded")
    }

    fn body(model: &str) {
        let mut server = Server::start(model, &["--proxy-protocol", "--max-per-ip", "1"]);
        let header = |ip: &str| format!("PROXY TCP4 {ip} 198.51.100.1 1000 443\r\n");
        // One open from 192.0.2.1 (its echo proves it is served).
        let mut first = server.connect();
        first.write_all(header("192.0.2.1").as_bytes()).unwrap();
        round_trip(&mut first, b"one");
        // A second from 192.0.2.1 is closed; one from 192.0.2.2 is served.
        let got = through(&server, header("192.0.2.1").as_bytes(), 1, b"two");
        assert!(
            got.is_empty(),
            "{model}: a second from 192.0.2.1 got {got:?}"
        );
        let got = through(&server, header("192.0.2.2").as_bytes(), 1, b"three");
        assert_eq!(got, b"three", "{model}");
        // Once the first has gone, 192.0.2.1 is served again.
        drop(first);
        server.eventually(Duration::from_secs(10), "192.0.2.1 served again", |s| {
            through(s, header("192.0.2.1").as_bytes(), 1, b"four") == b"four"
        });
        stop(&mut server);
        let out = server.stdout();
        assert!(out.contains("refused at --max-per-ip"), "{out}");
        assert!(
            !out.contains(" 0 refused at --max-per-ip"),
            "{model}: {out}"
        );
    }
}

/// HAProxy on loopback in front of `port`: `send-proxy` (version 1) from one port, and
/// `send-proxy-v2` from the other. Killed on drop.
#[cfg(target_os = "linux")]
struct Haproxy {
    child: std::process::Child,
    ports: [u16; 2],
    _dir: TempDir,
}

#[cfg(target_os = "linux")]
impl Haproxy {
    fn start(port: u16) -> Option<Haproxy> {
        require("haproxy")?;
        let dir = TempDir::new(&format!("proxy-haproxy-{port}"));
        let ports = [free_port(), free_port()];
        let cfg = format!(
            "global\n    maxconn 100\n\ndefaults\n    mode tcp\n    timeout connect 2s\n    \
             timeout client 10s\n    timeout server 10s\n\n\
             listen v1\n    bind 127.0.0.1:{p1}\n    server s 127.0.0.1:{port} send-proxy\n\n\
             listen v2\n    bind 127.0.0.1:{p2}\n    server s 127.0.0.1:{port} send-proxy-v2\n",
            p1 = ports[0],
            p2 = ports[1],
        );
        std::fs::write(dir.path("haproxy.cfg"), cfg).unwrap();
        let log = std::fs::File::create(dir.path("haproxy.log")).unwrap();
        let mut child = std::process::Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(dir.path("haproxy.cfg"))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn haproxy");
        let log = dir.path("haproxy.log");
        for port in ports {
            wait_accepting(port, Duration::from_secs(10), "haproxy", &mut child, || {
                std::fs::read_to_string(&log).unwrap_or_default()
            });
        }
        Some(Haproxy {
            child,
            ports,
            _dir: dir,
        })
    }
}

#[cfg(target_os = "linux")]
impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The summary's `proxy:` line once HAProxy is done: both versions read, none refused
/// (besides the clients, HAProxy passed on the probes that found it listening).
#[cfg(target_os = "linux")]
fn both_versions_and_no_failure(server: &mut Server) {
    stop(server);
    let line = proxy_line(server);
    assert!(
        !line.contains("(v1 0,") && !line.contains("v2 0;"),
        "{line}"
    );
    assert!(
        line.ends_with("failed: not PROXY 0, bad 0, too long 0, incomplete 0, timeout 0"),
        "{line}"
    );
}

/// HAProxy in front, with `send-proxy` (version 1) and `send-proxy-v2`: the server sees the
/// client's own address (127.0.0.2 here, the proxy being 127.0.0.1) and echoes byte-exact.
#[cfg(target_os = "linux")]
#[test]
fn haproxy_send_proxy_of_both_versions_gives_the_clients_address() {
    let mut server = Server::start("completion", &["--proxy-protocol", "--log-messages"]);
    let Some(haproxy) = Haproxy::start(server.addr.port()) else {
        return;
    };
    for (version, port) in haproxy.ports.into_iter().enumerate() {
        // The client's own address: 127.0.0.2.
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.bind(&"127.0.0.2:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        sock.connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
            .unwrap();
        let mut s: std::net::TcpStream = sock.into();
        let local = s.local_addr().unwrap();
        let data = Rng::new(version as u64).bytes(100_000);
        let mut reader = s.try_clone().unwrap();
        let reading = std::thread::spawn(move || {
            let mut got = Vec::new();
            let _ = reader.read_to_end(&mut got);
            got
        });
        s.write_all(&data).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let got = reading.join().unwrap();
        assert_same(&got, &data);
        let want = format!("{local} (conn ");
        server.eventually(
            Duration::from_secs(10),
            "the client's address in the log",
            |s| s.stderr().contains(&want),
        );
    }
    drop(haproxy);
    both_versions_and_no_failure(&mut server);
}

/// The header comes before TLS and WebSocket alike: `stress --websocket --tls` through HAProxy
/// (TCP pass-through, both versions) to a wss server on every model, every byte verified.
#[cfg(target_os = "linux")]
#[test]
fn wss_behind_haproxy_send_proxy_is_served_on_every_model() {
    for model in ["completion", "threaded", "single"] {
        let mut server = Server::start(
            model,
            &["--proxy-protocol", "--tls-self-signed", "--websocket"],
        );
        let Some(haproxy) = Haproxy::start(server.addr.port()) else {
            return;
        };
        for port in haproxy.ports {
            let port = port.to_string();
            stress_passes(
                &[
                    "127.0.0.1",
                    &port,
                    "--tls",
                    "--insecure",
                    "--websocket",
                    "--connections",
                    "1",
                    "--count",
                    "20",
                    "--size",
                    "3000",
                    "--json",
                    "-",
                ],
                model,
                || server.stderr(),
            );
        }
        drop(haproxy);
        both_versions_and_no_failure(&mut server);
    }
}
