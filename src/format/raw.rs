//! Raw pictures: a frame's planes, read-only (`Pixels`) or writable
//! (`Canvas`, what the overlay draws on), the lease that holds a camera's
//! buffer while an encoder reads it, and the DMABUF an encoder can import.

use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::Instant;

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

impl<P> Planes<P> {
    /// The layout's name, as V4L2 and GStreamer call it.
    pub fn layout(&self) -> &'static str {
        match self {
            Self::I420 { .. } => "I420",
            Self::Nv12 { .. } => "NV12",
            Self::Yuyv(_) => "YUYV",
            Self::Rgb24(_) => "RGB",
            Self::Bgr24(_) => "BGR",
        }
    }
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
