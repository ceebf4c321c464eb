//! The real binary on a terminal: a pseudo-terminal made by `script` (util-linux), so that these
//! run without one (CI) and behave as an interactive shell does.

// Unix only: the pseudo-terminal comes from util-linux's `script`.
#![cfg(unix)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("ringport-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.file(name)).unwrap_or_default()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `sh -c SCRIPT` on a new pseudo-terminal (its controlling terminal, standard input and
/// output), killed when dropped along with the process whose pid it wrote to `pidfile`.
struct OnTerminal {
    child: Child,
    pidfile: Option<PathBuf>,
}

impl OnTerminal {
    #[track_caller]
    fn start(script: &str, stdin: Stdio, pidfile: Option<PathBuf>) -> OnTerminal {
        let child = Command::new("script")
            .args(["-qec", &format!("sh -c '{script}'"), "/dev/null"])
            .stdin(stdin)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("`script` (util-linux) runs a command on a pseudo-terminal: install it");
        OnTerminal { child, pidfile }
    }

    /// Waits at most `limit` for `script` to exit.
    fn wait(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for OnTerminal {
    fn drop(&mut self) {
        if let Some(pid) = self
            .pidfile
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
        {
            let _ = Command::new("kill")
                .args(["-KILL", pid.trim()])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits at most 10 s for `file` to hold a `listening on` line; returns the address.
#[track_caller]
fn listening(dir: &Scratch, out: &str, err: &str) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = dir.read(out);
        if let Some(addr) = text.lines().find_map(|l| l.strip_prefix("listening on ")) {
            return addr.trim().parse().expect("IP:PORT");
        }
        assert!(
            Instant::now() < deadline,
            "no `listening on` line within 10 s; stderr: {}",
            dir.read(err)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[track_caller]
fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ringport")
}

fn q(p: &Path) -> String {
    p.display().to_string()
}

/// Issue 14, item 1: `ringport serve &` in an interactive shell read the terminal from the
/// background, and the kernel stopped it (`Stopped (tty input)`): clients hung in the backlog.
#[test]
fn a_server_started_in_the_background_keeps_serving() {
    let dir = Scratch::new("bg-serve");
    // `set -m`: job control, as in an interactive shell, so `&` puts the server in a background
    // process group of the terminal.
    let script = format!(
        "set -m; {} serve --port 0 --workers 1 >{} 2>{} & echo $! >{}; wait",
        bin(),
        q(&dir.file("out")),
        q(&dir.file("err")),
        q(&dir.file("pid")),
    );
    let mut term = OnTerminal::start(&script, Stdio::null(), Some(dir.file("pid")));
    let addr = listening(&dir, "out", "err");
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("cannot connect ({e}): was the background server stopped?"));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"from the background").unwrap();
    let mut echo = [0u8; 19];
    s.read_exact(&mut echo).unwrap_or_else(|e| {
        panic!("no echo ({e}): the background server was stopped by reading the terminal")
    });
    assert_eq!(&echo, b"from the background");
    drop(s);
    let pid = dir.read("pid");
    assert!(Command::new("kill")
        .args(["-TERM", pid.trim()])
        .status()
        .unwrap()
        .success());
    assert!(
        term.wait(Duration::from_secs(15)),
        "the server did not stop on SIGTERM"
    );
    assert!(dir.read("out").contains("summary:"), "{}", dir.read("out"));
    // The key cannot be read from the background: the hint was a false promise there.
    assert!(!dir.read("err").contains("press q"), "{}", dir.read("err"));
}

/// Issue 14, item 10: after Ctrl-D on `serve`'s terminal, `q` then Enter silently stopped working
/// while the hint still offered it.
#[test]
fn q_still_stops_the_server_after_ctrl_d() {
    let dir = Scratch::new("ctrl-d");
    let script = format!(
        "{} serve --port 0 --workers 1 >{} 2>{}; echo $? >{}",
        bin(),
        q(&dir.file("out")),
        q(&dir.file("err")),
        q(&dir.file("rc")),
    );
    let mut term = OnTerminal::start(&script, Stdio::piped(), None);
    let mut keys = term.child.stdin.take().unwrap();
    listening(&dir, "out", "err");
    wait_for("the key hint", Duration::from_secs(10), || {
        dir.read("err").contains("press q then Enter")
    });
    keys.write_all(b"\x04").unwrap();
    keys.flush().unwrap();
    // The Ctrl-D is read before the `q`: it is a line of its own for the terminal.
    std::thread::sleep(Duration::from_millis(300));
    keys.write_all(b"q\n").unwrap();
    keys.flush().unwrap();
    wait_for(
        "the server to stop on q then Enter after Ctrl-D",
        Duration::from_secs(15),
        || !dir.read("rc").is_empty(),
    );
    assert_eq!(dir.read("rc").trim(), "0", "{}", dir.read("err"));
    assert!(dir.read("out").contains("summary:"), "{}", dir.read("out"));
    drop(keys);
    assert!(term.wait(Duration::from_secs(10)));
}

/// Issue 14, item 5: `ringport stress --json - > out.json` on a terminal showed no prompt, and the
/// file started with the questions. They go to the terminal (standard error); standard output
/// holds the JSON alone. A flag given on the command line is not asked for.
#[test]
fn the_questions_go_to_the_terminal_never_into_the_results() {
    let server = support::Server::start("completion", &[]);
    let dir = Scratch::new("ask");
    let script = format!(
        "{} stress {} --connections 2 --json - >{} 2>{}; echo $? >{}",
        bin(),
        server.addr.port(),
        q(&dir.file("out")),
        q(&dir.file("err")),
        q(&dir.file("rc")),
    );
    let mut term = OnTerminal::start(&script, Stdio::piped(), None);
    let mut keys = term.child.stdin.take().unwrap();
    wait_for("the first question", Duration::from_secs(10), || {
        dir.read("err").contains("Please enter message")
    });
    keys.write_all(b"typed at the terminal\n").unwrap();
    keys.flush().unwrap();
    wait_for("the question for a count", Duration::from_secs(10), || {
        dir.read("err").contains("Please enter number of times")
    });
    keys.write_all(b"3\n").unwrap();
    keys.flush().unwrap();
    wait_for("stress to finish", Duration::from_secs(30), || {
        !dir.read("rc").is_empty()
    });
    let err = dir.read("err");
    assert_eq!(dir.read("rc").trim(), "0", "{err}");
    assert!(
        !err.contains("number of connections"),
        "--connections was given, and asked for again: {err}"
    );
    let out = dir.read("out");
    let j: serde_json::Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("standard output is not the JSON alone ({e}): {out}"));
    assert_eq!(j["messages"], 2 * 3, "{j}");
    assert!(
        j["payload"]
            .as_str()
            .unwrap_or("")
            .contains("typed at the terminal"),
        "{j}"
    );
    drop(keys);
    assert!(term.wait(Duration::from_secs(10)));
}

/// Ctrl-D instead of an answer calls the run off: one line, exit code 130 (interrupted), nothing
/// sent.
#[test]
fn ctrl_d_at_a_question_calls_the_run_off() {
    let server = support::Server::start("completion", &[]);
    let dir = Scratch::new("ask-eof");
    let script = format!(
        "{} stress {} >{} 2>{}; echo $? >{}",
        bin(),
        server.addr.port(),
        q(&dir.file("out")),
        q(&dir.file("err")),
        q(&dir.file("rc")),
    );
    let mut term = OnTerminal::start(&script, Stdio::piped(), None);
    let mut keys = term.child.stdin.take().unwrap();
    wait_for("the first question", Duration::from_secs(10), || {
        dir.read("err").contains("Please enter message")
    });
    keys.write_all(b"\x04").unwrap();
    keys.flush().unwrap();
    wait_for("stress to end", Duration::from_secs(15), || {
        !dir.read("rc").is_empty()
    });
    let err = dir.read("err");
    assert_eq!(dir.read("rc").trim(), "130", "{err}");
    assert!(
        err.contains("ringport: no answer (end of input): nothing was run"),
        "{err}"
    );
    assert!(dir.read("out").is_empty(), "{}", dir.read("out"));
    drop(keys);
    assert!(term.wait(Duration::from_secs(10)));
}

/// Issue 14, friction: the question said "number of threads" and set the connections. Each
/// question names what its answer sets, and the answer lands there.
#[test]
fn each_question_sets_what_it_names() {
    let server = support::Server::start("completion", &[]);
    let dir = Scratch::new("ask-sets");
    let script = format!(
        "{} stress {} --threads 1 --json - >{} 2>{}; echo $? >{}",
        bin(),
        server.addr.port(),
        q(&dir.file("out")),
        q(&dir.file("err")),
        q(&dir.file("rc")),
    );
    let mut term = OnTerminal::start(&script, Stdio::piped(), None);
    let mut keys = term.child.stdin.take().unwrap();
    for (question, answer) in [
        ("Please enter message", "asked\n"),
        ("Please enter number of connections", "3\n"),
        ("Please enter number of times", "2\n"),
    ] {
        wait_for(question, Duration::from_secs(10), || {
            dir.read("err").contains(question)
        });
        keys.write_all(answer.as_bytes()).unwrap();
        keys.flush().unwrap();
    }
    wait_for("stress to finish", Duration::from_secs(30), || {
        !dir.read("rc").is_empty()
    });
    let err = dir.read("err");
    assert_eq!(dir.read("rc").trim(), "0", "{err}");
    assert!(!err.to_lowercase().contains("threads"), "{err}");
    let j: serde_json::Value = serde_json::from_str(&dir.read("out")).expect("JSON alone");
    assert_eq!(j["connections"], 3, "{j}");
    assert_eq!(j["threads"], 1, "--threads was given, not asked: {j}");
    assert_eq!(j["messages"], 3 * 2, "{j}");
    drop(keys);
    assert!(term.wait(Duration::from_secs(10)));
}
