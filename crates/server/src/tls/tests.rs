//! [`Session`] against rustls' own client, in memory: the handshake on TLS 1.3 and 1.2, a
//! byte-exact echo of records of every size, the bound on its buffers with a client that
//! never reads, close_notify after the client's, and the causes of failed handshakes.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, SupportedProtocolVersion};

use super::*;

fn server() -> Tls {
    let options = TlsOptions {
        source: CertSource::SelfSigned,
        alpn: Vec::new(),
        handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        client_ca: None,
    };
    Tls::new(&options, "127.0.0.1".parse().unwrap()).unwrap()
}

fn client(tls: &Tls, version: &'static SupportedProtocolVersion) -> ClientConnection {
    let pem = tls.self_signed_pem.as_ref().unwrap();
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
        .unwrap();
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap()).unwrap()
}

/// Moves bytes both ways until neither side has anything to do; returns what the client
/// read, and whether the server asked to close.
fn exchange(s: &mut Session, c: &mut ClientConnection, plain: &mut Vec<u8>) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut wire = Vec::new();
    let mut fed = 0;
    for _ in 0..10_000 {
        while c.wants_write() {
            c.write_tls(&mut wire).unwrap();
        }
        let (_, next) = s.pump(plain, None);
        assert!(
            plain.is_empty(),
            "the scratch buffer is empty between calls"
        );
        match next {
            Next::Send => {
                let (buf, at) = s.take_send();
                let mut rd = &buf[at..];
                while !rd.is_empty() {
                    c.read_tls(&mut rd).unwrap();
                    c.process_new_packets().unwrap();
                    let _ = std::io::Read::read_to_end(&mut c.reader(), &mut got);
                }
                let n = buf.len() - at;
                s.sent(buf, at, n);
            }
            Next::Recv if fed < wire.len() => {
                let mut buf = s.take_recv().expect("room to receive");
                let n = (buf.capacity() - buf.len()).min(wire.len() - fed);
                buf.extend_from_slice(&wire[fed..fed + n]);
                fed += n;
                s.received(buf, n);
            }
            Next::Recv => return (got, false),
            Next::Close => return (got, true),
        }
    }
    panic!("no end to the exchange");
}

#[test]
fn a_session_echoes_byte_exact_over_tls13_and_tls12() {
    let tls = server();
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let mut s = Session::new(&tls.config).unwrap();
        let mut c = client(&tls, version);
        let mut plain = Vec::new();
        exchange(&mut s, &mut c, &mut plain);
        assert!(s.is_established() && !c.is_handshaking(), "{version:?}");
        assert_eq!(s.version(), Some(version.version));
        // Messages of every size: one byte, a few records, a burst of small records.
        for size in [1usize, 100, 4096, 16_384, 40_000] {
            let msg: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
            std::io::Write::write_all(&mut c.writer(), &msg).unwrap();
            let (got, closed) = exchange(&mut s, &mut c, &mut plain);
            assert!(!closed);
            assert_eq!(got.len(), size, "{version:?}");
            assert!(got == msg, "{version:?}: the echo differs at {size} bytes");
        }
        // The client's close_notify: the server answers with its own, then closes.
        c.send_close_notify();
        let (_, closed) = exchange(&mut s, &mut c, &mut plain);
        assert!(closed && s.sent_close_notify() && s.failure().is_none());
        assert!(c.process_new_packets().unwrap().peer_has_closed());
    }
}

#[test]
fn a_client_that_never_reads_holds_one_record_in_and_one_out() {
    let tls = server();
    let mut s = Session::new(&tls.config).unwrap();
    let mut c = client(&tls, &rustls::version::TLS13);
    let mut plain = Vec::new();
    exchange(&mut s, &mut c, &mut plain);
    // 1 MiB sent, nothing read: the server stops at its bound (it asks to send and waits).
    c.set_buffer_limit(None);
    std::io::Write::write_all(&mut c.writer(), &vec![7u8; 1 << 20]).unwrap();
    let mut wire = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut wire).unwrap();
    }
    let mut fed = 0;
    loop {
        let (_, next) = s.pump(&mut plain, None);
        if next != Next::Recv {
            assert_eq!(next, Next::Send);
            break;
        }
        let mut buf = s.take_recv().unwrap();
        let n = (buf.capacity() - buf.len()).min(wire.len() - fed);
        buf.extend_from_slice(&wire[fed..fed + n]);
        fed += n;
        s.received(buf, n);
    }
    assert!(
        fed <= 2 * RECORD_MAX,
        "took {fed} bytes from a client that never reads"
    );
    let (out, _) = s.take_send();
    assert!(out.capacity() <= OUTGOING.max(4096), "{}", out.capacity());
    s.give_back(out, false);
    // However long it waits, it takes nothing more.
    for _ in 0..10 {
        assert_eq!(s.pump(&mut plain, None).1, Next::Send);
    }
}

