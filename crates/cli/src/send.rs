//! `ringport send`: the article's one-to-one client. Connect, send one message, read the whole
//! echo, check it byte for byte, print it. Over plaintext TCP the input is streamed, in bounded
//! memory whatever its size ([`exchange`]); `--tls`, `--websocket` and `--udp` hold it whole.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use ringport_os::ErrorClass;
use ringport_stress::tls::detect::{self, HelloAnswer, TlsSign};
use ringport_stress::tls::options::TlsOptions;
use ringport_stress::ws::options::WsOptions;

use crate::exit::UsageContext;

/// Arguments of `ringport send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// `[HOST] [PORT] MESSAGE`: HOST defaults to 127.0.0.1, PORT to 3333; HOST may also be
    /// written HOST:PORT or [V6]:PORT. MESSAGE `-` sends standard input to its end, as --file
    /// sends a file; with --file, only `[HOST] [PORT]`.
    #[arg(
        required_unless_present = "file",
        num_args = 0..=3,
        value_name = "[HOST] [PORT] MESSAGE",
        value_parser = clap::value_parser!(OsString)
    )]
    args: Vec<OsString>,
    /// Send the bytes of this file (any bytes: NUL, non-UTF-8) instead of MESSAGE, its echo
    /// written to stdout as it is checked. Over plaintext TCP a file of any size is streamed
    /// (about 1 MiB held at a time); with --tls, --websocket or --udp it is held in memory
    /// whole, at most 256 MiB.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Seconds to wait for the connection and for the echo. 0: wait for ever.
    #[arg(long, default_value_t = 5.0, value_parser = crate::secs::parse_secs)]
    timeout: f64,
    /// Send one UDP datagram instead (to a UDP echo such as `serve --udp`): its echo must come
    /// back within --timeout, whole and byte for byte.
    #[arg(long, conflicts_with_all = ["websocket", "tls"])]
    udp: bool,
    /// Connect with Multipath TCP (Linux 5.6+, sysctl net.mptcp.enabled=1); a server that does
    /// not speak it answers with plain TCP.
    #[arg(long, conflicts_with = "udp")]
    mptcp: bool,
    /// Send HAProxy's PROXY header first, in version 1 (text) or 2 (binary), as a load balancer
    /// would: it names this connection's own address as the client's. For a server behind such
    /// a proxy, or one that reads the header itself (`serve --proxy-protocol`).
    #[arg(long, value_name = "v1|v2", value_parser = ringport_stress::engine::proxy::parse_version, conflicts_with = "udp")]
    proxy_protocol: Option<ringport_stress::engine::proxy::Version>,
    // The flattened groups come last: a group's heading carries over to the fields after it.
    /// `--tls` and its flags.
    #[command(flatten)]
    tls: crate::tls_client_args::TlsClientArgs,
    /// `--websocket` and `--header`: the message goes as one WebSocket message (text for a
    /// MESSAGE that is valid UTF-8, binary from standard input or --file).
    #[command(flatten)]
    ws: crate::ws_client_args::WsClientArgs,
}

/// Where the bytes to send come from.
#[derive(Debug, PartialEq)]
enum Input {
    /// The MESSAGE argument (its bytes as given, UTF-8 or not); the echo is printed with a
    /// newline after it.
    Arg(Vec<u8>),
    /// `-`: standard input, read to its end; the echo is written as received, nothing added.
    Stdin,
    /// `--file PATH`; the echo is written as received, nothing added.
    File(PathBuf),
}

/// The bytes of an argument: as given on Unix (any bytes but NUL), as UTF-8 elsewhere.
fn arg_bytes(a: &OsString) -> anyhow::Result<Vec<u8>> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(a.as_bytes().to_vec())
    }
    #[cfg(not(unix))]
    {
        a.to_str()
            .map(|s| s.as_bytes().to_vec())
            .with_context(|| format!("{a:?} is not valid Unicode: use --file or -"))
    }
}

fn arg_str(a: &OsString) -> anyhow::Result<String> {
    a.to_str()
        .map(str::to_string)
        .with_context(|| format!("{a:?} is not an address (not valid UTF-8)"))
}

