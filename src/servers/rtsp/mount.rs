//! The streams the server serves, each at its own path, and which of them
//! (and which of its tracks) a request URL names.

use crate::format::sdp::{TRACK_PREFIX, Track};

/// One stream the server serves, at its own path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Its path, e.g. "/stream".
    pub path: String,
    /// Its configured frame rate, for the SDP when the SPS carries none.
    pub framerate: u32,
    /// Its sound's channels, if it has an audio track.
    pub audio_channels: Option<u32>,
}

impl Mount {
    /// How many tracks it has: video, and audio if any.
    pub fn tracks(&self) -> usize {
        1 + usize::from(self.audio_channels.is_some())
    }
}

/// Which of the server's mounts (`ServerInfo::mounts`) a request names
/// (0: the main stream).
pub type MountIndex = usize;

/// Whether a request URL's `path` names the stream at `base` (with or
/// without a trailing slash): `Some(None)` for the stream, `Some(track)`
/// for one of its first `tracks` tracks, `None` for neither.
pub fn named_track(path: &str, base: &str, tracks: usize) -> Option<Option<Track>> {
    let path = path.trim_end_matches('/');
    if path == base {
        return Some(None);
    }
    let id = path
        .strip_prefix(base)?
        .strip_prefix('/')?
        .strip_prefix(TRACK_PREFIX)?;
    let track: Track = id.parse().ok().filter(|t| *t < tracks)?;
    // "trackID=1", not "trackID=01" or "trackID=+1".
    (id == track.to_string()).then_some(Some(track))
}

/// A request URL as the log may show it: without a user name or password.
pub fn loggable(url: &url::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::sdp::{AUDIO, VIDEO};

    #[test]
    fn stream_path_matching() {
        assert_eq!(named_track("/stream", "/stream", 0), Some(None));
        assert_eq!(named_track("/stream/", "/stream", 0), Some(None));
        assert_eq!(named_track("/stream/trackID=0", "/stream", 0), None);
        assert_eq!(
            named_track("/stream/trackID=0", "/stream", 1),
            Some(Some(VIDEO))
        );
        assert_eq!(
            named_track("/stream/trackID=1", "/stream", 1),
            None,
            "no audio"
        );
        assert_eq!(
            named_track("/stream/trackID=1", "/stream", 2),
            Some(Some(AUDIO))
        );
        for path in [
            "/stream/trackID=01",
            "/stream/trackID=+1",
            "/stream/trackID=2",
        ] {
            assert_eq!(named_track(path, "/stream", 2), None, "{path}");
        }
        for path in ["/streamx", "/streamtrackID=0", "/other", "/", "/cam/stream"] {
            assert_eq!(named_track(path, "/stream", 2), None, "{path}");
        }
    }
}
