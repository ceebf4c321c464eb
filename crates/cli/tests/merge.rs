//! Load from many processes, merged exactly: `stress --segment I/N --start-at`, `--hdr-log` and
//! `ringport merge`. On loopback, three agents against one server stand in for three client
//! hosts; on test hosts (`support::netns`), three client hosts load one server host.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
#[cfg(target_os = "linux")]
use support::netns::Hosts;
use support::*;

/// A scratch directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("ringport-merge-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, file: &str) -> String {
        self.0.join(file).display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn stress_agent(args: &[&str]) -> Child {
    bin()
        .arg("stress")
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ringport stress")
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("run ringport")
}

#[track_caller]
fn succeeded(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn json_file(path: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

/// The histograms of `tag` in an interval log, decoded here (base64, then the V2 format),
/// independently of ringport's own reader.
fn tagged_histograms(path: &str, tag: &str) -> Vec<Histogram<u64>> {
    let text = std::fs::read_to_string(path).unwrap();
    let prefix = format!("Tag={tag},");
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|rest| {
            let encoded = rest.rsplit(',').next().unwrap();
            let raw = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .unwrap();
            Deserializer::new()
                .deserialize(&mut raw.as_slice())
                .unwrap()
        })
        .collect()
}

fn sum(hs: impl IntoIterator<Item = Histogram<u64>>) -> Histogram<u64> {
    let mut total: Option<Histogram<u64>> = None;
    for h in hs {
        match &mut total {
            None => total = Some(h),
            Some(t) => t.add(&h).unwrap(),
        }
    }
    total.expect("at least one histogram")
}

#[track_caller]
fn assert_summary_is(j: &serde_json::Value, h: &Histogram<u64>, what: &str) {
    assert_eq!(j["count"], h.len(), "{what}: count");
    assert_eq!(j["min"], h.min(), "{what}: min");
    assert_eq!(j["max"], h.max(), "{what}: max");
    for (key, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
        assert_eq!(j[key], h.value_at_quantile(q), "{what}: {key}");
    }
}

/// Seconds since the epoch, `ahead` from now.
fn unix_in(ahead: Duration) -> String {
    let t = SystemTime::now() + ahead;
    format!("{:.3}", t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64())
}

/// The server's `N bytes echoed` and `N connections served` from its summary.
fn server_counters(server: &mut Server) -> (u64, u64) {
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(20)).success());
    let out = server.stdout();
    let summary = out
        .lines()
        .find(|l| l.starts_with("summary:"))
        .unwrap_or_else(|| panic!("no summary in {out}"));
    let number_before = |what: &str| -> u64 {
        let at = summary
            .find(what)
            .unwrap_or_else(|| panic!("{what}: {summary}"));
        summary[..at]
            .split_whitespace()
            .last()
            .unwrap()
            .parse()
            .unwrap()
    };
    (
        number_before(" bytes echoed"),
        number_before(" connections served"),
    )
}

