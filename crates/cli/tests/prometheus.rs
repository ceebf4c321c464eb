//! `--metrics` under a real Prometheus (Debian's `prometheus`), started by the test on loopback
//! with a temporary configuration that scrapes `serve --metrics` and `stress --metrics` every
//! second during a run: the server's counters in Prometheus equal what `stress` verified
//! (connections accepted, bytes received and sent), its UDP echo's the datagrams echoed to the
//! test, the load's were scraped while it ran, and
//! every panel of the Grafana dashboard (`docs/grafana/ringport.json`) finds data through
//! Prometheus' query API. A missing Prometheus is skipped loudly, except under `CI=true`, where
//! it is a failure (`.ci/run` installs it).
#![cfg(target_os = "linux")]

mod support;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::{bin, free_port, require, temp_dir, Server};

/// A Prometheus started by the test, killed (and its directory removed) when dropped.
struct Prometheus {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Prometheus {
    /// Starts `program` on a free port with `config` (YAML) and its data in a fresh temporary
    /// directory, and waits (at most 30 s) until it says it is ready.
    #[track_caller]
    fn start(program: &Path, config: &str) -> Prometheus {
        let dir = temp_dir("prometheus");
        fs::write(dir.join("prometheus.yml"), config).expect("write the configuration");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = fs::File::create(dir.join("output.log")).expect("create the log");
        let child = Command::new(program)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let mut p = Prometheus { child, dir, addr };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if get(p.addr, "/-/ready").is_some_and(|(status, _)| status == 200) {
                return p;
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("prometheus exited at start ({status}): {}", p.log());
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready on {} within 30 s: {}",
                p.addr,
                p.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("output.log")).unwrap_or_default()
    }

