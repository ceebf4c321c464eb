//! `results.json`: [`BenchResults`] as pretty-printed JSON, and back.

use ringport_report::export::{Exporter as _, Json};

use crate::results::BenchResults;

/// The results as pretty JSON, ending with a newline (the result model's [`Json`] exporter).
pub fn to_string(results: &BenchResults) -> String {
    Json.to_string(results)
}

/// Reads results written by [`to_string`].
///
/// # Errors
///
/// When `text` is not a `results.json` of this layout.
pub fn from_str(text: &str) -> Result<BenchResults, serde_json::Error> {
    serde_json::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::fixture;

    #[test]
    fn round_trip() {
        let r = fixture::results();
        let text = to_string(&r);
        assert_eq!(from_str(&text).unwrap(), r);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["environment"]["kernel"], "6.18.0");
        assert_eq!(v["warnings"][0]["kind"], "errors");
        assert_eq!(v["points"][0]["median"]["p999_us"], 80);
    }
}
