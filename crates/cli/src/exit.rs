//! The exit codes of every command, written once: the table that `--help`, the man page and
//! docs/README.md show, and which code an error ends the process with.
//!
//! A usage error (a flag, a value or a combination that cannot be accepted, whatever the
//! command and whichever layer finds it) is marked with [`Usage`], or is one of the libraries'
//! own option errors; [`code_of`] reads the mark. Anything else that ends a command early is a
//! failed run.

use std::process::ExitCode;

/// Success: the run finished, and every byte checked was right.
pub const OK: u8 = 0;
/// A failed run or verification.
pub const FAILED: u8 = 1;
/// A usage error.
pub const USAGE: u8 = 2;
/// `stress --find-max-rate`: no rate passed.
pub const NO_PASSING_RATE: u8 = 4;
/// Interrupted by a signal (Ctrl-C, SIGTERM) before the run was done.
pub const INTERRUPTED: u8 = 130;

/// Every exit code and what it means, for every command.
pub const TABLE: [(u8, &str); 5] = [
    (
        OK,
        "success: the run finished and every byte checked was right",
    ),
    (
        FAILED,
        "a failed run or verification: a wrong byte or reply, connection errors, a server that \
         cannot start, an output file that cannot be written",
    ),
    (
        USAGE,
        "a usage error: a flag, value or combination that cannot be accepted, whatever the \
         command (an unknown flag, `--count -1`, port 70000, a host that does not resolve, \
         `--tls` to a server that does not speak TLS or plaintext to one that does)",
    ),
    (
        NO_PASSING_RATE,
        "`stress --find-max-rate`: no rate met the latency target (or the client could not \
         generate even the lowest rate; the conclusion says which)",
    ),
    (
        INTERRUPTED,
        "interrupted: `stress` stopped by Ctrl-C or SIGTERM with no error found, `bench` \
         stopped (the runs done are written), or a second signal to `serve` or `stress`",
    ),
];

/// The table as plain text, as `--help` ends with it.
pub fn help_text() -> String {
    let mut s = String::from("Exit codes:\n");
    for (code, meaning) in TABLE {
        s.push_str(&format!("  {code:>3}  {meaning}\n"));
    }
    s.pop();
    s
}

/// The table in Markdown, as docs/README.md holds it (a test keeps the two equal).
#[cfg(test)]
pub fn markdown() -> String {
    let mut s = String::from("| code | meaning |\n|---:|---|\n");
    for (code, meaning) in TABLE {
        s.push_str(&format!("| {code} | {meaning} |\n"));
    }
    s
}

/// A usage error: its message is the one line shown, and the exit code is [`USAGE`].
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// A usage error with this message, as an [`anyhow::Error`].
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Usage(message.into()))
}

/// Marks an error as a usage error, keeping its message (and its causes, on one line).
pub trait UsageContext<T> {
    /// The error, if any, becomes a usage error.
    fn usage(self) -> anyhow::Result<T>;
}

impl<T, E: std::fmt::Display> UsageContext<T> for Result<T, E> {
    fn usage(self) -> anyhow::Result<T> {
        // `{:#}`: an anyhow error's causes too, `outer: inner`.
        self.map_err(|e| usage(format!("{e:#}")))
    }
}

/// The exit code an error ends the process with: [`USAGE`] for a usage error (marked here, or
/// an option the stress library refuses, a host it cannot resolve, or TLS where the server
/// speaks plaintext and the other way round), [`FAILED`] otherwise.
pub fn code_of(e: &anyhow::Error) -> u8 {
    use ringport_stress::engine::StressError;
    for cause in e.chain() {
        if cause.is::<Usage>() || cause.is::<ringport_stress::error::ConfigError>() {
            return USAGE;
        }
        if let Some(
            StressError::Config(_) | StressError::Resolve { .. } | StressError::WrongProtocol(_),
        ) = cause.downcast_ref::<StressError>()
        {
            return USAGE;
        }
    }
    FAILED
}

/// `code` as an [`ExitCode`].
pub fn exit(code: u8) -> ExitCode {
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_holds_every_code_once() {
        let codes: Vec<u8> = TABLE.iter().map(|(c, _)| *c).collect();
        assert_eq!(codes, [OK, FAILED, USAGE, NO_PASSING_RATE, INTERRUPTED]);
        assert!(help_text().starts_with("Exit codes:\n"));
        assert!(help_text().contains("  130  interrupted"));
        assert!(markdown().contains("| 2 | a usage error"));
    }

    /// docs/README.md shows the table as [`TABLE`] has it, word for word.
    #[test]
    fn the_readme_shows_this_table() {
        let readme = include_str!("../../../docs/README.md");
        assert!(
            readme.contains(&markdown()),
            "docs/README.md's exit-code table differs from exit::TABLE; it should be:\n{}",
            markdown()
        );
    }

    #[test]
    fn marked_and_library_option_errors_are_usage_errors() {
        assert_eq!(code_of(&usage("nope")), USAGE);
        let e: anyhow::Result<()> = Err("bad").usage();
        assert_eq!(code_of(&e.unwrap_err()), USAGE);
        let config = ringport_stress::error::ConfigError("--rate: nope".into());
        assert_eq!(code_of(&anyhow::Error::new(config)), USAGE);
        let resolve = ringport_stress::engine::StressError::Resolve {
            host: "nowhere.invalid".into(),
            source: std::io::Error::other("no such host"),
        };
        assert_eq!(code_of(&anyhow::Error::new(resolve)), USAGE);
        let wrong = ringport_stress::engine::StressError::WrongProtocol("h:1 speaks TLS".into());
        assert_eq!(code_of(&anyhow::Error::new(wrong)), USAGE);
        assert_eq!(code_of(&anyhow::anyhow!("connect failed")), FAILED);
        assert_eq!(
            code_of(&usage("x").context("while parsing")),
            USAGE,
            "context keeps the mark"
        );
    }
}
