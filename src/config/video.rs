//! `[video]`: the encoded stream: size, rate, bit rate, key frames, encoder and profile.

use std::ops::RangeInclusive;

use serde::Deserialize;

/// `video.width` and `video.height` in pixels (even numbers).
pub const PICTURE_SIZE: RangeInclusive<u32> = 16..=4096;

/// `video.framerate` in frames per second.
pub const FRAMERATE: RangeInclusive<u32> = 1..=120;

/// `video.bitrate` in bit/s.
pub const BITRATE: RangeInclusive<u32> = 50_000..=50_000_000;

/// `video.keyframe_interval` in frames.
pub const KEYFRAME_INTERVAL: RangeInclusive<u32> = 1..=1000;

/// Encoder choice.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum EncoderKind {
    /// The hardware encoder where there is one, else software.
    #[default]
    Auto,
    /// A V4L2 memory-to-memory encoder (the Pi's bcm2835-codec).
    V4l2M2m,
    /// The software encoder.
    Software,
}

/// H.264 profile the encoder is asked for.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum H264Profile {
    /// Constrained baseline: every decoder, every browser's WebRTC.
    Baseline,
    /// Main: better compression; WebRTC in Chromium.
    Main,
    /// High: the best compression; not every browser takes it over WebRTC.
    High,
}

/// `[video]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VideoConfig {
    /// Picture width in pixels.
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
    /// Frames per second (an upper bound for cameras).
    pub framerate: u32,
    /// Target bit rate in bit/s.
    pub bitrate: u32,
    /// Frames between key frames.
    pub keyframe_interval: u32,
    /// Which encoder to use.
    pub encoder: EncoderKind,
    /// H.264 profile; `None`: the encoder's own (High on the Pi's encoder,
    /// constrained baseline in software).
    pub profile: Option<H264Profile>,
}

impl Default for VideoConfig {
    fn default() -> Self {
        Self {
            width: 1280,
            height: 720,
            framerate: 30,
            bitrate: 1_000_000,
            keyframe_interval: 30,
            encoder: EncoderKind::Auto,
            profile: None,
        }
    }
}
