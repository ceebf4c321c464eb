//! `ringport`: the command-line front end over the library crates.
//!
//! Flags are parsed here (clap) into the libraries' plain config types; errors become one line on
//! stderr and a non-zero exit. Each subcommand lives in its own module.

mod addr;
#[cfg(unix)]
mod bench;
#[cfg(windows)]
#[path = "bench_windows.rs"]
mod bench;
mod merge;
mod request_args;
mod send;
mod serve;
mod stress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Run the echo server (RFC 862 over TCP) until SIGINT/SIGTERM, or `q` then Enter.
    Serve(serve::ServeArgs),
    /// Send one message to an echo server, print the echo, check it byte for byte.
    Send(send::SendArgs),
    /// Load an echo server from many connections, verify every echoed byte, measure latency.
    Stress(Box<stress::StressArgs>),
    /// Add several agents' stress results and interval logs (--segment runs) into one result.
    Merge(merge::MergeArgs),
    /// Run every server design under the same load, side by side: table, JSON, CSV and charts.
    Bench(Box<bench::BenchArgs>),
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Send(args) => send::run(args),
        Command::Stress(args) => stress::run(*args),
        Command::Bench(args) => bench::run(*args),
        Command::Merge(args) => merge::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ringport: error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}
