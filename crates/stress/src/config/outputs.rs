//! The output files a run names (`--json`, `--hdr-log`, `--csv`, `--svg`, and `merge`'s inputs),
//! checked before anything runs: each can be written, and no two of them are one file (one would
//! overwrite the other).

use std::path::{Path, PathBuf};

use crate::error::ConfigError;

/// The file `path` names, as far as can be told before it is written: its canonical form if it
/// exists, else its absolute form (with `.` and `..` resolved in the existing parent). `.`
/// components are dropped first, so `a/./x` and `a/x` are one file however the system
/// canonicalizes (Windows may not, for a path that does not exist yet).
fn identity(path: &Path) -> PathBuf {
    let path: PathBuf = path
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect();
    let path = path.as_path();
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    let name = path.file_name();
    match (parent.map(Path::canonicalize), name) {
        (Some(Ok(dir)), Some(name)) => dir.join(name),
        (None, Some(name)) => std::env::current_dir()
            .map(|d| d.join(name))
            .unwrap_or_else(|_| path.to_path_buf()),
        _ => std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
    }
}

/// Checks, before anything runs, that `path` can be written, so a long run is not lost to a typo
/// in a path. A file that did not exist is created and removed again; an existing one is opened
/// for appending and left as it is.
///
/// # Errors
///
/// Why it cannot be written (a directory; the system's error).
pub fn writable(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        return Err(std::io::Error::other("it is a directory"));
    }
    let existed = path.exists();
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)?;
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// Checks that none of `named` (a flag and the file it names) is `-`: only `--json` writes to
/// standard output (`--json -`), and a file named `-` is a mistake.
///
/// # Errors
///
/// One line naming the flag.
pub fn files_only(named: &[(&str, &Path)]) -> Result<(), ConfigError> {
    match named.iter().find(|(_, p)| p.as_os_str() == "-") {
        Some((flag, _)) => Err(ConfigError(format!(
            "{flag} -: only --json writes to standard output (`--json -`); give {flag} a file"
        ))),
        None => Ok(()),
    }
}

/// Checks that no two of `named` (a flag and the file it names) are one file.
///
/// # Errors
///
/// One line naming both flags and the file.
pub fn distinct(named: &[(&str, &Path)]) -> Result<(), ConfigError> {
    let ids: Vec<PathBuf> = named.iter().map(|(_, p)| identity(p)).collect();
    for (i, (flag, path)) in named.iter().enumerate() {
        for (j, (other, _)) in named.iter().enumerate().skip(i + 1) {
            if ids[i] == ids[j] {
                return Err(ConfigError(format!(
                    "{flag} and {other} name the same file, {}: one would overwrite the other",
                    path.display()
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_under_two_flags_is_refused() {
        let dir = std::env::temp_dir();
        let a = dir.join(format!("ringport-outputs-{}.json", std::process::id()));
        let e = distinct(&[("--json", &a), ("--hdr-log", &a)]).unwrap_err();
        assert!(
            e.0.contains("--json and --hdr-log name the same file"),
            "{e}"
        );
        let dotted = dir.join(".").join(a.file_name().unwrap());
        assert!(distinct(&[("--json", &a), ("--csv", &dotted)]).is_err());
        let b = a.with_extension("hlog");
        assert!(distinct(&[("--json", &a), ("--hdr-log", &b)]).is_ok());
        assert!(distinct(&[("--json", Path::new("x")), ("--csv", Path::new("./x"))]).is_err());
    }
}
