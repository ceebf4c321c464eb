//! The JSON exporter: any result pretty-printed with serde, ending in a newline (the `--json`
//! output; field names are the result types' own).

use std::io;

use serde::Serialize;

use super::Exporter;

/// Pretty-printed JSON.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl<R: Serialize + ?Sized> Exporter<R> for Json {
    fn write(&self, result: &R, out: &mut dyn io::Write) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut *out, result)?;
        out.write_all(b"\n")
    }
}
