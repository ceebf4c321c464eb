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
fn issue14_usage_errors_are_one_line_with_exit_code_2() {
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

/// A value ringport itself refuses is one line too, with exit code 1 (README's table).
#[test]
fn refused_values_are_one_line_with_exit_code_1() {
    let e = one_line_error(&ringport(&["stress", "70000"]), 1);
    assert!(e.contains("not a port number"), "{e}");
}

#[test]
fn help_and_version_are_not_errors() {
    for args in [&["--help"][..], &["stress", "--help"], &["--version"]] {
        let o = ringport(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(!o.stdout.is_empty(), "{args:?}");
    }
}
