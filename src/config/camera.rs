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

/// `camera.exposure` values (libcamera's `AeExposureMode`; each one's
/// discriminant is libcamera's value).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ExposureMode {
    /// The camera's balance of exposure time and gain.
    Normal = 0,
    /// Short exposures (less motion blur, more noise).
    Short = 1,
    /// Long exposures (less noise, more motion blur).
    Long = 2,
}

impl ExposureMode {
    /// Every mode.
    pub const ALL: [Self; 3] = [Self::Normal, Self::Short, Self::Long];

    /// Its name in the config (and libcamera's, in kebab case).
    pub fn name(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Short => "short",
            Self::Long => "long",
        }
    }
}

/// `camera.awb` values (libcamera's `AwbMode`; each one's discriminant is
/// libcamera's value).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AwbMode {
    /// Automatic white balance.
    Auto = 0,
    /// Incandescent light.
    Incandescent = 1,
    /// Tungsten light.
    Tungsten = 2,
    /// Fluorescent light.
    Fluorescent = 3,
    /// Indoors.
    Indoor = 4,
    /// Daylight.
    Daylight = 5,
    /// Cloudy daylight.
    Cloudy = 6,
}

impl AwbMode {
    /// Every mode.
    pub const ALL: [Self; 7] = [
        Self::Auto,
        Self::Incandescent,
        Self::Tungsten,
        Self::Fluorescent,
        Self::Indoor,
        Self::Daylight,
        Self::Cloudy,
    ];

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

/// `camera.autofocus` values (libcamera's `AfMode`; each one's
/// discriminant is libcamera's value).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AutofocusMode {
    /// Fixed focus at the lens position the camera starts with.
    Manual = 0,
    /// Focus once when the camera starts.
    Auto = 1,
    /// Keep focusing as the scene changes.
    Continuous = 2,
}

impl AutofocusMode {
    /// Every mode.
    pub const ALL: [Self; 3] = [Self::Manual, Self::Auto, Self::Continuous];

    /// Its name in the config (and libcamera's, in kebab case).
    pub fn name(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Auto => "auto",
            Self::Continuous => "continuous",
        }
    }
}

/// `camera.denoise` values (libcamera's `NoiseReductionMode`; each one's
/// discriminant is libcamera's value).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DenoiseMode {
    /// No noise reduction.
    Off = 0,
    /// Noise reduction that keeps the frame rate.
    Fast = 1,
    /// Stronger noise reduction, possibly at a lower frame rate.
    HighQuality = 2,
    /// The least noise reduction that keeps the frame rate.
    Minimal = 3,
}

impl DenoiseMode {
    /// Every mode.
    pub const ALL: [Self; 4] = [Self::Off, Self::Fast, Self::HighQuality, Self::Minimal];

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

#[cfg(test)]
mod tests {
    use crate::config::tests::parse;
    use std::fmt::Debug;

    use serde::de::IntoDeserializer;
    use serde::de::value::{Error, StrDeserializer};

    use super::*;

    /// Every mode of `all` is read from the config by its name, and its
    /// value is its place in the list (libcamera's numbering).
    fn check<M>(all: &[M], name: fn(M) -> &'static str, value: fn(M) -> i32)
    where
        M: for<'de> Deserialize<'de> + Copy + PartialEq + Debug,
    {
        for (i, m) in all.iter().enumerate() {
            assert_eq!(value(*m), i as i32, "{m:?}");
            let text: StrDeserializer<'_, Error> = name(*m).into_deserializer();
            assert_eq!(M::deserialize(text).unwrap(), *m);
        }
    }

    #[test]
    fn every_mode_is_listed_in_libcameras_order_and_read_by_its_name() {
        check(&ExposureMode::ALL, ExposureMode::name, |m| m as i32);
        check(&AwbMode::ALL, AwbMode::name, |m| m as i32);
        check(&AutofocusMode::ALL, AutofocusMode::name, |m| m as i32);
        check(&DenoiseMode::ALL, DenoiseMode::name, |m| m as i32);
    }

    #[test]
    fn camera_controls() {
        let c = parse(
            "[camera]\nhflip = true\nexposure = \"short\"\nawb = \"daylight\"\n\
             contrast = 1.5\nautofocus = \"continuous\"\ndenoise = \"high-quality\"\n",
        )
        .unwrap();
        assert!(c.camera.hflip && !c.camera.vflip);
        assert_eq!(c.camera.exposure, Some(ExposureMode::Short));
        assert_eq!(c.camera.awb, Some(AwbMode::Daylight));
        assert_eq!(c.camera.contrast, Some(1.5));
        assert_eq!(c.camera.brightness, None);
        assert_eq!(c.camera.autofocus, Some(AutofocusMode::Continuous));
        assert_eq!(c.camera.denoise, Some(DenoiseMode::HighQuality));
        let e = parse("[camera]\nawb = \"sunny\"\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.to_string().contains("sunny"), "{e}");
        let e = parse("[camera]\nzoom = 2\n").unwrap_err();
        assert!(e.to_string().contains("zoom"), "{e}");
    }
}
