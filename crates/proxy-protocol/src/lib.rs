//! # ringport-proxy-protocol: HAProxy's PROXY protocol, versions 1 and 2, no sockets
//!
//! The header a load balancer puts before a connection's bytes to say who the client is.
//! [`step`] reads it: from what arrived so far, whether the header is whole (and what it
//! says), bad, or how many more bytes it needs at least. That count never reaches beyond the
//! header's end, so a server that receives exactly that much each time takes the header and
//! nothing of the bytes behind it. [`encode`] writes one, as a client or a proxy sends it.
//!
//! `LOCAL` (version 2: the proxy's own health check) and `UNKNOWN` (version 1) say nothing of
//! the client: the connection's own address stands, as the specification asks.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest header accepted: a version 1 line is at most 107 bytes; a version 2 header
/// with its TLVs (which are skipped) up to this.
pub const MAX_HEADER: usize = 4096;

/// Version 2's signature, its first 12 bytes.
const V2_SIG: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest version 1 line, CRLF included.
const V1_MAX: usize = 107;
/// The shortest header of either version: `PROXY UNKNOWN\r\n` (a version 2 header is 16 at
/// least).
const MIN_HEADER: usize = 15;

/// What a whole header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// The client's address (and the one it connected to, at the proxy).
    Proxied {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// Version 2 `LOCAL` (the proxy speaking for itself), or an address that is not IP
    /// (version 1 `UNKNOWN`, version 2 `UNSPEC` or `UNIX`): the connection's own address
    /// stands.
    Own,
}

impl Header {
    /// The client's address the header gives, if it gives one.
    pub fn source(&self) -> Option<SocketAddr> {
        match self {
            Header::Proxied { source, .. } => Some(*source),
            Header::Own => None,
        }
    }
}

/// Why a header is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    /// Neither version's start: a client that does not speak the protocol.
    NotProxy,
    /// A version 1 line that does not read.
    V1,
    /// A version 2 header with another version, command, or an address block too short for
    /// its family.
    V2,
    /// Longer than [`MAX_HEADER`] (or a version 1 line without its end within 107 bytes).
    TooLong,
}

impl fmt::Display for Bad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bad::NotProxy => "not a PROXY protocol header",
            Bad::V1 => "a version 1 header that does not read",
            Bad::V2 => "a version 2 header that does not read",
            Bad::TooLong => "a header too long",
        })
    }
}

/// Where the header stands given the bytes received so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// At least this many more bytes (1 or more), none beyond the header's end.
    Need(usize),
    /// Whole: what it says, its version (1 or 2) and its length (all of what was given).
    Done {
        header: Header,
        version: u8,
        len: usize,
    },
    /// Not a header this server takes.
    Bad(Bad),
}

/// Where a header at the start of `bytes` ends, if its end is among them: a version 1 line's
/// first CRLF, a version 2 header's length field. Nothing else is checked ([`step`] reads it):
/// for a reader that can look at queued bytes before taking them, so that it takes the header
/// whole and nothing after it.
pub fn whole_len(bytes: &[u8]) -> Option<usize> {
    match bytes.first()? {
        b'\r' if bytes.len() >= 16 => {
            let len = 16 + usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
            (len <= bytes.len()).then_some(len)
        }
        b'P' => bytes
            .windows(2)
            .take(V1_MAX - 1)
            .position(|w| w == b"\r\n")
            .map(|at| at + 2),
        _ => None,
    }
}

/// Reads `got`, the first bytes of a connection (never more than the header: receive exactly
/// what [`Step::Need`] says each time).
pub fn step(got: &[u8]) -> Step {
    match got.first() {
        None => Step::Need(MIN_HEADER),
        Some(b'\r') => v2(got),
        Some(b'P') => v1(got),
        Some(_) => Step::Bad(Bad::NotProxy),
    }
}

