//! The records of either crypto backend against rustls' own record layer, in memory: one side
//! hands its connection over to [`Records`] after rustls' handshake, the other stays a plain
//! rustls connection. Every suite both ways and in both roles, records that are altered or
//! replayed refused, TLS 1.3 key updates both ways, a client taking the server's session
//! tickets (its next handshake resumes), and the provider's key exchange order.

use std::io::{Read as _, Write as _};
use std::sync::Arc;

use ringport_tls_record::{
    provider, record_end, Records, Side, APPLICATION_DATA, BACKEND, HANDSHAKE, PLAIN_MAX,
};
use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, UnbufferedStatus};
use rustls::{
    ClientConfig, ClientConnection, Connection, Error, HandshakeKind, NamedGroup, ProtocolVersion,
    RootCertStore, ServerConfig, ServerConnection, SupportedCipherSuite, SupportedProtocolVersion,
};

/// A rustls connection that hands itself over to [`Records`] once its handshake is complete.
trait Handover {
    type Data: Side;
    /// Runs the handshake over `incoming` (consumed), its records into `out`: true once the
    /// handshake is complete.
    fn step(&mut self, incoming: &mut Vec<u8>, out: &mut Vec<u8>) -> bool;
    fn resumed(&self) -> bool;
    fn into_records(self) -> Records<Self::Data>;
}

macro_rules! handover {
    ($conn:ty, $data:ty) => {
        impl Handover for $conn {
            type Data = $data;

            fn step(&mut self, incoming: &mut Vec<u8>, out: &mut Vec<u8>) -> bool {
                loop {
                    let UnbufferedStatus { discard, state } = self.process_tls_records(incoming);
                    let mut writable = false;
                    let mut blocked = false;
                    match state.expect("the handshake") {
                        ConnectionState::EncodeTlsData(mut s) => {
                            let at = out.len();
                            out.resize(at + 4096, 0);
                            let n = match s.encode(&mut out[at..]) {
                                Ok(n) => n,
                                Err(EncodeError::InsufficientSize(e)) => {
                                    out.resize(at + e.required_size, 0);
                                    s.encode(&mut out[at..]).expect("room enough")
                                }
                                Err(e) => panic!("encoding: {e}"),
                            };
                            out.truncate(at + n);
                        }
                        ConnectionState::TransmitTlsData(s) => s.done(),
                        ConnectionState::WriteTraffic(_) => writable = true,
                        ConnectionState::BlockedHandshake => blocked = true,
                        _ => panic!("an unexpected state during the handshake"),
                    }
                    incoming.drain(..discard);
                    // A TLS 1.3 server may write before the client's Finished is read.
                    if writable && !self.is_handshaking() {
                        return true;
                    }
                    if writable || blocked {
                        return false;
                    }
                }
            }

            fn resumed(&self) -> bool {
                self.handshake_kind() == Some(HandshakeKind::Resumed)
            }

            fn into_records(self) -> Records<$data> {
                self.dangerous_into_kernel_connection()
                    .and_then(|(secrets, kernel)| Records::new(secrets, kernel))
                    .expect("the connection hands over")
            }
        }
    };
}

handover!(UnbufferedClientConnection, ClientConnectionData);
handover!(UnbufferedServerConnection, ServerConnectionData);

/// Our side, after the handshake, and the rustls connection it talks to.
struct Pair<D> {
    ours: Records<D>,
    peer: Connection,
    /// Whether our side's handshake was a resumption.
    resumed: bool,
}

struct Configs {
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
}

/// Configurations of `provider` (narrowed to `suite` and its version if given), both allowing
/// secret extraction, the client trusting the server's self-signed ECDSA certificate.
fn configs(suite: Option<SupportedCipherSuite>) -> Configs {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let der = CertificateDer::from(made.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let mut provider: CryptoProvider = (*provider()).clone();
    let mut versions: Vec<&'static SupportedProtocolVersion> =
        vec![&rustls::version::TLS13, &rustls::version::TLS12];
    if let Some(suite) = suite {
        provider.cipher_suites = vec![suite];
        versions = vec![suite.version()];
    }
    let provider = Arc::new(provider);
    let mut server = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
    server.enable_secret_extraction = true;
    let mut roots = RootCertStore::empty();
    roots.add(der).unwrap();
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.enable_secret_extraction = true;
    Configs {
        client: Arc::new(client),
        server: Arc::new(server),
    }
}

fn name() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}

