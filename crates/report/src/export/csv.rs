//! The CSV exporter (`--csv`): a run's interval log as a table, one row per interval, for a
//! spreadsheet or a plotting script.
//!
//! The header is `tag,start_s,length_s,count,min_us,p50_us,p90_us,p99_us,p999_us,max_us,mean_us`;
//! rows follow the log's order (a `connect` interval over the run, with `--tls` a `handshake`
//! one, then per second a `latency`
//! row and, in rate mode, an `uncorrected` one). Start and length are seconds from the start of
//! the measured phase; latency is in microseconds. An empty interval has a count of 0 and empty
//! figures.

use std::io;

use super::Exporter;
use crate::hdrlog::IntervalLog;
use crate::histogram::LatencySummary;

/// One row per interval of an interval log.
#[derive(Debug, Clone, Copy, Default)]
pub struct Csv;

/// The header row.
pub const CSV_HEADER: &str =
    "tag,start_s,length_s,count,min_us,p50_us,p90_us,p99_us,p999_us,max_us,mean_us";

impl Exporter<IntervalLog> for Csv {
    fn write(&self, log: &IntervalLog, out: &mut dyn io::Write) -> io::Result<()> {
        writeln!(out, "{CSV_HEADER}")?;
        for i in &log.intervals {
            let h = i
                .histogram()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            // Tags are plain words (the log format refuses `,` and whitespace in them).
            write!(
                out,
                "{},{:.3},{:.3},",
                i.tag,
                i.start.as_secs_f64(),
                i.length.as_secs_f64()
            )?;
            match LatencySummary::of(&h) {
                Some(l) => writeln!(
                    out,
                    "{},{},{},{},{},{},{},{:.1}",
                    l.count, l.min, l.p50, l.p90, l.p99, l.p999, l.max, l.mean
                )?,
                None => writeln!(out, "0,,,,,,,")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::hdrlog::LogInterval;
    use crate::histogram::new_histogram;

    #[test]
    fn one_row_per_interval_with_its_figures() {
        let mut h = new_histogram();
        for v in [100, 200, 300, 400] {
            h.record(v).unwrap();
        }
        let s = Duration::from_secs;
        let log = IntervalLog {
            start: SystemTime::UNIX_EPOCH,
            run_id: None,
            segment: None,
            intervals: vec![
                LogInterval::new("connect", s(0), s(2), &new_histogram()),
                LogInterval::new("latency", s(1), Duration::from_millis(500), &h),
            ],
        };
        let text = Csv.to_string(&log);
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows[0], CSV_HEADER);
        assert_eq!(rows[1], "connect,0.000,2.000,0,,,,,,,");
        let cells: Vec<&str> = rows[2].split(',').collect();
        assert_eq!(cells.len(), CSV_HEADER.split(',').count());
        assert_eq!(&cells[..5], ["latency", "1.000", "0.500", "4", "100"]);
        assert_eq!(cells[9], "400", "max");
        assert_eq!(rows.len(), 3);
    }
}
