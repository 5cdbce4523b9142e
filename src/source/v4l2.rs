//! V4L2 capture: any camera node (USB UVC webcams, the legacy
//! `bcm2835-v4l2` Pi camera). Raw YU12/NV12/YUYV frames go to the encoder
//! straight from the driver's memory-mapped buffers; a node that emits H.264
//! itself skips the encoder. MJPEG-only cameras are refused.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Instant;

use bytes::Bytes;
use v4l2r::bindings;
use v4l2r::ioctl::{self, BufferFlags, QBufPlane, QBuffer, V4l2Buffer};
use v4l2r::memory::MmapHandle;

use crate::source::frame::{Frame, STALL_TIMEOUT, Source, SourceError};

use crate::config::{Config, VideoConfig};
use crate::format::h264::{self, AccessUnit};
use crate::format::raw::{Canvas, DmaBuf, Lease, PlaneMut, RawFrame};
use crate::overlay::Overlay;
use crate::v4l2::{Device, Format, MappedBuffer, PixelFormat, QueueType, V4l2Error, fourcc};

/// Buffers asked of the driver: one with the encoder, one being filled,
/// the rest to ride out scheduling hiccups.
const BUFFERS: u32 = 4;

/// What the capture node delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    I420,
    Nv12,
    Yuyv,
    H264,
}

impl Layout {
    fn fourcc(self) -> PixelFormat {
        match self {
            Self::I420 => fourcc::YU12,
            Self::Nv12 => fourcc::NV12,
            Self::Yuyv => fourcc::YUYV,
            Self::H264 => fourcc::H264,
        }
    }
}

/// Formats in order of preference: H.264 from the camera saves encoding;
/// then the raw layouts, cheapest for the encoders first.
const PREFERENCE: [Layout; 4] = [Layout::H264, Layout::I420, Layout::Nv12, Layout::Yuyv];

/// A V4L2 camera, streaming.
pub struct V4l2Source {
    device: Device,
    queue: QueueType,
    layout: Layout,
    format: Format,
    framerate: f64,
    buffers: Vec<MappedBuffer>,
    /// Each buffer as a DMABUF, where the driver can export it.
    exports: Vec<Option<OwnedFd>>,
    /// Each buffer's lease: lent with a frame, held by an encoder reading it.
    leases: Vec<Lease>,
    /// Buffers handed out with frames, queued again once nobody reads them.
    returning: Vec<u32>,
    /// Access units from an H.264 camera's buffers.
    pictures: h264::PictureAssembler,
    /// `[overlay]`, drawn into each raw frame.
    overlay: Option<Overlay>,
}

impl V4l2Source {
    /// Opens the configured node, or the first camera found when
    /// `source.device` is empty.
    pub fn open(config: &Config) -> Result<Self, SourceError> {
        let device = if config.source.device.is_empty() {
            find_camera()?
        } else {
            let device = Device::open(Path::new(&config.source.device))?;
            if device.capture_queue().is_none() {
                return Err(SourceError::Invalid(format!(
                    "{} ({}, driver {}) is not a video capture device; set source.device to a camera node (`v4l2-ctl --list-devices` lists them)",
                    config.source.device,
                    device.card(),
                    device.driver()
                )));
            }
            device
        };
        let mut camera = Self::start(device, &config.video)?;
        camera.overlay = Overlay::configured(config.overlay.as_ref());
        Ok(camera)
    }

