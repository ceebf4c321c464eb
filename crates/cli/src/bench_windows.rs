//! `ringport bench` on Windows: refused with one line. The benchmark starts servers as child
//! processes, stops them with SIGTERM, pins CPUs and reads their figures from `/proc`: all
//! Linux's.

use std::process::ExitCode;

/// The benchmark's options are Linux's; on Windows every argument is taken and refused.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Ignored on Windows.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

/// Refuses: the benchmark needs Linux.
pub fn run(_args: BenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "bench needs Linux (/proc figures, SIGTERM to servers, CPU pinning); run it on Linux"
    )
}