fn v2(got: &[u8]) -> Step {
    let sig = got.len().min(V2_SIG.len());
    if got[..sig] != V2_SIG[..sig] {
        return Step::Bad(Bad::NotProxy);
    }
    if got.len() < 16 {
        return Step::Need(16 - got.len());
    }
    let (version, command) = (got[12] >> 4, got[12] & 0x0f);
    if version != 2 || command > 1 {
        return Step::Bad(Bad::V2);
    }
    let total = 16 + usize::from(u16::from_be_bytes([got[14], got[15]]));
    if total > MAX_HEADER {
        return Step::Bad(Bad::TooLong);
    }
    if got.len() < total {
        return Step::Need(total - got.len());
    }
    let block = &got[16..total];
    let done = |header| Step::Done {
        header,
        version: 2,
        len: total,
    };
    if command == 0 {
        // LOCAL: the address block, if any, is ignored.
        return done(Header::Own);
    }
    let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
    match got[13] >> 4 {
        // AF_INET: source and destination addresses, then ports.
        0x1 if block.len() >= 12 => {
            let ip = |at: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    block[at],
                    block[at + 1],
                    block[at + 2],
                    block[at + 3],
                ))
            };
            done(Header::Proxied {
                source: SocketAddr::new(ip(0), port(8)),
                destination: SocketAddr::new(ip(4), port(10)),
            })
        }
        0x2 if block.len() >= 36 => {
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&block[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            done(Header::Proxied {
                source: SocketAddr::new(ip(0), port(32)),
                destination: SocketAddr::new(ip(16), port(34)),
            })
        }
        0x1 | 0x2 => Step::Bad(Bad::V2),
        // UNSPEC, UNIX: no IP address to take.
        0x0 | 0x3 => done(Header::Own),
        _ => Step::Bad(Bad::V2),
    }
}

/// A version 1 line's protocols, and the shortest address each takes.
const V1_PROTOCOLS: [(&str, usize); 3] = [("TCP4", 7), ("TCP6", 2), ("UNKNOWN", 0)];

fn v1(got: &[u8]) -> Step {
    const START: &[u8] = b"PROXY ";
    let n = got.len().min(START.len());
    if got[..n] != START[..n] {
        return Step::Bad(Bad::NotProxy);
    }
    if got.len() < MIN_HEADER {
        return Step::Need(MIN_HEADER - got.len());
    }
    if got.ends_with(b"\r\n") {
        return v1_line(got);
    }
    if got[..got.len() - 1].contains(&b'\r') || got.contains(&b'\n') {
        return Step::Bad(Bad::V1);
    }
    if got.len() >= V1_MAX {
        return Step::Bad(Bad::TooLong);
    }
    if got.ends_with(b"\r") {
        return Step::Need(1);
    }
    // The shortest way the line can still end, for each protocol its start allows.
    let rest = &got[START.len()..];
    let fields: Vec<&[u8]> = rest.split(|&b| b == b' ').collect();
    let protocol = fields[0];
    let mut least: Option<usize> = None;
    for (name, addr_min) in V1_PROTOCOLS {
        let name = name.as_bytes();
        let need = if fields.len() == 1 {
            // The protocol itself is still arriving.
            if !name.starts_with(protocol) {
                continue;
            }
            let rest_min = if addr_min == 0 {
                0
            } else {
                2 * (1 + addr_min) + 2 * (1 + 1)
            };
            name.len() - protocol.len() + rest_min + 2
        } else {
            if protocol != name {
                continue;
            }
            if addr_min == 0 {
                // UNKNOWN: anything up to the CRLF.
                2
            } else {
                match v1_addresses_need(&fields[1..], addr_min) {
                    Some(need) => need,
                    None => return Step::Bad(Bad::V1),
                }
            }
        };
        least = Some(least.map_or(need, |l| l.min(need)));
    }
    match least {
        Some(need) => Step::Need(need.min(V1_MAX - got.len()).max(1)),
        None => Step::Bad(Bad::V1),
    }
}

/// The fewest bytes that can complete `fields` (source, destination, source port, destination
/// port; the last one given may be partial) and the CRLF; `None` if they cannot be right.
fn v1_addresses_need(fields: &[&[u8]], addr_min: usize) -> Option<usize> {
    let mins = [addr_min, addr_min, 1, 1];
    if fields.len() > mins.len() {
        return None;
    }
    let last = fields.len() - 1;
    let mut need = 2;
    for (i, field) in fields.iter().enumerate() {
        let ok = if i < 2 {
            field
                .iter()
                .all(|b| b.is_ascii_hexdigit() || *b == b'.' || *b == b':')
        } else {
            field.iter().all(u8::is_ascii_digit) && field.len() <= 5
        };
        if !ok || (i < last && field.is_empty()) {
            return None;
        }
        if i == last {
            need += mins[i].saturating_sub(field.len());
        }
    }
    need += mins[fields.len()..].iter().map(|m| 1 + m).sum::<usize>();
    Some(need)
}

