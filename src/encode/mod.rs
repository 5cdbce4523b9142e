//! Encoders: raw frames in, H.264 access units out.

#[cfg(feature = "software-encoder")]
pub mod software;

use crate::config::{EncoderKind, VideoConfig};
use crate::h264::AccessUnit;
use crate::source::RawFrame;

/// Errors opening or driving an encoder.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The encoder is not available in this build or on this machine.
    #[error("{0}")]
    Unavailable(String),
    /// The encoder failed.
    #[error("encoder failed: {0}")]
    Failed(String),
}

/// An H.264 encoder.
pub trait Encoder: Send {
    /// Short name for logs and status, e.g. "software".
    fn name(&self) -> &'static str;
    /// Encodes one frame; `None` when the encoder produced no picture for it.
    fn encode(&mut self, frame: &RawFrame<'_>) -> Result<Option<AccessUnit>, EncodeError>;
    /// Makes the next picture an IDR.
    fn request_keyframe(&mut self);
    /// Sets the target bit rate in bit/s.
    fn set_bitrate(&mut self, bps: u32) -> Result<(), EncodeError>;
    /// Sets the number of frames between IDR pictures.
    fn set_keyframe_interval(&mut self, frames: u32) -> Result<(), EncodeError>;
}

/// Opens the configured encoder and applies bit rate and key-frame interval.
pub fn open(video: &VideoConfig) -> Result<Box<dyn Encoder>, EncodeError> {
    let mut encoder = match video.encoder {
        EncoderKind::V4l2M2m => {
            return Err(EncodeError::Unavailable(
                "video.encoder = \"v4l2-m2m\" is not supported by this build yet; use \"auto\" or \"software\"".into(),
            ));
        }
        EncoderKind::Auto | EncoderKind::Software => software_encoder(video)?,
    };
    encoder.set_bitrate(video.bitrate)?;
    encoder.set_keyframe_interval(video.keyframe_interval)?;
    Ok(encoder)
}

#[cfg(feature = "software-encoder")]
fn software_encoder(video: &VideoConfig) -> Result<Box<dyn Encoder>, EncodeError> {
    Ok(Box::new(software::SoftwareEncoder::new(video.framerate)))
}

#[cfg(not(feature = "software-encoder"))]
fn software_encoder(_video: &VideoConfig) -> Result<Box<dyn Encoder>, EncodeError> {
    Err(EncodeError::Unavailable(
        "this build has no software encoder (cargo feature \"software-encoder\")".into(),
    ))
}
