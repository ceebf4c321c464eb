//! The TLS layer of the stress client allocates nothing per message: after the handshake,
//! sealing a message ([`TlsSession::send`]), handing out and taking back its ciphertext
//! buffer, and opening the echo ([`TlsSession::receive`]) allocate nothing, over TLS 1.3 and
//! 1.2 (the session protects records itself after the handshake; its buffers are two, swapped,
//! grown once, and its receive buffer).
//!
//! The server is rustls in the same thread, its work outside the counted closures.

use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::time::Instant;

use ringport_stress::tls::session::TlsSession;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig, ServerConnection};

fn configs(
    version: &'static rustls::SupportedProtocolVersion,
) -> (Arc<ClientConfig>, Arc<ServerConfig>) {
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
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    // The session protects records itself after the handshake.
    client.enable_secret_extraction = true;
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

#[test]
fn the_tls_session_allocates_nothing_per_message() {
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let (client, server) = configs(version);
        // Messages of one record, and of four records each way.
        for (size, messages) in [(64, 500), (4096, 200), (64 << 10, 20)] {
            let ours = through_session(&client, &server, size, messages);
            assert_eq!(
                ours, 0,
                "{:?}, {size}-byte messages: {ours} allocations for {messages} messages",
                version.version
            );
        }
    }
}
