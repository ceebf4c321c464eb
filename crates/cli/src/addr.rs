//! The addresses users type: `[HOST] [PORT]` positionals, `HOST:PORT`, `[V6]:PORT`, and a host
//! name for `serve --bind`.
//!
//! One rule everywhere: a lone all-digit argument is a port (1-65535, anything larger is an
//! error, never an IPv4 address written as one number), and a host must look like a host: an IP
//! address in its usual notation, or a DNS name whose last label is not all digits (so `1.5` or
//! `70000` is refused instead of being resolved to 1.0.0.5 or 0.1.17.112, off this machine).

use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use anyhow::{bail, Context};

/// The host `stress` and `send` talk to when none is given.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// The article's port, used when none is given.
pub const DEFAULT_PORT: u16 = ringport_stress::config::DEFAULT_PORT;

/// Whether `s` is written as a port: digits only.
pub fn is_port_like(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `s` is written as a number, signed or not (`-1`, `+5`, `70000`): meant as a port,
/// never a host.
pub fn is_number_like(s: &str) -> bool {
    is_port_like(s.strip_prefix(['-', '+']).unwrap_or(s))
}

/// A port to connect to: digits only, 1 to 65535.
pub fn parse_port(s: &str) -> anyhow::Result<u16> {
    match s.parse::<u32>() {
        Ok(n @ 1..=65535) if is_port_like(s) => Ok(n as u16),
        _ => bail!("`{s}` is not a port number (1-65535)"),
    }
}

/// Checks that `s` looks like a host: an IP address, or a DNS name (letters, digits and `-` in
/// dot-separated labels, the last one not all digits).
pub fn check_host(s: &str) -> anyhow::Result<()> {
    if s.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let name = s.strip_suffix('.').unwrap_or(s);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let last_numeric = name.rsplit('.').next().is_some_and(is_port_like);
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) || last_numeric {
        bail!("`{s}` is not a host (an IP address such as 127.0.0.1 or ::1, or a name such as localhost)");
    }
    Ok(())
}

/// Splits one argument that names a host and maybe a port: `HOST`, `HOST:PORT`, `V6`, `[V6]` or
/// `[V6]:PORT`.
pub fn parse_host_port(s: &str) -> anyhow::Result<(String, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .with_context(|| format!("`{s}`: a `[` without its `]` (write [V6]:PORT)"))?;
        inside
            .parse::<Ipv6Addr>()
            .map_err(|_| anyhow::anyhow!("`{inside}` in `{s}` is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(parse_port(
                p.strip_prefix(':')
                    .with_context(|| format!("`{s}`: expected [V6]:PORT"))?,
            )?),
        };
        return Ok((inside.to_string(), port));
    }
    if s.parse::<Ipv6Addr>().is_ok() {
        return Ok((s.to_string(), None));
    }
    if let Some((host, port)) = s.rsplit_once(':') {
        if host.contains(':') {
            bail!("`{s}` is not an address (write an IPv6 address with a port as [V6]:PORT)");
        }
        check_host(host)?;
        return Ok((host.to_string(), Some(parse_port(port)?)));
    }
    check_host(s)?;
    Ok((s.to_string(), None))
}

/// `[HOST] [PORT]`, with HOST also as `HOST:PORT` or `[V6]:PORT`. A lone all-digit argument is
/// the port.
pub fn parse_target(args: &[String]) -> anyhow::Result<(String, u16)> {
    match args {
        [] => Ok((DEFAULT_HOST.to_string(), DEFAULT_PORT)),
        [p] if is_number_like(p) => Ok((DEFAULT_HOST.to_string(), parse_port(p)?)),
        [a] => {
            let (host, port) = parse_host_port(a)?;
            Ok((host, port.unwrap_or(DEFAULT_PORT)))
        }
        [a, p] if is_number_like(a) => {
            parse_port(a)?;
            bail!("`{a}` is the port, so `{p}` after it is one argument too many (expected [HOST] [PORT])")
        }
        [a, p] => {
            let (host, port) = parse_host_port(a)?;
            if port.is_some() {
                bail!("`{a}` already has a port; `{p}` is one too many");
            }
            Ok((host, parse_port(p)?))
        }
        _ => bail!("expected [HOST] [PORT]"),
    }
}

