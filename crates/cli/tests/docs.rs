//! The documented commands run: every ` ```sh ` block of README.md and `docs/` is run with the
//! `ringport` just built first on `PATH`, and every relative link resolves.
//!
//! The rule the guides state (docs/README.md): a ` ```sh ` block runs in CI, as written, in an
//! empty temporary directory (short durations, loopback only, servers started in the background
//! and stopped by the block); a ` ```console ` block is an illustration and never runs. Every
//! fence names its language, and shell under any other name (`bash`, `shell`, ...) is refused, so
//! no command escapes the check by its spelling. A block runs under `bash -e -o pipefail` in a
//! process group of its own, which is killed when the block ends (so a server a failing block
//! left behind does not outlive it) or when it runs past its time. A failure names the file, the
//! line and the command. `RINGPORT_DOCS=PATH` runs only the blocks of the files whose path
//! contains PATH.
#![cfg(target_os = "linux")]
#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The longest a block may run: the slowest (a latency search) takes a few seconds.
const BLOCK_TIMEOUT: Duration = Duration::from_secs(120);

/// Languages that are shell but neither of the two the guides allow.
const OTHER_SHELLS: &[&str] = &["bash", "shell", "zsh", "shell-session", "shellsession"];

/// A fenced code block: where it starts, its language and its text.
struct Block {
    file: PathBuf,
    /// 1-based line of the block's first line of content.
    line: usize,
    lang: String,
    text: String,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// README.md and every Markdown file under docs/, in a stable order.
fn documents() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "md") {
                out.push(p);
            }
        }
    }
    let root = repo_root();
    let mut files = vec![root.join("README.md")];
    walk(&root.join("docs"), &mut files);
    files
}

