//! [`Session`] against rustls' own client, in memory: the handshake on TLS 1.3 and 1.2, a
//! byte-exact echo of records of every size, records sealed while an echo is sent, the bound on
//! its buffers with a client that never reads, close_notify after the client's, the causes
//! of failed handshakes, and plaintext carried to the caller instead of echoed (wss).

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
        key_log: None,
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
/// read, and whether the server is finished (closes). Each turn takes a send and a receive
/// from the session before completing either, as the worker has both in flight.
fn exchange(s: &mut Session, c: &mut ClientConnection, plain: &mut Vec<u8>) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut wire = Vec::new();
    let mut fed = 0;
    for _ in 0..10_000 {
        while c.wants_write() {
            c.write_tls(&mut wire).unwrap();
        }
        s.pump(plain, None);
        assert!(
            plain.is_empty(),
            "the scratch buffer is empty between calls"
        );
        let send = s.take_send();
        let recv = if fed < wire.len() {
            s.take_recv()
        } else {
            None
        };
        if send.is_none() && recv.is_none() {
            return (got, s.is_finished());
        }
        if let Some(mut buf) = recv {
            assert!(s.take_recv().is_none(), "one receive at a time");
            let n = (buf.capacity() - buf.len()).min(wire.len() - fed);
            buf.extend_from_slice(&wire[fed..fed + n]);
            fed += n;
            s.received(buf, n);
        }
        if let Some((buf, at)) = send {
            assert!(s.take_send().is_none(), "one send at a time");
            let mut rd = &buf[at..];
            while !rd.is_empty() {
                c.read_tls(&mut rd).unwrap();
                c.process_new_packets().unwrap();
                let _ = std::io::Read::read_to_end(&mut c.reader(), &mut got);
            }
            let n = buf.len() - at;
            s.sent(buf, at, n);
        }
    }
    panic!("no end to the exchange");
}

/// The client's pending ciphertext.
fn wire_of(c: &mut ClientConnection) -> Vec<u8> {
    let mut wire = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut wire).unwrap();
    }
    wire
}

