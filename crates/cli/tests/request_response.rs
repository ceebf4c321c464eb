//! `ringport stress --request ... --expect ...` end to end against `ringport serve`: an echo
//! server answers each request with the request itself, so every framing can be exercised
//! with a known reply, right and wrong. The real servers of Debian are in `servers.rs`.

mod support;

use std::process::Output;

use support::*;

/// Runs `stress` against `server` with `args` and `--json -`.
fn run(server: &Server, args: &[&str]) -> Output {
    let port = server.addr.port().to_string();
    let mut all = vec!["127.0.0.1", port.as_str(), "--threads", "2", "--json", "-"];
    all.extend_from_slice(args);
    stress(&all)
}

#[test]
fn exact_replies_are_verified_and_reported_as_request_response() {
    let server = Server::start("completion", &[]);
    for &backend in CLIENT_BACKENDS {
        let out = run(
            &server,
            &[
                "--connections",
                "8",
                "--count",
                "200",
                "--pipeline",
                "4",
                "--backend",
                backend,
                "--request",
                r"PING\r\n",
                "--expect",
                r"PING\r\n",
            ],
        );
        assert!(out.status.success(), "{backend}: {}", stderr(&out));
        let j = json_of(&out);
        assert_eq!(j["protocol"], "request-response", "{j}");
        assert_eq!(j["mode"], "closed");
        assert_eq!(j["messages"], 8 * 200);
        assert_eq!(j["bytes"], 8 * 200 * 6, "reply bytes");
        assert_eq!(j["errors"], 0);
        assert_eq!(
            j["payload"],
            r#"request/response: "PING\r\n" -> "PING\r\n""#
        );
        assert_eq!(j["latency_us"]["count"], 8 * 200);
    }
    // Echo stays the default, and says so.
    let echo = run(&server, &["--connections", "2", "--count", "10"]);
    assert!(echo.status.success(), "{}", stderr(&echo));
    assert_eq!(json_of(&echo)["protocol"], "echo");
}

