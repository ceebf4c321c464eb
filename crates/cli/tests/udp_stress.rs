//! `stress --udp` on the real binary: against `ringport serve --udp` on every backend (nothing
//! lost on loopback at a modest rate, the JSON fields; on Linux a pipeline's datagrams sent
//! several per send and echoed coalesced, counted exactly as with `--no-gso`), against echoes
//! of the test's own that damage or drop datagrams by their sequence number (exit code 1 on
//! corruption, `--max-loss`, the flows listed by `--flows`), `merge` of two segments equal to
//! one run flow by flow, the flags that do not apply to UDP, and on test
//! hosts (`support::netns`) random loss in the network counted exactly and within its binomial
//! bounds.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::Output;
use std::thread;

use support::{bin, json_of, stderr, stress, Server};

for_each_backend!(nothing_is_lost_on_loopback_and_the_json_says_so);

#[cfg(target_os = "linux")]
for_each_backend!(segmented_and_one_by_one_count_the_same_against_the_real_server);

/// The header's sequence number (bytes 4..12, little-endian).
fn seq_of(d: &[u8]) -> u64 {
    u64::from_le_bytes(d[4..12].try_into().unwrap())
}

/// A UDP echo on loopback that treats each datagram by its sequence number in its flow:
/// `copies(seq)` echoes (0 drops it), the last byte flipped when `flip(seq)`. It lives until the
/// test process ends.
fn echo(copies: fn(u64) -> usize, flip: fn(u64) -> bool) -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    thread::spawn(move || {
        let mut buf = vec![0u8; 70_000];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let seq = seq_of(&buf[..n]);
            if flip(seq) {
                buf[n - 1] ^= 0x01;
            }
            for _ in 0..copies(seq) {
                let _ = s.send_to(&buf[..n], from);
            }
        }
    });
    addr
}

fn udp_stress(addr: SocketAddr, extra: &[&str]) -> Output {
    let port = addr.port().to_string();
    let mut args = vec!["--udp", "127.0.0.1", &port, "--json", "-"];
    args.extend_from_slice(extra);
    stress(&args)
}

