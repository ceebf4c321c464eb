//! The command line itself: how errors look and which exit code they give, `send`'s input, and
//! what helps a user find their way (completions, the man page, examples in `--help`).

mod support;

use std::process::Output;

/// Runs `ringport ARGS` with no standard input and returns what it did.
fn ringport(args: &[&str]) -> Output {
    support::bin()
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run ringport")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the run failed with `code` and a single `ringport: error: ...` line on stderr.
#[track_caller]
fn one_line_error(o: &Output, code: i32) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{err}");
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("ringport: error: "), "{err}");
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    err
}

/// Issue 14, friction: clap's errors were several lines (usage block, tips) while ringport's were
/// one; `--count -1` suggested `use '-- -1'`.
#[test]
fn usage_errors_are_one_line_with_exit_code_2() {
    let e = one_line_error(&ringport(&["stress", "--count", "-1"]), 2);
    assert!(e.contains("invalid value '-1' for '--count"), "{e}");
    assert!(!e.contains("-- -1"), "{e}");
    let e = one_line_error(&ringport(&["stress", "--duration", "-5"]), 2);
    assert!(e.contains("out of range"), "{e}");
    let e = one_line_error(&ringport(&["stress", "--conections", "3"]), 2);
    assert!(
        e.contains("'--connections'"),
        "the similar flag is named: {e}"
    );
    assert!(e.contains("ringport stress --help"), "{e}");
    let e = one_line_error(&ringport(&["serve", "--model", "nope"]), 2);
    assert!(e.contains("possible values"), "{e}");
    one_line_error(&ringport(&["send"]), 2);
    one_line_error(&ringport(&["nope"]), 2);
}

/// A value that cannot be accepted is a usage error, exit code 2, whatever the command and
/// whichever layer refuses it: port 70000 was 2 in `serve` and 1 in `stress` and `send`; a host
/// that does not resolve 2 in `serve` and 1 in `stress`; `--stream --rate` 1 but `--request
/// --size` 2.
#[test]
fn every_usage_error_is_exit_code_2() {
    for (args, says) in [
        (&["serve", "--port", "70000"][..], "70000"),
        (&["stress", "70000"], "not a port number"),
        (&["send", "70000", "hi"], "not a port number"),
        (&["send", "-1", "hi"], "`-1` is not a port number"),
        (
            &["send", "3334", "hi", "--file", "f"],
            "with --file, only [HOST] [PORT]",
        ),
        (&["serve", "--bind", "nowhere.invalid"], "nowhere.invalid"),
        (
            &["stress", "nowhere.invalid", "9", "--count", "1"],
            "cannot resolve",
        ),
        (&["send", "nowhere.invalid", "9", "hi"], "cannot resolve"),
        (&["stress", "--stream", "--rate", "100"], "--stream"),
        (&["stress", "--request", "x", "--size", "4"], "--size"),
        (&["stress", "--rate", "fast"], "--rate fast"),
        (
            &["stress", "9", "--expect-http", "200", "--request", "x"],
            "--expect-http=200",
        ),
        (&["stress", "--find-max-rate", "--p99", "2"], "has no unit"),
        (
            &[
                "stress",
                "--find-max-rate",
                "--p99",
                "2ms",
                "--hdr-log",
                "x.hlog",
            ],
            "--hdr-log does not apply to --find-max-rate",
        ),
        (
            &["stress", "--find-max-rate", "--p99", "2ms", "--count", "5"],
            "--count does not apply",
        ),
        (
            &["stress", "--json", "same.out", "--hdr-log", "same.out"],
            "--json and --hdr-log name the same file",
        ),
        (
            &["merge", "a.json", "--json", "a.json"],
            "--json and an input name the same file",
        ),
        (&["bench", "--repeat", "0"], "--repeat"),
        // Flags that contradict each other, or need another that is missing.
        (
            &["send", "--udp", "--tls", "9", "hi"],
            "'--udp' cannot be used with '--tls'",
        ),
        (
            &["serve", "--udp-only", "--tls-self-signed"],
            "--udp-only serves no TCP",
        ),
        (
            &["serve", "--udp-only", "--websocket"],
            "--udp-only serves no TCP",
        ),
        (&["serve", "--ws-max-message", "5"], "--websocket"),
        (&["serve", "--udp-buffers", "5"], "<--udp|--udp-only>"),
        (&["serve", "--udp-no-gso"], "<--udp|--udp-only>"),
        (
            &["stress", "--csv", "-"],
            "--csv -: only --json writes to standard output",
        ),
        (&["stress", "--hdr-log", "-"], "--hdr-log -: only --json"),
        (&["merge", "a.json", "--html", "-"], "--html -: only --json"),
        (&["stress", "--size", "1.5K"], "not a size in bytes"),
        (
            &["merge", "/nonexistent-ringport/a.json"],
            "cannot read /nonexistent-ringport/a.json",
        ),
        (
            &["send", "9", "--tls", "--file", "/dev/zero"],
            "/dev/zero is more than 256 MiB: with --tls the message is held in memory whole \
             (plaintext send streams an input of any size)",
        ),
        (
            &["serve", "--websocket", "--ws-handshake-timeout", "0"],
            "must be more than 0 seconds",
        ),
        (
            &["serve", "--tls-self-signed", "--tls-handshake-timeout", "0"],
            "must be more than 0 seconds",
        ),
        (&["serve", "--buffer-size", "17M"], "64 bytes to 16M"),
        (
            &[
                "stress",
                "--find-max-rate",
                "--p99",
                "2ms",
                "--csv",
                "x.csv",
            ],
            "run `stress --rate R --csv F` at the answer",
        ),
    ] {
        if cfg!(windows) && args[0] == "bench" {
            // bench is Linux-only: on Windows it is refused (exit 1) before its flags are read.
            continue;
        }
        let e = one_line_error(&ringport(args), 2);
        assert!(e.contains(says), "{args:?}: {e}");
    }
}

