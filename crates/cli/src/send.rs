//! `ringport send`: the article's one-to-one client. Connect, send one message, read the whole
//! echo, check it byte for byte, print it.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;

use crate::exit::UsageContext;

/// Arguments of `ringport send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// `[HOST] [PORT] MESSAGE`: HOST defaults to 127.0.0.1, PORT to 3333; HOST may also be
    /// written HOST:PORT or [V6]:PORT. MESSAGE `-` reads the bytes to send from standard input;
    /// with --file, only `[HOST] [PORT]`.
    #[arg(
        required_unless_present = "file",
        num_args = 0..=3,
        value_name = "[HOST] [PORT] MESSAGE",
        value_parser = clap::value_parser!(OsString)
    )]
    args: Vec<OsString>,
    /// Send the bytes of this file (any bytes: NUL, non-UTF-8) instead of MESSAGE.
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
    let sent: Vec<u8> = match &input {
        Input::Arg(bytes) => bytes.clone(),
        // An input that cannot be read, or is too large, is a value that cannot be accepted, as
        // `--request-file`'s.
        Input::Stdin => {
            crate::bytes::read_bounded(std::io::stdin().lock(), "standard input").usage()?
        }
        Input::File(path) => std::fs::File::open(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|f| crate::bytes::read_bounded(f, &path.display().to_string()))
            .usage()?,
    };
    if args.udp {
        use ringport_stress::engine::resolve::resolve_all;
        let addr = resolve_all(&host, port)
            .map_err(|e| crate::exit::usage(format!("cannot resolve `{host}`: {e}")))?
            .into_iter()
            .next()
            .ok_or_else(|| crate::exit::usage(format!("`{host}` has no address")))?;
        let echo = crate::send_udp::round_trip(addr, &sent, timeout)?;
        let mut out = std::io::stdout().lock();
        out.write_all(&echo)?;
        if matches!(input, Input::Arg(_)) {
            out.write_all(b"\n")?;
        }
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let (addr, stream) = crate::addr::connect(&host, port, timeout, args.mptcp)?;
    let echo = match (&ws, &tls) {
        (Some(ws), tls) => {
            let text = matches!(input, Input::Arg(_)) && std::str::from_utf8(&sent).is_ok();
            let echo = crate::send_ws::exchange(
                stream,
                addr,
                &host,
                port,
                ws,
                tls.as_ref(),
                &sent,
                text,
                timeout,
            )?;
            if echo.len() != sent.len() {
                bail!(
                    "wrong echo from {addr}: a message of {} bytes for one of {}",
                    echo.len(),
                    sent.len()
                );
            }
            echo
        }
        (None, Some(opts)) => crate::send_tls::exchange(stream, addr, &host, opts, &sent, timeout)?,
        (None, None) => exchange(stream, addr, &sent, timeout)?,
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

/// Sends `sent` over plaintext TCP on `stream`, connected to `addr`, and reads its whole echo.
fn exchange(
    mut stream: TcpStream,
    addr: SocketAddr,
    sent: &[u8],
    timeout: Option<Duration>,
) -> anyhow::Result<Vec<u8>> {
    stream.set_read_timeout(timeout)?;
    stream.set_write_timeout(timeout)?;
    // Send from a thread of its own while this one reads the echo: a message larger than the
    // socket buffers and the server's bound would otherwise stop both sides.
    let mut writer = stream.try_clone().context("cannot clone the socket")?;
    let to_send = sent.to_vec();
    let sending = std::thread::spawn(move || writer.write_all(&to_send));
    let mut echo = vec![0u8; sent.len()];
    let mut got = 0;
    while got < echo.len() {
        match stream.read(&mut echo[got..]) {
            Ok(0) => bail!(
                "{addr} closed the connection after echoing {got} of {} bytes",
                sent.len()
            ),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                bail!(
                    "no complete echo from {addr} within {:.1} s ({got} of {} bytes)",
                    timeout.unwrap_or_default().as_secs_f64(),
                    sent.len()
                )
            }
            Err(e) => return Err(e).with_context(|| format!("receiving from {addr} failed")),
        }
    }
    match sending.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e).with_context(|| format!("sending to {addr} failed")),
        Err(_) => bail!("the sending thread panicked"),
    }
    // The whole message is out: say so (an RFC 862 server then closes once it has echoed
    // everything), and look for bytes beyond the echo until then, for a moment at most.
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(AFTER_ECHO));
    let mut extra = [0u8; 64];
    loop {
        match stream.read(&mut extra) {
            Ok(0) => break,
            Ok(n) => return Err(beyond_echo(addr, sent, &echo, &extra[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // No end and nothing more within the moment: a server that keeps the connection.
            Err(_) => break,
        }
    }
    Ok(echo)
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
    if let Some(wrong) = wrong_byte(addr, sent, echo) {
        return wrong;
    }
    anyhow::anyhow!(
        "{addr} sent {} more than the echo of {} (the first: {:#04x})",
        ringport_os::human::plural(extra.len() as u64, "byte", "bytes"),
        ringport_os::human::plural(sent.len() as u64, "byte", "bytes"),
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
