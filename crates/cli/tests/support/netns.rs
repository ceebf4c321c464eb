//! Test hosts as network namespaces (`scripts/netns.sh`): N hosts at 198.18.0.1..N joined by a
//! bridge in its own namespace, reachable only from each other, always torn down.
//!
//! [`Hosts::up`] names its namespaces with a prefix unique to this test process and call
//! (`rpt-PID-K`), first deletes those left by test processes that are gone (a run killed before
//! its `Drop` ran), and deletes its own in `Drop`, which also runs when the test panics. Where
//! namespaces cannot be created (not root, no `ip`), it returns `None` after printing why, and
//! the test returns early; under `CI=true` that is a failure instead.

use std::io::Read;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::Server;

/// The prefix of every namespace these tests create.
const PREFIX: &str = "rpt";

/// The harness script.
pub fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/netns.sh")
}

/// N test hosts; their namespaces are deleted (and every process in them killed) on drop.
pub struct Hosts {
    prefix: String,
    n: usize,
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Runs `cmd`, returning its output, or a message naming what failed.
fn run(cmd: &mut Command) -> Result<Output, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out)
}

/// Deletes the namespaces of test processes that no longer exist.
fn remove_stale() {
    let Ok(out) = run(Command::new("ip").args(["netns", "list"])) else {
        return;
    };
    let mut seen = std::collections::BTreeSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        // rpt-PID-K-h1 / rpt-PID-K-br
        let mut parts = name.splitn(4, '-');
        let (Some(PREFIX), Some(pid), Some(k)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            seen.insert(format!("{PREFIX}-{pid}-{k}"));
        }
    }
    for prefix in seen {
        eprintln!("netns: removing stale test hosts {prefix}-*");
        let _ = run(Command::new(script()).args(["down", &prefix]));
    }
}

impl Hosts {
    /// Creates `n` hosts for the calling test, or returns `None` (with a line saying why) where
    /// this machine cannot create network namespaces. Under `CI=true` that panics instead.
    #[track_caller]
    pub fn up(n: usize) -> Option<Hosts> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let prefix = format!(
            "{PREFIX}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        remove_stale();
        let result = if !is_root() {
            Err("not running as root".to_string())
        } else {
            run(Command::new(script()).args(["up", &prefix, &n.to_string()])).map(|_| ())
        };
        match result {
            Ok(()) => Some(Hosts { prefix, n }),
            Err(why) => {
                let _ = run(Command::new(script()).args(["down", &prefix]));
                if in_ci() {
                    panic!(
                        "CI=true and the test hosts (network namespaces) cannot be created: {why}"
                    );
                }
                eprintln!(
                    "SKIPPED: this test needs network namespaces (root, iproute2), which cannot be \
                     created here: {why}. Under CI=true this is a failure."
                );
                None
            }
        }
    }

