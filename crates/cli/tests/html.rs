//! `--html` in a real browser: headless Chromium loads a stress report, a merged report, a
//! search report and a bench report, each written by the real binary after a short run. Each
//! page makes no request and logs nothing (its own Content-Security-Policy turns any request
//! into a logged refusal, and a control page with one shows the check catches it), and every
//! figure of the DOM Chromium built, the number shown as much as its `data-value`, equals the
//! field of the JSON result it names. Skipped loudly without `chromium`, except under
//! `CI=true` (`.ci/run` installs it).

// Linux only: `bench` needs Linux, and Chromium is Debian's package here.
#![cfg(target_os = "linux")]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::{bin, skip_missing, Server};

/// A directory of this test's files, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("ringport-html-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The Chromium binary; `None` (said loudly) when it is not installed, a failure under
/// `CI=true`.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
        .find(|p| p.is_file());
    if found.is_none() {
        skip_missing("chromium", "apt-get install chromium");
    }
    found
}

/// What Chromium made of a page: the DOM it built, and what it logged.
struct Loaded {
    dom: String,
    log: String,
}

/// Loads `page` in headless Chromium (at most 90 s) with its own profile in `scratch`.
#[track_caller]
fn load(chromium: &Path, scratch: &Scratch, page: &str) -> Loaded {
    let profile = scratch.path(&format!("profile-{}", page.len() % 97));
    // Into files, not pipes: a page's DOM is larger than a pipe holds while we wait.
    let (dom_file, log_file) = (format!("{page}.dom"), format!("{page}.log"));
    let mut child = Command::new(chromium)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={profile}"))
        .arg("--dump-dom")
        .arg(format!("file://{page}"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&dom_file).unwrap())
        .stderr(std::fs::File::create(&log_file).unwrap())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish loading {page} in 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let read = |f: &str| String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned();
    let loaded = Loaded {
        dom: read(&dom_file),
        log: read(&log_file),
    };
    assert!(
        loaded.dom.contains("</html>"),
        "chromium dumped no DOM for {page}: {}",
        loaded.log
    );
    loaded
}

/// The lines of Chromium's log that say the page asked for something or went wrong: a request
/// refused by the page's policy, or any console message (the pages have no script).
fn complaints(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            l.contains("Refused to")
                || l.contains("Content Security Policy")
                || l.contains(":CONSOLE")
                || l.contains("net::ERR_")
        })
        .collect()
}

/// The JSON value at a dotted `path` (`latency_us.p99`, `probes.3.rate`, `probes.length`).
fn at(json: &serde_json::Value, path: &str) -> Option<f64> {
    let mut v = json;
    for part in path.split('.') {
        v = match (v, part.parse::<usize>()) {
            (serde_json::Value::Array(a), _) if part == "length" => return Some(a.len() as f64),
            (serde_json::Value::Array(a), Ok(i)) => a.get(i)?,
            (serde_json::Value::Object(o), _) => o.get(part)?,
            _ => return None,
        };
    }
    v.as_f64()
}

/// The `attr="..."` value in `tag` (one start tag's text).
fn attr<'a>(tag: &'a str, attr: &str) -> Option<&'a str> {
    let at = tag.find(&format!(" {attr}=\""))? + attr.len() + 3;
    Some(&tag[at..at + tag[at..].find('"')?])
}

/// Asserts that every figure cell of `dom` shows, and carries in `data-value`, the number the
/// JSON has at its `data-key`; returns how many there are.
#[track_caller]
fn figures_equal_the_json(dom: &str, json: &serde_json::Value, what: &str) -> usize {
    let mut n = 0;
    for cell in dom.split("<td").skip(1) {
        let (tag, rest) = cell.split_once('>').unwrap();
        let Some(key) = attr(tag, "data-key") else {
            continue;
        };
        let want = at(json, key).unwrap_or_else(|| panic!("{what}: {key} is not in the JSON"));
        let value: f64 = attr(tag, "data-value").unwrap().parse().unwrap();
        // Equal but for serde_json's reading of the file, which may be a last bit off.
        assert!(
            (value - want).abs() <= want.abs() * 1e-15,
            "{what}: data-value of {key} is {value}, the JSON has {want}"
        );
        // What a person reads: `12,345.678 msg/s` for 12345.6781.
        let shown = &rest[..rest.find("</td>").unwrap()];
        let digits: String = shown
            .chars()
            .take_while(|c| c.is_ascii_digit() || matches!(c, ',' | '.' | '-'))
            .filter(|&c| c != ',')
            .collect();
        let shown: f64 = digits
            .parse()
            .unwrap_or_else(|_| panic!("{what}: {key} shows {shown:?}"));
        assert!(
            (shown - want).abs() <= 0.0005 + want.abs() * 1e-12,
            "{what}: {key} shows {shown}, the JSON has {want}"
        );
        n += 1;
    }
    n
}

