//! Picture sources: where frames come from. A source hands out either raw
//! frames (for the encoder) or ready access units (H.264 already).

pub mod file;
pub mod pacer;
pub mod testpattern;

use std::time::Instant;

use crate::config::{Config, SourceKind};
use crate::h264::{AccessUnit, ParameterSets};

/// A raw I420 (YUV 4:2:0 planar) frame, borrowed from its source.
#[derive(Debug)]
pub struct RawFrame<'a> {
    /// Luma plane, `width * height` bytes.
    pub y: &'a [u8],
    /// Cb plane, `width/2 * height/2` bytes.
    pub u: &'a [u8],
    /// Cr plane, `width/2 * height/2` bytes.
    pub v: &'a [u8],
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Capture time.
    pub timestamp: Instant,
}

/// What a source produces.
#[derive(Debug)]
pub enum Frame<'a> {
    /// A raw picture that needs encoding.
    Raw(RawFrame<'a>),
    /// An already encoded picture.
    Encoded(AccessUnit),
}

/// Errors opening or reading a source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source kind is not available in this build or on this machine.
    #[error("{0}")]
    Unavailable(String),
    /// The source file could not be read.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        error: std::io::Error,
    },
    /// The source's data is not usable.
    #[error("{0}")]
    Invalid(String),
}

/// A source of frames, driven from the pipeline thread.
pub trait Source: Send {
    /// Human-readable description, e.g. "testpattern".
    fn name(&self) -> String;
    /// Picture size, when known before the first frame.
    fn dimensions(&self) -> (u32, u32);
    /// Frames per second the source delivers.
    fn framerate(&self) -> f64;
    /// Parameter sets known up front (encoded sources).
    fn parameter_sets(&self) -> Option<ParameterSets> {
        None
    }
    /// Blocks until the next frame is due and returns it.
    fn next_frame(&mut self) -> Result<Frame<'_>, SourceError>;
}

/// Opens the configured source; `auto` picks a camera when one exists and
/// the test pattern otherwise.
pub fn open(config: &Config) -> Result<Box<dyn Source>, SourceError> {
    match config.source.kind {
        SourceKind::Auto => {
            tracing::info!(
                "source.kind = \"auto\": no camera support in this build; streaming the test pattern"
            );
            Ok(Box::new(testpattern::TestPattern::new(&config.video)))
        }
        SourceKind::Testpattern => Ok(Box::new(testpattern::TestPattern::new(&config.video))),
        SourceKind::File => Ok(Box::new(file::FileSource::open(
            &config.source.file,
            config.video.framerate,
        )?)),
        kind @ (SourceKind::Libcamera | SourceKind::V4l2) => {
            Err(SourceError::Unavailable(format!(
                "source.kind = \"{kind}\" is not supported by this build yet; use \"auto\", \"testpattern\" or \"file\""
            )))
        }
    }
}
