//! Whether the server speaks TLS, told from what it answers, so that a client speaking the
//! wrong one of TLS and plaintext stops at its first connection with one line, instead of
//! failing every connection of a run on its own.
//!
//! * `--tls` against a plaintext server: the answer to the ClientHello is not a TLS record (an
//!   HTTP status line, a banner), or is the ClientHello itself (an echo server).
//! * Plaintext against a TLS server: the answer to the first bytes is a TLS alert record in
//!   the clear (content type 21), or the server closes the connection without a byte and then
//!   answers a ClientHello in TLS ([`answer_to_hello`] of [`hello_answer`]).
//!
//! The one-line messages are here too ([`speaks_tls`], [`not_tls`]), so that `stress` and
//! `send` word them alike.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ringport_tls_record::{ALERT, HANDSHAKE, HEADER};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use crate::protocol::text::escape;

/// The lowest and highest TLS record content types (change_cipher_spec to heartbeat).
const CONTENT_TYPES: std::ops::RangeInclusive<u8> = 20..=24;

/// The handshake message type of a ClientHello.
const CLIENT_HELLO: u8 = 1;

/// Whether `data`, the first bytes a server sent on a connection, begin with a TLS alert record
/// in the clear: content type 21, version 3.x, two bytes long. A TLS server answers a client
/// that does not speak TLS with one.
pub fn is_alert(data: &[u8]) -> bool {
    data.len() >= HEADER
        && data[0] == ALERT
        && data[1] == 3
        && data[2] <= 4
        && u16::from_be_bytes([data[3], data[4]]) == 2
}

/// What a server's first bytes after a ClientHello say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelloAnswer {
    /// A TLS record (a ServerHello, an alert): the server speaks TLS.
    Tls,
    /// The ClientHello's own bytes: a plaintext echo.
    Echo,
    /// Bytes that are no TLS record: the server speaks something else. The bytes, escaped.
    NotTls(String),
    /// Nothing, or too little to tell.
    Unknown,
}

impl HelloAnswer {
    /// Whether it shows that the server does not speak TLS.
    pub fn is_not_tls(&self) -> bool {
        matches!(self, HelloAnswer::Echo | HelloAnswer::NotTls(_))
    }
}

/// What `answer`, the first bytes a server sent after the ClientHello `hello`, says.
pub fn answer_to_hello(hello: &[u8], answer: &[u8]) -> HelloAnswer {
    let Some(&first) = answer.first() else {
        return HelloAnswer::Unknown;
    };
    let common = answer.len().min(hello.len());
    if answer[..common] == hello[..common] {
        // A real answer differs from the ClientHello by its handshake type at the latest.
        return if common > HEADER {
            HelloAnswer::Echo
        } else {
            HelloAnswer::Unknown
        };
    }
    let not_tls = || HelloAnswer::NotTls(escape(answer, 32));
    if !CONTENT_TYPES.contains(&first) {
        return not_tls();
    }
    match answer.get(1) {
        None => HelloAnswer::Unknown,
        Some(3) if first == HANDSHAKE && answer.get(HEADER) == Some(&CLIENT_HELLO) => not_tls(),
        Some(3) => HelloAnswer::Tls,
        Some(_) => not_tls(),
    }
}

/// Sends a ClientHello to `addr` (naming `name`, when it is a server name) on a connection of
/// its own, and reads what comes back: at most a record header and a byte, each step within
/// `timeout`. The server learns nothing but that a client gave up after its hello.
pub fn hello_answer(
    addr: SocketAddr,
    name: &str,
    timeout: Duration,
    proxy: Option<crate::engine::proxy::Version>,
) -> HelloAnswer {
    match try_hello(addr, name, timeout, proxy) {
        Ok(answer) => answer,
        Err(e) => {
            tracing::debug!("TLS check of {addr}: {e}");
            HelloAnswer::Unknown
        }
    }
}

fn try_hello(
    addr: SocketAddr,
    name: &str,
    timeout: Duration,
    proxy: Option<crate::engine::proxy::Version>,
) -> io::Result<HelloAnswer> {
    let config = ClientConfig::builder_with_provider(super::client_config::provider())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    let name = ServerName::try_from(name.to_string())
        .or_else(|_| ServerName::try_from("localhost"))
        .map_err(io::Error::other)?;
    let mut conn = ClientConnection::new(Arc::new(config), name).map_err(io::Error::other)?;
    let mut hello = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut hello)?;
    }
    let mut sock = crate::engine::proxy::connect(addr, timeout, proxy)?;
    sock.set_read_timeout(Some(timeout))?;
    sock.set_write_timeout(Some(timeout))?;
    sock.write_all(&hello)?;
    let mut answer = [0u8; HEADER + 1];
    let mut got = 0;
    while got < answer.len() {
        match sock.read(&mut answer[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if got == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(answer_to_hello(&hello, &answer[..got]))
}

/// A stream that keeps the first bytes read from it and written to it (64 of each), for
/// [`answer_to_hello`] after a handshake that failed.
#[derive(Debug)]
pub struct Recorder<S> {
    /// The stream.
    pub inner: S,
    /// The first bytes read.
    pub read: Vec<u8>,
    /// The first bytes written.
    pub written: Vec<u8>,
}

/// How many bytes a [`Recorder`] keeps each way.
const KEPT: usize = 64;

impl<S> Recorder<S> {
    /// A recorder of `inner`, nothing kept yet.
    pub fn new(inner: S) -> Recorder<S> {
        Recorder {
            inner,
            read: Vec::new(),
            written: Vec::new(),
        }
    }

    /// What the server's answer so far says about it.
    pub fn answer(&self) -> HelloAnswer {
        answer_to_hello(&self.written, &self.read)
    }
}

fn keep(into: &mut Vec<u8>, bytes: &[u8]) {
    let room = KEPT.saturating_sub(into.len());
    into.extend_from_slice(&bytes[..room.min(bytes.len())]);
}

impl<S: Read> Read for Recorder<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        keep(&mut self.read, &buf[..n]);
        Ok(n)
    }
}

