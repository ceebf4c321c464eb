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
//! A UDP run's table ([`CsvRun::of`] its result) has nine more columns, `sent,echoed,lost,
//! duplicated,reordered,corrupted,jitter_us,flow,agent`, empty on the latency rows and filled
//! on two kinds of rows of their own:
//!
//! - one `datagrams` row per second: the datagrams sent in that second, what became of them and
//!   the second's jitter (the mean transit difference, `datagrams_over_time`'s `jitter_us`);
//!   `flow` and `agent` empty;
//! - one `flow` row per flow, after them: start 0 and the measured phase's length, the flow's
//!   counts, its RFC 3550 jitter at the end of the run, its number (from 1) and, in a merged
//!   result, its agent (from 1, the order of `merged_from`).
//!
//! Filtering the `tag` column gives each table alone; the `flow` rows add up to the
//! `datagrams` rows' totals.

use std::io;

use super::Exporter;
use crate::datagrams::{DatagramFlow, DatagramSecond};
use crate::hdrlog::IntervalLog;
use crate::histogram::LatencySummary;
use crate::run::StressReport;

/// One row per interval of an interval log.
#[derive(Debug, Clone, Copy, Default)]
pub struct Csv;

/// The header row.
pub const CSV_HEADER: &str =
    "tag,start_s,length_s,count,min_us,p50_us,p90_us,p99_us,p999_us,max_us,mean_us";

/// The columns a UDP run's table adds.
pub const CSV_DATAGRAM_COLUMNS: &str =
    "sent,echoed,lost,duplicated,reordered,corrupted,jitter_us,flow,agent";

/// A run's interval log with, for a UDP run, its datagrams per second and per flow.
#[derive(Debug, Clone, Copy)]
pub struct CsvRun<'a> {
    /// The interval log.
    pub log: &'a IntervalLog,
    /// `datagrams_over_time` of the run's result (empty for TCP).
    pub datagrams: &'a [DatagramSecond],
    /// `datagram_flows` of the run's result (empty for TCP).
    pub flows: &'a [DatagramFlow],
    /// The measured phase's length in seconds (the `flow` rows' length).
    pub duration_s: f64,
}

impl<'a> CsvRun<'a> {
    /// The table of `report`'s run with its interval log `log`.
    pub fn of(log: &'a IntervalLog, report: &'a StressReport) -> CsvRun<'a> {
        CsvRun {
            log,
            datagrams: &report.datagrams_over_time,
            flows: &report.datagram_flows,
            duration_s: report.duration_s,
        }
    }
}

impl Exporter<IntervalLog> for Csv {
    fn write(&self, log: &IntervalLog, out: &mut dyn io::Write) -> io::Result<()> {
        self.write(
            &CsvRun {
                log,
                datagrams: &[],
                flows: &[],
                duration_s: 0.0,
            },
            out,
        )
    }
}

/// A jitter cell: microseconds to a nanosecond, empty when there is none.
fn jitter_cell(us: Option<f64>) -> String {
    us.map_or_else(String::new, |j| format!("{j:.3}"))
}

impl Exporter<CsvRun<'_>> for Csv {
    fn write(&self, run: &CsvRun<'_>, out: &mut dyn io::Write) -> io::Result<()> {
        let (log, udp) = (run.log, !run.datagrams.is_empty() || !run.flows.is_empty());
        let extra = if udp { ",,,,,,,,," } else { "" };
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
                "datagrams,{}.000,1.000,,,,,,,,,{},{},{},{},{},{},{},,",
                d.second,
                c.sent,
                c.echoed,
                c.lost,
                c.duplicated,
                c.reordered,
                c.corrupted,
                jitter_cell(d.jitter_us)
            )?;
        }
        for f in run.flows {
            let c = &f.counts;
            writeln!(
                out,
                "flow,0.000,{:.3},,,,,,,,,{},{},{},{},{},{},{},{},{}",
                run.duration_s,
                c.sent,
                c.echoed,
                c.lost,
                c.duplicated,
                c.reordered,
                c.corrupted,
                jitter_cell(f.jitter_us),
                f.flow,
                f.agent.map_or_else(String::new, |a| a.to_string())
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_udp_run_has_a_datagrams_row_per_second_and_a_row_per_flow() {
        use crate::datagrams::{DatagramFlow, DatagramSecond, Datagrams};
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
            jitter_us: Some(12.5),
            jitter_samples: 6,
        }];
        let flow = |flow, agent, sent, echoed, jitter_us| DatagramFlow {
            flow,
            agent,
            counts: Datagrams {
                sent,
                echoed,
                lost: sent - echoed,
                ..Datagrams::default()
            },
            jitter_us,
        };
        let flows = [
            flow(1, None, 6, 6, Some(0.25)),
            flow(2, Some(2), 4, 2, None),
        ];
        let text = Csv.to_string(&CsvRun {
            log: &log,
            datagrams: &datagrams,
            flows: &flows,
            duration_s: 2.0,
        });
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows[0], format!("{CSV_HEADER},{CSV_DATAGRAM_COLUMNS}"));
        assert_eq!(rows[1], "connect,0.000,2.000,0,,,,,,,,,,,,,,,,");
        assert_eq!(
            rows[2],
            "datagrams,1.000,1.000,,,,,,,,,10,8,2,1,3,0,12.500,,"
        );
        assert_eq!(rows[3], "flow,0.000,2.000,,,,,,,,,6,6,0,0,0,0,0.250,1,");
        assert_eq!(rows[4], "flow,0.000,2.000,,,,,,,,,4,2,2,0,0,0,,2,2");
        for r in &rows {
            assert_eq!(r.split(',').count(), 20, "{r}");
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
