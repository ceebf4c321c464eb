//! The HdrHistogram interval log exporter (`--hdr-log`): the standard text format, readable by
//! HdrHistogram's tools and by `ringport merge`.

use std::io;

use super::Exporter;
use crate::hdrlog::IntervalLog;

/// The standard HdrHistogram interval log.
#[derive(Debug, Clone, Copy, Default)]
pub struct HdrLog;

impl Exporter<IntervalLog> for HdrLog {
    fn write(&self, log: &IntervalLog, mut out: &mut dyn io::Write) -> io::Result<()> {
        log.write_to(&mut out)
    }
}