/// The values documented as allowed are: `--timeout 0` (no timeout) in `stress` and `send`,
/// and `--stats 0` (none) in `serve`, were refused. A run that then fails is exit code 1.
#[test]
fn documented_zeros_are_accepted() {
    // Port 9 on loopback: nothing listens, so the connection is refused (a failed run, 1).
    let o = ringport(&[
        "stress",
        "127.0.0.1",
        "9",
        "--timeout",
        "0",
        "--count",
        "1",
        "--interval",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(!stderr(&o).contains("--timeout"), "{}", stderr(&o));
    let o = ringport(&["send", "127.0.0.1", "9", "hi", "--timeout", "0"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot connect to 127.0.0.1:9"),
        "{}",
        stderr(&o)
    );
    // `serve --stats 0` parses (it would run): its --help shows it, and a bad one is refused.
    one_line_error(&ringport(&["serve", "--stats", "0.01"]), 2);
}

/// One table of exit codes, shown at the end of every command's `--help` and in the man page.
#[test]
fn the_exit_code_table_is_in_help_and_the_man_page() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["stress", "--help"],
        &["merge", "--help"],
        &["send", "--help"],
        &["bench", "--help"],
    ] {
        let text = String::from_utf8_lossy(&ringport(args).stdout).into_owned();
        for code in [
            "    0  success",
            "    1  a failed run",
            "    2  a usage error",
            "    4  `stress --find-max-rate`",
            "  130  interrupted",
        ] {
            assert!(text.contains(code), "{args:?}: no {code:?}: {text}");
        }
    }
    let page = String::from_utf8_lossy(&ringport(&["man"]).stdout).into_owned();
    assert!(page.contains("2  a usage error"), "{page}");
}

/// The heading `--help` lists `flag` under: the last heading line above it.
fn heading_of(help: &str, flag: &str) -> String {
    let mut heading = String::new();
    for line in help.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            heading = line.trim_end_matches(':').to_string();
        } else if line
            .trim_start()
            .strip_prefix(flag)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '[', '=']))
        {
            return heading;
        }
    }
    panic!("{flag} is not in the help:\n{help}")
}