#[test]
fn a_wrong_reply_fails_the_run_naming_connection_request_and_bytes() {
    let server = Server::start("completion", &[]);
    let out = run(
        &server,
        &[
            "--connections",
            "3",
            "--count",
            "5",
            "--request",
            r"GET k\r\n",
            "--expect",
            r"$1\r\nv\r\n",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let j = json_of(&out);
    assert_eq!(j["errors_by_kind"]["mismatch"], 3, "{j}");
    let first = &j["first_error"];
    assert_eq!(first["kind"], "mismatch");
    // Connections are numbered from 1 in reports and JSON.
    assert!(
        (1..=3).contains(&first["connection"].as_u64().unwrap()),
        "{first}"
    );
    assert_eq!(first["offset"], 0);
    assert_eq!(
        first["detail"],
        r#"wrong reply to request 1: expected "$1\r\nv\r\n"; received "GET k\r\n""#
    );
    // The human report (on stderr with --json -) names it too.
    assert!(
        stderr(&out).contains("first error   connection"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_sequence_pairs_each_expectation_with_the_request_before_it() {
    let server = Server::start("completion", &[]);
    let dir = std::env::temp_dir().join(format!("ringport-rr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("req.bin");
    std::fs::write(&file, b"third\x00\xff\n").unwrap();
    let file = file.to_str().unwrap();
    // Three requests in three forms, each with its own framing; the defaults (before the
    // first request) apply to the one with none of its own.
    let args = |fourth: [&str; 2]| {
        vec![
            "--connections".to_string(),
            "4".into(),
            "--count".into(),
            "30".into(),
            "--pipeline".into(),
            "3".into(),
            "--expect-len".into(),
            "8".into(),
            "--request".into(),
            r"a 123\n".into(),
            "--expect-regex".into(),
            r"^a \d+$".into(),
            "--request-hex".into(),
            "62 0d 0a".into(),
            "--expect-until".into(),
            r"\r\n".into(),
            "--request-file".into(),
            file.to_string(),
            "--request".into(),
            r"defaults\x00".into(),
            fourth[0].to_string(),
            fourth[1].to_string(),
        ]
    };
    let right = args(["--expect-len", "9"]);
    let right: Vec<&str> = right.iter().map(String::as_str).collect();
    // The file's request has no expectation of its own: the default --expect-len 8.
    let out = run(&server, &right);
    assert!(out.status.success(), "{}", stderr(&out));
    let j = json_of(&out);
    assert_eq!(j["messages"], 4 * 30, "{j}");
    let payload = j["payload"].as_str().unwrap();
    assert!(
        payload.starts_with("request/response, 4 requests cycled: \"a 123\\n\" -> until"),
        "{payload}"
    );
    // The fourth request's own expectation is wrong.
    let wrong = args(["--expect", r"defaultz\0"]);
    let wrong: Vec<&str> = wrong.iter().map(String::as_str).collect();
    let out = run(&server, &wrong);
    assert_eq!(out.status.code(), Some(1));
    let detail = json_of(&out)["first_error"]["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        detail.starts_with(
            r#"wrong reply to request 4 (4 of 4 in the sequence): expected "defaultz\0"; received "default"#
        ),
        "{detail}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_regex_that_does_not_match_fails() {
    let server = Server::start("completion", &[]);
    let out = run(
        &server,
        &[
            "--connections",
            "2",
            "--count",
            "3",
            "--request",
            r"+OK\r\n",
            "--expect-until",
            r"\r\n",
            "--expect-regex",
            r"^-ERR",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let j = json_of(&out);
    assert_eq!(
        j["first_error"]["detail"],
        r#"wrong reply to request 1: does not match /^-ERR/; received "+OK\r\n""#
    );
}

#[test]
fn rate_mode_json_and_hdr_log_work_as_for_echo() {
    let server = Server::start("completion", &[]);
    let dir = std::env::temp_dir().join(format!("ringport-rr-hdr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("run.hlog");
    let out = run(
        &server,
        &[
            "--connections",
            "4",
            "--rate",
            "400",
            "--duration",
            "1",
            "--request",
            r"hello\n",
            "--expect",
            r"hello\n",
            "--hdr-log",
            log.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let j = json_of(&out);
    assert_eq!(j["mode"], "rate");
    assert_eq!(j["protocol"], "request-response");
    assert!(j["latency_uncorrected_us"].is_object(), "{j}");
    let n = j["messages"].as_u64().unwrap();
    assert!(n > 0, "{j}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(",latency") || text.contains("Tag=latency"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `stress` with `args` (no server needed: refused before connecting) and checks the
/// usage error: exit code 2, one line naming `needle`.
#[track_caller]
fn usage_error(args: &[&str], needle: &str) {
    refused(args, needle, true);
}

/// [`usage_error`] for a value clap refuses: its own message, several lines.
#[track_caller]
fn bad_value(args: &[&str], needle: &str) {
    refused(args, needle, false);
}

#[track_caller]
fn refused(args: &[&str], needle: &str, one_line: bool) {
    let mut all = vec!["127.0.0.1", "9"];
    all.extend_from_slice(args);
    let out = stress(&all);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(
        err.contains(needle),
        "{args:?}: {err:?} should mention {needle:?}"
    );
    if one_line {
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    }
}

#[test]
fn bad_combinations_are_usage_errors() {
    usage_error(&["--expect", "x"], "need a request");
    usage_error(&["--request", "x"], "has no expected reply");
    usage_error(
        &["--request", "x", "--expect", "x", "--expect-len", "1"],
        "--expect and --expect-len cannot be used together",
    );
    usage_error(
        &["--request", "x", "--expect-until", r"\n", "--expect-http"],
        "--expect-until and --expect-http",
    );
    usage_error(
        &["--request", "x", "--expect-len", "1", "--expect-len", "2"],
        "--expect-len is given twice for request 1",
    );
    usage_error(
        &["--request", "x", "--expect-len", "1", "--request", "y"],
        "request 2 has no expected reply",
    );
    usage_error(
        &["--request", "x", "--expect-len", "1", "--message", "m"],
        "--message and --size are echo payloads",
    );
    usage_error(
        &["--request", "x", "--expect-len", "1", "--stream"],
        "--stream cannot be used with --request",
    );
    usage_error(
        &["--request", "x", "--expect-regex", "("],
        "--expect-regex `(`",
    );
    // Values that do not parse are clap's errors (exit code 2 too).
    bad_value(&["--request", r"\q", "--expect-len", "1"], "unknown escape");
    bad_value(&["--request-hex", "5", "--expect-len", "1"], "1 hex digits");
    bad_value(
        &["--request", "x", "--expect-http=600"],
        "not an HTTP status",
    );
    bad_value(
        &["--request-file", "/nonexistent/r", "--expect-len", "1"],
        "cannot read",
    );
}

/// A line server that answers `q\n` with `ok\n` and, at the client's end of stream, keeps its
/// side open (for 20 s at most): legitimate TCP, which an echo client would wait on.
fn half_close_keeper() -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(16) {
            let Ok(conn) = conn else { return };
            std::thread::spawn(move || {
                let mut w = conn.try_clone().unwrap();
                let mut r = BufReader::new(conn);
                let mut line = String::new();
                while r.read_line(&mut line).unwrap_or(0) > 0 {
                    if w.write_all(b"ok\n").is_err() {
                        return;
                    }
                    line.clear();
                }
                std::thread::sleep(std::time::Duration::from_secs(20));
            });
        }
    });
    port
}

#[test]
fn a_server_that_keeps_half_closed_connections_open_is_not_an_error() {
    // Were the client to wait for the server's close, every connection would time out.
    let port = half_close_keeper().to_string();
    let out = stress(&[
        "127.0.0.1",
        &port,
        "--connections",
        "4",
        "--count",
        "50",
        "--timeout",
        "5",
        "--json",
        "-",
        "--request",
        r"q\n",
        "--expect",
        r"ok\n",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let j = json_of(&out);
    assert_eq!(j["messages"], 4 * 50);
    assert_eq!(j["errors"], 0, "{j}");
}
