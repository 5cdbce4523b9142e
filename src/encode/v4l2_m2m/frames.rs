//! How a raw frame reaches the OUTPUT queue: whether the encoder can read
//! a camera's buffer as it is, the copy into the encoder's own layout
//! otherwise, and a frame's V4L2 fourcc.

use crate::format::raw::{Pixels, Plane, RawFrame};
use crate::v4l2::{Format, PixelFormat, fourcc};

/// Whether the encoder can read `frame`'s buffer as it is: same line
/// stride and plane layout as the raw format it asked for.
pub(super) fn importable(frame: &RawFrame<'_>, raw: &Format) -> Result<(), String> {
    let stride = raw.plane_fmt.first().map_or(0, |p| p.bytesperline) as usize;
    let camera = match frame.pixels {
        Pixels::I420 { y, .. }
        | Pixels::Nv12 { y, .. }
        | Pixels::Yuyv(y)
        | Pixels::Rgb24(y)
        | Pixels::Bgr24(y) => y.stride,
    };
    if camera != stride {
        return Err(format!(
            "the camera's lines are {camera} bytes apart, the encoder wants {stride}"
        ));
    }
    if raw.height != frame.height {
        return Err(format!(
            "the encoder pads the picture to {} lines, the camera gives {}",
            raw.height, frame.height
        ));
    }
    let wants = raw.plane_fmt.first().map_or(0, |p| p.sizeimage) as usize;
    if let Some(dmabuf) = frame.dmabuf.as_ref().filter(|d| d.length < wants) {
        return Err(format!(
            "the camera's buffers hold {} bytes, the encoder reads {wants}",
            dmabuf.length
        ));
    }
    Ok(())
}

/// Copies `frame` into `dst` laid out as `format` (the driver's strides and
/// plane offsets). Returns the bytes used.
pub(super) fn copy_frame(
    frame: &RawFrame<'_>,
    format: &Format,
    dst: &mut [u8],
) -> Result<usize, String> {
    let stride = format.plane_fmt.first().map_or(0, |p| p.bytesperline) as usize;
    let (w, h) = (frame.width as usize, frame.height as usize);
    let lines = format.height as usize;
    let capacity = dst.len();
    let mut copy = |src: Plane<'_>, offset: usize, dst_stride: usize, width: usize, rows: usize| {
        for r in 0..rows {
            let from = src
                .data
                .get(r * src.stride..r * src.stride + width)
                .ok_or_else(|| format!("the frame's plane is too short for {w}x{h}"))?;
            let at = offset + r * dst_stride;
            dst.get_mut(at..at + width)
                .ok_or_else(|| format!("the encoder's buffer ({capacity} bytes) is too small"))?
                .copy_from_slice(from);
        }
        Ok::<(), String>(())
    };
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    match frame.pixels {
        Pixels::I420 { y, u, v } => {
            let cs = stride / 2;
            copy(y, 0, stride, w, h)?;
            copy(u, stride * lines, cs, cw, ch)?;
            copy(v, stride * lines + cs * lines.div_ceil(2), cs, cw, ch)?;
            Ok(stride * lines + 2 * cs * lines.div_ceil(2))
        }
        Pixels::Nv12 { y, uv } => {
            copy(y, 0, stride, w, h)?;
            copy(uv, stride * lines, stride, 2 * cw, ch)?;
            Ok(stride * lines + stride * lines.div_ceil(2))
        }
        Pixels::Yuyv(p) => {
            copy(p, 0, stride, 2 * w, h)?;
            Ok(stride * lines)
        }
        Pixels::Rgb24(p) | Pixels::Bgr24(p) => {
            copy(p, 0, stride, 3 * w, h)?;
            Ok(stride * lines)
        }
    }
}

/// The V4L2 fourcc of a frame's layout.
pub fn layout_of(pixels: &Pixels<'_>) -> PixelFormat {
    match pixels {
        Pixels::I420 { .. } => fourcc::YU12,
        Pixels::Nv12 { .. } => fourcc::NV12,
        Pixels::Yuyv(_) => fourcc::YUYV,
        Pixels::Rgb24(_) => fourcc::RGB3,
        Pixels::Bgr24(_) => fourcc::BGR3,
    }
}
