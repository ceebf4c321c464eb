//! From runs to results: medians over rounds, ratios to the best design, the largest clean
//! connection count, and the warnings the numbers call for.
//!
//! Everything here is a pure function of measured [`Figures`], so it is tested on fixed numbers.

use crate::median::Rounds;
use crate::results::{
    size_label, DesignInfo, Figures, PointResult, Settings, Warning, WarningKind,
};

/// Client threads at or above this share of a core make a point client-bound.
pub const CLIENT_BOUND_PCT: f64 = 90.0;
/// Rounds whose round trips per second differ by more than this fraction of the median make a
/// point noisy.
pub const HIGH_SPREAD: f64 = 0.10;
/// A measured window shorter than this is too short for stable figures.
pub const MIN_DURATION_S: f64 = 2.0;
/// Other programs using more than this share of one CPU during a run make its figures noisy.
pub const BUSY_OTHERS_PCT: f64 = 20.0;
/// Fewer verified round trips than this in a window is too few for a p99.9.
pub const MIN_MESSAGES: u64 = 10_000;

/// The figure-by-figure median of `rounds` (see [`median`](crate::median)); errors are the
/// largest count of any round.
pub fn median_figures(rounds: &[Figures]) -> Figures {
    let r = Rounds(rounds);
    Figures {
        msgs_per_s: r.median(|r| r.msgs_per_s),
        messages: r.median_count(|r| r.messages),
        measured_s: r.median(|r| r.measured_s),
        p50_us: r.median_count(|r| r.p50_us),
        p99_us: r.median_count(|r| r.p99_us),
        p999_us: r.median_count(|r| r.p999_us),
        server_user_s: r.median(|r| r.server_user_s),
        server_sys_s: r.median(|r| r.server_sys_s),
        server_cpu_us_per_msg: r.median_of_some(|r| r.server_cpu_us_per_msg),
        server_peak_rss_kib: r.median_count(|r| r.server_peak_rss_kib),
        client_cpu_pct: r.median(|r| r.client_cpu_pct),
        client_cpu_max_thread_pct: r.median(|r| r.client_cpu_max_thread_pct),
        errors: r.max(|r| r.errors),
        others_cpu_pct: r.median(|r| r.others_cpu_pct),
    }
}

/// Whether `f` was client-bound: its busiest load thread at [`CLIENT_BOUND_PCT`] of a core or
/// more.
pub fn is_client_bound(f: &Figures) -> bool {
    f.client_cpu_max_thread_pct >= CLIENT_BOUND_PCT
}

/// One design at one point with its rounds, before ratios are known.
fn point(design: &str, size: usize, connections: usize, rounds: Vec<Figures>) -> PointResult {
    let median = median_figures(&rounds);
    let client_bound = is_client_bound(&median);
    let rates: Vec<f64> = rounds.iter().map(|r| r.msgs_per_s).collect();
    let spread = if rounds.len() > 1 && median.msgs_per_s > 0.0 {
        let max = rates.iter().cloned().fold(f64::MIN, f64::max);
        let min = rates.iter().cloned().fold(f64::MAX, f64::min);
        (max - min) / median.msgs_per_s
    } else {
        0.0
    };
    PointResult {
        design: design.to_string(),
        size,
        connections,
        median,
        ratio_to_best: 0.0,
        client_bound,
        cpu_ratio_to_best: None,
        spread,
        rounds,
    }
}

/// One measured run, as the runner records it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// The design's name.
    pub design: String,
    /// Message size.
    pub size: usize,
    /// Connections.
    pub connections: usize,
    /// What it measured.
    pub figures: Figures,
}

