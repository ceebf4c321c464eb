//! `ringport merge`: the agents' `--json` results and `--hdr-log` interval logs into one result,
//! printed and written as one `stress` run's (human report, `--json`, `--hdr-log`).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use ringport_stress::config::OutputTarget;
use ringport_stress::merge::{merge, Input};

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
}

/// Merges, prints, writes; the exit code is the merged run's, as `stress` would give it.
pub fn run(args: MergeArgs) -> anyhow::Result<ExitCode> {
    let mut inputs = Vec::with_capacity(args.files.len());
    for path in &args.files {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        inputs.push(Input {
            name: path.display().to_string(),
            bytes,
        });
    }
    let merged = merge(&inputs)?;
    let json = args.json.as_deref().map(OutputTarget::parse);
    let text = merged.report.render();
    if matches!(json, Some(OutputTarget::Stdout)) {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    if let Some(target) = &json {
        merged.report.write_json(target).context("writing --json")?;
    }
    if let Some(path) = &args.hdr_log {
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("writing --hdr-log to {}", path.display()))?,
        );
        merged
            .log
            .write_to(&mut out)
            .and_then(|()| out.flush())
            .with_context(|| format!("writing --hdr-log to {}", path.display()))?;
    }
    Ok(ExitCode::from(
        u8::try_from(merged.report.exit_code()).unwrap_or(1),
    ))
}
