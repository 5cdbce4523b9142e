//! The software H.264 encoder: Cisco's openh264 (built from source by the
//! `openh264` crate). For the test pattern and machines without a hardware
//! encoder. SPS and PPS are emitted before every IDR.

use bytes::Bytes;
use openh264::OpenH264API;
use openh264::encoder::{
    BitRate, Complexity, Encoder as H264Encoder, EncoderConfig, FrameRate, FrameType,
    IntraFramePeriod, RateControlMode, SpsPpsStrategy, UsageType,
};
use openh264::formats::YUVSlices;

use super::{EncodeError, Encoder};
use crate::config::VideoConfig;
use crate::h264::{AccessUnit, split_annexb};
use crate::source::{Pixels, Plane, RawFrame};

/// openh264, configured from the video settings on the first frame.
pub struct SoftwareEncoder {
    framerate: u32,
    bitrate: u32,
    keyframe_interval: u32,
    encoder: Option<H264Encoder>,
    force_idr: bool,
    out: Vec<u8>,
    /// Frames in other layouts, converted to I420.
    i420: Vec<u8>,
}

impl SoftwareEncoder {
    /// A software encoder for `video`'s frame rate, bit rate and key-frame
    /// interval.
    pub fn new(video: &VideoConfig) -> Self {
        Self {
            framerate: video.framerate,
            bitrate: video.bitrate,
            keyframe_interval: video.keyframe_interval,
            encoder: None,
            force_idr: false,
            out: Vec::new(),
            i420: Vec::new(),
        }
    }

    fn encoder(&mut self) -> Result<&mut H264Encoder, EncodeError> {
        if self.encoder.is_none() {
            let config = EncoderConfig::new()
                .bitrate(BitRate::from_bps(self.bitrate))
                .max_frame_rate(FrameRate::from_hz(self.framerate as f32))
                .rate_control_mode(RateControlMode::Bitrate)
                .skip_frames(false)
                .usage_type(UsageType::CameraVideoRealTime)
                .complexity(Complexity::Low)
                .intra_frame_period(IntraFramePeriod::from_num_frames(self.keyframe_interval))
                .sps_pps_strategy(SpsPpsStrategy::ConstantId)
                .num_threads(1);
            let enc = H264Encoder::with_api_config(OpenH264API::from_source(), config)
                .map_err(|e| EncodeError::Failed(e.to_string()))?;
            self.encoder = Some(enc);
        }
        Ok(self.encoder.as_mut().expect("just created"))
    }
}

impl SoftwareEncoder {
    fn encode_yuv(
        &mut self,
        yuv: &YUVSlices<'_>,
        force: bool,
        out: &mut Vec<u8>,
        frame: &RawFrame<'_>,
    ) -> Result<Option<AccessUnit>, EncodeError> {
        let encoder = self.encoder()?;
        if force {
            encoder.force_intra_frame();
        }
        let bitstream = encoder
            .encode(yuv)
            .map_err(|e| EncodeError::Failed(e.to_string()))?;
        if matches!(bitstream.frame_type(), FrameType::Skip | FrameType::Invalid) {
            return Ok(None);
        }
        out.clear();
        bitstream.write_vec(out);
        let nals = split_annexb(&Bytes::copy_from_slice(out));
        Ok((!nals.is_empty()).then(|| AccessUnit::new(nals, frame.timestamp)))
    }
}

/// Refuses a plane too small for its picture (a driver's odd stride or
/// size) instead of letting the encoder read past it.
fn check_plane(name: &str, p: Plane<'_>, width: usize, lines: usize) -> Result<(), EncodeError> {
    let need = p.stride * lines.saturating_sub(1) + width;
    if p.stride < width || p.data.len() < need {
        return Err(EncodeError::Failed(format!(
            "{name} plane of {} bytes (stride {}) is too small for {width}x{lines}",
            p.data.len(),
            p.stride
        )));
    }
    Ok(())
}

