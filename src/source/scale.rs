//! Smaller copies of raw pictures (the substream): each output pixel is the
//! average of the source pixels it covers (an area filter), which keeps
//! fine detail from aliasing into moiré the way picking pixels would. By
//! hand: a plane at a time it is a few lines, and no well-kept crate does
//! strided 8-bit planes without pulling in an image library.

use super::i420;
use crate::format::raw::{Pixels, Plane, RawFrame};

/// Scales raw frames of any layout to tightly packed I420 of one size,
/// keeping its buffers between frames.
#[derive(Debug, Default)]
pub struct Scaler {
    /// The source converted to I420, when it is not I420 already.
    converted: Vec<u8>,
    /// The scaled picture.
    scaled: Vec<u8>,
    /// Per source column, the running sum of the rows one output row covers.
    sums: Vec<u32>,
}

impl Scaler {
    /// `frame` scaled to `width` x `height` (even, at most the frame's
    /// size), as a raw I420 frame with the same capture time.
    pub fn scale<'a>(&'a mut self, frame: &RawFrame<'_>, width: u32, height: u32) -> RawFrame<'a> {
        let (sw, sh) = (frame.width as usize, frame.height as usize);
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        self.scaled.resize(w * h + 2 * cw * ch, 0);
        let (y, u, v) = i420::planes(frame, &mut self.converted);
        let (dy, chroma) = self.scaled.split_at_mut(w * h);
        let (du, dv) = chroma.split_at_mut(cw * ch);
        area(y, sw, sh, dy, w, h, &mut self.sums);
        let (scw, sch) = (sw.div_ceil(2), sh.div_ceil(2));
        area(u, scw, sch, du, cw, ch, &mut self.sums);
        area(v, scw, sch, dv, cw, ch, &mut self.sums);
        let (dy, chroma) = self.scaled.split_at(w * h);
        let (du, dv) = chroma.split_at(cw * ch);
        RawFrame {
            pixels: Pixels::I420 {
                y: Plane {
                    data: dy,
                    stride: w,
                },
                u: Plane {
                    data: du,
                    stride: cw,
                },
                v: Plane {
                    data: dv,
                    stride: cw,
                },
            },
            dmabuf: None,
            width,
            height,
            timestamp: frame.timestamp,
        }
    }
}

impl Scaler {
    /// The luma of `frame` scaled to `width` x `height` (at most the
    /// frame's size), tightly packed: what motion detection looks at. A
    /// frame with a luma plane of its own (I420, NV12) is read in place.
    pub fn luma(&mut self, frame: &RawFrame<'_>, width: u32, height: u32) -> &[u8] {
        let (sw, sh) = (frame.width as usize, frame.height as usize);
        let (w, h) = (width as usize, height as usize);
        self.scaled.resize(w * h, 0);
        let y = match frame.pixels {
            Pixels::I420 { y, .. } | Pixels::Nv12 { y, .. } => y,
            _ => i420::planes(frame, &mut self.converted).0,
        };
        area(y, sw, sh, &mut self.scaled[..w * h], w, h, &mut self.sums);
        &self.scaled[..w * h]
    }
}

/// Scales one `sw` x `sh` plane to `dw` x `dh` (no larger) into `dst`
/// (tightly packed), each output pixel the rounded mean of the source
/// pixels it covers. Rows missing from `src` count as black.
fn area(
    src: Plane<'_>,
    sw: usize,
    sh: usize,
    dst: &mut [u8],
    dw: usize,
    dh: usize,
    sums: &mut Vec<u32>,
) {
    if sw == 2 * dw && sh == 2 * dh {
        return halve(src, sw, dst, dw, dh);
    }
    // Each output column's source columns; an output pixel's mean is its
    // total times 2^32 / its pixel count, rounded up (a multiplication
    // per pixel, not a division; exact to the rounding for any picture
    // streamcam takes).
    let columns: Vec<(usize, usize)> = (0..dw)
        .map(|ox| (ox * sw / dw, ((ox + 1) * sw / dw).max(ox * sw / dw + 1)))
        .collect();
    for (oy, out) in dst.chunks_exact_mut(dw).take(dh).enumerate() {
        let (y0, y1) = (oy * sh / dh, ((oy + 1) * sh / dh).max(oy * sh / dh + 1));
        sums.clear();
        sums.resize(sw, 0);
        for row in y0..y1 {
            if let Some(line) = src.data.get(row * src.stride..row * src.stride + sw) {
                for (sum, &p) in sums.iter_mut().zip(line) {
                    *sum += u32::from(p);
                }
            }
        }
        let rows = (y1 - y0) as u64;
        for (px, &(x0, x1)) in out.iter_mut().zip(&columns) {
            let reciprocal = (1u64 << 32).div_ceil(rows * (x1 - x0) as u64);
            let total: u32 = sums[x0..x1].iter().sum();
            *px = ((u64::from(total) * reciprocal + (1 << 31)) >> 32).min(255) as u8;
        }
    }
}

