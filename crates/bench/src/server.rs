//! A server under test as a child process: started on a free port, watched through `/proc`,
//! stopped.
//!
//! This module is responsible for the life of one server: start it (ringport's own models as
//! `ringport serve --port 0 --ready-json - ...`, whose ready line says where it listens and what
//! it runs on; an external command with `{port}` replaced by a free port, then polled until it
//! accepts), sample its CPU and memory every [`SAMPLE_EVERY`] while the load runs, and stop it:
//! SIGTERM, which ringport's servers must answer by exiting 0; external servers are killed if
//! they do not exit promptly.
//!
//! Both output streams of the child are read by threads all along, so a chatty server never
//! blocks on a full pipe, and its last lines are at hand when it fails. A server dies with the
//! bench process (`PR_SET_PDEATHSIG`, SIGKILL), whatever ends it: it must be started from the
//! thread that runs the bench (the kernel signals the child when that thread ends).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use ringport_server::{Model, Ready};

use crate::procfs::{self, ProcSample};
use crate::schedule::{Design, ServerSpec};
use crate::BenchError;

/// How often a running server's `/proc` counters are read.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// How long a server may take to be ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server may take to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of the server's standard error kept for error messages.
const KEEP_LINES: usize = 40;

/// The tail of a child's output stream, filled by a reader thread.
#[derive(Debug, Default, Clone)]
struct Tail(Arc<Mutex<VecDeque<String>>>);

impl Tail {
    fn push(&self, line: String) {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() == KEEP_LINES {
            q.pop_front();
        }
        q.push_back(line);
    }

    fn text(&self) -> String {
        let q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        q.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// What a server printed last, to end a message about it: `; its last output:` and the lines,
/// or that it printed nothing (never an empty `its last output:`).
fn last_output(text: &str) -> String {
    if text.trim().is_empty() {
        "; it printed nothing on stderr".to_string()
    } else {
        format!("; its last output:\n{text}")
    }
}

/// Reads `from` line by line into `tail`, sending each line on `lines` too when given.
fn spawn_reader(
    from: impl Read + Send + 'static,
    tail: Tail,
    lines: Option<mpsc::Sender<String>>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut r = BufReader::new(from);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                    if let Some(tx) = &lines {
                        let _ = tx.send(line.clone());
                    }
                    tail.push(line);
                }
            }
        }
    })
}

/// A free TCP port on 127.0.0.1 (bound, then released: another program could take it in
/// between, which the start-up check then reports).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Options for starting a server.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// The `ringport` binary.
    pub ringport_exe: std::path::PathBuf,
    /// `--workers` for the completion model.
    pub workers: Option<u32>,
}

/// A running server.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The command line, with the port.
    pub command: String,
    external: bool,
    stderr: Tail,
    stdout: Tail,
    sampler: Option<Sampler>,
    ready: Option<Ready>,
}

/// The command line that starts `design`, with `{port}` left in for an external one.
pub fn command_line(design: &Design, opts: &StartOptions) -> String {
    match &design.server {
        ServerSpec::Ringport { .. } => format!(
            "{} {}",
            opts.ringport_exe.display(),
            ringport_args(design, opts).join(" ")
        ),
        ServerSpec::External { command } => command.clone(),
    }
}

