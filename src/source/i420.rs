//! Raw pictures in any of the cameras' layouts to tightly packed I420
//! (YUV 4:2:0, BT.601 limited range): what the software encoder and the
//! snapshot encoder read.

use crate::format::raw::{Pixels, Plane, RawFrame};

/// The I420 planes of `frame`: its own when it is I420 already, else its
/// pixels converted into `scratch`.
pub fn planes<'a>(
    frame: &RawFrame<'a>,
    scratch: &'a mut Vec<u8>,
) -> (Plane<'a>, Plane<'a>, Plane<'a>) {
    let (w, h) = (frame.width as usize, frame.height as usize);
    match frame.pixels {
        Pixels::I420 { y, u, v } => (y, u, v),
        Pixels::Nv12 { y, uv } => {
            nv12_to_i420(y, uv, w, h, scratch);
            tight(scratch, w, h)
        }
        Pixels::Yuyv(p) => {
            yuyv_to_i420(p, w, h, scratch);
            tight(scratch, w, h)
        }
        Pixels::Rgb24(p) => {
            rgb_to_i420(p, RgbOrder { r: 0, g: 1, b: 2 }, w, h, scratch);
            tight(scratch, w, h)
        }
        Pixels::Bgr24(p) => {
            rgb_to_i420(p, RgbOrder { r: 2, g: 1, b: 0 }, w, h, scratch);
            tight(scratch, w, h)
        }
    }
}

/// The planes of a tightly packed I420 picture in `buf`.
fn tight(buf: &[u8], w: usize, h: usize) -> (Plane<'_>, Plane<'_>, Plane<'_>) {
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let (y, chroma) = buf.split_at(w * h);
    let (u, v) = chroma.split_at(cw * ch);
    (
        Plane { data: y, stride: w },
        Plane {
            data: u,
            stride: cw,
        },
        Plane {
            data: v,
            stride: cw,
        },
    )
}

/// NV12 (luma + interleaved CbCr) to tightly packed I420.
fn nv12_to_i420(y: Plane<'_>, uv: Plane<'_>, w: usize, h: usize, out: &mut Vec<u8>) {
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    out.clear();
    out.reserve(w * h + 2 * cw * ch);
    for line in y.data.chunks(y.stride).take(h) {
        out.extend_from_slice(&line[..w.min(line.len())]);
    }
    out.resize(w * h, 16);
    let lines = || uv.data.chunks(uv.stride).take(ch);
    for pick in [0, 1] {
        for line in lines() {
            out.extend(line.iter().skip(pick).step_by(2).take(cw));
        }
    }
    out.resize(w * h + 2 * cw * ch, 128);
}

/// YUYV (4:2:2 packed) to tightly packed I420: chroma of each pair of lines
/// averaged.
fn yuyv_to_i420(p: Plane<'_>, w: usize, h: usize, out: &mut Vec<u8>) {
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    out.clear();
    out.resize(w * h + 2 * cw * ch, 128);
    let (luma, chroma) = out.split_at_mut(w * h);
    let (u, v) = chroma.split_at_mut(cw * ch);
    let line = |r: usize| {
        let start = r.min(h - 1) * p.stride;
        let row = p.data.get(start..).unwrap_or(&[]);
        &row[..row.len().min(2 * w)]
    };
    for r in 0..h {
        for (dst, src) in luma[r * w..(r + 1) * w]
            .iter_mut()
            .zip(line(r).iter().step_by(2))
        {
            *dst = *src;
        }
    }
    for r in 0..ch {
        let (a, b) = (line(2 * r), line(2 * r + 1));
        for c in 0..cw {
            let avg = |i: usize| {
                let x = a.get(4 * c + i).copied().unwrap_or(128) as u16;
                let y = b.get(4 * c + i).copied().unwrap_or(128) as u16;
                (x + y).div_ceil(2) as u8
            };
            u[r * cw + c] = avg(1);
            v[r * cw + c] = avg(3);
        }
    }
}

/// Where R, G and B sit in a packed 24-bit pixel.
#[derive(Debug, Clone, Copy)]
struct RgbOrder {
    r: usize,
    g: usize,
    b: usize,
}

