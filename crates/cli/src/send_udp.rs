//! `ringport send --udp`: one datagram to a UDP echo, its echo awaited, checked byte for byte
//! and printed.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use anyhow::{bail, Context};

/// The longest datagram IPv4 carries (65,535 minus the IPv4 and UDP headers).
pub const DATAGRAM_MAX_V4: usize = 65_507;
/// The longest datagram IPv6 carries without jumbograms (65,535 minus the UDP header).
pub const DATAGRAM_MAX_V6: usize = 65_527;

/// Sends `sent` as one datagram to `addr` and returns its echo, checked: the same length and
/// the same bytes, from `addr`, within `timeout` (`None`: for ever).
pub fn round_trip(
    addr: SocketAddr,
    sent: &[u8],
    timeout: Option<Duration>,
) -> anyhow::Result<Vec<u8>> {
    let (local, max): (SocketAddr, usize) = match addr {
        SocketAddr::V4(_) => ((Ipv4Addr::UNSPECIFIED, 0).into(), DATAGRAM_MAX_V4),
        SocketAddr::V6(_) => ((Ipv6Addr::UNSPECIFIED, 0).into(), DATAGRAM_MAX_V6),
    };
    if sent.len() > max {
        bail!(
            "{} bytes do not fit in one datagram: at most {max} over {}",
            sent.len(),
            if addr.is_ipv4() { "IPv4" } else { "IPv6" }
        );
    }
    let socket = UdpSocket::bind(local).context("cannot open a UDP socket")?;
    // Connected: only datagrams from `addr` are taken as the echo.
    socket
        .connect(addr)
        .with_context(|| format!("cannot send to {addr}"))?;
    socket.set_read_timeout(timeout)?;
    let n = socket
        .send(sent)
        .with_context(|| format!("sending to {addr} failed"))?;
    if n != sent.len() {
        bail!("only {n} of {} bytes left in the datagram", sent.len());
    }
    // One byte more than the longest datagram: a longer echo shows as longer, not cut.
    let mut echo = vec![0u8; max + 1];
    let got = match socket.recv(&mut echo) {
        Ok(got) => got,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            bail!(
                "no echo from {addr} within {:.1} s (over UDP the datagram or its echo may be \
                 lost, or the server may refuse it: see its summary)",
                timeout.unwrap_or_default().as_secs_f64()
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            bail!("nothing serves UDP on {addr} (port unreachable)")
        }
        Err(e) => return Err(e).with_context(|| format!("receiving from {addr} failed")),
    };
    echo.truncate(got);
    if got != sent.len() {
        bail!(
            "wrong echo from {addr}: sent a datagram of {} bytes, got one of {got}",
            sent.len()
        );
    }
    if let Some(at) = sent.iter().zip(&echo).position(|(a, b)| a != b) {
        bail!(
            "wrong echo from {addr} at byte {at}: sent {:#04x}, got {:#04x}",
            sent[at],
            echo[at]
        );
    }
    Ok(echo)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-shot echo on loopback that answers with `reply` instead of what it received.
    fn answering(reply: Option<Vec<u8>>) -> SocketAddr {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = s.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 70_000];
            let (n, from) = s.recv_from(&mut buf).unwrap();
            let out = reply.unwrap_or_else(|| buf[..n].to_vec());
            s.send_to(&out, from).unwrap();
        });
        addr
    }

    #[test]
    fn the_echo_is_checked_by_length_and_by_byte() {
        let t = Some(Duration::from_secs(5));
        let addr = answering(None);
        assert_eq!(round_trip(addr, b"hello", t).unwrap(), b"hello");
        let addr = answering(None);
        assert_eq!(round_trip(addr, b"", t).unwrap(), b"", "an empty datagram");
        let addr = answering(Some(b"hellO".to_vec()));
        let e = round_trip(addr, b"hello", t).unwrap_err().to_string();
        assert!(e.contains("at byte 4"), "{e}");
        let addr = answering(Some(b"hell".to_vec()));
        let e = round_trip(addr, b"hello", t).unwrap_err().to_string();
        assert!(e.contains("of 5 bytes, got one of 4"), "{e}");
    }

    #[test]
    fn too_long_for_one_datagram_is_refused_before_sending() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let e = round_trip(
            addr,
            &vec![0; DATAGRAM_MAX_V4 + 1],
            Some(Duration::from_secs(1)),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("at most 65507 over IPv4"), "{e}");
    }
}
