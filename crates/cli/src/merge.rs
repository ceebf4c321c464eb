//! `ringport merge`: the agents' `--json` results and `--hdr-log` interval logs into one result,
//! printed and written as one `stress` run's (human report, `--json`, `--hdr-log`, `--csv`,
//! `--html`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use ringport_report::export::html::RunPage;
use ringport_report::export::{Csv, CsvRun, Exporter, HdrLog, Html};
use ringport_stress::config::{outputs, OutputTarget};
use ringport_stress::merge::{merge, Input};

use crate::exit::UsageContext;

/// Flags of `ringport merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Each agent's `stress --json` result and its `--hdr-log`, in any order (paired by the run
    /// id both carry).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Write the merged result as JSON to PATH, or to standard output with `-` (the human
    /// report then goes to standard error).
    #[arg(long, value_name = "PATH|-")]
    json: Option<String>,
    /// Write the merged interval log (one interval per wall-clock second) to PATH.
    #[arg(long, value_name = "PATH")]
    hdr_log: Option<PathBuf>,
    /// Write the merged latency per second as CSV: one row per interval of the merged interval
    /// log (tag, start, length, count, min, p50, p90, p99, p99.9, max, mean; microseconds); for
    /// UDP runs also a `datagrams` row per second and a `flow` row per flow of each agent.
    #[arg(long, value_name = "PATH")]
    csv: Option<PathBuf>,
    /// Write the merged report as one self-contained HTML page (charts inside, nothing
    /// fetched), each agent beside the whole.
    #[arg(long, value_name = "PATH")]
    html: Option<PathBuf>,
    /// UDP runs: how many flows the report's flow table lists: the N that lost the largest
    /// share, worst first, or `all` (every agent's flows, in order). The JSON, CSV and HTML
    /// list every flow whatever this says.
    #[arg(long, value_name = "N|all", value_parser = crate::stress::parse_flows)]
    flows: Option<crate::stress::FlowsShown>,
}

/// Checks the output paths before anything is read or printed: each can be written, and no two
/// name one file, nor an input (it would be overwritten).
fn check_outputs(args: &MergeArgs) -> anyhow::Result<()> {
    let json = match args.json.as_deref().map(OutputTarget::parse) {
        Some(OutputTarget::Path(p)) => Some(p),
        _ => None,
    };
    let named: Vec<(&str, &Path)> = json
        .as_deref()
        .map(|p| ("--json", p))
        .into_iter()
        .chain(args.hdr_log.as_deref().map(|p| ("--hdr-log", p)))
        .chain(args.csv.as_deref().map(|p| ("--csv", p)))
        .chain(args.html.as_deref().map(|p| ("--html", p)))
        .collect();
    outputs::files_only(&named).usage()?;
    outputs::distinct(&named).usage()?;
    for &output in &named {
        for input in &args.files {
            outputs::distinct(&[output, ("an input", input.as_path())]).usage()?;
        }
    }
    for (flag, path) in named {
        outputs::writable(path)
            .with_context(|| format!("cannot write {flag} to {}", path.display()))?;
    }
    Ok(())
}

/// Merges, prints, writes; the exit code is the merged run's, as `stress` would give it.
pub fn run(args: MergeArgs) -> anyhow::Result<ExitCode> {
    check_outputs(&args)?;
    let mut inputs = Vec::with_capacity(args.files.len());
    for path in &args.files {
        // An input that cannot be read is a value that cannot be accepted (exit code 2).
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read {}", path.display()))
            .usage()?;
        inputs.push(Input {
            name: path.display().to_string(),
            bytes,
        });
    }
    // Files that are not one run's are values that cannot be accepted (exit code 2).
    let merged = merge(&inputs).usage()?;
    let json = args.json.as_deref().map(OutputTarget::parse);
    let text = crate::stress::render(&merged.report, args.flows);
    if matches!(json, Some(OutputTarget::Stdout)) {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    if let Some(target) = &json {
        merged.report.write_json(target).context("writing --json")?;
    }
    if let Some(path) = &args.hdr_log {
        HdrLog
            .write_to(&merged.log, &OutputTarget::Path(path.clone()))
            .with_context(|| format!("writing --hdr-log to {}", path.display()))?;
    }
    if let Some(path) = &args.csv {
        // A UDP run's table has its datagrams per second and per flow too.
        let run = CsvRun::of(&merged.log, &merged.report);
        Csv.write_to(&run, &OutputTarget::Path(path.clone()))
            .with_context(|| format!("writing --csv to {}", path.display()))?;
    }
    if let Some(path) = &args.html {
        let page = RunPage {
            report: &merged.report,
            log: Some(&merged.log),
        };
        Html.write_to(&page, &OutputTarget::Path(path.clone()))
            .with_context(|| format!("writing --html to {}", path.display()))?;
    }
    Ok(ExitCode::from(
        u8::try_from(merged.report.exit_code()).unwrap_or(1),
    ))
}
