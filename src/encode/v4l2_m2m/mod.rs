//! V4L2 memory-to-memory stateful encoders: the Pi's `bcm2835-codec`, or any
//! driver with the same API. Raw frames go in on the OUTPUT queue, coded
//! pictures come out of the CAPTURE queue, and the two are not one-to-one:
//! the driver may drop a frame, or hand back the parameter sets in a buffer
//! of their own. Each side's buffers are tracked on their own; a frame's
//! capture time travels through the driver as the buffer timestamp.
//!
//! `codec`'s [`M2mCodec`] is the coded-format-independent part (the tests
//! drive it with vicodec's FWHT), over `frames` (how a raw frame reaches
//! the OUTPUT queue) and `controls` (what the encoder is told before it
//! streams); [`M2mH264Encoder`], here, turns its output into access units.

pub mod codec;
pub mod controls;
mod frames;

use std::time::Duration;

use v4l2r::bindings;

pub use codec::{CodedBuffer, CodedFormat, M2mCodec, find_encoder};
pub use controls::{JpegQuality, Settings};
use frames::layout_of;

use super::encoder::{EncodeError, Encoder};
use crate::config::VideoConfig;
use crate::format::h264::{self, AccessUnit};
use crate::format::raw::RawFrame;
use crate::v4l2::Device;

/// An H.264 encoder on a V4L2 memory-to-memory device, configured on the
/// first frame (its layout and size come from the camera).
pub struct M2mH264Encoder {
    settings: Settings,
    /// The device until the first frame, then the running codec.
    device: Option<Device>,
    codec: Option<M2mCodec>,
    /// Expected frame interval: how long to wait for a picture.
    frame_interval: Duration,
    force_keyframe: bool,
    /// Access units from the coded buffers.
    pictures: h264::PictureAssembler,
    coded: Vec<CodedBuffer>,
}

impl M2mH264Encoder {
    /// The Pi's encoder (or another V4L2 H.264 encoder), or why there is none.
    pub fn open(video: &VideoConfig) -> Result<Self, EncodeError> {
        let device = find_encoder(CodedFormat::H264).ok_or_else(|| {
            EncodeError::Unavailable(
                "no V4L2 H.264 encoder found (on a Pi 3/4: is bcm2835-codec loaded? `v4l2-ctl --list-devices`)"
                    .into(),
            )
        })?;
        tracing::info!(
            "encoder: {} ({}, driver {})",
            device.path().display(),
            device.card(),
            device.driver()
        );
        Ok(Self {
            settings: Settings::for_video(video),
            device: Some(device),
            codec: None,
            frame_interval: Duration::from_secs_f64(1.0 / f64::from(video.framerate.max(1))),
            force_keyframe: false,
            pictures: h264::PictureAssembler::default(),
            coded: Vec::new(),
        })
    }

    fn codec(&mut self, frame: &RawFrame<'_>) -> Result<&mut M2mCodec, EncodeError> {
        if self.codec.is_none() {
            let device = self
                .device
                .take()
                .ok_or_else(|| EncodeError::Failed("the encoder could not be restarted".into()))?;
            self.codec = Some(M2mCodec::start(
                device,
                CodedFormat::H264,
                frame,
                &self.settings,
                true,
            )?);
        }
        let codec = self.codec.as_mut().expect("just set");
        let raw = codec.raw_format();
        if raw.pixelformat != layout_of(&frame.pixels)
            || raw.width < frame.width
            || raw.height < frame.height
        {
            return Err(EncodeError::Failed(format!(
                "the camera's frames changed to {}x{} {}; restarting the encoder",
                frame.width,
                frame.height,
                layout_of(&frame.pixels)
            )));
        }
        Ok(codec)
    }
}

impl Encoder for M2mH264Encoder {
    fn name(&self) -> &'static str {
        "v4l2-m2m"
    }

    fn encode(
        &mut self,
        frame: &RawFrame<'_>,
        out: &mut Vec<AccessUnit>,
    ) -> Result<(), EncodeError> {
        let force = std::mem::take(&mut self.force_keyframe);
        let wait = self.frame_interval;
        let mut coded = std::mem::take(&mut self.coded);
        let codec = self.codec(frame)?;
        if force {
            codec.set_control(
                bindings::V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME,
                1,
                "force key frame",
            );
        }
        codec.push(frame)?;
        codec.pull(wait, &mut coded)?;
        for c in coded.drain(..) {
            out.extend(self.pictures.push(&c.data, c.timestamp));
        }
        self.coded = coded;
        Ok(())
    }

    fn request_keyframe(&mut self) {
        self.force_keyframe = true;
    }

    fn is_zero_copy(&self) -> bool {
        self.codec.as_ref().is_some_and(M2mCodec::is_zero_copy)
    }
}
