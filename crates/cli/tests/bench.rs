//! `ringport bench` end to end: short runs of the real binary that write every output, and the
//! external `--server` path against a small echo server written in Python.
//!
//! Timings are never asserted: only that every run happened, every file was written and
//! parses, and the figures are there.

// Linux only: `bench` needs Linux (/proc figures, SIGTERM to its servers, CPU pinning) and
// refuses to run on Windows.
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ringport_bench::export::json;
use ringport_bench::results::{BenchResults, WarningKind};

/// A fresh, empty directory under the system's temporary directory.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringport-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs `ringport bench ARGS --out DIR` and returns its output, panicking unless it exits 0.
#[track_caller]
fn bench(out: &Path, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_ringport"))
        .arg("bench")
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .expect("running ringport bench");
    assert!(
        output.status.success(),
        "ringport bench {args:?} failed: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Checks every file of `dir` is written and parses; returns the results.
#[track_caller]
fn check_outputs(dir: &Path, sizes: &[usize]) -> BenchResults {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("{name} was not written: {e}"))
    };
    let results = json::from_str(&read("results.json")).expect("results.json parses");
    let csv = read("results.csv");
    let mut lines = csv.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("design,size_bytes,connections,"));
    assert_eq!(lines.count(), results.points.len(), "one CSV row per point");
    assert!(read("results.md").contains("| size | conns | design | msgs/s |"));
    for size in sizes {
        for chart in [
            format!("throughput-{size}B.svg"),
            format!("p99-{size}B.svg"),
            format!("server-cpu-{size}B.svg"),
        ] {
            let svg = read(&chart);
            assert!(
                svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
                "{chart}"
            );
            for d in &results.designs {
                assert!(svg.contains(&d.name), "{chart} has no line for {}", d.name);
            }
        }
    }
    results
}

#[track_caller]
fn check_point(results: &BenchResults, design: &str, connections: usize) {
    check_point_of(results, design, 64, connections);
}

/// The server CPU a design's points add up to: more than nothing. (One short point can read 0
/// from /proc's 10 ms ticks on a busy machine; a whole sweep cannot.)
fn check_cpu_counted(results: &BenchResults, design: &str) {
    let cpu: f64 = results
        .points
        .iter()
        .filter(|p| p.design == design)
        .map(|p| p.median.server_user_s + p.median.server_sys_s)
        .sum();
    assert!(cpu > 0.0, "{design}: no server CPU counted: {results:#?}");
}

#[track_caller]
fn check_point_of(results: &BenchResults, design: &str, size: usize, connections: usize) {
    let p = results.point(design, size, connections).unwrap_or_else(|| {
        panic!("no point for {design} at {size} B x {connections}: {results:#?}")
    });
    assert_eq!(p.rounds.len(), 1);
    let m = &p.median;
    assert_eq!(m.errors, 0, "{design} x {connections}: {m:?}");
    assert!(m.messages > 0 && m.msgs_per_s > 0.0, "{m:?}");
    assert!(m.p50_us <= m.p99_us && m.p99_us <= m.p999_us, "{m:?}");
    assert!(m.server_peak_rss_kib > 0, "{m:?}");
    assert!(m.server_user_s >= 0.0 && m.server_sys_s >= 0.0, "{m:?}");
    // A client-bound point is never the best, and its ratio to the best may exceed 1.
    assert!(
        p.ratio_to_best > 0.0 && (p.ratio_to_best <= 1.0 || p.client_bound),
        "{p:?}"
    );
}

