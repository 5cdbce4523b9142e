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