#[test]
fn a_session_echoes_byte_exact_over_tls13_and_tls12() {
    let tls = server();
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let mut s = Session::new(&tls.config, 2 * PLAIN_MAX).unwrap();
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
fn a_client_that_never_reads_holds_two_records_of_echo_and_one_in() {
    let tls = server();
    let mut s = Session::new(&tls.config, 2 * PLAIN_MAX).unwrap();
    let (fed, held, (out, at)) = never_reader(&tls, &mut s);
    assert!(
        fed <= 3 * RECORD_MAX,
        "took {fed} bytes from a client that never reads"
    );
    assert!(held <= 2 * PLAIN_MAX, "holds {held} bytes of echo");
    assert!(
        held > PLAIN_MAX,
        "a record is sealed while one is sent: {held}"
    );
    assert!(out.capacity() <= OUTGOING.max(4096), "{}", out.capacity());
    // However long it waits, it takes nothing more and has nothing else to send.
    let mut plain = Vec::new();
    for _ in 0..10 {
        assert_eq!(s.pump(&mut plain, None), 0);
        assert!(s.take_recv().is_none() && s.take_send().is_none());
        assert!(!s.is_finished());
    }
    // The send completes: the sealed record goes next, and the next record is taken.
    let n = out.len() - at;
    assert!(s.sent(out, at, n) > 0);
    assert!(s.take_send().is_some());
    assert!(s.pump(&mut plain, None) > 0);
}

#[test]
fn a_smaller_bound_holds_one_record_of_echo() {
    let tls = server();
    // A bound under one record is one record: a record's echo is sealed whole.
    let mut s = Session::new(&tls.config, 4096).unwrap();
    let (fed, held, _in_flight) = never_reader(&tls, &mut s);
    assert!(fed <= 2 * RECORD_MAX, "took {fed} bytes");
    assert_eq!(held, PLAIN_MAX, "holds {held} bytes of echo");
}

/// A client that sends 1 MiB and never reads, against `s`: the bytes `s` took, the plaintext
/// bytes it holds (decrypted, not echoed), and its send left in flight.
fn never_reader(tls: &Tls, s: &mut Session) -> (usize, usize, (Vec<u8>, usize)) {
    let mut c = client(tls, &rustls::version::TLS13);
    let mut plain = Vec::new();
    exchange(s, &mut c, &mut plain);
    // 1 MiB sent, nothing read: the server stops at its bound (a send that never completes,
    // what more its bound lets it seal, one record received) and asks for nothing more.
    c.set_buffer_limit(None);
    std::io::Write::write_all(&mut c.writer(), &vec![7u8; 1 << 20]).unwrap();
    let wire = wire_of(&mut c);
    let mut fed = 0;
    let mut held = 0;
    let mut in_flight = None;
    loop {
        held += s.pump(&mut plain, None);
        if in_flight.is_none() {
            in_flight = s.take_send();
        }
        let Some(mut buf) = s.take_recv() else {
            break;
        };
        let n = (buf.capacity() - buf.len()).min(wire.len() - fed);
        buf.extend_from_slice(&wire[fed..fed + n]);
        fed += n;
        s.received(buf, n);
    }
    (fed, held, in_flight.expect("a send is in flight"))
}

#[test]
fn records_arriving_while_an_echo_is_sent_are_sealed_and_sent_next() {
    let tls = server();
    let mut s = Session::new(&tls.config, 2 * PLAIN_MAX).unwrap();
    let mut c = client(&tls, &rustls::version::TLS13);
    let mut plain = Vec::new();
    exchange(&mut s, &mut c, &mut plain);
    let mut got = Vec::new();
    let mut read = |c: &mut ClientConnection, mut rd: &[u8]| {
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
            c.process_new_packets().unwrap();
            let _ = std::io::Read::read_to_end(&mut c.reader(), &mut got);
        }
    };
    // The first message: received, its echo's send taken and left in flight.
    std::io::Write::write_all(&mut c.writer(), b"first").unwrap();
    let mut buf = s.take_recv().expect("a receive");
    let wire = wire_of(&mut c);
    buf.extend_from_slice(&wire);
    s.received(buf, wire.len());
    assert_eq!(s.pump(&mut plain, None), 5);
    let (first, at) = s.take_send().expect("the first echo");
    // A receive goes on meanwhile, and what it brings is sealed while the first is out.
    std::io::Write::write_all(&mut c.writer(), b"second").unwrap();
    let mut buf = s.take_recv().expect("a receive beside the send");
    let wire = wire_of(&mut c);
    buf.extend_from_slice(&wire);
    s.received(buf, wire.len());
    assert_eq!(s.pump(&mut plain, None), 6);
    assert!(s.take_send().is_none(), "one send at a time");
    // The first send ends: its echo counts, and the second goes next.
    read(&mut c, &first[at..]);
    let n = first.len() - at;
    assert_eq!(s.sent(first, at, n), 5);
    let (second, at) = s.take_send().expect("the second echo");
    read(&mut c, &second[at..]);
    let n = second.len() - at;
    assert_eq!(s.sent(second, at, n), 6);
    assert_eq!(got, b"firstsecond");
    assert!(s.take_send().is_none() && !s.is_finished());
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
        let mut s = Session::new(&tls.config, 2 * PLAIN_MAX).unwrap();
        let mut buf = s.take_recv().unwrap();
        buf.extend_from_slice(bytes);
        s.received(buf, bytes.len());
        s.pump(&mut Vec::new(), None);
        assert_eq!(s.failure(), Some(cause), "{bytes:?}");
        // An alert record (content type 21) goes out before the close, and nothing is
        // received any more.
        assert!(s.take_recv().is_none() && !s.is_finished(), "{cause:?}");
        let (out, at) = s.take_send().expect("an alert");
        assert_eq!(out[at], 21, "{cause:?}: {out:?}");
        let n = out.len() - at;
        s.sent(out, at, n);
        s.pump(&mut Vec::new(), None);
        assert!(s.take_send().is_none() && s.is_finished(), "{cause:?}");
    }
    // A handshake cut short.
    let mut s = Session::new(&tls.config, 2 * PLAIN_MAX).unwrap();
    let mut c = client(&tls, &rustls::version::TLS13);
    let mut hello = Vec::new();
    c.write_tls(&mut hello).unwrap();
    let mut buf = s.take_recv().unwrap();
    buf.extend_from_slice(&hello[..hello.len() / 2]);
    s.received(buf, hello.len() / 2);
    s.pump(&mut Vec::new(), None);
    assert!(s.take_send().is_none() && !s.is_finished());
    let buf = s.take_recv().expect("it waits for the rest");
    s.give_back(buf, true);
    s.end_of_input(true);
    s.pump(&mut Vec::new(), None);
    assert!(s.take_recv().is_none() && s.is_finished());
    assert_eq!(s.failure(), Some(Failure::Truncated));
}