/// Each flag is listed under its own heading: a flattened group's heading (TLS, WebSocket,
/// Request/response) does not carry over to the flags declared after it.
#[test]
fn flags_are_listed_under_their_own_heading() {
    let stress = String::from_utf8_lossy(&ringport(&["stress", "--help"]).stdout).into_owned();
    for (flag, heading) in [
        ("--metrics", "Options"),
        ("--mptcp", "Options"),
        ("--udp", "UDP"),
        ("--max-loss", "UDP"),
        ("--flows", "UDP"),
        ("--no-gso", "UDP"),
        ("--request", "Request/response (instead of echo)"),
        ("--tls", "TLS"),
        ("--websocket", "WebSocket"),
    ] {
        assert_eq!(heading_of(&stress, flag), heading, "stress {flag}");
    }
    let send = String::from_utf8_lossy(&ringport(&["send", "--help"]).stdout).into_owned();
    for (flag, heading) in [
        ("--udp", "Options"),
        ("--mptcp", "Options"),
        ("--tls", "TLS"),
        ("--websocket", "WebSocket"),
    ] {
        assert_eq!(heading_of(&send, flag), heading, "send {flag}");
    }
}

#[test]
fn help_and_version_are_not_errors() {
    for args in [&["--help"][..], &["stress", "--help"], &["--version"]] {
        let o = ringport(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(!o.stdout.is_empty(), "{args:?}");
    }
    let long = String::from_utf8_lossy(&ringport(&["--version"]).stdout).into_owned();
    assert!(
        long.contains("(TLS: rustls on aws-lc-rs)") || long.contains("(TLS: rustls on ring)"),
        "--version names the crypto backend: {long}"
    );
}

/// Runs `ringport send ARGS` with `stdin` as its standard input; bounded by `--timeout`.
fn send(args: &[&std::ffi::OsStr], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = support::bin()
        .arg("send")
        .args(["--timeout", "10"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run ringport send");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let feeding = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("ringport send output");
    feeding.join().unwrap();
    out
}

/// Bytes that no text message holds: NUL, every byte value, invalid UTF-8.
fn awkward_bytes(len: usize) -> Vec<u8> {
    let mut rng = support::Rng::new(14);
    let mut v = b"\0\xff\xfe not UTF-8 \0\r\n".to_vec();
    v.extend((0..=255u8).collect::<Vec<_>>());
    v.extend(rng.bytes(len));
    v
}

/// Issue 14, friction: `send` could not send bytes: no stdin (`-`), no `--file`, no NUL or
/// non-UTF-8. The echo is written back exactly as received.
#[test]
fn send_takes_bytes_from_stdin_and_from_a_file() {
    let server = support::Server::start("completion", &[]);
    let port = server.addr.port().to_string();
    let data = awkward_bytes(1000);
    let o = send(&[port.as_ref(), "-".as_ref()], &data);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stdout == data, "stdin: the echo is not the bytes sent");

    // A file larger than the socket buffers and the server's per-connection bound.
    let big = awkward_bytes(4 << 20);
    let path = std::env::temp_dir().join(format!("ringport-send-{}.bin", std::process::id()));
    std::fs::write(&path, &big).unwrap();
    let o = send(
        &[
            format!("127.0.0.1:{port}").as_ref(),
            "--file".as_ref(),
            path.as_os_str(),
        ],
        b"",
    );
    let _ = std::fs::remove_file(&path);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stdout == big, "--file: the echo is not the file's bytes");
}

/// A MESSAGE argument that is not UTF-8 is sent as its bytes (Unix: arguments are bytes).
#[cfg(unix)]
#[test]
fn send_takes_a_non_utf8_argument() {
    use std::os::unix::ffi::OsStrExt;
    let server = support::Server::start("completion", &[]);
    let port = server.addr.port().to_string();
    let msg = std::ffi::OsStr::from_bytes(b"caf\xe9 \xff");
    let o = send(&[port.as_ref(), msg], b"");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(o.stdout, b"caf\xe9 \xff\n");
}

/// The echo is compared byte for byte: a server that changes one byte is caught, at that byte.
#[test]
fn send_finds_a_changed_byte() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        buf[3] ^= 0x80;
        s.write_all(&buf).unwrap();
    });
    let o = send(&[port.as_ref(), "-".as_ref()], b"a\0b\xffc");
    server.join().unwrap();
    let e = one_line_error(&o, 1);
    assert!(e.contains("wrong echo") && e.contains("at byte 3"), "{e}");
}

