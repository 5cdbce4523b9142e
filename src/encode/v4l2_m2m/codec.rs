//! The queues and buffers of a streaming V4L2 memory-to-memory encoder,
//! whatever it codes: raw frames in on the OUTPUT queue (copied, or
//! imported as DMABUFs), coded pictures out of the CAPTURE queue, each with
//! the capture time of the frame it codes.

use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use bytes::Bytes;
use v4l2r::ioctl::{self, BufferFlags, QBufPlane, QBuffer, V4l2Buffer};
use v4l2r::memory::{DmaBufHandle, MmapHandle};

use super::controls::{Controls, set_control};
use super::frames::{copy_frame, importable, layout_of};
use crate::encode::encoder::EncodeError;
use crate::format::raw::{Lease, RawFrame};
use crate::source::frame::STALL_TIMEOUT;
use crate::v4l2::{Device, Format, MappedBuffer, PixelFormat, QueueType, V4l2Error, fourcc};

/// Raw frames the encoder may hold at once.
const OUTPUT_BUFFERS: u32 = 4;
/// Coded pictures the encoder may hold at once.
const CAPTURE_BUFFERS: u32 = 4;

/// What the encoder produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodedFormat {
    /// H.264, Annex B.
    H264,
    /// JPEG, one picture per frame (bcm2835-codec's `ENCODE_IMAGE` node).
    Jpeg,
    /// vicodec's FWHT (the kernel's test encoder).
    #[cfg_attr(not(test), allow(dead_code, reason = "the driver tests' format"))]
    Fwht,
}

impl CodedFormat {
    fn fourcc(self) -> PixelFormat {
        match self {
            Self::H264 => fourcc::H264,
            Self::Jpeg => fourcc::JPEG,
            Self::Fwht => fourcc::FWHT,
        }
    }
}

/// One coded picture as the driver returned it.
#[derive(Debug)]
pub struct CodedBuffer {
    /// The coded bytes.
    pub data: Bytes,
    /// Capture time of the frame it codes.
    pub timestamp: Instant,
}

/// The first memory-to-memory encoder producing `coded`, preferring the
/// Pi's bcm2835-codec (its node number is a module parameter).
pub fn find_encoder(coded: CodedFormat) -> Option<Device> {
    let mut found: Vec<Device> = crate::v4l2::nodes()
        .iter()
        .filter_map(|path| Device::open(path).ok())
        .filter(|d| {
            d.m2m_queues()
                .is_some_and(|(_, capture)| d.formats(capture).contains(&coded.fourcc()))
        })
        .collect();
    found.sort_by_key(|d| d.driver() != "bcm2835-codec");
    found.into_iter().next()
}

/// How raw frames reach the encoder.
enum Input {
    /// Copied into the encoder's own buffers.
    Copy(Vec<MappedBuffer>),
    /// The camera's buffers imported as DMABUFs (zero-copy): OUTPUT buffer
    /// N is camera buffer N, leased until the encoder gives it back.
    Import(Vec<Option<Lease>>),
}

/// The queues and buffers of an open, streaming encoder.
pub struct M2mCodec {
    device: Device,
    output: QueueType,
    capture: QueueType,
    /// The raw layout, picture size and strides the OUTPUT queue takes.
    raw: Format,
    /// How frames reach the OUTPUT queue.
    input: Input,
    /// OUTPUT buffers not held by the driver (copy path).
    output_free: Vec<u32>,
    capture_buffers: Vec<MappedBuffer>,
    /// Frames queued and not yet coded: (sequence number, capture time).
    in_flight: VecDeque<(u64, Instant)>,
    next_sequence: u64,
    /// When the driver last returned a coded picture (or we started).
    last_output: Instant,
    /// False if the encoder codes a larger picture than the frames' (it
    /// could not be cropped to them).
    exact: bool,
}

