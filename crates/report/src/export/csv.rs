//! The CSV exporter (`--csv`): a run's interval log as a table, one row per interval, for a
//! spreadsheet or a plotting script.
//!
//! The header is `tag,start_s,length_s,count,min_us,p50_us,p90_us,p99_us,p999_us,max_us,mean_us`;
//! rows follow the log's order (a `connect` interval over the run, with `--tls` a `handshake`
//! one, then per second a `latency`
//! row and, in rate mode, an `uncorrected` one). Start and length are seconds from the start of
//! the measured phase; latency is in microseconds. An empty interval has a count of 0 and empty
//! figures.
//!
//! A UDP run's table ([`CsvRun`] with its `datagrams_over_time`) has six more columns, `sent,
//! echoed,lost,duplicated,reordered,corrupted`, filled on one `datagrams` row per second (the
//! datagrams sent in that second and what became of them) and empty on the other rows.

use std::io;

use super::Exporter;
use crate::datagrams::DatagramSecond;
use crate::hdrlog::IntervalLog;
use crate::histogram::LatencySummary;

/// One row per interval of an interval log.
#[derive(Debug, Clone, Copy, Default)]
pub struct Csv;

/// The header row.
pub const CSV_HEADER: &str =
    "tag,start_s,length_s,count,min_us,p50_us,p90_us,p99_us,p999_us,max_us,mean_us";

/// The columns a UDP run's table adds.
pub const CSV_DATAGRAM_COLUMNS: &str = "sent,echoed,lost,duplicated,reordered,corrupted";

/// A run's interval log with, for a UDP run, its datagrams per second.
#[derive(Debug, Clone, Copy)]
pub struct CsvRun<'a> {
    /// The interval log.
    pub log: &'a IntervalLog,
    /// `datagrams_over_time` of the run's result (empty for TCP).
    pub datagrams: &'a [DatagramSecond],
}

impl Exporter<IntervalLog> for Csv {
    fn write(&self, log: &IntervalLog, out: &mut dyn io::Write) -> io::Result<()> {
        self.write(
            &CsvRun {
                log,
                datagrams: &[],
            },
            out,
        )
    }
}

impl Exporter<CsvRun<'_>> for Csv {
    fn write(&self, run: &CsvRun<'_>, out: &mut dyn io::Write) -> io::Result<()> {
        let (log, udp) = (run.log, !run.datagrams.is_empty());
        let extra = if udp { ",,,,,," } else { "" };
        if udp {
            writeln!(out, "{CSV_HEADER},{CSV_DATAGRAM_COLUMNS}")?;
        } else {
            writeln!(out, "{CSV_HEADER}")?;
        }
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
                    "{},{},{},{},{},{},{},{:.1}{extra}",
                    l.count, l.min, l.p50, l.p90, l.p99, l.p999, l.max, l.mean
                )?,
                None => writeln!(out, "0,,,,,,,{extra}")?,
            }
        }
        for d in run.datagrams {
            let c = &d.counts;
            writeln!(
                out,
                "datagrams,{}.000,1.000,,,,,,,,,{},{},{},{},{},{}",
                d.second, c.sent, c.echoed, c.lost, c.duplicated, c.reordered, c.corrupted
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_udp_run_has_a_datagrams_row_per_second() {
        use crate::datagrams::{DatagramSecond, Datagrams};
        let log = IntervalLog {
            start: SystemTime::UNIX_EPOCH,
            run_id: None,
            segment: None,
            intervals: vec![LogInterval::new(
                "connect",
                Duration::ZERO,
                Duration::from_secs(2),
                &new_histogram(),
            )],
        };
        let datagrams = [DatagramSecond {
            second: 1,
            counts: Datagrams {
                sent: 10,
                echoed: 8,
                lost: 2,
                duplicated: 1,
                reordered: 3,
                corrupted: 0,
            },
        }];
        let text = Csv.to_string(&CsvRun {
            log: &log,
            datagrams: &datagrams,
        });
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows[0], format!("{CSV_HEADER},{CSV_DATAGRAM_COLUMNS}"));
        assert_eq!(rows[1], "connect,0.000,2.000,0,,,,,,,,,,,,,");
        assert_eq!(rows[2], "datagrams,1.000,1.000,,,,,,,,,10,8,2,1,3,0");
        for r in &rows {
            assert_eq!(r.split(',').count(), 17, "{r}");
        }
    }

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
