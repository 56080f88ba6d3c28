//! TLS for `listeners.wss` (HTTPS and MQTT over secure WebSocket) and `listeners.mqtts`
//! (MQTT over TLS), with rustls. `[tls] cert_file` (the chain, PEM) and `key_file`; with
//! `client_ca_file`, clients must present a certificate that CA signed (mutual TLS), and
//! with `use_identity_as_username` its subject's common name is the client's user name. The
//! files are read again on SIGHUP: new handshakes use them, established connections go on.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};

use x509_cert::Certificate;
use x509_cert::der::Decode;

use crate::config::Tls as TlsConfig;

/// A certificate, key or CA file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("tls.{option} {path}: {reason}")]
pub struct TlsError {
    /// The option naming the file.
    pub option: &'static str,
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub reason: String,
}

/// The current TLS configuration, replaced whole on reload.
#[derive(Debug)]
pub struct TlsSettings {
    files: TlsConfig,
    current: RwLock<Arc<ServerConfig>>,
}

fn error(option: &'static str, path: &str, reason: impl ToString) -> TlsError {
    TlsError {
        option,
        path: path.into(),
        reason: reason.to_string(),
    }
}

fn certificates(option: &'static str, path: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_file_iter(Path::new(path))
        .map_err(|e| error(option, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(option, path, e))?;
    if certificates.is_empty() {
        return Err(error(option, path, "no certificate in it"));
    }
    Ok(certificates)
}

fn server_config(files: &TlsConfig) -> Result<ServerConfig, TlsError> {
    let chain = certificates("cert_file", &files.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(Path::new(&files.key_file))
        .map_err(|e| error("key_file", &files.key_file, e))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| error("cert_file", &files.cert_file, e))?;
    let builder = if files.client_ca_file.is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        for certificate in certificates("client_ca_file", &files.client_ca_file)? {
            roots
                .add(certificate)
                .map_err(|e| error("client_ca_file", &files.client_ca_file, e))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| error("client_ca_file", &files.client_ca_file, e))?;
        builder.with_client_cert_verifier(verifier)
    };
    builder
        .with_single_cert(chain, key)
        .map_err(|e| error("key_file", &files.key_file, e))
}

impl TlsSettings {
    /// Reads the files `[tls]` names.
    pub fn load(files: &TlsConfig) -> Result<Arc<Self>, TlsError> {
        let current = RwLock::new(Arc::new(server_config(files)?));
        Ok(Arc::new(Self {
            files: files.clone(),
            current,
        }))
    }

    /// Reads the files again; on an error the current configuration stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = Arc::new(server_config(&self.files)?);
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = config;
        Ok(())
    }

    /// Whether a client certificate's common name is the user name.
    pub fn identity_as_username(&self) -> bool {
        self.files.use_identity_as_username
    }

    /// An acceptor with the current configuration.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(
            self.current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        )
    }
}

/// The common name of a certificate's subject (DER), if it has one.
pub fn subject_common_name(der: &[u8]) -> Option<String> {
    let certificate = Certificate::from_der(der).ok()?;
    certificate
        .tbs_certificate()
        .subject()
        .common_name()
        .ok()
        .flatten()
        .map(String::from)
}
