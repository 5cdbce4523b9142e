//! libcamera through GStreamer's `libcamerasrc` element: the Raspberry Pi's
//! cameras on Raspberry Pi OS and Debian, from a build that does not link
//! libcamera itself. libcamera changes its ABI with every minor release;
//! the distribution builds the element (`gstreamer1.0-libcamera`) from the
//! same source as the library, and GStreamer's own ABI has not changed
//! since 1.0, so one streamcam build runs with whatever libcamera the
//! system has.
//!
//! The pipeline is `libcamerasrc ! capsfilter ! appsink`. The element's
//! buffers are libcamera's DMABUFs: they are mapped here once each
//! ([`super::mapped`]), drawn on in place, and handed to an encoder that
//! imports them (zero-copy); a sample is given back to the element only
//! once the encoder has let go of its buffer. Buffers that are not DMABUFs
//! (an element that copies) are copied once into memory of our own.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_allocators as gst_allocators;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;

use crate::source::frame::{Frame, STALL_TIMEOUT, Source, SourceError};

use super::mapped::{Layout, MappedBuffer, PREFERENCE, PlaneAt, Shape, media_devices};
use crate::config::{CameraConfig, Config};
use crate::format::raw::{Canvas, Plane, PlaneMut, RawFrame};
use crate::overlay::Overlay;

/// The GStreamer element, and the Debian (and Raspberry Pi OS) package
/// that has it.
pub const ELEMENT: &str = "libcamerasrc";
/// The package to install for [`ELEMENT`].
pub const PACKAGE: &str = "gstreamer1.0-libcamera";

/// Set once a camera vanished while streaming: libcamera aborts the process
/// when the element stops such a camera, so its pipeline is left running
/// and no camera opens in this process again (the service watchdog
/// restarts it).
static LEFT_RUNNING: AtomicBool = AtomicBool::new(false);

/// Frames the sink keeps when the pipeline thread is late; older ones are
/// dropped, so the camera never waits for us.
const QUEUED: u32 = 2;
/// Distinct DMABUFs remembered (the element's pool has a handful; the
/// encoder has a slot per number up to 32).
const MAX_BUFFERS: usize = 16;

/// GStreamer's name for a layout.
fn gst_format(layout: Layout) -> gst_video::VideoFormat {
    match layout {
        Layout::I420 => gst_video::VideoFormat::I420,
        Layout::Nv12 => gst_video::VideoFormat::Nv12,
        Layout::Rgb24 => gst_video::VideoFormat::Rgb,
        Layout::Bgr24 => gst_video::VideoFormat::Bgr,
    }
}

/// Why GStreamer's libcamera element cannot be used here, or `None` if it
/// can: GStreamer starts and has the element.
pub fn unavailable() -> Option<String> {
    if let Err(e) = gst::init() {
        return Some(format!("GStreamer cannot start: {e}"));
    }
    if gst::ElementFactory::find(ELEMENT).is_none() {
        return Some(format!(
            "GStreamer has no {ELEMENT} element: install it with `apt install {PACKAGE}`"
        ));
    }
    None
}

/// A buffer of the element's that has been seen: its DMABUFs (by inode)
/// and their mappings.
struct Known {
    inodes: Vec<u64>,
    mapped: MappedBuffer,
}

/// The frame handed out last and the buffers the encoder still reads: the
/// samples keep them away from the element until they are let go of.
struct Lent {
    /// Held, never read: it keeps the buffer from the element.
    _sample: gst::Sample,
    /// Index into `known`, for a DMABUF frame.
    known: Option<usize>,
}

/// A libcamera camera through GStreamer, streaming.
pub struct LibcamerasrcSource {
    name: String,
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
    framerate: f64,
    /// The picture size the element negotiated.
    size: (u32, u32),
    shape: Option<Shape>,
    known: Vec<Known>,
    lent: Vec<Lent>,
    /// Frames that are not DMABUFs, copied and packed.
    copy: Vec<u8>,
    overlay: Option<Overlay>,
    /// Whether the log has said that some frames are copied (once).
    said_copying: bool,
    /// The first frame, pulled to prove that the camera streams.
    first: Option<gst::Sample>,
    /// `source.device`, if set.
    camera_name: Option<String>,
    /// The media devices as the camera started (see [`media_devices`]).
    media: Vec<(String, String)>,
}

