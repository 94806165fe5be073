//! TLS for `tune serve --tls` and `tune load wss://`: the rustls configurations (from PEM text,
//! or a throw-away self-signed certificate), what a TLS failure is called ([`Failure`]), and
//! [`layer`], the per-connection rustls state that sits between a socket and the websocket
//! [`crate::protocol::session::Session`] (the session itself never sees ciphertext).
//!
//! The crypto provider is ring (no cmake build); ALPN is http/1.1 on both ends, so a browser
//! offering h2 settles on the websocket's HTTP/1.1 upgrade.

use std::sync::Arc;

use anyhow::Context as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};
use serde::{Deserialize, Serialize};

pub mod layer;

pub use layer::{Conn, Layer, ReadOutcome};

/// The only ALPN protocol either end offers: websockets upgrade over HTTP/1.1.
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Plaintext a connection may write before its handshake has finished (it waits, and leaves
/// with the flight that finishes the handshake): a websocket upgrade request fits many times.
pub const BUFFER_LIMIT: usize = 32 * 1024;

/// Heap one idle TLS connection holds, counted by the server's memory budget (what it buffers
/// besides is counted as it holds it): rustls's unbuffered connection state with its record
/// keys and sequence numbers, no buffers. Measured: an idle TLS connection grew the server's
/// RSS by 3.6 KB (`serve --tls --verify 20000` in a fresh network namespace; 7.7 KB with
/// rustls's buffered API and its 4 KiB deframer buffer; 21 B for plain ws://).
pub const CONN_BYTES: usize = 4 * 1024;

fn provider() -> Arc<CryptoProvider> {
    // ring rather than aws-lc (no cmake build); its one gap is the post-quantum key exchange.
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server's certificate chain and key, PEM text (what the worker processes are handed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
}

impl ServerTls {
    /// A throw-away self-signed certificate for `names` (DNS names or IP addresses): what
    /// `serve --verify --tls` uses when it is given no files. Only a client handed this PEM
    /// trusts it.
    pub fn self_signed(names: &[String]) -> anyhow::Result<ServerTls> {
        let ck = rcgen::generate_simple_self_signed(names.to_vec())
            .context("generating a self-signed certificate")?;
        Ok(ServerTls {
            cert_pem: ck.cert.pem(),
            key_pem: ck.signing_key.serialize_pem(),
        })
    }

    /// The rustls server configuration; errors say which PEM is wrong.
    pub fn config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let certs = certs_of(&self.cert_pem).context("the certificate (--cert)")?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("the key (--key): no PEM private key: {e}"))?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| anyhow::anyhow!("the certificate and key (--cert/--key): {e}"))?;
        cfg.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        // Session tickets and a resumption cache would hold memory per client for a test
        // server whose clients connect once.
        cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        cfg.send_tls13_tickets = 0;
        Ok(Arc::new(cfg))
    }
}

/// Every certificate in a PEM text; an error when there is none.
fn certs_of(pem: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("not PEM certificates: {e}"))?;
    if certs.is_empty() {
        anyhow::bail!("no PEM certificate (-----BEGIN CERTIFICATE-----) in it");
    }
    Ok(certs)
}

/// How the load generator trusts servers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientTls {
    /// Trust these PEM certificates (`--ca FILE`) instead of the system store.
    pub ca_pem: Option<String>,
    /// Trust any certificate (`--insecure`): for self-signed test servers only.
    pub insecure: bool,
}

impl ClientTls {
    /// The rustls client configuration: the system store unless `--ca` or `--insecure`.
    pub fn config(&self) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let mut cfg = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCert(provider())))
                .with_no_client_auth()
        } else {
            let mut roots = rustls::RootCertStore::empty();
            match &self.ca_pem {
                Some(pem) => {
                    for c in certs_of(pem).context("--ca")? {
                        roots
                            .add(c)
                            .context("--ca: a certificate rustls cannot use")?;
                    }
                }
                None => {
                    let found = rustls_native_certs::load_native_certs();
                    let (added, _) = roots.add_parsable_certificates(found.certs);
                    if added == 0 {
                        anyhow::bail!(
                            "no trusted certificates in the system store ({} errors; install ca-certificates, or give --ca FILE)",
                            found.errors.len()
                        );
                    }
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        cfg.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        // Each connection is a new client: no resumption cache to grow with them.
        cfg.resumption = rustls::client::Resumption::disabled();
        Ok(Arc::new(cfg))
    }
}

/// The name a client sends as SNI and checks the certificate against: the URL's host.
pub fn server_name(host: &str) -> anyhow::Result<ServerName<'static>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string())
        .map_err(|e| anyhow::anyhow!("{host}: not a TLS server name: {e}"))
}

/// `--insecure`: accepts any certificate, still checks the handshake's signatures.
#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// What went wrong in a TLS handshake, as the load report names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The certificate chain does not lead to a trusted root.
    UnknownIssuer,
    /// The certificate is not valid for the host in the URL.
    NameMismatch,
    /// The certificate is outside its validity period (expired or not yet valid).
    Expired,
    /// What came back is not TLS: a plain-TCP (HTTP) server on the port.
    NotTls,
    /// The server sent a fatal alert.
    Alert,
    /// Any other TLS error.
    Other,
}

impl Failure {
    /// The failure a rustls error is.
    pub fn of(e: &Error) -> Failure {
        use rustls::InvalidMessage as M;
        match e {
            Error::InvalidCertificate(c) => match c {
                // No trusted root signed the chain: unknown, or a root of the same name whose
                // key did not sign it.
                CertificateError::UnknownIssuer
                | CertificateError::BadSignature
                | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
                    Failure::UnknownIssuer
                }
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => Failure::NameMismatch,
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. } => Failure::Expired,
                _ => Failure::Other,
            },
            Error::AlertReceived(_) => Failure::Alert,
            Error::InvalidMessage(M::InvalidContentType | M::UnknownProtocolVersion)
            | Error::InvalidMessage(M::MessageTooLarge) => Failure::NotTls,
            _ => Failure::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_makes_a_server_config_and_a_client_trusting_it() {
        let s = ServerTls::self_signed(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        s.config().unwrap();
        let c = ClientTls {
            ca_pem: Some(s.cert_pem.clone()),
            insecure: false,
        };
        c.config().unwrap();
    }

    #[test]
    fn bad_pem_names_the_flag() {
        let s = ServerTls {
            cert_pem: "nothing".into(),
            key_pem: "nothing".into(),
        };
        let e = format!("{:#}", s.config().unwrap_err());
        assert!(e.contains("--cert"), "{e}");
        let c = ClientTls {
            ca_pem: Some("x".into()),
            insecure: false,
        };
        let e = format!("{:#}", c.config().unwrap_err());
        assert!(e.contains("--ca"), "{e}");
    }

    #[test]
    fn failures_are_named() {
        let f = |e| Failure::of(&e);
        assert_eq!(
            f(Error::InvalidCertificate(CertificateError::UnknownIssuer)),
            Failure::UnknownIssuer
        );
        assert_eq!(
            f(Error::InvalidCertificate(CertificateError::NotValidForName)),
            Failure::NameMismatch
        );
        assert_eq!(
            f(Error::InvalidCertificate(CertificateError::Expired)),
            Failure::Expired
        );
        assert_eq!(
            f(Error::InvalidMessage(
                rustls::InvalidMessage::InvalidContentType
            )),
            Failure::NotTls
        );
        assert_eq!(
            f(Error::AlertReceived(
                rustls::AlertDescription::HandshakeFailure
            )),
            Failure::Alert
        );
    }
}