#[test]
fn every_suite_echoes_byte_exact_across_key_updates_after_the_handshake() {
    let tls = server();
    let pem = tls.self_signed_pem.as_ref().unwrap();
    let mut tested = 0;
    for suite in provider().cipher_suites.clone() {
        let name = format!("{:?}", suite.suite());
        // The certificate is ECDSA: TLS 1.2's RSA suites cannot be negotiated with it.
        if name.contains("_RSA_") {
            continue;
        }
        tested += 1;
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
            .unwrap();
        let one_suite = rustls::crypto::CryptoProvider {
            cipher_suites: vec![suite],
            ..(*provider()).clone()
        };
        let version = suite.version();
        let config = ClientConfig::builder_with_provider(Arc::new(one_suite))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut c =
            ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
                .unwrap();
        let mut s = Session::new(&tls.config, 2 * PLAIN_MAX).unwrap();
        let mut plain = Vec::new();
        exchange(&mut s, &mut c, &mut plain);
        assert_eq!(c.negotiated_cipher_suite(), Some(suite));
        // TLS 1.3: the client updates its keys and asks the server to update its own.
        let updates = if version.version == rustls::ProtocolVersion::TLSv1_3 {
            3
        } else {
            0
        };
        for round in 0..=updates {
            if round > 0 {
                c.refresh_traffic_keys().unwrap();
            }
            for size in [1usize, 5_000, 16_384, 40_000] {
                let msg: Vec<u8> = (0..size).map(|i| (i * 13 + round) as u8).collect();
                std::io::Write::write_all(&mut c.writer(), &msg).unwrap();
                let (got, closed) = exchange(&mut s, &mut c, &mut plain);
                assert!(!closed, "{name}");
                assert!(
                    got == msg,
                    "{name}, round {round}: the echo differs at {size}"
                );
            }
        }
        // close_notify both ways.
        c.send_close_notify();
        let (_, closed) = exchange(&mut s, &mut c, &mut plain);
        assert!(
            closed && s.sent_close_notify() && s.failure().is_none(),
            "{name}"
        );
        assert!(c.process_new_packets().unwrap().peer_has_closed(), "{name}");
    }
    // AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305 on TLS 1.3 and 1.2.
    assert_eq!(tested, 6);
}

#[test]
fn a_tampered_record_after_the_handshake_fails_the_connection() {
    let tls = server();
    let mut s = Session::new(&tls.config, 2 * PLAIN_MAX).unwrap();
    let mut c = client(&tls, &rustls::version::TLS13);
    let mut plain = Vec::new();
    exchange(&mut s, &mut c, &mut plain);
    std::io::Write::write_all(&mut c.writer(), b"hello").unwrap();
    let mut wire = wire_of(&mut c);
    let last = wire.len() - 1;
    wire[last] ^= 1;
    let mut buf = s.take_recv().unwrap();
    buf.extend_from_slice(&wire);
    s.received(buf, wire.len());
    assert_eq!(s.pump(&mut plain, None), 0);
    assert_eq!(s.failure(), Some(Failure::Other));
    assert!(s.take_recv().is_none());
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
            key_log: None,
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
        let mut s = Session::new(&tls.config, 2 * PLAIN_MAX).unwrap();
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
            let mut s = Session::new(&tls.config, 2 * PLAIN_MAX).unwrap();
            let mut alert = None;
            for _ in 0..100 {
                let wire = wire_of(&mut c);
                if !wire.is_empty() {
                    if let Some(mut buf) = s.take_recv() {
                        buf.extend_from_slice(&wire);
                        s.received(buf, wire.len());
                    }
                }
                s.pump(&mut plain, None);
                if let Some((buf, at)) = s.take_send() {
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
                if s.is_finished() {
                    break;
                }
            }
            assert!(
                s.is_finished(),
                "{version:?}: the refused connection closes"
            );
            assert!(!s.is_established(), "{version:?}");
            assert_eq!(s.failure(), Some(Failure::Other), "{version:?}");
            assert!(
                matches!(alert, Some(rustls::Error::AlertReceived(_))),
                "{version:?}: {alert:?}"
            );
        }
    }
}

