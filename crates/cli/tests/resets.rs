//! Clients that reset their connection before the server accepted it: a burst of them is each
//! client's failure, never the server's, so the next client is served at once, on every
//! backend and model (IOCP under Wine included: `scripts/windows.sh test -p ringport --test
//! resets`).

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use support::*;

/// Clients in the burst.
const RESETS: usize = 200;

/// Closes `s` with a reset (`SO_LINGER` 0).
fn reset(s: TcpStream) {
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
}

for_each_model! {
    /// 200 clients connect, send and reset before they are accepted: on Unix the server is
    /// stopped (SIGSTOP) meanwhile, so all 200 wait in its listen backlog when it goes on; on
    /// Windows they race its outstanding accepts, the failures seen there (`WSAENOTCONN`,
    /// `WSAECONNRESET`, `ERROR_NETNAME_DELETED`). The next client's echo then comes back
    /// within a second, and accepting never paused.
    fn a_burst_of_resets_before_accept_leaves_the_next_client_served_at_once(model: &str) {
        let mut server = Server::start(model, &["--backlog", "1024"]);
        #[cfg(unix)]
        server.signal("STOP");
        for i in 0..RESETS {
            let mut s = TcpStream::connect_timeout(&server.addr, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("connect {i}: {e}"));
            s.write_all(b"gone before accept").unwrap();
            reset(s);
        }
        #[cfg(unix)]
        server.signal("CONT");
        let mut s = server.connect();
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        s.write_all(b"still served").unwrap();
        let mut back = [0u8; 12];
        if let Err(e) = std::io::Read::read_exact(&mut s, &mut back) {
            panic!(
                "no echo within a second after {RESETS} resets ({e}); stderr:\n{}",
                server.stderr()
            );
        }
        assert_eq!(&back, b"still served");
        let log = server.stderr();
        assert!(!log.contains("pausing accepts"), "accepting paused:\n{log}");
        server.signal("TERM");
        assert!(server.wait_exit(Duration::from_secs(20)).success(), "{}", server.stderr());
    }
}
