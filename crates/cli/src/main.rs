//! `ringport`: the command-line front end over the library crates.
//!
//! Flags are parsed here (clap) into the libraries' plain config types; errors become one line on
//! stderr and a non-zero exit. Each subcommand lives in its own module.

#![forbid(unsafe_code)]

mod addr;
#[cfg(unix)]
mod bench;
#[cfg(windows)]
#[path = "bench_windows.rs"]
mod bench;
mod bytes;
#[cfg(test)]
mod defaults_tests;
mod docs;
mod exit;
mod merge;
mod metrics;
mod request_args;
mod secs;
mod send;
mod send_tls;
mod send_udp;
mod send_ws;
mod serve;
mod serve_tls;
mod serve_udp;
mod serve_ws;
#[cfg(unix)]
mod signals;
mod stderr;
mod stress;
mod tls_client_args;
mod ws_client_args;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// A completion-port TCP echo server, its verifying load generator, and a benchmark of the
/// classic server designs, for Linux (io_uring).
#[derive(Debug, Parser)]
#[command(name = "ringport", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the echo server (RFC 862 over TCP; over UDP too with --udp) until SIGINT/SIGTERM, or
    /// `q` then Enter.
    Serve(serve::ServeArgs),
    /// Send one message to an echo server, print the echo, check it byte for byte.
    Send(send::SendArgs),
    /// Load an echo server from many connections, verify every echoed byte, measure latency.
    Stress(Box<stress::StressArgs>),
    /// Add several agents' stress results and interval logs (--segment runs) into one result.
    Merge(merge::MergeArgs),
    /// Run every server design under the same load, side by side: table, JSON, CSV and charts.
    Bench(Box<bench::BenchArgs>),
    /// Print the shell completion script for bash, zsh, fish, elvish or powershell.
    Completions(docs::CompletionsArgs),
    /// Print the man page (roff), or write one page per command into a directory.
    Man(docs::ManArgs),
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rustls=error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(stderr::writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

/// The error and its causes on one line, each cause once: a cause already in the text (an
/// error that prints its source and also returns it as its source) is not repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

/// The command line as clap sees it, with one change made here for every subcommand: a value
/// that looks like a negative number (`--count -1`) is taken as the flag's value, so that its
/// parser says the value is invalid instead of clap suggesting `-- -1`.
///
/// The examples after each command's help ([`docs::EXAMPLES`]) are added here too, in one place.
fn command() -> clap::Command {
    let codes = exit::help_text();
    // `--version` also names the crypto backend TLS was built with (a build-time feature).
    let long_version: &'static str = Box::leak(
        format!(
            "{} (TLS: rustls on {})",
            env!("CARGO_PKG_VERSION"),
            ringport_tls_record::BACKEND
        )
        .into_boxed_str(),
    );
    let mut cmd = Cli::command()
        .long_version(long_version)
        .after_help(format!("{}\n\n{codes}", docs::TOP_EXAMPLES));
    for (name, examples) in docs::EXAMPLES {
        cmd = cmd.mut_subcommand(name, |sub| sub.after_help(format!("{examples}\n\n{codes}")));
    }
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for name in names {
        cmd = cmd.mut_subcommand(name, |sub| {
            sub.mut_args(|a| {
                if a.get_action().takes_values() {
                    a.allow_negative_numbers(true)
                } else {
                    a
                }
            })
        });
    }
    cmd
}

/// A clap usage error on one line, in ringport's style (`ringport: error: ...`): clap's message
/// and its useful tips (`a similar argument exists`), without the usage block, and with where
/// to read more. The `-- VALUE` tip is dropped: values that look like negative numbers are
/// taken as values (see [`command`]), so it would only mislead.
fn clap_one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut parts: Vec<String> = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        if l.starts_with("Usage:") {
            break;
        }
        if l.starts_with("For more information") {
            continue;
        }
        if let Some(tip) = l.strip_prefix("tip:") {
            if !tip.contains("as a value, use '--") {
                parts.push(format!("; {}", tip.trim()));
            }
            continue;
        }
        let l = l.strip_prefix("error:").unwrap_or(l).trim();
        if parts.is_empty() {
            parts.push(l.to_string());
        } else {
            parts.push(format!(" {l}"));
        }
    }
    // Point at the help of the subcommand the user typed, if any.
    let sub = std::env::args().skip(1).find(|a| {
        Cli::command()
            .get_subcommands()
            .any(|s| s.get_name() == a.as_str())
    });
    let command = match sub {
        Some(sub) => format!("ringport {sub}"),
        None => "ringport".to_string(),
    };
    format!("{} (see `{command} --help`)", parts.concat())
}

/// Parses the command line. Help and version go to standard output with exit code 0; a usage
/// error is one line on standard error and exit code 2 (help asked for by giving no
/// subcommand is clap's text, also with 2). See [`exit`] for every code.
fn parse() -> Result<Cli, ExitCode> {
    let result = command()
        .try_get_matches()
        .and_then(|mut m| Cli::from_arg_matches_mut(&mut m));
    result.map_err(|e| {
        use clap::error::ErrorKind;
        match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                let _ = e.print();
                ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
            }
            _ => {
                eprintln!("ringport: error: {}", clap_one_line(&e));
                exit::exit(exit::USAGE)
            }
        }
    })
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    init_logging();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Send(args) => send::run(args),
        Command::Stress(args) => stress::run(*args),
        Command::Bench(args) => bench::run(*args),
        Command::Merge(args) => merge::run(args),
        Command::Completions(args) => docs::completions(args),
        Command::Man(args) => docs::man(args),
    };
    stderr::flush();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ringport: error: {}", one_line(&e));
            exit::exit(exit::code_of(&e))
        }
    }
}
