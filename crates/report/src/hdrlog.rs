//! The HdrHistogram interval log of a run (`--hdr-log`): written by `stress`, read and written
//! again by `merge`.
//!
//! This module is responsible for [`IntervalLog`], a run's latency as a time series in the
//! standard log format that Java's `HistogramLogWriter` writes (format 1.3, one V2-compressed
//! histogram per line, base64) and its `HistogramLogProcessor` reads:
//!
//! ```text
//! #[Histogram log format version 1.3]
//! #[ringport stress: latency in microseconds; tags latency (corrected), uncorrected, connect]
//! #[ringport run 5f0c9a2e41d7b3c8 segment 2/3]
//! #[StartTime: 1796119200.000 (seconds since epoch)]
//! #[BaseTime: 1796119200.000 (seconds since epoch)]
//! "StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"
//! Tag=connect,0.000,10.000,0.310,HISTFAAAA...
//! Tag=latency,0.000,1.000,1.023,HISTFAAAA...
//! Tag=uncorrected,0.000,1.000,0.811,HISTFAAAA...
//! Tag=latency,1.000,1.000,0.998,HISTFAAAA...
//! ```
//!
//! StartTime and BaseTime are both the wall-clock start of the measured phase, so a timestamp
//! is seconds since then. Every line is tagged: `latency` (from the intended send time, one
//! interval per second of completions), `uncorrected` beside it in rate mode (from the actual
//! send), and one `connect` interval over the whole run (connect times), followed with `--tls`
//! by one `handshake` interval (TLS handshake times). The `ringport run`
//! comment names the run the log belongs to (the `run_id` of its JSON result), which is how
//! `ringport merge` pairs a log with its result. Java's tools read one tag at a time:
//! `HistogramLogProcessor -i run.hlog -tag latency`.

use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;

use crate::histogram::{deserialize, serialize};
use crate::segment::Segment;

/// Tag of the corrected latency series.
pub const TAG_LATENCY: &str = "latency";
/// Tag of the uncorrected latency series (rate mode).
pub const TAG_UNCORRECTED: &str = "uncorrected";
/// Tag of the connect-time interval.
pub const TAG_CONNECT: &str = "connect";
/// Tag of the TLS handshake-time interval (`--tls`).
pub const TAG_HANDSHAKE: &str = "handshake";
/// Tag of the WebSocket upgrade latency interval (`--websocket`, the whole run, like `connect`).
pub const TAG_UPGRADE: &str = "upgrade";

const RUN_COMMENT: &str = "ringport run ";

/// One interval of a log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogInterval {
    /// Its tag (`latency`, `uncorrected`, `connect`).
    pub tag: String,
    /// Start, from the log's start time.
    pub start: Duration,
    /// Length.
    pub length: Duration,
    /// The histogram (microseconds), V2-encoded (compressed or not): decode with
    /// [`LogInterval::histogram`].
    pub encoded: Vec<u8>,
}

impl LogInterval {
    /// An interval holding `h`.
    pub fn new(tag: &str, start: Duration, length: Duration, h: &Histogram<u64>) -> LogInterval {
        LogInterval {
            tag: tag.to_string(),
            start,
            length,
            encoded: serialize(h),
        }
    }

    /// The decoded histogram.
    ///
    /// # Errors
    ///
    /// Why the bytes are not a histogram.
    pub fn histogram(&self) -> Result<Histogram<u64>, String> {
        deserialize(&self.encoded)
    }
}

/// A run's interval log. See the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalLog {
    /// Wall-clock start of the measured phase (StartTime and BaseTime).
    pub start: SystemTime,
    /// The run it belongs to (its JSON result's `run_id`), if the log says.
    pub run_id: Option<String>,
    /// The run's segment, if it was one.
    pub segment: Option<Segment>,
    /// The intervals, in the order written.
    pub intervals: Vec<LogInterval>,
}

