//! PEM files of certificates and keys, read and checked: the config checks
//! a relay's `ca` file with it when it loads, and the TLS side reads its
//! certificates and keys with it. Knows files, not connections.

use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A PEM file that cannot be read, or holds nothing usable.
#[derive(Debug, thiserror::Error)]
#[error("{}: {why}", path.display())]
pub struct PemError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub why: String,
}

fn bad(path: &Path, why: String) -> PemError {
    PemError {
        path: path.to_path_buf(),
        why,
    }
}

/// The certificates in `path`, at least one.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(path, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(path, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(
            path,
            "no certificate in it (PEM, \"BEGIN CERTIFICATE\")".into(),
        ));
    }
    Ok(certs)
}

/// The private key in `path`.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| bad(path, format!("no private key (PEM): {e}")))
}

/// The certificates of a CA file, each one usable as a root of trust.
pub fn ca_roots(path: &Path) -> Result<RootCertStore, PemError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path)? {
        roots
            .add(cert)
            .map_err(|e| bad(path, format!("not a CA certificate rustls can use: {e}")))?;
    }
    Ok(roots)
}