impl M2mCodec {
    /// Configures `device` to code frames like `first` into `coded`, with
    /// the controls `settings` asks for, and starts it. With `zero_copy`,
    /// frames that come as DMABUFs are imported where the encoder can read
    /// them as they are; otherwise they are copied.
    pub fn start(
        device: Device,
        coded: CodedFormat,
        first: &RawFrame<'_>,
        settings: &dyn Controls,
        zero_copy: bool,
    ) -> Result<Self, EncodeError> {
        let (width, height) = (first.width, first.height);
        let layout = layout_of(&first.pixels);
        let (output, capture) = device.m2m_queues().ok_or_else(|| {
            EncodeError::Unavailable(format!(
                "{} ({}) is not a memory-to-memory device",
                device.path().display(),
                device.card()
            ))
        })?;
        if !device.formats(output).contains(&layout) {
            let offered: Vec<String> = device
                .formats(output)
                .iter()
                .map(|f| f.to_string())
                .collect();
            return Err(EncodeError::Unavailable(format!(
                "{} ({}) takes {}, not the camera's {layout}",
                device.path().display(),
                device.driver(),
                offered.join(", ")
            )));
        }
        // The coded side first, then the raw side (the stateful encoder
        // interface's order); the driver sets the raw strides it needs.
        let coded_format = Format {
            width,
            height,
            pixelformat: coded.fourcc(),
            plane_fmt: vec![v4l2r::PlaneLayout {
                sizeimage: (width * height).max(256 * 1024),
                bytesperline: 0,
            }],
        };
        let _: Format = ioctl::s_fmt(&mut device.fd(), (capture, &coded_format)).map_err(|e| {
            device.ioctl_error(format!("setting the coded format {}", coded.fourcc()), e)
        })?;
        let wanted = Format {
            width,
            height,
            pixelformat: layout,
            ..Default::default()
        };
        let raw: Format = ioctl::s_fmt(&mut device.fd(), (output, &wanted)).map_err(|e| {
            device.error(
                format!("setting the raw format {width}x{height} {layout}"),
                e,
            )
        })?;
        if raw.pixelformat != layout || raw.width < width || raw.height < height {
            return Err(device
                .error(
                    format!("setting the raw format {width}x{height} {layout}"),
                    format!(
                        "the driver chose {}x{} {}",
                        raw.width, raw.height, raw.pixelformat
                    ),
                )
                .into());
        }
        let exact =
            (raw.width, raw.height) == (width, height) || crop(&device, width, height, &raw);
        settings.apply(&device, output);
        let import = match (&first.dmabuf, zero_copy) {
            (Some(dmabuf), true) => match importable(first, &raw) {
                Ok(()) => Some(dmabuf.index),
                Err(why) => {
                    tracing::info!(
                        "{}: copying frames to the encoder: {why}",
                        device.path().display()
                    );
                    None
                }
            },
            _ => None,
        };
        let (input, path) = match import {
            Some(_) => {
                // Room for every camera buffer number we may see.
                let slots = device.request_dmabufs(output, 32)?;
                (
                    Input::Import(vec![None; slots]),
                    "importing camera buffers (zero-copy)",
                )
            }
            None => (
                Input::Copy(device.map_buffers(output, OUTPUT_BUFFERS)?),
                "copying frames in",
            ),
        };
        let capture_buffers = device.map_buffers(capture, CAPTURE_BUFFERS)?;
        let codec = Self {
            output_free: match &input {
                Input::Copy(buffers) => (0..buffers.len() as u32).rev().collect(),
                Input::Import(_) => Vec::new(),
            },
            input,
            device,
            output,
            capture,
            raw,
            capture_buffers,
            in_flight: VecDeque::new(),
            next_sequence: 1,
            last_output: Instant::now(),
            exact,
        };
        for index in 0..codec.capture_buffers.len() {
            codec.queue_capture(index as u32)?;
        }
        for queue in [output, capture] {
            ioctl::streamon(&codec.device.fd(), queue).map_err(|e| {
                codec
                    .device
                    .ioctl_error(format!("starting the {queue} queue"), e)
            })?;
        }
        tracing::info!(
            "{}: {} (driver {}) encoding {width}x{height} {layout} (line stride {}) to {}, {path}",
            codec.device.path().display(),
            codec.device.card(),
            codec.device.driver(),
            codec.raw.plane_fmt.first().map_or(0, |p| p.bytesperline),
            coded.fourcc(),
        );
        Ok(codec)
    }

    /// True if the encoder codes the frames' own size (not a larger one it
    /// could not be cropped from).
    pub fn codes_exact_size(&self) -> bool {
        self.exact
    }

    /// The raw format the encoder takes.
    pub fn raw_format(&self) -> &Format {
        &self.raw
    }

    /// True if frames are imported as DMABUFs rather than copied (the log
    /// says which path runs; the status page and metrics show it).
    pub fn is_zero_copy(&self) -> bool {
        matches!(self.input, Input::Import(_))
    }