fn nothing_is_lost_on_loopback_and_the_json_says_so(backend: &str) {
    let mut cmd = bin();
    cmd.args(["serve", "--port", "0", "--udp-only", "--backend", backend]);
    let server = Server::spawn(cmd);
    let csv =
        std::env::temp_dir().join(format!("ringport-udp-{backend}-{}.csv", std::process::id()));
    let out = udp_stress(
        server.addr,
        &[
            "--csv",
            csv.to_str().unwrap(),
            "--backend",
            backend,
            "--connections",
            "4",
            "--threads",
            "2",
            "--rate",
            "400",
            "--count",
            "100",
            "--size",
            "200",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let j = json_of(&out);
    let d = &j["datagrams"];
    for (field, want) in [
        ("sent", 400),
        ("echoed", 400),
        ("lost", 0),
        ("duplicated", 0),
        ("corrupted", 0),
    ] {
        assert_eq!(d[field], want, "{field}: {j}");
    }
    assert!(d["reordered"].is_u64(), "{j}");
    assert_eq!(j["protocol"], "udp-echo");
    assert_eq!(j["messages"], 400, "every echo verified");
    assert_eq!(j["payload"], "200-byte datagrams, random");
    assert_eq!(j["jitter_us"]["flows"], 4, "{j}");
    assert!(j["jitter_us"]["mean"].as_f64().unwrap() >= 0.0);
    assert!(j["latency_us"]["count"].as_u64() == Some(400), "{j}");
    assert!(j["max_loss_pct"].is_null());
    // Per second: the datagrams sent in it, in the JSON and as `datagrams` rows of the CSV.
    let seconds = j["datagrams_over_time"].as_array().unwrap();
    let sent: u64 = seconds.iter().map(|s| s["sent"].as_u64().unwrap()).sum();
    assert_eq!(sent, 400, "{j}");
    let table = std::fs::read_to_string(&csv).unwrap();
    let _ = std::fs::remove_file(&csv);
    assert!(
        table
            .lines()
            .next()
            .unwrap()
            .ends_with(",sent,echoed,lost,duplicated,reordered,corrupted,jitter_us,flow,agent"),
        "{table}"
    );
    let rows: u64 = table
        .lines()
        .filter(|l| l.starts_with("datagrams,"))
        .map(|l| l.split(',').nth(11).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(rows, 400, "{table}");
    // Per flow: 100 each, in the JSON and as `flow` rows of the CSV.
    let flows = j["datagram_flows"].as_array().unwrap();
    let got: Vec<(u64, u64, u64)> = flows
        .iter()
        .map(|f| {
            let n = |k: &str| f[k].as_u64().unwrap();
            (n("flow"), n("sent"), n("echoed"))
        })
        .collect();
    assert_eq!(
        got,
        [(1, 100, 100), (2, 100, 100), (3, 100, 100), (4, 100, 100)]
    );
    assert!(
        flows.iter().all(|f| f["jitter_us"].as_f64().is_some()),
        "{j}"
    );
    let flow_rows: Vec<Vec<&str>> = table
        .lines()
        .filter(|l| l.starts_with("flow,"))
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(flow_rows.len(), 4, "{table}");
    for (i, cells) in flow_rows.iter().enumerate() {
        assert_eq!((cells[11], cells[12], cells[13]), ("100", "100", "0"));
        assert_eq!(cells[18], (i + 1).to_string(), "the flow, from 1");
        assert_eq!(cells[19], "", "one run: no agent");
    }
}

#[test]
fn the_report_lists_the_flows_that_lost_most() {
    // Every 4th datagram of each flow is dropped: every flow loses 25%.
    let addr = echo(|seq| usize::from(seq % 4 != 3), |_| false);
    let run = |flows: &str| {
        let port = addr.port().to_string();
        let out = stress(&[
            "--udp",
            "127.0.0.1",
            &port,
            "--connections",
            "3",
            "--count",
            "8",
            "--pipeline",
            "4",
            "--timeout",
            "0.3",
            "--flows",
            flows,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let text = run("2");
    let listed: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("  flows"))
        .collect();
    assert!(
        listed[0].contains("the 2 of 3 flows that lost most"),
        "{text}"
    );
    let row = |l: &str| l.split_whitespace().take(4).collect::<Vec<_>>().join(" ");
    assert_eq!(row(listed[2]), "1 8 6 2", "{text}");
    assert_eq!(row(listed[3]), "2 8 6 2", "{text}");
    assert!(listed[4].contains("1 more flow not listed"), "{text}");
    let text = run("all");
    assert!(text.contains("  flows         3 flows\n"), "{text}");
    assert!(!text.contains("not listed"), "{text}");
}

/// A pipeline of 8 per flow: its datagrams leave several per send (UDP GSO), the echo receives
/// them coalesced and echoes them so, and they come back several per receive (UDP GRO); with
/// `--no-gso` (and the echo's `--udp-no-gso`) one per send and receive. The counts are the
/// same, every echo verified; the server's summary and the report say what was used.
#[cfg(target_os = "linux")]
fn segmented_and_one_by_one_count_the_same_against_the_real_server(backend: &str) {
    for no_gso in [false, true] {
        let mut cmd = bin();
        cmd.args(["serve", "--port", "0", "--udp-only", "--backend", backend]);
        if no_gso {
            cmd.arg("--udp-no-gso");
        }
        let mut server = Server::spawn(cmd);
        let mut args = vec![
            "--backend",
            backend,
            "--connections",
            "4",
            "--threads",
            "2",
            "--pipeline",
            "8",
            "--count",
            "200",
            "--size",
            "1400",
        ];
        if no_gso {
            args.push("--no-gso");
        }
        let out = udp_stress(server.addr, &args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let j = json_of(&out);
        let d = &j["datagrams"];
        for (field, want) in [
            ("sent", 800),
            ("echoed", 800),
            ("lost", 0),
            ("duplicated", 0),
            ("corrupted", 0),
        ] {
            assert_eq!(d[field], want, "{field} (--no-gso: {no_gso}): {j}");
        }
        assert_eq!(j["messages"], 800, "every echo verified: {j}");
        let o = &j["udp_offload"];
        assert_eq!(o["gso"], !no_gso, "{o}");
        assert_eq!(o["gro"], !no_gso, "{o}");
        let (sends, receives) = (
            o["segmented_sends"].as_u64(),
            o["coalesced_receives"].as_u64(),
        );
        if no_gso {
            assert_eq!((sends, receives), (Some(0), Some(0)), "{o}");
        } else {
            // Each flow's first eight leave in one send and come back in one receive at least.
            assert!(sends.unwrap() >= 4 && receives.unwrap() >= 1, "{o}");
        }
        server.signal("TERM");
        assert!(server
            .wait_exit(std::time::Duration::from_secs(10))
            .success());
        let summary = server.stdout();
        assert!(
            summary.contains("udp: 800 echoed of 800 datagrams received"),
            "{summary}"
        );
        // The echo coalesces whatever its socket is sent several at once.
        assert_eq!(summary.contains("udp offload:"), !no_gso, "{summary}");
        assert_eq!(summary.contains("GRO/GSO"), !no_gso, "{summary}");
    }
}

#[test]
fn a_corrupted_echo_fails_the_run_and_is_attributed_to_its_datagram() {
    // Every 10th datagram of each flow (seq 9, 19, ...) comes back with its last byte flipped.
    let addr = echo(|_| 1, |seq| seq % 10 == 9);
    let out = udp_stress(
        addr,
        &["--connections", "2", "--count", "50", "--pipeline", "4"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let j = json_of(&out);
    assert_eq!(j["datagrams"]["corrupted"], 10, "5 per flow: {j}");
    assert_eq!(
        j["datagrams"]["echoed"], 100,
        "damaged echoes came back too"
    );
    assert_eq!(j["datagrams"]["lost"], 0);
    assert_eq!(j["errors_by_kind"]["mismatch"], 10);
    assert_eq!(j["messages"], 90);
    let first = j["first_error"]["detail"].as_str().unwrap();
    assert!(
        first.starts_with("corrupted echo of datagram 9 at byte"),
        "{first}"
    );
}

#[test]
fn the_progress_line_says_the_datagrams_lost() {
    // Every 4th datagram of each flow is dropped: the lines count them as their timeout passes.
    let addr = echo(|seq| usize::from(seq % 4 != 3), |_| false);
    let port = addr.port().to_string();
    let out = stress(&[
        "--udp",
        "127.0.0.1",
        &port,
        "--connections",
        "2",
        "--rate",
        "200",
        "--duration",
        "1.2",
        "--timeout",
        "0.1",
        "--interval",
        "0.2",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    let lost: Vec<u64> = err
        .lines()
        .filter(|l| l.starts_with("progress: measuring "))
        .map(|l| {
            let (before, _) = l
                .split_once(" lost (")
                .unwrap_or_else(|| panic!("no loss beside the rate: {l}"));
            assert!(before.contains(" msg/s  "), "{l}");
            before.rsplit(' ').next().unwrap().parse().unwrap()
        })
        .collect();
    assert!(lost.len() >= 2, "{err}");
    assert!(lost.windows(2).all(|w| w[0] <= w[1]), "{lost:?}");
    assert!(*lost.last().unwrap() > 0, "{err}");
}

#[test]
fn loss_is_reported_and_fails_the_run_only_beyond_max_loss() {
    // Every 4th datagram of each flow is dropped (25%), every 5th echoed twice.
    let addr = echo(
        |seq| match seq {
            s if s % 4 == 3 => 0,
            s if s % 5 == 0 => 2,
            _ => 1,
        },
        |_| false,
    );
    let flags = [
        "--connections",
        "2",
        "--count",
        "40",
        "--pipeline",
        "8",
        "--timeout",
        "0.5",
    ];
    for (max_loss, code) in [(None, 0), (Some("30"), 0), (Some("10"), 1)] {
        let mut args = flags.to_vec();
        if let Some(m) = max_loss {
            args.extend(["--max-loss", m]);
        }
        let out = udp_stress(addr, &args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{max_loss:?}: {}",
            stderr(&out)
        );
        let j = json_of(&out);
        let d = &j["datagrams"];
        assert_eq!(
            (&d["sent"], &d["echoed"], &d["lost"], &d["duplicated"]),
            (&80.into(), &60.into(), &20.into(), &12.into()),
            "{j}"
        );
        assert_eq!(j["errors"], 0, "loss is not an error");
        if code == 1 {
            assert!(stderr(&out).contains("more than --max-loss 10%"));
        }
    }
}

#[test]
fn two_segments_merge_into_the_counts_of_one_run() {
    // What happens to a datagram depends only on its sequence number, so the segments' counts
    // must add up to the whole run's exactly.
    let addr = echo(
        |seq| match seq {
            s if s % 6 == 5 => 0,
            s if s % 7 == 0 => 2,
            _ => 1,
        },
        |_| false,
    );
    let dir = std::env::temp_dir().join(format!("ringport-udp-merge-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let port = addr.port().to_string();
    let common = [
        "--udp",
        "127.0.0.1",
        &port,
        "--connections",
        "4",
        "--count",
        "30",
        "--pipeline",
        "6",
        "--timeout",
        "0.5",
    ];
    let mut files: Vec<String> = Vec::new();
    for seg in ["1/2", "2/2"] {
        let name = seg.replace('/', "of");
        let (json, hlog) = (path(&format!("{name}.json")), path(&format!("{name}.hlog")));
        let mut args = common.to_vec();
        args.extend(["--segment", seg, "--json", &json, "--hdr-log", &hlog]);
        let out = stress(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        files.extend([json, hlog]);
    }
    let merged = path("merged.json");
    let out = bin()
        .arg("merge")
        .args(&files)
        .args(["--json", &merged])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let merged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&merged).unwrap()).unwrap();
    let mut args = common.to_vec();
    args.extend(["--json", "-"]);
    let whole = json_of(&stress(&args));
    assert_eq!(merged["datagrams"], whole["datagrams"], "{merged}\n{whole}");
    assert_eq!(whole["datagrams"]["sent"], 120);
    assert_eq!(
        whole["datagrams"]["lost"],
        4 * 5,
        "seq 5, 11, 17, 23, 29 of each flow"
    );
    assert_eq!(merged["jitter_us"]["flows"], 4);
    // Flow by flow: each segment's flows keep their numbers in the whole run, labelled with
    // their agent, and count what the whole run's flows counted.
    let counts = |f: &serde_json::Value| {
        let mut f = f.clone();
        let o = f.as_object_mut().unwrap();
        o.remove("jitter_us");
        o.remove("agent");
        f
    };
    let (merged_flows, whole_flows) = (
        merged["datagram_flows"].as_array().unwrap(),
        whole["datagram_flows"].as_array().unwrap(),
    );
    assert_eq!(merged_flows.len(), 4, "{merged}");
    for (m, w) in merged_flows.iter().zip(whole_flows) {
        assert_eq!(counts(m), counts(w), "{merged}\n{whole}");
        let agent = m["agent"].as_u64().unwrap() as usize;
        let segment = merged["merged_from"][agent - 1]["segment"]["index"]
            .as_u64()
            .unwrap();
        let flow = m["flow"].as_u64().unwrap();
        assert_eq!(
            segment,
            flow.div_ceil(2),
            "flow {flow} is segment {segment}'s"
        );
    }
    assert_eq!(whole_flows[0]["lost"], 5);
    let lost_by_second: u64 = merged["datagrams_over_time"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["lost"].as_u64().unwrap())
        .sum();
    assert_eq!(lost_by_second, 20, "{merged}");
    assert_eq!(merged["messages"], whole["messages"]);
    let _ = std::fs::remove_dir_all(PathBuf::from(&dir));
}

#[test]
fn flags_that_do_not_apply_to_udp_are_usage_errors() {
    for (extra, needle) in [
        (vec!["--stream"], "--stream does not apply to --udp"),
        (vec!["--tls"], "--tls does not apply to --udp"),
        (vec!["--websocket"], "--websocket does not apply to --udp"),
        (
            vec!["--messages-per-connection", "5"],
            "--messages-per-connection does not apply to --udp",
        ),
        (
            vec!["--request", "PING", "--expect", "PONG"],
            "--request does not apply to --udp",
        ),
        (vec!["--size", "10"], "--size 10 with --udp"),
        (vec!["--size", "65508"], "--size 65508 with --udp"),
        (
            vec!["--timeout", "0"],
            "--timeout 0 does not apply to --udp",
        ),
    ] {
        let mut args = vec!["--udp", "127.0.0.1", "9", "--count", "1"];
        args.extend(extra.iter().copied());
        let out = stress(&args);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(needle), "{extra:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    }
    let out = stress(&["127.0.0.1", "9", "--max-loss", "5"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--max-loss applies to --udp only"));
    let out = stress(&["127.0.0.1", "9", "--flows", "5"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--flows applies to --udp only"));
    let out = stress(&[
        "--udp",
        "127.0.0.1",
        "9",
        "--find-max-rate",
        "--max-loss",
        "1",
        "--flows",
        "all",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--flows does not apply to --find-max-rate"));
    let out = stress(&["--udp", "127.0.0.1", "9", "--flows", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("neither a number of flows"),
        "{}",
        stderr(&out)
    );
    let out = stress(&["127.0.0.1", "9", "--no-gso"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--no-gso applies to --udp only"));
}

/// 10% random loss, by nftables, of the datagrams on their way to the server host (on the
/// bridge's forward hook, so in the network, not in a host): over 5,000 datagrams the loss is
/// what the rule dropped, exactly, and within the binomial 99.99% bounds of 10%. One datagram
/// per send (`--no-gso`): between namespaces a segmented send crosses the bridge as one packet,
/// which the rule would drop (and count) whole.
#[cfg(target_os = "linux")]
#[test]
fn random_loss_in_the_network_is_counted_exactly() {
    use std::time::Duration;
    let Some(hosts) = support::netns::Hosts::up(2) else {
        return;
    };
    let _server = hosts.serve(
        1,
        7000,
        &["--udp-only", "--udp-max-pps-per-ip", "0", "--workers", "1"],
    );
    hosts.on_bridge(&["nft", "add table bridge fault"]);
    hosts.on_bridge(&[
        "nft",
        "add chain bridge fault lossy { type filter hook forward priority 0 ; }",
    ]);
    hosts.on_bridge(&[
        "nft",
        "add rule bridge fault lossy oifname h1 udp dport 7000 numgen random mod 100 < 10 counter drop",
    ]);
    let run = hosts.stress(
        2,
        "198.18.0.1:7000",
        &[
            "--udp",
            "--connections",
            "10",
            "--threads",
            "1",
            "--rate",
            "2500",
            "--count",
            "500",
            "--size",
            "100",
            "--timeout",
            "1",
            "--no-gso",
        ],
        Duration::from_secs(60),
    );
    let table = hosts.on_bridge(&["nft", "list table bridge fault"]);
    let dropped: u64 = table
        .split("counter packets ")
        .skip(1)
        .filter_map(|t| t.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    let (sent, lost) = (run.num("datagrams/sent"), run.num("datagrams/lost"));
    println!("10% random loss: {sent} sent, {lost} lost, {dropped} dropped by the rule");
    assert_eq!(sent, 5000.0, "{}", run.stderr);
    assert_eq!(
        lost as u64, dropped,
        "every datagram dropped, and only those, is lost"
    );
    // n = 5000, p = 0.1: mean 500, sd 21.2; 99.99% two-sided is 3.89 sd.
    assert!(
        (418.0..=582.0).contains(&lost),
        "{lost} lost of 5000 at 10%"
    );
    for field in ["duplicated", "corrupted"] {
        assert_eq!(run.num(&format!("datagrams/{field}")), 0.0, "{field}");
    }
    assert_eq!(run.num("errors"), 0.0, "loss is not an error");
}

/// `--find-max-rate` with the loss target alone: against an echo that loses nothing every
/// probe passes on its loss; against one that drops a
/// datagram in four, no rate passes (exit code 4) and the probes say why.
#[test]
fn the_loss_target_alone_drives_the_search() {
    let search = |addr: SocketAddr| {
        udp_stress(
            addr,
            &[
                "--find-max-rate",
                "--max-loss",
                "5",
                "--connections",
                "2",
                "--rate",
                "200",
                "--max-rate",
                "400",
                "--min-rate",
                "100",
                "--duration",
                "0.3",
                "--warmup",
                "0",
                "--timeout",
                "0.3",
                "--repeat",
                "1",
            ],
        )
    };
    let whole = echo(|_| 1, |_| false);
    let out = search(whole);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let j = json_of(&out);
    assert!(j["answer"].as_f64().unwrap() >= 200.0, "{j}");
    for p in j["probes"].as_array().unwrap() {
        // Every probe the client could generate held the loss target (a slow machine may
        // leave one client-bound, which is no verdict on the loss).
        let reason = p["reason"].as_str().unwrap();
        assert!(
            reason.contains("loss 0.000% <= 5%") || p["verdict"] == "client-bound",
            "{reason}"
        );
    }
    assert!(
        j["conclusion"]
            .as_str()
            .unwrap()
            .contains("with loss <= 5% over"),
        "{j}"
    );

    let lossy = echo(|seq| usize::from(seq % 4 != 3), |_| false);
    let out = search(lossy);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let j = json_of(&out);
    let reason = j["probes"][0]["reason"].as_str().unwrap();
    // Seq 3, 7, 11, ... of each flow: about a quarter, depending on where the window ends.
    assert!(
        reason.starts_with("loss 2") && reason.ends_with("% > 5%"),
        "{reason}"
    );
}
