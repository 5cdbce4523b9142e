//! The software H.264 encoder: Cisco's openh264 (built from source by the
//! `openh264` crate). For the test pattern and machines without a hardware
//! encoder. SPS and PPS are emitted before every IDR.

use bytes::Bytes;
use openh264::OpenH264API;
use openh264::encoder::{
    BitRate, Complexity, Encoder as H264Encoder, EncoderConfig, FrameRate, FrameType,
    IntraFramePeriod, Profile, RateControlMode, SpsPpsStrategy, UsageType,
};
use openh264::formats::YUVSlices;

use super::encoder::{EncodeError, Encoder};
use crate::config::{H264Profile, VideoConfig};
use crate::format::h264::{AccessUnit, split_annexb};
use crate::format::raw::{Plane, RawFrame};
use crate::source::i420;

/// openh264, configured from the video settings on the first frame.
pub struct SoftwareEncoder {
    profile: Option<H264Profile>,
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
            profile: video.profile,
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
            let config = match self.profile {
                None | Some(H264Profile::Baseline) => config,
                Some(H264Profile::Main) => config.profile(Profile::Main),
                Some(H264Profile::High) => config.profile(Profile::High),
            };
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
        let (y, u, v) = i420::planes(frame, &mut i420);
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
    use crate::format::raw::Pixels;
    use crate::source::frame::{Frame, Source};
    use crate::source::testpattern::TestPattern;

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
    fn the_profile_asked_for_is_the_profile_in_the_sps() {
        for (profile, idc) in [
            (None, 66),
            (Some(H264Profile::Baseline), 66),
            (Some(H264Profile::Main), 77),
            (Some(H264Profile::High), 100),
        ] {
            let mut enc = SoftwareEncoder::new(&VideoConfig {
                profile,
                ..VideoConfig::default()
            });
            let aus = encode_frames(&mut enc, 1, None);
            let ps = aus[0].parameter_sets().expect("SPS/PPS");
            assert_eq!(ps.sps[1], idc, "{profile:?}");
        }
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
