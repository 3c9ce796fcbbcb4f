//! TLS for NATS connections: client configurations that trust the master's CA, and
//! the one-time capture used before a minion has been told which CA to trust.
//!
//! The master's embedded NATS serves TLS with a certificate from its own CA. The master
//! sends that CA in its signed enrollment answer, so a minion trusts the CA exactly
//! as far as it trusts the master's key (pinned on first contact, or checked against
//! `master_finger`). Until then, the enrollment connection accepts any server
//! certificate: nothing secret travels on it, and every answer on it is signed.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

/// Why TLS material cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{what} holds no usable certificate")]
    NoCertificate { what: String },
    #[error("TLS setup failed: {0}")]
    Rustls(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses every certificate in PEM text.
pub fn certs_from_pem(text: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(text.as_bytes()).filter_map(Result::ok).collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { what: what.to_string() });
    }
    Ok(certs)
}

/// Reads the certificates of a PEM file.
pub fn certs_from_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| TlsError::Read { path: path.display().to_string(), source })?;
    certs_from_pem(&text, &path.display().to_string())
}

/// One certificate as PEM text.
pub fn der_to_pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// SHA-256 of a certificate, as colon-separated hex.
pub fn fingerprint(der: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(der).iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// A client configuration that trusts exactly `roots`.
pub fn client_config(roots: &[CertificateDer<'static>]) -> Result<ClientConfig, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in roots {
        store.add(cert.clone()).map_err(|e| TlsError::Rustls(e.to_string()))?;
    }
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_root_certificates(store)
        .with_no_client_auth())
}

/// What a capturing connection saw: the server's certificate chain.
pub type Captured = Arc<std::sync::Mutex<Vec<CertificateDer<'static>>>>;

/// A client configuration that accepts any server certificate (still checking the
/// handshake signatures) and records the chain it was shown. Only for the first,
/// unauthenticated enrollment connection.
pub fn capture_config() -> Result<(ClientConfig, Captured), TlsError> {
    let captured = Captured::default();
    let verifier = Arc::new(Capture { provider: provider(), seen: captured.clone() });
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok((config, captured))
}

#[derive(Debug)]
struct Capture {
    provider: Arc<CryptoProvider>,
    seen: Captured,
}

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = chain;
        Ok(ServerCertVerified::assertion())
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

/// Whether `url`'s host is on this machine (TLS is then optional by default).
pub fn is_loopback_url(url: &str) -> bool {
    let host = url.split("://").nth(1).unwrap_or(url);
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_are_recognised() {
        assert!(is_loopback_url("nats://127.0.0.1:4222"));
        assert!(is_loopback_url("nats://localhost:4222"));
        assert!(is_loopback_url("nats://[::1]:4222"));
        assert!(is_loopback_url("nats://u:p@127.0.0.1:4222"));
        assert!(!is_loopback_url("nats://brine:4222"));
        assert!(!is_loopback_url("nats://10.0.0.1:4222"));
    }

    #[test]
    fn pem_round_trips_and_garbage_is_refused() {
        let der = vec![0x30, 0x03, 0x02, 0x01, 0x01];
        let pem = der_to_pem(&der);
        let back = certs_from_pem(&pem, "x").unwrap();
        assert_eq!(back[0].as_ref(), der.as_slice());
        assert!(certs_from_pem("nothing here", "ca.pem").unwrap_err().to_string().contains("ca.pem"));
        assert_eq!(fingerprint(&[1, 2]).len(), 32 * 3 - 1);
    }
}