/// Feeds `wire` to `peer`; its plaintext.
fn feed(peer: &mut Connection, wire: &[u8]) -> Vec<u8> {
    let mut rd = wire;
    let mut plain = Vec::new();
    while !rd.is_empty() {
        peer.read_tls(&mut rd).unwrap();
        peer.process_new_packets().unwrap();
        let mut chunk = Vec::new();
        // WouldBlock once what was decrypted is read.
        let _ = peer.reader().read_to_end(&mut chunk);
        plain.extend_from_slice(&chunk);
    }
    plain
}

/// The handshake between `ours` and `peer`; what `peer` sent after it (for `ours`' records).
fn handshake<H: Handover>(mut ours: H, mut peer: Connection) -> (Pair<H::Data>, Vec<u8>) {
    let mut to_ours = Vec::new();
    if !peer.is_handshaking() || peer.wants_write() {
        peer.write_tls(&mut to_ours).unwrap();
    }
    for _ in 0..8 {
        let mut out = Vec::new();
        let done = ours.step(&mut to_ours, &mut out);
        feed(&mut peer, &out);
        let mut back = Vec::new();
        while peer.wants_write() {
            peer.write_tls(&mut back).unwrap();
        }
        if done {
            assert!(to_ours.is_empty(), "all of the handshake read");
            assert!(!peer.is_handshaking());
            let resumed = ours.resumed();
            let pair = Pair {
                ours: ours.into_records(),
                peer,
                resumed,
            };
            return (pair, back);
        }
        to_ours.extend_from_slice(&back);
    }
    panic!("no handshake in 8 turns");
}

/// Our client against rustls' server.
fn client_pair(c: &Configs) -> (Pair<ClientConnectionData>, Vec<u8>) {
    let ours = UnbufferedClientConnection::new(Arc::clone(&c.client), name()).unwrap();
    let peer = ServerConnection::new(Arc::clone(&c.server)).unwrap();
    handshake(ours, peer.into())
}

/// Our server against rustls' client.
fn server_pair(c: &Configs) -> (Pair<ServerConnectionData>, Vec<u8>) {
    let ours = UnbufferedServerConnection::new(Arc::clone(&c.server)).unwrap();
    let peer = ClientConnection::new(Arc::clone(&c.client), name()).unwrap();
    handshake(ours, peer.into())
}

impl<D: Side> Pair<D> {
    /// `data` sealed by us in records of at most [`PLAIN_MAX`] bytes: what the peer reads.
    fn send_to_peer(&mut self, data: &[u8]) -> Vec<u8> {
        let mut wire = Vec::new();
        for chunk in data.chunks(PLAIN_MAX) {
            self.ours.seal(APPLICATION_DATA, chunk, &mut wire).unwrap();
        }
        feed(&mut self.peer, &wire)
    }

    /// Opens the records of `wire` in place: their application data; post-handshake messages
    /// are taken, and our replies go to the peer.
    fn open_all(&mut self, mut wire: Vec<u8>) -> Result<Vec<u8>, Error> {
        let mut got = Vec::new();
        let mut replies = Vec::new();
        let mut at = 0;
        while let Some(end) = record_end(&wire, at) {
            let rec = &mut wire[at..end];
            let (typ, range) = self.ours.open(rec)?;
            match typ {
                APPLICATION_DATA => got.extend_from_slice(&rec[range]),
                HANDSHAKE => self.ours.handshake(&rec[range], &mut replies)?,
                other => panic!("a record of type {other}"),
            }
            at = end;
        }
        assert_eq!(at, wire.len(), "whole records");
        feed(&mut self.peer, &replies);
        Ok(got)
    }

    /// What the peer sends: `data`, then what we open of it.
    fn receive_from_peer(&mut self, data: &[u8]) -> Vec<u8> {
        self.peer.writer().write_all(data).unwrap();
        let wire = self.peer_wire();
        self.open_all(wire).unwrap()
    }

    fn peer_wire(&mut self) -> Vec<u8> {
        let mut wire = Vec::new();
        while self.peer.wants_write() {
            self.peer.write_tls(&mut wire).unwrap();
        }
        wire
    }

    /// Messages of several sizes both ways, byte-exact.
    fn echo_both_ways(&mut self, round: usize) {
        for size in [1usize, 1000, PLAIN_MAX, 3 * PLAIN_MAX + 5] {
            let msg: Vec<u8> = (0..size).map(|i| (i * 7 + round) as u8).collect();
            assert_eq!(self.send_to_peer(&msg), msg, "to the peer, {size} bytes");
            assert_eq!(
                self.receive_from_peer(&msg),
                msg,
                "from the peer, {size} bytes"
            );
        }
    }
}

/// The suites an ECDSA certificate can negotiate: all but TLS 1.2's RSA ones.
fn suites() -> Vec<SupportedCipherSuite> {
    provider()
        .cipher_suites
        .iter()
        .copied()
        .filter(|s| !format!("{:?}", s.suite()).contains("_RSA_"))
        .collect()
}