/// A whole version 1 line, CRLF included.
fn v1_line(got: &[u8]) -> Step {
    let Ok(line) = std::str::from_utf8(&got[..got.len() - 2]) else {
        return Step::Bad(Bad::V1);
    };
    let done = |header| Step::Done {
        header,
        version: 1,
        len: got.len(),
    };
    let fields: Vec<&str> = line.split(' ').collect();
    match fields.as_slice() {
        ["PROXY", "UNKNOWN", ..] => done(Header::Own),
        ["PROXY", protocol @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let v4 = *protocol == "TCP4";
            let ip = |s: &str| -> Option<IpAddr> {
                if v4 {
                    s.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
                } else {
                    s.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
                }
            };
            let port = |s: &str| -> Option<u16> {
                // Decimal, no sign and no leading zero.
                (s == "0" || !s.starts_with('0'))
                    .then(|| s.parse().ok())
                    .flatten()
            };
            match (ip(src), ip(dst), port(sport), port(dport)) {
                (Some(s), Some(d), Some(sp), Some(dp)) => done(Header::Proxied {
                    source: SocketAddr::new(s, sp),
                    destination: SocketAddr::new(d, dp),
                }),
                _ => Step::Bad(Bad::V1),
            }
        }
        _ => Step::Bad(Bad::V1),
    }
}

/// Which version a header is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The text line: `PROXY TCP4 192.0.2.7 198.51.100.1 40000 443\r\n`.
    V1,
    /// The binary header (`PROXY` command, TCP over IPv4 or IPv6, no TLVs).
    V2,
}

/// The header that says a connection from `source` reached the proxy at `destination`. Two
/// addresses of different families are written as IPv6 (IPv4 ones mapped).
pub fn encode(version: Version, source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let (source, destination) = match (source, destination) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) | (SocketAddr::V6(_), SocketAddr::V6(_)) => {
            (source, destination)
        }
        _ => (v6(source), v6(destination)),
    };
    match version {
        Version::V1 => {
            let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {family} {} {} {} {}\r\n",
                source.ip(),
                destination.ip(),
                source.port(),
                destination.port()
            )
            .into_bytes()
        }
        Version::V2 => {
            let mut h = V2_SIG.to_vec();
            let mut block = Vec::with_capacity(36);
            let family = match (source.ip(), destination.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    block.extend_from_slice(&s.octets());
                    block.extend_from_slice(&d.octets());
                    0x11
                }
                (s, d) => {
                    block.extend_from_slice(&v6_octets(s));
                    block.extend_from_slice(&v6_octets(d));
                    0x21
                }
            };
            block.extend_from_slice(&source.port().to_be_bytes());
            block.extend_from_slice(&destination.port().to_be_bytes());
            h.extend_from_slice(&[0x21, family]);
            h.extend_from_slice(&(block.len() as u16).to_be_bytes());
            h.extend_from_slice(&block);
            h
        }
    }
}

fn v6(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(v6_octets(a.ip()).into()), a.port())
}