#[test]
fn three_segments_merge_exactly_into_the_whole_run() {
    let mut server = Server::start("completion", &[]);
    let port = server.addr.port().to_string();
    let dir = Scratch::new("three");
    // 10 connections over 3 agents (3, 3 and 4), 600 msg/s in total, 150 messages each:
    // about 2.5 s, so each log has several one-second intervals.
    let start_at = unix_in(Duration::from_secs(3));
    let agents: Vec<(String, String, Child)> = (1..=3)
        .map(|i| {
            let json = dir.path(&format!("agent{i}.json"));
            let hlog = dir.path(&format!("agent{i}.hlog"));
            let segment = format!("{i}/3");
            let child = stress_agent(&[
                "127.0.0.1",
                &port,
                "--connections",
                "10",
                "--rate",
                "600",
                "--count",
                "150",
                "--size",
                "100",
                "--threads",
                "1",
                "--segment",
                &segment,
                "--start-at",
                &start_at,
                "--json",
                &json,
                "--hdr-log",
                &hlog,
            ]);
            (json, hlog, child)
        })
        .collect();
    let mut files = Vec::new();
    for (i, (json, hlog, child)) in agents.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        succeeded(&out, &format!("agent {}", i + 1));
        files.push((json, hlog));
    }

    // Each agent ran its own share, and the shares add up to the whole.
    let results: Vec<serde_json::Value> = files.iter().map(|(j, _)| json_file(j)).collect();
    let shares: Vec<u64> = results
        .iter()
        .map(|r| r["connections"].as_u64().unwrap())
        .collect();
    assert_eq!(shares, [3, 3, 4], "10 connections over 3 segments");
    let rates: Vec<f64> = results
        .iter()
        .map(|r| r["target_rate"].as_f64().unwrap())
        .collect();
    assert_eq!(
        rates,
        [180.0, 180.0, 240.0],
        "the rate follows the connections"
    );
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["connections_total"], 10);
        assert_eq!(r["segment"]["index"], i + 1);
        assert_eq!(r["messages"], shares[i] * 150, "{r}");
        assert_eq!(r["errors"], 0, "{r}");
        // A real interval log: one `latency` interval per second, not one for the whole run.
        let seconds = tagged_histograms(&files[i].1, "latency").len();
        assert!(seconds >= 2, "agent {}: {seconds} latency intervals", i + 1);
    }

    let merged_json = dir.path("merged.json");
    let merged_hlog = dir.path("merged.hlog");
    let mut cmd = bin();
    cmd.arg("merge");
    for (json, hlog) in files.iter().rev() {
        cmd.args([hlog, json]);
    }
    let merged_csv = dir.path("merged.csv");
    cmd.args([
        "--json",
        &merged_json,
        "--hdr-log",
        &merged_hlog,
        "--csv",
        &merged_csv,
    ]);
    let out = run(&mut cmd);
    succeeded(&out, "merge");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("ringport merge 127.0.0.1:"), "{text}");
    assert!(text.contains("3 agents (segments 1/3 2/3 3/3)"), "{text}");
    println!("{text}");

    // Counts: summed, and what the server itself counted.
    let m = json_file(&merged_json);
    assert_eq!(m["connections"], 10);
    assert_eq!(m["messages"], 1500);
    assert_eq!(m["bytes"], 150_000);
    assert_eq!(m["errors"], 0);
    assert_eq!(m["target_rate"], 600.0);
    assert_eq!(m["fairness"]["min"], 150);
    assert_eq!(m["fairness"]["max"], 150);
    assert_eq!(m["merged_from"].as_array().unwrap().len(), 3);
    let (echoed, served) = server_counters(&mut server);
    assert_eq!(
        echoed,
        m["bytes"].as_u64().unwrap(),
        "server's bytes echoed"
    );
    assert_eq!(served, 10, "server's connections served");

    // Percentiles: those of the union of the agents' raw histograms, added here.
    for (tag, key) in [
        ("latency", "latency_us"),
        ("uncorrected", "latency_uncorrected_us"),
        ("connect", "connect_us"),
    ] {
        let union = sum(files
            .iter()
            .flat_map(|(_, hlog)| tagged_histograms(hlog, tag)));
        assert_summary_is(&m[key], &union, key);
        // The merged log holds the same values, as one run's log would.
        let merged_union = sum(tagged_histograms(&merged_hlog, tag));
        assert_eq!(merged_union, union, "merged log, tag {tag}");
    }
    // Aligned on wall-clock seconds: the agents started together, so the merged log has as
    // many seconds as the longest agent's, not the sum of theirs.
    let longest = files
        .iter()
        .map(|(_, hlog)| tagged_histograms(hlog, "latency").len())
        .max()
        .unwrap();
    let merged_seconds = tagged_histograms(&merged_hlog, "latency").len();
    // `--csv`: the merged log's intervals, one row each, holding every round trip.
    let csv = std::fs::read_to_string(&merged_csv).unwrap();
    let latency_rows: Vec<u64> = csv
        .lines()
        .skip(1)
        .filter(|l| l.starts_with("latency,"))
        .map(|l| l.split(',').nth(3).unwrap().parse().unwrap())
        .collect();
    assert_eq!(latency_rows.len(), merged_seconds, "{csv}");
    assert_eq!(latency_rows.iter().sum::<u64>(), 1500, "{csv}");
    assert!(
        merged_seconds <= longest + 1,
        "{merged_seconds} merged seconds, longest agent {longest}"
    );
}

