//! `[[publish]]`: the relays the stream is pushed to.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use super::{pem, srt};

/// One `[[publish]]` target: a relay the daemon pushes the stream to,
/// reconnecting by itself.
#[derive(Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PublishConfig {
    /// Where to: `rtsp://` or `rtsps://` (ANNOUNCE and RECORD; credentials
    /// in the URL), `rtmp://host/app/key` or `rtmps://host/app/key`, or
    /// `srt://host:port?streamid=...` (MPEG-TS).
    pub url: String,
    /// PEM certificates to trust for an `rtsps://` or `rtmps://` relay
    /// besides the web's roots (its own, if self-signed, or its CA).
    pub ca: Option<PathBuf>,
}

/// Whether a publishing URL's `scheme` runs over TLS.
pub fn is_secure(scheme: &str) -> bool {
    matches!(scheme, "rtsps" | "rtmps")
}

/// The schemes `publish.url` takes.
pub const PUBLISH_SCHEMES: [&str; 5] = ["rtsp", "rtsps", "rtmp", "rtmps", "srt"];

impl PublishConfig {
    /// The URL, checked: a scheme streamcam publishes with and a host.
    pub fn parsed(&self) -> Result<url::Url, String> {
        let url = url::Url::parse(&self.url)
            .map_err(|e| format!("is not a URL ({e}), e.g. \"rtmp://relay.example/live/cam1\""))?;
        if !PUBLISH_SCHEMES.contains(&url.scheme()) {
            return Err(format!(
                "{}:// is not a way to publish in this version: use {}",
                url.scheme(),
                PUBLISH_SCHEMES.map(|s| format!("{s}://")).join(", ")
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!(
                "names no host: {}://<host>[:port]/...",
                url.scheme()
            ));
        }
        Ok(url)
    }

    /// Checks the URL and the `ca` file; on error returns the key (relative
    /// to the target's table) and a message.
    pub(super) fn validate(&self) -> Result<(), (&'static str, String)> {
        let url = self.parsed().map_err(|m| ("url", m))?;
        if url.scheme() == "srt" {
            srt::Options::of(&url).map_err(|m| ("url", m))?;
        }
        if let Some(ca) = &self.ca {
            if !is_secure(url.scheme()) {
                return Err((
                    "ca",
                    format!(
                        "is for rtsps:// and rtmps:// targets; {}:// has no certificate to check",
                        url.scheme()
                    ),
                ));
            }
            pem::ca_roots(ca).map_err(|e| ("ca", e.to_string()))?;
        }
        Ok(())
    }
}

/// Never shows the URL, which may hold a password or a stream key.
impl fmt::Debug for PublishConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishConfig")
            .field("url", &"<hidden>")
            .field("ca", &self.ca)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::parse;

    #[test]
    fn publish_targets() {
        assert!(parse("").unwrap().publish.is_empty());
        let c = parse(
            "[[publish]]\nurl = \"rtsp://u:p@relay:8554/cam\"\n[[publish]]\nurl = \"rtsp://relay/cam2\"\n",
        )
        .unwrap();
        assert_eq!(c.publish.len(), 2);
        assert!(!format!("{c:?}").contains("u:p@"), "no secrets in Debug");
        for (text, line, says) in [
            (
                "[[publish]]\nurl = \"relay:1935\"\n",
                2,
                "is not a way to publish",
            ),
            ("[[publish]]\nurl = \"not a url\"\n", 2, "is not a URL"),
            (
                "[[publish]]\nurl = \"http://relay/x\"\n",
                2,
                "http:// is not a way",
            ),
            ("[[publish]]\nurl = \"rtsp:///live\"\n", 2, "names no host"),
            (
                "[[publish]]\nurl = \"srt://relay:8890?passphrase=short\"\n",
                2,
                "10 to 79 characters",
            ),
            ("[[publish]]\n", 1, "is not a URL"),
        ] {
            let e = parse(&format!(
                "[[publish]]\nurl = \"rtsp://ok/live/key\"\n{text}"
            ))
            .unwrap_err();
            assert!(e.message.starts_with("publish[1].url: "), "{text:?}: {e}");
            assert!(e.message.contains(says), "{text:?}: {e}");
            assert_eq!(e.line, Some(line + 2), "{text:?}: {e}");
            assert!(!e.message.contains("key"), "{e}");
        }
    }

    #[test]
    fn secure_schemes() {
        assert!(is_secure("rtsps") && is_secure("rtmps"));
        assert!(!is_secure("rtsp") && !is_secure("rtmp") && !is_secure("srt"));
    }

    #[test]
    fn publish_over_tls_takes_a_ca_file() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("relay.pem");
        let made = rcgen::generate_simple_self_signed(vec!["relay.example".into()]).unwrap();
        std::fs::write(&pem, made.cert.pem()).unwrap();
        let c = parse(&format!(
            "[[publish]]\nurl = \"rtsps://relay.example/cam\"\nca = \"{}\"\n[[publish]]\nurl = \"rtmps://a.rtmp.youtube.com/live2/k\"\n",
            pem.display()
        ))
        .unwrap();
        assert_eq!(c.publish[0].ca.as_deref(), Some(pem.as_path()));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        for (url, ca, says) in [
            (
                "rtsps://relay/cam",
                "/nonexistent/ca.pem",
                "/nonexistent/ca.pem",
            ),
            (
                "rtmps://relay/live/k",
                empty.to_str().unwrap(),
                "no certificate",
            ),
            (
                "rtmp://relay/live/k",
                pem.to_str().unwrap(),
                "rtmp:// has no certificate",
            ),
        ] {
            let e = parse(&format!("[[publish]]\nurl = \"{url}\"\nca = \"{ca}\"\n")).unwrap_err();
            assert!(e.message.starts_with("publish[0].ca: "), "{url}: {e}");
            assert!(e.message.contains(says), "{url}: {e}");
        }
    }
}