/// The planes of a tightly packed I420 picture in `buf`.
fn tight_i420(buf: &[u8], w: usize, h: usize) -> (Plane<'_>, Plane<'_>, Plane<'_>) {
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

impl Encoder for SoftwareEncoder {
    fn name(&self) -> &'static str {
        "software"
    }

    fn encode(
        &mut self,
        frame: &RawFrame<'_>,
        aus: &mut Vec<AccessUnit>,
    ) -> Result<(), EncodeError> {
        let (w, h) = (frame.width as usize, frame.height as usize);
        let mut i420 = std::mem::take(&mut self.i420);
        let (y, u, v) = match frame.pixels {
            Pixels::I420 { y, u, v } => (y, u, v),
            Pixels::Nv12 { y, uv } => {
                nv12_to_i420(y, uv, w, h, &mut i420);
                tight_i420(&i420, w, h)
            }
            Pixels::Yuyv(p) => {
                yuyv_to_i420(p, w, h, &mut i420);
                tight_i420(&i420, w, h)
            }
            Pixels::Rgb24(p) | Pixels::Bgr24(p) => {
                check_plane("RGB", p, 3 * w, h)?;
                let order = match frame.pixels {
                    Pixels::Rgb24(_) => RgbOrder { r: 0, g: 1, b: 2 },
                    _ => RgbOrder { r: 2, g: 1, b: 0 },
                };
                rgb_to_i420(p, order, w, h, &mut i420);
                tight_i420(&i420, w, h)
            }
        };
        check_plane("Y", y, w, h)?;
        check_plane("U", u, w.div_ceil(2), h.div_ceil(2))?;
        check_plane("V", v, w.div_ceil(2), h.div_ceil(2))?;
        let yuv = YUVSlices::new(
            (y.data, u.data, v.data),
            (w, h),
            (y.stride, u.stride, v.stride),
        );
        let force = std::mem::take(&mut self.force_idr);
        let mut out = std::mem::take(&mut self.out);
        let result = self.encode_yuv(&yuv, force, &mut out, frame);
        self.out = out;
        self.i420 = i420;
        aus.extend(result?);
        Ok(())
    }

    fn request_keyframe(&mut self) {
        self.force_idr = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::testpattern::TestPattern;
    use crate::source::{Frame, Source};

    fn encode_frames(
        enc: &mut SoftwareEncoder,
        n: usize,
        keyframe_at: Option<usize>,
    ) -> Vec<AccessUnit> {
        let mut tp = TestPattern::unpaced(320, 240);
        let mut out = Vec::new();
        for i in 0..n {
            if Some(i) == keyframe_at {
                enc.request_keyframe();
            }
            let Frame::Raw(frame) = tp.next_frame().unwrap() else {
                panic!("raw")
            };
            enc.encode(&frame, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn idr_every_interval_with_parameter_sets() {
        let mut enc = SoftwareEncoder::new(&VideoConfig {
            keyframe_interval: 10,
            ..VideoConfig::default()
        });
        let aus = encode_frames(&mut enc, 25, None);
        assert_eq!(aus.len(), 25, "no skipped frames");
        let idrs: Vec<usize> = (0..aus.len()).filter(|&i| aus[i].is_idr).collect();
        assert_eq!(idrs, vec![0, 10, 20]);
        for &i in &idrs {
            let ps = aus[i].parameter_sets().expect("SPS/PPS before every IDR");
            assert_eq!((ps.width, ps.height), (320, 240));
        }
        assert!(!aus[5].has_parameter_sets());
    }

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

    #[test]
    fn a_short_plane_is_an_error_not_a_crash() {
        let mut enc = SoftwareEncoder::new(&VideoConfig::default());
        let small = [0u8; 10];
        let plane = Plane {
            data: &small,
            stride: 4,
        };
        let frame = RawFrame {
            pixels: Pixels::I420 {
                y: plane,
                u: plane,
                v: plane,
            },
            dmabuf: None,
            width: 64,
            height: 64,
            timestamp: std::time::Instant::now(),
        };
        let e = enc.encode(&frame, &mut Vec::new()).unwrap_err().to_string();
        assert!(e.contains("too small for 64x64"), "{e}");
    }

    #[test]
    fn keyframe_on_request() {
        let mut enc = SoftwareEncoder::new(&VideoConfig {
            keyframe_interval: 100,
            ..VideoConfig::default()
        });
        let aus = encode_frames(&mut enc, 10, Some(6));
        let idrs: Vec<usize> = (0..aus.len()).filter(|&i| aus[i].is_idr).collect();
        assert_eq!(idrs, vec![0, 6]);
    }
}