#[test]
fn the_provider_is_the_backends_with_x25519_first_and_rustls_suites() {
    assert_eq!(
        BACKEND,
        if cfg!(feature = "ring") {
            "ring"
        } else {
            "aws-lc-rs"
        }
    );
    let p = provider();
    let groups: Vec<NamedGroup> = p.kx_groups.iter().map(|g| g.name()).collect();
    assert_eq!(
        groups,
        [
            NamedGroup::X25519,
            NamedGroup::secp256r1,
            NamedGroup::secp384r1
        ]
    );
    let names: Vec<String> = p
        .cipher_suites
        .iter()
        .map(|s| format!("{:?}", s.suite()))
        .collect();
    assert_eq!(
        names,
        [
            "TLS13_AES_256_GCM_SHA384",
            "TLS13_AES_128_GCM_SHA256",
            "TLS13_CHACHA20_POLY1305_SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        ]
    );
}

#[test]
fn every_suite_both_ways_as_client_and_as_server_against_rustls() {
    let suites = suites();
    assert_eq!(
        suites.len(),
        6,
        "three TLS 1.3 suites, three TLS 1.2 ECDSA ones"
    );
    for suite in suites {
        let c = configs(Some(suite));
        let (mut ours, back) = server_pair(&c);
        assert!(back.is_empty());
        assert_eq!(ours.peer.negotiated_cipher_suite(), Some(suite));
        assert_eq!(
            ours.peer.negotiated_key_exchange_group().map(|g| g.name()),
            Some(NamedGroup::X25519)
        );
        ours.echo_both_ways(0);

        let (mut ours, back) = client_pair(&c);
        assert_eq!(ours.peer.negotiated_cipher_suite(), Some(suite));
        // TLS 1.3: the server's session tickets come first.
        assert_eq!(ours.open_all(back).unwrap(), b"");
        ours.echo_both_ways(1);
    }
}

#[test]
fn an_altered_or_replayed_record_is_refused() {
    for suite in suites() {
        let c = configs(Some(suite));
        let (mut ours, _) = server_pair(&c);
        ours.peer.writer().write_all(b"hello records").unwrap();
        let wire = ours.peer_wire();
        for at in [wire.len() - 1, wire.len() - 17, 5] {
            let mut altered = wire.clone();
            altered[at] ^= 0x20;
            assert!(
                matches!(ours.open_all(altered), Err(Error::DecryptError)),
                "{suite:?}: byte {at} altered"
            );
        }
        // Unaltered, it opens; a second time (the next sequence number), it does not.
        assert_eq!(ours.open_all(wire.clone()).unwrap(), b"hello records");
        assert!(
            matches!(ours.open_all(wire), Err(Error::DecryptError)),
            "{suite:?}: replayed"
        );
    }
}

#[test]
fn key_updates_both_ways_with_rustls_under_tls13() {
    let c = configs(None);
    // rustls' client asks our server to update: ours answers with its own update.
    let (mut ours, _) = server_pair(&c);
    assert_eq!(ours.peer.protocol_version(), Some(ProtocolVersion::TLSv1_3));
    for round in 1..=3 {
        ours.peer.refresh_traffic_keys().unwrap();
        ours.echo_both_ways(round);
    }
    // rustls' server asks our client.
    let (mut ours, back) = client_pair(&c);
    ours.open_all(back).unwrap();
    for round in 1..=3 {
        ours.peer.refresh_traffic_keys().unwrap();
        ours.echo_both_ways(round);
    }
}

#[test]
fn tls12_refuses_post_handshake_messages() {
    let suite = suites()
        .into_iter()
        .find(|s| s.version() == &rustls::version::TLS12)
        .unwrap();
    let (mut ours, _) = server_pair(&configs(Some(suite)));
    let mut out = Vec::new();
    assert!(ours.ours.handshake(&[24, 0, 0, 1, 1], &mut out).is_err());
    assert!(out.is_empty());
}

#[test]
fn a_client_takes_the_servers_session_tickets_and_its_next_handshake_resumes() {
    let c = configs(None);
    let (mut ours, back) = client_pair(&c);
    assert!(!ours.resumed);
    assert!(!back.is_empty(), "TLS 1.3 session tickets");
    assert_eq!(ours.open_all(back).unwrap(), b"");
    ours.echo_both_ways(0);
    let (mut again, back) = client_pair(&c);
    assert!(again.resumed, "resumed with a ticket the records took");
    again.open_all(back).unwrap();
    again.echo_both_ways(1);
}
