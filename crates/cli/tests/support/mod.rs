//! Test helpers: start the real `ringport` binary, talk TCP to it, watch its process.
//!
//! Every helper is bounded in time and panics with a message that points at the caller.
#![allow(dead_code)]

pub mod netns;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

pub use ringport_server::Ready;

/// The server designs every server test runs against: the completion model on each backend of
/// the port, and the two naive models. On Windows `completion` is the completion model on IOCP
/// and there is no `completion-epoll`.
#[cfg(unix)]
pub const MODELS: &[&str] = &["completion", "completion-epoll", "threaded", "single"];
/// The server designs every server test runs against: the completion model on each backend of
/// the port, and the two naive models. On Windows `completion` is the completion model on IOCP
/// and there is no `completion-epoll`.
#[cfg(windows)]
pub const MODELS: &[&str] = &["completion", "threaded", "single"];

/// Those of `models` that exist on this system (no `completion-epoll` on Windows).
pub fn models(models: &[&'static str]) -> Vec<&'static str> {
    models
        .iter()
        .copied()
        .filter(|m| MODELS.contains(m))
        .collect()
}

/// The client backends of `stress --backend` on this system.
#[cfg(unix)]
pub const CLIENT_BACKENDS: &[&str] = &["uring", "epoll"];
/// The client backends of `stress --backend` on this system.
#[cfg(windows)]
pub const CLIENT_BACKENDS: &[&str] = &["iocp"];

/// The `serve` flags that select `model` (a name from [`MODELS`]).
pub fn model_args(model: &str) -> Vec<&'static str> {
    match model {
        #[cfg(unix)]
        "completion" => vec!["--model", "completion", "--backend", "uring"],
        #[cfg(windows)]
        "completion" => vec!["--model", "completion", "--backend", "iocp"],
        "completion-epoll" => vec!["--model", "completion", "--backend", "epoll"],
        "threaded" => vec!["--model", "threaded"],
        "single" => vec!["--model", "single"],
        other => panic!("unknown model {other}"),
    }
}

/// Expands each test body once per server model: `fn name(model: &str) { ... }` becomes a module
/// `name` with one `#[test]` per model.
#[macro_export]
macro_rules! for_each_model {
    ($($(#[$attr:meta])* fn $name:ident($model:ident: &str) $body:block)*) => {$(
        $(#[$attr])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn body($model: &str) $body
            #[test]
            fn completion() { body("completion") }
            // epoll exists only on Linux.
            #[cfg(unix)]
            #[test]
            fn completion_epoll() { body("completion-epoll") }
            #[test]
            fn threaded() { body("threaded") }
            #[test]
            fn single() { body("single") }
        }
    )*};
}

/// One test per client backend of the port on this system (`uring` and `epoll` on Unix, `iocp`
/// on Windows), in two forms: `for_each_backend!(name, ...)` calls the function `name(backend)`
/// from a module `name`; `for_each_backend! { fn name(backend: &str) { ... } }` makes the body
/// that module's function.
#[macro_export]
macro_rules! for_each_backend {
    ($(fn $name:ident($backend:ident: &str) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn body($backend: &str) $body
            #[cfg(unix)]
            #[test]
            fn uring() { body("uring") }
            #[cfg(unix)]
            #[test]
            fn epoll() { body("epoll") }
            #[cfg(windows)]
            #[test]
            fn iocp() { body("iocp") }
        }
    )*};
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[cfg(unix)]
            #[test]
            fn uring() { super::$name("uring") }
            #[cfg(unix)]
            #[test]
            fn epoll() { super::$name("epoll") }
            #[cfg(windows)]
            #[test]
            fn iocp() { super::$name("iocp") }
        }
    )*};
}

/// The `ringport` binary under test.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ringport"))
}

/// A running `ringport serve`, killed when dropped.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it said it is on its ready line (`--ready-json`): model, backend, workers.
    pub ready: Ready,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

