//! The server's metrics (`ringport serve --metrics ADDR`): read from its
//! [`Live`] view at each scrape, which every worker publishes about once a second (at its
//! tick), so a scrape takes the workers' counters as of their last tick and costs the workers
//! nothing.
//!
//! Totals are over all workers; the per-worker families carry a `worker` label (0-based, as the
//! completion model numbers its workers; the blocking models are one worker, `0`). The UDP
//! echo's families (`ringport_udp_*`) are present only when the server serves UDP (`--udp`,
//! `--udp-only`), as its lines are only then in the summary; the echo publishes them at its
//! own tick, about once a second.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;
use ringport_server::udp::UdpStats;
use ringport_server::{Live, Ready, Snapshot};

use crate::encode::{counter, counters, gauge, gauges, info};

/// What a started server is, for `ringport_server_info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// The server design: `completion`, `threaded` or `single`.
    pub model: String,
    /// The completion port's mechanism (`io_uring`, `epoll`, `iocp`), or `blocking` for the
    /// models on blocking sockets.
    pub backend: String,
    /// Worker threads (1 for the blocking models).
    pub workers: usize,
}

impl ServerInfo {
    /// The facts of a started server's [`Ready`].
    pub fn of(ready: &Ready) -> ServerInfo {
        ServerInfo {
            model: ready.model.to_string(),
            backend: ready
                .backend
                .map_or_else(|| "blocking".to_string(), |b| b.to_string()),
            workers: ready.workers.unwrap_or(1),
        }
    }
}

/// A registry holding the server's metrics, read from `live` at each scrape.
pub fn registry(live: Live, info: ServerInfo) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ServerMetrics { live, info }));
    registry
}

/// The collector: the server's counters as metrics.
#[derive(Debug)]
struct ServerMetrics {
    live: Live,
    info: ServerInfo,
}

