//! What every encoder promises: the `Encoder` trait, and its errors.

use crate::format::h264::AccessUnit;
use crate::format::raw::RawFrame;

/// Errors opening or driving an encoder.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The encoder is not available in this build or on this machine.
    #[error("{0}")]
    Unavailable(String),
    /// The encoder failed.
    #[error("encoder failed: {0}")]
    Failed(String),
    /// The encoder stopped producing pictures.
    #[cfg_attr(
        not(feature = "v4l2"),
        allow(dead_code, reason = "only hardware encoders stall")
    )]
    #[error("encoder stalled: {0}")]
    Stalled(String),
    /// A V4L2 encoder device failed.
    #[cfg(feature = "v4l2")]
    #[error(transparent)]
    Device(#[from] crate::v4l2::V4l2Error),
}

impl EncodeError {
    /// True if reopening the encoder may help (it failed or stalled);
    /// false if it is missing or refuses the stream's settings.
    pub fn may_recover(&self) -> bool {
        match self {
            Self::Unavailable(_) => false,
            #[cfg(feature = "v4l2")]
            Self::Device(e) => e.may_recover(),
            Self::Failed(_) | Self::Stalled(_) => true,
        }
    }
}

/// An H.264 encoder.
pub trait Encoder: Send {
    /// Short name for logs and status, e.g. "software".
    fn name(&self) -> &'static str;
    /// Encodes one frame, adding the access units that are ready to `out`:
    /// none if the encoder dropped the frame or is still working on it,
    /// more than one if it caught up.
    fn encode(
        &mut self,
        frame: &RawFrame<'_>,
        out: &mut Vec<AccessUnit>,
    ) -> Result<(), EncodeError>;
    /// Makes the next picture an IDR.
    fn request_keyframe(&mut self);
    /// True while the encoder reads the camera's buffers in place (no copy).
    fn is_zero_copy(&self) -> bool {
        false
    }
}
