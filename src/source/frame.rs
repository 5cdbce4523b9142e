//! What every source hands out and promises: frames, raw (their planes,
//! pixels, the canvas the overlay draws on, the lease that holds a camera
//! buffer, the DMABUF an encoder can import) or encoded; the `Source`
//! trait, and its errors.

use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::SourceKind;
use crate::format::h264::{AccessUnit, ParameterSets};

/// A camera or encoder that delivers nothing for this long is stalled: the
/// pipeline reopens it.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(2);

/// One plane of a raw picture: its bytes and the distance between lines.
#[derive(Debug, Clone, Copy)]
pub struct Plane<'a> {
    /// The plane's bytes: `stride` bytes for each line.
    pub data: &'a [u8],
    /// Bytes from one line to the next (at least the visible width).
    pub stride: usize,
}

/// One plane of a raw picture that may be drawn on (the overlay).
#[derive(Debug)]
pub struct PlaneMut<'a> {
    /// The plane's bytes: `stride` bytes for each line.
    pub data: &'a mut [u8],
    /// Bytes from one line to the next (at least the visible width).
    pub stride: usize,
}

/// The planes of a raw picture, in one of the layouts cameras deliver.
#[derive(Debug, Clone, Copy)]
pub enum Planes<P> {
    /// YUV 4:2:0, three planes (V4L2 `YU12`): the encoders' own layout.
    I420 {
        /// Luma, full size.
        y: P,
        /// Cb, half width and height.
        u: P,
        /// Cr, half width and height.
        v: P,
    },
    /// YUV 4:2:0, luma then interleaved CbCr (V4L2 `NV12`).
    #[cfg_attr(
        not(feature = "v4l2"),
        allow(dead_code, reason = "only cameras deliver it")
    )]
    Nv12 {
        /// Luma, full size.
        y: P,
        /// Cb and Cr interleaved, half height.
        uv: P,
    },
    /// YUV 4:2:2 packed Y0 Cb Y1 Cr (V4L2 `YUYV`), most USB webcams' raw format.
    #[cfg_attr(
        not(feature = "v4l2"),
        allow(dead_code, reason = "only cameras deliver it")
    )]
    Yuyv(P),
    /// Packed 8-bit R, G, B (V4L2 `RGB3`, libcamera `BGR888`): test
    /// cameras (vimc) and ISPs' RGB outputs.
    #[cfg_attr(
        not(any(feature = "libcamera", feature = "gstreamer")),
        allow(dead_code, reason = "only libcamera cameras deliver it")
    )]
    Rgb24(P),
    /// Packed 8-bit B, G, R (V4L2 `BGR3`, libcamera `RGB888`).
    #[cfg_attr(
        not(any(feature = "libcamera", feature = "gstreamer")),
        allow(dead_code, reason = "only libcamera cameras deliver it")
    )]
    Bgr24(P),
}

/// A raw picture's pixels, to read.
pub type Pixels<'a> = Planes<Plane<'a>>;

/// A raw picture's pixels, to draw on before anything reads them.
pub type Canvas<'a> = Planes<PlaneMut<'a>>;

impl<'a> Canvas<'a> {
    /// The same pixels, to read.
    pub fn into_pixels(self) -> Pixels<'a> {
        let read = |p: PlaneMut<'a>| Plane {
            data: p.data,
            stride: p.stride,
        };
        match self {
            Self::I420 { y, u, v } => Pixels::I420 {
                y: read(y),
                u: read(u),
                v: read(v),
            },
            Self::Nv12 { y, uv } => Pixels::Nv12 {
                y: read(y),
                uv: read(uv),
            },
            Self::Yuyv(p) => Pixels::Yuyv(read(p)),
            Self::Rgb24(p) => Pixels::Rgb24(read(p)),
            Self::Bgr24(p) => Pixels::Bgr24(read(p)),
        }
    }
}

/// Keeps a camera buffer away from the camera while an encoder reads it in
/// place: the source reuses a buffer only when no clone of its lease is left.
#[derive(Debug, Clone, Default)]
#[cfg_attr(
    not(feature = "v4l2"),
    allow(dead_code, reason = "only V4L2 cameras lend buffers")
)]
pub struct Lease(Arc<()>);

#[cfg_attr(
    not(feature = "v4l2"),
    allow(dead_code, reason = "only V4L2 cameras lend buffers")
)]
impl Lease {
    /// True while a clone of this lease is held elsewhere.
    pub fn is_lent(&self) -> bool {
        Arc::strong_count(&self.0) > 1
    }
}

/// A raw frame's memory shared as a DMABUF, for encoders that can read it
/// where the camera wrote it (zero-copy).
#[derive(Debug, Clone)]
#[cfg_attr(
    not(feature = "v4l2"),
    allow(dead_code, reason = "read by the V4L2 encoder")
)]
pub struct DmaBuf<'a> {
    /// The DMABUF.
    pub fd: BorrowedFd<'a>,
    /// The camera's number for this buffer (one DMABUF per number).
    pub index: u32,
    /// The buffer's size in bytes.
    pub length: usize,
    /// Bytes holding the picture.
    pub used: usize,
    /// Clone it to keep the camera from reusing the buffer.
    pub lease: Lease,
}

/// A raw frame, borrowed from its source until the next frame is asked for.
#[derive(Debug)]
pub struct RawFrame<'a> {
    /// The pixels.
    pub pixels: Pixels<'a>,
    /// The same memory as a DMABUF, when the source can share it.
    #[cfg_attr(
        not(feature = "v4l2"),
        allow(dead_code, reason = "read by the V4L2 encoder")
    )]
    pub dmabuf: Option<DmaBuf<'a>>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Capture time.
    pub timestamp: Instant,
}

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