/// Packed RGB to tightly packed I420 (BT.601, limited range: what H.264
/// decoders assume when the stream does not say); chroma from each 2x2
/// block's average colour.
fn rgb_to_i420(p: Plane<'_>, order: RgbOrder, w: usize, h: usize, out: &mut Vec<u8>) {
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    out.clear();
    out.resize(w * h + 2 * cw * ch, 128);
    let (luma, chroma) = out.split_at_mut(w * h);
    let (u, v) = chroma.split_at_mut(cw * ch);
    let pixel = |x: usize, y: usize| -> [i32; 3] {
        let at = y.min(h - 1) * p.stride + 3 * x.min(w - 1);
        match p.data.get(at..at + 3) {
            Some(px) => [px[order.r], px[order.g], px[order.b]].map(i32::from),
            None => [0; 3],
        }
    };
    let clamp = |x: i32| x.clamp(0, 255) as u8;
    for y in 0..h {
        for x in 0..w {
            let [r, g, b] = pixel(x, y);
            luma[y * w + x] = clamp(16 + ((66 * r + 129 * g + 25 * b + 128) >> 8));
        }
    }
    for y in 0..ch {
        for x in 0..cw {
            let mut sum = [0i32; 3];
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let px = pixel(2 * x + dx, 2 * y + dy);
                for (s, c) in sum.iter_mut().zip(px) {
                    *s += c;
                }
            }
            let [r, g, b] = sum.map(|s| (s + 2) / 4);
            u[y * cw + x] = clamp(128 + ((-38 * r - 74 * g + 112 * b + 128) >> 8));
            v[y * cw + x] = clamp(128 + ((112 * r - 94 * g - 18 * b + 128) >> 8));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nv12_and_yuyv_become_i420() {
        // 4x2 picture; luma 0..8, chroma (Cb, Cr) = (100, 200), (110, 210).
        let luma: Vec<u8> = (0..8).collect();
        let mut padded = Vec::new();
        for line in luma.chunks(4) {
            padded.extend_from_slice(line);
            padded.extend_from_slice(&[0xee; 4]); // stride 8
        }
        let uv = [100, 200, 110, 210, 0xee, 0xee, 0xee, 0xee];
        let mut out = Vec::new();
        nv12_to_i420(
            Plane {
                data: &padded,
                stride: 8,
            },
            Plane {
                data: &uv,
                stride: 8,
            },
            4,
            2,
            &mut out,
        );
        assert_eq!(out, [0, 1, 2, 3, 4, 5, 6, 7, 100, 110, 200, 210]);

        // The same picture as YUYV, the second line's chroma +2.
        let yuyv = [
            0, 100, 1, 200, 2, 110, 3, 210, //
            4, 102, 5, 202, 6, 112, 7, 212,
        ];
        yuyv_to_i420(
            Plane {
                data: &yuyv,
                stride: 8,
            },
            4,
            2,
            &mut out,
        );
        assert_eq!(out, [0, 1, 2, 3, 4, 5, 6, 7, 101, 111, 201, 211]);
    }

    #[test]
    fn rgb_becomes_i420() {
        // 2x2 picture: white, black / red, blue; stride 8 (2 bytes padding).
        let rgb = [
            255, 255, 255, 0, 0, 0, 0xee, 0xee, //
            255, 0, 0, 0, 0, 255, 0xee, 0xee,
        ];
        let plane = Plane {
            data: &rgb,
            stride: 8,
        };
        let mut out = Vec::new();
        rgb_to_i420(plane, RgbOrder { r: 0, g: 1, b: 2 }, 2, 2, &mut out);
        // BT.601 limited range: white 235, black 16, red 82, blue 41; the
        // block's average colour (128, 64, 128) gives Cb 147, Cr 152.
        assert_eq!(out, [235, 16, 82, 41, 147, 152]);
        let bgr: Vec<u8> = rgb
            .chunks(8)
            .flat_map(|line| {
                let mut l = line.to_vec();
                l[..6].chunks_mut(3).for_each(|px| px.reverse());
                l
            })
            .collect();
        let mut out_bgr = Vec::new();
        let plane = Plane {
            data: &bgr,
            stride: 8,
        };
        rgb_to_i420(plane, RgbOrder { r: 2, g: 1, b: 0 }, 2, 2, &mut out_bgr);
        assert_eq!(out_bgr, out);
    }
}