    /// Negotiates format and frame rate on `device` and starts streaming.
    fn start(device: Device, video: &VideoConfig) -> Result<Self, SourceError> {
        let queue = device.capture_queue().expect("checked by the caller");
        let offered = device.formats(queue);
        let layout = choose_layout(&offered).ok_or_else(|| {
            let list: Vec<String> = offered.iter().map(|f| f.to_string()).collect();
            SourceError::Invalid(format!(
                "{} ({}) offers {}; streamcam takes H264, YU12, NV12 or YUYV{}",
                device.path().display(),
                device.card(),
                if list.is_empty() { "no formats".into() } else { list.join(", ") },
                if offered.iter().any(|f| is_mjpeg(*f)) {
                    " (MJPEG would need a JPEG decoder on the Pi's CPU: use a camera or mode with raw or H.264 output)"
                } else {
                    ""
                }
            ))
        })?;
        let wanted = Format {
            width: video.width,
            height: video.height,
            pixelformat: layout.fourcc(),
            ..Default::default()
        };
        let dev = device;
        let format: Format = ioctl::s_fmt(&mut dev.fd(), (queue, &wanted))
            .map_err(|e| dev.ioctl_error(format!("setting format {}", describe(&wanted)), e))?;
        if format.pixelformat != wanted.pixelformat {
            return Err(SourceError::Device(dev.error(
                format!("setting format {}", describe(&wanted)),
                format!("the driver chose {} instead", format.pixelformat),
            )));
        }
        if (format.width, format.height) != (video.width, video.height) {
            tracing::warn!(
                "{}: asked for {}x{}, the camera gives {}x{}",
                dev.path().display(),
                video.width,
                video.height,
                format.width,
                format.height
            );
        }
        if layout != Layout::H264 {
            check_layout(&dev, layout, &format)?;
        }
        let framerate = set_framerate(&dev, queue, video.framerate);
        let buffers = dev.map_buffers(queue, BUFFERS)?;
        for (index, buffer) in buffers.iter().enumerate() {
            queue_buffer(&dev, queue, index as u32, buffer)?;
        }
        let exports: Vec<Option<OwnedFd>> = (0..buffers.len())
            .map(|index| match dev.export(queue, index) {
                Ok(fd) => Some(fd),
                Err(e) => {
                    tracing::debug!("{e}: frames will be copied to the encoder");
                    None
                }
            })
            .collect();
        ioctl::streamon(&dev.fd(), queue)
            .map_err(|e| dev.ioctl_error("starting the capture queue", e))?;
        tracing::info!(
            "{}: {} (driver {}), {} at {framerate:.1} fps, {} buffers",
            dev.path().display(),
            dev.card(),
            dev.driver(),
            describe(&format),
            buffers.len()
        );
        // One lease per buffer (cloning one would share it).
        let leases = (0..buffers.len()).map(|_| Lease::default()).collect();
        Ok(Self {
            device: dev,
            queue,
            layout,
            format,
            framerate,
            buffers,
            exports,
            leases,
            returning: Vec::new(),
            pictures: h264::PictureAssembler::default(),
            overlay: None,
        })
    }

    /// Hands buffer `index` back to the driver to be filled again.
    fn requeue(&self, index: u32) -> Result<(), V4l2Error> {
        queue_buffer(
            &self.device,
            self.queue,
            index,
            &self.buffers[index as usize],
        )
    }