/// Groups `runs` into points (in first-seen order), takes medians, and sets the ratios to the
/// best design at each (size, connections): for throughput, the best among the points that were
/// not client-bound (a client-bound figure is the load generator's, so it is never the best);
/// among all when every design there was client-bound.
pub fn points(runs: &[RunRecord]) -> Vec<PointResult> {
    let mut out: Vec<PointResult> = Vec::new();
    let mut keys: Vec<(String, usize, usize)> = Vec::new();
    for r in runs {
        let key = (r.design.clone(), r.size, r.connections);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    for (design, size, connections) in keys {
        let rounds = runs
            .iter()
            .filter(|r| r.design == design && r.size == size && r.connections == connections)
            .map(|r| r.figures.clone())
            .collect();
        out.push(point(&design, size, connections, rounds));
    }
    let snapshot = out.clone();
    for p in &mut out {
        let peers = snapshot
            .iter()
            .filter(|q| q.size == p.size && q.connections == p.connections);
        let trusted = peers
            .clone()
            .filter(|q| !q.client_bound)
            .map(|q| q.median.msgs_per_s)
            .fold(0.0, f64::max);
        let best = if peers.clone().any(|q| !q.client_bound) {
            trusted
        } else {
            peers
                .clone()
                .map(|q| q.median.msgs_per_s)
                .fold(0.0, f64::max)
        };
        p.ratio_to_best = if best > 0.0 {
            p.median.msgs_per_s / best
        } else {
            0.0
        };
        let least_cpu = peers
            .filter_map(|q| q.median.server_cpu_us_per_msg)
            .filter(|&c| c > 0.0)
            .fold(f64::INFINITY, f64::min);
        p.cpu_ratio_to_best = p
            .median
            .server_cpu_us_per_msg
            .filter(|_| least_cpu.is_finite())
            .map(|c| c / least_cpu);
    }
    out
}

/// The largest connection count at which `design` ran every round of every size with no error
/// and at least one verified round trip.
pub fn max_clean_connections(points: &[PointResult], design: &str) -> Option<usize> {
    let mine: Vec<&PointResult> = points.iter().filter(|p| p.design == design).collect();
    mine.iter()
        .map(|p| p.connections)
        .filter(|&c| {
            mine.iter()
                .filter(|p| p.connections == c)
                .all(|p| p.rounds.iter().all(|r| r.errors == 0 && r.messages > 0))
        })
        .max()
}

/// Fills each design's [`DesignInfo::max_clean_connections`].
pub fn set_capacity(designs: &mut [DesignInfo], points: &[PointResult]) {
    for d in designs {
        d.max_clean_connections = max_clean_connections(points, &d.name);
    }
}

fn at(p: &PointResult) -> String {
    format!("{} x {}", size_label(p.size), p.connections)
}

fn list(points: &[&PointResult]) -> String {
    points.iter().map(|p| at(p)).collect::<Vec<_>>().join(", ")
}

/// `a (64 B x 10, 64 B x 100); b (64 B x 100)`: each design's points that `pick` selects, for
/// the designs that have any.
fn by_design(
    designs: &[DesignInfo],
    points: &[PointResult],
    pick: impl Fn(&PointResult) -> bool,
) -> Option<String> {
    let parts: Vec<String> = designs
        .iter()
        .filter_map(|d| {
            let mine: Vec<&PointResult> = points
                .iter()
                .filter(|p| p.design == d.name && pick(p))
                .collect();
            (!mine.is_empty()).then(|| format!("{} ({})", d.name, list(&mine)))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// One warning for every client-bound point of the run, naming each design's points: the
/// remedy is the same for all of them.
fn client_bound_warning(designs: &[DesignInfo], points: &[PointResult]) -> Option<Warning> {
    let which = by_design(designs, points, |p| p.client_bound)?;
    let peak = points
        .iter()
        .filter(|p| p.client_bound)
        .map(|p| p.median.client_cpu_max_thread_pct)
        .fold(0.0, f64::max);
    Some(Warning {
        kind: WarningKind::ClientBound,
        design: None,
        message: format!(
            "client-bound (a load thread at {CLIENT_BOUND_PCT:.0}% or more of a core, up to \
             {peak:.0}%) at: {which}. Throughput there is the load generator's limit, not the \
             server's: those rows are marked †, their ratio is a lower bound and never the best; \
             compare server CPU per round trip (server µs/msg, charted in server-cpu-*.svg) instead, or \
             give the load more cores (--client-threads, unpinned)"
        ),
    })
}

/// One warning for every point during which other programs took a noticeable share of a CPU.
fn noise_warning(designs: &[DesignInfo], points: &[PointResult]) -> Option<Warning> {
    let disturbed = |p: &PointResult| p.rounds.iter().any(|r| r.others_cpu_pct > BUSY_OTHERS_PCT);
    let which = by_design(designs, points, disturbed)?;
    let worst = points
        .iter()
        .filter(|p| disturbed(p))
        .flat_map(|p| p.rounds.iter())
        .map(|r| r.others_cpu_pct)
        .fold(0.0, f64::max);
    Some(Warning {
        kind: WarningKind::Noise,
        design: None,
        message: format!(
            "other programs used up to {worst:.0}% of a CPU while these were measured: {which}. \
             They took CPU from the server or the load, so those figures are low and noisy; \
             rerun on a quiet machine"
        ),
    })
}

/// The warnings the figures call for: client-bound points, errors, high spread between rounds,
/// a short window or few samples, and each design's limit ([`DesignInfo::note`], such as the
/// single model's one connection).
pub fn warnings(
    settings: &Settings,
    designs: &[DesignInfo],
    points: &[PointResult],
) -> Vec<Warning> {
    let mut out = Vec::new();
    if settings.duration_s < MIN_DURATION_S {
        out.push(Warning {
            kind: WarningKind::TooShort,
            design: None,
            message: format!(
                "each point was measured for {:.1} s: short windows are at the mercy of a single \
                 hiccup (a timer tick, another process); use --duration {MIN_DURATION_S:.0} or \
                 more for figures you quote",
                settings.duration_s
            ),
        });
    }
    if settings.repeat == 1 {
        out.push(Warning {
            kind: WarningKind::TooShort,
            design: None,
            message: "one round per point: nothing tells a real difference from noise; use \
                      --repeat 3 or more for figures you quote (the median is reported)"
                .to_string(),
        });
    }
    out.extend(client_bound_warning(designs, points));
    out.extend(noise_warning(designs, points));
    for d in designs {
        let mine: Vec<&PointResult> = points.iter().filter(|p| p.design == d.name).collect();
        let failed: Vec<&PointResult> = mine
            .iter()
            .copied()
            .filter(|p| p.median.errors > 0)
            .collect();
        if !failed.is_empty() {
            let total: u64 = failed
                .iter()
                .flat_map(|p| p.rounds.iter())
                .map(|r| r.errors)
                .sum();
            out.push(Warning {
                kind: WarningKind::Errors,
                design: Some(d.name.clone()),
                message: format!(
                    "{}: {total} errors at {} (wrong or missing echoes, resets, timeouts or \
                     refused connections): figures there count only verified round trips; run \
                     `ringport stress` against it at that point to see the first error",
                    d.name,
                    list(&failed)
                ),
            });
        }
        let noisy: Vec<&PointResult> = mine
            .iter()
            .copied()
            .filter(|p| p.spread > HIGH_SPREAD)
            .collect();
        if !noisy.is_empty() {
            let worst = noisy.iter().map(|p| p.spread).fold(0.0, f64::max);
            out.push(Warning {
                kind: WarningKind::HighVariance,
                design: Some(d.name.clone()),
                message: format!(
                    "{}: rounds differ by up to {:.0}% of the median at {}: the machine is \
                     noisy; close other work, use --pin, or raise --duration and --repeat",
                    d.name,
                    worst * 100.0,
                    list(&noisy)
                ),
            });
        }
        let thin: Vec<&PointResult> = mine
            .iter()
            .copied()
            .filter(|p| p.median.messages > 0 && p.median.messages < MIN_MESSAGES)
            .collect();
        if !thin.is_empty() {
            out.push(Warning {
                kind: WarningKind::TooShort,
                design: Some(d.name.clone()),
                message: format!(
                    "{}: fewer than {MIN_MESSAGES} round trips at {}: the p99.9 there rests on \
                     a handful of samples; raise --duration",
                    d.name,
                    list(&thin)
                ),
            });
        }
        if let Some(note) = &d.note {
            out.push(Warning {
                kind: WarningKind::SingleLimited,
                design: Some(d.name.clone()),
                message: format!("{}: {note}", d.name),
            });
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn figures(msgs_per_s: f64, errors: u64) -> Figures {
        Figures {
            msgs_per_s,
            messages: (msgs_per_s * 2.0) as u64,
            measured_s: 2.0,
            p50_us: 10,
            p99_us: 40,
            p999_us: 90,
            server_user_s: 0.2,
            server_sys_s: 1.6,
            server_cpu_us_per_msg: Some(1.8e6 / (msgs_per_s * 2.0)),
            server_peak_rss_kib: 4096,
            client_cpu_pct: 50.0,
            client_cpu_max_thread_pct: 50.0,
            errors,
            others_cpu_pct: 0.0,
        }
    }

    fn rec(design: &str, conns: usize, f: Figures) -> RunRecord {
        RunRecord {
            design: design.into(),
            size: 64,
            connections: conns,
            figures: f,
        }
    }

    #[test]
    fn medians() {
        let m = median_figures(&[figures(100.0, 0), figures(300.0, 2), figures(200.0, 0)]);
        assert_eq!(m.msgs_per_s, 200.0);
        assert_eq!(m.errors, 2, "errors are never hidden by the median");
    }

    #[test]
    fn ratios_are_to_the_best_at_each_point() {
        let runs = [
            rec("a", 10, figures(100_000.0, 0)),
            rec("b", 10, figures(50_000.0, 0)),
            rec("a", 100, figures(80_000.0, 0)),
            rec("b", 100, figures(160_000.0, 0)),
        ];
        let p = points(&runs);
        assert_eq!(p.len(), 4);
        assert_eq!(p[0].ratio_to_best, 1.0);
        assert_eq!(p[1].ratio_to_best, 0.5);
        assert_eq!(p[2].ratio_to_best, 0.5);
        assert_eq!(p[1].cpu_ratio_to_best, Some(2.0));
        assert_eq!(p[3].cpu_ratio_to_best, Some(1.0));
    }

    #[test]
    fn spread_and_capacity() {
        let runs = [
            rec("a", 1, figures(100.0, 0)),
            rec("a", 1, figures(150.0, 0)),
            rec("a", 10, figures(100.0, 0)),
            rec("a", 10, figures(100.0, 3)),
            rec("b", 1, figures(100.0, 0)),
        ];
        let p = points(&runs);
        assert!((p[0].spread - 50.0 / 125.0).abs() < 1e-9);
        assert_eq!(max_clean_connections(&p, "a"), Some(1));
        assert_eq!(max_clean_connections(&p, "b"), Some(1));
        assert_eq!(max_clean_connections(&p, "c"), None);
    }

    fn settings(duration_s: f64, repeat: usize) -> Settings {
        Settings {
            connections: vec![1, 10],
            sizes: vec![64],
            extra_points: Vec::new(),
            duration_s,
            warmup_s: 0.0,
            repeat,
            pinned: true,
            server_threads: Some(1),
            client_threads: 1,
            pipeline: 1,
            quick: false,
            churn: None,
        }
    }

    fn info(name: &str, note: Option<&str>) -> DesignInfo {
        DesignInfo {
            name: name.into(),
            kind: "ringport".into(),
            command: String::new(),
            backend: None,
            note: note.map(String::from),
            max_clean_connections: None,
        }
    }

    #[test]
    fn warnings_explain() {
        let mut busy = figures(100_000.0, 0);
        busy.client_cpu_max_thread_pct = 99.0;
        busy.others_cpu_pct = 60.0;
        let runs = [
            rec("a", 10, busy.clone()),
            rec("a", 10, figures(50_000.0, 0)),
            rec("a", 10, busy),
            rec("single", 1, figures(1000.0, 5)),
        ];
        let p = points(&runs);
        let d = [info("a", None), info("single", Some("1 connection only"))];
        let w = warnings(&settings(1.0, 3), &d, &p);
        let kinds: Vec<WarningKind> = w.iter().map(|w| w.kind).collect();
        for k in [
            WarningKind::TooShort,
            WarningKind::ClientBound,
            WarningKind::HighVariance,
            WarningKind::Errors,
            WarningKind::SingleLimited,
            WarningKind::Noise,
        ] {
            assert!(kinds.contains(&k), "{k:?} missing from {w:#?}");
        }
        assert!(
            w.iter().all(|w| !w.message.contains("  ")),
            "messages are single-spaced: {w:#?}"
        );
        let cb = w
            .iter()
            .find(|w| w.kind == WarningKind::ClientBound)
            .unwrap();
        assert!(
            cb.message.contains("64 B x 10") && cb.message.contains("99%"),
            "{}",
            cb.message
        );
        assert!(warnings(&settings(5.0, 3), &d[..1], &points(&runs[1..2])).is_empty());
    }

    fn bound(msgs_per_s: f64, thread_pct: f64) -> Figures {
        let mut f = figures(msgs_per_s, 0);
        f.client_cpu_max_thread_pct = thread_pct;
        f
    }

    /// Issue 14: three designs client-bound gave three near-identical warnings; now one names
    /// every design and point.
    #[test]
    fn client_bound_points_make_one_warning_naming_each() {
        let runs = [
            rec("a", 10, bound(100_000.0, 95.0)),
            rec("b", 10, bound(90_000.0, 92.0)),
            rec("a", 100, bound(120_000.0, 99.0)),
            rec("c", 100, bound(60_000.0, 50.0)),
        ];
        let p = points(&runs);
        let d = [info("a", None), info("b", None), info("c", None)];
        let w = warnings(&settings(5.0, 3), &d, &p);
        let cb: Vec<&Warning> = w
            .iter()
            .filter(|w| w.kind == WarningKind::ClientBound)
            .collect();
        assert_eq!(cb.len(), 1, "{w:#?}");
        let m = &cb[0].message;
        assert!(
            m.contains("a (64 B x 10, 64 B x 100); b (64 B x 10)"),
            "{m}"
        );
        assert!(!m.contains("c ("), "c was not client-bound: {m}");
        assert!(m.contains("up to 99%") && m.contains("µs/msg"), "{m}");
        assert_eq!(cb[0].design, None);
    }

    /// Issue 14: the best throughput is never a client-bound point's (its figure is the load
    /// generator's); it is the best among the others, and a client-bound point's ratio to it
    /// may exceed 1.
    #[test]
    fn best_throughput_is_among_points_not_client_bound() {
        let runs = [
            rec("a", 100, bound(120_000.0, 95.0)),
            rec("b", 100, bound(100_000.0, 60.0)),
            rec("c", 100, bound(50_000.0, 40.0)),
            rec("a", 10, bound(80_000.0, 95.0)),
            rec("b", 10, bound(40_000.0, 92.0)),
        ];
        let p = points(&runs);
        assert!(p[0].client_bound && !p[1].client_bound && !p[2].client_bound);
        assert_eq!(p[1].ratio_to_best, 1.0);
        assert_eq!(p[2].ratio_to_best, 0.5);
        assert!(
            (p[0].ratio_to_best - 1.2).abs() < 1e-9,
            "{}",
            p[0].ratio_to_best
        );
        // Every design client-bound: the best of them all, as before.
        assert_eq!(p[3].ratio_to_best, 1.0);
        assert_eq!(p[4].ratio_to_best, 0.5);
    }

    #[test]
    fn noise_is_one_warning_naming_each_design() {
        let mut busy = figures(1000.0, 0);
        busy.others_cpu_pct = 80.0;
        let runs = [rec("a", 10, busy.clone()), rec("b", 1, busy)];
        let d = [info("a", None), info("b", None)];
        let w = warnings(&settings(5.0, 3), &d, &points(&runs));
        let noise: Vec<&Warning> = w.iter().filter(|w| w.kind == WarningKind::Noise).collect();
        assert_eq!(noise.len(), 1, "{w:#?}");
        assert!(
            noise[0].message.contains("a (64 B x 10); b (64 B x 1)"),
            "{}",
            noise[0].message
        );
    }
}