impl LibcamerasrcSource {
    /// Opens the camera named by `source.device` (a libcamera camera id),
    /// or the first one, through `libcamerasrc`, and starts it streaming.
    pub fn open(config: &Config) -> Result<Self, SourceError> {
        if let Some(why) = unavailable() {
            return Err(SourceError::Unavailable(why));
        }
        if LEFT_RUNNING.load(Ordering::SeqCst) {
            return Err(SourceError::Lost(
                "the libcamera camera vanished while streaming and libcamera cannot let go of \
                 it: no camera until streamcam restarts (the service watchdog does that)"
                    .into(),
            ));
        }
        let make = |factory: &str| {
            gst::ElementFactory::make(factory).build().map_err(|e| {
                SourceError::Unavailable(format!("GStreamer cannot make {factory}: {e}"))
            })
        };
        let src = make(ELEMENT)?;
        if !config.source.device.is_empty() {
            src.set_property("camera-name", &config.source.device);
        }
        apply_camera_settings(&src, &config.camera);
        let video = &config.video;
        let formats = PREFERENCE.map(|l| gst_format(l).to_str());
        let caps = gst::Caps::builder("video/x-raw")
            .field("format", gst::List::new(formats))
            .field("width", video.width as i32)
            .field("height", video.height as i32)
            .field("framerate", gst::Fraction::new(video.framerate as i32, 1))
            .build();
        let filter = make("capsfilter")?;
        filter.set_property("caps", &caps);
        let sink = gst_app::AppSink::builder()
            .max_buffers(QUEUED)
            .drop(true)
            .sync(false)
            .enable_last_sample(false)
            .build();
        accept_video_meta(&sink);
        let pipeline = gst::Pipeline::new();
        let elements = [&src, &filter, sink.upcast_ref()];
        pipeline
            .add_many(elements)
            .and_then(|()| gst::Element::link_many(elements))
            .map_err(|e| SourceError::Unavailable(format!("cannot build the pipeline: {e}")))?;
        let mut source = Self {
            name: "libcamera camera".into(),
            pipeline,
            sink,
            framerate: video.framerate as f64,
            size: (video.width, video.height),
            shape: None,
            known: Vec::new(),
            lent: Vec::new(),
            copy: Vec::new(),
            overlay: Overlay::configured(config.overlay.as_ref()),
            said_copying: false,
            first: None,
            camera_name: (!config.source.device.is_empty()).then(|| config.source.device.clone()),
            media: media_devices(),
        };
        if let Err(e) = source.pipeline.set_state(gst::State::Playing) {
            return Err(source.failure(&format!("starting {ELEMENT}: {e}")));
        }
        // The first frame proves the camera and the caps; the first
        // `next_frame` hands it out.
        source.first = source.sink.try_pull_sample(stall_timeout());
        if source.first.is_none() {
            return Err(source.failure(&format!(
                "{ELEMENT} delivered no frame within {} s",
                STALL_TIMEOUT.as_secs()
            )));
        }
        if let Some(info) = source
            .first
            .as_ref()
            .and_then(|s| s.caps())
            .and_then(|c| gst_video::VideoInfo::from_caps(c).ok())
        {
            source.size = (info.width(), info.height());
        }
        let camera = src.property::<Option<String>>("camera-name");
        source.name = match camera {
            Some(c) if !c.is_empty() => format!("libcamera camera {c}"),
            _ => "libcamera camera".into(),
        };
        tracing::info!(
            "{}: streaming {}x{} through {} ({ELEMENT} {})",
            source.name,
            source.size.0,
            source.size.1,
            gst::version_string(),
            gst::ElementFactory::find(ELEMENT)
                .and_then(|f| f.plugin())
                .map_or_else(|| "?".into(), |p| p.version().to_string()),
        );
        Ok(source)
    }

