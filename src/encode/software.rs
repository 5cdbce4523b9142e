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
use crate::h264::{AccessUnit, split_annexb};
use crate::source::RawFrame;

/// openh264, (re)configured lazily on the next frame after a setting changes.
pub struct SoftwareEncoder {
    framerate: u32,
    bitrate: u32,
    keyframe_interval: u32,
    encoder: Option<H264Encoder>,
    force_idr: bool,
    out: Vec<u8>,
}

impl SoftwareEncoder {
    /// A software encoder for `framerate` frames per second.
    pub fn new(framerate: u32) -> Self {
        Self {
            framerate,
            bitrate: 1_000_000,
            keyframe_interval: 30,
            encoder: None,
            force_idr: false,
            out: Vec::new(),
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

impl Encoder for SoftwareEncoder {
    fn name(&self) -> &'static str {
        "software"
    }

    fn encode(&mut self, frame: &RawFrame<'_>) -> Result<Option<AccessUnit>, EncodeError> {
        let (w, h) = (frame.width as usize, frame.height as usize);
        let yuv = YUVSlices::new((frame.y, frame.u, frame.v), (w, h), (w, w / 2, w / 2));
        let force = std::mem::take(&mut self.force_idr);
        let mut out = std::mem::take(&mut self.out);
        let encoder = self.encoder()?;
        if force {
            encoder.force_intra_frame();
        }
        let bitstream = encoder
            .encode(&yuv)
            .map_err(|e| EncodeError::Failed(e.to_string()))?;
        if matches!(bitstream.frame_type(), FrameType::Skip | FrameType::Invalid) {
            return Ok(None);
        }
        out.clear();
        bitstream.write_vec(&mut out);
        let nals = split_annexb(&Bytes::copy_from_slice(&out));
        self.out = out;
        Ok((!nals.is_empty()).then(|| AccessUnit::new(nals, frame.timestamp)))
    }

    fn request_keyframe(&mut self) {
        self.force_idr = true;
    }

    fn set_bitrate(&mut self, bps: u32) -> Result<(), EncodeError> {
        self.bitrate = bps;
        self.encoder = None;
        Ok(())
    }

    fn set_keyframe_interval(&mut self, frames: u32) -> Result<(), EncodeError> {
        self.keyframe_interval = frames;
        self.encoder = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::VideoConfig;
    use crate::source::testpattern::TestPattern;
    use crate::source::{Frame, Source};

    fn encode_frames(
        enc: &mut SoftwareEncoder,
        n: usize,
        keyframe_at: Option<usize>,
    ) -> Vec<AccessUnit> {
        let video = VideoConfig {
            width: 320,
            height: 240,
            framerate: 1000,
            ..VideoConfig::default()
        };
        let mut tp = TestPattern::new(&video);
        let mut out = Vec::new();
        for i in 0..n {
            if Some(i) == keyframe_at {
                enc.request_keyframe();
            }
            let Frame::Raw(frame) = tp.next_frame().unwrap() else {
                panic!("raw")
            };
            out.extend(enc.encode(&frame).unwrap());
        }
        out
    }

    #[test]
    fn idr_every_interval_with_parameter_sets() {
        let mut enc = SoftwareEncoder::new(30);
        enc.set_keyframe_interval(10).unwrap();
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
    fn keyframe_on_request() {
        let mut enc = SoftwareEncoder::new(30);
        enc.set_keyframe_interval(100).unwrap();
        let aus = encode_frames(&mut enc, 10, Some(6));
        let idrs: Vec<usize> = (0..aus.len()).filter(|&i| aus[i].is_idr).collect();
        assert_eq!(idrs, vec![0, 6]);
    }
}
