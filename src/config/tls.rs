//! `[tls]`: RTSP over TLS.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::check::socket_addr;

/// `[tls]` section: RTSPS on its own port.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Address and port for RTSPS.
    #[serde(deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    /// The certificate chain (PEM); with `key`, or neither.
    pub cert: Option<PathBuf>,
    /// The private key (PEM).
    pub key: Option<PathBuf>,
    /// Where a self-signed certificate is kept when no `cert` is given:
    /// made once, then used at every start.
    pub store: PathBuf,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8322)),
            cert: None,
            key: None,
            store: PathBuf::from("/var/lib/streamcam/tls"),
        }
    }
}

impl TlsConfig {
    /// Checks that `cert` and `key` come together and can be read.
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        match (&self.cert, &self.key) {
            (Some(_), None) => Err((
                "tls.key".into(),
                "is required with tls.cert: the certificate's private key (PEM)".into(),
            )),
            (None, Some(_)) => Err((
                "tls.cert".into(),
                "is required with tls.key: the certificate chain (PEM)".into(),
            )),
            (Some(cert), Some(key)) => {
                for (name, path) in [("tls.cert", cert), ("tls.key", key)] {
                    if let Err(e) = std::fs::File::open(path) {
                        return Err((name.into(), format!("cannot open {}: {e}", path.display())));
                    }
                }
                Ok(())
            }
            (None, None) if self.store.is_relative() => Err((
                "tls.store".into(),
                format!("{} must be an absolute path", self.store.display()),
            )),
            (None, None) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;
    use crate::config::tests::parse;

    #[test]
    fn tls_table() {
        assert_eq!(parse("").unwrap().tls, None, "off without [tls]");
        let c = parse("[tls]\n").unwrap().tls.unwrap();
        assert_eq!(c.listen, "0.0.0.0:8322".parse().unwrap());
        assert_eq!((c.cert, c.key), (None, None));
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let c = Config::parse(
            "[tls]\ncert = \"Cargo.toml\"\nkey = \"Cargo.toml\"\n",
            "x",
            Some(dir),
        )
        .unwrap();
        assert_eq!(c.tls.unwrap().cert, Some(dir.join("Cargo.toml")));
        for (text, key, line) in [
            ("[tls]\ncert = \"/etc/hostname\"\n", "tls.key", 1),
            ("[tls]\nkey = \"/etc/hostname\"\n", "tls.cert", 1),
            (
                "[tls]\ncert = \"/nonexistent.pem\"\nkey = \"/etc/hostname\"\n",
                "tls.cert",
                2,
            ),
            ("[tls]\nstore = \"tls\"\n", "tls.store", 2),
            ("[tls]\nlisten = \"8322\"\n", "tls.listen", 2),
            ("[tls]\nlisten = \"[::]:8554\"\n", "tls.listen", 2),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.message.starts_with(key), "{text:?}: {e}");
            assert_eq!(e.line, Some(line), "{text:?}: {e}");
        }
    }
}