    /// Waits for the next filled buffer (at most [`STALL_TIMEOUT`]).
    fn dequeue(&mut self) -> Result<(u32, usize, Instant), SourceError> {
        let deadline = Instant::now() + STALL_TIMEOUT;
        loop {
            match ioctl::dqbuf::<V4l2Buffer>(&self.device.fd(), self.queue) {
                Ok(buf) => {
                    let index = buf.index();
                    if buf.flags().contains(BufferFlags::ERROR) {
                        // A corrupted frame (USB packet loss): skip it.
                        self.requeue(index)?;
                        continue;
                    }
                    let used = *buf.get_first_plane().bytesused as usize;
                    return Ok((index, used, capture_time(&buf)));
                }
                Err(ioctl::DqBufError::IoctlError(ioctl::DqBufIoctlError::NotReady)) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() || !self.device.wait(left)? {
                        return Err(SourceError::Stalled(format!(
                            "{} delivered no frame for {} s",
                            self.device.path().display(),
                            STALL_TIMEOUT.as_secs()
                        )));
                    }
                }
                Err(e) => return Err(self.device.ioctl_error("dequeuing a frame", e).into()),
            }
        }
    }

    /// The pixels of a buffer's `data` as the negotiated layout describes them.
    fn canvas<'a>(data: &'a mut [u8], layout: Layout, format: &Format) -> Canvas<'a> {
        let h = format.height as usize;
        let stride = format.plane_fmt[0].bytesperline as usize;
        match layout {
            Layout::I420 => {
                let (y, rest) = data.split_at_mut((stride * h).min(data.len()));
                let (cs, ch) = (stride / 2, h.div_ceil(2));
                let (u, v) = rest.split_at_mut((cs * ch).min(rest.len()));
                Canvas::I420 {
                    y: PlaneMut { data: y, stride },
                    u: PlaneMut {
                        data: u,
                        stride: cs,
                    },
                    v: PlaneMut {
                        data: v,
                        stride: cs,
                    },
                }
            }
            Layout::Nv12 => {
                let (y, uv) = data.split_at_mut((stride * h).min(data.len()));
                Canvas::Nv12 {
                    y: PlaneMut { data: y, stride },
                    uv: PlaneMut { data: uv, stride },
                }
            }
            Layout::Yuyv => Canvas::Yuyv(PlaneMut { data, stride }),
            Layout::H264 => unreachable!("H.264 buffers are not raw pictures"),
        }
    }

    /// An access unit from an H.264 buffer; `None` for a buffer holding only
    /// parameter sets (kept for the next picture).
    fn access_unit(&mut self, index: u32, used: usize, at: Instant) -> Option<AccessUnit> {
        let data = &self.buffers[index as usize].planes[0];
        let data = Bytes::copy_from_slice(&data[..used.min(data.len())]);
        self.pictures.push(&data, at)
    }
}

impl Source for V4l2Source {
    fn kind(&self) -> crate::config::SourceKind {
        crate::config::SourceKind::V4l2
    }

    fn name(&self) -> String {
        format!(
            "v4l2 {} ({})",
            self.device.path().display(),
            self.device.card()
        )
    }

    fn dimensions(&self) -> (u32, u32) {
        (self.format.width, self.format.height)
    }

    fn framerate(&self) -> f64 {
        self.framerate
    }

    fn is_encoded(&self) -> bool {
        self.layout == Layout::H264
    }

    fn next_frame(&mut self) -> Result<Frame<'_>, SourceError> {
        let mut held = Vec::new();
        for index in std::mem::take(&mut self.returning) {
            if self.leases[index as usize].is_lent() {
                held.push(index);
            } else {
                self.requeue(index)?;
            }
        }
        self.returning = held;
        loop {
            let (index, used, at) = self.dequeue()?;
            if self.layout == Layout::H264 {
                let au = self.access_unit(index, used, at);
                self.requeue(index)?;
                match au {
                    Some(au) => return Ok(Frame::Encoded(au)),
                    None => continue,
                }
            }
            self.returning.push(index);
            let export = self.exports[index as usize].as_ref().map(|fd| fd.as_fd());
            let data = &mut self.buffers[index as usize].planes[0];
            let length = data.len();
            let mut canvas = Self::canvas(data, self.layout, &self.format);
            if let Some(overlay) = &mut self.overlay {
                let (w, h) = (self.format.width as usize, self.format.height as usize);
                overlay.draw(&mut canvas, w, h, at, export.as_slice());
            }
            let dmabuf = export.map(|fd| DmaBuf {
                fd,
                index,
                length,
                used,
                lease: self.leases[index as usize].clone(),
            });
            return Ok(Frame::Raw(RawFrame {
                pixels: canvas.into_pixels(),
                dmabuf,
                width: self.format.width,
                height: self.format.height,
                timestamp: at,
            }));
        }
    }
}

impl Drop for V4l2Source {
    fn drop(&mut self) {
        // Errors are moot here (the device may be gone); closing the node
        // frees the buffers.
        let _ = ioctl::streamoff(&self.device.fd(), self.queue);
    }
}

/// Capture nodes that are not cameras: the Pi's ISPs hand out processed
/// frames only while something feeds them raw ones (libcamera does).
const NOT_CAMERAS: [&str; 2] = ["bcm2835-isp", "pispbe"];