    /// Host `i`'s address (hosts count from 1).
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        assert!((1..=self.n).contains(&i), "no host {i} of {}", self.n);
        Ipv4Addr::new(198, 18, 0, i as u8)
    }

    /// Host `i`'s namespace.
    pub fn ns(&self, i: usize) -> String {
        assert!((1..=self.n).contains(&i), "no host {i} of {}", self.n);
        format!("{}-h{i}", self.prefix)
    }

    /// `program` to be run on host `i`.
    pub fn command(&self, i: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(i)]).arg(program);
        cmd
    }

    /// The `ringport` binary on host `i`.
    pub fn ringport(&self, i: usize) -> Command {
        self.command(i, env!("CARGO_BIN_EXE_ringport"))
    }

    /// Runs `args` (a program and its arguments, e.g. `nft -f FILE`) on host `i`; panics if it
    /// fails.
    #[track_caller]
    pub fn sh(&self, i: usize, args: &[&str]) -> String {
        let out = run(self.command(i, args[0]).args(&args[1..])).unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `ip ARGS` in the bridge's namespace; panics if it fails.
    #[track_caller]
    pub fn bridge(&self, args: &[&str]) {
        let br = format!("{}-br", self.prefix);
        run(Command::new("ip").args(["-n", &br]).args(args)).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Runs `args` (a program and its arguments, e.g. `nft ...`) in the bridge's namespace, the
    /// network between the hosts; panics if it fails. Host `i`'s port there is `hI`.
    #[track_caller]
    pub fn on_bridge(&self, args: &[&str]) -> String {
        let br = format!("{}-br", self.prefix);
        let out = run(Command::new("ip").args(["netns", "exec", &br]).args(args))
            .unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Takes host `i`'s link down (its port on the bridge): packets to and from it are dropped
    /// until [`Hosts::link_up`]; its sockets see nothing.
    #[track_caller]
    pub fn link_down(&self, i: usize) {
        self.bridge(&["link", "set", &format!("h{i}"), "down"]);
    }

    /// Brings host `i`'s link back up.
    #[track_caller]
    pub fn link_up(&self, i: usize) {
        self.bridge(&["link", "set", &format!("h{i}"), "up"]);
    }

    /// Deletes host `i` from the network: its veth pair first (so nothing it sends afterwards,
    /// no FIN, no RST, reaches anyone), then every process on it, then its namespace.
    #[track_caller]
    pub fn delete_host(&self, i: usize) {
        self.bridge(&["link", "del", &format!("h{i}")]);
        let ns = self.ns(i);
        if let Ok(out) = run(Command::new("ip").args(["netns", "pids", &ns])) {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = run(Command::new("ip").args(["netns", "del", &ns]));
    }

    /// Starts `ringport serve --bind ADDR --port PORT EXTRA...` on host `i` (no per-IP cap
    /// unless `extra` sets one: every peer here is one of a few test hosts).
    #[track_caller]
    pub fn serve(&self, i: usize, port: u16, extra: &[&str]) -> Server {
        let mut cmd = self.ringport(i);
        cmd.args(["serve", "--bind", &self.addr(i).to_string()])
            .args(["--port", &port.to_string()]);
        if !extra.contains(&"--max-per-ip") {
            cmd.args(["--max-per-ip", "0"]);
        }
        cmd.args(extra);
        Server::spawn(cmd)
    }

    /// Runs `ringport stress TARGET ARGS... --json -` on host `i`, at most `limit`, and returns
    /// its JSON result; panics if it does not finish in time or prints no result.
    #[track_caller]
    pub fn stress(&self, i: usize, target: &str, args: &[&str], limit: Duration) -> Stress {
        let mut child = self
            .ringport(i)
            .args(["stress", target])
            .args(args)
            .args(["--json", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ringport stress");
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "stress did not finish within {limit:?}; stderr: {}",
                    err.join().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = out.join().unwrap();
        let stderr = err.join().unwrap();
        let json: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!("stress ({status}) printed no JSON result ({e}): {stdout}\nstderr: {stderr}")
        });
        Stress {
            json,
            stderr,
            elapsed: start.elapsed(),
        }
    }
}

/// What one `ringport stress` run reported.
pub struct Stress {
    /// Its `--json` result.
    pub json: serde_json::Value,
    /// Its human report and warnings.
    pub stderr: String,
    /// How long it ran.
    pub elapsed: Duration,
}

impl Stress {
    /// A number from the JSON result at a `/`-separated path, e.g. `latency_us/p99`.
    #[track_caller]
    pub fn num(&self, path: &str) -> f64 {
        let v = self
            .json
            .pointer(&format!("/{path}"))
            .unwrap_or_else(|| panic!("no {path} in {}", self.json));
        v.as_f64().unwrap_or_else(|| panic!("{path} is {v}"))
    }

    /// Errors of one kind (`mismatch`, `short_echo`, `early_close`, `reset`, `timeout`,
    /// `connect_failed`, `other`).
    pub fn errors(&self, kind: &str) -> u64 {
        self.num(&format!("errors_by_kind/{kind}")) as u64
    }

    /// One line: messages, errors by kind, latency percentiles.
    pub fn figure(&self) -> String {
        let j = &self.json;
        format!(
            "{} messages, {} bytes, errors {}, latency us p50 {} p99 {} p99.9 {} max {}",
            j["messages"],
            j["bytes"],
            j["errors_by_kind"],
            j["latency_us"]["p50"],
            j["latency_us"]["p99"],
            j["latency_us"]["p999"],
            j["latency_us"]["max"]
        )
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        if let Err(e) = run(Command::new(script()).args(["down", &self.prefix])) {
            eprintln!("netns: tearing down {}-*: {e}", self.prefix);
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