impl IntervalLog {
    /// The sum of every interval tagged `tag`; `None` if there is none.
    ///
    /// # Errors
    ///
    /// A histogram that does not decode, or whose range does not fit.
    pub fn total(&self, tag: &str) -> Result<Option<Histogram<u64>>, String> {
        let mut sum: Option<Histogram<u64>> = None;
        for i in self.intervals.iter().filter(|i| i.tag == tag) {
            let h = i.histogram()?;
            match &mut sum {
                None => sum = Some(h),
                Some(s) => s.add(&h).map_err(|e| format!("{e:?}"))?,
            }
        }
        Ok(sum)
    }

    /// Writes the log in the standard format (see the module docs).
    ///
    /// # Errors
    ///
    /// I/O errors from `out`; a tag with `,` or whitespace is `InvalidInput`; a histogram that
    /// does not decode is `InvalidData`.
    pub fn write_to<W: Write>(&self, out: &mut W) -> io::Result<()> {
        let mut serializer = V2DeflateSerializer::new();
        let run = match (&self.run_id, self.segment) {
            (Some(id), Some(seg)) => Some(format!("[{RUN_COMMENT}{id} segment {seg}]")),
            (Some(id), None) => Some(format!("[{RUN_COMMENT}{id}]")),
            (None, _) => None,
        };
        {
            let mut header = IntervalLogWriterBuilder::new();
            header
                .add_comment("[Histogram log format version 1.3]")
                .add_comment(
                    "[ringport stress: latency in microseconds; tags latency (corrected), \
                     uncorrected, connect]",
                );
            if let Some(run) = &run {
                header.add_comment(run);
            }
            let _headers = header
                .with_start_time(self.start)
                .with_base_time(self.start)
                .begin_log_with(out, &mut serializer)?;
        }
        writeln!(
            out,
            "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
        )?;
        let mut log = IntervalLogWriterBuilder::new().begin_log_with(out, &mut serializer)?;
        for i in &self.intervals {
            let tag = Tag::new(&i.tag).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("invalid hdr log tag {:?}", i.tag),
                )
            })?;
            let h = i
                .histogram()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            log.write_histogram(&h, i.start, i.length, Some(tag))
                .map_err(|e| io::Error::other(format!("{e:?}")))?;
        }
        Ok(())
    }

    /// Reads a log in the standard format. Interval timestamps are taken relative to BaseTime
    /// (absolute without one) and stored relative to StartTime.
    ///
    /// # Errors
    ///
    /// A one-line description of what is wrong: not a log, no StartTime, a bad histogram.
    pub fn parse(bytes: &[u8]) -> Result<IntervalLog, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "not a text file".to_string())?;
        let mut run_id = None;
        let mut segment = None;
        for line in text.lines() {
            if let Some(rest) = line
                .strip_prefix("#[")
                .and_then(|l| l.strip_prefix(RUN_COMMENT))
            {
                let rest = rest.trim_end_matches(']');
                let mut words = rest.split_whitespace();
                run_id = words.next().map(str::to_string);
                if words.next() == Some("segment") {
                    segment = words.next().and_then(|s| s.parse().ok());
                }
            }
        }
        let mut start = None;
        let mut base = Duration::ZERO;
        let mut raw = Vec::new();
        for entry in IntervalLogIterator::new(bytes) {
            let entry = entry.map_err(|e| {
                let hdrhistogram::serialization::interval_log::LogIteratorError::ParseError {
                    offset,
                } = e;
                let line = bytes[..offset.min(bytes.len())]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
                    + 1;
                format!("not an HdrHistogram interval log (line {line} does not parse)")
            })?;
            match entry {
                LogEntry::StartTime(t) => start = Some(t),
                LogEntry::BaseTime(t) => base = t,
                LogEntry::Interval(i) => {
                    let encoded = base64::engine::general_purpose::STANDARD
                        .decode(i.encoded_histogram().trim())
                        .map_err(|_| "an interval's histogram is not base64".to_string())?;
                    deserialize(&encoded)
                        .map_err(|e| format!("an interval's histogram does not decode: {e}"))?;
                    raw.push(LogInterval {
                        tag: i.tag().map(|t| t.as_str().to_string()).unwrap_or_default(),
                        start: base + i.start_timestamp(),
                        length: i.duration(),
                        encoded,
                    });
                }
            }
        }
        let start = start.ok_or_else(|| "the log has no StartTime".to_string())?;
        let intervals = raw
            .into_iter()
            .map(|mut i| {
                i.start = i.start.saturating_sub(start);
                i
            })
            .collect();
        Ok(IntervalLog {
            start: SystemTime::UNIX_EPOCH + start,
            run_id,
            segment,
            intervals,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::new_histogram;

    fn histogram(values: &[u64]) -> Histogram<u64> {
        let mut h = new_histogram();
        for &v in values {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn a_log_round_trips_with_its_run_and_tags() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_119_200_250);
        let log = IntervalLog {
            start,
            run_id: Some("00ff00ff00ff00ff".into()),
            segment: Some(Segment { index: 2, count: 3 }),
            intervals: vec![
                LogInterval::new(
                    TAG_CONNECT,
                    Duration::ZERO,
                    Duration::from_secs(2),
                    &histogram(&[40]),
                ),
                LogInterval::new(
                    TAG_LATENCY,
                    Duration::ZERO,
                    Duration::from_secs(1),
                    &histogram(&[10, 20]),
                ),
                LogInterval::new(
                    TAG_LATENCY,
                    Duration::from_secs(1),
                    Duration::from_millis(500),
                    &histogram(&[30]),
                ),
            ],
        };
        let mut out = Vec::new();
        log.write_to(&mut out).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.starts_with("#[Histogram log format version 1.3]\n"),
            "{text}"
        );
        assert!(
            text.contains("#[ringport run 00ff00ff00ff00ff segment 2/3]\n"),
            "{text}"
        );
        assert!(text.contains("#[StartTime: 1796119200.250 "), "{text}");
        assert!(text.contains("\nTag=latency,1.000,0.500,"), "{text}");
        let back = IntervalLog::parse(&out).unwrap();
        assert_eq!(back.start, start);
        assert_eq!(back.run_id.as_deref(), Some("00ff00ff00ff00ff"));
        assert_eq!(back.segment, log.segment);
        assert_eq!(back.intervals.len(), 3);
        for (a, b) in back.intervals.iter().zip(&log.intervals) {
            assert_eq!((&a.tag, a.start, a.length), (&b.tag, b.start, b.length));
            assert_eq!(a.histogram().unwrap(), b.histogram().unwrap());
        }
        assert_eq!(
            back.total(TAG_LATENCY).unwrap().unwrap(),
            histogram(&[10, 20, 30])
        );
        assert!(back.total(TAG_UNCORRECTED).unwrap().is_none());
    }

    #[test]
    fn bad_logs_are_refused() {
        // Said in words, never as the parser's `ParseError { offset: 0 }`.
        let e = IntervalLog::parse(b"{\"json\": 1}").unwrap_err();
        assert_eq!(
            e,
            "not an HdrHistogram interval log (line 1 does not parse)"
        );
        let e =
            IntervalLog::parse(b"#[StartTime: 1.000 (seconds since epoch)]\nnope\n").unwrap_err();
        assert!(e.contains("line 2 does not parse"), "{e}");
        let e = IntervalLog::parse(b"#[BaseTime: 1.000 (seconds since epoch)]\n").unwrap_err();
        assert!(e.contains("StartTime"), "{e}");
        let bad_tag = IntervalLog {
            start: SystemTime::UNIX_EPOCH,
            run_id: None,
            segment: None,
            intervals: vec![LogInterval::new(
                "a,b",
                Duration::ZERO,
                Duration::from_secs(1),
                &histogram(&[1]),
            )],
        };
        let e = bad_tag.write_to(&mut Vec::new()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
