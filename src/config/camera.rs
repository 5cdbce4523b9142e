//! `[camera]`: picture controls of libcamera cameras.

use std::ops::RangeInclusive;

use serde::Deserialize;

/// `camera.brightness`.
pub const BRIGHTNESS: RangeInclusive<f32> = -1.0..=1.0;

/// `camera.contrast` and `camera.saturation`.
pub const CONTRAST: RangeInclusive<f32> = 0.0..=32.0;

/// `camera.sharpness`.
pub const SHARPNESS: RangeInclusive<f32> = 0.0..=16.0;

/// `[camera]` section: picture controls for libcamera cameras. A control
/// left out keeps the camera's own default.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CameraConfig {
    /// Mirror the picture left to right.
    pub hflip: bool,
    /// Turn the picture upside down.
    pub vflip: bool,
    /// How the exposure is split between time and gain.
    pub exposure: Option<ExposureMode>,
    /// White balance.
    pub awb: Option<AwbMode>,
    /// -1.0 (dark) to 1.0 (bright); 0.0 is normal.
    pub brightness: Option<f32>,
    /// 0.0 to 32.0; 1.0 is normal.
    pub contrast: Option<f32>,
    /// 0.0 (greyscale) to 32.0; 1.0 is normal.
    pub saturation: Option<f32>,
    /// 0.0 (none) to 16.0; 1.0 is normal.
    pub sharpness: Option<f32>,
    /// Focus, on cameras that can focus (Camera Module 3).
    pub autofocus: Option<AutofocusMode>,
    /// Noise reduction.
    pub denoise: Option<DenoiseMode>,
}

/// `camera.exposure` values (libcamera's `AeExposureMode`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ExposureMode {
    /// The camera's balance of exposure time and gain.
    Normal,
    /// Short exposures (less motion blur, more noise).
    Short,
    /// Long exposures (less noise, more motion blur).
    Long,
}

impl ExposureMode {
    /// Its name in the config (and libcamera's, in kebab case).
    pub fn name(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Short => "short",
            Self::Long => "long",
        }
    }
}

/// `camera.awb` values (libcamera's `AwbMode`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AwbMode {
    /// Automatic white balance.
    Auto,
    /// Incandescent light.
    Incandescent,
    /// Tungsten light.
    Tungsten,
    /// Fluorescent light.
    Fluorescent,
    /// Indoors.
    Indoor,
    /// Daylight.
    Daylight,
    /// Cloudy daylight.
    Cloudy,
}

impl AwbMode {
    /// Its name in the config (and libcamera's, in kebab case).
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Incandescent => "incandescent",
            Self::Tungsten => "tungsten",
            Self::Fluorescent => "fluorescent",
            Self::Indoor => "indoor",
            Self::Daylight => "daylight",
            Self::Cloudy => "cloudy",
        }
    }
}

/// `camera.autofocus` values (libcamera's `AfMode`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AutofocusMode {
    /// Fixed focus at the lens position the camera starts with.
    Manual,
    /// Focus once when the camera starts.
    Auto,
    /// Keep focusing as the scene changes.
    Continuous,
}

impl AutofocusMode {
    /// Its name in the config (and libcamera's, in kebab case).
    pub fn name(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Auto => "auto",
            Self::Continuous => "continuous",
        }
    }
}

/// `camera.denoise` values (libcamera's `NoiseReductionMode`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DenoiseMode {
    /// No noise reduction.
    Off,
    /// Noise reduction that keeps the frame rate.
    Fast,
    /// Stronger noise reduction, possibly at a lower frame rate.
    HighQuality,
    /// The least noise reduction that keeps the frame rate.
    Minimal,
}

impl DenoiseMode {
    /// Its name in the config (and libcamera's, in kebab case).
    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Fast => "fast",
            Self::HighQuality => "high-quality",
            Self::Minimal => "minimal",
        }
    }
}
