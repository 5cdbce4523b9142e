//! `[substream]`: a second, smaller stream of the same pictures.

use serde::Deserialize;

use super::check::{is_stream_path, span};
use super::server::ServerConfig;
use super::video::{BITRATE, KEYFRAME_INTERVAL, PICTURE_SIZE, VideoConfig};

/// `[substream]` section: a second stream of the same camera at a lower
/// size, rate and bit rate (an NVR's "detect" stream), encoded once for
/// all of its clients.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SubstreamConfig {
    /// Its path in the URL, beside `server.path`.
    pub path: String,
    /// Picture width (even, at most `video.width`).
    pub width: u32,
    /// Picture height (even, at most `video.height`).
    pub height: u32,
    /// Frames per second: a divisor of `video.framerate`; `None`: the
    /// largest one up to 10.
    pub framerate: Option<u32>,
    /// Bit rate in bit/s.
    pub bitrate: u32,
    /// Frames between key frames; `None`: one a second.
    pub keyframe_interval: Option<u32>,
}

impl Default for SubstreamConfig {
    fn default() -> Self {
        Self {
            path: "/sub".into(),
            width: 640,
            height: 360,
            framerate: None,
            bitrate: 300_000,
            keyframe_interval: None,
        }
    }
}

/// The substream's frame rate when `substream.framerate` is unset: the
/// largest divisor of the main rate up to this.
const SUBSTREAM_DEFAULT_FRAMERATE: u32 = 10;

impl SubstreamConfig {
    /// The substream's encoding: the main stream's encoder and profile at
    /// this table's size, rate, bit rate and key-frame interval.
    pub fn video(&self, main: &VideoConfig) -> VideoConfig {
        let framerate = self.framerate.unwrap_or_else(|| {
            (1..=main.framerate.min(SUBSTREAM_DEFAULT_FRAMERATE))
                .rev()
                .find(|d| main.framerate % d == 0)
                .unwrap_or(1)
        });
        VideoConfig {
            width: self.width,
            height: self.height,
            framerate,
            bitrate: self.bitrate,
            keyframe_interval: self.keyframe_interval.unwrap_or(framerate),
            ..main.clone()
        }
    }

    /// Source frames per substream frame.
    pub fn every(&self, main: &VideoConfig) -> u32 {
        main.framerate / self.video(main).framerate.max(1)
    }

    /// Checks the table against the main stream's settings.
    pub(super) fn validate(
        &self,
        server: &ServerConfig,
        main: &VideoConfig,
    ) -> Result<(), (String, String)> {
        let key = |k: &str| format!("substream.{k}");
        if !is_stream_path(&self.path) {
            return Err((
                key("path"),
                format!(
                    "{:?} must start with '/', not end with '/', and hold no spaces, '?' or '#', e.g. \"/sub\"",
                    self.path
                ),
            ));
        }
        if self.path == server.path {
            return Err((
                key("path"),
                format!(
                    "{:?} is server.path's: the substream needs a path of its own",
                    self.path
                ),
            ));
        }
        for (name, value, most) in [
            ("width", self.width, main.width),
            ("height", self.height, main.height),
        ] {
            if !PICTURE_SIZE.contains(&value) || value % 2 != 0 || value > most {
                return Err((
                    key(name),
                    format!(
                        "{value} must be an even number from {} up to video.{name} ({most})",
                        PICTURE_SIZE.start()
                    ),
                ));
            }
        }
        if let Some(rate) = self.framerate
            && (rate == 0 || main.framerate % rate != 0)
        {
            let divisors: Vec<String> = (1..=main.framerate)
                .filter(|d| main.framerate % d == 0)
                .map(|d| d.to_string())
                .collect();
            return Err((
                key("framerate"),
                format!(
                    "{rate} must divide video.framerate ({}): one of {}",
                    main.framerate,
                    divisors.join(", ")
                ),
            ));
        }
        if !BITRATE.contains(&self.bitrate) {
            return Err((
                key("bitrate"),
                format!("{} is out of range: {} bit/s", self.bitrate, span(&BITRATE)),
            ));
        }
        if let Some(interval) = self
            .keyframe_interval
            .filter(|i| !KEYFRAME_INTERVAL.contains(i))
        {
            return Err((
                key("keyframe_interval"),
                format!(
                    "{interval} is out of range: {} frames",
                    span(&KEYFRAME_INTERVAL)
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::parse;

    #[test]
    fn substream_table() {
        assert_eq!(
            parse("").unwrap().substream,
            None,
            "off without [substream]"
        );
        let c = parse("[substream]\n").unwrap();
        let sub = c.substream.as_ref().unwrap();
        assert_eq!(sub.path, "/sub");
        let video = sub.video(&c.video);
        assert_eq!(
            (
                video.width,
                video.height,
                video.framerate,
                video.bitrate,
                video.keyframe_interval
            ),
            (640, 360, 10, 300_000, 10)
        );
        assert_eq!(sub.every(&c.video), 3);
        let c = parse("[video]\nframerate = 25\n[substream]\n").unwrap();
        assert_eq!(c.substream.as_ref().unwrap().video(&c.video).framerate, 5);
        let c = parse(
            "[substream]\nframerate = 15\nkeyframe_interval = 60\nwidth = 320\nheight = 180\n",
        )
        .unwrap();
        let sub = c.substream.as_ref().unwrap();
        assert_eq!(sub.video(&c.video).keyframe_interval, 60);
        assert_eq!(sub.every(&c.video), 2);
        for (text, key, says) in [
            (
                "[substream]\npath = \"/stream\"\n",
                "substream.path",
                "a path of its own",
            ),
            (
                "[substream]\npath = \"sub\"\n",
                "substream.path",
                "must start with '/'",
            ),
            (
                "[substream]\nwidth = 1920\n",
                "substream.width",
                "up to video.width (1280)",
            ),
            ("[substream]\nheight = 181\n", "substream.height", "even"),
            (
                "[substream]\nframerate = 7\n",
                "substream.framerate",
                "1, 2, 3, 5, 6, 10, 15, 30",
            ),
            (
                "[substream]\nbitrate = 10\n",
                "substream.bitrate",
                "out of range",
            ),
            (
                "[substream]\nkeyframe_interval = 0\n",
                "substream.keyframe_interval",
                "out of range",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.message.starts_with(key), "{text:?}: {e}");
            assert!(e.message.contains(says), "{text:?}: {e}");
        }
    }
}