    /// The error the pipeline reports (its bus's first error), or `what`
    /// when it reports none; the camera's usual causes explained.
    fn failure(&self, what: &str) -> SourceError {
        let bus_error = self.pipeline.bus().and_then(|bus| {
            bus.pop_filtered(&[gst::MessageType::Error])
                .and_then(|m| match m.view() {
                    gst::MessageView::Error(e) => Some((e.error(), e.debug())),
                    _ => None,
                })
        });
        let Some((error, debug)) = bus_error else {
            return SourceError::Stalled(format!("{}: {what}", self.name));
        };
        let detail = debug.map(|d| d.to_string()).unwrap_or_default();
        if error.matches(gst::CoreError::Negotiation)
            || error.matches(gst::StreamError::Format)
            || detail.contains("not-negotiated")
        {
            return SourceError::Invalid(format!(
                "{ELEMENT}: the camera cannot stream video.width x video.height = {}, at \
                 video.framerate, in I420, NV12 or RGB ({error})",
                self.wanted_size()
            ));
        }
        let text = format!("{error} {detail}");
        if let Some(name) = self.camera_name.as_deref()
            && text.contains(name)
        {
            return SourceError::Invalid(format!(
                "source.device = {name:?}: {ELEMENT} has no such camera ({error}); `cam -l` or \
                 `rpicam-hello --list-cameras` lists the cameras there are"
            ));
        }
        if text.contains("No camera") || text.contains("Could not find") {
            return SourceError::Unavailable(format!(
                "{ELEMENT} found no camera ({error}). On a Raspberry Pi: check the ribbon cable \
                 (both ends locked, contacts the right way round); /boot/firmware/config.txt needs \
                 camera_auto_detect=1 (or a dtoverlay= line for the sensor, e.g. \
                 dtoverlay=imx219) and no start_x=1; `rpicam-hello --list-cameras` shows what \
                 libcamera sees"
            ));
        }
        SourceError::Lost(format!("{ELEMENT}: {error} ({detail})"))
    }

    fn wanted_size(&self) -> String {
        let caps = self
            .sink
            .static_pad("sink")
            .and_then(|p| p.peer())
            .and_then(|p| p.parent_element())
            .map(|filter| filter.property::<gst::Caps>("caps"));
        caps.and_then(|c| {
            let s = c.structure(0)?;
            Some(format!(
                "{}x{}",
                s.get::<i32>("width").ok()?,
                s.get::<i32>("height").ok()?
            ))
        })
        .unwrap_or_default()
    }

    /// The index into `known` of `buffer`'s DMABUFs, mapped on first sight;
    /// `None` if its memory is not all DMABUF or its planes cannot be
    /// placed in it.
    fn known(
        &mut self,
        buffer: &gst::BufferRef,
        info: &gst_video::VideoInfo,
        shape: Shape,
    ) -> Option<usize> {
        let mut fds: Vec<BorrowedFd<'_>> = Vec::new();
        // Each memory's DMABUF (an index into `fds`), offset in it and
        // size, in the buffer's order.
        let mut memories = Vec::new();
        for i in 0..buffer.n_memory() {
            let memory = buffer.peek_memory(i);
            let dmabuf = memory.downcast_memory_ref::<gst_allocators::DmaBufMemory>()?;
            let raw = dmabuf.fd();
            // SAFETY: the memory's fd stays open while the buffer lives;
            // it is only borrowed to look at and to duplicate.
            let fd = unsafe { BorrowedFd::borrow_raw(raw) };
            let at = match fds.iter().position(|f| f.as_raw_fd() == raw) {
                Some(at) => at,
                None => {
                    fds.push(fd);
                    fds.len() - 1
                }
            };
            memories.push((at, memory.offset(), memory.size()));
        }
        let inodes: Vec<u64> = fds.iter().map(|fd| inode(*fd)).collect::<Option<_>>()?;
        if let Some(n) = self.known.iter().position(|k| k.inodes == inodes) {
            return Some(n);
        }
        let planes = planes(buffer, info, &memories)?;
        let owned: Vec<OwnedFd> = fds
            .iter()
            .map(|fd| fd.try_clone_to_owned())
            .collect::<Result<_, _>>()
            .ok()?;
        let mapped = match MappedBuffer::new(owned, planes, self.overlay.is_some()) {
            Ok(mapped) => mapped,
            Err(e) => {
                self.say_copying(&format!("a frame buffer cannot be mapped ({e})"));
                return None;
            }
        };
        if self.overlay.is_some() && !mapped.drawable(shape) {
            self.say_copying(
                "a frame buffer cannot be written here (a read-only DMABUF or planes that \
                 overlap) to draw the overlay",
            );
        }
        if self.known.len() >= MAX_BUFFERS {
            self.say_copying(&format!("{ELEMENT} uses more than {MAX_BUFFERS} buffers"));
            return None;
        }
        self.known.push(Known { inodes, mapped });
        Some(self.known.len() - 1)
    }
}