/// Two quick agents of a workload, each writing its result and log into `dir`.
fn two_agents(dir: &Scratch, port: &str, name: &str, sizes: [&str; 2]) -> Vec<String> {
    let mut files = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let json = dir.path(&format!("{name}{i}.json"));
        let hlog = dir.path(&format!("{name}{i}.hlog"));
        let segment = format!("{}/2", i + 1);
        let out = stress_agent(&[
            "127.0.0.1",
            port,
            "--connections",
            "4",
            "--count",
            "20",
            "--size",
            size,
            "--threads",
            "1",
            "--segment",
            &segment,
            "--json",
            &json,
            "--hdr-log",
            &hlog,
        ])
        .wait_with_output()
        .unwrap();
        succeeded(&out, "agent");
        files.push(json);
        files.push(hlog);
    }
    files
}

#[track_caller]
fn refused(args: &[&str], needle: &str) {
    let out = run(bin().args(args));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?} should fail: {err}");
    assert!(
        err.contains(needle),
        "{args:?}: {err:?} should say {needle:?}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
}

#[test]
fn merge_refuses_what_is_not_one_run() {
    let server = Server::start("completion", &[]);
    let port = server.addr.port().to_string();
    let dir = Scratch::new("refuse");
    let same = two_agents(&dir, &port, "same", ["64", "64"]);
    let mixed = two_agents(&dir, &port, "mixed", ["64", "128"]);
    let args = |files: &[&String]| -> Vec<String> {
        std::iter::once("merge".to_string())
            .chain(files.iter().map(|f| f.to_string()))
            .collect()
    };
    let strs = |v: &[String]| {
        v.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\u{0}")
    };
    let call = |files: &[&String], needle: &str| {
        let a = args(files);
        let joined = strs(&a);
        let v: Vec<&str> = joined.split('\u{0}').collect();
        refused(&v, needle);
    };
    // The right files merge.
    let ok = run(bin().args(args(&same.iter().collect::<Vec<_>>())));
    succeeded(&ok, "merge of one workload");
    // A different message size.
    call(
        &[&mixed[0], &mixed[1], &mixed[2], &mixed[3]],
        "different workloads (payload 64-byte random vs 128-byte random)",
    );
    // Segment 1/2 of one run with segment 2/2 of another: the size differs, refused the same.
    call(
        &[&same[0], &same[1], &mixed[2], &mixed[3]],
        "different workloads",
    );
    // A result without its histograms.
    call(
        &[&same[0], &same[2], &same[3]],
        "--hdr-log is not among the files",
    );
    // A log without its result.
    call(&[&same[0], &same[1], &same[3]], "has no --json result");
    // The same agent twice.
    call(&[&same[0], &same[1], &same[0], &same[1]], "same run");
    // Not a result nor a log.
    let junk = dir.path("junk.txt");
    std::fs::write(&junk, "hello\n").unwrap();
    call(&[&junk], "neither");
    // A merged result is not merged again.
    let merged = dir.path("merged.json");
    let mut a = args(&same.iter().collect::<Vec<_>>());
    a.extend(["--json".to_string(), merged.clone()]);
    succeeded(&run(bin().args(&a)), "merge");
    call(&[&merged, &same[1]], "already a merged result");
    assert!(Path::new(&merged).exists());
    // A bad output path: found before the report is printed (it was printed in full, then the
    // write failed without naming the path), as stress and bench do.
    let mut a = args(&same.iter().collect::<Vec<_>>());
    a.extend([
        "--json".to_string(),
        "/nonexistent/ringport/x.json".to_string(),
    ]);
    let out = run(bin().args(&a));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot write --json to /nonexistent/ringport/x.json"),
        "{err}"
    );
    assert!(
        out.stdout.is_empty(),
        "printed before failing: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // An output over an input, or two outputs in one file: usage errors, nothing written.
    let mut a = args(&same.iter().collect::<Vec<_>>());
    a.extend(["--hdr-log".to_string(), same[1].clone()]);
    let out = run(bin().args(&a));
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut a = args(&same.iter().collect::<Vec<_>>());
    let both = dir.path("both.out");
    a.extend([
        "--json".to_string(),
        both.clone(),
        "--csv".to_string(),
        both.clone(),
    ]);
    let out = run(bin().args(&a));
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!Path::new(&both).exists());
}

