//! Encoders: raw frames in, H.264 access units out.

pub mod encoder;
#[cfg(feature = "software-encoder")]
pub mod software;
#[cfg(feature = "v4l2")]
pub mod v4l2_jpeg;
#[cfg(feature = "v4l2")]
pub mod v4l2_m2m;

use crate::config::{EncoderKind, VideoConfig};

pub use encoder::{EncodeError, Encoder};

/// Opens the configured encoder with `video`'s bit rate, key-frame interval
/// and frame rate, which it keeps. `auto` takes the hardware encoder where
/// there is one and says why when it falls back to software.
pub fn open(video: &VideoConfig) -> Result<Box<dyn Encoder>, EncodeError> {
    let encoder = match video.encoder {
        EncoderKind::V4l2M2m => hardware_encoder(video)?,
        EncoderKind::Software => software_encoder(video)?,
        EncoderKind::Auto => match hardware_encoder(video) {
            Ok(encoder) => encoder,
            Err(why) => {
                tracing::info!("video.encoder = \"auto\": {why}; using the software encoder");
                software_encoder(video)?
            }
        },
    };
    Ok(encoder)
}

#[cfg(feature = "v4l2")]
fn hardware_encoder(video: &VideoConfig) -> Result<Box<dyn Encoder>, EncodeError> {
    Ok(Box::new(v4l2_m2m::M2mH264Encoder::open(video)?))
}

#[cfg(not(feature = "v4l2"))]
fn hardware_encoder(_video: &VideoConfig) -> Result<Box<dyn Encoder>, EncodeError> {
    Err(EncodeError::Unavailable(
        "this build has no V4L2 encoder support (cargo feature \"v4l2\")".into(),
    ))
}

#[cfg(feature = "software-encoder")]
fn software_encoder(video: &VideoConfig) -> Result<Box<dyn Encoder>, EncodeError> {
    Ok(Box::new(software::SoftwareEncoder::new(video)))
}

#[cfg(not(feature = "software-encoder"))]
fn software_encoder(_video: &VideoConfig) -> Result<Box<dyn Encoder>, EncodeError> {
    Err(EncodeError::Unavailable(
        "this build has no software encoder (cargo feature \"software-encoder\")".into(),
    ))
}
