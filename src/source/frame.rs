//! What every source hands out and promises: frames, raw
//! ([`crate::format::raw`]) or encoded; the `Source` trait, and its errors.

use std::time::{Duration, Instant};

use crate::config::SourceKind;
use crate::format::h264::{AccessUnit, ParameterSets};
use crate::format::raw::{Canvas, PlaneMut, RawFrame};
use crate::overlay::Overlay;

/// A camera or encoder that delivers nothing for this long is stalled: the
/// pipeline reopens it.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(2);

/// A `CLOCK_MONOTONIC` time in nanoseconds (kernel and libcamera buffer
/// timestamps) as an `Instant`, which counts on the same clock on Linux.
/// Times in the future or over a second old are taken as now.
#[cfg_attr(
    not(feature = "v4l2"),
    allow(dead_code, reason = "only cameras stamp their frames")
)]
pub fn monotonic_instant(nanos: i128) -> Instant {
    let now = Instant::now();
    let mut mono = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut mono) };
    let now_ns = mono.tv_sec as i128 * 1_000_000_000 + mono.tv_nsec as i128;
    let age = now_ns - nanos;
    if !(0..=1_000_000_000).contains(&age) {
        return now;
    }
    now.checked_sub(Duration::from_nanos(age as u64))
        .unwrap_or(now)
}

/// A tightly packed I420 picture of `width` x `height` in memory the
/// source owns (`y`, `u`, `v`), with `overlay` drawn on it for capture
/// time `timestamp`, as a raw frame: the test pattern's and the y4m
/// file's.
pub fn owned_i420<'a>(
    (y, u, v): (&'a mut [u8], &'a mut [u8], &'a mut [u8]),
    width: usize,
    height: usize,
    overlay: Option<&mut Overlay>,
    timestamp: Instant,
) -> Frame<'a> {
    let cw = width / 2;
    let mut canvas = Canvas::I420 {
        y: PlaneMut {
            data: y,
            stride: width,
        },
        u: PlaneMut {
            data: u,
            stride: cw,
        },
        v: PlaneMut {
            data: v,
            stride: cw,
        },
    };
    if let Some(overlay) = overlay {
        overlay.draw(&mut canvas, width, height, timestamp, &[]);
    }
    Frame::Raw(RawFrame {
        pixels: canvas.into_pixels(),
        dmabuf: None,
        width: width as u32,
        height: height as u32,
        timestamp,
    })
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
    /// The source stopped delivering frames.
    #[cfg_attr(not(feature = "v4l2"), allow(dead_code, reason = "only cameras stall"))]
    #[error("{0}")]
    Stalled(String),
    /// The camera failed or went away while streaming.
    #[cfg_attr(
        not(any(feature = "libcamera", feature = "gstreamer")),
        allow(dead_code, reason = "only libcamera cameras report it")
    )]
    #[error("{0}")]
    Lost(String),
    /// A V4L2 device failed.
    #[cfg(feature = "v4l2")]
    #[error(transparent)]
    Device(#[from] crate::v4l2::V4l2Error),
}

impl SourceError {
    /// True if reopening the source may help: a camera that was unplugged,
    /// is busy, stalled or failed. False for one that can never work as
    /// configured (a format or size it refuses, a file that is not H.264).
    pub fn may_recover(&self) -> bool {
        match self {
            Self::Invalid(_) => false,
            #[cfg(feature = "v4l2")]
            Self::Device(e) => e.may_recover(),
            _ => true,
        }
    }
}

/// A source of frames, driven from the pipeline thread.
pub trait Source: Send {
    /// Human-readable description, e.g. "testpattern".
    fn name(&self) -> String;
    /// The kind of source this is (what `source.kind = "auto"` chose).
    fn kind(&self) -> SourceKind;
    /// Picture size, when known before the first frame.
    fn dimensions(&self) -> (u32, u32);
    /// Frames per second the source delivers.
    fn framerate(&self) -> f64;
    /// True if frames come encoded (H.264), false if they need an encoder.
    fn is_encoded(&self) -> bool {
        false
    }
    /// Parameter sets known up front (encoded sources).
    fn parameter_sets(&self) -> Option<ParameterSets> {
        None
    }
    /// Blocks until the next frame is due and returns it.
    fn next_frame(&mut self) -> Result<Frame<'_>, SourceError>;
}