/// The fenced code blocks of a Markdown file (``` or ~~~ fences, indented or not).
fn blocks(file: &Path) -> Vec<Block> {
    let text = fs::read_to_string(file).unwrap();
    let mut out = Vec::new();
    let mut open: Option<(String, usize, String)> = None; // fence, first line, language
    let mut body = String::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        match &open {
            None => {
                let fence: String = t.chars().take_while(|&c| c == '`' || c == '~').collect();
                if fence.len() >= 3 && fence.chars().all(|c| c == fence.chars().next().unwrap()) {
                    let lang = t[fence.len()..]
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_string();
                    open = Some((fence, i + 2, lang));
                    body.clear();
                }
            }
            Some((fence, first, lang)) => {
                if t.trim_end() == fence.as_str() {
                    out.push(Block {
                        file: file.to_path_buf(),
                        line: *first,
                        lang: lang.clone(),
                        text: std::mem::take(&mut body),
                    });
                    open = None;
                } else {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    assert!(
        open.is_none(),
        "{}: a code fence is never closed",
        file.display()
    );
    out
}

fn rel(file: &Path) -> String {
    file.strip_prefix(repo_root())
        .unwrap_or(file)
        .display()
        .to_string()
}

#[test]
fn every_fence_names_sh_console_or_another_language() {
    let mut wrong = Vec::new();
    for file in documents() {
        for b in blocks(&file) {
            if b.lang.is_empty() {
                wrong.push(format!(
                    "{}:{}: a fence without a language (sh runs in CI, console is an illustration, text is output)",
                    rel(&b.file),
                    b.line - 1
                ));
            } else if OTHER_SHELLS.contains(&b.lang.as_str()) {
                wrong.push(format!(
                    "{}:{}: ```{}: mark shell `sh` (runs in CI) or `console` (an illustration)",
                    rel(&b.file),
                    b.line - 1,
                    b.lang
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

/// Runs one `sh` block; `Err` names the file, line and command that failed.
fn run(block: &Block, n: usize, bin_dir: &Path) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("ringport-docs-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    // Line 1 is the trap; the block's line k is the script's line k + 1.
    let script = format!(
        "trap 'echo \"ringport-docs: line $LINENO: $BASH_COMMAND\" >&2' ERR\n{}",
        block.text
    );
    fs::write(dir.join("block.sh"), script).unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let stdout = fs::File::create(dir.join("stdout")).unwrap();
    let stderr = fs::File::create(dir.join("stderr")).unwrap();
    let mut child = Command::new("bash")
        .args(["-e", "-o", "pipefail", "block.sh"])
        .current_dir(&dir)
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .spawn()
        .expect("bash");
    let pgid = child.id();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > BLOCK_TIMEOUT {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Whatever the block left running (a server of a block that failed) goes with it.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
    let _ = child.wait();
    let err = fs::read_to_string(dir.join("stderr")).unwrap_or_default();
    let place = |script_line: usize| block.line + script_line - 2;
    let result = match status {
        Some(s) if s.success() => Ok(()),
        _ => {
            let failed = err
                .lines()
                .rev()
                .find_map(|l| l.strip_prefix("ringport-docs: line "))
                .and_then(|l| l.split_once(": "))
                .and_then(|(k, cmd)| Some((k.parse::<usize>().ok()?, cmd.to_string())));
            let (line, cmd) = match failed {
                Some((k, cmd)) => (place(k), cmd),
                None => (
                    block.line,
                    block.text.lines().next().unwrap_or("").to_string(),
                ),
            };
            let why = match status {
                Some(s) => format!("failed ({s})"),
                None => format!("ran past {} s", BLOCK_TIMEOUT.as_secs()),
            };
            let tail: Vec<&str> = err.lines().rev().take(12).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            Err(format!(
                "{}:{line}: `{cmd}` {why} (its directory is kept: {})\n    stderr (last lines):\n      {}",
                rel(&block.file),
                dir.display(),
                tail.join("\n      ")
            ))
        }
    };
    if result.is_ok() {
        let _ = fs::remove_dir_all(&dir);
    }
    result
}

#[test]
fn every_sh_block_runs() {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_ringport"));
    let bin_dir = exe.parent().unwrap();
    let only = std::env::var("RINGPORT_DOCS").ok();
    let mut failures = Vec::new();
    let mut ran = 0;
    for file in documents() {
        if only
            .as_ref()
            .is_some_and(|o| !rel(&file).contains(o.as_str()))
        {
            continue;
        }
        for b in blocks(&file).into_iter().filter(|b| b.lang == "sh") {
            ran += 1;
            eprintln!("{}:{}: running", rel(&b.file), b.line);
            if let Err(e) = run(&b, ran, bin_dir) {
                eprintln!("{e}");
                failures.push(e);
            }
        }
    }
    assert!(
        only.is_some() || ran > 10,
        "only {ran} sh blocks found: is docs/ there?"
    );
    assert!(
        failures.is_empty(),
        "{} of {ran} documented command blocks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown file's headings (outside code blocks; code spans keep their text).
fn anchors(file: &Path) -> HashSet<String> {
    let mut out = HashSet::new();
    for (_, line) in lines_outside_fences(file) {
        if let Some(h) = line.strip_prefix('#') {
            out.insert(slug(h.trim_start_matches('#')));
        }
    }
    out
}

/// A file's lines outside fenced code blocks: (1-based number, text).
fn lines_outside_fences(file: &Path) -> Vec<(usize, String)> {
    let text = fs::read_to_string(file).unwrap();
    let mut fence: Option<String> = None;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let t = line.trim_start();
        let marker: String = t.chars().take_while(|&c| c == '`' || c == '~').collect();
        match &fence {
            None if marker.len() >= 3 => fence = Some(marker),
            Some(f) if t.trim_end() == f.as_str() => fence = None,
            Some(_) => {}
            None => out.push((n + 1, line.to_string())),
        }
    }
    out
}

/// A file's lines outside fenced code blocks, with inline code spans removed: a link inside one
/// is not a link.
fn prose(file: &Path) -> Vec<(usize, String)> {
    lines_outside_fences(file)
        .into_iter()
        .map(|(n, line)| {
            let kept: String = line
                .split('`')
                .enumerate()
                .filter(|(i, _)| i % 2 == 0)
                .map(|(_, part)| part)
                .collect();
            (n, kept)
        })
        .collect()
}

/// The targets of a line's `[text](target)` and `![alt](target)` links.
fn link_targets(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        let Some(end) = after.find(')') else { break };
        let target = after[..end].split_whitespace().next().unwrap_or("");
        out.push(target.to_string());
        rest = &after[end..];
    }
    out
}

#[test]
fn every_relative_link_resolves() {
    let mut broken = Vec::new();
    for file in documents() {
        for (n, line) in prose(&file) {
            for target in link_targets(&line) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let (path, anchor) = match target.split_once('#') {
                    Some((p, a)) => (p, Some(a)),
                    None => (target.as_str(), None),
                };
                let resolved = if path.is_empty() {
                    file.clone()
                } else {
                    file.parent().unwrap().join(path)
                };
                let where_ = format!("{}:{n}: {target}", rel(&file));
                if !resolved.exists() {
                    broken.push(format!("{where_}: no such file"));
                } else if let Some(a) = anchor {
                    if resolved.extension().is_some_and(|e| e == "md")
                        && !anchors(&resolved).contains(a)
                    {
                        broken.push(format!("{where_}: no such heading"));
                    }
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}
