//! TLS, with rustls and the ring provider. The server side (RTSPS, from
//! `[tls]`): with `cert` and `key` the daemon serves them; without, it
//! makes a self-signed certificate once, keeps it in `tls.store` and serves
//! it at every start, so that clients that pinned it (by the SHA-256
//! fingerprint the log shows) keep trusting it. The client side (publishing
//! to `rtsps://` and `rtmps://` relays): the web's root certificates built
//! in (webpki-roots: a read-only image may have no CA store of its own),
//! and those of a target's `ca` file for a relay with a private CA or a
//! self-signed certificate.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::TlsConfig;
use crate::config::pem::{self, PemError};

/// Why TLS cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file that cannot be read or holds no certificate or key.
    #[error(transparent)]
    File(#[from] PemError),
    /// The store cannot hold a new self-signed certificate.
    #[error(
        "cannot keep a self-signed certificate in {}: {why} (make tls.store writable, or give tls.cert and tls.key)",
        store.display()
    )]
    Store {
        /// The directory.
        store: PathBuf,
        /// What failed.
        why: String,
    },
    /// rustls refused the certificate and key (e.g. they do not match).
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The TLS side of the server, ready to accept.
pub struct Tls {
    /// Wraps accepted connections.
    pub acceptor: TlsAcceptor,
    /// SHA-256 of the certificate, as `AB:CD:...` (for pinning).
    pub fingerprint: String,
    /// Where the certificate came from, for the log.
    pub origin: String,
}

/// Sets up TLS from `config`.
pub fn load(config: &TlsConfig) -> Result<Tls, TlsError> {
    let (certs, key, origin) = match (&config.cert, &config.key) {
        (Some(cert), Some(key)) => (
            pem::certificates(cert)?,
            pem::private_key(key)?,
            cert.display().to_string(),
        ),
        _ => {
            let (certs, key, made) = self_signed(&config.store)?;
            let how = if made { "made now" } else { "made earlier" };
            (
                certs,
                key,
                format!("self-signed, {how}, kept in {}", config.store.display()),
            )
        }
    };
    let fingerprint = fingerprint(&certs[0]);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Tls {
        acceptor: TlsAcceptor::from(Arc::new(server)),
        fingerprint,
        origin,
    })
}

/// The client side for publishing: trusts the built-in web roots and the
/// certificates in `ca`.
pub fn client(ca: Option<&Path>) -> Result<TlsConnector, TlsError> {
    let mut roots = match ca {
        Some(path) => pem::ca_roots(path)?,
        None => rustls::RootCertStore::empty(),
    };
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(client)))
}

/// SHA-256 of a certificate, as `openssl x509 -fingerprint -sha256` shows it.
pub fn fingerprint(cert: &CertificateDer) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// The store's certificate and key, made first if there are none; true if
/// they were made now.
fn self_signed(
    store: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, bool), TlsError> {
    let (cert_path, key_path) = (store.join("cert.pem"), store.join("key.pem"));
    if cert_path.exists() && key_path.exists() {
        return Ok((
            pem::certificates(&cert_path)?,
            pem::private_key(&key_path)?,
            false,
        ));
    }
    let failed = |why: String| TlsError::Store {
        store: store.to_path_buf(),
        why,
    };
    let mut names = vec!["streamcam.local".to_string(), "localhost".to_string()];
    if let Some(host) = hostname().filter(|h| h != "localhost" && h != "streamcam") {
        names.push(format!("{host}.local"));
        names.push(host);
    }
    let key = rcgen::KeyPair::generate().map_err(|e| failed(e.to_string()))?;
    let mut params = rcgen::CertificateParams::new(names).map_err(|e| failed(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "streamcam");
    let cert = params
        .self_signed(&key)
        .map_err(|e| failed(e.to_string()))?;
    std::fs::create_dir_all(store).map_err(|e| failed(e.to_string()))?;
    write_private(&key_path, key.serialize_pem().as_bytes()).map_err(|e| failed(e.to_string()))?;
    write_private(&cert_path, cert.pem().as_bytes()).map_err(|e| failed(e.to_string()))?;
    let der = PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| failed(e.to_string()))?;
    Ok((vec![cert.der().clone()], der, true))
}

/// Writes `data` to `path` readable by the owner only, all or nothing.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let partial = path.with_extension("partial");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&partial, path)
}

/// This machine's host name.
fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0)?;
    let name = std::str::from_utf8(&buf[..end]).ok()?.trim().to_string();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(store: &Path) -> TlsConfig {
        TlsConfig {
            store: store.to_path_buf(),
            ..TlsConfig::default()
        }
    }

    #[test]
    fn a_self_signed_certificate_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("tls");
        let first = load(&config(&store)).unwrap();
        assert!(first.origin.contains("made now"), "{}", first.origin);
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        let again = load(&config(&store)).unwrap();
        assert!(again.origin.contains("made earlier"), "{}", again.origin);
        assert_eq!(first.fingerprint, again.fingerprint, "the same certificate");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(store.join("key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the key is private: {mode:o}");
        // The same files given as cert and key.
        let given = TlsConfig {
            cert: Some(store.join("cert.pem")),
            key: Some(store.join("key.pem")),
            ..config(&store)
        };
        assert_eq!(load(&given).unwrap().fingerprint, first.fingerprint);
    }

    #[test]
    fn bad_files_and_stores_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem").unwrap();
        let c = TlsConfig {
            cert: Some(junk.clone()),
            key: Some(junk.clone()),
            ..config(dir.path())
        };
        let e = load(&c).err().unwrap().to_string();
        assert!(
            e.contains("junk.pem") && e.contains("no certificate"),
            "{e}"
        );
        let file = dir.path().join("a-file");
        std::fs::write(&file, "").unwrap();
        let e = load(&config(&file.join("tls"))).err().unwrap().to_string();
        assert!(e.contains("cannot keep a self-signed certificate"), "{e}");
    }
}
