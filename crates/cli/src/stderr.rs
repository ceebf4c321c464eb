//! Standard error that never blocks the process: the log and ringport's own notices go through
//! one bounded queue, in order, and one thread writes them out.
//!
//! A standard error that nobody reads (a stalled pipe or FIFO, a stuck log collector) fills up
//! and then blocks every write to it. Written directly, a log line from a worker, or the notice
//! of the signal thread, would stop that thread for as long, and a SIGTERM would never be
//! answered. Here only the writing thread waits: a line that finds the queue full is dropped
//! and counted, and once standard error moves again the count is written. A broken standard
//! error (its reader gone) loses the lines instead of panicking the thread that logged.
//!
//! `tracing-appender`'s non-blocking writer does the same for the log, but its guard reports a
//! flush that timed out by printing to the standard streams itself, which is the wait this
//! module is here to avoid; and the notices must share the log's queue to keep their order.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::Duration;

/// Lines (log events, notices) that may wait for standard error.
const QUEUE_LINES: usize = 4096;
/// How long [`flush`] waits for the queued lines to be written.
pub const FLUSH_WAIT: Duration = Duration::from_secs(1);

enum Msg {
    Line(Vec<u8>),
    /// Answered once everything queued before it was written.
    Flush(SyncSender<()>),
}

struct Queue {
    /// `None` when the writing thread could not be started: lines are then written directly.
    tx: Option<SyncSender<Msg>>,
}

/// Lines dropped because the queue was full, not yet reported.
static DROPPED: AtomicU64 = AtomicU64::new(0);

fn queue() -> &'static Queue {
    static QUEUE: OnceLock<Queue> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (tx, rx) = mpsc::sync_channel::<Msg>(QUEUE_LINES);
        let started = std::thread::Builder::new()
            .name("ringport-stderr".into())
            .spawn(move || {
                let mut err = io::stderr();
                for msg in rx {
                    match msg {
                        Msg::Line(line) => {
                            let dropped = DROPPED.swap(0, Ordering::Relaxed);
                            if dropped > 0 {
                                let _ = writeln!(
                                    err,
                                    "ringport: {dropped} log lines dropped while standard error \
                                     was not being read"
                                );
                            }
                            let _ = err.write_all(&line);
                        }
                        Msg::Flush(done) => {
                            let _ = done.try_send(());
                        }
                    }
                }
            });
        Queue {
            tx: started.is_ok().then_some(tx),
        }
    })
}

/// Queues `line` (which ends with its newline), or drops and counts it if the queue is full.
fn send(line: Vec<u8>) {
    match &queue().tx {
        Some(tx) => match tx.try_send(Msg::Line(line)) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        },
        None => {
            let _ = io::stderr().write_all(&line);
        }
    }
}

/// Writes one notice line (a newline is added) on standard error without waiting for it.
pub fn write_note(args: fmt::Arguments<'_>) {
    let mut line = args.to_string().into_bytes();
    line.push(b'\n');
    send(line);
}

/// `eprintln!` that never blocks: see [`write_note`].
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::stderr::write_note(format_args!($($arg)*))
    };
}
pub(crate) use note;

/// Waits until the lines queued so far are written, at most [`FLUSH_WAIT`] (less if standard
/// error is not being read: then they are lost). Call before the process exits.
pub fn flush() {
    let Some(tx) = &queue().tx else {
        return;
    };
    let (done, written) = mpsc::sync_channel(1);
    if tx.try_send(Msg::Flush(done)).is_ok() {
        let _ = written.recv_timeout(FLUSH_WAIT);
    }
}

/// The log's writer (`tracing_subscriber`'s `MakeWriter` is any `Fn() -> impl Write`): each
/// event, which the formatter writes whole, is one queued line.
pub fn writer() -> Writer {
    Writer
}

/// See [`writer`].
#[derive(Debug, Clone, Copy)]
pub struct Writer;

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        send(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
