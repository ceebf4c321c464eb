//! The Linux program (the whole of `seccomp-exec`); see `main.rs`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

const USAGE: &str = "usage: seccomp-exec -- CMD [ARGS...]

Runs CMD with io_uring_setup, io_uring_enter and io_uring_register failing with EPERM
(a seccomp filter, as Docker's default profile installs); everything else is allowed.";

/// The system calls the filter blocks (seccompiler supports 64-bit targets only, where a
/// system call number is an `i64`).
const BLOCKED: [i64; 3] = [
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
];

/// The filter: the [`BLOCKED`] calls fail with `EPERM`, everything else is allowed.
fn io_uring_filter() -> Result<BpfProgram, String> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| format!("unsupported architecture {}: {e}", std::env::consts::ARCH))?;
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> =
        BLOCKED.iter().map(|&nr| (nr, Vec::new())).collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| e.to_string())?;
    BpfProgram::try_from(filter).map_err(|e| e.to_string())
}

pub fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match args.first().and_then(|a| a.to_str()) {
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some("--") => {
            args.remove(0);
        }
        _ => {}
    }
    let Some((program, rest)) = args.split_first() else {
        eprintln!("seccomp-exec: no command given\n\n{USAGE}");
        return ExitCode::from(2);
    };
    let filter = match io_uring_filter() {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("seccomp-exec: cannot build the filter: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = seccompiler::apply_filter(&filter) {
        eprintln!("seccomp-exec: cannot install the seccomp filter: {e}");
        return ExitCode::from(1);
    }
    // Only returns on failure.
    let err = Command::new(program).args(rest).exec();
    eprintln!(
        "seccomp-exec: cannot run {}: {err}",
        program.to_string_lossy()
    );
    ExitCode::from(match err.kind() {
        std::io::ErrorKind::NotFound => 127,
        _ => 126,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_compiles_for_this_machine() {
        let filter = io_uring_filter().expect("filter");
        assert!(!filter.is_empty());
    }
}