#[test]
fn two_designs_two_points_write_every_file() {
    let dir = temp_dir("builtin");
    let out = bench(
        &dir,
        &[
            "--designs",
            "completion-epoll,threaded",
            "--connections",
            "1,4",
            "--size",
            "64",
            "--duration",
            "1",
            "--warmup",
            "0",
            "--repeat",
            "1",
            "--client-threads",
            "1",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("## 64 B messages"), "{stdout}");
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("| 64 B |") && l.contains("| completion-epoll |"))
            .count(),
        2,
        "{stdout}"
    );
    let results = check_outputs(&dir, &[64]);
    assert_eq!(results.points.len(), 4);
    for design in ["completion-epoll", "threaded"] {
        for c in [1, 4] {
            check_point(&results, design, c);
        }
        check_cpu_counted(&results, design);
        assert_eq!(
            results.design(design).unwrap().max_clean_connections,
            Some(4)
        );
    }
    // What each server's ready line said it runs on.
    let epoll = results.design("completion-epoll").unwrap();
    assert!(
        epoll.backend.as_deref().unwrap_or("").starts_with("epoll"),
        "{epoll:?}"
    );
    let threaded = results.design("threaded").unwrap();
    assert_eq!(
        threaded.backend.as_deref(),
        Some("blocking sockets"),
        "{threaded:?}"
    );
    assert!(!results.environment.kernel.is_empty());
    assert!(results
        .warnings
        .iter()
        .any(|w| w.kind == WarningKind::TooShort));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn quick_includes_a_bulk_point() {
    let dir = temp_dir("quick");
    // The preset's points and pinning, shortened, on two designs that run everywhere.
    let out = bench(
        &dir,
        &[
            "--quick",
            "--designs",
            "completion-epoll,threaded",
            "--duration",
            "0.5",
            "--warmup",
            "0",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("## 64 B messages"), "{stdout}");
    assert!(stdout.contains("## 64 KiB messages"), "{stdout}");
    assert!(
        stdout.contains("| 64 KiB | 10 | completion-epoll |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("- sweep: 64 B messages x 1, 10, 100 connections; and 64 KiB x 10"),
        "{stdout}"
    );
    let results = check_outputs(&dir, &[64, 65536]);
    assert!(results.settings.quick);
    assert_eq!(results.settings.sizes, [64]);
    assert_eq!(results.settings.extra_points.len(), 1);
    assert_eq!(results.settings.extra_points[0].size, 65536);
    assert_eq!(results.settings.extra_points[0].connections, 10);
    assert_eq!(results.points.len(), 2 * 4, "{results:#?}");
    for design in ["completion-epoll", "threaded"] {
        for c in [1, 10, 100] {
            check_point_of(&results, design, 64, c);
        }
        check_point_of(&results, design, 65536, 10);
        check_cpu_counted(&results, design);
    }
    let csv = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    assert!(
        csv.lines().any(|l| l.starts_with("threaded,65536,10,")),
        "{csv}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The runs a `--dry-run` listing announces on its last line, and the runs its own lines add up
/// to: every design listed at a point (and at the churn point) once per round.
#[track_caller]
fn runs_announced_and_listed(dry_run: &str) -> (usize, usize) {
    let (list, total) = dry_run
        .trim_end()
        .rsplit_once('\n')
        .unwrap_or_else(|| panic!("no total line: {dry_run}"));
    let number = |text: &str, after: &str| -> usize {
        let (n, _) = text
            .split_once(after)
            .unwrap_or_else(|| panic!("{after:?} in {text:?}"));
        let n = n.rsplit(|c: char| !c.is_ascii_digit()).next().unwrap_or(n);
        n.parse()
            .unwrap_or_else(|e| panic!("{n:?} in {text:?}: {e}"))
    };
    let announced = number(total, " runs (");
    let rounds = number(total, " round(s)");
    let designs: usize = list
        .lines()
        .map(|l| {
            let (_, designs) = l.rsplit_once(": ").unwrap_or_else(|| panic!("{l:?}"));
            designs.split(", ").count()
        })
        .sum();
    (announced, designs * rounds)
}

#[test]
fn dry_run_lists_the_default_sweep_and_the_quick_points() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_ringport"))
            .arg("bench")
            .args(args)
            .arg("--dry-run")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let full = run(&[]);
    let points: Vec<&str> = full
        .lines()
        .filter(|l| !l.contains(" runs ") && !l.starts_with("churn: "))
        .filter_map(|l| l.split_once(": ").map(|(p, _)| p))
        .collect();
    let mut expected = Vec::new();
    for size in ["64 B", "4 KiB", "64 KiB"] {
        for c in [1, 10, 100, 1000] {
            expected.push(format!("{size} x {c}"));
        }
    }
    assert_eq!(points, expected, "{full}");
    assert!(
        full.contains("64 KiB x 1: completion-uring, completion-epoll, threaded, single\n"),
        "{full}"
    );
    let (announced, listed) = runs_announced_and_listed(&full);
    assert_eq!(announced, listed, "{full}");
    assert!(
        full.contains("churn: 10 connections x 10 round trips of 64 B each, 5.0 s after 1.0 s of warm-up: completion-uring, completion-epoll, threaded\n"),
        "{full}"
    );
    let quick = run(&["--quick"]);
    assert_eq!(
        quick.lines().count(),
        6,
        "four points, the churn point and the total:\n{quick}"
    );
    assert!(
        quick.contains("64 KiB x 10: completion-uring, completion-epoll, threaded\n"),
        "{quick}"
    );
    let (announced, listed) = runs_announced_and_listed(&quick);
    assert_eq!(announced, listed, "{quick}");
    assert!(
        quick.contains("churn: 10 connections x 10 round trips of 64 B each, 1.0 s after 0.0 s"),
        "{quick}"
    );
    assert!(!run(&["--quick", "--no-churn"]).contains("churn"));
    let narrowed = run(&["--quick", "--size", "64"]);
    assert!(
        !narrowed.contains("KiB"),
        "--size replaces the preset's points: {narrowed}"
    );
}

/// A threaded echo server in Python: one thread per client, echoing until the client closes.
const PY_ECHO: &str = r#"mine=python3 -c '
import socket, socketserver, sys
class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer.daemon_threads = True
socketserver.ThreadingTCPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
' {port}"#;

#[test]
fn external_server_is_measured_beside_ringport() {
    let dir = temp_dir("external");
    bench(
        &dir,
        &[
            "--designs",
            "single",
            "--server",
            PY_ECHO,
            "--connections",
            "1,2",
            "--size",
            "64",
            "--duration",
            "1",
            "--warmup",
            "0",
            "--repeat",
            "1",
            "--client-threads",
            "1",
        ],
    );
    let results = check_outputs(&dir, &[64]);
    check_point(&results, "mine", 1);
    check_point(&results, "mine", 2);
    check_point(&results, "single", 1);
    check_cpu_counted(&results, "mine");
    check_cpu_counted(&results, "single");
    assert!(
        results.point("single", 64, 2).is_none(),
        "single runs at one connection only"
    );
    let mine = results.design("mine").unwrap();
    assert_eq!(mine.kind, "external");
    assert!(mine.command.starts_with("python3 -c"), "{mine:?}");
    assert!(results
        .warnings
        .iter()
        .any(|w| w.kind == WarningKind::SingleLimited));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_server_values_are_one_line_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_ringport"))
        .args(["bench", "--server", "mine=python3 echo.py"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("{port}"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_ringport"))
        .args(["bench", "--designs", "fastest"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown design `fastest`"));
}

/// Issue 14, item 8: `bench --out /proc/nope` failed after the whole run, with the cause
/// printed twice. It fails before running anything, on one line, the cause once.
#[test]
fn an_unwritable_out_dir_fails_before_the_run() {
    let output = Command::new(env!("CARGO_BIN_EXE_ringport"))
        .args([
            "bench",
            "--designs",
            "threaded",
            "--connections",
            "1",
            "--size",
            "64",
        ])
        .args(["--duration", "1", "--warmup", "0", "--repeat", "1"])
        .args(["--out", "/proc/ringport-nope"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(output.stdout.is_empty(), "the run went ahead: {err}");
    assert!(err.contains("/proc/ringport-nope"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert_eq!(err.matches("os error").count(), 1, "the cause once: {err}");
}

/// Ctrl-C on `bench` left an empty output directory: the runs done are reported and written,
/// with a warning saying the results are partial, and the exit code is 130.
#[test]
fn ctrl_c_writes_the_runs_done() {
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};
    let dir = temp_dir("ctrl-c");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringport"))
        .args(["bench", "--designs", "threaded", "--size", "64"])
        .args(["--connections", "1,2", "--repeat", "3", "--no-churn"])
        .args(["--duration", "1", "--warmup", "0", "--client-threads", "1"])
        .arg("--out")
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running ringport bench");
    let pid = child.id().to_string();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with("[  1/") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    // After the first of its 6 runs.
    let first = rx.recv_timeout(Duration::from_secs(60));
    let _ = Command::new("kill").args(["-INT", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("bench did not stop within 60 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    let err = reader.join().unwrap();
    assert!(first.is_ok(), "no first run within 60 s: {err}");
    assert_eq!(status.code(), Some(130), "{err}");
    let results = check_outputs(&dir, &[64]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!results.points.is_empty(), "the run done is in the results");
    let partial = results
        .warnings
        .iter()
        .find(|w| w.kind == WarningKind::Interrupted)
        .unwrap_or_else(|| panic!("no interrupted warning: {:?}", results.warnings));
    assert!(
        partial.message.contains(" of 6 runs"),
        "{}",
        partial.message
    );
    assert!(stdout.contains("interrupted after"), "{stdout}");
}
