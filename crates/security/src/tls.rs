//! rustls configurations, from PEM files.
//!
//! The central presents a certificate signed by the lottery's own certificate authority; an
//! agency trusts that authority only (not the system's roots: a national lottery's agencies
//! talk to one central, whose authority the operator runs). The central's own health check
//! trusts exactly the central's certificate, byte for byte, since it connects to itself.
//! Only TLS 1.3 and 1.2 with rustls's safe defaults, on the `ring` provider, with two choices
//! of ours, both for the handshake's cost (each agency makes one connection, so the handshake
//! is most of what TLS costs a lottery):
//! - AES-128-GCM with SHA-256 is preferred: its key schedule hashes with the CPU's SHA
//!   instructions where SHA-384 cannot, and its records take 10 AES rounds instead of 14.
//!   The other suites stay offered, after it.
//! - No session is kept to resume: an agency's process makes one connection and exits, so
//!   the tickets a central would mint and send after each handshake would be thrown away.

use std::{path::Path, sync::Arc};

use rustls::{
    client::{
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        Resumption,
    },
    crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider},
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName, UnixTime},
    server::NoServerSessionStorage,
    CipherSuite, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme,
};

pub use rustls::{ClientConfig as ClientTls, ServerConfig as ServerTls};

/// The ALPN name by which an agency and the central agree that the agency may prove itself by
/// signing the TLS 1.3 session alone, without asking for a challenge first (one round trip
/// less; see [`crate::proof`]). A central that does not name it (an older one) is proved to
/// with `Hello` and a challenge, as on plain TCP.
pub const SESSION_PROOFS: &[u8] = b"tp0-session-proof";

/// The name a central's certificate is checked against.
pub type CentralName = rustls::pki_types::ServerName<'static>;

use crate::error::{invalid, SecurityError};

fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    // A stable sort: the suite first, the rest in rustls's order.
    provider.cipher_suites.sort_by_key(|suite| suite.suite() != CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(provider)
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, SecurityError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| invalid(path, format!("cannot read certificates: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(path, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(path, "holds no certificate"));
    }
    Ok(certs)
}

/// The central's configuration: its certificate chain and private key.
///
/// # Errors
/// When a file cannot be read or parsed, or the key does not match the certificate.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, SecurityError> {
    let chain = certificates(cert)?;
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| invalid(key, format!("not a PEM private key: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.alpn_protocols = vec![SESSION_PROOFS.to_vec()];
    Ok(Arc::new(config))
}

/// An agency's configuration: trusts the certificate authority in `ca` only.
///
/// # Errors
/// When the file cannot be read or holds no usable certificate.
pub fn client_config(ca: &Path) -> Result<Arc<ClientConfig>, SecurityError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca)? {
        roots.add(cert).map_err(|e| invalid(ca, format!("not a usable CA certificate: {e}")))?;
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    config.alpn_protocols = vec![SESSION_PROOFS.to_vec()];
    Ok(Arc::new(config))
}

/// A configuration that trusts exactly the first certificate in `cert` (the central's own),
/// whatever name it is reached by: for the central's health check of itself.
///
/// # Errors
/// When the file cannot be read or holds no certificate.
pub fn pinned_client_config(cert: &Path) -> Result<Arc<ClientConfig>, SecurityError> {
    let expected = certificates(cert)?.swap_remove(0);
    let provider = provider();
    let verifier = Arc::new(Pinned { expected, provider: Arc::clone(&provider) });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// Accepts one certificate, exactly; signatures are still checked against it.
#[derive(Debug)]
struct Pinned {
    expected: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.expected.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// The name to check the central's certificate against: the host part of `host:port`.
///
/// # Errors
/// When the host is neither a DNS name nor an IP address.
pub fn server_name(address: &str) -> Result<ServerName<'static>, String> {
    let host = match address.rsplit_once(':') {
        Some((host, _port)) => host.trim_start_matches('[').trim_end_matches(']'),
        None => address,
    };
    ServerName::try_from(host.to_owned()).map_err(|e| format!("`{host}` is not a server name: {e}"))
}
