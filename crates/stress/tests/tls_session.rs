//! One connection's TLS session ([`TlsSession`]) against rustls' server in memory: the
//! handshake, plaintext both ways, the server's close_notify as the end of the stream, a
//! consumer that refuses bytes stopping the session, bytes that are not TLS refused as a
//! protocol failure, key updates both ways and session tickets after the handshake, and a
//! configuration that does not let the session protect records itself.

use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::time::Instant;

use ringport_report::tls::HandshakeFailure;
use ringport_stress::tls::client_config::provider;
use ringport_stress::tls::session::TlsSession;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig, ServerConnection};

/// A server's configuration and a client's that trusts it.
fn configs() -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let der = CertificateDer::from(cert.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(der).unwrap();
    let mut client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    // The session protects records itself after the handshake.
    client.enable_secret_extraction = true;
    (Arc::new(client), Arc::new(server))
}

/// A session of `client` and a server connection of `server`.
fn pair_of(
    client: &Arc<ClientConfig>,
    server: &Arc<ServerConfig>,
) -> (TlsSession, ServerConnection) {
    let name = ServerName::try_from("localhost").unwrap();
    let session = TlsSession::new(client, &name, Instant::now()).unwrap();
    (session, ServerConnection::new(Arc::clone(server)).unwrap())
}

fn pair() -> (TlsSession, ServerConnection) {
    let (client, server) = configs();
    pair_of(&client, &server)
}

/// Moves the client's ciphertext to the server; returns the server's plaintext.
fn to_server(s: &mut TlsSession, srv: &mut ServerConnection) -> Vec<u8> {
    let mut plain = Vec::new();
    while let Some(out) = s.take_out() {
        let mut rd = &out[..];
        while !rd.is_empty() {
            srv.read_tls(&mut rd).unwrap();
            srv.process_new_packets().unwrap();
            let _ = srv.reader().read_to_end(&mut plain);
        }
        s.give_back(out);
    }
    plain
}

/// The server's ciphertext waiting.
fn from_server(srv: &mut ServerConnection) -> Vec<u8> {
    let mut back = Vec::new();
    while srv.wants_write() {
        srv.write_tls(&mut back).unwrap();
    }
    back
}

fn handshake(s: &mut TlsSession, srv: &mut ServerConnection) {
    let mut turns = 0;
    while s.handshaking() {
        to_server(s, srv);
        let back = from_server(srv);
        let r = s.receive(&back, |_| true).unwrap();
        assert_eq!(r.handshake_done, !s.handshaking());
        turns += 1;
        assert!(turns < 5, "a handshake in a few turns");
    }
    to_server(s, srv); // the client's Finished
}

#[test]
fn handshake_echo_and_the_servers_close_notify() {
    let (mut s, mut srv) = pair();
    assert!(s.handshaking());
    handshake(&mut s, &mut srv);
    assert_eq!(s.version(), "TLSv1.3");
    assert!(!s.resumed());
    s.send(b"hello ").unwrap();
    s.send(b"tls").unwrap();
    assert!(s.has_out());
    assert_eq!(to_server(&mut s, &mut srv), b"hello tls");
    srv.writer().write_all(b"echo").unwrap();
    srv.send_close_notify();
    let back = from_server(&mut srv);
    let mut got = Vec::new();
    // Fed in odd-sized pieces, as receives may cut it.
    let mut closed = false;
    for piece in back.chunks(7) {
        let r = s
            .receive(piece, |p| {
                got.extend_from_slice(p);
                true
            })
            .unwrap();
        closed |= r.peer_closed;
    }
    assert_eq!(got, b"echo");
    assert!(closed, "close_notify is the end of the stream");
    s.close();
    to_server(&mut s, &mut srv);
    assert!(srv.process_new_packets().unwrap().peer_has_closed());
}

#[test]
fn a_consumer_that_refuses_stops_the_session() {
    let (mut s, mut srv) = pair();
    handshake(&mut s, &mut srv);
    srv.writer().write_all(b"one").unwrap();
    let mut back = from_server(&mut srv);
    srv.writer().write_all(b"two").unwrap();
    back.extend(from_server(&mut srv));
    let mut calls = 0;
    let r = s
        .receive(&back, |_| {
            calls += 1;
            false
        })
        .unwrap();
    assert!(r.refused);
    assert_eq!(calls, 1, "nothing more is handed over");
}

#[test]
fn bytes_that_are_not_tls_are_a_protocol_failure() {
    let (mut s, _srv) = pair();
    let err = s
        .receive(b"HTTP/1.1 400 Bad Request\r\n\r\n", |_| true)
        .unwrap_err();
    assert!(!err.after_handshake);
    assert_eq!(err.cause, HandshakeFailure::Protocol);
    assert!(err.detail.starts_with("protocol: "), "{}", err.detail);
}

#[test]
fn key_updates_both_ways_and_session_tickets_after_the_handshake() {
    let (client, server) = configs();
    let (mut s, mut srv) = pair_of(&client, &server);
    handshake(&mut s, &mut srv);
    for round in 0..3u8 {
        // The server updates its keys and asks the client to update its own: the client
        // answers (sealed under its old key), and both ways go on under the new keys.
        srv.refresh_traffic_keys().unwrap();
        let msg = [b'a' + round; 20_000];
        srv.writer().write_all(&msg).unwrap();
        let back = from_server(&mut srv);
        let mut got = Vec::new();
        for piece in back.chunks(1_000) {
            s.receive(piece, |p| {
                got.extend_from_slice(p);
                true
            })
            .unwrap();
        }
        assert!(got == msg, "round {round}: the server's bytes");
        s.send(&msg).unwrap();
        assert!(
            to_server(&mut s, &mut srv) == msg,
            "round {round}: the client's bytes"
        );
    }
    // The server's new session tickets (TLS 1.3, after the handshake) were taken: a new
    // session to the same server resumes.
    let (mut again, mut srv2) = pair_of(&client, &server);
    handshake(&mut again, &mut srv2);
    assert!(again.resumed());
}

#[test]
fn a_configuration_without_secret_extraction_is_refused() {
    let mut config = (*configs().0).clone();
    config.enable_secret_extraction = false;
    let name = ServerName::try_from("localhost").unwrap();
    let err = TlsSession::new(&Arc::new(config), &name, Instant::now()).unwrap_err();
    assert!(err.detail.contains("secret extraction"), "{}", err.detail);
}
