//! Who may act for an agency, and the transport that carries it.
//!
//! - [`keys`]: each agency's private key (a file only that agency holds) and the central's
//!   list of the agencies' public keys (all the central needs to verify; nothing in it lets
//!   anyone act for an agency).
//! - [`proof`]: the challenge the central sends and the signature an agency answers with,
//!   bound to the agency's number and, under TLS, to the TLS session itself (which, on TLS
//!   1.3, is challenge enough).
//! - [`tls`]: rustls configurations for the central and the agencies, from PEM files.
//! - [`stream`]: one stream type for plain TCP and TLS, so the rest of the code reads and
//!   writes bytes without knowing which.
//! - [`wire`]: the central's TLS socket, whose reads are bounded by the time left for the
//!   handshake or record under way, so ciphertext that trickles is cut like plaintext.
//! - [`generate`]: a fresh set of credentials for N agencies (the `credentials` binary).

pub mod error;
pub mod generate;
pub mod keys;
pub mod proof;
pub mod stream;
pub mod tls;
pub mod wire;

pub use error::SecurityError;
pub use keys::{AgencyKey, AgencyKeys};
pub use proof::{Challenge, CHALLENGE_LEN, SIGNATURE_LEN};
pub use stream::{Binding, Stream};
pub use wire::Deadlines;