impl Source for LibcamerasrcSource {
    fn kind(&self) -> crate::config::SourceKind {
        crate::config::SourceKind::Libcamera
    }

    fn name(&self) -> String {
        format!("{} (through GStreamer's {ELEMENT})", self.name)
    }

    fn dimensions(&self) -> (u32, u32) {
        self.size
    }

    fn framerate(&self) -> f64 {
        self.framerate
    }

    fn next_frame(&mut self) -> Result<Frame<'_>, SourceError> {
        // Samples go back to the element once no encoder reads them.
        let known = &self.known;
        self.lent.retain(|l| {
            l.known
                .and_then(|n| known.get(n))
                .is_some_and(|k| k.mapped.lease.is_lent())
        });
        let pulled = self
            .first
            .take()
            .or_else(|| self.sink.try_pull_sample(stall_timeout()));
        let Some(sample) = pulled else {
            let what = if self.sink.is_eos() {
                format!("{ELEMENT} ended the stream (the camera went away?)")
            } else {
                format!("delivered no frame for {} s", STALL_TIMEOUT.as_secs())
            };
            return Err(self.failure(&what));
        };
        let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else {
            return Err(SourceError::Lost(format!(
                "{}: a sample without a buffer",
                self.name
            )));
        };
        let info = gst_video::VideoInfo::from_caps(caps)
            .map_err(|e| SourceError::Lost(format!("{}: unreadable caps: {e}", self.name)))?;
        let layout = PREFERENCE
            .into_iter()
            .find(|l| gst_format(*l) == info.format())
            .ok_or_else(|| {
                SourceError::Invalid(format!(
                    "{}: {ELEMENT} gives {}, which streamcam does not take",
                    self.name,
                    info.format().to_str()
                ))
            })?;
        let strides = buffer
            .meta::<gst_video::VideoMeta>()
            .map_or_else(|| info.stride().to_vec(), |m| m.stride().to_vec());
        let shape = Shape {
            layout,
            width: info.width(),
            height: info.height(),
            stride: strides.first().copied().unwrap_or(0).max(0) as usize,
        };
        if self.shape != Some(shape) {
            if let Some(old) = self.shape {
                tracing::info!(
                    "{}: the element changed the format ({old:?} to {shape:?})",
                    self.name
                );
            }
            tracing::info!(
                "{}: {}x{} {} (line stride {})",
                self.name,
                shape.width,
                shape.height,
                info.format().to_str(),
                shape.stride
            );
            self.shape = Some(shape);
            self.known.clear();
        }
        let timestamp = self.capture_time(buffer);
        let chroma_halved = layout != Layout::I420
            || strides.get(1..3).is_some_and(|s| {
                s.iter()
                    .all(|&c| c.max(0) as usize * 2 == shape.stride || shape.stride == 0)
            });
        let known = if chroma_halved {
            self.known(buffer, &info, shape)
        } else {
            None
        };
        let drawable = known.is_some_and(|n| self.known[n].mapped.drawable(shape));
        match known {
            Some(n) if self.overlay.is_none() || drawable => {
                let buffer = &self.known[n].mapped;
                if let Some(overlay) = &mut self.overlay {
                    // SAFETY: the element gave this buffer to us alone and
                    // nothing reads it until it is handed out below.
                    unsafe { buffer.draw(shape, overlay, timestamp) };
                }
                self.lent.push(Lent {
                    _sample: sample,
                    known: Some(n),
                });
                Ok(Frame::Raw(RawFrame {
                    pixels: buffer.pixels(shape),
                    dmabuf: buffer.dmabuf(shape, n as u32),
                    width: shape.width,
                    height: shape.height,
                    timestamp,
                }))
            }
            _ => {
                copy_packed(buffer, &info, &mut self.copy).ok_or_else(|| {
                    SourceError::Lost(format!("{}: cannot read a frame", self.name))
                })?;
                let packed = Shape {
                    stride: packed_stride(layout, shape.width),
                    ..shape
                };
                Ok(Frame::Raw(self.copied(packed, timestamp)))
            }
        }
    }
}

