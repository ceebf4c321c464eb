//! The article's way of starting a run: questions on a terminal.
//!
//! This module is responsible for [`ask`], which asks for the message, the number of
//! connections and the number of sends as the article's client did, and for nothing else: the
//! CLI decides whether to ask (standard input is a terminal and
//! [`StressConfig::is_interactive_candidate`] holds), and the answers land in the same
//! [`StressConfig`] fields the flags set.

use std::io::{self, BufRead, Write};

use super::options::{StressConfig, DEFAULT_COUNT, DEFAULT_MESSAGE};

/// The article's way (issue item 6): asks on `output` for the message, the number of
/// connections ("threads" in the article, unless `ask_connections` is false because the
/// command line gave it) and the number of sends, reading the answers from `input`, as its
/// client did. An empty answer keeps the current value; a bad number is asked again. The
/// CLI passes standard error as `output`: the questions are for the person at the terminal
/// and never belong in the results on standard output. Call it only when [`is_interactive_candidate`](StressConfig::is_interactive_candidate)
/// holds and standard input is a terminal; the CLI decides that.
///
/// # Errors
///
/// I/O errors, and `UnexpectedEof` if the input ends before the questions are answered.
pub fn ask<R: BufRead, W: Write>(
    config: &mut StressConfig,
    mut input: R,
    mut output: W,
    ask_connections: bool,
) -> io::Result<()> {
    let mut line = String::new();
    let mut read = |output: &mut W, prompt: &str, line: &mut String| -> io::Result<()> {
        write!(output, "{prompt}")?;
        output.flush()?;
        line.clear();
        if input.read_line(line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "no answer on standard input",
            ));
        }
        Ok(())
    };
    read(
        &mut output,
        &format!("Please enter message to be sent to the server [{DEFAULT_MESSAGE}]: "),
        &mut line,
    )?;
    let answer = line.trim_end_matches(['\r', '\n']);
    config.message = Some(if answer.is_empty() {
        DEFAULT_MESSAGE.to_string()
    } else {
        answer.to_string()
    });
    let mut asking = ask_connections;
    while asking {
        read(
            &mut output,
            &format!(
                "Please enter number of connections to open [{}]: ",
                config.connections
            ),
            &mut line,
        )?;
        match line.trim() {
            "" => asking = false,
            t => match t.parse::<usize>() {
                Ok(n) if n > 0 => {
                    config.connections = n;
                    asking = false;
                }
                _ => writeln!(output, "a positive whole number, please")?,
            },
        }
    }
    loop {
        read(
            &mut output,
            &format!("Please enter number of times the message is to be sent [{DEFAULT_COUNT}]: "),
            &mut line,
        )?;
        match line.trim() {
            "" => {
                config.count = Some(DEFAULT_COUNT);
                break;
            }
            t => match t.parse::<u64>() {
                Ok(n) if n > 0 => {
                    config.count = Some(n);
                    break;
                }
                _ => writeln!(output, "a positive whole number, please")?,
            },
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::options::test_config as cfg;

    #[test]
    fn asks_like_the_article() {
        let mut c = cfg();
        let mut out = Vec::new();
        ask(
            &mut c,
            &b"Swarajya Pendha\n0\nabc\n7\n\n"[..],
            &mut out,
            true,
        )
        .unwrap();
        assert_eq!(c.message.as_deref(), Some("Swarajya Pendha"));
        assert_eq!(c.connections, 7);
        assert_eq!(c.count, Some(DEFAULT_COUNT));
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Please enter message to be sent to the server"));
        assert!(text.contains("Please enter number of connections to open"));
        assert!(text.contains("Please enter number of times the message is to be sent"));
        assert_eq!(text.matches("a positive whole number").count(), 2);
        c.validate().unwrap();
    }

    #[test]
    fn asking_on_a_closed_input_fails_instead_of_blocking() {
        let mut c = cfg();
        let e = ask(&mut c, &b"hi\n"[..], Vec::new(), true).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn what_the_command_line_gave_is_not_asked() {
        let mut c = StressConfig {
            connections: 9,
            ..cfg()
        };
        let mut out = Vec::new();
        ask(&mut c, &b"hi\n4\n"[..], &mut out, false).unwrap();
        assert_eq!((c.connections, c.count), (9, Some(4)));
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("connections"), "{text}");
    }
}