/// Issue 14, discoverability: no shell completions. `ringport completions SHELL` prints a script
/// that knows the commands and their flags; bash's parses.
#[test]
fn completions_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let o = ringport(&["completions", shell]);
        assert_eq!(o.status.code(), Some(0), "{shell}: {}", stderr(&o));
        let script = String::from_utf8_lossy(&o.stdout);
        for word in ["stress", "serve", "connections", "reuse-port", "interval"] {
            assert!(script.contains(word), "{shell}: no {word}");
        }
    }
    let o = ringport(&["completions", "bash"]);
    let path =
        std::env::temp_dir().join(format!("ringport-completion-{}.bash", std::process::id()));
    std::fs::write(&path, &o.stdout).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output();
    let _ = std::fs::remove_file(&path);
    if let Ok(check) = check {
        assert!(check.status.success(), "bash -n: {}", stderr(&check));
    }
    one_line_error(&ringport(&["completions", "tcsh"]), 2);
}

/// Issue 14, discoverability: no man page. `ringport man` prints one (roff), `--out DIR` writes
/// a page per command; both come from the flags themselves.
#[test]
fn a_man_page_from_the_flags() {
    let o = ringport(&["man"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let page = String::from_utf8_lossy(&o.stdout);
    assert!(page.contains(".TH ringport 1"), "{page}");
    assert!(page.contains("ringport\\-stress(1)"), "{page}");
    assert!(
        page.contains("Exit codes"),
        "the examples and exit codes: {page}"
    );
    let dir = std::env::temp_dir().join(format!("ringport-man-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o = ringport(&["man", "--out", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let stress = std::fs::read_to_string(dir.join("ringport-stress.1")).unwrap_or_default();
    let send = std::fs::read_to_string(dir.join("ringport-send.1")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(stress.contains("\\-\\-connections"), "{stress}");
    assert!(stress.contains("Examples"), "{stress}");
    assert!(send.contains("\\-\\-file"), "{send}");
}

/// `ringport.1` named `ringport-help(1)`, which `man --out` does not write: every page it names
/// is one `--out` writes.
#[test]
fn the_man_page_names_only_pages_that_are_written() {
    let page = String::from_utf8_lossy(&ringport(&["man"]).stdout).into_owned();
    let dir = std::env::temp_dir().join(format!("ringport-man-names-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o = ringport(&["man", "--out", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let named: Vec<String> = page
        .split("ringport\\-")
        .skip(1)
        .filter_map(|rest| rest.split_once("(1)").map(|(name, _)| name.to_string()))
        .filter(|name| name.chars().all(|c| c.is_ascii_lowercase()))
        .collect();
    let written = |name: &str| dir.join(format!("ringport-{name}.1")).is_file();
    let missing: Vec<&String> = named.iter().filter(|n| !written(n)).collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(named.len() >= 5, "{named:?}: {page}");
    assert!(missing.is_empty(), "named but not written: {missing:?}");
    assert!(!page.contains("ringport\\-help"), "{page}");
}

/// Issue 14, discoverability: no examples in `--help`.
#[test]
fn help_has_examples() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["send", "--help"],
        &["stress", "--help"],
        &["bench", "--help"],
        &["merge", "--help"],
    ] {
        let o = ringport(args);
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("Examples:\n  ringport "), "{args:?}: {text}");
    }
}

/// A TLS server that never answers the handshake: `send --tls` gives up at `--timeout` and
/// says so in the words the plaintext and WebSocket paths use, not as an OS error.
#[test]
fn a_tls_handshake_that_never_comes_is_a_timeout_in_words() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let held = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        std::thread::sleep(std::time::Duration::from_secs(3));
        drop(s);
    });
    let out = ringport(&["send", &port, "hi", "--tls", "--insecure", "--timeout", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // After --insecure's warning, the error.
    let e = stderr(&out).lines().last().unwrap_or_default().to_string();
    assert!(
        e.contains(&format!(
            "no complete TLS handshake from 127.0.0.1:{port} within 1.0 s"
        )),
        "{e}"
    );
    held.join().unwrap();
}

/// A command that only prints (`man`, `completions`) and whose reader goes away early
/// (`ringport man | head -1`) succeeds quietly.
#[test]
fn printing_into_a_closed_pipe_is_not_a_failure() {
    for args in [&["man"][..], &["completions", "bash"]] {
        let mut child = support::bin()
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(out.stderr.is_empty(), "{args:?}: {}", stderr(&out));
    }
}
