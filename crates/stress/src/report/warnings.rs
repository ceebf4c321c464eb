//! Warnings a report carries beyond its figures: connections starved by the server, and the
//! client's own ports (`TIME_WAIT`, the ephemeral range) limiting a run with reconnects.
//!
//! # TIME_WAIT and the ephemeral ports
//!
//! The side that closes first keeps the connection in `TIME_WAIT` for 60 s on Linux, holding its
//! local port for that destination. A client that closes gracefully (FIN, the default) therefore
//! holds about `rate x 60 s` ports; one source address has only the
//! `net.ipv4.ip_local_port_range` (28,232 by default). Linux reuses a `TIME_WAIT` port for a new
//! outgoing connection once it is a second old when `net.ipv4.tcp_tw_reuse` allows it (1, or 2 =
//! loopback only, the default), so then the limit is the rate per second instead. Past it,
//! `connect` fails with `EADDRNOTAVAIL`. `--linger0` closes with a reset (`SO_LINGER` 0), which
//! leaves no `TIME_WAIT` at all, at the price of a reset the server sees on every connection.

use crate::measure::ports::TIME_WAIT_SECS;

/// The warning for connections that had nothing verified in the measured window while others
/// did (fairness min 0): a server that serves one client at a time, or one that starves some.
/// Connections the server closed or reset before echoing a byte (`closed_early`: a limit such
/// as `--max-per-ip` turning them away, warned about on its own) are not starved.
pub fn starved_warning(per_connection: &[u64], stream: bool, closed_early: u64) -> Option<String> {
    let starved = per_connection
        .iter()
        .filter(|&&n| n == 0)
        .count()
        .saturating_sub(usize::try_from(closed_early).unwrap_or(usize::MAX));
    let best = per_connection.iter().copied().max().unwrap_or(0);
    if starved == 0 || best == 0 {
        return None;
    }
    let unit = if stream { "chunk" } else { "round trip" };
    Some(format!(
        "starved: {starved} of {} connections had no {unit} verified in the measured time while \
         another had {best}: the server served them late or not at all, as one that serves a \
         client at a time does (ringport serve --model single); the figures are those of the \
         connections it served",
        per_connection.len()
    ))
}

/// The facts [`port_warning`] weighs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PortFacts {
    /// Connections established per second in the run.
    pub connections_per_s: f64,
    /// Connects that failed with `EADDRNOTAVAIL` (or `EADDRINUSE` at bind).
    pub addr_not_available: u64,
    /// Sockets in `TIME_WAIT` at the end, if known.
    pub time_wait: Option<u64>,
    /// Ephemeral ports of one source address.
    pub ephemeral_ports: u64,
    /// Source addresses the connections were spread over (at least 1).
    pub sources: u64,
    /// `--linger0`: the client leaves no `TIME_WAIT`.
    pub linger0: bool,
    /// Whether the kernel reuses `TIME_WAIT` ports for new connections here, if known.
    pub tw_reuse: Option<bool>,
}

/// One line saying that `TIME_WAIT` or the ephemeral port range limited (or at this rate will
/// limit) the run, and what to do; `None` when neither does.
pub fn port_warning(f: &PortFacts) -> Option<String> {
    let ports = f.ephemeral_ports.saturating_mul(f.sources.max(1));
    let advice = "lower --connect-rate, spread over more --source-ip addresses, widen \
                  net.ipv4.ip_local_port_range, or close with a reset (--linger0) so the client \
                  leaves no TIME_WAIT";
    if f.addr_not_available > 0 {
        return Some(format!(
            "ephemeral ports ran out: {} connects failed with EADDRNOTAVAIL ({ports} local ports, \
             {} in TIME_WAIT at the end): {advice}",
            f.addr_not_available,
            f.time_wait
                .map_or("an unknown number".to_string(), |t| t.to_string()),
        ));
    }
    // Where the kernel reuses TIME_WAIT ports, the sockets in TIME_WAIT do not block a connect.
    if let (Some(tw), false) = (f.time_wait, f.tw_reuse == Some(true)) {
        if ports > 0 && tw.saturating_mul(2) >= ports {
            return Some(format!(
                "TIME_WAIT holds {tw} sockets on this host, {:.0}% of the {ports} ephemeral \
                 ports: a longer run will fail to connect with EADDRNOTAVAIL; {advice}",
                100.0 * tw as f64 / ports as f64
            ));
        }
    }
    if f.linger0 || ports == 0 {
        return None;
    }
    // With reuse, a TIME_WAIT port is free again after a second; without, after 60 s.
    let held_for = if f.tw_reuse == Some(true) {
        1.0
    } else {
        TIME_WAIT_SECS
    };
    let held = f.connections_per_s * held_for;
    if held > ports as f64 {
        return Some(format!(
            "at {:.0} connections/s, TIME_WAIT ({held_for:.0} s) holds about {held:.0} local \
             ports, more than the {ports} ephemeral ports: a run longer than {:.0} s will fail \
             to connect with EADDRNOTAVAIL; {advice}",
            f.connections_per_s,
            ports as f64 / f.connections_per_s,
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> PortFacts {
        PortFacts {
            connections_per_s: 100.0,
            addr_not_available: 0,
            time_wait: Some(10),
            ephemeral_ports: 28232,
            sources: 1,
            linger0: false,
            tw_reuse: Some(false),
        }
    }

    #[test]
    fn the_port_warning_names_the_limit_and_the_remedies() {
        assert_eq!(port_warning(&facts()), None, "6,000 ports held of 28,232");
        let out = port_warning(&PortFacts {
            addr_not_available: 3,
            ..facts()
        })
        .unwrap();
        assert!(
            out.contains("3 connects failed with EADDRNOTAVAIL"),
            "{out}"
        );
        assert!(out.contains("--linger0") && out.contains("ip_local_port_range"));
        assert!(!out.contains('\n'), "one line: {out}");
        let full = port_warning(&PortFacts {
            time_wait: Some(20000),
            ..facts()
        })
        .unwrap();
        assert!(
            full.starts_with("TIME_WAIT holds 20000 sockets on this host, 71%"),
            "{full}"
        );
        let reused = PortFacts {
            time_wait: Some(40000),
            tw_reuse: Some(true),
            ..facts()
        };
        assert_eq!(
            port_warning(&reused),
            None,
            "reused TIME_WAIT ports do not block"
        );
        let fast = port_warning(&PortFacts {
            connections_per_s: 1000.0,
            ..facts()
        })
        .unwrap();
        assert!(fast.contains("holds about 60000 local ports"), "{fast}");
        assert!(fast.contains("longer than 28 s"), "{fast}");
        // Reuse after a second, a reset close, or more source addresses lift the limit.
        for lifted in [
            PortFacts {
                connections_per_s: 1000.0,
                tw_reuse: Some(true),
                ..facts()
            },
            PortFacts {
                connections_per_s: 1000.0,
                linger0: true,
                ..facts()
            },
            PortFacts {
                connections_per_s: 1000.0,
                sources: 3,
                ..facts()
            },
        ] {
            assert_eq!(port_warning(&lifted), None, "{lifted:?}");
        }
    }
}
