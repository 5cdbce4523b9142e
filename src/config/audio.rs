//! `[audio]`: a microphone, coded as Opus.

use std::ops::RangeInclusive;

use serde::Deserialize;

use super::check::span;

/// `[audio]` section: a microphone, coded as Opus, as a second track of
/// the main stream.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AudioConfig {
    /// The ALSA capture device (`default`, `plughw:1,0`, `null` for
    /// silence), or `auto`: the first sound card that can capture.
    pub device: String,
    /// 1 (mono) or 2 (stereo).
    pub channels: u32,
    /// Opus bit rate in bit/s.
    pub bitrate: u32,
}

impl Default for AudioConfig {
    fn default() -> Self {
        Self {
            device: "default".into(),
            channels: 1,
            bitrate: 64_000,
        }
    }
}

/// `audio.bitrate`: what Opus takes, in bit/s.
pub const AUDIO_BITRATE: RangeInclusive<u32> = 6_000..=510_000;

impl AudioConfig {
    /// Checks the device, channels and bit rate, and that this build has audio.
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        if !cfg!(feature = "audio") {
            return Err((
                "audio".into(),
                "this build has no audio support (cargo feature \"audio\"): remove [audio] or build with --features audio".into(),
            ));
        }
        if self.device.trim().is_empty() || self.device.contains('\0') {
            return Err((
                "audio.device".into(),
                "is empty: an ALSA device such as \"default\" or \"plughw:1,0\" (arecord -L lists them), or \"auto\"".into(),
            ));
        }
        if !(1..=2).contains(&self.channels) {
            return Err((
                "audio.channels".into(),
                format!("{} must be 1 (mono) or 2 (stereo)", self.channels),
            ));
        }
        if !AUDIO_BITRATE.contains(&self.bitrate) {
            return Err((
                "audio.bitrate".into(),
                format!(
                    "{} is out of range: {} bit/s",
                    self.bitrate,
                    span(&AUDIO_BITRATE)
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::parse;

    #[test]
    fn audio_table() {
        assert_eq!(parse("").unwrap().audio, None, "off without [audio]");
        if !cfg!(feature = "audio") {
            let e = parse("[audio]\n").unwrap_err();
            assert!(e.message.contains("cargo feature"), "{e}");
            return;
        }
        let c = parse("[audio]\n").unwrap().audio.unwrap();
        assert_eq!(c, AudioConfig::default());
        let c = parse("[audio]\ndevice = \"null\"\nchannels = 2\nbitrate = 96000\n")
            .unwrap()
            .audio
            .unwrap();
        assert_eq!(
            (c.device.as_str(), c.channels, c.bitrate),
            ("null", 2, 96_000)
        );
        for (text, key) in [
            ("[audio]\ndevice = \"\"\n", "audio.device"),
            ("[audio]\nchannels = 3\n", "audio.channels"),
            ("[audio]\nbitrate = 1000\n", "audio.bitrate"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.message.starts_with(key), "{text:?}: {e}");
        }
    }
}