    /// The `data.result` of a query API call (`/api/v1/query` or `/api/v1/query_range` with
    /// `params`), which must succeed.
    #[track_caller]
    fn api(&self, endpoint: &str, params: &[(&str, String)]) -> Vec<Value> {
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect();
        let path = format!("/api/v1/{endpoint}?{}", query.join("&"));
        let (status, body) =
            get(self.addr, &path).unwrap_or_else(|| panic!("no answer from prometheus to {path}"));
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path}: {status} {body:?} is not JSON: {e}"));
        assert_eq!(v["status"], "success", "{path}: {body}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The value of an instant query that returns one sample, or `None` when it returns none.
    #[track_caller]
    fn scalar(&self, query: &str) -> Option<f64> {
        let result = self.api("query", &[("query", query.to_string())]);
        let sample = result.first()?;
        sample["value"][1].as_str()?.parse().ok()
    }

    /// The values of a range query over `from..to` (Unix seconds), one step a second, over
    /// every series it returns.
    #[track_caller]
    fn range(&self, query: &str, from: f64, to: f64) -> Vec<f64> {
        let result = self.api(
            "query_range",
            &[
                ("query", query.to_string()),
                ("start", format!("{from:.3}")),
                ("end", format!("{to:.3}")),
                ("step", "1".to_string()),
            ],
        );
        result
            .iter()
            .flat_map(|series| series["values"].as_array().cloned().unwrap_or_default())
            .filter_map(|pair| pair[1].as_str().and_then(|v| v.parse().ok()))
            .collect()
    }

    /// Waits (at most `limit`) until `query` answers `want`, and says what it answered last.
    #[track_caller]
    fn eventually_equals(&self, query: &str, want: f64, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.scalar(query);
            if got == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{query}: prometheus answers {got:?}, not {want}, after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// `GET path` over HTTP/1.0 (no chunked body); the status and the body, or `None` when
/// nothing answers.
fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// `s` with every byte but the unreserved ones percent-encoded, for a query string.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Every panel query of the dashboard, with Grafana's variables as a run of it would set
/// them: `$__rate_interval` 4 s (four scrapes a second apart), and every instance of each
/// variable.
fn panel_queries(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(panels: &[Value], out: &mut Vec<(String, String)>) {
        for p in panels {
            if let Some(nested) = p["panels"].as_array() {
                walk(nested, out);
            }
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    out.push((p["title"].as_str().unwrap_or("?").to_string(), expr.into()));
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dashboard["panels"].as_array().expect("panels"), &mut out);
    let vars: Vec<String> = dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["type"] == "query")
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect();
    for (_, expr) in &mut out {
        *expr = expr.replace("$__rate_interval", "4s");
        for v in &vars {
            *expr = expr
                .replace(&format!("${{{v}}}"), ".+")
                .replace(&format!("${v}"), ".+");
        }
        assert!(
            !expr.contains('$'),
            "a variable the test does not set in {expr}"
        );
    }
    out
}

#[test]
fn prometheus_scrapes_serve_and_stress_and_every_dashboard_panel_has_data() {
    let Some(program) = require("prometheus") else {
        return;
    };
    let server = Server::start("completion", &["--udp", "--metrics", "127.0.0.1:0"]);
    server.eventually(Duration::from_secs(10), "the metrics line", |s| {
        s.stdout().contains("metrics on http://")
    });
    let out = server.stdout();
    let serve_metrics: SocketAddr = out
        .lines()
        .find_map(|l| l.strip_prefix("metrics on http://"))
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no metrics address in {out:?}"));
    let stress_metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n\
         \x20 - job_name: ringport-serve\n    static_configs:\n      - targets: [\"{serve_metrics}\"]\n\
         \x20 - job_name: ringport-stress\n    static_configs:\n      - targets: [\"{stress_metrics}\"]\n"
    );
    let prom = Prometheus::start(&program, &config);
    prom.eventually_equals("up{job=\"ringport-serve\"}", 1.0, Duration::from_secs(20));

    // 4 connections of 100 messages a second for 4 s: several scrapes of the load. Before it,
    // datagrams echoed by the UDP echo beside the server.
    let from = unix_now() - 1.0;
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let datagrams = 10;
    for i in 0..datagrams {
        udp.send_to(&[i; 64], server.addr).unwrap();
        let mut back = [0u8; 128];
        let n = udp.recv(&mut back).expect("an echo");
        assert_eq!((n, back[0]), (64, i));
    }
    let json = prom.dir.join("stress.json");
    let run = bin()
        .args(["stress", "127.0.0.1", &server.addr.port().to_string()])
        .args(["--connections", "4", "--rate", "400", "--count", "400"])
        .args(["--size", "512", "--interval", "0", "--threads", "2"])
        .args(["--metrics", &stress_metrics.to_string()])
        .arg("--json")
        .arg(&json)
        .stdin(Stdio::null())
        .output()
        .expect("run ringport stress");
    let to = unix_now();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "stress failed: {stderr}");
    assert!(
        stderr.contains(&format!("metrics on http://{stress_metrics}/metrics")),
        "{stderr}"
    );
    let report: Value = serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["connections"], 4);
    assert_eq!(report["messages"], 1600);
    let bytes = report["bytes"].as_u64().unwrap();
    assert_eq!(bytes, 1600 * 512);

    // The server's counters, as Prometheus scraped them, equal what the load verified.
    let limit = Duration::from_secs(20);
    let serve = |name: &str| format!("sum({name}{{job=\"ringport-serve\"}})");
    prom.eventually_equals(&serve("ringport_connections_accepted_total"), 4.0, limit);
    prom.eventually_equals(&serve("ringport_bytes_received_total"), bytes as f64, limit);
    prom.eventually_equals(&serve("ringport_bytes_sent_total"), bytes as f64, limit);
    let echoed = "ringport_udp_datagrams_echoed_total";
    prom.eventually_equals(&serve(echoed), f64::from(datagrams), limit);

    // The load was scraped while it ran: counters that only grow, up to what it reported.
    let verified = prom.range(
        "ringport_stress_messages_verified_total{job=\"ringport-stress\"}",
        from,
        to,
    );
    assert!(
        verified.len() >= 2 && verified.iter().any(|&v| v > 0.0),
        "the load's verified messages were not scraped during the run: {verified:?}\n{}",
        prom.log()
    );
    assert!(
        verified.windows(2).all(|w| w[0] <= w[1]) && verified.iter().all(|&v| v <= 1600.0),
        "{verified:?}"
    );
    let measuring = prom.range(
        "ringport_stress_phase{job=\"ringport-stress\",phase=\"measuring\"} == 1",
        from,
        to,
    );
    assert!(!measuring.is_empty(), "no scrape saw the measuring phase");
    let target = prom.range(
        "max(ringport_stress_target_messages_per_second{job=\"ringport-stress\"})",
        from,
        to,
    );
    assert!(target.contains(&400.0), "the target rate: {target:?}");

    // Every panel of the dashboard finds data.
    let dashboard: Value = serde_json::from_str(
        &fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/grafana/ringport.json"),
        )
        .unwrap(),
    )
    .expect("the dashboard is JSON");
    let queries = panel_queries(&dashboard);
    assert!(queries.len() >= 10, "{} panel queries", queries.len());
    let mut empty = Vec::new();
    for (title, expr) in &queries {
        let values = prom.range(expr, from, to);
        if !values.iter().any(|v| !v.is_nan()) {
            empty.push(format!("{title}: {expr}"));
        }
    }
    assert!(
        empty.is_empty(),
        "panel queries without data:\n{}",
        empty.join("\n")
    );
}