/// The camera to use when none is configured: one that emits H.264 (no
/// encoding needed) before one with raw frames, lowest node number first.
/// Says why other nodes were passed over.
fn find_camera() -> Result<Device, SourceError> {
    let mut passed = Vec::new();
    let mut raw = None;
    for path in crate::v4l2::nodes() {
        let device = match Device::open(&path) {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!("{e}");
                continue;
            }
        };
        let Some(queue) = device.capture_queue() else {
            continue;
        };
        let what = format!(
            "{} ({}, driver {})",
            path.display(),
            device.card(),
            device.driver()
        );
        if NOT_CAMERAS.contains(&device.driver()) {
            tracing::debug!("{what}: an image processor, not a camera");
            continue;
        }
        match choose_layout(&device.formats(queue)) {
            Some(Layout::H264) => {
                tracing::info!("{what}: a camera that emits H.264; no encoder needed");
                return Ok(device);
            }
            Some(_) if raw.is_none() => raw = Some(device),
            Some(_) => tracing::debug!("{what}: another raw camera, not used"),
            None => passed.push(what),
        }
    }
    if let Some(device) = raw {
        return Ok(device);
    }
    Err(SourceError::Unavailable(if passed.is_empty() {
        "no V4L2 camera found (no /dev/video* capture node); plug one in or set source.kind".into()
    } else {
        format!(
            "no V4L2 camera with H264, YU12, NV12 or YUYV output; found {}",
            passed.join(", ")
        )
    }))
}

fn choose_layout(offered: &[PixelFormat]) -> Option<Layout> {
    PREFERENCE
        .into_iter()
        .find(|l| offered.contains(&l.fourcc()))
}

fn is_mjpeg(f: PixelFormat) -> bool {
    f == fourcc::MJPG || f == fourcc::JPEG
}

/// Refuses a raw format whose one plane cannot hold the picture.
fn check_layout(device: &Device, layout: Layout, format: &Format) -> Result<(), SourceError> {
    let (w, h) = (format.width as usize, format.height as usize);
    let Some(plane) = format.plane_fmt.first() else {
        return Err(device.error("reading the format", "no planes").into());
    };
    if format.plane_fmt.len() != 1 {
        return Err(device
            .error(
                "reading the format",
                format!(
                    "{} planes; streamcam takes one-plane layouts",
                    format.plane_fmt.len()
                ),
            )
            .into());
    }
    let stride = plane.bytesperline as usize;
    let (min_stride, size) = match layout {
        Layout::I420 | Layout::Nv12 => (w, stride * h + 2 * (stride / 2) * h.div_ceil(2)),
        Layout::Yuyv | Layout::H264 => (2 * w, stride * h),
    };
    if stride < min_stride || (plane.sizeimage as usize) < size {
        return Err(device
            .error(
                "reading the format",
                format!(
                    "{} with {stride} bytes per line and {} bytes per frame is too small",
                    describe(format),
                    plane.sizeimage
                ),
            )
            .into());
    }
    Ok(())
}

/// Asks for `fps` frames per second; returns what the driver settled on
/// (or `fps` if the driver does not say).
fn set_framerate(device: &Device, queue: QueueType, fps: u32) -> f64 {
    let mut parm = bindings::v4l2_streamparm {
        type_: queue as u32,
        ..Default::default()
    };
    parm.parm.capture.timeperframe = bindings::v4l2_fract {
        numerator: 1,
        denominator: fps,
    };
    match ioctl::s_parm::<_, bindings::v4l2_streamparm>(&device.fd(), parm) {
        Ok(got) => {
            // SAFETY: `capture` is the union member for capture queues.
            let t = unsafe { got.parm.capture.timeperframe };
            if t.numerator > 0 && t.denominator > 0 {
                return f64::from(t.denominator) / f64::from(t.numerator);
            }
            f64::from(fps)
        }
        Err(e) => {
            tracing::debug!(
                "{}: cannot set the frame rate: {e}",
                device.path().display()
            );
            f64::from(fps)
        }
    }
}