/// Splits `[HOST] [PORT] MESSAGE` (HOST also as `HOST:PORT` or `[V6]:PORT`), or `[HOST]
/// [PORT]` with --file: with two arguments, the first is a port if it is all digits.
///
/// Two words with the first a bare one-label name (`send hello world`) are refused before any
/// name is resolved: a user who meant one message of two words gets told to quote it, and no
/// DNS query for `hello` leaves the machine. A host of one label other than `localhost` needs
/// its port (`send myhost 3333 hi`) or `HOST:PORT`.
fn split_args(args: &[OsString], file: Option<PathBuf>) -> anyhow::Result<(String, u16, Input)> {
    let (input, target) = match file {
        Some(path) => {
            if args.len() > 2 {
                bail!("with --file, only [HOST] [PORT] (the bytes come from the file)");
            }
            if let [a, extra] = args {
                if crate::addr::is_number_like(&a.to_string_lossy()) {
                    bail!(
                        "with --file, only [HOST] [PORT]: the bytes come from the file, so {extra:?} \
                         after the port is one argument too many"
                    );
                }
            }
            (Input::File(path), args)
        }
        None => {
            let Some((msg, target)) = args.split_last() else {
                bail!("expected [HOST] [PORT] MESSAGE");
            };
            let input = if msg == "-" {
                Input::Stdin
            } else {
                Input::Arg(arg_bytes(msg)?)
            };
            (input, target)
        }
    };
    let target: Vec<String> = target.iter().map(arg_str).collect::<anyhow::Result<_>>()?;
    if let ([host], Input::Arg(msg)) = (&target[..], &input) {
        let single_label = !host.contains(['.', ':', '['])
            && !host.eq_ignore_ascii_case("localhost")
            && !crate::addr::is_number_like(host);
        if single_label {
            bail!(
                "`{host} {}` is two words: to send them, quote them (ringport send \"{host} {}\"); \
                 to send to the host `{host}`, give its port (ringport send {host} 3333 ...)",
                String::from_utf8_lossy(msg),
                String::from_utf8_lossy(msg),
            );
        }
    }
    let (host, port) = crate::addr::parse_target(&target)?;
    Ok((host, port, input))
}

