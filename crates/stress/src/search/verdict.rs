//! Each probe's verdict: a run's report judged against the latency targets (and with `--udp
//! --max-loss`, the loss target), the client-bound check and wrong bytes ([`judge`]).

use ringport_report::search::{LatencyTarget, Phase, Probe, Verdict};

use crate::error::ErrorKind;
use crate::measure::cpu::CLIENT_BOUND_THRESHOLD;
use crate::report::{StressReport, RATE_SHORTFALL};

/// Judges the report of a run at `rate` against `targets`: the probe it makes.
pub fn judge(phase: Phase, rate: f64, r: &StressReport, targets: &[LatencyTarget]) -> Probe {
    let sent = r.sent_per_s.unwrap_or(0.0);
    let cpu = r.client_cpu_pct.iter().cloned().fold(0.0, f64::max);
    let missed: Vec<String> = targets
        .iter()
        .filter(|t| t.quantile.of(&r.latency_us) > t.limit_us)
        .map(|t| {
            format!(
                "{} {}us > {}us",
                t.quantile.name(),
                t.quantile.of(&r.latency_us),
                t.limit_us
            )
        })
        .collect();
    let wrong =
        r.errors_by_kind.get(ErrorKind::Mismatch) + r.errors_by_kind.get(ErrorKind::ShortEcho);
    let (verdict, reason) = if wrong > 0 {
        (
            Verdict::WrongBytes,
            format!(
                "the server echoed wrong bytes: {}",
                r.first_error.as_ref().map_or_else(
                    || format!("{wrong} errors"),
                    |e| format!("connection {}: {}", e.connection, e.detail)
                )
            ),
        )
    } else if sent < rate * RATE_SHORTFALL {
        (
            Verdict::ClientBound,
            format!(
                "client-bound: sent {sent:.0} of {rate:.0} msg/s ({:.0}%)",
                100.0 * sent / rate
            ),
        )
    } else if cpu >= CLIENT_BOUND_THRESHOLD * 100.0 {
        (
            Verdict::ClientBound,
            format!("client-bound: a client thread was {cpu:.0}% busy"),
        )
    } else if r.errors > 0 {
        let kinds: Vec<String> = r
            .errors_by_kind
            .nonzero()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        (
            Verdict::Errors,
            format!("{} errors ({})", r.errors, kinds.join(", ")),
        )
    } else if r.messages == 0 {
        (Verdict::Errors, "nothing was verified".to_string())
    } else if r.loss_exceeded() {
        let loss = r.datagrams.map_or(0.0, |d| d.loss_pct());
        (
            Verdict::Fail,
            format!("loss {loss:.3}% > {}%", r.max_loss_pct.unwrap_or_default()),
        )
    } else if !missed.is_empty() {
        (Verdict::Fail, missed.join(", "))
    } else {
        let mut held: Vec<String> = targets
            .iter()
            .map(|t| {
                format!(
                    "{} {}us <= {}us",
                    t.quantile.name(),
                    t.quantile.of(&r.latency_us),
                    t.limit_us
                )
            })
            .collect();
        if let (Some(max), Some(d)) = (r.max_loss_pct, r.datagrams) {
            held.push(format!("loss {:.3}% <= {max}%", d.loss_pct()));
        }
        (Verdict::Pass, held.join(", "))
    };
    Probe {
        phase,
        rate,
        sent_per_s: sent,
        msgs_per_s: r.msgs_per_s,
        latency_us: r.latency_us,
        errors: r.errors,
        client_cpu_max_pct: cpu,
        verdict,
        reason,
    }
}