    /// Queues `frame`: imported in place (zero-copy) or copied into a free
    /// OUTPUT buffer in the driver's strides, waiting for one if the driver
    /// holds them all.
    pub fn push(&mut self, frame: &RawFrame<'_>) -> Result<(), EncodeError> {
        self.reclaim_outputs()?;
        let sequence = self.next_sequence;
        let (sec, usec) = ((sequence / 1_000_000) as _, (sequence % 1_000_000) as _);
        match &mut self.input {
            Input::Import(leases) => {
                let dmabuf = frame.dmabuf.as_ref().ok_or_else(|| {
                    EncodeError::Failed("a frame without a DMABUF on the zero-copy path".into())
                })?;
                let slot = leases.get_mut(dmabuf.index as usize).ok_or_else(|| {
                    EncodeError::Failed(format!(
                        "camera buffer {} has no encoder slot",
                        dmabuf.index
                    ))
                })?;
                let mut q = QBuffer::<DmaBufHandle<std::fs::File>>::new(self.output, dmabuf.index)
                    .set_timestamp(sec, usec);
                let mut plane = QBufPlane::new(dmabuf.used);
                plane.0.length = dmabuf.length as u32;
                plane.0.m.fd = dmabuf.fd.as_raw_fd();
                q.planes = vec![plane];
                ioctl::qbuf::<_, ()>(&self.device.fd(), q)
                    .map_err(|e| self.device.ioctl_error("queuing a camera buffer", e))?;
                *slot = Some(dmabuf.lease.clone());
            }
            Input::Copy(_) => {
                let deadline = Instant::now() + STALL_TIMEOUT;
                while self.output_free.is_empty() {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() || !self.device.wait(left)? {
                        return Err(self.stalled());
                    }
                    self.reclaim_outputs()?;
                }
                let Input::Copy(buffers) = &mut self.input else {
                    unreachable!("matched above")
                };
                let index = self.output_free.pop().expect("checked above");
                let used = copy_frame(frame, &self.raw, &mut buffers[index as usize].planes[0])
                    .map_err(EncodeError::Failed)?;
                let mut q = QBuffer::<MmapHandle>::new(self.output, index).set_timestamp(sec, usec);
                q.planes = vec![QBufPlane::new(used)];
                if let Err(e) = ioctl::qbuf::<_, ()>(&self.device.fd(), q) {
                    self.output_free.push(index);
                    return Err(self.device.ioctl_error("queuing a frame", e).into());
                }
            }
        }
        self.next_sequence += 1;
        if self.in_flight.is_empty() {
            self.last_output = Instant::now();
        }
        self.in_flight.push_back((sequence, frame.timestamp));
        Ok(())
    }