#[test]
fn carried_plaintext_goes_to_the_caller_and_only_what_it_seals_is_sent() {
    let tls = server();
    let mut s = Session::new(&tls.config, 2 * PLAIN_MAX).unwrap();
    s.carry();
    let mut c = client(&tls, &rustls::version::TLS13);
    exchange(&mut s, &mut c, &mut Vec::new());
    assert!(s.is_established());
    let msg: Vec<u8> = (0..40_000usize).map(|i| (i * 13) as u8).collect();
    std::io::Write::write_all(&mut c.writer(), &msg).unwrap();
    let wire = wire_of(&mut c);
    // The caller's buffer has room for one record at a time; what it consumes makes room.
    let mut app: Vec<u8> = Vec::with_capacity(PLAIN_MAX + 100);
    let cap = app.capacity();
    let (mut fed, mut got) = (0, Vec::new());
    for _ in 0..1000 {
        s.pump(&mut app, None);
        assert!(app.capacity() == cap, "the caller's buffer never grows");
        assert!(s.take_send().is_none(), "nothing is echoed");
        got.append(&mut app);
        if got.len() == msg.len() {
            break;
        }
        if let Some(mut buf) = s.take_recv() {
            let n = (buf.capacity() - buf.len()).min(wire.len() - fed);
            buf.extend_from_slice(&wire[fed..fed + n]);
            fed += n;
            s.received(buf, n);
        }
    }
    assert!(got == msg, "the plaintext arrives byte-exact");
    // What the caller seals is sent; its close_notify only when the caller closes.
    let reply = vec![7u8; 20_000];
    let mut sealed = 0;
    let mut echo = Vec::new();
    while sealed < reply.len() {
        let n = s.seal(&reply[sealed..]);
        assert!(n > 0, "room once the last send is out");
        sealed += n;
        while let Some((buf, at)) = s.take_send() {
            let mut rd = &buf[at..];
            while !rd.is_empty() {
                c.read_tls(&mut rd).unwrap();
                c.process_new_packets().unwrap();
                let _ = std::io::Read::read_to_end(&mut c.reader(), &mut echo);
            }
            let n = buf.len() - at;
            s.sent(buf, at, n);
        }
    }
    assert!(echo == reply);
    c.send_close_notify();
    let wire = wire_of(&mut c);
    let mut buf = s.take_recv().unwrap();
    buf.extend_from_slice(&wire);
    s.received(buf, wire.len());
    s.pump(&mut app, None);
    assert!(s.input_over() && !s.sent_close_notify() && !s.is_finished());
    s.close();
    let (buf, at) = s.take_send().unwrap();
    let mut rd = &buf[at..];
    c.read_tls(&mut rd).unwrap();
    assert!(c.process_new_packets().unwrap().peer_has_closed());
    let n = buf.len() - at;
    s.sent(buf, at, n);
    assert!(s.is_finished() && s.failure().is_none());
}

#[test]
fn the_key_exchange_is_x25519_between_ringport_client_and_server() {
    // Both sides build on the shared provider (the stress client's is the same function): a
    // full handshake costs an X25519 exchange, not the P-384 one rustls' ring provider would
    // offer first.
    let tls = server();
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let mut s = Session::new(&tls.config, 2 * PLAIN_MAX).unwrap();
        let mut c = client(&tls, version);
        exchange(&mut s, &mut c, &mut Vec::new());
        assert!(s.is_established(), "{version:?}");
        let group = c.negotiated_key_exchange_group().map(|g| g.name());
        assert_eq!(group, Some(rustls::NamedGroup::X25519), "{version:?}");
    }
}