/// Loads `page` and checks it: its kind, its charts, no request, no complaint, and every figure
/// equal to `json`'s. Returns the DOM.
#[track_caller]
fn check(
    chromium: &Path,
    scratch: &Scratch,
    page: &str,
    json: &str,
    kind: &str,
    charts: &[&str],
) -> String {
    let loaded = load(chromium, scratch, page);
    let bad = complaints(&loaded.log);
    assert!(bad.is_empty(), "{kind} page: {bad:#?}");
    assert!(
        loaded.dom.contains(&format!("data-report=\"{kind}\"")),
        "{kind}: {}",
        &loaded.dom[..loaded.dom.len().min(400)]
    );
    for chart in charts {
        assert!(
            loaded.dom.contains(&format!("data-chart=\"{chart}\"")),
            "{kind} page has no {chart} chart"
        );
    }
    assert!(
        loaded.dom.contains("fill-opacity=\"0\"><title>"),
        "{kind}: no read-out"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    let n = figures_equal_the_json(&loaded.dom, &json, kind);
    assert!(n >= 10, "{kind} page: only {n} figures");
    loaded.dom
}

#[track_caller]
fn succeeded(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run(args: &[&str]) -> Output {
    bin()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ringport")
}

#[test]
fn every_kind_of_report_loads_offline_and_shows_the_json_figures() {
    let Some(chromium) = chromium() else { return };
    let dir = Scratch::new("browser");

    // The check can fail: a page that asks for an image is caught.
    let control = dir.path("control.html");
    std::fs::write(
        &control,
        format!(
            "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" \
             content=\"{}\"></head><body><img src=\"http://198.51.100.7/x.png\"></body></html>",
            ringport_report_policy()
        ),
    )
    .unwrap();
    let loaded = load(&chromium, &dir, &control);
    assert!(
        !complaints(&loaded.log).is_empty(),
        "a blocked request went unnoticed: {}",
        loaded.log
    );

    let server = Server::start("completion", &[]);
    let port = server.addr.port().to_string();
    let common = ["--connections", "4", "--threads", "1", "--size", "64"];

    // A run in open loop (corrected and uncorrected latency).
    let (json, html) = (dir.path("run.json"), dir.path("run.html"));
    let mut args = vec![
        "stress",
        "127.0.0.1",
        &port,
        "--rate",
        "2000",
        "--duration",
        "2",
    ];
    args.extend(common);
    args.extend(["--json", &json, "--html", &html]);
    succeeded(&run(&args), "stress --html");
    check(
        &chromium,
        &dir,
        &html,
        &json,
        "stress",
        &[
            "throughput",
            "latency",
            "latency-uncorrected",
            "spectrum",
            "fairness",
        ],
    );

    // Two agents merged.
    let start_at = format!(
        "{:.3}",
        (SystemTime::now() + Duration::from_secs(2))
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    );
    let agents: Vec<_> = (1..=2)
        .map(|i| {
            let (json, hlog) = (
                dir.path(&format!("a{i}.json")),
                dir.path(&format!("a{i}.hlog")),
            );
            let segment = format!("{i}/2");
            let mut args = vec![
                "stress",
                "127.0.0.1",
                &port,
                "--rate",
                "1000",
                "--duration",
                "2",
                "--segment",
                &segment,
                "--start-at",
                &start_at,
            ];
            args.extend(common);
            args.extend(["--json", &json, "--hdr-log", &hlog]);
            let child = bin()
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start an agent");
            (json, hlog, child)
        })
        .collect();
    let mut files = Vec::new();
    for (json, hlog, child) in agents {
        succeeded(&child.wait_with_output().unwrap(), "an agent");
        files.push(json);
        files.push(hlog);
    }
    let (json, html) = (dir.path("merged.json"), dir.path("merged.html"));
    let mut args = vec!["merge"];
    args.extend(files.iter().map(String::as_str));
    args.extend(["--json", &json, "--html", &html]);
    succeeded(&run(&args), "merge --html");
    check(
        &chromium,
        &dir,
        &html,
        &json,
        "merge",
        &["throughput", "latency", "spectrum", "fairness", "agents"],
    );

    // A latency search (a target any loopback server meets; the rate is capped low).
    let (json, html) = (dir.path("search.json"), dir.path("search.html"));
    let mut args = vec![
        "stress",
        "127.0.0.1",
        &port,
        "--find-max-rate",
        "--p99",
        "200ms",
        "--rate",
        "400",
        "--max-rate",
        "800",
        "--duration",
        "0.5",
        "--warmup",
        "0.2",
    ];
    args.extend(common);
    args.extend(["--json", &json, "--html", &html]);
    succeeded(&run(&args), "stress --find-max-rate --html");
    check(&chromium, &dir, &html, &json, "search", &["curve"]);
    drop(server);

    // A run over TLS with churn and resumption: the handshake figures, and the handshake
    // latency in the spectrum (from the run's `handshake` interval).
    let cert = dir.path("cert.pem");
    let server = Server::start(
        "completion",
        &["--tls-self-signed", "--tls-cert-out", &cert],
    );
    let port = server.addr.port().to_string();
    let (json, html) = (dir.path("tls.json"), dir.path("tls.html"));
    let mut args = vec![
        "stress",
        "127.0.0.1",
        &port,
        "--tls",
        "--tls-ca",
        &cert,
        "--tls-resume",
        "--messages-per-connection",
        "50",
        "--rate",
        "1000",
        "--duration",
        "1",
    ];
    args.extend(common);
    args.extend(["--json", &json, "--html", &html]);
    succeeded(&run(&args), "stress --tls --html");
    let dom = check(
        &chromium,
        &dir,
        &html,
        &json,
        "stress",
        &["throughput", "spectrum", "fairness"],
    );
    for key in [
        "tls.handshakes",
        "tls.resumed",
        "tls.handshakes_per_s",
        "tls.handshake_us.p99",
        "tls.failed.certificate",
    ] {
        assert!(
            dom.contains(&format!("data-key=\"{key}\"")),
            "the TLS page has no {key}"
        );
    }
    assert!(
        dom.contains("<title>handshake: "),
        "the TLS page's spectrum has no handshake series"
    );
    drop(server);

    // A benchmark of one design at one point.
    let out_dir = dir.path("bench");
    let html = dir.path("bench.html");
    let args = [
        "bench",
        "--designs",
        "completion-epoll",
        "--connections",
        "1,2",
        "--size",
        "64",
        "--duration",
        "0.5",
        "--warmup",
        "0",
        "--repeat",
        "1",
        "--client-threads",
        "1",
        "--no-churn",
        "--out",
        &out_dir,
        "--html",
        &html,
    ];
    succeeded(&run(&args), "bench --html");
    let json = format!("{out_dir}/results.json");
    check(
        &chromium,
        &dir,
        &html,
        &json,
        "bench",
        &["throughput-64B", "p99-64B", "server-cpu-64B"],
    );
}

/// A UDP run's page in the browser: the datagrams lost and the jitter per second as charts,
/// the flow table, every figure equal to the JSON's (each flow's counts and jitter included).
#[test]
fn a_udp_run_page_shows_its_flows_and_jitter() {
    let Some(chromium) = chromium() else { return };
    let dir = Scratch::new("udp");
    let mut cmd = bin();
    cmd.args(["serve", "--port", "0", "--udp-only"]);
    let server = Server::spawn(cmd);
    let port = server.addr.port().to_string();
    let (json, html) = (dir.path("udp.json"), dir.path("udp.html"));
    let out = run(&[
        "stress",
        "--udp",
        "127.0.0.1",
        &port,
        "--connections",
        "3",
        "--rate",
        "600",
        "--duration",
        "2",
        "--json",
        &json,
        "--html",
        &html,
    ]);
    succeeded(&out, "stress --udp --html");
    let dom = check(
        &chromium,
        &dir,
        &html,
        &json,
        "stress",
        &["datagrams-lost", "datagrams-jitter"],
    );
    assert!(dom.contains("id=\"datagram-flows-table\""));
    for key in [
        "datagram_flows.0.flow",
        "datagram_flows.2.sent",
        "datagram_flows.2.jitter_us",
    ] {
        assert!(dom.contains(&format!("data-key=\"{key}\"")), "{key}");
    }
}

/// No browser needed: a run whose every connect is refused counts each error over time (before
/// the measured phase), and its page shows them by cause with the JSON's counts.
#[test]
fn refused_connections_are_errors_over_time_on_the_page() {
    let dir = Scratch::new("refused");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
        .to_string();
    let (json, html) = (dir.path("r.json"), dir.path("r.html"));
    let out = run(&[
        "stress",
        "127.0.0.1",
        &port,
        "--connections",
        "3",
        "--count",
        "1",
        "--threads",
        "1",
        "--json",
        &json,
        "--html",
        &html,
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["errors_by_kind"]["connect_failed"], 3, "{r}");
    let over_time = r["errors_over_time"].as_array().unwrap();
    let total: u64 = over_time
        .iter()
        .map(|s| s["errors"]["connect_failed"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 3, "{over_time:?}");
    assert!(
        over_time[0]["second"].is_null(),
        "connects fail before measuring"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("data-passed=\"false\""));
    assert!(page.contains("data-key=\"errors_by_kind.connect_failed\" data-value=\"3\""));
    assert!(page.contains("3 errors before the measured phase"));
}

/// The policy the pages carry (the control page uses it too).
fn ringport_report_policy() -> &'static str {
    ringport_report::export::html::CONTENT_SECURITY_POLICY
}