#[test]
fn not_tls_is_refused_with_its_cause_and_an_alert_where_tls_has_one() {
    let tls = server();
    let cases: [(&[u8], Failure); 3] = [
        (
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
            Failure::Plaintext,
        ),
        (
            &[0x99, 0x01, 0xfe, 0x00, 0x13, 0x37, 0x00, 0x00],
            Failure::Garbage,
        ),
        // A handshake record of protocol version 4.0.
        (
            &[0x16, 0x04, 0x00, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00],
            Failure::Version,
        ),
    ];
    for (bytes, cause) in cases {
        let mut s = Session::new(&tls.config).unwrap();
        let mut buf = s.take_recv().unwrap();
        buf.extend_from_slice(bytes);
        s.received(buf, bytes.len());
        let (_, next) = s.pump(&mut Vec::new(), None);
        assert_eq!(s.failure(), Some(cause), "{bytes:?}");
        // An alert record (content type 21) goes out before the close.
        assert_eq!(next, Next::Send, "{cause:?}");
        let (out, at) = s.take_send();
        assert_eq!(out[at], 21, "{cause:?}: {out:?}");
        let n = out.len() - at;
        s.sent(out, at, n);
        assert_eq!(s.pump(&mut Vec::new(), None).1, Next::Close);
    }
    // A handshake cut short.
    let mut s = Session::new(&tls.config).unwrap();
    let mut c = client(&tls, &rustls::version::TLS13);
    let mut hello = Vec::new();
    c.write_tls(&mut hello).unwrap();
    let mut buf = s.take_recv().unwrap();
    buf.extend_from_slice(&hello[..hello.len() / 2]);
    s.received(buf, hello.len() / 2);
    assert_eq!(s.pump(&mut Vec::new(), None).1, Next::Recv);
    s.end_of_input(true);
    assert_eq!(s.pump(&mut Vec::new(), None).1, Next::Close);
    assert_eq!(s.failure(), Some(Failure::Truncated));
}

/// A CA in a PEM file and a client certificate it issued (its chain and key, for rustls).
fn client_identity(
    name: &str,
) -> (
    std::path::PathBuf,
    Vec<CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca = p.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_params(&p, &ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["client".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let path = std::env::temp_dir().join(format!(
        "ringport-session-client-ca-{name}-{}.pem",
        std::process::id()
    ));
    std::fs::write(&path, ca.pem()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    (path, vec![cert.der().clone()], key)
}

/// Mutual TLS (`client_ca`): a client with a certificate of the CA is served; one without a
/// certificate, or with one of another CA, gets an alert and the connection closes, counted as
/// `other` (its Finished, sent in the same flight as its refused Certificate, is still pending
/// in rustls when the alert is taken).
#[test]
fn mutual_tls_serves_certified_clients_and_refuses_the_others() {
    let (ca_file, chain, key) = client_identity("good");
    let (other_ca, other_chain, other_key) = client_identity("other");
    let tls = Tls::new(
        &TlsOptions {
            source: CertSource::SelfSigned,
            alpn: Vec::new(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            client_ca: Some(ca_file.clone()),
        },
        "127.0.0.1".parse().unwrap(),
    )
    .unwrap();
    let _ = std::fs::remove_file(&ca_file);
    let _ = std::fs::remove_file(&other_ca);
    let pem = tls.self_signed_pem.as_ref().unwrap();
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
        .unwrap();
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots.clone());
        let name = ServerName::try_from("localhost").unwrap();
        // With a certificate of the CA: served.
        let config = builder
            .clone()
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .unwrap();
        let mut c = ClientConnection::new(Arc::new(config), name.clone()).unwrap();
        let mut s = Session::new(&tls.config).unwrap();
        let mut plain = Vec::new();
        exchange(&mut s, &mut c, &mut plain);
        assert!(s.is_established(), "{version:?}");
        std::io::Write::write_all(&mut c.writer(), b"mutual").unwrap();
        let (got, _) = exchange(&mut s, &mut c, &mut plain);
        assert_eq!(got, b"mutual", "{version:?}");
        // Without one, and with one of another CA: an alert, then the close.
        let refused = [
            builder.clone().with_no_client_auth(),
            builder
                .clone()
                .with_client_auth_cert(other_chain.clone(), other_key.clone_key())
                .unwrap(),
        ];
        for config in refused {
            let mut c = ClientConnection::new(Arc::new(config), name.clone()).unwrap();
            let mut s = Session::new(&tls.config).unwrap();
            let mut alert = None;
            for _ in 0..100 {
                let mut wire = Vec::new();
                while c.wants_write() {
                    c.write_tls(&mut wire).unwrap();
                }
                if !wire.is_empty() {
                    let mut buf = s.take_recv().expect("room to receive");
                    buf.extend_from_slice(&wire);
                    s.received(buf, wire.len());
                }
                match s.pump(&mut plain, None).1 {
                    Next::Send => {
                        let (buf, at) = s.take_send();
                        let mut rd = &buf[at..];
                        while !rd.is_empty() && alert.is_none() {
                            c.read_tls(&mut rd).unwrap();
                            if let Err(e) = c.process_new_packets() {
                                alert = Some(e);
                            }
                        }
                        let n = buf.len() - at;
                        s.sent(buf, at, n);
                    }
                    Next::Close => break,
                    Next::Recv => assert!(c.wants_write() || alert.is_none()),
                }
            }
            assert!(!s.is_established(), "{version:?}");
            assert_eq!(s.failure(), Some(Failure::Other), "{version:?}");
            assert!(
                matches!(alert, Some(rustls::Error::AlertReceived(_))),
                "{version:?}: {alert:?}"
            );
        }
    }
}