impl<S: Write> Write for Recorder<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        keep(&mut self.written, &buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// How a plaintext client learnt that `target` speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsSign {
    /// It answered plaintext with a TLS alert.
    Alert,
    /// It closed the connection on plaintext, and answered a ClientHello in TLS.
    CloseThenHello,
}

/// The one line for a plaintext client whose server, `target`, speaks TLS.
pub fn speaks_tls(target: &str, sign: TlsSign) -> String {
    let how = match sign {
        TlsSign::Alert => "it answered plaintext with a TLS alert",
        TlsSign::CloseThenHello => {
            "it closed the connection on plaintext without a byte, then answered a TLS ClientHello"
        }
    };
    format!("{target} speaks TLS ({how}): add --tls")
}

/// The one line for a `--tls` client whose server, `target`, gave `answer` to its ClientHello
/// (`None` unless it shows the server does not speak TLS).
pub fn not_tls(target: &str, answer: &HelloAnswer) -> Option<String> {
    let how = match answer {
        HelloAnswer::Echo => "it echoed the TLS ClientHello back".to_string(),
        HelloAnswer::NotTls(bytes) => format!("it answered the TLS ClientHello with {bytes}"),
        HelloAnswer::Tls | HelloAnswer::Unknown => return None,
    };
    Some(format!(
        "{target} does not speak TLS ({how}): leave out --tls"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &[u8] = &[22, 3, 1, 0, 200, 1, 0, 0, 196, 3, 3, 9, 9, 9];

    #[test]
    fn an_alert_in_the_clear_is_told_from_other_bytes() {
        assert!(is_alert(&[21, 3, 3, 0, 2, 2, 50]));
        assert!(is_alert(&[21, 3, 1, 0, 2]));
        assert!(!is_alert(&[21, 3, 3, 0]), "too short to tell");
        assert!(!is_alert(&[21, 3, 3, 0, 40]), "an alert is two bytes");
        assert!(!is_alert(b"Hello from ringport"));
        assert!(!is_alert(&[22, 3, 3, 0, 2, 2, 50]), "a handshake record");
    }

    #[test]
    fn answers_to_a_client_hello() {
        assert_eq!(answer_to_hello(HELLO, &[]), HelloAnswer::Unknown);
        assert_eq!(answer_to_hello(HELLO, HELLO), HelloAnswer::Echo);
        assert_eq!(answer_to_hello(HELLO, &HELLO[..8]), HelloAnswer::Echo);
        assert_eq!(answer_to_hello(HELLO, &HELLO[..3]), HelloAnswer::Unknown);
        // A ServerHello, an alert.
        assert_eq!(
            answer_to_hello(HELLO, &[22, 3, 3, 0, 90, 2]),
            HelloAnswer::Tls
        );
        assert_eq!(
            answer_to_hello(HELLO, &[21, 3, 3, 0, 2, 2, 40]),
            HelloAnswer::Tls
        );
        assert_eq!(
            answer_to_hello(HELLO, b"HTTP/1.1 400 Bad Request\r\n"),
            HelloAnswer::NotTls(r#""HTTP/1.1 400 Bad Request\r\n""#.to_string())
        );
        assert_eq!(
            answer_to_hello(HELLO, &[22, 4, 1]),
            HelloAnswer::NotTls(r#""\x16\x04\x01""#.to_string())
        );
        // Another client's hello is no server's answer either.
        assert!(matches!(
            answer_to_hello(HELLO, &[22, 3, 1, 0, 100, 1, 0]),
            HelloAnswer::NotTls(_)
        ));
    }

    #[test]
    fn the_lines_name_the_flag_to_change() {
        let line = speaks_tls("127.0.0.1:3333", TlsSign::Alert);
        assert_eq!(
            line,
            "127.0.0.1:3333 speaks TLS (it answered plaintext with a TLS alert): add --tls"
        );
        let line = not_tls("127.0.0.1:3333", &HelloAnswer::Echo).unwrap();
        assert_eq!(
            line,
            "127.0.0.1:3333 does not speak TLS (it echoed the TLS ClientHello back): leave out \
             --tls"
        );
        assert_eq!(not_tls("h:1", &HelloAnswer::Unknown), None);
        assert_eq!(not_tls("h:1", &HelloAnswer::Tls), None);
    }

    #[test]
    fn a_recorder_keeps_the_first_bytes_each_way() {
        let mut r = Recorder::new(io::Cursor::new(vec![7u8; 100]));
        let mut buf = [0u8; 100];
        assert_eq!(r.read(&mut buf).unwrap(), 100);
        assert_eq!(r.read, vec![7u8; KEPT]);
        r.write_all(&[1u8; 10]).unwrap();
        assert_eq!(r.written, vec![1u8; 10]);
    }
}