    /// Collects coded pictures into `out`, waiting up to `wait` for the
    /// first if none is ready. Errors if the encoder has sat on queued
    /// frames for [`STALL_TIMEOUT`]: it is wedged (bcm2835-codec's rate
    /// control is known to hang at low bit rates) and the pipeline reopens
    /// it.
    pub fn pull(&mut self, wait: Duration, out: &mut Vec<CodedBuffer>) -> Result<(), EncodeError> {
        let deadline = Instant::now() + wait;
        loop {
            let before = out.len();
            while let Some(coded) = self.dequeue_capture()? {
                out.push(coded);
            }
            if out.len() > before || self.in_flight.is_empty() {
                return Ok(());
            }
            if self.last_output.elapsed() >= STALL_TIMEOUT {
                return Err(self.stalled());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.device.wait(left)? {
                return Ok(());
            }
            self.reclaim_outputs()?;
        }
    }

    /// Sets a control, logging (not failing) if the driver refuses it.
    pub fn set_control(&self, id: u32, value: i32, name: &str) {
        set_control(&self.device, id, value, name);
    }

    fn stalled(&self) -> EncodeError {
        EncodeError::Stalled(format!(
            "{} ({}) returned nothing for {} s with {} frames queued",
            self.device.path().display(),
            self.device.driver(),
            STALL_TIMEOUT.as_secs(),
            self.in_flight.len()
        ))
    }

    /// Takes back the OUTPUT buffers the driver is done with.
    fn reclaim_outputs(&mut self) -> Result<(), V4l2Error> {
        loop {
            match ioctl::dqbuf::<V4l2Buffer>(&self.device.fd(), self.output) {
                Ok(buf) => match &mut self.input {
                    Input::Copy(_) => self.output_free.push(buf.index()),
                    Input::Import(leases) => {
                        if let Some(lease) = leases.get_mut(buf.index() as usize) {
                            *lease = None;
                        }
                    }
                },
                Err(ioctl::DqBufError::IoctlError(ioctl::DqBufIoctlError::NotReady)) => {
                    return Ok(());
                }
                Err(e) => return Err(self.device.ioctl_error("taking back a frame buffer", e)),
            }
        }
    }

    /// One coded picture, if the driver has one ready.
    fn dequeue_capture(&mut self) -> Result<Option<CodedBuffer>, V4l2Error> {
        let buf = match ioctl::dqbuf::<V4l2Buffer>(&self.device.fd(), self.capture) {
            Ok(buf) => buf,
            Err(ioctl::DqBufError::IoctlError(ioctl::DqBufIoctlError::NotReady)) => {
                return Ok(None);
            }
            Err(e) => return Err(self.device.ioctl_error("dequeuing a coded picture", e)),
        };
        let index = buf.index();
        let used = *buf.get_first_plane().bytesused as usize;
        let data = &self.capture_buffers[index as usize].planes[0];
        let data = Bytes::copy_from_slice(&data[..used.min(data.len())]);
        let ts = buf.timestamp();
        let sequence = ts.tv_sec as u64 * 1_000_000 + ts.tv_usec as u64;
        let error = buf.flags().contains(BufferFlags::ERROR);
        self.queue_capture(index)?;
        self.last_output = Instant::now();
        // Frames before this one that never came back were dropped.
        let mut timestamp = None;
        while let Some(&(seq, at)) = self.in_flight.front() {
            if seq > sequence {
                break;
            }
            self.in_flight.pop_front();
            if seq == sequence {
                timestamp = Some(at);
            }
        }
        if error || data.is_empty() {
            return Ok(None);
        }
        Ok(Some(CodedBuffer {
            data,
            // Parameter sets alone carry no frame's timestamp on some drivers.
            timestamp: timestamp
                .or_else(|| self.in_flight.front().map(|&(_, at)| at))
                .unwrap_or_else(Instant::now),
        }))
    }

    fn queue_capture(&self, index: u32) -> Result<(), V4l2Error> {
        let mut q = QBuffer::<MmapHandle>::new(self.capture, index);
        q.planes = vec![QBufPlane::new(0)];
        ioctl::qbuf::<_, ()>(&self.device.fd(), q)
            .map_err(|e| self.device.ioctl_error("queuing a coded-picture buffer", e))
    }
}

impl Drop for M2mCodec {
    fn drop(&mut self) {
        for queue in [self.output, self.capture] {
            let _ = ioctl::streamoff(&self.device.fd(), queue);
        }
    }
}

/// Tells the encoder the visible picture when its buffers are larger (the
/// driver rounds the height up to whole macroblocks): without it the
/// padding lines would be coded as picture.
fn crop(device: &Device, width: u32, height: u32, raw: &Format) -> bool {
    use v4l2r::ioctl::{SelectionFlags, SelectionTarget, SelectionType};
    let visible = v4l2r::Rect::new(0, 0, width, height);
    match ioctl::s_selection::<_, v4l2r::Rect>(
        &device.fd(),
        SelectionType::Output,
        SelectionTarget::Crop,
        visible,
        SelectionFlags::empty(),
    ) {
        Ok(r) if (r.width, r.height) == (width, height) => true,
        Ok(r) => {
            tracing::warn!(
                "{}: the encoder codes {}x{} of the {width}x{height} picture",
                device.path().display(),
                r.width,
                r.height
            );
            false
        }
        Err(e) => {
            tracing::warn!(
                "{}: the encoder codes {}x{}: cannot crop to {width}x{height}: {e}",
                device.path().display(),
                raw.width,
                raw.height
            );
            false
        }
    }
}

/// Tests against the kernel's vivid and vicodec drivers; `ci/vm` runs them
/// in a VM.
#[cfg(test)]
pub(crate) mod vm_tests {
    use super::*;
    use crate::config::VideoConfig;
    use crate::encode::v4l2_m2m::controls::Settings;
    use crate::source::frame::{Frame, Source};
    use crate::source::v4l2::V4l2Source;
    use crate::source::v4l2::vm_tests::camera_config;

    /// `V4L2_FWHT_FL_I_FRAME` (its binding's integer type varies by target).
    const FWHT_I_FRAME: u32 = 1 << 10;

    /// A field of an FWHT frame header (big-endian words after two magics).
    fn header_word(data: &[u8], index: usize) -> u32 {
        u32::from_be_bytes(data[4 * index..4 * index + 4].try_into().unwrap())
    }

