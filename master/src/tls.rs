//! The embedded NATS server's TLS: a CA made on the master's first start and a server
//! certificate issued by it on every start (so new host names and addresses are
//! always covered). Files live in `<data_dir>/tls/`:
//!
//! | file | what |
//! |---|---|
//! | `ca.pem` | the CA certificate; minions receive it in the master's signed enrollment answer |
//! | `ca-key.pem` | the CA key (0600) |
//! | `server.pem` | the server certificate followed by the CA |
//! | `server-key.pem` | the server key (0600) |

use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why the TLS material could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("TLS file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot make TLS certificates: {0}")]
    Cert(String),
}

/// Paths and the CA of the embedded server's TLS.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    pub dir: PathBuf,
    /// The CA certificate, DER.
    pub ca_der: Vec<u8>,
}

impl TlsMaterial {
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("server.pem")
    }
    pub fn key_path(&self) -> PathBuf {
        self.dir.join("server-key.pem")
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsSetupError + '_ {
    move |source| TlsSetupError::Io { path: path.to_path_buf(), source }
}

fn cert_err(e: rcgen::Error) -> TlsSetupError {
    TlsSetupError::Cert(e.to_string())
}

fn write_private(path: &Path, text: &str) -> Result<(), TlsSetupError> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(io(&tmp))?;
    f.write_all(text.as_bytes()).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn ca_params() -> Result<CertificateParams, TlsSetupError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "brine master CA");
    dn.push(DnType::OrganizationName, "brine");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    Ok(params)
}

/// The names and addresses the server certificate covers: localhost, this host's
/// names and addresses, and `extra` from the config.
pub fn server_names(extra: &[String]) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    if let Ok(u) = nix::sys::utsname::uname() {
        let node = u.nodename().to_string_lossy().into_owned();
        if let Some(short) = node.split('.').next() {
            names.push(short.to_string());
        }
        names.push(node);
    }
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let ip: Option<IpAddr> = a.address.as_ref().and_then(|s| {
                s.as_sockaddr_in()
                    .map(|v4| IpAddr::V4(v4.ip()))
                    .or_else(|| s.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
            });
            if let Some(ip) = ip {
                // Link-local IPv6 needs a zone, which certificates cannot carry.
                if !matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80) {
                    names.push(ip.to_string());
                }
            }
        }
    }
    names.extend(extra.iter().cloned());
    names.sort();
    names.dedup();
    names.retain(|n| !n.is_empty());
    names
}

/// Makes the CA on first use and a fresh server certificate for `names`.
pub fn ensure(dir: &Path, names: &[String]) -> Result<TlsMaterial, TlsSetupError> {
    brine_proto::keys::create_private_dir(dir).map_err(io(dir))?;
    let ca_key_path = dir.join("ca-key.pem");
    let ca_path = dir.join("ca.pem");
    let ca_key = match std::fs::read_to_string(&ca_key_path) {
        Ok(pem) => KeyPair::from_pem(&pem).map_err(cert_err)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = KeyPair::generate().map_err(cert_err)?;
            let ca = ca_params()?.self_signed(&key).map_err(cert_err)?;
            write_private(&ca_key_path, &key.serialize_pem())?;
            std::fs::write(&ca_path, ca.pem()).map_err(io(&ca_path))?;
            tracing::info!(path = %ca_path.display(), "created the NATS TLS CA");
            key
        }
        Err(e) => return Err(TlsSetupError::Io { path: ca_key_path, source: e }),
    };
    let ca_pem = std::fs::read_to_string(&ca_path).map_err(io(&ca_path))?;
    let ca_der = brine_proto::tls::certs_from_pem(&ca_pem, &ca_path.display().to_string())
        .map_err(|e| TlsSetupError::Cert(e.to_string()))?
        .remove(0)
        .to_vec();
    // The issuer is rebuilt from the same name and key as the stored CA certificate,
    // so certificates it signs chain to that certificate.
    let issuer = Issuer::new(ca_params()?, &ca_key);
    let mut params = CertificateParams::new(
        names
            .iter()
            .filter(|n| n.parse::<IpAddr>().is_ok() || n.bytes().all(|b| b.is_ascii_graphic()))
            .cloned()
            .collect::<Vec<_>>(),
    )
    .map_err(cert_err)?;
    params.distinguished_name.push(DnType::CommonName, "brine NATS server");
    params.use_authority_key_identifier_extension = true;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    let key = KeyPair::generate().map_err(cert_err)?;
    let cert = params.signed_by(&key, &issuer).map_err(cert_err)?;
    let material = TlsMaterial { dir: dir.to_path_buf(), ca_der };
    write_private(&material.key_path(), &key.serialize_pem())?;
    std::fs::write(material.cert_path(), format!("{}{}", cert.pem(), ca_pem)).map_err(io(&material.cert_path()))?;
    Ok(material)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;

    #[test]
    fn the_ca_is_made_once_and_server_certificates_chain_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let names = server_names(&["brine.example.com".into()]);
        assert!(names.contains(&"127.0.0.1".to_string()) && names.contains(&"brine.example.com".to_string()));
        let a = ensure(dir.path(), &names).unwrap();
        let b = ensure(dir.path(), &names).unwrap();
        assert_eq!(a.ca_der, b.ca_der, "the CA survives restarts");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join("ca-key.pem")).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        // A client trusting only the CA accepts the server certificate for its names.
        let chain = brine_proto::tls::certs_from_file(&b.cert_path()).unwrap();
        assert_eq!(chain.len(), 2);
        let ca = brine_proto::tls::certs_from_file(&b.ca_path()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca[0].clone()).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        for name in ["127.0.0.1", "brine.example.com", "localhost"] {
            let server_name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
            verifier
                .verify_server_cert(&chain[0], &chain[1..], &server_name, &[], rustls::pki_types::UnixTime::now())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let other = rustls::pki_types::ServerName::try_from("evil.example.com".to_string()).unwrap();
        assert!(verifier
            .verify_server_cert(&chain[0], &chain[1..], &other, &[], rustls::pki_types::UnixTime::now())
            .is_err());
    }
}