impl LibcamerasrcSource {
    /// Logs once that frames are copied, and why.
    fn say_copying(&mut self, why: &str) {
        if !self.said_copying {
            self.said_copying = true;
            tracing::warn!("{}: {why}: its frames are copied", self.name);
        }
    }

    /// A frame's capture time: libcamera's sensor timestamp, which the
    /// element turns into the buffer's time stamp on the pipeline's clock
    /// (`CLOCK_MONOTONIC`, GStreamer's system clock) less its base time.
    fn capture_time(&self, buffer: &gst::BufferRef) -> Instant {
        let (Some(pts), Some(clock)) = (buffer.pts(), self.pipeline.clock()) else {
            return Instant::now();
        };
        let base = self.pipeline.base_time().unwrap_or(gst::ClockTime::ZERO);
        // The clock against CLOCK_MONOTONIC now (the same clock, unless
        // the pipeline was given another).
        let mut mono = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid timespec to fill.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut mono) };
        let mono_now = mono.tv_sec as i128 * 1_000_000_000 + mono.tv_nsec as i128;
        let clock_now = clock.time().nseconds() as i128;
        let at = (pts + base).nseconds() as i128 + (mono_now - clock_now);
        super::frame::monotonic_instant(at)
    }

    /// The frame copied into `self.copy` (packed in `shape`), with the
    /// overlay drawn on it.
    fn copied(&mut self, shape: Shape, timestamp: Instant) -> RawFrame<'_> {
        let ranges = shape
            .layout
            .packed_planes(shape.stride, shape.height as usize);
        if let Some(overlay) = &mut self.overlay {
            let mut canvas = planes_of(&mut self.copy, &ranges, shape);
            overlay.draw(
                &mut canvas,
                shape.width as usize,
                shape.height as usize,
                timestamp,
                &[],
            );
        }
        let read = |(offset, len): (usize, usize), stride| Plane {
            data: self.copy.get(offset..offset + len).unwrap_or(&[]),
            stride,
        };
        RawFrame {
            pixels: shape
                .layout
                .pixels(shape.stride, |i, stride| read(ranges[i], stride)),
            dmabuf: None,
            width: shape.width,
            height: shape.height,
            timestamp,
        }
    }
}

impl Drop for LibcamerasrcSource {
    fn drop(&mut self) {
        if media_devices() != self.media {
            // libcamera asserts (aborting the process) when the element
            // stops a camera whose device is gone with requests queued:
            // leave the pipeline running, and its buffers with it.
            tracing::error!(
                "{} vanished while streaming (its media device is gone); libcamera cannot stop \
                 it, so no camera opens until streamcam restarts",
                self.name
            );
            LEFT_RUNNING.store(true, Ordering::SeqCst);
            std::mem::forget(std::mem::take(&mut self.lent));
            std::mem::forget(self.first.take());
            std::mem::forget(self.pipeline.clone());
            return;
        }
        self.lent.clear();
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The packed writable planes of `bytes` at `ranges`, for the overlay.
fn planes_of<'a>(bytes: &'a mut [u8], ranges: &[(usize, usize)], shape: Shape) -> Canvas<'a> {
    let mut rest = bytes;
    let mut planes = Vec::new();
    let mut at = 0;
    for &(offset, len) in ranges {
        let (_, tail) = std::mem::take(&mut rest).split_at_mut(offset - at);
        let (plane, tail) = tail.split_at_mut(len);
        planes.push(plane);
        rest = tail;
        at = offset + len;
    }
    let mut planes = planes.into_iter();
    shape.layout.canvas(shape.stride, |_, stride| PlaneMut {
        data: planes.next().unwrap_or_default(),
        stride,
    })
}