/// Hands buffer `index` back to the driver to be filled.
fn queue_buffer(
    device: &Device,
    queue: QueueType,
    index: u32,
    buffer: &MappedBuffer,
) -> Result<(), V4l2Error> {
    let mut q = QBuffer::<MmapHandle>::new(queue, index);
    q.planes = buffer.planes.iter().map(|_| QBufPlane::new(0)).collect();
    ioctl::qbuf::<_, ()>(&device.fd(), q).map_err(|e| device.ioctl_error("queuing a buffer", e))
}

/// The capture time of a dequeued buffer: its monotonic kernel timestamp,
/// as an `Instant`, or now if it has none.
fn capture_time(buf: &V4l2Buffer) -> Instant {
    let ts = buf.timestamp();
    if !buf.flags().contains(BufferFlags::TIMESTAMP_MONOTONIC)
        || (ts.tv_sec == 0 && ts.tv_usec == 0)
    {
        return Instant::now();
    }
    super::frame::monotonic_instant(ts.tv_sec as i128 * 1_000_000_000 + ts.tv_usec as i128 * 1000)
}

fn describe(f: &Format) -> String {
    format!("{}x{} {}", f.width, f.height, f.pixelformat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_h264_then_the_cheapest_raw_layout() {
        let f = |s: &[u8; 4]| PixelFormat::from_fourcc(s);
        assert_eq!(
            choose_layout(&[f(b"YUYV"), f(b"MJPG"), f(b"H264")]),
            Some(Layout::H264)
        );
        assert_eq!(choose_layout(&[f(b"YUYV"), f(b"NV12")]), Some(Layout::Nv12));
        assert_eq!(
            choose_layout(&[f(b"YUYV"), f(b"YU12"), f(b"NV12")]),
            Some(Layout::I420)
        );
        assert_eq!(choose_layout(&[f(b"MJPG")]), None);
        assert!(is_mjpeg(f(b"MJPG")));
    }

    #[test]
    fn a_missing_device_is_a_clear_error() {
        let mut config = Config::default();
        config.source.device = "/dev/video-streamcam-test".into();
        let Err(e) = V4l2Source::open(&config) else {
            panic!("opened a missing device")
        };
        assert!(
            e.to_string()
                .starts_with("/dev/video-streamcam-test: opening"),
            "{e}"
        );
    }
}

/// Tests against the kernel's vivid driver; `ci/vm` runs them in a VM.
#[cfg(test)]
pub(crate) mod vm_tests {
    use std::time::Duration;

    use super::*;
    use crate::format::raw::Pixels;

    /// The node of the video device whose sysfs name is `name`.
    pub(crate) fn node(name: &str) -> String {
        for entry in std::fs::read_dir("/sys/class/video4linux").expect("no V4L2 devices") {
            let entry = entry.unwrap();
            let found = std::fs::read_to_string(entry.path().join("name")).unwrap_or_default();
            if found.trim() == name {
                return format!("/dev/{}", entry.file_name().to_string_lossy());
            }
        }
        panic!("no V4L2 device named {name}: is vivid loaded?")
    }

    /// Unbinds (false) or binds (true) vivid's platform device: the
    /// cameras vanish or come back, as a USB camera does when unplugged.
    pub(crate) fn plug(present: bool) {
        let action = if present { "bind" } else { "unbind" };
        std::fs::write(
            format!("/sys/bus/platform/drivers/vivid/{action}"),
            "vivid.0",
        )
        .unwrap_or_else(|e| panic!("vivid {action}: {e}"));
    }

    pub(crate) fn camera_config(name: &str) -> Config {
        let mut config = Config::default();
        config.source.kind = crate::config::SourceKind::V4l2;
        config.source.device = node(name);
        config.video.width = 640;
        config.video.height = 360;
        config.video.framerate = 30;
        config
    }

    fn capture(name: &str, queue: QueueType) {
        let mut source = V4l2Source::open(&camera_config(name)).unwrap();
        assert_eq!(source.queue, queue);
        assert_eq!(source.dimensions(), (640, 360));
        assert!(!source.is_encoded());
        let mut last = None;
        for n in 0..10 {
            let Frame::Raw(frame) = source.next_frame().unwrap() else {
                panic!("raw frames expected")
            };
            assert_eq!((frame.width, frame.height), (640, 360));
            let Pixels::I420 { y, u, v } = frame.pixels else {
                panic!("vivid offers YU12: {:?}", frame.pixels)
            };
            assert!(y.stride >= 640 && y.data.len() >= y.stride * 360);
            assert!(u.stride >= 320 && u.data.len() >= u.stride * 180);
            assert!(v.stride >= 320 && v.data.len() >= v.stride * 180);
            let first = y.data[0];
            assert!(
                y.data[..640].iter().any(|&p| p != first),
                "frame {n} is flat"
            );
            if let Some(last) = last {
                assert!(frame.timestamp > last, "frame {n}: time went backwards");
            }
            last = Some(frame.timestamp);
        }
    }

    #[test]
    #[ignore = "needs the vivid driver: ci/vm runs it"]
    fn captures_from_a_single_planar_camera() {
        capture("vivid-000-vid-cap", QueueType::VideoCapture);
    }

    #[test]
    #[ignore = "needs the vivid driver: ci/vm runs it"]
    fn captures_from_a_multi_planar_camera() {
        capture("vivid-001-vid-cap", QueueType::VideoCaptureMplane);
    }

    #[test]
    #[ignore = "needs the vivid driver: ci/vm runs it"]
    fn the_overlay_is_drawn_into_the_cameras_exported_buffers() {
        use crate::config::{Corner, OverlayConfig};
        use crate::overlay::{Dot, Label};
        let mut config = camera_config("vivid-001-vid-cap");
        config.overlay = Some(OverlayConfig {
            text: "vivid".into(),
            position: Corner::TopRight,
            size: 16,
            timezone: None,
        });
        let mut source = V4l2Source::open(&config).unwrap();
        let label = Label::render("vivid", 16);
        let (x0, y0) = label.origin(Corner::TopRight, 640, 360, 16);
        for n in 0..5 {
            let Frame::Raw(frame) = source.next_frame().unwrap() else {
                panic!("raw frames expected")
            };
            assert!(frame.dmabuf.is_some(), "vivid exports its buffers");
            let Pixels::I420 { y, .. } = frame.pixels else {
                panic!("vivid offers YU12")
            };
            for (i, dot) in label.dots.iter().enumerate() {
                let (col, row) = (x0 + i % label.width, y0 + i / label.width);
                let luma = y.data[row * y.stride + col];
                match dot {
                    Dot::Ink => assert_eq!(luma, 235, "frame {n}: ink at ({col}, {row})"),
                    Dot::Shade => {
                        assert!(luma <= 135, "frame {n}: shade at ({col}, {row}): {luma}")
                    }
                }
            }
        }
    }

    #[test]
    #[ignore = "needs the vivid driver: ci/vm runs it"]
    fn an_unplugged_camera_fails_fast_and_reopens_when_back() {
        let config = camera_config("vivid-000-vid-cap");
        let mut source = V4l2Source::open(&config).unwrap();
        source.next_frame().unwrap();
        plug(false);
        let started = Instant::now();
        let error = loop {
            match source.next_frame() {
                Ok(_) => assert!(started.elapsed() < STALL_TIMEOUT * 2, "still streaming"),
                Err(e) => break e,
            }
        };
        assert!(started.elapsed() <= STALL_TIMEOUT + Duration::from_secs(1));
        drop(source);
        assert!(
            V4l2Source::open(&config).is_err(),
            "opened a camera that is gone"
        );
        plug(true);
        let mut source = V4l2Source::open(&camera_config("vivid-000-vid-cap"))
            .unwrap_or_else(|e| panic!("after {error}, reopening failed: {e}"));
        source.next_frame().unwrap();
    }

    #[test]
    #[ignore = "needs the vivid driver: ci/vm runs it"]
    fn finds_a_camera_and_skips_codecs_when_no_device_is_set() {
        let mut config = camera_config("vivid-000-vid-cap");
        config.source.device.clear();
        let source = V4l2Source::open(&config).unwrap();
        assert_eq!(source.device.driver(), "vivid", "picked {}", source.name());
    }
}
