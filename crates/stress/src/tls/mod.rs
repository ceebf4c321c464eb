//! TLS on the client side (`--tls`): what a connection needs to speak TLS over the engine's
//! own buffers.
//!
//! * [`options`]: the `--tls*` flags as plain data ([`TlsOptions`](options::TlsOptions)).
//! * [`client_config`]: those options made into one rustls `ClientConfig` per run, shared by
//!   every thread (its session store is what `--tls-resume` resumes from), and the server name.
//! * [`session`]: one connection's TLS ([`TlsSession`](session::TlsSession)): ciphertext in
//!   from the port's receive buffers, plaintext out to the verifier, plaintext in from the
//!   staging buffer, ciphertext out in a send buffer it keeps; no stream, no thread; records
//!   protected in place after the handshake (`ringport_tls_record`).
//! * [`failure`]: a failed handshake classified by cause (certificate, name, protocol,
//!   timeout, other).
//! * [`probe`]: the handshake made once before the load, so that a certificate the client
//!   cannot trust, or a server that does not speak TLS, stops the run with its reason.
//! * [`detect`]: whether a server speaks TLS, told from its answer (to a ClientHello, or to
//!   plaintext), and the lines that say so.

pub mod client_config;
pub mod detect;
pub mod failure;
pub mod options;
pub mod probe;
pub mod session;