fn ringport_args(design: &Design, opts: &StartOptions) -> Vec<String> {
    let ServerSpec::Ringport { model, backend } = design.server else {
        return Vec::new();
    };
    // `--max-per-ip 0`: every load connection comes from 127.0.0.1, and the default per-address
    // limit (a defence for exposed servers) would refuse the sweep's larger points.
    let mut args: Vec<String> = [
        "serve",
        "--port",
        "0",
        "--model",
        model.name(),
        "--backend",
        backend.name(),
        "--max-per-ip",
        "0",
        "--ready-json",
        "-",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let (Some(w), Model::Completion) = (opts.workers, model) {
        args.push("--workers".into());
        args.push(w.to_string());
    }
    args
}

impl ServerProcess {
    /// Starts `design` and waits until it accepts connections.
    ///
    /// # Errors
    ///
    /// [`BenchError::Server`] when it cannot be started, exits, or is not ready within
    /// [`START_TIMEOUT`], with the last lines it wrote.
    pub fn start(design: &Design, opts: &StartOptions) -> Result<ServerProcess, BenchError> {
        let fail = |detail: String| BenchError::Server {
            design: design.name.clone(),
            detail,
        };
        let (mut cmd, command, external, port) = match &design.server {
            ServerSpec::Ringport { .. } => {
                let mut cmd = Command::new(&opts.ringport_exe);
                cmd.args(ringport_args(design, opts));
                (cmd, command_line(design, opts), false, 0)
            }
            ServerSpec::External { command } => {
                let port = free_port().map_err(|e| fail(format!("no free port: {e}")))?;
                let line = command.replace("{port}", &port.to_string());
                let mut cmd = Command::new("sh");
                // `exec`: the measured PID is the server itself, not a shell around it.
                cmd.arg("-c").arg(format!("exec {line}"));
                (cmd, line, true, port)
            }
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Killed with bench, however bench ends (SIGKILL included): no server left running.
        ringport_port::os::die_with_parent(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| fail(format!("cannot start `{command}`: {e}")))?;
        let (stdout, stderr) = (Tail::default(), Tail::default());
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            spawn_reader(out, stdout.clone(), Some(tx));
        }
        if let Some(err) = child.stderr.take() {
            spawn_reader(err, stderr.clone(), None);
        }
        let mut server = ServerProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            command,
            external,
            stderr,
            stdout,
            sampler: None,
            ready: None,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let ready = if external {
            server.wait_accepting(deadline)
        } else {
            server.wait_ready(&rx, deadline)
        };
        if let Err(why) = ready {
            server.kill();
            return Err(fail(format!(
                "`{}` {why}{}",
                server.command,
                last_output(&server.stderr.text())
            )));
        }
        Ok(server)
    }

    /// Waits for the ready line (`--ready-json -`) on the server's standard output.
    fn wait_ready(
        &mut self,
        lines: &mpsc::Receiver<String>,
        deadline: Instant,
    ) -> Result<(), String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Ok(ready) = Ready::from_json(&line) {
                        self.addr = ready.addr;
                        self.ready = Some(ready);
                        return Ok(());
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "printed no ready line (--ready-json -) in {START_TIMEOUT:?}"
                    ))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().ok();
                    return Err(format!("exited ({}) before listening", describe(status)));
                }
            }
        }
    }

    fn wait_accepting(&mut self, deadline: Instant) -> Result<(), String> {
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "exited ({}) before accepting",
                    describe(Some(status))
                ));
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "did not accept on {} within {START_TIMEOUT:?}",
                    self.addr
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What a ringport server said it is on its ready line; `None` for an external server.
    pub fn ready(&self) -> Option<&Ready> {
        self.ready.as_ref()
    }

    /// What a ringport server said it runs on, as its ready line details it
    /// ([`Ready::backend_detail`]: `io_uring (setup flags: ...)`, `blocking sockets`); `None`
    /// for an external server.
    pub fn backend(&self) -> Option<String> {
        self.ready.as_ref().map(|r| r.backend_detail.clone())
    }

    /// Starts reading the server's `/proc` counters every [`SAMPLE_EVERY`].
    pub fn start_sampling(&mut self) {
        self.sampler = Some(Sampler::start(self.pid()));
    }

    /// Stops sampling and returns the samples, in time order (empty if never started).
    pub fn finish_sampling(&mut self) -> Vec<ProcSample> {
        self.sampler.take().map(Sampler::finish).unwrap_or_default()
    }

    /// Stops the server: SIGTERM, then waits up to [`STOP_TIMEOUT`] (an external server: one
    /// second) and kills it if it is still there.
    ///
    /// Returns `Ok` for a clean exit: exit status 0 for a ringport server; for an external one
    /// anything, as long as it went. `Err` says what happened otherwise, with the server's last
    /// output.
    pub fn stop(mut self) -> Result<(), String> {
        self.finish_sampling();
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let limit = if self.external {
            Duration::from_secs(1)
        } else {
            STOP_TIMEOUT
        };
        let deadline = Instant::now() + limit;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                _ => break None,
            }
        };
        match status {
            Some(s) if s.success() || self.external => Ok(()),
            None if self.external => {
                self.kill();
                Ok(())
            }
            Some(s) => Err(format!(
                "`{}` exited with {} after SIGTERM (expected 0){}",
                self.command,
                describe(Some(s)),
                last_output(&self.stderr.text())
            )),
            None => {
                self.kill();
                Err(format!(
                    "`{}` did not exit within {limit:?} of SIGTERM and was killed",
                    self.command
                ))
            }
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The server's standard output so far (its last lines).
    pub fn stdout_text(&self) -> String {
        self.stdout.text()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

fn describe(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(sig)) => format!("signal {sig}"),
            _ => "unknown status".to_string(),
        },
        None => "status unknown".to_string(),
    }
}