fn pump(r: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut line = String::new();
        while r.read_line(&mut line).unwrap_or(0) > 0 {
            into.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
}

impl Server {
    /// Starts `ringport serve --port 0` for `model` with `extra` flags and waits (at most 10 s)
    /// for its `listening on` line.
    #[track_caller]
    pub fn start(model: &str, extra: &[&str]) -> Server {
        let mut cmd = bin();
        cmd.args(["serve", "--port", "0", "--workers", "2"]);
        cmd.args(model_args(model));
        cmd.args(extra);
        Server::spawn(cmd)
    }

    /// Like [`Server::start`], with the server's open-file limit (`ulimit -n`) set to `nofile`.
    #[track_caller]
    pub fn start_with_fd_limit(model: &str, extra: &[&str], nofile: u32) -> Server {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "ulimit -n \"$0\" && exec \"$@\""])
            .arg(nofile.to_string())
            .arg(env!("CARGO_BIN_EXE_ringport"))
            .args(["serve", "--port", "0"])
            .args(model_args(model))
            .args(extra);
        Server::spawn(cmd)
    }

    /// Spawns `cmd` (a `serve` command line) and waits for its `listening on` line, then reads
    /// its ready line: on stdout (`--ready-json -`, added unless `cmd` has a `--ready-json`), or
    /// from the file `cmd` names, which must exist by then.
    #[track_caller]
    pub fn spawn(mut cmd: Command) -> Server {
        let ready_file = cmd
            .get_args()
            .skip_while(|a| *a != "--ready-json")
            .nth(1)
            .map(std::path::PathBuf::from);
        if ready_file.is_none() {
            cmd.args(["--ready-json", "-"]);
        }
        let ready_file = ready_file.filter(|p| p.as_os_str() != "-");
        // Quiet unless the caller chose a level.
        if !cmd.get_envs().any(|(k, _)| k == "RUST_LOG") {
            cmd.env("RUST_LOG", "warn");
        }
        // On Windows `signal` writes `q` to the server's standard input (see there).
        cmd.stdin(if cfg!(windows) {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn ringport serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        pump(child.stderr.take().unwrap(), stderr.clone());
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let stdout = Arc::new(Mutex::new(String::new()));
        let rest = stdout.clone();
        let ready_on_stdout = ready_file.is_none();
        std::thread::spawn(move || {
            let mut r = BufReader::new(out);
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            if ready_on_stdout {
                let _ = r.read_line(&mut line);
            }
            let _ = tx.send(line);
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                rest.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| {
                panic!(
                    "no `listening on` line within 10 s; stderr: {}",
                    stderr.lock().unwrap()
                )
            });
        let (first, second) = line.split_once('\n').unwrap_or((&line, ""));
        let addr: SocketAddr = first
            .trim_end()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "first stdout line was {line:?}; stderr: {}",
                    stderr.lock().unwrap()
                )
            })
            .parse()
            .expect("an IP:PORT after `listening on`");
        let ready = match &ready_file {
            Some(path) => std::fs::read_to_string(path).unwrap_or_else(|e| {
                panic!(
                    "no ready file {} at the listening line: {e}",
                    path.display()
                )
            }),
            None => second.to_string(),
        };
        let ready = Ready::from_json(&ready)
            .unwrap_or_else(|e| panic!("the ready line {ready:?} does not parse: {e}"));
        assert_eq!(ready.addr, addr, "the ready line's address");
        Server {
            child,
            addr,
            ready,
            stdout,
            stderr,
        }
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Open file descriptors of the server process (Linux: `/proc/PID/fd`; 0 elsewhere).
    pub fn fd_count(&self) -> usize {
        ringport_os::proc::fd_count(self.pid()).unwrap_or(0)
    }

    /// Resident memory of the server process, in KiB (Linux: `/proc/PID/status`; 0
    /// elsewhere).
    pub fn rss_kib(&self) -> u64 {
        ringport_os::proc::memory(self.pid()).map_or(0, |m| m.rss_kib)
    }

    /// CPU time the server process has used (user + system), in seconds (Linux:
    /// `/proc/PID/stat`; 0 elsewhere).
    pub fn cpu_seconds(&self) -> f64 {
        ringport_os::cpu::of_process(self.pid()).map_or(0.0, |c| c.total().as_secs_f64())
    }

    /// Waits (at most `limit`) until the server's open descriptors are back to `baseline` or
    /// fewer, and returns how long that took.
    #[track_caller]
    pub fn fds_back_to(&self, baseline: usize, limit: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let now = self.fd_count();
            if now <= baseline {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "{now} descriptors open, not back to {baseline} within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Asks for the graceful shutdown as `TERM` or `INT` does on Linux. Windows has no signals,
    /// and Ctrl-Break cannot be sent between console-less processes (Wine refuses
    /// `GenerateConsoleCtrlEvent` there): `q` and a newline on the server's standard input, which
    /// `serve` reads on Windows also from a pipe. Ctrl-C itself is tested from Linux in
    /// `windows_interop.rs` (`kill -INT` on the Wine process is a CTRL_C_EVENT).
    #[cfg(windows)]
    pub fn signal(&mut self, name: &str) {
        assert!(
            matches!(name, "TERM" | "INT"),
            "no signal {name} on Windows"
        );
        let stdin = self
            .child
            .stdin
            .as_mut()
            .expect("the server's stdin is piped");
        stdin.write_all(b"q\n").expect("write q to the server");
        stdin.flush().expect("flush the server's stdin");
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`).
    #[cfg(unix)]
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// Waits for the process to exit, at most `limit`.
    #[track_caller]
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Give the pump threads a moment to collect the last lines.
                std::thread::sleep(Duration::from_millis(50));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the server printed on stdout after the `listening on` line and its ready line.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// What the server printed on stderr.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// From the summary printed at exit: (connections served, bytes echoed, bytes received).
    #[track_caller]
    pub fn summary_counts(&self) -> (u64, u64, u64) {
        let out = self.stdout();
        let line = out
            .lines()
            .find(|l| l.starts_with("summary:"))
            .unwrap_or_else(|| panic!("no summary in {out:?}"));
        let num_before = |word: &str| -> u64 {
            let at = line
                .find(word)
                .unwrap_or_else(|| panic!("no {word:?} in {line}"));
            line[..at]
                .split_whitespace()
                .last()
                .and_then(|n| n.trim_start_matches('(').parse().ok())
                .unwrap_or_else(|| panic!("no number before {word:?} in {line}"))
        };
        (
            // `1 connection served`, `2 connections served`.
            num_before(" connection"),
            num_before(" bytes echoed"),
            num_before(" received)"),
        )
    }

    /// From the last `--stats` line: (connections open, accepted, bytes in, bytes out), or
    /// `None` before the first.
    pub fn last_stats(&self) -> Option<(u64, u64, u64, u64)> {
        let err = self.stderr();
        let line = err.lines().rev().find(|l| l.starts_with("stats: "))?;
        let num_before = |word: &str| -> Option<u64> {
            let at = line.find(word)?;
            line[..at].split_whitespace().last()?.parse().ok()
        };
        let after = |word: &str| -> Option<u64> {
            let at = line.find(word)? + word.len();
            line[at..].split_whitespace().next()?.parse().ok()
        };
        Some((
            num_before(" open,")?,
            num_before(" accepted")?,
            after(", in ")?,
            after(", out ")?,
        ))
    }

    /// Waits (at most `limit`) until `cond` holds, polling.
    #[track_caller]
    pub fn eventually(&self, limit: Duration, what: &str, mut cond: impl FnMut(&Server) -> bool) {
        let deadline = Instant::now() + limit;
        while !cond(self) {
            assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A new connection with generous timeouts.
    #[track_caller]
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Raises this process's soft open-file limit to its hard limit (servers it starts inherit
/// it); returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    let _ = ringport_os::limits::raise_nofile();
    ringport_os::limits::nofile().expect("getrlimit").0
}

/// Open descriptors of this (the test) process (Linux; 0 elsewhere).
pub fn own_fd_count() -> usize {
    ringport_os::proc::fd_count(std::process::id()).unwrap_or(0)
}

/// A small deterministic generator (xorshift) so failures reproduce.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// In `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Writes `data` in random chunks while another thread reads the echo; returns what came back.
#[track_caller]
pub fn echo_chunked(stream: TcpStream, data: &[u8], seed: u64) -> Vec<u8> {
    let mut reader = stream.try_clone().unwrap();
    let want = data.len();
    let read = std::thread::spawn(move || {
        let mut got = Vec::with_capacity(want);
        let mut buf = vec![0u8; 64 * 1024];
        while got.len() < want {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => panic!("read after {} of {want} bytes: {e}", got.len()),
            }
        }
        got
    });
    let mut rng = Rng::new(seed);
    let mut w = stream;
    let mut at = 0;
    while at < data.len() {
        let n = rng.range(1, 70_000).min(data.len() - at);
        w.write_all(&data[at..at + n]).expect("write");
        at += n;
    }
    read.join().expect("reader thread")
}

/// Asserts two byte strings are equal, naming the first differing offset.
#[track_caller]
pub fn assert_same(got: &[u8], want: &[u8]) {
    if let Some(at) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!(
            "byte {at} differs: got {:#04x}, want {:#04x}",
            got[at], want[at]
        );
    }
    assert_eq!(got.len(), want.len(), "length differs");
}

/// Sends `msg` on `s` and asserts the same bytes come back.
#[track_caller]
pub fn round_trip(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).unwrap();
    assert_same(&back, msg);
}

/// The graceful drain: 50 connections send up to 60,000 random bytes each, `server` is sent
/// SIGTERM, and every connection gets its echo, then its end; the server exits zero within 8 s.
#[track_caller]
pub fn sigterm_echoes_what_was_sent(server: &mut Server) {
    let mut rng = Rng::new(11);
    let mut conns = Vec::new();
    for _ in 0..50 {
        let mut s = server.connect();
        let n = rng.range(1, 60_000);
        let data = rng.bytes(n);
        s.write_all(&data).unwrap();
        conns.push((s, data));
    }
    server.signal("TERM");
    for (i, (mut s, data)) in conns.into_iter().enumerate() {
        let mut got = Vec::new();
        s.read_to_end(&mut got)
            .unwrap_or_else(|e| panic!("connection {i}: {e} after {} bytes", got.len()));
        assert_same(&got, &data);
    }
    let status = server.wait_exit(Duration::from_secs(8));
    assert!(
        status.success(),
        "exit status {status:?}; stderr: {}",
        server.stderr()
    );
}

/// `ringport stress ARGS`, run to its end with standard input closed.
pub fn stress(args: &[&str]) -> Output {
    bin()
        .arg("stress")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ringport stress")
}

/// `ringport stress ARGS`, which must pass (exit code 0, no errors): its JSON. A failure shows
/// the arguments, what `stress` said, and `peer_log()` (what the peer it ran against logged)
/// under the name `peer`.
#[track_caller]
pub fn stress_passes(
    args: &[&str],
    peer: &str,
    peer_log: impl FnOnce() -> String,
) -> serde_json::Value {
    let out = stress(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}\n{peer}: {}",
        stderr(&out),
        peer_log()
    );
    let j = json_of(&out);
    assert_eq!(j["errors"], 0, "{j}");
    j
}