impl Collector for ServerMetrics {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let workers = self.live.workers();
        let mut open = 0;
        let mut t = ringport_server::WorkerStats::default();
        for w in &workers {
            open += w.open;
            t.add(&w.totals);
        }
        let e = &mut enc;
        let workers_label = self.info.workers.to_string();
        info(
            e,
            "ringport_server",
            "The server: ringport's version, the server model, the completion port's backend, its worker threads.",
            &[
                ("version", crate::VERSION),
                ("model", self.info.model.as_str()),
                ("backend", self.info.backend.as_str()),
                ("workers", workers_label.as_str()),
            ],
        )?;
        counter(
            e,
            "ringport_connections_accepted",
            "Connections accepted.",
            t.accepted,
        )?;
        gauge(
            e,
            "ringport_connections_open",
            "Connections open now.",
            open,
        )?;
        counter(
            e,
            "ringport_connections_closed",
            "Connections closed after being served, whatever the reason.",
            t.closed,
        )?;
        counters(
            e,
            "ringport_connections_refused",
            "Connections accepted and closed at once, by reason: max_connections (the threaded model at --max-connections), max_per_ip (--max-per-ip from one address).",
            "reason",
            &[("max_connections", t.refused_limit), ("max_per_ip", t.refused_per_ip)],
        )?;
        counter(
            e,
            "ringport_mptcp_connections",
            "serve --mptcp: accepted connections that spoke Multipath TCP (the others fell back to TCP).",
            t.mptcp,
        )?;
        let p = &t.proxy;
        counters(
            e,
            "ringport_proxy_headers",
            "serve --proxy-protocol: PROXY headers read, by version (1, 2).",
            "version",
            &[("1", p.v1), ("2", p.v2)],
        )?;
        counters(
            e,
            "ringport_proxy_failures",
            "serve --proxy-protocol: connections closed for their PROXY header, by reason: not_proxy, bad, too_long, incomplete (the connection ended first), timeout (--proxy-protocol-timeout).",
            "reason",
            &[
                ("not_proxy", p.not_proxy),
                ("bad", p.bad),
                ("too_long", p.too_long),
                ("incomplete", p.incomplete),
                ("timeout", p.timeout),
            ],
        )?;
        counter(e, "ringport_accept_pauses", "Times the completion model stopped accepting at --max-connections (the clients wait in the listen backlog).", t.limit_pauses)?;
        counter(
            e,
            "ringport_accept_errors",
            "Failed accepts (the server backs off and retries).",
            t.accept_errors,
        )?;
        counter(
            e,
            "ringport_bytes_received",
            "Bytes received from clients.",
            t.bytes_in,
        )?;
        counter(
            e,
            "ringport_bytes_sent",
            "Bytes echoed back to clients.",
            t.bytes_out,
        )?;
        let k = &t.conn_error_kinds;
        counters(
            e,
            "ringport_connection_errors",
            "Connections that ended in an error, by kind: reset, broken_pipe, timed_out, operation_refused, other.",
            "kind",
            &[
                ("reset", k.reset),
                ("broken_pipe", k.broken_pipe),
                ("timed_out", k.timed_out),
                ("operation_refused", k.refused_op),
                ("other", k.other),
            ],
        )?;
        counters(
            e,
            "ringport_connections_timed_out",
            "Connections closed by a timeout: idle (--idle-timeout, no byte from the peer), write (--write-timeout, the peer not reading its echo).",
            "timeout",
            &[("idle", t.idle_closed), ("write", t.write_timeouts)],
        )?;
        counter(
            e,
            "ringport_forced_closes",
            "Connections closed by the drain timeout at shutdown with data still unechoed.",
            t.forced_closes,
        )?;
        let names: Vec<String> = (0..workers.len()).map(|i| i.to_string()).collect();
        let per = |f: fn(&Snapshot) -> u64| per_worker(&names, &workers, f);
        counters(e, "ringport_worker_loop_iterations", "Turns of each worker's loop: waits on its completion port, each one system call that submits and reaps (0 for the blocking models).", "worker", &per(|w| w.totals.waits))?;
        counters(
            e,
            "ringport_worker_completions",
            "Completions each worker reaped from its port.",
            "worker",
            &per(|w| w.totals.completions),
        )?;
        counters(
            e,
            "ringport_worker_single_receives",
            "Receives of one message each that a busy worker armed once the message's echo was out (io_uring; the others are multishot).",
            "worker",
            &per(|w| w.totals.single_receives),
        )?;
        counters(
            e,
            "ringport_worker_stale_completions",
            "Completions for a connection slot since reused: dropped, never applied.",
            "worker",
            &per(|w| w.totals.stale_completions),
        )?;
        gauges(
            e,
            "ringport_worker_connections_open",
            "Connections open on each worker.",
            "worker",
            &per(|w| w.open),
        )?;
        gauges(
            e,
            "ringport_pool_buffers",
            "Receive buffers in each worker's pool (0: no pool, the blocking models).",
            "worker",
            &per(|w| w.totals.pool_buffers),
        )?;
        gauges(
            e,
            "ringport_pool_buffers_in_use",
            "Pool buffers each worker has out now: received into, not yet echoed.",
            "worker",
            &per(|w| w.totals.pool_in_use),
        )?;
        gauges(
            e,
            "ringport_pool_buffers_in_use_peak",
            "The most pool buffers each worker has had out at once.",
            "worker",
            &per(|w| w.totals.pool_peak),
        )?;
        if let Some(u) = self.live.udp() {
            udp(e, &u)?;
        }
        Ok(())
    }
}

/// The UDP echo's counters (`--udp`, `--udp-only`): present only when the server serves UDP.
fn udp(e: &mut DescriptorEncoder<'_>, u: &UdpStats) -> fmt::Result {
    counter(
        e,
        "ringport_udp_datagrams_received",
        "Datagrams the UDP echo received, those not echoed included.",
        u.datagrams_in,
    )?;
    counter(
        e,
        "ringport_udp_datagrams_echoed",
        "Datagrams the UDP echo sent back.",
        u.datagrams_out,
    )?;
    counter(
        e,
        "ringport_udp_bytes_received",
        "Bytes of the datagrams the UDP echo received whole (a truncated datagram's are not known).",
        u.bytes_in,
    )?;
    counter(
        e,
        "ringport_udp_bytes_sent",
        "Bytes the UDP echo sent back.",
        u.bytes_out,
    )?;
    counters(
        e,
        "ringport_udp_datagrams_dropped",
        "Datagrams received and not echoed, by reason: truncated (longer than --udp-buffer-size), denied_port (from an echo-like service's port or --udp-deny-port), rate_limited (over --udp-max-pps-per-ip), table_full (a new source with the table of sources full), no_sender (the system did not report the sender), send_error (the system refused the echo).",
        "reason",
        &[
            ("truncated", u.truncated),
            ("denied_port", u.denied_port),
            ("rate_limited", u.rate_limited),
            ("table_full", u.table_full),
            ("no_sender", u.no_sender),
            ("send_error", u.send_errors),
        ],
    )?;
    counter(
        e,
        "ringport_udp_receive_errors",
        "Receives of the UDP echo that failed (an ICMP error reported on the socket, for example): no datagram.",
        u.recv_errors,
    )
}

