//! `ringport send`: the article's one-to-one client. Connect, send one message, read the whole
//! echo, check it byte for byte, print it.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;

/// Arguments of `ringport send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// `[HOST] [PORT] MESSAGE`: HOST defaults to 127.0.0.1, PORT to 3333; HOST may also be
    /// written HOST:PORT or [V6]:PORT.
    #[arg(required = true, num_args = 1..=3, value_name = "[HOST] [PORT] MESSAGE")]
    args: Vec<String>,
    /// Seconds to wait for the connection and for the echo.
    #[arg(long, default_value_t = 5.0, value_parser = crate::secs::parse_secs)]
    timeout: f64,
}

/// Splits `[HOST] [PORT] MESSAGE` (HOST also as `HOST:PORT` or `[V6]:PORT`): with two
/// arguments, the first is a port if it is all digits.
fn split_args(args: &[String]) -> anyhow::Result<(String, u16, &str)> {
    let Some((msg, target)) = args.split_last() else {
        bail!("expected [HOST] [PORT] MESSAGE");
    };
    let (host, port) = crate::addr::parse_target(target)?;
    Ok((host, port, msg))
}

fn resolve(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve `{host}`"))?
        .next()
        .with_context(|| format!("`{host}` has no address"))
}

/// Sends the message and checks its echo.
pub fn run(args: SendArgs) -> anyhow::Result<ExitCode> {
    let (host, port, message) = split_args(&args.args)?;
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        bail!("--timeout must be a positive number of seconds");
    }
    let timeout = Duration::from_secs_f64(args.timeout);
    let addr = resolve(&host, port).map_err(|e| {
        if args.args.len() == 2 && !crate::addr::is_port_like(&args.args[0]) {
            anyhow::anyhow!(
                "{e:#} (a message of several words needs quotes: ringport send \"{} {}\")",
                args.args[0],
                args.args[1]
            )
        } else {
            e
        }
    })?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let sent = message.as_bytes();
    stream
        .write_all(sent)
        .with_context(|| format!("sending to {addr} failed"))?;
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
                    args.timeout,
                    sent.len()
                )
            }
            Err(e) => return Err(e).with_context(|| format!("receiving from {addr} failed")),
        }
    }
    if let Some(at) = sent.iter().zip(&echo).position(|(a, b)| a != b) {
        bail!(
            "wrong echo from {addr} at byte {at}: sent {:#04x}, got {:#04x}",
            sent[at],
            echo[at]
        );
    }
    let _ = stream.shutdown(Shutdown::Write);
    println!("{}", String::from_utf8_lossy(&echo));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn host_and_port_are_optional() {
        assert_eq!(
            split_args(&v(&["hi"])).unwrap(),
            ("127.0.0.1".into(), 3333, "hi")
        );
        assert_eq!(
            split_args(&v(&["4000", "hi"])).unwrap(),
            ("127.0.0.1".into(), 4000, "hi")
        );
        assert_eq!(
            split_args(&v(&["localhost", "hi"])).unwrap(),
            ("localhost".into(), 3333, "hi")
        );
        assert_eq!(
            split_args(&v(&["h", "1", "hi"])).unwrap(),
            ("h".into(), 1, "hi")
        );
        assert!(split_args(&v(&["h", "notaport", "hi"])).is_err());
        assert!(
            split_args(&v(&["70000", "hi"])).is_err(),
            "issue 14: a port, not a host"
        );
        assert!(
            split_args(&v(&["1.5", "hi"])).is_err(),
            "issue 14: not a host"
        );
        assert_eq!(
            split_args(&v(&["127.0.0.1:4000", "hi"])).unwrap(),
            ("127.0.0.1".into(), 4000, "hi")
        );
        assert_eq!(
            split_args(&v(&["[::1]", "4000", "hi"])).unwrap(),
            ("::1".into(), 4000, "hi")
        );
    }
}