    /// Codes 30 frames of a `width`x`height` vivid camera with vicodec and
    /// checks them (see [`code_frames`]).
    fn code_camera_frames(width: u32, height: u32, zero_copy: bool) -> bool {
        let mut config = camera_config("vivid-000-vid-cap");
        config.video.width = width;
        config.video.height = height;
        let mut camera = V4l2Source::open(&config).unwrap();
        code_frames(&mut camera, &config.video, 30, zero_copy)
    }

    /// Codes `count` frames of `camera` with vicodec and checks that each
    /// comes back, in order, as an FWHT picture of the right size carrying
    /// its frame's capture time. True if the frames went in zero-copy.
    pub fn code_frames(
        camera: &mut dyn Source,
        video: &VideoConfig,
        count: usize,
        zero_copy: bool,
    ) -> bool {
        let (width, height) = camera.dimensions();
        let device = find_encoder(CodedFormat::Fwht).expect("vicodec's encoder");
        assert_eq!(device.driver(), "vicodec");
        let settings = Settings {
            h264_level: None,
            ..Settings::for_video(video)
        };
        let mut device = Some(device);
        let mut codec = None;
        let (mut coded, mut sent) = (Vec::new(), Vec::new());
        for _ in 0..count {
            let Frame::Raw(frame) = camera.next_frame().unwrap() else {
                panic!("raw frames expected")
            };
            let codec = codec.get_or_insert_with(|| {
                let device = device.take().unwrap();
                M2mCodec::start(device, CodedFormat::Fwht, &frame, &settings, zero_copy).unwrap()
            });
            sent.push(frame.timestamp);
            codec.push(&frame).unwrap();
            codec.pull(Duration::from_millis(10), &mut coded).unwrap();
        }
        let codec = codec.as_mut().unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        while coded.len() < sent.len() && Instant::now() < until {
            codec.pull(Duration::from_millis(100), &mut coded).unwrap();
        }
        assert_eq!(coded.len(), sent.len(), "every frame comes back coded");
        for (n, (c, at)) in coded.iter().zip(&sent).enumerate() {
            assert_eq!(
                header_word(&c.data, 0),
                0x4f4f_4f4f,
                "frame {n}: FWHT magic"
            );
            assert_eq!(
                (header_word(&c.data, 3), header_word(&c.data, 4)),
                (width, height)
            );
            assert_eq!(c.timestamp, *at, "frame {n} carries its own capture time");
        }
        let i_frame = |c: &CodedBuffer| header_word(&c.data, 5) & FWHT_I_FRAME != 0;
        assert!(i_frame(&coded[0]), "the first frame is an I-frame");
        assert!(
            coded.iter().any(|c| !i_frame(c)),
            "later frames are predicted"
        );
        codec.is_zero_copy()
    }

    #[test]
    #[ignore = "needs the vivid and vicodec drivers: ci/vm runs it"]
    fn vicodec_codes_every_camera_frame_copied_in() {
        assert!(!code_camera_frames(640, 480, false));
    }

    #[test]
    #[ignore = "needs the vivid and vicodec drivers: ci/vm runs it"]
    fn vicodec_codes_every_camera_frame_imported_as_dmabuf() {
        assert!(
            code_camera_frames(640, 480, true),
            "the zero-copy path runs"
        );
    }

