//! TLS for the signalling links, on rustls with the `ring` provider (nothing
//! to install, no C toolchain beyond what `ring` builds): the master's
//! certificate ([`TlsIdentity`], swappable while the master runs) and the
//! roots a slave trusts (the Mozilla set, as Node has, plus the caller's).

use std::fmt;
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use thiserror::Error;

/// The rustls this crate uses (its errors are in [`crate::dial::DialError::Tls`]).
pub use rustls;
pub use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// What is wrong with a certificate, a key or a CA given to the engine.
#[derive(Debug, Error)]
pub enum TlsError {
    /// The PEM text holds no `CERTIFICATE` block.
    #[error("no certificate found in the {what} (a PEM \"CERTIFICATE\" block is expected)")]
    NoCertificate {
        /// Which input: `cert` or `ca`.
        what: &'static str,
    },
    /// The PEM text is malformed.
    #[error("the {what} is not valid PEM: {source}")]
    Pem {
        /// Which input: `cert`, `key` or `ca`.
        what: &'static str,
        /// What the parser said.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// A CA certificate cannot be a trust anchor.
    #[error("a certificate of the {what} cannot be a trust anchor: {source}")]
    BadCa {
        /// Which input.
        what: &'static str,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
    /// The key is unusable, or is not the certificate's.
    #[error("the key cannot be used with this certificate: {0}")]
    Key(#[source] rustls::Error),
}

/// The crypto every TLS config of ours uses.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in `pem` (a bundle, as `NODE_EXTRA_CA_CERTS` files are).
/// `what` names the input in errors.
pub fn certificates_from_pem(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs =
        CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|source| TlsError::Pem { what, source })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { what });
    }
    Ok(certs)
}

/// The CA certificates in `pem`, each checked to be usable as a trust anchor
/// (what [`crate::slave::SlaveConfigBuilder::ca`] takes). `what` names the input in errors.
pub fn trust_anchors_from_pem(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = certificates_from_pem(pem, what)?;
    let mut scratch = RootCertStore::empty();
    for cert in &certs {
        scratch.add(cert.clone()).map_err(|source| TlsError::BadCa { what, source })?;
    }
    Ok(certs)
}

/// A certificate chain with its private key, checked to belong together:
/// what the master presents to TLS clients.
#[derive(Clone)]
pub struct TlsIdentity {
    key: Arc<CertifiedKey>,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity").field("certificates", &self.key.cert.len()).finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// From PEM text: `cert_pem` the leaf certificate first, then any
    /// intermediates; `key_pem` its private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsIdentity, TlsError> {
        let chain = certificates_from_pem(cert_pem, "cert")?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|source| TlsError::Pem { what: "key", source })?;
        TlsIdentity::from_der(chain, key)
    }

    /// From DER: the chain (leaf first) and its private key.
    pub fn from_der(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<TlsIdentity, TlsError> {
        if chain.is_empty() {
            return Err(TlsError::NoCertificate { what: "cert" });
        }
        let key = CertifiedKey::from_der(chain, key, &provider()).map_err(TlsError::Key)?;
        Ok(TlsIdentity { key: Arc::new(key) })
    }
}

/// The master's certificate, read at each handshake: swapping it takes
/// effect for new connections and leaves open ones alone.
#[derive(Debug)]
struct CurrentCertificate(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// The TLS side of a master's own server.
pub(crate) struct ServerTls {
    current: Arc<CurrentCertificate>,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl ServerTls {
    pub(crate) fn new(identity: TlsIdentity) -> ServerTls {
        let current = Arc::new(CurrentCertificate(RwLock::new(identity.key)));
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        ServerTls { current, acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)) }
    }

    /// Presents `identity` from the next handshake on.
    pub(crate) fn set_identity(&self, identity: TlsIdentity) {
        *self.current.0.write().unwrap_or_else(|p| p.into_inner()) = identity.key;
    }

    pub(crate) fn acceptor(&self) -> &tokio_rustls::TlsAcceptor {
        &self.acceptor
    }
}

/// The client config of a slave's link: the Mozilla roots (what Node trusts
/// by default) plus `extra_roots`.
pub(crate) fn client_config(extra_roots: &[CertificateDer<'static>]) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    for cert in extra_roots {
        roots.add(cert.clone()).map_err(|source| TlsError::BadCa { what: "ca", source })?;
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The rustls error inside an I/O error from a TLS stream, if it is one.
pub(crate) fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// What to do about a failed handshake, appended to its message.
pub(crate) fn hint(e: &rustls::Error) -> &'static str {
    use rustls::{CertificateError, Error};
    match e {
        Error::InvalidCertificate(CertificateError::UnknownIssuer | CertificateError::BadSignature) => {
            " (the master's certificate is not signed by a trusted CA: pass its CA in the `ca` option or NODE_EXTRA_CA_CERTS)"
        }
        Error::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. }) => {
            " (the master's certificate has expired: renew it)"
        }
        Error::InvalidCertificate(CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }) => {
            " (the master's certificate is for another name: connect with the name it was issued for)"
        }
        Error::InvalidMessage(_) | Error::InappropriateMessage { .. } | Error::InappropriateHandshakeMessage { .. } => {
            " (does the master speak TLS on this port? use ws:// for a plain one)"
        }
        _ => "",
    }
}
