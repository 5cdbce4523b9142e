//! What an encoder is told before it streams: the H.264 settings (bit
//! rate, profile, level, key-frame period, frame rate) or a still's JPEG
//! quality. Controls a driver lacks are logged and skipped.

use v4l2r::bindings;
use v4l2r::ioctl;

use crate::config::{H264Profile, VideoConfig};
use crate::v4l2::{Device, QueueType};

/// What an encoder is told before it streams.
pub trait Controls {
    /// Sets the controls on `device`, whose raw frames go to `output`.
    /// Controls a driver lacks are logged and skipped.
    fn apply(&self, device: &Device, output: QueueType);
}

/// JPEG quality (1 to 100), the one control a still encoder gets.
#[derive(Debug, Clone, Copy)]
pub struct JpegQuality(pub u8);

impl Controls for JpegQuality {
    fn apply(&self, device: &Device, _output: QueueType) {
        set_control(
            device,
            bindings::V4L2_CID_JPEG_COMPRESSION_QUALITY,
            i32::from(self.0),
            "JPEG quality",
        );
    }
}

/// H.264 encoder settings applied before streaming.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Target bit rate, bit/s.
    pub bitrate: u32,
    /// Frames between key frames.
    pub keyframe_interval: u32,
    /// Frames per second (rate control).
    pub framerate: u32,
    /// H.264 level for the picture size and rate.
    pub h264_level: Option<u32>,
    /// H.264 profile (`V4L2_MPEG_VIDEO_H264_PROFILE_*`).
    pub h264_profile: u32,
}

impl Settings {
    /// Settings for `video`'s rate and size.
    pub fn for_video(video: &VideoConfig) -> Self {
        let macroblocks_per_s = u64::from(video.width.div_ceil(16))
            * u64::from(video.height.div_ceil(16))
            * u64::from(video.framerate);
        // The lowest level whose macroblock rate fits (ITU-T H.264 table A-1).
        let level = match macroblocks_per_s {
            0..=108_000 => bindings::v4l2_mpeg_video_h264_level_V4L2_MPEG_VIDEO_H264_LEVEL_3_1,
            108_001..=216_000 => {
                bindings::v4l2_mpeg_video_h264_level_V4L2_MPEG_VIDEO_H264_LEVEL_3_2
            }
            216_001..=245_760 => {
                bindings::v4l2_mpeg_video_h264_level_V4L2_MPEG_VIDEO_H264_LEVEL_4_0
            }
            _ => bindings::v4l2_mpeg_video_h264_level_V4L2_MPEG_VIDEO_H264_LEVEL_4_2,
        };
        Self {
            bitrate: video.bitrate,
            keyframe_interval: video.keyframe_interval,
            framerate: video.framerate,
            h264_level: Some(level),
            h264_profile: match video.profile.unwrap_or(H264Profile::High) {
                H264Profile::Baseline => {
                    bindings::v4l2_mpeg_video_h264_profile_V4L2_MPEG_VIDEO_H264_PROFILE_CONSTRAINED_BASELINE
                }
                H264Profile::Main => bindings::v4l2_mpeg_video_h264_profile_V4L2_MPEG_VIDEO_H264_PROFILE_MAIN,
                H264Profile::High => bindings::v4l2_mpeg_video_h264_profile_V4L2_MPEG_VIDEO_H264_PROFILE_HIGH,
            },
        }
    }
}

impl Controls for Settings {
    /// Applies the settings (as rpicam-apps does for bcm2835-codec: VBR at
    /// the bit rate, the profile (High unless set), the level, the I-frame period, SPS/PPS
    /// repeated before every IDR) and the frame rate.
    fn apply(&self, device: &Device, output: QueueType) {
        let bitrate = clamp_control(
            device,
            bindings::V4L2_CID_MPEG_VIDEO_BITRATE,
            self.bitrate as i32,
            "bit rate",
        );
        set_control(
            device,
            bindings::V4L2_CID_MPEG_VIDEO_BITRATE_MODE,
            bindings::v4l2_mpeg_video_bitrate_mode_V4L2_MPEG_VIDEO_BITRATE_MODE_VBR as i32,
            "bit rate mode (VBR)",
        );
        set_control(
            device,
            bindings::V4L2_CID_MPEG_VIDEO_BITRATE,
            bitrate,
            "bit rate",
        );
        if let Some(level) = self.h264_level {
            set_control(
                device,
                bindings::V4L2_CID_MPEG_VIDEO_H264_PROFILE,
                self.h264_profile as i32,
                "H.264 profile",
            );
            set_control(
                device,
                bindings::V4L2_CID_MPEG_VIDEO_H264_LEVEL,
                level as i32,
                "H.264 level",
            );
            set_control(
                device,
                bindings::V4L2_CID_MPEG_VIDEO_H264_I_PERIOD,
                self.keyframe_interval as i32,
                "I-frame period",
            );
            set_control(
                device,
                bindings::V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER,
                1,
                "repeat SPS/PPS",
            );
        } else {
            set_control(
                device,
                bindings::V4L2_CID_MPEG_VIDEO_GOP_SIZE,
                self.keyframe_interval as i32,
                "GOP size",
            );
        }
        let mut parm = bindings::v4l2_streamparm {
            type_: output as u32,
            ..Default::default()
        };
        parm.parm.output.timeperframe = bindings::v4l2_fract {
            numerator: 1,
            denominator: self.framerate,
        };
        if let Err(e) = ioctl::s_parm::<_, bindings::v4l2_streamparm>(&device.fd(), parm) {
            tracing::debug!(
                "{}: cannot set the frame rate: {e}",
                device.path().display()
            );
        }
    }
}

/// `value` within the range the driver reports for control `id`, with a
/// log line if it had to move.
fn clamp_control(device: &Device, id: u32, value: i32, name: &str) -> i32 {
    let Ok(id_checked) = ioctl::CtrlId::new(id) else {
        return value;
    };
    match ioctl::queryctrl::<bindings::v4l2_queryctrl>(
        &device.fd(),
        id_checked,
        ioctl::QueryCtrlFlags::empty(),
    ) {
        Ok(q) if value < q.minimum || value > q.maximum => {
            let clamped = value.clamp(q.minimum, q.maximum);
            tracing::warn!(
                "{}: {name} {value} is outside the driver's range {}..={}; using {clamped}",
                device.path().display(),
                q.minimum,
                q.maximum
            );
            clamped
        }
        _ => value,
    }
}

/// Sets control `id` to `value` on `device`; a driver that lacks it or
/// refuses the value is logged (at debug) and skipped.
pub(super) fn set_control(device: &Device, id: u32, value: i32, name: &str) {
    if let Err(e) = ioctl::s_ctrl(&device.fd(), id, value) {
        tracing::debug!(
            "{} ({}): cannot set {name} to {value}: {e}",
            device.path().display(),
            device.driver()
        );
    }
}