/// Bytes per line of a packed copy of a `width`-pixel picture.
fn packed_stride(layout: Layout, width: u32) -> usize {
    match layout {
        Layout::I420 | Layout::Nv12 => width as usize,
        Layout::Rgb24 | Layout::Bgr24 => width as usize * 3,
    }
}

/// Copies `buffer`'s picture into `out`, its planes packed one after the
/// other with no padding; `None` if it cannot be read.
fn copy_packed(
    buffer: &gst::BufferRef,
    info: &gst_video::VideoInfo,
    out: &mut Vec<u8>,
) -> Option<()> {
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info).ok()?;
    out.clear();
    for plane in 0..frame.n_planes() {
        let data = frame.plane_data(plane).ok()?;
        let stride = frame.plane_stride()[plane as usize].max(0) as usize;
        let comp = frame.format_info().plane()[plane as usize];
        let width = frame.comp_width(comp) as usize * frame.comp_pstride(comp).max(1) as usize;
        let lines = frame.comp_height(comp) as usize;
        for line in 0..lines {
            out.extend_from_slice(data.get(line * stride..line * stride + width)?);
        }
    }
    Some(())
}

/// Where each plane of `buffer` lies in its DMABUFs, from its video meta
/// (or the caps' layout), given each memory's (DMABUF, offset, size).
fn planes(
    buffer: &gst::BufferRef,
    info: &gst_video::VideoInfo,
    memories: &[(usize, usize, usize)],
) -> Option<Vec<PlaneAt>> {
    let (offsets, strides) = match buffer.meta::<gst_video::VideoMeta>() {
        Some(m) => (m.offset().to_vec(), m.stride().to_vec()),
        None => (info.offset().to_vec(), info.stride().to_vec()),
    };
    let n_planes = info.n_planes() as usize;
    let mut planes = Vec::with_capacity(n_planes);
    for plane in 0..n_planes {
        let comp = info.format_info().plane()[plane];
        let lines = info.comp_height(comp as u8) as usize;
        let len = strides.get(plane)?.max(&0).to_owned() as usize * lines;
        let mut start = *offsets.get(plane)?;
        // Find the memory holding the plane: offsets run across the
        // buffer's memories one after the other.
        let mut found = None;
        for &(fd, offset, size) in memories {
            if start < size {
                if start + len > size {
                    return None; // a plane split across memories
                }
                found = Some(PlaneAt {
                    fd,
                    offset: offset + start,
                    len,
                });
                break;
            }
            start -= size;
        }
        planes.push(found?);
    }
    Some(planes)
}

/// The inode of a DMABUF: the same buffer under any descriptor.
fn inode(fd: BorrowedFd<'_>) -> Option<u64> {
    // SAFETY: a zeroed stat is a valid argument to fill.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on an open descriptor with a valid stat.
    (unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) } == 0).then_some(stat.st_ino as u64)
}

/// [`STALL_TIMEOUT`] as GStreamer's time.
fn stall_timeout() -> gst::ClockTime {
    gst::ClockTime::from_nseconds(STALL_TIMEOUT.as_nanos() as u64)
}

/// Lets the element attach a video meta (its real strides and plane
/// offsets) instead of copying frames whose layout differs from GStreamer's
/// default: the appsink answers the allocation query that it takes them.
fn accept_video_meta(sink: &gst_app::AppSink) {
    let Some(pad) = sink.static_pad("sink") else {
        return;
    };
    pad.add_probe(gst::PadProbeType::QUERY_DOWNSTREAM, |_, info| {
        if let Some(gst::PadProbeData::Query(query)) = &mut info.data
            && let gst::QueryViewMut::Allocation(allocation) = query.view_mut()
        {
            allocation.add_allocation_meta::<gst_video::VideoMeta>(None);
        }
        gst::PadProbeReturn::Ok
    });
}