/// The address `serve --bind` names: an IP address, or a host name resolved here (IPv4 first,
/// as `localhost` may list ::1 first and clients default to 127.0.0.1).
pub fn parse_bind(s: &str) -> Result<IpAddr, String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(ip);
    }
    let inner = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    if let Ok(ip) = inner.parse::<Ipv6Addr>() {
        return Ok(IpAddr::V6(ip));
    }
    check_host(s).map_err(|e| e.to_string())?;
    let addrs: Vec<SocketAddr> = (s, 0)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{s}`: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .map(|a| a.ip())
        .ok_or_else(|| format!("`{s}` has no address"))
}

/// Connects to `host:port`, trying every address the name resolves to (IPv4 first) until one
/// accepts, each within `timeout` (none: the system's own), over Multipath TCP when `mptcp`;
/// then sends `proxy`'s PROXY header, if given. Returns the address and the stream.
///
/// # Errors
///
/// A name that does not resolve is a usage error; a connection no address accepts names each
/// address tried and why; `mptcp` where the system has none says so.
pub fn connect(
    host: &str,
    port: u16,
    timeout: Option<std::time::Duration>,
    mptcp: bool,
    proxy: Option<ringport_stress::engine::proxy::Version>,
) -> anyhow::Result<(SocketAddr, std::net::TcpStream)> {
    use ringport_stress::engine::resolve::{host_port, resolve_all};
    let target = host_port(host, port);
    let addrs = resolve_all(host, port)
        .map_err(|e| crate::exit::usage(format!("cannot resolve `{host}`: {e}")))?;
    let mut failures = Vec::new();
    for addr in addrs {
        let socket = ringport_port::os::stream_socket(addr, mptcp)
            .map_err(|e| anyhow::anyhow!("--mptcp: {e}"))?;
        let tried = match timeout {
            Some(t) => socket.connect_timeout(&addr.into(), t),
            None => socket.connect(&addr.into()),
        }
        .map(|()| std::net::TcpStream::from(socket));
        match tried {
            Ok(stream) => {
                ringport_stress::engine::proxy::send_on(&stream, proxy, addr)
                    .with_context(|| format!("cannot send the PROXY header to {addr}"))?;
                return Ok((addr, stream));
            }
            Err(e) => failures.push(format!("{addr}: {e}")),
        }
    }
    bail!("cannot connect to {target} ({})", failures.join("; "))
}

/// The most addresses one `--source-ip` range may name (a /16 of IPv4).
pub const MAX_SOURCE_RANGE: u128 = 65_536;

/// One `stress --source-ip` value: an IP address, or an inclusive range of addresses of one
/// family, `FIRST-LAST` (`127.0.0.2-127.0.0.254`, `fd00::1-fd00::ff`), at most
/// [`MAX_SOURCE_RANGE`] addresses, in order.
pub fn parse_source_ips(s: &str) -> Result<Vec<IpAddr>, String> {
    let ip = |t: &str| {
        t.trim()
            .parse::<IpAddr>()
            .map_err(|_| format!("`{t}` is not an IP address (expected IP or FIRST-LAST)"))
    };
    let Some((a, b)) = s.split_once('-') else {
        return Ok(vec![ip(s)?]);
    };
    let (first, last) = (ip(a)?, ip(b)?);
    let (lo, hi, v4) = match (first, last) {
        (IpAddr::V4(x), IpAddr::V4(y)) => {
            (u128::from(u32::from(x)), u128::from(u32::from(y)), true)
        }
        (IpAddr::V6(x), IpAddr::V6(y)) => (u128::from(x), u128::from(y), false),
        _ => return Err(format!("`{s}` mixes IPv4 and IPv6")),
    };
    if hi < lo {
        return Err(format!("`{s}`: {last} comes before {first}"));
    }
    if hi - lo >= MAX_SOURCE_RANGE {
        return Err(format!(
            "`{s}` names {} addresses, more than {MAX_SOURCE_RANGE}",
            hi - lo + 1
        ));
    }
    Ok((lo..=hi)
        .map(|n| {
            if v4 {
                IpAddr::V4(std::net::Ipv4Addr::from(n as u32))
            } else {
                IpAddr::V6(Ipv6Addr::from(n))
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(args: &[&str]) -> anyhow::Result<(String, u16)> {
        parse_target(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn err(r: anyhow::Result<(String, u16)>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn a_lone_number_is_a_port_never_a_host() {
        assert_eq!(t(&["4000"]).unwrap(), ("127.0.0.1".into(), 4000));
        assert!(err(t(&["70000"])).contains("not a port number (1-65535)"));
        assert!(err(t(&["0"])).contains("not a port number"));
        assert!(err(t(&["1.5"])).contains("is not a host"));
        assert!(err(t(&["10.1"])).contains("is not a host"));
        let e = err(t(&["127.0.0.1", "70000"]));
        assert!(e.contains("not a port number (1-65535)"), "{e}");
        assert!(!e.contains("too large"), "{e}");
        assert!(err(t(&["localhost", "-1"])).contains("not a port number"));
    }

    /// A number is a port wherever it stands, signed or not: never "`-1` is not a host".
    #[test]
    fn a_signed_number_is_a_bad_port_not_a_host() {
        for args in [&["-1"][..], &["+0"], &["-1", "4000"]] {
            let e = err(t(args));
            assert!(
                e.contains("`-1` is not a port number") || e.contains("`+0` is not a port number"),
                "{args:?}: {e}"
            );
            assert!(!e.contains("not a host"), "{args:?}: {e}");
        }
        let e = err(t(&["3334", "hi"]));
        assert!(e.contains("`3334` is the port, so `hi`"), "{e}");
        assert!(!e.contains("not a host"), "{e}");
    }

    #[test]
    fn host_port_forms() {
        assert_eq!(t(&[]).unwrap(), ("127.0.0.1".into(), 3333));
        assert_eq!(t(&["localhost"]).unwrap(), ("localhost".into(), 3333));
        assert_eq!(t(&["127.0.0.1:4000"]).unwrap(), ("127.0.0.1".into(), 4000));
        assert_eq!(t(&["localhost:4000"]).unwrap(), ("localhost".into(), 4000));
        assert_eq!(t(&["[::1]:4000"]).unwrap(), ("::1".into(), 4000));
        assert_eq!(t(&["[::1]", "4000"]).unwrap(), ("::1".into(), 4000));
        assert_eq!(t(&["::1", "4000"]).unwrap(), ("::1".into(), 4000));
        assert_eq!(t(&["::1"]).unwrap(), ("::1".into(), 3333));
        assert_eq!(
            t(&["a-b.example.com"]).unwrap(),
            ("a-b.example.com".into(), 3333)
        );
        assert!(err(t(&["127.0.0.1:4000", "5000"])).contains("one too many"));
        assert!(err(t(&["127.0.0.1:99999"])).contains("not a port number"));
        assert!(err(t(&["[::1"])).contains("without its"));
        assert!(err(t(&["[nope]:1"])).contains("not an IPv6 address"));
        assert!(err(t(&["bad_host"])).contains("is not a host"));
        assert!(err(t(&["a", "b", "c"])).contains("expected [HOST] [PORT]"));
    }

    #[test]
    fn bind_takes_addresses_and_names() {
        assert_eq!(
            parse_bind("0.0.0.0").unwrap(),
            "0.0.0.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            parse_bind("[::1]").unwrap(),
            "::1".parse::<IpAddr>().unwrap()
        );
        assert!(parse_bind("localhost").unwrap().is_loopback());
        assert!(parse_bind("1.5").unwrap_err().contains("is not a host"));
    }

    #[test]
    fn source_ips_take_addresses_and_ranges() {
        let v4 = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(parse_source_ips("127.0.0.5").unwrap(), [v4("127.0.0.5")]);
        assert_eq!(
            parse_source_ips("127.0.0.254-127.0.1.1").unwrap(),
            [
                v4("127.0.0.254"),
                v4("127.0.0.255"),
                v4("127.0.1.0"),
                v4("127.0.1.1")
            ]
        );
        assert_eq!(
            parse_source_ips("127.0.0.2-127.0.0.254").unwrap().len(),
            253
        );
        assert_eq!(
            parse_source_ips("fd00::fe-fd00::100").unwrap(),
            [v4("fd00::fe"), v4("fd00::ff"), v4("fd00::100")]
        );
        assert_eq!(
            parse_source_ips("10.0.0.0-10.0.255.255").unwrap().len(),
            65_536
        );
        let e = |s: &str| parse_source_ips(s).unwrap_err();
        assert!(
            e("10.0.0.0-10.1.0.0").contains("more than 65536"),
            "{}",
            e("10.0.0.0-10.1.0.0")
        );
        assert!(e("127.0.0.9-127.0.0.2").contains("comes before"));
        assert!(e("127.0.0.1-::1").contains("mixes IPv4 and IPv6"));
        assert!(e("127.0.0.1-").contains("is not an IP address"));
        assert!(e("localhost").contains("is not an IP address"));
    }
}
