//! What `serve` and `stress` tell a person: the server's `--log-messages` lines, the stress
//! report's wording and warnings, and the progress lines while a run goes on.

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use support::Server;

/// Issue 14: `--log-messages` named a connection by the slot it held, and slots are reused:
/// three peers one after another were all `conn 1`. Each worker numbers its connections from 1.
#[test]
fn issue14_log_messages_names_connections_by_a_serial_number() {
    let mut cmd = support::bin();
    cmd.args([
        "serve",
        "--port",
        "0",
        "--workers",
        "1",
        "--log-messages",
        "--stats",
        "0.1",
    ]);
    cmd.args(support::model_args("completion"));
    let server = Server::spawn(cmd);
    for i in 1..=3 {
        let mut s = server.connect();
        let msg = format!("peer number {i}");
        s.write_all(msg.as_bytes()).unwrap();
        let mut echo = vec![0u8; msg.len()];
        s.read_exact(&mut echo).unwrap();
        drop(s);
        // The server has closed it (its slot is free for the next peer).
        server.eventually(Duration::from_secs(10), "the connection closed", |s| {
            s.last_stats()
                .is_some_and(|(open, accepted, _, _)| open == 0 && accepted == i)
        });
    }
    let out = server.stdout();
    for i in 1..=3 {
        let line = out
            .lines()
            .find(|l| l.contains(&format!("\"peer number {i}\"")))
            .unwrap_or_else(|| panic!("no line for peer {i}: {out}"));
        assert!(line.contains(&format!("(conn {i})")), "{line}");
    }
}
