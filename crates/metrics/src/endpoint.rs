//! The HTTP side of `--metrics ADDR`: a listener bound before the work starts, and one thread
//! answering `GET /metrics` with the OpenMetrics text of a registry, encoded at each scrape.
//!
//! The HTTP/1.1 server is `tiny_http`'s (its own accept thread, and a few pooled threads that
//! read requests); ours only encodes and answers, off every data path. `/` answers a line
//! naming `/metrics`; any other path 404, any method but GET and HEAD 405.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::thread::JoinHandle;

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use tiny_http::{Header, Method, Response, Server};

/// The content type of the OpenMetrics text format, which Prometheus asks for and parses.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A bound `--metrics` listener, not answering yet.
pub struct Endpoint {
    server: Server,
    addr: SocketAddr,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Listens on `addr` (port 0 picks a free port, see [`local_addr`](Self::local_addr)).
    ///
    /// # Errors
    ///
    /// The address cannot be bound (in use, not this machine's): the system's error, whose
    /// kind is kept.
    pub fn bind(addr: SocketAddr) -> io::Result<Endpoint> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let server =
            Server::from_listener(listener, None).map_err(|e| match e.downcast::<io::Error>() {
                Ok(e) => *e,
                Err(e) => io::Error::other(e.to_string()),
            })?;
        Ok(Endpoint { server, addr })
    }

    /// The address it listens on, with the real port when 0 was asked for.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers scrapes with `registry`'s metrics, on a thread of its own, for as long as the
    /// process runs.
    ///
    /// # Errors
    ///
    /// The thread cannot be started.
    pub fn serve(self, registry: Registry) -> io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("ringport-metrics".into())
            .spawn(move || {
                for request in self.server.incoming_requests() {
                    let response = answer(request.method(), request.url(), &registry);
                    // A scraper that hung up is no concern of ours.
                    let _ = request.respond(response);
                }
            })
    }
}

/// The response to `method` on `url`.
fn answer(method: &Method, url: &str, registry: &Registry) -> Response<io::Cursor<Vec<u8>>> {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let text = |status: u16, body: &str, content_type: &str| {
        let response = Response::from_string(body).with_status_code(status);
        match Header::from_bytes("Content-Type", content_type) {
            Ok(h) => response.with_header(h),
            Err(()) => response,
        }
    };
    let plain = "text/plain; charset=utf-8";
    if !matches!(method, Method::Get | Method::Head) {
        return text(405, "only GET and HEAD\n", plain);
    }
    match path {
        "/metrics" => {
            let mut body = String::new();
            match encode(&mut body, registry) {
                Ok(()) => text(200, &body, CONTENT_TYPE),
                Err(_) => text(500, "the metrics could not be encoded\n", plain),
            }
        }
        "/" => text(200, "ringport: the metrics are at /metrics\n", plain),
        _ => text(404, "not found: the metrics are at /metrics\n", plain),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    fn body(r: Response<io::Cursor<Vec<u8>>>) -> (u16, String) {
        let status = r.status_code().0;
        let mut out = Vec::new();
        let mut reader = r.into_reader();
        io::Read::read_to_end(&mut reader, &mut out).unwrap();
        (status, String::from_utf8(out).unwrap())
    }

    #[test]
    fn metrics_answer_on_their_path_only() {
        let mut registry = Registry::default();
        let c: Counter = Counter::default();
        c.inc();
        registry.register("ringport_test", "A test counter", c);
        let (status, text) = body(answer(&Method::Get, "/metrics?x=1", &registry));
        assert_eq!(status, 200);
        assert!(text.contains("ringport_test_total 1\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(body(answer(&Method::Get, "/other", &registry)).0, 404);
        assert_eq!(body(answer(&Method::Post, "/metrics", &registry)).0, 405);
        assert_eq!(body(answer(&Method::Get, "/", &registry)).0, 200);
    }

    #[test]
    fn a_taken_address_is_an_address_in_use_error() {
        let first = Endpoint::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let err = Endpoint::bind(first.local_addr()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }
}
