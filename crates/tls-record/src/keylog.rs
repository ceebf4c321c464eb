//! `SSLKEYLOGFILE`: the secrets of every TLS handshake, appended to a file in the NSS key log
//! format that Wireshark, tshark and curl read (one line per secret: `LABEL CLIENT_RANDOM
//! SECRET`, the last two in lowercase hex), so that a capture of ringport's traffic can be
//! decrypted.
//!
//! rustls has a `KeyLogFile` of its own, but it reads the variable itself and, when the file
//! cannot be opened, only logs a warning through the `log` crate: a user who set the variable
//! would get an empty capture and no word why. Here the file is opened once, when the command
//! starts, and a path that cannot be opened is an error naming it.
//!
//! The records the completion model protects itself after the handshake (the rest of this
//! crate) use the traffic secrets logged here; TLS 1.3 key updates derive the next secrets
//! from them, as the readers of the format do too.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The environment variable that names the file.
pub const SSLKEYLOGFILE: &str = "SSLKEYLOGFILE";

/// A key log file, open for appending; shared by every connection of a process.
#[derive(Debug)]
pub struct KeyLogFile {
    path: PathBuf,
    file: Mutex<File>,
}

impl KeyLogFile {
    /// Opens `path` for appending (creating it, readable by its owner alone on Unix: the
    /// secrets decrypt the traffic).
    ///
    /// # Errors
    ///
    /// One line naming the variable and the path, and why the file cannot be opened.
    pub fn open(path: &Path) -> Result<Arc<KeyLogFile>, String> {
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options
            .open(path)
            .map_err(|e| format!("{SSLKEYLOGFILE}={}: cannot open it: {e}", path.display()))?;
        Ok(Arc::new(KeyLogFile {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        }))
    }

    /// The file `SSLKEYLOGFILE` names, opened; `None` when the variable is unset or empty.
    ///
    /// # Errors
    ///
    /// As [`KeyLogFile::open`].
    pub fn from_env() -> Result<Option<Arc<KeyLogFile>>, String> {
        match std::env::var_os(SSLKEYLOGFILE) {
            Some(path) if !path.is_empty() => KeyLogFile::open(Path::new(&path)).map(Some),
            _ => Ok(None),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Two key logs are the same when they write to the same path.
impl PartialEq for KeyLogFile {
    fn eq(&self, other: &KeyLogFile) -> bool {
        self.path == other.path
    }
}

impl Eq for KeyLogFile {}

impl rustls::KeyLog for KeyLogFile {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let line = line(label, client_random, secret);
        // One write per line, so that the lines of connections on several threads never
        // interleave. A failed write (a full disk) loses that line only: the connection it
        // belongs to is not the file's business.
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let _ = file.write_all(line.as_bytes());
    }

    fn will_log(&self, _label: &str) -> bool {
        true
    }
}

/// One line of the format: `LABEL CLIENT_RANDOM SECRET\n`, in lowercase hex.
fn line(label: &str, client_random: &[u8], secret: &[u8]) -> String {
    let mut out = String::with_capacity(label.len() + 2 * (client_random.len() + secret.len()) + 3);
    out.push_str(label);
    for part in [client_random, secret] {
        out.push(' ');
        for b in part {
            let _ = write!(out, "{b:02x}");
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::KeyLog;

    #[test]
    fn a_line_is_the_label_then_both_values_in_lowercase_hex() {
        assert_eq!(
            line("CLIENT_RANDOM", &[0x00, 0xab], &[0xff, 0x10, 0x01]),
            "CLIENT_RANDOM 00ab ff1001\n"
        );
    }

    #[test]
    fn lines_are_appended_and_a_path_that_cannot_be_opened_is_named() {
        let dir = std::env::temp_dir().join(format!("ringport-keylog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.log");
        std::fs::write(&path, "earlier\n").unwrap();
        let log = KeyLogFile::open(&path).unwrap();
        log.log("SERVER_TRAFFIC_SECRET_0", &[1, 2], &[3]);
        drop(log);
        let log = KeyLogFile::open(&path).unwrap();
        log.log("CLIENT_TRAFFIC_SECRET_0", &[1, 2], &[4]);
        // Closed before the file is read and removed (Windows removes no open file).
        drop(log);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "earlier\nSERVER_TRAFFIC_SECRET_0 0102 03\nCLIENT_TRAFFIC_SECRET_0 0102 04\n"
        );
        let missing = dir.join("no/such/dir/keys.log");
        let err = KeyLogFile::open(&missing).unwrap_err();
        assert!(
            err.starts_with(&format!(
                "SSLKEYLOGFILE={}: cannot open it: ",
                missing.display()
            )),
            "{err}"
        );
        assert!(!err.contains('\n'));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
