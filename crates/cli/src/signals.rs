//! SIGINT and SIGTERM, the same for every command: the first starts the command's own graceful
//! stop, a second exits at once (130). Notices go through the stderr queue, so a signal is
//! answered even when nobody reads standard error.

use anyhow::Context;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Calls `first` with the signal's name (`SIGINT`, `SIGTERM`) at the first signal, from a thread
/// of its own; at a second, calls `before_exit`, says so and exits with 130.
pub fn on_interrupt(
    first: impl Fn(&'static str) + Send + 'static,
    before_exit: impl Fn() + Send + 'static,
) -> anyhow::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM]).context("cannot install signal handlers")?;
    std::thread::Builder::new()
        .name("ringport-signals".into())
        .spawn(move || {
            for (n, sig) in signals.forever().enumerate() {
                let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                if n == 0 {
                    first(name);
                } else {
                    before_exit();
                    crate::stderr::note!("ringport: {name} again: exiting at once");
                    crate::stderr::flush();
                    std::process::exit(i32::from(crate::exit::INTERRUPTED));
                }
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}
