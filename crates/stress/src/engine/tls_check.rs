//! A plaintext run's watch for a server that speaks TLS: the first connection it answers with
//! a TLS alert, or closes before a byte of echo (confirmed by a ClientHello it answers in TLS,
//! on a connection of its own, made once), gives the run its refusal; the threads see it at
//! their next turn and stop, and the run ends with that one line instead of a report of every
//! connection failing on its own. See [`detect`](crate::tls::detect).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::tls::detect::{self, HelloAnswer, TlsSign};

/// See the module docs.
#[derive(Debug)]
pub(crate) struct TlsCheck {
    /// `HOST:PORT`, as the line names the server.
    target: String,
    /// The host, the name the ClientHello sends.
    host: String,
    addr: SocketAddr,
    timeout: Duration,
    /// `--proxy-protocol`: the header the ClientHello's connection sends first.
    proxy: Option<super::proxy::Version>,
    /// The refusal, once the server has shown it speaks TLS.
    refusal: Arc<OnceLock<String>>,
    /// The ClientHello after a close has been sent (once per run).
    hello_sent: AtomicBool,
    hello: Mutex<Option<JoinHandle<()>>>,
}

impl TlsCheck {
    /// The watch over a plaintext run against `addr` (`host:port` as given); the ClientHello's
    /// steps wait at most `timeout` each.
    pub(crate) fn new(
        host: &str,
        port: u16,
        addr: SocketAddr,
        timeout: Duration,
        proxy: Option<super::proxy::Version>,
    ) -> TlsCheck {
        TlsCheck {
            proxy,
            target: super::resolve::host_port(host, port),
            host: host.to_string(),
            addr,
            timeout,
            refusal: Arc::new(OnceLock::new()),
            hello_sent: AtomicBool::new(false),
            hello: Mutex::new(None),
        }
    }

    /// A connection's first bytes were a TLS alert: the server speaks TLS.
    pub(crate) fn alert(&self) {
        let _ = self
            .refusal
            .set(detect::speaks_tls(&self.target, TlsSign::Alert));
    }

    /// A connection was closed (or reset) before a byte of its echo: the first time, a
    /// ClientHello on a connection of its own asks whether the server speaks TLS, on a thread
    /// of its own (the load goes on meanwhile).
    pub(crate) fn closed_early(&self) {
        if self.hello_sent.swap(true, Ordering::Relaxed) {
            return;
        }
        let (addr, host, timeout, proxy) = (self.addr, self.host.clone(), self.timeout, self.proxy);
        let refusal = Arc::clone(&self.refusal);
        let target = self.target.clone();
        let spawned = std::thread::Builder::new()
            .name("stress-tls-check".into())
            .spawn(move || {
                if detect::hello_answer(addr, &host, timeout, proxy) == HelloAnswer::Tls {
                    let _ = refusal.set(detect::speaks_tls(&target, TlsSign::CloseThenHello));
                }
            });
        match spawned {
            Ok(handle) => *self.hello.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle),
            Err(e) => tracing::debug!("TLS check: no thread ({e})"),
        }
    }

    /// Whether the server has shown it speaks TLS (the run stops).
    pub(crate) fn refused(&self) -> bool {
        self.refusal.get().is_some()
    }

    /// Once the load is over: the refusal, if the server has shown it speaks TLS (waiting for
    /// the ClientHello's answer, if one was sent).
    pub(crate) fn finish(&self) -> Option<String> {
        let hello = self.hello.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(hello) = hello {
            let _ = hello.join();
        }
        self.refusal.get().cloned()
    }
}