/// Sends the message and checks its echo.
pub fn run(args: SendArgs) -> anyhow::Result<ExitCode> {
    let (host, port, input) = split_args(&args.args, args.file.clone()).usage()?;
    let ws = args.ws.options().usage()?;
    let tls = args.tls.options()?;
    // 0: no timeout (parse_secs has checked the range).
    let timeout = (args.timeout > 0.0).then(|| Duration::from_secs_f64(args.timeout));
    // Plaintext TCP streams its input, of any size; the other transports hold it whole.
    let (held, flag) = match (args.udp, &ws, &tls) {
        (true, _, _) => (Held::Udp, "--udp"),
        (false, Some(ws), tls) => (Held::WebSocket(ws, tls.as_ref()), "--websocket"),
        (false, None, Some(tls)) => (Held::Tls(tls), "--tls"),
        (false, None, None) => {
            return streamed(&host, port, input, timeout, args.mptcp, args.proxy_protocol)
        }
    };
    // An input that cannot be read, or is too large, is a value that cannot be accepted, as
    // `--request-file`'s.
    let why = format!(
        "with {flag} the message is held in memory whole (plaintext send streams an input of \
         any size)"
    );
    let sent: Vec<u8> = match &input {
        Input::Arg(bytes) => bytes.clone(),
        Input::Stdin => {
            crate::bytes::read_bounded(std::io::stdin().lock(), "standard input", &why).usage()?
        }
        Input::File(path) => std::fs::File::open(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|f| crate::bytes::read_bounded(f, &path.display().to_string(), &why))
            .usage()?,
    };
    let (addr, echo) = match held {
        Held::Udp => {
            use ringport_stress::engine::resolve::resolve_all;
            let addr = resolve_all(&host, port)
                .map_err(|e| crate::exit::usage(format!("cannot resolve `{host}`: {e}")))?
                .into_iter()
                .next()
                .ok_or_else(|| crate::exit::usage(format!("`{host}` has no address")))?;
            (addr, crate::send_udp::round_trip(addr, &sent, timeout)?)
        }
        Held::WebSocket(ws, tls) => {
            let (addr, stream) =
                crate::addr::connect(&host, port, timeout, args.mptcp, args.proxy_protocol)?;
            let text = matches!(input, Input::Arg(_)) && std::str::from_utf8(&sent).is_ok();
            let echo =
                crate::send_ws::exchange(stream, addr, &host, port, ws, tls, &sent, text, timeout)?;
            if echo.len() != sent.len() {
                bail!(
                    "wrong echo from {addr}: a message of {} bytes for one of {}",
                    echo.len(),
                    sent.len()
                );
            }
            (addr, echo)
        }
        Held::Tls(opts) => {
            let (addr, stream) =
                crate::addr::connect(&host, port, timeout, args.mptcp, args.proxy_protocol)?;
            let echo = crate::send_tls::exchange(stream, addr, &host, opts, &sent, timeout)?;
            (addr, echo)
        }
    };
    if let Some(wrong) = wrong_byte(addr, &sent, &echo) {
        return Err(wrong);
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&echo)?;
    if matches!(input, Input::Arg(_)) {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// A transport that holds the input in memory whole.
enum Held<'a> {
    /// `--udp`: one datagram.
    Udp,
    /// `--websocket`: one message, over TLS with `--tls`.
    WebSocket(&'a WsOptions, Option<&'a TlsOptions>),
    /// `--tls`.
    Tls(&'a TlsOptions),
}

/// Plaintext TCP: `input` streamed to `host:port` and its echo checked as it comes back. A
/// MESSAGE's echo is printed once whole and right, with a newline; standard input's and a
/// file's are written to standard output as they are checked.
fn streamed(
    host: &str,
    port: u16,
    input: Input,
    timeout: Option<Duration>,
    mptcp: bool,
    proxy: Option<ringport_stress::engine::proxy::Version>,
) -> anyhow::Result<ExitCode> {
    // A file that cannot be opened is refused before connecting, as a value that cannot be
    // accepted.
    let (source, what): (Box<dyn Read + Send>, String) = match &input {
        Input::Arg(bytes) => (Box::new(std::io::Cursor::new(bytes.clone())), String::new()),
        Input::Stdin => (Box::new(std::io::stdin()), "standard input".to_string()),
        Input::File(path) => {
            let file = std::fs::File::open(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
                .usage()?;
            (Box::new(file), path.display().to_string())
        }
    };
    let (addr, stream) = crate::addr::connect(host, port, timeout, mptcp, proxy)?;
    let peer = Peer {
        addr,
        host,
        timeout,
        proxy,
    };
    if let Input::Arg(_) = input {
        let mut echo = Vec::new();
        exchange(stream, &peer, source, &what, &mut echo)?;
        let mut out = std::io::stdout().lock();
        out.write_all(&echo)?;
        out.write_all(b"\n")?;
        out.flush()?;
    } else {
        let mut out = std::io::stdout().lock();
        exchange(stream, &peer, source, &what, &mut out)?;
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The server a plaintext exchange is with.
struct Peer<'a> {
    addr: SocketAddr,
    /// The host as given (the name a ClientHello sends, see [`exchange`]).
    host: &'a str,
    /// How long the echo may make no progress (`None`: for ever).
    timeout: Option<Duration>,
    /// `--proxy-protocol`: the header every connection to it sends first.
    proxy: Option<ringport_stress::engine::proxy::Version>,
}

/// Bytes read from the input and sent at a time.
const CHUNK: usize = 64 << 10;

/// How many chunks the sending thread may be ahead of the echo checked: with the chunk each
/// thread has in hand, `send` holds at most `(AHEAD + 2) * CHUNK` bytes of the input (about
/// 1 MiB), whatever its size.
const AHEAD: usize = 16;

/// Why the sending thread stopped.
enum SendFailure {
    /// The input could not be read.
    Input(std::io::Error),
    /// The socket refused the bytes.
    Socket(std::io::Error),
}

/// Streams `input` (named `what` in errors) to `peer` over plaintext TCP on `stream`, and
/// checks its echo byte for byte as it comes back, writing what is checked to `out`.
///
/// A thread of its own reads the input a chunk at a time and sends it, first handing each chunk
/// to this one, which reads the echo and compares it with the chunks in order: sending and
/// receiving at once, so an input larger than the socket buffers and the server's bound cannot
/// stop both sides, and a channel of [`AHEAD`] chunks between the two, so memory stays bounded
/// for an input of any size. Once the input is all sent, the thread shuts the write side (an
/// RFC 862 server then closes once it has echoed everything), and this one looks for bytes
/// beyond the echo until the server's end, for [`AFTER_ECHO`] at most.
///
/// A server that speaks TLS is told apart from a wrong echo by what it answers: a TLS alert
/// where the echo should begin, or a close before a byte of echo and then a ClientHello
/// answered in TLS (`ringport_stress::tls::detect`).
fn exchange(
    mut stream: TcpStream,
    peer: &Peer<'_>,
    mut input: Box<dyn Read + Send>,
    what: &str,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let addr = peer.addr;
    stream.set_read_timeout(peer.timeout)?;
    stream.set_write_timeout(peer.timeout)?;
    let mut writer = stream.try_clone().context("cannot clone the socket")?;
    let (chunks, checked) = mpsc::sync_channel::<Arc<Vec<u8>>>(AHEAD);
    let sending = std::thread::Builder::new()
        .name("send-input".into())
        .spawn(move || -> Result<(), SendFailure> {
            loop {
                let mut chunk = vec![0u8; CHUNK];
                let n = loop {
                    match input.read(&mut chunk) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(SendFailure::Input(e)),
                    }
                };
                if n == 0 {
                    break;
                }
                chunk.truncate(n);
                let chunk = Arc::new(chunk);
                // Handed over before it is sent: its echo cannot come before it.
                if chunks.send(Arc::clone(&chunk)).is_err() {
                    return Ok(()); // the echo went wrong: nothing more to send
                }
                writer.write_all(&chunk).map_err(SendFailure::Socket)?;
            }
            let _ = writer.shutdown(Shutdown::Write);
            Ok(())
        })
        .context("cannot start the sending thread")?;
    if let Err(e) = check_echo(&mut stream, peer, &checked, out) {
        // Whatever the sending thread waits on (a full socket, the channel) ends now; it may
        // wait on the input itself, so it is left to end with the process.
        let _ = stream.shutdown(Shutdown::Both);
        drop(checked);
        return Err(e);
    }
    match sending.join() {
        Ok(Ok(())) => Ok(()),
        Ok(Err(SendFailure::Input(e))) => {
            Err(crate::exit::usage(format!("cannot read {what}: {e}")))
        }
        Ok(Err(SendFailure::Socket(e))) => {
            Err(e).with_context(|| format!("sending to {addr} failed"))
        }
        Err(_) => bail!("the sending thread panicked"),
    }
}

/// The receiving side of [`exchange`]: the echo of every chunk `checked` hands over, compared
/// and written to `out`; then, once the input is all sent, the look for bytes beyond it.
fn check_echo(
    stream: &mut TcpStream,
    peer: &Peer<'_>,
    checked: &mpsc::Receiver<Arc<Vec<u8>>>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let addr = peer.addr;
    let mut buf = vec![0u8; CHUNK];
    // Bytes echoed and checked; bytes handed over (sent, or about to be).
    let (mut echoed, mut sent) = (0u64, 0u64);
    while let Ok(chunk) = checked.recv() {
        sent += chunk.len() as u64;
        let mut at = 0;
        while at < chunk.len() {
            let n = match stream.read(&mut buf[..chunk.len() - at]) {
                Ok(0) => {
                    if echoed == 0 {
                        tls_instead_of_a_close(peer)?;
                    }
                    bail!("{addr} closed the connection after echoing {echoed} of {sent} bytes")
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    bail!(
                        "no complete echo from {addr} within {:.1} s ({echoed} of {sent} bytes)",
                        peer.timeout.unwrap_or_default().as_secs_f64(),
                    )
                }
                Err(e) => {
                    if echoed == 0 && ErrorClass::of(&e).peer_gone() {
                        tls_instead_of_a_close(peer)?;
                    }
                    return Err(e).with_context(|| format!("receiving from {addr} failed"));
                }
            };
            let got = &buf[..n];
            let want = &chunk[at..at + n];
            // Compared whole first (memcmp), then byte by byte to name the first wrong one.
            if let Some(i) = (got != want)
                .then(|| got.iter().zip(want).position(|(a, b)| a != b))
                .flatten()
            {
                if echoed == 0 && i == 0 {
                    tls_instead_of_an_echo(stream, peer, got)?;
                }
                bail!(
                    "wrong echo from {addr} at byte {}: sent {:#04x}, got {:#04x}",
                    echoed + i as u64,
                    want[i],
                    got[i]
                );
            }
            out.write_all(got)
                .context("cannot write the echo to standard output")?;
            at += n;
            echoed += n as u64;
        }
    }
    // The input is all sent and its write side shut (or the input failed: the sending thread
    // says so): bytes beyond the echo, until the server's end, for a moment at most.
    let _ = stream.set_read_timeout(Some(AFTER_ECHO));
    loop {
        match stream.read(&mut buf[..64]) {
            Ok(0) => return Ok(()),
            Ok(n) => return Err(extra_bytes(addr, sent, &buf[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // No end and nothing more within the moment: a server that keeps the connection.
            Err(_) => return Ok(()),
        }
    }
}

/// The echo's first byte is wrong, `got` the first bytes received: a TLS server's alert? (Read
/// on to a record header, for a moment at most.) If so, the one line of `stress`, as a usage
/// error.
fn tls_instead_of_an_echo(
    stream: &mut TcpStream,
    peer: &Peer<'_>,
    got: &[u8],
) -> anyhow::Result<()> {
    let mut head = got[..got.len().min(5)].to_vec();
    let _ = stream.set_read_timeout(Some(AFTER_ECHO));
    let mut more = [0u8; 5];
    while head.len() < 5 {
        match stream.read(&mut more[..5 - head.len()]) {
            Ok(n) if n > 0 => head.extend_from_slice(&more[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            _ => break,
        }
    }
    if detect::is_alert(&head) {
        return Err(crate::exit::usage(detect::speaks_tls(
            &peer.addr.to_string(),
            TlsSign::Alert,
        )));
    }
    Ok(())
}

/// The server closed (or reset) the connection before a byte of echo: a TLS server? A
/// ClientHello on a connection of its own asks; if the server answers it in TLS, the one line
/// of `stress`, as a usage error.
fn tls_instead_of_a_close(peer: &Peer<'_>) -> anyhow::Result<()> {
    let timeout = peer.timeout.unwrap_or(Duration::from_secs(5));
    if detect::hello_answer(peer.addr, peer.host, timeout, peer.proxy) == HelloAnswer::Tls {
        return Err(crate::exit::usage(detect::speaks_tls(
            &peer.addr.to_string(),
            TlsSign::CloseThenHello,
        )));
    }
    Ok(())
}

/// How long `send` looks for bytes beyond the echo once the echo is whole, whatever the
/// transport: after shutting its write side (plaintext), sending close_notify (TLS) or a close
/// frame (WebSocket), it reads until the server's end for this long at most. A server that keeps
/// the connection and sends nothing more passes.
pub(crate) const AFTER_ECHO: Duration = Duration::from_millis(200);

/// The error of a server that sent `extra` (the bytes seen so far, at least one) after `echo`,
/// its echo of `sent`, whatever the transport (with WebSocket, the payload of messages after the
/// echoed one): a wrong byte of the echo if it has one, else the bytes beyond it.
pub(crate) fn beyond_echo(
    addr: SocketAddr,
    sent: &[u8],
    echo: &[u8],
    extra: &[u8],
) -> anyhow::Error {
    wrong_byte(addr, sent, echo).unwrap_or_else(|| extra_bytes(addr, sent.len() as u64, extra))
}

/// The error of a server that sent `extra` (at least one byte) after the whole, right echo of
/// `sent` bytes.
fn extra_bytes(addr: SocketAddr, sent: u64, extra: &[u8]) -> anyhow::Error {
    anyhow::anyhow!(
        "{addr} sent {} more than the echo of {} (the first: {:#04x})",
        ringport_os::human::plural(extra.len() as u64, "byte", "bytes"),
        ringport_os::human::plural(sent, "byte", "bytes"),
        extra[0]
    )
}

/// The first byte where `echo` differs from `sent`, as the error `send` ends with.
fn wrong_byte(addr: SocketAddr, sent: &[u8], echo: &[u8]) -> Option<anyhow::Error> {
    let at = sent.iter().zip(echo).position(|(a, b)| a != b)?;
    Some(anyhow::anyhow!(
        "wrong echo from {addr} at byte {at}: sent {:#04x}, got {:#04x}",
        sent[at],
        echo[at]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn split(args: &[&str]) -> anyhow::Result<(String, u16, &'static str)> {
        let (h, p, input) = split_args(&v(args), None)?;
        match input {
            Input::Arg(m) => Ok((h, p, String::from_utf8(m).unwrap().leak())),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn host_and_port_are_optional() {
        assert_eq!(split(&["hi"]).unwrap(), ("127.0.0.1".into(), 3333, "hi"));
        assert_eq!(
            split(&["4000", "hi"]).unwrap(),
            ("127.0.0.1".into(), 4000, "hi")
        );
        assert_eq!(
            split(&["localhost", "hi"]).unwrap(),
            ("localhost".into(), 3333, "hi")
        );
        assert_eq!(split(&["h", "1", "hi"]).unwrap(), ("h".into(), 1, "hi"));
        assert!(split(&["h", "notaport", "hi"]).is_err());
        assert!(split(&["70000", "hi"]).is_err(), "a port, not a host");
        assert!(split(&["1.5", "hi"]).is_err(), "not a host");
        assert_eq!(
            split(&["127.0.0.1:4000", "hi"]).unwrap(),
            ("127.0.0.1".into(), 4000, "hi")
        );
        assert_eq!(
            split(&["[::1]", "4000", "hi"]).unwrap(),
            ("::1".into(), 4000, "hi")
        );
    }

    /// Issue 14: `send hello world` tried to resolve `hello` (a DNS query off the machine for a
    /// word of the message).
    #[test]
    fn two_words_are_not_a_host_and_a_message() {
        let e = split(&["hello", "world"]).unwrap_err().to_string();
        assert!(e.contains("two words"), "{e}");
        assert!(e.contains("ringport send \"hello world\""), "{e}");
        assert_eq!(
            split(&["myhost", "3333", "hi"]).unwrap(),
            ("myhost".into(), 3333, "hi")
        );
        assert_eq!(
            split(&["myhost:3333", "hi"]).unwrap(),
            ("myhost".into(), 3333, "hi")
        );
        assert_eq!(
            split(&["db.example", "hi"]).unwrap(),
            ("db.example".into(), 3333, "hi")
        );
    }

    #[test]
    fn stdin_and_file_inputs() {
        let (_, port, input) = split_args(&v(&["4000", "-"]), None).unwrap();
        assert_eq!((port, input), (4000, Input::Stdin));
        let (_, port, input) = split_args(&v(&["4000"]), Some("f".into())).unwrap();
        assert_eq!((port, input), (4000, Input::File("f".into())));
        let (_, port, input) = split_args(&v(&[]), Some("f".into())).unwrap();
        assert_eq!((port, input), (3333, Input::File("f".into())));
        assert!(split_args(&v(&["h", "1", "x"]), Some("f".into())).is_err());
    }

    /// `send 3334 hi --file f` said "`3334` is not a host"; `send -1 hi` spoke of a host `-1`.
    #[test]
    fn messages_point_at_the_argument_that_is_wrong() {
        let e = split_args(&v(&["3334", "hi"]), Some("f".into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("with --file, only [HOST] [PORT]"), "{e}");
        assert!(e.contains("\"hi\" after the port"), "{e}");
        assert!(!e.contains("not a host"), "{e}");
        let e = split(&["-1", "hi"]).unwrap_err().to_string();
        assert!(e.contains("`-1` is not a port number"), "{e}");
        assert!(!e.contains("host"), "{e}");
    }
}
