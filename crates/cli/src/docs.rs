//! `ringport completions SHELL` and `ringport man`: the command line's own documentation,
//! generated from the same clap definition that parses it (clap_complete, clap_mangen), so it
//! cannot drift from the flags.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use clap_complete::Shell;

/// Examples shown after each command's `--help` (and in its man page), by command name.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "serve",
        "Examples:
  ringport serve                               127.0.0.1:3333, one worker per CPU
  ringport serve --port 0 --workers 4          a free port, printed as `listening on IP:PORT`
  ringport serve --bind 0.0.0.0 --max-per-ip 0   other hosts, no per-address cap
  ringport serve --model threaded --stats 1    the article's thread per client, a line a second
  ringport serve --reuse-port --port 4000      one of several servers sharing port 4000
  ringport serve --tls-self-signed             TLS with a certificate made at start",
    ),
    (
        "send",
        "Examples:
  ringport send hello                          to 127.0.0.1:3333
  ringport send 127.0.0.1:4000 \"hello world\"
  printf 'a\\0b' | ringport send 4000 -         bytes from standard input
  ringport send 4000 --file payload.bin        bytes from a file
  ringport send --timeout 1 hello              wait at most 1 s (default 5)
  ringport send --websocket=/echo 8765 hello   one WebSocket message, its echo checked",
    ),
    (
        "stress",
        "Examples:
  ringport stress                              asks for message, connections and sends
  ringport stress 3333 --connections 100 --size 64 --duration 10 --warmup 2
  ringport stress --rate 50000 --duration 10 --json result.json --hdr-log run.hlog
  ringport stress --size 1024 --seed 7 --count 100   the same random bytes as any run with seed 7
  ringport stress --stream --connections 10 --duration 10   echoed Gbit/s
  ringport stress --messages-per-connection 10 --connect-rate 2000 --duration 10   churn
  ringport stress --duration 60 --interval 5   a progress line every 5 s
  ringport stress --rate 5000 --duration 60 --html run.html   one page of charts
  ringport stress --websocket --tls 443 --duration 10   each message one wss message",
    ),
    (
        "merge",
        "Examples:
  ringport merge a1.json a1.hlog a2.json a2.hlog --json all.json --hdr-log all.hlog
  ringport merge a1.json a1.hlog a2.json a2.hlog --html all.html   each agent beside the whole",
    ),
    (
        "bench",
        "Examples:
  ringport bench --quick                       every design, a few points, about 40 s
  ringport bench --out results/                table, JSON, CSV and charts in results/
  ringport bench --quick --html bench.html     also every chart and table in one page",
    ),
    (
        "completions",
        "Examples:
  ringport completions bash > ~/.local/share/bash-completion/completions/ringport
  ringport completions zsh > ~/.zfunc/_ringport     (with fpath+=(~/.zfunc) before compinit)
  ringport completions fish > ~/.config/fish/completions/ringport.fish",
    ),
    (
        "man",
        "Examples:
  ringport man | man -l -                      read it now
  ringport man --out /usr/local/share/man/man1   ringport.1 and ringport-COMMAND.1",
    ),
];

/// Examples after the top-level `--help`.
pub const TOP_EXAMPLES: &str = "Examples:
  ringport serve &                             an echo server on 127.0.0.1:3333
  ringport send hello                          one message, its echo checked
  ringport stress --connections 100 --duration 10
  ringport bench --quick                       every server design side by side
  ringport COMMAND --help                      each command's flags and examples";

/// Arguments of `ringport completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: Shell,
}

/// Arguments of `ringport man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write ringport.1 and one ringport-COMMAND.1 per command into DIR instead of printing
    /// ringport.1 on stdout.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Prints the completion script for `args.shell` on stdout.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut cmd = crate::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "ringport", &mut script);
    reader_gone(write_out(&script))?;
    Ok(ExitCode::SUCCESS)
}

/// Writes `bytes` on stdout, flushed.
fn write_out(bytes: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}

/// Standard output whose reader stopped taking it (`ringport man | head -1`) is not a failure
/// of a command that only prints.
fn reader_gone(written: std::io::Result<()>) -> std::io::Result<()> {
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Prints the man page (roff) on stdout, or writes every page into `--out`. `help` is not a
/// page (`--help` is every command's): ringport.1 names only the pages `--out` writes.
pub fn man(args: ManArgs) -> anyhow::Result<ExitCode> {
    let cmd = crate::command().disable_help_subcommand(true);
    match args.out {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut page)?;
            reader_gone(write_out(&page))?;
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
            println!("man pages written to {}", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command lines of an examples text: each `ringport ...` up to its comment (two
    /// spaces), a pipe, a redirection or a `&`, split on whitespace.
    fn example_lines(text: &str) -> Vec<Vec<String>> {
        text.lines()
            .filter_map(|l| {
                let l = l.trim_start();
                let at = l.find("ringport ")?;
                let cmd = &l[at..];
                let cmd = cmd.split("  ").next().unwrap_or(cmd);
                let cmd = cmd.split(['|', '>', '&']).next().unwrap_or(cmd);
                Some(
                    cmd.split_whitespace()
                        .map(|w| w.trim_matches('"').to_string())
                        .collect(),
                )
            })
            .collect()
    }

    /// Every example in `--help` parses: they cannot name a flag that is gone or misspelt.
    #[test]
    fn every_example_parses() {
        let mut n = 0;
        for (name, text) in EXAMPLES {
            assert!(
                crate::command().find_subcommand(name).is_some(),
                "examples for a command that does not exist: {name}"
            );
            for words in example_lines(text) {
                assert_eq!(words[1], *name, "{words:?} under {name}");
                if let Err(e) = crate::command().try_get_matches_from(&words) {
                    panic!("{words:?}: {e}");
                }
                n += 1;
            }
        }
        for words in example_lines(TOP_EXAMPLES) {
            if words.iter().any(|w| w == "COMMAND") {
                continue;
            }
            if let Err(e) = crate::command().try_get_matches_from(&words) {
                panic!("{words:?}: {e}");
            }
            n += 1;
        }
        assert!(n > 20, "only {n} examples found");
        // Every command has examples.
        for sub in crate::command().get_subcommands() {
            let name = sub.get_name();
            assert!(
                name == "help" || EXAMPLES.iter().any(|(n, _)| *n == name),
                "no examples for `{name}`"
            );
        }
    }
}