    #[test]
    #[ignore = "needs the vivid and vicodec drivers: ci/vm runs it"]
    fn two_contexts_code_the_main_stream_and_a_scaled_substream_at_once() {
        // The substream's way on a Pi: a second context of the same M2M
        // encoder, fed every third camera frame scaled down.
        let mut config = camera_config("vivid-000-vid-cap");
        config.video.width = 1280;
        config.video.height = 720;
        let sub_video = VideoConfig {
            width: 640,
            height: 480,
            ..config.video.clone()
        };
        let mut camera = V4l2Source::open(&config).unwrap();
        let settings = |video: &VideoConfig| Settings {
            h264_level: None,
            ..Settings::for_video(video)
        };
        let mut devices = [
            find_encoder(CodedFormat::Fwht),
            find_encoder(CodedFormat::Fwht),
        ];
        let (mut main, mut sub) = (None, None);
        let (mut main_coded, mut sub_coded) = (Vec::new(), Vec::new());
        let (mut main_sent, mut sub_sent) = (Vec::new(), Vec::new());
        let mut scaler = crate::source::scale::Scaler::default();
        for n in 0..30 {
            let Frame::Raw(frame) = camera.next_frame().unwrap() else {
                panic!("raw frames expected")
            };
            let main = main.get_or_insert_with(|| {
                let device = devices[0].take().expect("vicodec's encoder");
                M2mCodec::start(
                    device,
                    CodedFormat::Fwht,
                    &frame,
                    &settings(&config.video),
                    true,
                )
                .unwrap()
            });
            main_sent.push(frame.timestamp);
            main.push(&frame).unwrap();
            main.pull(Duration::from_millis(10), &mut main_coded)
                .unwrap();
            if n % 3 == 0 {
                let small = scaler.scale(&frame, 640, 480);
                let sub = sub.get_or_insert_with(|| {
                    let device = devices[1].take().expect("a second vicodec context");
                    M2mCodec::start(
                        device,
                        CodedFormat::Fwht,
                        &small,
                        &settings(&sub_video),
                        false,
                    )
                    .unwrap()
                });
                sub_sent.push(small.timestamp);
                sub.push(&small).unwrap();
                sub.pull(Duration::from_millis(10), &mut sub_coded).unwrap();
            }
        }
        let (main, sub) = (main.as_mut().unwrap(), sub.as_mut().unwrap());
        let until = Instant::now() + Duration::from_secs(5);
        while (main_coded.len() < 30 || sub_coded.len() < 10) && Instant::now() < until {
            main.pull(Duration::from_millis(50), &mut main_coded)
                .unwrap();
            sub.pull(Duration::from_millis(50), &mut sub_coded).unwrap();
        }
        assert!(
            main.is_zero_copy(),
            "the main stream reads the camera's buffers"
        );
        for (coded, sent, size) in [
            (&main_coded, &main_sent, (1280, 720)),
            (&sub_coded, &sub_sent, (640, 480)),
        ] {
            assert_eq!(
                coded.len(),
                sent.len(),
                "{size:?}: every frame comes back coded"
            );
            for (c, at) in coded.iter().zip(sent.iter()) {
                assert_eq!((header_word(&c.data, 3), header_word(&c.data, 4)), size);
                assert_eq!(c.timestamp, *at, "{size:?}: its own capture time");
            }
        }
    }

    #[test]
    #[ignore = "needs the vivid and vicodec drivers: ci/vm runs it"]
    fn frames_the_encoder_pads_are_copied_and_cropped() {
        // vicodec pads 360 lines to 368: the camera's buffer cannot be read
        // as it is, so the frames are copied and the padding cropped away.
        assert!(!code_camera_frames(640, 360, true));
    }

    #[test]
    #[ignore = "needs the vivid and vicodec drivers: ci/vm runs it"]
    fn an_encoder_that_stops_returning_pictures_is_reported_stalled() {
        let mut config = camera_config("vivid-000-vid-cap");
        config.video.width = 640;
        config.video.height = 480;
        let mut camera = V4l2Source::open(&config).unwrap();
        let settings = Settings {
            h264_level: None,
            ..Settings::for_video(&config.video)
        };
        let mut device = find_encoder(CodedFormat::Fwht);
        let mut codec = None;
        let mut coded = Vec::new();
        let started = Instant::now();
        let error = loop {
            assert!(started.elapsed() < STALL_TIMEOUT * 3, "no stall reported");
            let Frame::Raw(frame) = camera.next_frame().unwrap() else {
                panic!("raw frames expected")
            };
            let codec = codec.get_or_insert_with(|| {
                let device = device.take().expect("vicodec's encoder");
                let codec =
                    M2mCodec::start(device, CodedFormat::Fwht, &frame, &settings, false).unwrap();
                // Take every coded-picture buffer back and restart the
                // coded side empty: frames go in, nothing comes out, as
                // when bcm2835-codec's rate control hangs.
                ioctl::streamoff(&codec.device.fd(), codec.capture).unwrap();
                ioctl::streamon(&codec.device.fd(), codec.capture).unwrap();
                codec
            });
            let result = codec
                .push(&frame)
                .and_then(|()| codec.pull(Duration::from_millis(10), &mut coded));
            if let Err(e) = result {
                break e;
            }
        };
        assert!(matches!(error, EncodeError::Stalled(_)), "{error}");
        assert!(coded.is_empty());
        let waited = started.elapsed();
        assert!(
            waited >= STALL_TIMEOUT && waited < STALL_TIMEOUT * 2,
            "after {waited:?}"
        );
    }
}
