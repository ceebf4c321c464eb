//! `--metrics ADDR` of `serve` and `stress`: the flag's value, binding the endpoint before the
//! work starts (a taken address is a one-line error), and where its address is printed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::Context;
use ringport_metrics::Endpoint;
use ringport_metrics::Registry;

/// The help of `--metrics`, the same for both commands.
pub const HELP: &str = "Serve Prometheus metrics at http://ADDR/metrics (OpenMetrics text), read \
from the live counters at each scrape: IP:PORT, [V6]:PORT, or a lone PORT on 127.0.0.1; port 0 \
picks a free one, printed as `metrics on http://IP:PORT/metrics`. The metrics and a Grafana \
dashboard: docs/metrics.md";

/// `IP:PORT`, `[V6]:PORT`, or a lone `PORT` (on 127.0.0.1: serving other hosts is an explicit
/// choice, as for `--bind`).
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    s.parse().map_err(|_| {
        format!("`{s}` is not an address for the metrics: IP:PORT, [V6]:PORT or PORT (e.g. 127.0.0.1:9464)")
    })
}

/// Listens on `addr` for `--metrics`.
pub fn bind(addr: SocketAddr) -> anyhow::Result<Endpoint> {
    Endpoint::bind(addr).with_context(|| format!("cannot serve --metrics on {addr}"))
}

/// Answers scrapes from `registry` on `endpoint`'s thread; the line that names the address.
pub fn serve(endpoint: Endpoint, registry: Registry) -> anyhow::Result<String> {
    let line = format!("metrics on http://{}/metrics", endpoint.local_addr());
    endpoint
        .serve(registry)
        .context("cannot start the --metrics thread")?;
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_the_metrics() {
        assert_eq!(parse_addr("9464"), Ok("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(
            parse_addr("0.0.0.0:9100"),
            Ok("0.0.0.0:9100".parse().unwrap())
        );
        assert_eq!(parse_addr("[::1]:0"), Ok("[::1]:0".parse().unwrap()));
        assert!(parse_addr("localhost").unwrap_err().contains("IP:PORT"));
        assert!(parse_addr("1.2.3.4").is_err());
    }
}
