//! The TLS layer of the stress client allocates nothing per message of its own: after the
//! handshake, sealing a message ([`TlsSession::send`]), handing out and taking back its
//! ciphertext buffer, and opening the echo ([`TlsSession::receive`]) allocate no more than
//! rustls itself does for the same records through its own buffer-level API (rustls 0.23
//! allocates one buffer per record it seals and one per record it opens; the session's own
//! buffers are two, swapped, grown once).
//!
//! The server is rustls in the same thread, its work outside the counted closures.

use std::io::{BufRead as _, Read as _, Write as _};
use std::sync::Arc;
use std::time::Instant;

use ringport_stress::tls::session::TlsSession;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

fn configs() -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let der = CertificateDer::from(cert.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let provider = ringport_stress::tls::client_config::provider();
    let server = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(der).unwrap();
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(client), Arc::new(server))
}

/// The server's side of one turn: takes in `wire`, echoes every plaintext byte, and returns
/// its ciphertext in `back`.
fn serve(server: &mut ServerConnection, wire: &[u8], back: &mut Vec<u8>) {
    let mut rd = wire;
    let mut plain = Vec::new();
    while !rd.is_empty() {
        server.read_tls(&mut rd).unwrap();
        server.process_new_packets().unwrap();
        let _ = server.reader().read_to_end(&mut plain);
    }
    server.set_buffer_limit(None);
    server.writer().write_all(&plain).unwrap();
    while server.wants_write() {
        server.write_tls(back).unwrap();
    }
}

/// Allocations of the client's side of `messages` echoes of `size` bytes, through the
/// session, after its handshake and two warm-up rounds (its two buffers grow once each).
fn through_session(
    client: &Arc<ClientConfig>,
    server: &Arc<ServerConfig>,
    size: usize,
    messages: usize,
) -> u64 {
    let name = ServerName::try_from("localhost").unwrap();
    let mut s = TlsSession::new(client, &name, Instant::now()).unwrap();
    let mut srv = ServerConnection::new(Arc::clone(server)).unwrap();
    let mut back = Vec::with_capacity(1 << 20);
    while s.handshaking() {
        let out = s.take_out().unwrap_or_default();
        back.clear();
        serve(&mut srv, &out, &mut back);
        s.receive(&back, |_| true).unwrap();
        s.give_back(out);
    }
    let msg = vec![0x5a; size];
    let mut got = 0usize;
    let mut count = 0;
    for round in 0..messages + 2 {
        let mut out = None;
        let sealed = allocation_counter::measure(|| {
            s.send(&msg).unwrap();
            out = s.take_out();
        });
        let out = out.expect("ciphertext to send");
        back.clear();
        serve(&mut srv, &out, &mut back);
        let opened = allocation_counter::measure(|| {
            s.give_back(out);
            s.receive(&back, |p| {
                got += p.len();
                true
            })
            .unwrap();
        });
        if round > 1 {
            count += sealed.count_total + opened.count_total;
        }
    }
    assert_eq!(got, size * (messages + 2), "every byte echoed");
    count
}

/// The same through rustls' own buffer-level API, into buffers grown once.
fn through_rustls(
    client: &Arc<ClientConfig>,
    server: &Arc<ServerConfig>,
    size: usize,
    messages: usize,
) -> u64 {
    let name = ServerName::try_from("localhost").unwrap();
    let mut c = ClientConnection::new(Arc::clone(client), name).unwrap();
    c.set_buffer_limit(None);
    let mut srv = ServerConnection::new(Arc::clone(server)).unwrap();
    let mut out = Vec::with_capacity(1 << 20);
    let mut back = Vec::with_capacity(1 << 20);
    while c.is_handshaking() {
        out.clear();
        while c.wants_write() {
            c.write_tls(&mut out).unwrap();
        }
        back.clear();
        serve(&mut srv, &out, &mut back);
        let mut rd = &back[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
            c.process_new_packets().unwrap();
        }
    }
    let msg = vec![0x5a; size];
    let mut count = 0;
    for round in 0..messages + 2 {
        out.clear();
        let sealed = allocation_counter::measure(|| {
            c.writer().write_all(&msg).unwrap();
            while c.wants_write() {
                c.write_tls(&mut out).unwrap();
            }
        });
        back.clear();
        serve(&mut srv, &out, &mut back);
        let opened = allocation_counter::measure(|| {
            let mut rd = &back[..];
            while !rd.is_empty() {
                c.read_tls(&mut rd).unwrap();
                let state = c.process_new_packets().unwrap();
                let mut left = state.plaintext_bytes_to_read();
                while left > 0 {
                    let mut r = c.reader();
                    let n = r.fill_buf().unwrap().len();
                    r.consume(n);
                    left -= n;
                }
            }
        });
        if round > 1 {
            count += sealed.count_total + opened.count_total;
        }
    }
    count
}

#[test]
fn the_tls_session_allocates_nothing_per_message_beyond_rustls() {
    let (client, server) = configs();
    for (size, messages) in [(64, 500), (4096, 200), (64 << 10, 20)] {
        let ours = through_session(&client, &server, size, messages);
        let rustls_own = through_rustls(&client, &server, size, messages);
        assert!(
            ours <= rustls_own,
            "{size}-byte messages: {ours} allocations through the session, {rustls_own} by \
             rustls alone"
        );
        // rustls: a bounded number per record (a 64 KiB message is four records each way).
        let records = size.div_ceil(16 << 10) as u64;
        assert!(
            ours <= 4 * records * messages as u64,
            "{size}-byte messages: {ours} allocations for {messages} messages"
        );
    }
}