/// Sets the `[camera]` settings on the element where the installed plugin
/// has a property for them (libcamera 0.4 and later name them after the
/// controls; 0.1 to 0.3 have only `auto-focus-mode`); a setting it lacks
/// gets one warning naming the key.
fn apply_camera_settings(src: &gst::Element, camera: &CameraConfig) {
    let has = |property: &str| src.find_property(property).is_some();
    let lacks = |key: &str| {
        tracing::warn!(
            "camera.{key} ignored: this {ELEMENT} (GStreamer's libcamera plugin) has no setting for it"
        );
    };
    if camera.hflip || camera.vflip {
        lacks(if camera.hflip { "hflip" } else { "vflip" });
    }
    let enums = [
        (
            "exposure",
            "ae-exposure-mode",
            camera.exposure.map(|m| m.name()),
        ),
        ("awb", "awb-mode", camera.awb.map(|m| m.name())),
        (
            "denoise",
            "noise-reduction-mode",
            camera.denoise.map(|m| m.name()),
        ),
    ];
    for (key, property, value) in enums {
        let Some(value) = value else { continue };
        if has(property) {
            set_enum(src, key, property, value);
        } else {
            lacks(key);
        }
    }
    // A camera that can focus keeps focusing unless told otherwise.
    let autofocus = camera.autofocus.map(|m| m.name());
    if has("af-mode") {
        set_enum(
            src,
            "autofocus",
            "af-mode",
            autofocus.unwrap_or("continuous"),
        );
    } else if has("auto-focus-mode") {
        // libcamera 0.1 to 0.3: its own nicks.
        let nick = match autofocus.unwrap_or("continuous") {
            "manual" => "manual-focus",
            "auto" => "automatic-auto-focus",
            _ => "continuous-auto-focus",
        };
        set_enum(src, "autofocus", "auto-focus-mode", nick);
    } else if autofocus.is_some() {
        lacks("autofocus");
    }
    let floats = [
        ("brightness", camera.brightness),
        ("contrast", camera.contrast),
        ("saturation", camera.saturation),
        ("sharpness", camera.sharpness),
    ];
    for (key, value) in floats {
        let Some(value) = value else { continue };
        let Some(spec) = src.find_property(key) else {
            lacks(key);
            continue;
        };
        match spec.downcast_ref::<gst::glib::ParamSpecFloat>() {
            Some(f) => {
                let used = value.clamp(f.minimum(), f.maximum());
                if used != value {
                    tracing::warn!(
                        "camera.{key} = {value} is outside {}..={}; using {used}",
                        f.minimum(),
                        f.maximum()
                    );
                }
                src.set_property(key, used);
            }
            None => lacks(key),
        }
    }
}

/// Sets enum property `property` to the value named `nick`, or warns that
/// the plugin does not take it.
fn set_enum(src: &gst::Element, key: &str, property: &str, nick: &str) {
    let takes = src
        .find_property(property)
        .and_then(|spec| {
            let spec = spec.downcast::<gst::glib::ParamSpecEnum>().ok()?;
            Some(
                spec.enum_class()
                    .values()
                    .iter()
                    .map(|v| v.nick().to_string())
                    .collect::<Vec<_>>(),
            )
        })
        .unwrap_or_default();
    if takes.iter().any(|t| t == nick) {
        src.set_property_from_str(property, nick);
    } else {
        tracing::warn!(
            "camera.{key} = {nick:?} ignored: this {ELEMENT} takes {}",
            takes.join(", ")
        );
    }
}