/// [`area`] for the common exact half size: each output pixel the
/// rounded mean of a 2x2 block (a loop the compiler vectorises).
fn halve(src: Plane<'_>, sw: usize, dst: &mut [u8], dw: usize, dh: usize) {
    for (oy, out) in dst.chunks_exact_mut(dw).take(dh).enumerate() {
        let line = |row: usize| src.data.get(row * src.stride..row * src.stride + sw);
        let (Some(top), Some(bottom)) = (line(2 * oy), line(2 * oy + 1)) else {
            out.fill(0);
            continue;
        };
        let (top, bottom) = (&top[..2 * dw], &bottom[..2 * dw]);
        for (x, px) in out.iter_mut().enumerate() {
            let sum = u16::from(top[2 * x])
                + u16::from(top[2 * x + 1])
                + u16::from(bottom[2 * x])
                + u16::from(bottom[2 * x + 1]);
            *px = ((sum + 2) >> 2) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn i420_frame<'a>(y: &'a [u8], u: &'a [u8], v: &'a [u8], w: u32, h: u32) -> RawFrame<'a> {
        let cw = (w as usize).div_ceil(2);
        RawFrame {
            pixels: Pixels::I420 {
                y: Plane {
                    data: y,
                    stride: w as usize,
                },
                u: Plane {
                    data: u,
                    stride: cw,
                },
                v: Plane {
                    data: v,
                    stride: cw,
                },
            },
            dmabuf: None,
            width: w,
            height: h,
            timestamp: Instant::now(),
        }
    }

    #[test]
    fn the_luma_alone_is_the_scaled_pictures_luma() {
        let (w, h) = (64u32, 48u32);
        let y: Vec<u8> = (0..w * h).map(|i| (i * 7 % 251) as u8).collect();
        let (u, v) = (vec![90u8; 32 * 24], vec![160u8; 32 * 24]);
        let frame = i420_frame(&y, &u, &v, w, h);
        let mut scaler = Scaler::default();
        let Pixels::I420 { y: scaled, .. } = scaler.scale(&frame, 8, 6).pixels else {
            panic!("I420 out")
        };
        let expected = scaled.data[..48].to_vec();
        assert_eq!(Scaler::default().luma(&frame, 8, 6), expected.as_slice());
        // From YUYV: its Y samples, the same picture.
        let yuyv: Vec<u8> = y
            .chunks(2)
            .enumerate()
            .flat_map(|(i, p)| [p[0], u[i % u.len()], p[1], v[i % v.len()]])
            .collect();
        let packed = RawFrame {
            pixels: Pixels::Yuyv(Plane {
                data: &yuyv,
                stride: 2 * w as usize,
            }),
            ..frame
        };
        assert_eq!(Scaler::default().luma(&packed, 8, 6), expected.as_slice());
    }

    #[test]
    fn halving_averages_each_two_by_two_block() {
        // 4x2 luma: two 2x2 blocks, 10/20/30/40 and 0/0/255/255.
        let y = [10, 20, 0, 0, 30, 40, 255, 255];
        let (u, v) = ([100, 200], [50, 60]);
        let frame = i420_frame(&y, &u, &v, 4, 2);
        let mut scaler = Scaler::default();
        let small = scaler.scale(&frame, 2, 1);
        assert_eq!((small.width, small.height), (2, 1));
        assert_eq!(small.timestamp, frame.timestamp);
        let Pixels::I420 { y, u, v } = small.pixels else {
            panic!("I420 out")
        };
        assert_eq!(y.data, [25, 128]);
        // 2x1 chroma to 1x1: the mean of the two.
        assert_eq!((u.data, v.data), (&[150][..], &[55][..]));
    }

    #[test]
    fn thirds_and_odd_ratios_cover_every_source_pixel_once() {
        // 1280x720 to 640x360 and 426x240: a flat picture stays flat, and
        // a picture of two halves keeps its edge in the middle.
        let (w, h) = (1280usize, 720usize);
        let y: Vec<u8> = (0..w * h)
            .map(|i| if i % w < w / 2 { 16 } else { 235 })
            .collect();
        let c = vec![128; (w / 2) * (h / 2)];
        let frame = i420_frame(&y, &c, &c, w as u32, h as u32);
        let mut scaler = Scaler::default();
        for (dw, dh) in [(640usize, 360usize), (426, 240), (2, 2)] {
            let small = scaler.scale(&frame, dw as u32, dh as u32);
            let Pixels::I420 { y, u, .. } = small.pixels else {
                panic!("I420 out")
            };
            assert_eq!(y.data.len(), dw * dh);
            assert!(u.data.iter().all(|&c| c == 128));
            for row in y.data.chunks(dw) {
                assert_eq!(row[0], 16, "{dw}x{dh}");
                assert_eq!(row[dw - 1], 235, "{dw}x{dh}");
                assert_eq!((row[dw / 2 - 1], row[dw / 2]), (16, 235), "{dw}x{dh}");
            }
        }
    }

    #[test]
    fn other_layouts_are_converted_first() {
        // A 4x2 YUYV picture, all one colour.
        let yuyv = [100u8, 90, 100, 200].repeat(4);
        let frame = RawFrame {
            pixels: Pixels::Yuyv(Plane {
                data: &yuyv,
                stride: 8,
            }),
            dmabuf: None,
            width: 4,
            height: 2,
            timestamp: Instant::now(),
        };
        let mut scaler = Scaler::default();
        let Pixels::I420 { y, u, v } = scaler.scale(&frame, 2, 2).pixels else {
            panic!("I420 out")
        };
        assert_eq!(
            (y.data, u.data, v.data),
            (&[100; 4][..], &[90][..], &[200][..])
        );
    }
}