/// `(worker, f(its snapshot))` for each worker, named by `names`.
fn per_worker<'a>(
    names: &'a [String],
    workers: &[Snapshot],
    f: fn(&Snapshot) -> u64,
) -> Vec<(&'a str, u64)> {
    names
        .iter()
        .map(String::as_str)
        .zip(workers.iter().map(f))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use ringport_server::WorkerStats;

    fn scrape(live: Live) -> String {
        let r = registry(
            live,
            ServerInfo {
                model: "completion".into(),
                backend: "io_uring".into(),
                workers: 2,
            },
        );
        let mut text = String::new();
        encode(&mut text, &r).unwrap();
        text
    }

    #[test]
    fn totals_add_the_workers_and_families_name_each() {
        let w = |accepted, open, waits| Snapshot {
            open,
            totals: WorkerStats {
                accepted,
                bytes_in: accepted * 100,
                bytes_out: accepted * 90,
                refused_per_ip: 1,
                waits,
                single_receives: waits * 3,
                pool_buffers: 4096,
                pool_in_use: 3,
                ..WorkerStats::default()
            },
        };
        let text = scrape(Live::per_worker(move || vec![w(5, 2, 40), w(7, 1, 60)]));
        for line in [
            "ringport_connections_accepted_total 12\n",
            "ringport_connections_open 3\n",
            "ringport_bytes_received_total 1200\n",
            "ringport_bytes_sent_total 1080\n",
            "ringport_connections_refused_total{reason=\"max_per_ip\"} 2\n",
            "ringport_connections_refused_total{reason=\"max_connections\"} 0\n",
            "ringport_worker_loop_iterations_total{worker=\"0\"} 40\n",
            "ringport_worker_loop_iterations_total{worker=\"1\"} 60\n",
            "ringport_worker_single_receives_total{worker=\"1\"} 180\n",
            "ringport_pool_buffers_in_use{worker=\"1\"} 3\n",
            "ringport_server_info{version=\"",
            "model=\"completion\",backend=\"io_uring\",workers=\"2\"} 1\n",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
        // Every family is described.
        for name in text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap())
        {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}: no help");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn the_udp_families_are_there_only_when_the_server_serves_udp() {
        let tcp = || Snapshot::default();
        let text = scrape(Live::new(tcp));
        assert!(!text.contains("ringport_udp_"), "{text}");
        let u = UdpStats {
            datagrams_in: 20,
            datagrams_out: 11,
            bytes_in: 1900,
            bytes_out: 1100,
            truncated: 1,
            denied_port: 2,
            rate_limited: 3,
            table_full: 4,
            no_sender: 5,
            send_errors: 6,
            recv_errors: 7,
            ..UdpStats::default()
        };
        let text = scrape(Live::new(tcp).with_udp(move || u));
        for line in [
            "ringport_udp_datagrams_received_total 20\n",
            "ringport_udp_datagrams_echoed_total 11\n",
            "ringport_udp_bytes_received_total 1900\n",
            "ringport_udp_bytes_sent_total 1100\n",
            "ringport_udp_datagrams_dropped_total{reason=\"truncated\"} 1\n",
            "ringport_udp_datagrams_dropped_total{reason=\"denied_port\"} 2\n",
            "ringport_udp_datagrams_dropped_total{reason=\"rate_limited\"} 3\n",
            "ringport_udp_datagrams_dropped_total{reason=\"table_full\"} 4\n",
            "ringport_udp_datagrams_dropped_total{reason=\"no_sender\"} 5\n",
            "ringport_udp_datagrams_dropped_total{reason=\"send_error\"} 6\n",
            "ringport_udp_receive_errors_total 7\n",
            "# TYPE ringport_udp_datagrams_dropped counter\n",
            "# HELP ringport_udp_datagrams_echoed ",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn a_blocking_model_is_one_worker() {
        let text = scrape(Live::new(|| Snapshot {
            open: 4,
            totals: WorkerStats {
                accepted: 9,
                ..WorkerStats::default()
            },
        }));
        assert!(text.contains("ringport_connections_open 4\n"), "{text}");
        assert!(
            text.contains("ringport_worker_connections_open{worker=\"0\"} 4\n"),
            "{text}"
        );
        assert!(!text.contains("worker=\"1\""), "{text}");
    }
}