/// Tests against GStreamer's libcamerasrc driving the kernel's vimc test
/// camera (and vicodec for the encoder); `ci/vm` runs them in a VM, in a
/// chroot of each Debian release it proves (libcamera 0.4 and 0.7).
#[cfg(test)]
mod vm_tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::encode::v4l2_m2m::codec::vm_tests::code_frames;
    use crate::source::mapped::vm_tests::{
        assert_overlay_drawn, assert_vimc_frames, plug_vimc, raw, vimc_config, vimc_overlay,
    };

    #[test]
    #[ignore = "needs GStreamer's libcamerasrc and the vimc driver: ci/vm runs it"]
    fn vimc_frames_come_through_gstreamer_in_place_with_sensor_times() {
        let mut camera = LibcamerasrcSource::open(&vimc_config(320, 240)).unwrap();
        assert!(camera.name().contains(ELEMENT), "{}", camera.name());
        assert_vimc_frames(&mut camera);
    }

    #[test]
    #[ignore = "needs GStreamer's libcamerasrc and the vimc driver: ci/vm runs it"]
    fn the_overlay_is_drawn_into_the_elements_buffers() {
        let mut config = vimc_config(320, 240);
        config.overlay = Some(vimc_overlay());
        let mut camera = LibcamerasrcSource::open(&config).unwrap();
        assert_overlay_drawn(&mut camera);
        assert!(!camera.said_copying, "drawn in place, not on copies");
    }

    #[test]
    #[ignore = "needs GStreamer's libcamerasrc and the vimc and vicodec drivers: ci/vm runs it"]
    fn vicodec_codes_the_elements_frames_read_in_place() {
        // vicodec codes 640x360 and up.
        let config = vimc_config(640, 480);
        let mut camera = LibcamerasrcSource::open(&config).unwrap();
        assert!(
            code_frames(&mut camera, &config.video, 12, true),
            "the zero-copy path runs"
        );
    }

    #[test]
    #[ignore = "needs GStreamer's libcamerasrc and the vimc driver: ci/vm runs it"]
    fn a_buffer_held_by_the_encoder_goes_back_only_when_let_go_of() {
        let mut camera = LibcamerasrcSource::open(&vimc_config(320, 240)).unwrap();
        let first = raw(camera.next_frame().unwrap());
        let lease = first.dmabuf.as_ref().unwrap().lease.clone();
        let index = first.dmabuf.as_ref().unwrap().index;
        drop(first);
        for n in 0..12 {
            let frame = raw(camera.next_frame().unwrap());
            let dmabuf = frame.dmabuf.as_ref().unwrap();
            assert_ne!(dmabuf.index, index, "frame {n} reused the held buffer");
        }
        drop(lease);
        let seen = (0..24).any(|_| {
            let frame = raw(camera.next_frame().unwrap());
            frame.dmabuf.as_ref().unwrap().index == index
        });
        assert!(seen, "the buffer comes back once the lease is dropped");
    }

    #[test]
    #[ignore = "needs GStreamer's libcamerasrc and the vimc driver: ci/vm runs it"]
    fn a_size_the_camera_cannot_give_is_refused_naming_it() {
        let error = LibcamerasrcSource::open(&vimc_config(4096, 4096))
            .err()
            .expect("vimc stops at 4096x2160");
        assert!(!error.may_recover(), "{error}");
        let message = error.to_string();
        assert!(message.contains("4096x4096"), "{message}");
    }

    #[test]
    #[ignore = "needs GStreamer's libcamerasrc and the vimc driver: ci/vm runs it"]
    fn an_unknown_camera_name_is_refused_naming_it() {
        let mut config = vimc_config(320, 240);
        config.source.device = "no-such-camera".into();
        let error = LibcamerasrcSource::open(&config).err().unwrap();
        assert!(!error.may_recover(), "{error}");
        assert!(error.to_string().contains("no-such-camera"), "{error}");
    }

    #[test]
    #[ignore = "needs GStreamer's libcamerasrc and the vimc driver: ci/vm runs it"]
    fn a_camera_that_vanishes_is_reported_without_a_crash() {
        let config = vimc_config(320, 240);
        let mut camera = LibcamerasrcSource::open(&config).unwrap();
        raw(camera.next_frame().unwrap());
        plug_vimc(false);
        let started = Instant::now();
        let error = loop {
            match camera.next_frame() {
                Ok(_) => assert!(started.elapsed() < Duration::from_secs(10), "frames go on"),
                Err(e) => break e,
            }
        };
        assert!(error.may_recover(), "{error}");
        // Closing it leaves libcamera running rather than letting it abort.
        drop(camera);
        plug_vimc(true);
        let message = LibcamerasrcSource::open(&config).err().unwrap().to_string();
        assert!(message.contains("until streamcam restarts"), "{message}");
    }
}