fn v6_octets(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version 2 header: command, family byte, address block.
    fn v2_header(command: u8, family: u8, block: &[u8]) -> Vec<u8> {
        let mut h = V2_SIG.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&(block.len() as u16).to_be_bytes());
        h.extend_from_slice(block);
        h
    }

    fn v2_inet(tlvs: &[u8]) -> Vec<u8> {
        let mut block = vec![192, 0, 2, 7, 198, 51, 100, 1];
        block.extend_from_slice(&40_000u16.to_be_bytes());
        block.extend_from_slice(&443u16.to_be_bytes());
        block.extend_from_slice(tlvs);
        v2_header(1, 0x11, &block)
    }

    fn v2_inet6() -> Vec<u8> {
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let mut block = src.octets().to_vec();
        block.extend_from_slice(&dst.octets());
        block.extend_from_slice(&1u16.to_be_bytes());
        block.extend_from_slice(&65_535u16.to_be_bytes());
        v2_header(1, 0x21, &block)
    }

    /// Reads `header` as a server does (exactly what `step` asks each time, in pieces of at
    /// most `piece` bytes, as a network may cut them), with `after` behind it: the header
    /// comes out whole and nothing of `after` is taken.
    fn read_as_a_server(header: &[u8], after: &[u8], piece: usize) -> Step {
        let mut wire = header.to_vec();
        wire.extend_from_slice(after);
        let mut got = Vec::new();
        loop {
            match step(&got) {
                Step::Need(n) => {
                    assert!(n >= 1);
                    assert!(
                        got.len() + n <= header.len(),
                        "asked for {n} after {} of a {}-byte header",
                        got.len(),
                        header.len()
                    );
                    let take = n.min(piece);
                    got.extend_from_slice(&wire[got.len()..got.len() + take]);
                }
                other => return other,
            }
        }
    }

    fn proxied(src: &str, dst: &str) -> Header {
        Header::Proxied {
            source: src.parse().unwrap(),
            destination: dst.parse().unwrap(),
        }
    }

    #[test]
    fn every_header_is_read_exactly_whatever_follows_and_however_it_is_cut() {
        let cases: Vec<(Vec<u8>, Header, u8)> = vec![
            (
                b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 443\r\n".to_vec(),
                proxied("192.0.2.7:40000", "198.51.100.1:443"),
                1,
            ),
            (
                b"PROXY TCP4 1.1.1.1 2.2.2.2 1 2\r\n".to_vec(),
                proxied("1.1.1.1:1", "2.2.2.2:2"),
                1,
            ),
            (
                b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n".to_vec(),
                proxied("255.255.255.255:65535", "255.255.255.255:65535"),
                1,
            ),
            (
                b"PROXY TCP6 2001:db8::1 ::1 0 8080\r\n".to_vec(),
                proxied("[2001:db8::1]:0", "[::1]:8080"),
                1,
            ),
            (
                b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n".to_vec(),
                proxied(
                    "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
                    "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
                ),
                1,
            ),
            (b"PROXY UNKNOWN\r\n".to_vec(), Header::Own, 1),
            (
                b"PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\n".to_vec(),
                Header::Own,
                1,
            ),
            (
                v2_inet(&[]),
                proxied("192.0.2.7:40000", "198.51.100.1:443"),
                2,
            ),
            // TLVs (here an authority, type 0x02) are skipped.
            (
                v2_inet(&[0x02, 0x00, 0x09, b'l', b'o', b'c', b'a', b'l', b'h', b'o', b's', b't']),
                proxied("192.0.2.7:40000", "198.51.100.1:443"),
                2,
            ),
            (
                v2_inet6(),
                proxied("[2001:db8::1]:1", "[2001:db8::2]:65535"),
                2,
            ),
            (v2_header(0, 0x00, &[]), Header::Own, 2),
            (v2_header(0, 0x11, &[1; 12]), Header::Own, 2),
            (v2_header(1, 0x00, &[]), Header::Own, 2),
            (v2_header(1, 0x31, &[0; 216]), Header::Own, 2),
        ];
        // What follows: nothing, a client's bytes, bytes that look like a header's.
        let afters: [&[u8]; 4] = [b"", b"hello", b"\r\n\r\nPROXY", &[0u8; 200]];
        for (header, want, version) in &cases {
            for after in afters {
                for piece in [1, 2, 3, 7, 1000] {
                    let got = read_as_a_server(header, after, piece);
                    assert_eq!(
                        got,
                        Step::Done {
                            header: *want,
                            version: *version,
                            len: header.len()
                        },
                        "{:?} + {after:?} in pieces of {piece}",
                        String::from_utf8_lossy(header)
                    );
                }
            }
        }
    }

    #[test]
    fn what_is_not_a_header_is_refused_with_its_cause() {
        let cases: Vec<(Vec<u8>, Bad)> = vec![
            (b"GET / HTTP/1.1\r\n\r\n".to_vec(), Bad::NotProxy),
            (b"hello".to_vec(), Bad::NotProxy),
            (b"PROXI TCP4".to_vec(), Bad::NotProxy),
            (b"\r\n\r\n\0\r\nQUIX\n".to_vec(), Bad::NotProxy),
            (b"PROXY TCP5 1.1.1.1 2.2.2.2 1 2\r\n".to_vec(), Bad::V1),
            (b"PROXY TCP4 1.1.1.1 2.2.2.2 1\r\n".to_vec(), Bad::V1),
            (b"PROXY TCP4 1.1.1.1 2.2.2.2 1 2 3\r\n".to_vec(), Bad::V1),
            (b"PROXY TCP4 1.1.1.256 2.2.2.2 1 2\r\n".to_vec(), Bad::V1),
            (b"PROXY TCP4 ::1 ::2 1 2\r\n".to_vec(), Bad::V1),
            (b"PROXY TCP6 1.1.1.1 2.2.2.2 1 2\r\n".to_vec(), Bad::V1),
            (b"PROXY TCP4 1.1.1.1 2.2.2.2 65536 2\r\n".to_vec(), Bad::V1),
            (b"PROXY TCP4 1.1.1.1 2.2.2.2 01 2\r\n".to_vec(), Bad::V1),
            (b"PROXY TCP4 1.1.1.1  2.2.2.2 1 2\r\n".to_vec(), Bad::V1),
            (b"PROXY TCP4 1.1.1.1\n2.2.2.2 1 2\r\n".to_vec(), Bad::V1),
            (b"PROXY TCP4 1.1.1.1 2.2.2.2 1 2\rX".to_vec(), Bad::V1),
            (
                [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 100], b"\r\n"].concat(),
                Bad::TooLong,
            ),
            (
                {
                    let mut h = v2_inet(&[]);
                    h[12] = 0x11;
                    h
                },
                Bad::V2,
            ),
            (
                {
                    let mut h = v2_inet(&[]);
                    h[12] = 0x22;
                    h
                },
                Bad::V2,
            ),
            (v2_header(1, 0x11, &[0; 11]), Bad::V2),
            (v2_header(1, 0x21, &[0; 35]), Bad::V2),
            (v2_header(1, 0x41, &[0; 12]), Bad::V2),
            (
                {
                    let mut h = V2_SIG.to_vec();
                    h.extend_from_slice(&[0x21, 0x11]);
                    h.extend_from_slice(&(MAX_HEADER as u16).to_be_bytes());
                    h
                },
                Bad::TooLong,
            ),
        ];
        for (bytes, want) in cases {
            let mut got = Vec::new();
            let result = loop {
                match step(&got) {
                    Step::Need(n) => {
                        assert!(got.len() < bytes.len(), "{bytes:?}: asked beyond its end");
                        let end = (got.len() + n).min(bytes.len());
                        got.extend_from_slice(&bytes[got.len()..end]);
                    }
                    other => break other,
                }
            };
            assert_eq!(
                result,
                Step::Bad(want),
                "{:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    #[test]
    fn the_end_of_a_header_is_found_among_the_bytes_after_it() {
        let v1 = b"PROXY TCP4 1.1.1.1 2.2.2.2 1 2\r\n".to_vec();
        let v2 = v2_inet(&[1, 0, 1, 9]);
        for h in [&v1, &v2] {
            let mut bytes = h.clone();
            bytes.extend_from_slice(b"\r\nmore\r\n");
            assert_eq!(whole_len(&bytes), Some(h.len()));
            assert_eq!(whole_len(&bytes[..h.len() - 1]), None);
        }
        assert_eq!(whole_len(b"GET / HTTP/1.1\r\n"), None);
    }

    #[test]
    fn what_is_written_reads_back() {
        let pairs = [
            ("192.0.2.7:40000", "198.51.100.1:443"),
            ("[2001:db8::5]:1", "[::1]:65535"),
            ("192.0.2.7:2", "[2001:db8::1]:3"),
        ];
        for (src, dst) in pairs {
            let (src, dst): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
            for (version, number) in [(Version::V1, 1), (Version::V2, 2)] {
                let h = encode(version, src, dst);
                let Step::Done {
                    header:
                        Header::Proxied {
                            source,
                            destination,
                        },
                    version: read,
                    len,
                } = read_as_a_server(&h, b"after", 3)
                else {
                    panic!("{version:?} {src} {dst}: {h:?}");
                };
                assert_eq!((read, len), (number, h.len()));
                if src.is_ipv4() == dst.is_ipv4() {
                    assert_eq!((source, destination), (src, dst));
                } else {
                    assert_eq!(source, v6(src));
                    assert_eq!(destination, v6(dst));
                }
            }
        }
    }
}