#[test]
fn segment_and_start_at_are_validated() {
    for (args, needle) in [
        (&["--segment", "0/3"][..], "counts from 1"),
        (&["--segment", "4/3"][..], "between 1 and 3"),
        (&["--segment", "two"][..], "not I/N"),
        (
            &["--segment", "3/3", "--connections", "2"][..],
            "cannot be split into 3 shares",
        ),
        (&["--start-at", "tomorrow"][..], "RFC 3339"),
    ] {
        let mut v = vec!["stress", "127.0.0.1", "9", "--count", "1"];
        v.extend_from_slice(args);
        let out = run(bin().args(&v));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{v:?}");
        assert!(err.contains(needle), "{v:?}: {err}");
    }
}

#[test]
fn a_late_start_is_warned_with_how_late() {
    let server = Server::start("completion", &[]);
    let port = server.addr.port().to_string();
    let past = format!(
        "{}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            - 5
    );
    let out = run(bin().args([
        "stress",
        "127.0.0.1",
        &port,
        "--connections",
        "2",
        "--count",
        "10",
        "--start-at",
        &past,
        "--json",
        "-",
    ]));
    succeeded(&out, "late agent");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let late = j["start_late_s"].as_f64().expect("start_late_s");
    assert!(late >= 4.0, "{late}");
    let warned = j["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w.as_str().unwrap().contains("after --start-at"));
    assert!(warned, "{j}");
    // An agent on time has no such figure.
    let on_time = run(bin().args([
        "stress",
        "127.0.0.1",
        &port,
        "--connections",
        "2",
        "--count",
        "10",
        "--start-at",
        &unix_in(Duration::from_millis(1500)),
        "--json",
        "-",
    ]));
    succeeded(&on_time, "agent on time");
    let j: serde_json::Value = serde_json::from_slice(&on_time.stdout).unwrap();
    assert!(j["start_late_s"].is_null(), "{j}");
}

/// Waits (at most `limit`) for an agent whose output goes to files; kills it and panics if it
/// does not finish in time. (Used by the tests on test hosts, Linux only.)
#[track_caller]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn finish(mut child: Child, limit: Duration, what: &str, stderr: &str) {
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not finish within {limit:?}: {}",
                std::fs::read_to_string(stderr).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.success(),
        "{what} failed ({status}): {}",
        std::fs::read_to_string(stderr).unwrap_or_default()
    );
}