/// What a command printed on stdout, as JSON (`--json -`); a panic showing both streams if it
/// is not.
#[track_caller]
pub fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The lines of `stderr` that say something: neither empty nor `stress`'s progress lines
/// (printed every second when stderr is not a terminal, which a slow machine may reach before
/// a refusal).
pub fn said_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("progress: "))
        .collect()
}

/// What a command printed on stderr.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A free loopback port (bound, then released for the process that takes it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A fresh, empty directory `ringport-NAME-PID-PORT` under the system's temporary directory
/// (the free port keeps two of one test's directories apart).
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ringport-{name}-{}-{}",
        std::process::id(),
        free_port()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

/// A directory `ringport-NAME-PID` under the system's temporary directory, fresh when made and
/// removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ringport-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }

    /// The path of `file` in the directory.
    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }

    /// The path of `file` in the directory, as a command-line argument.
    pub fn arg(&self, file: &str) -> String {
        self.path(file).to_str().expect("a UTF-8 path").to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether the tests run under CI (`CI=true`), where a missing program is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Says loudly that `what` is missing and the test is skipped; under `CI=true` a failure
/// instead, naming `install` (how to get it).
#[track_caller]
pub fn skip_missing(what: &str, install: &str) {
    assert!(
        !in_ci(),
        "{what} is not installed and CI=true: install it ({install}; .ci/run does)"
    );
    eprintln!(
        "\n=== SKIPPED: {what} is not installed; install it (Debian: {install}) to run this \
         test ===\n"
    );
}

/// `program` from `PATH` or the usual system directories; `None` (after saying so loudly)
/// when it is not installed, which is a failure under `CI=true`.
#[track_caller]
pub fn require(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(
            [
                "/usr/bin",
                "/usr/sbin",
                "/usr/local/bin",
                "/usr/local/sbin",
                "/sbin",
            ]
            .map(PathBuf::from),
        )
        .map(|d| d.join(program))
        .find(|p| p.is_file());
    if found.is_none() {
        skip_missing(program, &format!("apt-get install {program}"));
    }
    found
}

/// Waits (at most `limit`) until something accepts TCP connections on 127.0.0.1:`port`. Panics,
/// with what `log` returns, if `child` (the program `name` that is to listen there) exits first
/// or the time runs out.
#[track_caller]
pub fn wait_accepting(
    port: u16,
    limit: Duration,
    name: &str,
    child: &mut Child,
    log: impl Fn() -> String,
) {
    let deadline = Instant::now() + limit;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{name} exited at start ({status}): {}", log());
        }
        assert!(
            Instant::now() < deadline,
            "{name} not accepting on port {port} within {limit:?}: {}",
            log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A server program started by a test (redis, nginx, socat, a Python echo...), killed and its
/// directory removed when dropped.
pub struct Daemon {
    /// What the messages call it.
    pub name: &'static str,
    pub child: Child,
    /// Its own directory: configuration, logs, certificates.
    pub dir: PathBuf,
    /// The loopback port it listens on.
    pub port: u16,
}

impl Daemon {
    /// Starts `program` with `args`, its standard output and error into `dir/output.log`, and
    /// waits, at most 10 s, until it accepts on `port`.
    #[track_caller]
    pub fn start(
        name: &'static str,
        program: &Path,
        args: &[String],
        dir: &Path,
        port: u16,
    ) -> Self {
        let log = std::fs::File::create(dir.join("output.log")).expect("create the log");
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        Daemon::accepting(
            name,
            child,
            dir.to_path_buf(),
            port,
            Duration::from_secs(10),
        )
    }

    /// `child`, already started, once it accepts on `port` (at most `limit`).
    #[track_caller]
    pub fn accepting(
        name: &'static str,
        child: Child,
        dir: PathBuf,
        port: u16,
        limit: Duration,
    ) -> Self {
        let mut d = Daemon {
            name,
            child,
            dir,
            port,
        };
        let dir = d.dir.clone();
        wait_accepting(port, limit, name, &mut d.child, || Daemon::log_in(&dir));
        d
    }

    /// `ringport stress TARGET --threads 2 --json - --timeout 5 ARGS`, where `target` names
    /// this daemon (`127.0.0.1 PORT`, `127.0.0.1:PORT`, with `--tls`...).
    pub fn run_stress(&self, target: &[&str], args: &[&str]) -> Output {
        bin()
            .arg("stress")
            .args(target)
            .args(["--threads", "2", "--json", "-", "--timeout", "5"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ringport stress")
    }

    /// The JSON of `out`, a `stress` run with `args` against this daemon that must have passed
    /// (exit code 0, no errors); a failure shows what `stress` and the daemon said.
    #[track_caller]
    pub fn passed(&self, out: &Output, args: &[&str]) -> serde_json::Value {
        let j = json_of(out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {args:?}\n{}\nserver: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        assert_eq!(j["errors"], 0, "{j}");
        j
    }

    /// What the server wrote: `output.log` and `error.log` in its directory.
    pub fn log(&self) -> String {
        Daemon::log_in(&self.dir)
    }

    fn log_in(dir: &Path) -> String {
        ["output.log", "error.log"]
            .iter()
            .filter_map(|n| std::fs::read_to_string(dir.join(n)).ok())
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// HAProxy's `show stat` on its admin socket `sock`: one map (column name to value: `pxname`,
/// `svname`, `status`, `check_status`, `stot`...) per line; empty while the socket does not
/// answer.
#[cfg(unix)]
pub fn haproxy_stats(sock: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(sock) else {
        return Vec::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(b"show stat\n").unwrap();
    let mut csv = String::new();
    let _ = s.read_to_string(&mut csv);
    let mut lines = csv.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let cols: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            cols.iter()
                .zip(l.split(','))
                .map(|(c, v)| (c.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// A certificate authority made for a test (rcgen), and the certificates it issues.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl TestCa {
    /// A new CA named `common_name`.
    pub fn new(common_name: &str) -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyUsagePurpose};
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, common_name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        TestCa { cert, key }
    }

    /// The CA's certificate, PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A certificate for the names `sans` (DNS names or IP addresses; the first is also its
    /// common name) that this CA signed: (certificate, private key), both PEM.
    pub fn issue(&self, sans: &[&str]) -> (String, String) {
        self.issue_valid(sans, false)
    }

    /// Like [`TestCa::issue`], valid only in 2020: expired.
    pub fn issue_expired(&self, sans: &[&str]) -> (String, String) {
        self.issue_valid(sans, true)
    }

    fn issue_valid(&self, sans: &[&str], expired: bool) -> (String, String) {
        let mut p =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, sans[0]);
        if expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}