/// A thread reading a process's `/proc` counters periodically.
#[derive(Debug)]
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<Vec<ProcSample>>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let ticks = procfs::clock_ticks();
        let handle = thread::spawn(move || {
            let mut samples = Vec::with_capacity(1024);
            loop {
                if let Ok(s) = procfs::sample(pid, ticks) {
                    samples.push(s);
                }
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                thread::sleep(SAMPLE_EVERY);
            }
            samples
        });
        Sampler { stop, handle }
    }

    fn finish(self) -> Vec<ProcSample> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that printed nothing was followed by an empty "its last output:".
    #[test]
    fn no_output_is_said_in_words() {
        assert_eq!(last_output(""), "; it printed nothing on stderr");
        assert_eq!(last_output(" \n"), "; it printed nothing on stderr");
        assert_eq!(last_output("boom"), "; its last output:\nboom");
    }

    #[test]
    fn ringport_is_asked_for_its_ready_line_and_the_design_by_name() {
        let opts = StartOptions {
            ringport_exe: "ringport".into(),
            workers: Some(3),
        };
        let line = command_line(
            &crate::schedule::builtin("completion-epoll").unwrap(),
            &opts,
        );
        assert!(
            line.contains(" --model completion --backend epoll ")
                && line.contains(" --ready-json - ")
                && line.ends_with(" --workers 3"),
            "{line}"
        );
        let line = command_line(&crate::schedule::builtin("threaded").unwrap(), &opts);
        assert!(line.contains(" --model threaded --backend auto "), "{line}");
        assert!(!line.contains("--workers"), "{line}");
    }

    #[test]
    fn external_server_started_sampled_and_killed() {
        let design = Design::parse_external(
            "py=python3 -c 'import socket,sys,time; s=socket.socket(); s.bind((\"127.0.0.1\",int(sys.argv[1]))); s.listen(); time.sleep(60)' {port}",
        )
        .unwrap();
        let opts = StartOptions {
            ringport_exe: "ringport".into(),
            workers: None,
        };
        let mut server = ServerProcess::start(&design, &opts).unwrap();
        assert!(server.command.contains(&server.addr.port().to_string()));
        server.start_sampling();
        thread::sleep(Duration::from_millis(120));
        let samples = server.finish_sampling();
        assert!(!samples.is_empty());
        assert!(procfs::peak_rss_kib(&samples) > 0);
        server.stop().unwrap();
    }

    #[test]
    fn a_server_that_exits_is_reported_with_its_output() {
        let design = Design::parse_external("bad=sh -c 'echo oops >&2; exit 3' {port}").unwrap();
        let opts = StartOptions {
            ringport_exe: "ringport".into(),
            workers: None,
        };
        let err = ServerProcess::start(&design, &opts)
            .unwrap_err()
            .to_string();
        assert!(err.contains("exited (exit code 3)"), "{err}");
    }
}