/// Load from many hosts, on real hosts: three client hosts (network namespaces) run one segment
/// each against one server host, started together by `--start-at`; `ringport merge` of their
/// results counts what the server itself counted, its percentiles are those of the union of
/// the agents' raw histograms, and an agent of another workload is refused in one line.
// Test hosts are network namespaces: Linux only.
#[cfg(target_os = "linux")]
#[test]
fn three_client_hosts_merge_into_what_the_server_counted() {
    const PORT: u16 = 7000;
    const SIZE: u64 = 200;
    let Some(hosts) = Hosts::up(4) else { return };
    let mut server = hosts.serve(1, PORT, &["--workers", "1", "--stats", "0.5"]);
    let target = format!("{}:{PORT}", hosts.addr(1));
    let dir = Scratch::new("hosts");
    let limit = Duration::from_secs(60);
    // 30 connections over hosts 2, 3 and 4 (10 each), 1,500 msg/s in total, 100 messages per
    // connection: about 2 s of load, several one-second intervals per log.
    let agent = |host: usize, segment: &str, size: &str, start_at: Option<&str>, name: &str| {
        let json = dir.path(&format!("{name}.json"));
        let hlog = dir.path(&format!("{name}.hlog"));
        let err = dir.path(&format!("{name}.err"));
        let mut cmd = hosts.ringport(host);
        cmd.args(["stress", &target, "--connections", "30", "--rate", "1500"])
            .args(["--count", "100", "--size", size, "--threads", "1"])
            .args(["--segment", segment, "--json", &json, "--hdr-log", &hlog]);
        if let Some(t) = start_at {
            cmd.args(["--start-at", t]);
        }
        let child = cmd
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("spawn ringport stress on a client host");
        (json, hlog, err, child)
    };
    let start_at = unix_in(Duration::from_secs(3));
    let size = SIZE.to_string();
    let running: Vec<_> = (1..=3)
        .map(|i| {
            agent(
                i + 1,
                &format!("{i}/3"),
                &size,
                Some(&start_at),
                &format!("host{}", i + 1),
            )
        })
        .collect();
    let mut files = Vec::new();
    for (i, (json, hlog, err, child)) in running.into_iter().enumerate() {
        finish(child, limit, &format!("the agent on host {}", i + 2), &err);
        files.push((json, hlog));
    }
    let results: Vec<serde_json::Value> = files.iter().map(|(j, _)| json_file(j)).collect();
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["connections"], 10, "host {}: {r}", i + 2);
        assert_eq!(r["messages"], 1000, "host {}: {r}", i + 2);
        assert_eq!(r["errors"], 0, "host {}: {r}", i + 2);
        println!(
            "host {} (segment {}/3): {} messages, latency p99 {} us, started late by {} s",
            i + 2,
            i + 1,
            r["messages"],
            r["latency_us"]["p99"],
            r["start_late_s"]
        );
    }

    let merged_json = dir.path("merged.json");
    let merged_hlog = dir.path("merged.hlog");
    let mut cmd = bin();
    cmd.arg("merge");
    for (json, hlog) in &files {
        cmd.args([json, hlog]);
    }
    let merged_csv = dir.path("merged.csv");
    cmd.args([
        "--json",
        &merged_json,
        "--hdr-log",
        &merged_hlog,
        "--csv",
        &merged_csv,
    ]);
    let out = run(&mut cmd);
    succeeded(&out, "merge");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("3 agents (segments 1/3 2/3 3/3)"), "{text}");
    println!("{text}");
    let m = json_file(&merged_json);
    assert_eq!(m["connections"], 30);
    assert_eq!(m["messages"], 3000);
    assert_eq!(m["bytes"], 3000 * SIZE);
    assert_eq!(m["errors"], 0);

    // The server's own counters: its last --stats line once everything is in, then its summary.
    let merged_bytes = m["bytes"].as_u64().unwrap();
    server.eventually(Duration::from_secs(5), "the server's --stats", |s| {
        s.last_stats().is_some_and(|t| t.3 >= merged_bytes)
    });
    let (_, accepted, bytes_in, bytes_out) = server.last_stats().unwrap();
    let (echoed, served) = server_counters(&mut server);
    println!(
        "server: {accepted} accepted, {bytes_in} B in, {bytes_out} B out (--stats); \
         {served} connections served, {echoed} bytes echoed (summary)"
    );
    assert_eq!(accepted, 30, "connections the server accepted");
    assert_eq!(served, 30, "connections the server served");
    assert_eq!(bytes_in, merged_bytes, "bytes the server received");
    assert_eq!(echoed, merged_bytes, "bytes the server echoed");
    assert_eq!(
        echoed / SIZE,
        m["messages"].as_u64().unwrap(),
        "messages the server echoed"
    );

    // Percentiles: those of the union of the agents' raw histograms, decoded and added here.
    for (tag, key) in [
        ("latency", "latency_us"),
        ("uncorrected", "latency_uncorrected_us"),
        ("connect", "connect_us"),
    ] {
        let union = sum(files
            .iter()
            .flat_map(|(_, hlog)| tagged_histograms(hlog, tag)));
        assert_summary_is(&m[key], &union, key);
        assert_eq!(
            sum(tagged_histograms(&merged_hlog, tag)),
            union,
            "merged log, tag {tag}"
        );
    }

    // Host 4 runs segment 3/3 again with another message size (against a server started
    // anew, the first one has given its counts): merged with the other two segments, it is
    // refused in one line.
    let _again = hosts.serve(1, PORT, &["--workers", "1"]);
    let (json, hlog, err, child) = agent(4, "3/3", "100", None, "other");
    finish(child, limit, "the agent of another workload", &err);
    refused(
        &[
            "merge",
            &files[0].0,
            &files[0].1,
            &files[1].0,
            &files[1].1,
            &json,
            &hlog,
        ],
        "different workloads",
    );
}
