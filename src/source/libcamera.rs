//! libcamera capture: the Raspberry Pi's cameras (Camera Module v1, v2, v3,
//! HQ, Global Shutter) and anything else libcamera drives. Frames arrive in
//! libcamera's DMABUF buffers; an encoder that can read them in place
//! (zero-copy) holds a frame's [`Lease`], and its request goes back to the
//! camera only once the encoder has let go of the buffer.
//!
//! libcamera's objects borrow its camera manager and call back from
//! libcamera's own thread, so they all live on a thread of their own
//! ([`run_camera`]). The source talks to it in buffer numbers and reads the
//! pixels through its own mappings of the buffers ([`super::mapped`]).

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use libcamera::camera::{ActiveCamera, Orientation};
use libcamera::camera_manager::CameraManager;
use libcamera::control::{ControlEntry, ControlInfoMap, ControlList};
use libcamera::control_value::ControlValue;
use libcamera::controls;
use libcamera::framebuffer::AsFrameBuffer;
use libcamera::framebuffer_allocator::{FrameBuffer, FrameBufferAllocator};
use libcamera::geometry::Size;
use libcamera::logging::{LoggingLevel, LoggingStream};
use libcamera::pixel_format::PixelFormat;
use libcamera::properties;
use libcamera::request::{Request, RequestStatus, ReuseFlag};
use libcamera::stream::StreamRole;

use crate::source::frame::{Frame, STALL_TIMEOUT, Source, SourceError};

use super::mapped::{Layout, MappedBuffer, PREFERENCE, PlaneAt, Shape, media_devices};
use crate::config::{
    AutofocusMode, AwbMode, CameraConfig, Config, DenoiseMode, ExposureMode, VideoConfig,
};
use crate::format::raw::RawFrame;
use crate::overlay::Overlay;

/// Set while this process has a libcamera camera manager: libcamera
/// aborts the process if a second one is made.
static MANAGER_IN_USE: AtomicBool = AtomicBool::new(false);
/// Set once a camera vanished while streaming: libcamera can neither stop
/// it (it aborts the process) nor make a second camera manager, so this
/// process opens no camera again; the service watchdog restarts it.
static MANAGER_LEFT_RUNNING: AtomicBool = AtomicBool::new(false);

/// This process's claim on libcamera's one camera manager, given up when
/// dropped (after the manager itself).
struct ManagerClaim;

impl ManagerClaim {
    fn take() -> Result<Self, SourceError> {
        if MANAGER_LEFT_RUNNING.load(Ordering::SeqCst) {
            return Err(SourceError::Lost(
                "the libcamera camera vanished while streaming and libcamera cannot let go of \
                 it: no camera until streamcam restarts (the service watchdog does that)"
                    .into(),
            ));
        }
        if MANAGER_IN_USE.swap(true, Ordering::SeqCst) {
            return Err(SourceError::Unavailable(
                "a libcamera camera is already open in this process (libcamera allows one \
                 camera manager per process)"
                    .into(),
            ));
        }
        Ok(Self)
    }
}

impl Drop for ManagerClaim {
    fn drop(&mut self) {
        MANAGER_IN_USE.store(false, Ordering::SeqCst);
    }
}

/// Buffers asked of libcamera: some with the encoder, one being filled, the
/// rest to ride out scheduling hiccups.
const BUFFERS: u32 = 6;

/// libcamera's pixel format (a DRM fourcc) for a layout.
fn pixel_format(layout: Layout) -> PixelFormat {
    // Built from the fourcc: the crate's named formats are empty when it is
    // built against libcamera 0.4.
    let fourcc = match layout {
        Layout::I420 => b"YU12",
        Layout::Nv12 => b"NV12",
        Layout::Rgb24 => b"BG24",
        Layout::Bgr24 => b"RG24",
    };
    PixelFormat::new(u32::from_le_bytes(*fourcc), 0)
}

/// The layout of a libcamera pixel format, if streamcam takes it.
fn layout_of(format: PixelFormat) -> Option<Layout> {
    PREFERENCE
        .into_iter()
        .find(|l| pixel_format(*l).fourcc() == format.fourcc() && format.modifier() == 0)
}

/// A frame buffer as the camera thread hands it over: its DMABUFs
/// (duplicated, so the source's mappings outlive nothing of libcamera's)
/// and its planes.
struct BufferPlanes {
    fds: Vec<OwnedFd>,
    planes: Vec<PlaneAt>,
}

/// What the camera thread reports once the camera is streaming.
struct Streaming {
    name: String,
    shape: Shape,
    buffers: Vec<BufferPlanes>,
}

/// Messages to the camera thread.
enum ToCamera {
    /// libcamera finished a request (sent from libcamera's thread).
    Completed(Request),
    /// The camera was unplugged or its pipeline died.
    Disconnected,
    /// The source is done with buffer `n`: queue its request again.
    Requeue(u64),
    /// Stop the camera and release it.
    Stop,
}

/// Messages from the camera thread.
enum FromCamera {
    /// Buffer `buffer` holds a new frame, captured at `nanos` (monotonic).
    Frame { buffer: u64, nanos: Option<i64> },
    /// The camera failed; the source should be reopened.
    Failed(String),
}

/// A libcamera camera, streaming.
pub struct LibcameraSource {
    name: String,
    shape: Shape,
    framerate: f64,
    buffers: Vec<MappedBuffer>,
    /// Buffers handed out with frames, given back once nobody reads them.
    returning: Vec<u64>,
    to_camera: mpsc::Sender<ToCamera>,
    from_camera: mpsc::Receiver<FromCamera>,
    thread: Option<JoinHandle<()>>,
    /// `[overlay]`, drawn into each frame.
    overlay: Option<Overlay>,
}

impl LibcameraSource {
    /// Opens the camera named by `source.device` (a libcamera camera id),
    /// or the first one libcamera finds, and starts it streaming.
    pub fn open(config: &Config) -> Result<Self, SourceError> {
        let claim = ManagerClaim::take()?;
        let (to_camera, inbox) = mpsc::channel();
        let (outbox, from_camera) = mpsc::channel();
        let (started_tx, started) = mpsc::channel();
        let wanted = Wanted {
            id: config.source.device.clone(),
            video: config.video.clone(),
            camera: config.camera.clone(),
        };
        let callbacks = to_camera.clone();
        let thread = std::thread::Builder::new()
            .name("libcamera".into())
            .spawn(move || {
                run_camera(&wanted, callbacks, &inbox, &outbox, &started_tx);
                drop(claim);
            })
            .map_err(|e| {
                SourceError::Unavailable(format!("cannot start the camera thread: {e}"))
            })?;
        let streaming = match started.recv() {
            Ok(Ok(streaming)) => streaming,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(SourceError::Lost(
                    "the camera thread ended before the camera started".into(),
                ));
            }
        };
        let mut source = Self {
            name: streaming.name,
            shape: streaming.shape,
            framerate: config.video.framerate as f64,
            buffers: Vec::new(),
            returning: Vec::new(),
            to_camera,
            from_camera,
            thread: Some(thread),
            overlay: Overlay::configured(config.overlay.as_ref()),
        };
        for buffer in streaming.buffers {
            let mapped = MappedBuffer::new(buffer.fds, buffer.planes, config.overlay.is_some())
                .map_err(|e| {
                    SourceError::Unavailable(format!(
                        "{}: cannot map a frame buffer: {e}",
                        source.name
                    ))
                })?;
            source.buffers.push(mapped);
        }
        if source.overlay.is_some() && !source.buffers.iter().all(|b| b.drawable(source.shape)) {
            tracing::warn!(
                "{}: its frame buffers cannot be written here (a read-only DMABUF or planes \
                 that overlap): no overlay",
                source.name
            );
            source.overlay = None;
        }
        tracing::info!(
            "{}: streaming {}x{} {} (line stride {}) from {} buffers",
            source.name,
            source.shape.width,
            source.shape.height,
            source.shape.layout,
            source.shape.stride,
            source.buffers.len()
        );
        Ok(source)
    }
}

impl Source for LibcameraSource {
    fn kind(&self) -> crate::config::SourceKind {
        crate::config::SourceKind::Libcamera
    }

    fn name(&self) -> String {
        format!("libcamera {}", self.name)
    }

    fn dimensions(&self) -> (u32, u32) {
        (self.shape.width, self.shape.height)
    }

    fn framerate(&self) -> f64 {
        self.framerate
    }

    fn next_frame(&mut self) -> Result<Frame<'_>, SourceError> {
        let mut held = Vec::new();
        for n in std::mem::take(&mut self.returning) {
            if self.buffers[n as usize].lease.is_lent() {
                held.push(n);
            } else if self.to_camera.send(ToCamera::Requeue(n)).is_err() {
                return Err(SourceError::Lost(format!(
                    "{}: the camera thread has ended",
                    self.name
                )));
            }
        }
        self.returning = held;
        let (n, nanos) = match self.from_camera.recv_timeout(STALL_TIMEOUT) {
            Ok(FromCamera::Frame { buffer, nanos }) => (buffer, nanos),
            Ok(FromCamera::Failed(why)) => return Err(SourceError::Lost(why)),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(SourceError::Stalled(format!(
                    "{} delivered no frame for {} s",
                    self.name,
                    STALL_TIMEOUT.as_secs()
                )));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(SourceError::Lost(format!(
                    "{}: the camera thread has ended",
                    self.name
                )));
            }
        };
        if n as usize >= self.buffers.len() {
            return Err(SourceError::Lost(format!(
                "{}: frame in unknown buffer {n}",
                self.name
            )));
        }
        self.returning.push(n);
        let timestamp = match nanos {
            Some(ns) => super::frame::monotonic_instant(ns as i128),
            None => std::time::Instant::now(),
        };
        let buffer = &self.buffers[n as usize];
        if let Some(overlay) = &mut self.overlay {
            // SAFETY: the buffer holds the camera's newest frame, which
            // nothing reads until it is handed out below.
            unsafe { buffer.draw(self.shape, overlay, timestamp) };
        }
        Ok(Frame::Raw(RawFrame {
            pixels: buffer.pixels(self.shape),
            dmabuf: buffer.dmabuf(self.shape, n as u32),
            width: self.shape.width,
            height: self.shape.height,
            timestamp,
        }))
    }
}

impl Drop for LibcameraSource {
    fn drop(&mut self) {
        // The camera thread stops the camera and releases it (so that a
        // reopen finds it free) before this returns.
        let _ = self.to_camera.send(ToCamera::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the camera thread is asked to open.
struct Wanted {
    id: String,
    video: VideoConfig,
    camera: CameraConfig,
}

/// The camera thread: opens, configures and starts the camera, reports
/// that on `started`, then passes finished requests to the source and
/// queues the ones it gives back until told to stop.
fn run_camera(
    wanted: &Wanted,
    callbacks: mpsc::Sender<ToCamera>,
    inbox: &mpsc::Receiver<ToCamera>,
    outbox: &mpsc::Sender<FromCamera>,
    started: &mpsc::Sender<Result<Streaming, SourceError>>,
) {
    // libcamera logs to stderr (the journal): no colour codes, and only
    // warnings unless LIBCAMERA_LOG_LEVELS asks for more.
    let _ = libcamera::logging::log_set_stream(LoggingStream::StdErr, false);
    let manager = match CameraManager::new() {
        Ok(manager) => manager,
        Err(e) => {
            let _ = started.send(Err(SourceError::Unavailable(format!(
                "cannot start libcamera: {e}"
            ))));
            return;
        }
    };
    if std::env::var_os("LIBCAMERA_LOG_LEVELS").is_none() {
        manager.log_set_level("*", LoggingLevel::Warn);
    }
    let mut camera = match open_camera(&manager, wanted) {
        Ok(camera) => camera,
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    let (streaming, mut requests, stream) = match configure(&mut camera, wanted) {
        Ok(configured) => configured,
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    let name = streaming.name.clone();
    let completed = callbacks.clone();
    camera.on_request_completed(move |request| {
        let _ = completed.send(ToCamera::Completed(request));
    });
    camera.on_disconnected(move || {
        let _ = callbacks.send(ToCamera::Disconnected);
    });
    let controls = camera_controls(camera.controls(), wanted, &name);
    if let Err(e) = camera.start(Some(&*controls)) {
        let _ = started.send(Err(start_error(&name, "starting", &e)));
        return;
    }
    for request in requests.drain(..) {
        if let Err((_, e)) = camera.queue_request(request) {
            let _ = camera.stop();
            let _ = started.send(Err(start_error(&name, "queuing a request", &e)));
            return;
        }
    }
    // The media devices as the camera started: one gone by the end means
    // the camera may have vanished.
    let media = media_devices();
    if started.send(Ok(streaming)).is_err() {
        let _ = camera.stop();
        return;
    }
    // Requests the source holds, by buffer number.
    let mut held: HashMap<u64, Request> = HashMap::new();
    let mut failed = false;
    while let Ok(message) = inbox.recv() {
        match message {
            ToCamera::Completed(request) => {
                if request.status() != RequestStatus::Complete {
                    continue; // cancelled: the camera is stopping
                }
                let buffer = request.cookie();
                let ok = request
                    .buffer::<FrameBuffer>(&stream)
                    .and_then(|b| b.metadata())
                    .is_none_or(|m| {
                        m.status() == libcamera::framebuffer::FrameMetadataStatus::Success
                    });
                if !ok {
                    // A corrupt frame: capture into the buffer again.
                    requeue(&camera, request);
                    continue;
                }
                let nanos = request
                    .metadata()
                    .get::<controls::SensorTimestamp>()
                    .ok()
                    .map(|t| t.0);
                held.insert(buffer, request);
                if outbox.send(FromCamera::Frame { buffer, nanos }).is_err() {
                    break;
                }
            }
            ToCamera::Requeue(buffer) => {
                if let Some(request) = held.remove(&buffer) {
                    if !requeue(&camera, request) && !failed {
                        failed = true;
                        let _ = outbox.send(FromCamera::Failed(format!(
                            "{name}: libcamera refused a request; reopening the camera"
                        )));
                    }
                }
            }
            ToCamera::Disconnected => {
                let _ = outbox.send(FromCamera::Failed(format!(
                    "{name} disconnected (cable or driver)"
                )));
            }
            ToCamera::Stop => break,
        }
    }
    if media_devices() != media {
        // libcamera asserts (aborting the process) when it stops a camera
        // whose device is gone with requests queued: leave it running.
        tracing::error!(
            "{name} vanished while streaming (its media device is gone); libcamera cannot stop \
             it, so no camera opens until streamcam restarts"
        );
        MANAGER_LEFT_RUNNING.store(true, Ordering::SeqCst);
        std::mem::forget(held);
        std::mem::forget(camera);
        std::mem::forget(manager);
        return;
    }
    if let Err(e) = camera.stop() {
        tracing::warn!("{name}: stopping the camera: {e}");
    }
    // Requests cancelled by stop() come back through the inbox: drop them
    // while the camera still exists.
    while inbox.try_recv().is_ok() {}
    drop(held);
}

/// Queues `request` again with the same buffer; false if libcamera refused.
fn requeue(camera: &ActiveCamera<'_>, mut request: Request) -> bool {
    request.reuse(ReuseFlag::REUSE_BUFFERS);
    match camera.queue_request(request) {
        Ok(()) => true,
        Err((_, e)) => {
            tracing::warn!("cannot queue a camera request: {e}");
            false
        }
    }
}

/// The camera `wanted.id`, or the first one, acquired for this process.
fn open_camera<'m>(
    manager: &'m CameraManager,
    wanted: &Wanted,
) -> Result<ActiveCamera<'m>, SourceError> {
    let cameras = manager.cameras();
    let ids: Vec<String> = (0..cameras.len())
        .filter_map(|i| cameras.get(i).map(|c| c.id().to_string()))
        .collect();
    if ids.is_empty() {
        // libcamera does not list a camera that another process streams.
        if let Some(holder) = media_device_holder() {
            return Err(SourceError::Unavailable(format!(
                "the camera is busy: {holder} holds it; stop that program (a second \
                 streamcam, rpicam-vid, libcamera-vid, motion?)"
            )));
        }
        return Err(SourceError::Unavailable(
            "libcamera found no camera. On a Raspberry Pi: check the ribbon cable (both ends \
             locked, contacts the right way round); /boot/firmware/config.txt needs \
             camera_auto_detect=1 (or a dtoverlay= line for the sensor, e.g. dtoverlay=imx219) \
             and no start_x=1 (the legacy camera stack); `cam -l` or `rpicam-hello \
             --list-cameras` shows what libcamera sees"
                .into(),
        ));
    }
    let camera = if wanted.id.is_empty() {
        cameras.get(0)
    } else {
        manager.get(&wanted.id)
    }
    .ok_or_else(|| {
        SourceError::Invalid(format!(
            "source.device = {:?}: libcamera has no such camera; it has: {}",
            wanted.id,
            ids.join(", ")
        ))
    })?;
    let id = camera.id().to_string();
    camera.acquire().map_err(|e| {
        if e.raw_os_error() == Some(libc::EBUSY) {
            let holder = media_device_holder().unwrap_or_else(|| "another program".into());
            SourceError::Unavailable(format!(
                "camera {id} is busy: {holder} holds it; stop that program (a second \
                 streamcam, rpicam-vid, libcamera-vid, motion?)"
            ))
        } else {
            SourceError::Unavailable(format!("cannot acquire camera {id}: {e}"))
        }
    })
}

/// Which other process holds a camera: libcamera locks the media devices
/// of the camera it acquires (a POSIX record lock, which `F_GETLK` shows
/// with the holder's process id). "process 123 (rpicam-vid) on
/// /dev/media0", or `None` if no media device is locked.
fn media_device_holder() -> Option<String> {
    let nodes = std::fs::read_dir("/dev").ok()?;
    for node in nodes.filter_map(Result::ok) {
        let path = node.path();
        if !node.file_name().to_string_lossy().starts_with("media") {
            continue;
        }
        let Ok(file) = std::fs::File::open(&path) else {
            continue;
        };
        // SAFETY: a zeroed flock is a valid argument to fill.
        let mut lock: libc::flock = unsafe { std::mem::zeroed() };
        lock.l_type = libc::F_WRLCK as _;
        lock.l_whence = libc::SEEK_SET as _;
        // SAFETY: F_GETLK on an open descriptor with a valid flock.
        let status = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut lock) };
        if status == 0 && lock.l_type != libc::F_UNLCK as _ {
            let pid = lock.l_pid;
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            return Some(format!(
                "process {pid} ({}) on {}",
                name.trim(),
                path.display()
            ));
        }
    }
    None
}

/// A name for logs: the sensor model and libcamera's camera id.
fn camera_name(camera: &ActiveCamera<'_>) -> String {
    match camera.properties().get::<properties::Model>() {
        Ok(model) => format!("{} ({})", camera.id(), model.0),
        Err(_) => camera.id().to_string(),
    }
}

/// Configures one video stream of the wanted size in the best layout the
/// camera offers, allocates its buffers and makes a request for each.
fn configure(
    camera: &mut ActiveCamera<'_>,
    wanted: &Wanted,
) -> Result<(Streaming, Vec<Request>, libcamera::stream::Stream), SourceError> {
    let name = camera_name(camera);
    let (width, height) = (wanted.video.width, wanted.video.height);
    let mut config = camera
        .generate_configuration(&[StreamRole::VideoRecording])
        .ok_or_else(|| {
            SourceError::Unavailable(format!("{name} cannot stream video (no configuration)"))
        })?;
    let offered: Vec<PixelFormat> = config
        .get(0)
        .map(|s| s.formats().pixel_formats().into_iter().collect())
        .unwrap_or_default();
    let layout = PREFERENCE
        .into_iter()
        .find(|l| offered.iter().any(|f| layout_of(*f) == Some(*l)))
        .ok_or_else(|| {
            SourceError::Unavailable(format!(
                "{name} offers none of the layouts streamcam takes (YUV420, NV12, RGB888, \
                 BGR888); it offers {}",
                names(&offered)
            ))
        })?;
    {
        let mut stream = config.get_mut(0).expect("one stream was asked for");
        stream.set_pixel_format(pixel_format(layout));
        stream.set_size(Size { width, height });
        stream.set_buffer_count(BUFFERS);
    }
    let orientation = match (wanted.camera.hflip, wanted.camera.vflip) {
        (false, false) => Orientation::Rotate0,
        (true, false) => Orientation::Rotate0Mirror,
        (false, true) => Orientation::Rotate180Mirror,
        (true, true) => Orientation::Rotate180,
    };
    config.set_orientation(orientation);
    if config.validate().is_invalid() {
        return Err(SourceError::Unavailable(format!(
            "{name} cannot stream {width}x{height} {layout} (libcamera: invalid configuration)"
        )));
    }
    if config.orientation() != orientation {
        tracing::warn!(
            "{name}: camera.hflip = {}, camera.vflip = {}: the camera cannot flip so; it \
             streams {:?}",
            wanted.camera.hflip,
            wanted.camera.vflip,
            config.orientation()
        );
    }
    let (size, format, stride) = {
        let stream = config.get(0).expect("one stream was asked for");
        (
            stream.get_size(),
            stream.get_pixel_format(),
            stream.get_stride(),
        )
    };
    if (size.width, size.height) != (width, height) {
        let sizes = config
            .get(0)
            .map(|s| s.formats().sizes(pixel_format(layout)))
            .unwrap_or_default();
        let listed: Vec<String> = sizes
            .iter()
            .map(|s| format!("{}x{}", s.width, s.height))
            .collect();
        return Err(SourceError::Invalid(format!(
            "{name} cannot stream video.width x video.height = {width}x{height} in {layout} \
             (it would give {}x{}); sizes it offers: {}",
            size.width,
            size.height,
            if listed.is_empty() {
                "none listed".to_string()
            } else {
                listed.join(", ")
            }
        )));
    }
    let layout = layout_of(format).ok_or_else(|| {
        SourceError::Unavailable(format!(
            "{name} changed the layout to {}, which streamcam does not take",
            names(&[format])
        ))
    })?;
    camera
        .configure(&mut config)
        .map_err(|e| start_error(&name, "configuring", &e))?;
    let stream = config
        .get(0)
        .and_then(|s| s.stream())
        .ok_or_else(|| SourceError::Unavailable(format!("{name}: no stream after configuring")))?;
    let mut allocator = FrameBufferAllocator::new(camera);
    let frame_buffers = allocator
        .alloc(&stream)
        .map_err(|e| start_error(&name, "allocating frame buffers", &e))?;
    let mut requests = Vec::new();
    let mut buffers = Vec::new();
    for (n, frame_buffer) in frame_buffers.into_iter().enumerate() {
        buffers.push(buffer_planes(&frame_buffer).map_err(|e| {
            SourceError::Unavailable(format!("{name}: cannot share a frame buffer: {e}"))
        })?);
        let mut request = camera.create_request(Some(n as u64)).ok_or_else(|| {
            SourceError::Unavailable(format!("{name}: cannot create a capture request"))
        })?;
        request
            .add_buffer(&stream, frame_buffer)
            .map_err(|e| start_error(&name, "adding a buffer to a request", &e))?;
        requests.push(request);
    }
    Ok((
        Streaming {
            name,
            shape: Shape {
                layout,
                width,
                height,
                stride: stride as usize,
            },
            buffers,
        },
        requests,
        stream,
    ))
}

/// A frame buffer's DMABUFs (duplicated) and where its planes lie in them.
fn buffer_planes(frame_buffer: &FrameBuffer) -> io::Result<BufferPlanes> {
    let mut raw_fds: Vec<i32> = Vec::new();
    let mut fds = Vec::new();
    let mut planes = Vec::new();
    for plane in frame_buffer.planes().into_iter() {
        let fd = match raw_fds.iter().position(|&f| f == plane.fd()) {
            Some(i) => i,
            None => {
                // SAFETY: libcamera keeps the plane's fd open while the
                // buffer exists; it is only borrowed to duplicate it.
                let owned = unsafe { BorrowedFd::borrow_raw(plane.fd()) }.try_clone_to_owned()?;
                raw_fds.push(plane.fd());
                fds.push(owned);
                fds.len() - 1
            }
        };
        planes.push(PlaneAt {
            fd,
            offset: plane.offset().unwrap_or(0),
            len: plane.len(),
        });
    }
    Ok(BufferPlanes { fds, planes })
}

/// An error starting the camera, with the advice for the Pi's usual cause:
/// too little contiguous memory (CMA) for the buffers.
fn start_error(name: &str, what: &str, e: &io::Error) -> SourceError {
    if e.raw_os_error() == Some(libc::ENOMEM) {
        SourceError::Unavailable(format!(
            "{name}: {what}: out of contiguous memory (CMA) for the camera buffers; raise it \
             in /boot/firmware/config.txt (e.g. dtoverlay=vc4-kms-v3d,cma-320) or with cma=320M \
             on the kernel command line, or lower video.width/height"
        ))
    } else if e.raw_os_error() == Some(libc::EBUSY) {
        SourceError::Unavailable(format!(
            "{name}: {what}: the camera is busy (another program holds it)"
        ))
    } else {
        SourceError::Unavailable(format!("{name}: {what}: {e}"))
    }
}

fn names(formats: &[PixelFormat]) -> String {
    let listed: Vec<String> = formats.iter().map(|f| f.to_string()).collect();
    if listed.is_empty() {
        "nothing".into()
    } else {
        listed.join(", ")
    }
}

/// The controls the camera starts with: the frame rate and the `[camera]`
/// settings. A setting the camera lacks, or a value it does not take, is
/// left out with a warning naming it.
fn camera_controls(
    available: &ControlInfoMap,
    wanted: &Wanted,
    name: &str,
) -> libcamera::utils::UniquePtr<ControlList> {
    let mut list = ControlList::new();
    let frame_us = 1_000_000 / i64::from(wanted.video.framerate.max(1));
    if available.find(controls::FrameDurationLimits::ID).is_ok() {
        let _ = list.set(controls::FrameDurationLimits([frame_us, frame_us]));
    } else {
        tracing::info!("{name}: no frame rate control; the camera runs at its own rate");
    }
    let c = &wanted.camera;
    let mut choose = |key: &str, id: u32, value: Option<(i32, &str)>, all: &[(&str, i32)]| {
        let Some((value, label)) = value else {
            return;
        };
        let Ok(info) = available.find(id) else {
            tracing::warn!(
                "{name}: camera.{key} = {label:?} ignored: this camera has no {key} control"
            );
            return;
        };
        let takes: Vec<i32> = info
            .values()
            .into_iter()
            .filter_map(|v| i32::try_from(v).ok())
            .collect();
        if !takes.is_empty() && !takes.contains(&value) {
            let listed: Vec<&str> = all
                .iter()
                .filter(|(_, v)| takes.contains(v))
                .map(|(n, _)| *n)
                .collect();
            tracing::warn!(
                "{name}: camera.{key} = {label:?} ignored: this camera takes {}",
                listed.join(", ")
            );
            return;
        }
        let _ = list.set_raw(id, ControlValue::from(value));
    };
    choose(
        "exposure",
        controls::AeExposureMode::ID,
        c.exposure.map(exposure_mode),
        &EXPOSURE_MODES,
    );
    choose(
        "awb",
        controls::AwbMode::ID,
        c.awb.map(awb_mode),
        &AWB_MODES,
    );
    // A camera that can focus keeps focusing unless told otherwise.
    let autofocus = c.autofocus.or_else(|| {
        available
            .find(controls::AfMode::ID)
            .is_ok()
            .then_some(AutofocusMode::Continuous)
    });
    choose(
        "autofocus",
        controls::AfMode::ID,
        autofocus.map(autofocus_mode),
        &AUTOFOCUS_MODES,
    );
    choose(
        "denoise",
        controls::NoiseReductionMode::ID,
        c.denoise.map(denoise_mode),
        &DENOISE_MODES,
    );
    for (key, id, value) in [
        ("brightness", controls::Brightness::ID, c.brightness),
        ("contrast", controls::Contrast::ID, c.contrast),
        ("saturation", controls::Saturation::ID, c.saturation),
        ("sharpness", controls::Sharpness::ID, c.sharpness),
    ] {
        let Some(value) = value else {
            continue;
        };
        let Ok(info) = available.find(id) else {
            tracing::warn!(
                "{name}: camera.{key} = {value} ignored: this camera has no {key} control"
            );
            continue;
        };
        let (min, max) = (
            f32::try_from(info.min()).unwrap_or(f32::MIN),
            f32::try_from(info.max()).unwrap_or(f32::MAX),
        );
        let used = value.clamp(min, max);
        if used != value {
            tracing::warn!("{name}: camera.{key} = {value} is outside {min}..={max}; using {used}");
        }
        let _ = list.set_raw(id, ControlValue::from(used));
    }
    list
}

const EXPOSURE_MODES: [(&str, i32); 3] = [("normal", 0), ("short", 1), ("long", 2)];
const AWB_MODES: [(&str, i32); 7] = [
    ("auto", 0),
    ("incandescent", 1),
    ("tungsten", 2),
    ("fluorescent", 3),
    ("indoor", 4),
    ("daylight", 5),
    ("cloudy", 6),
];
const AUTOFOCUS_MODES: [(&str, i32); 3] = [("manual", 0), ("auto", 1), ("continuous", 2)];
const DENOISE_MODES: [(&str, i32); 4] =
    [("off", 0), ("fast", 1), ("high-quality", 2), ("minimal", 3)];

/// libcamera's value of `AeExposureMode` and its config name.
fn exposure_mode(mode: ExposureMode) -> (i32, &'static str) {
    pick(
        &EXPOSURE_MODES,
        match mode {
            ExposureMode::Normal => 0,
            ExposureMode::Short => 1,
            ExposureMode::Long => 2,
        },
    )
}

fn awb_mode(mode: AwbMode) -> (i32, &'static str) {
    pick(
        &AWB_MODES,
        match mode {
            AwbMode::Auto => 0,
            AwbMode::Incandescent => 1,
            AwbMode::Tungsten => 2,
            AwbMode::Fluorescent => 3,
            AwbMode::Indoor => 4,
            AwbMode::Daylight => 5,
            AwbMode::Cloudy => 6,
        },
    )
}

fn autofocus_mode(mode: AutofocusMode) -> (i32, &'static str) {
    pick(
        &AUTOFOCUS_MODES,
        match mode {
            AutofocusMode::Manual => 0,
            AutofocusMode::Auto => 1,
            AutofocusMode::Continuous => 2,
        },
    )
}

fn denoise_mode(mode: DenoiseMode) -> (i32, &'static str) {
    pick(
        &DENOISE_MODES,
        match mode {
            DenoiseMode::Off => 0,
            DenoiseMode::Fast => 1,
            DenoiseMode::HighQuality => 2,
            DenoiseMode::Minimal => 3,
        },
    )
}

/// Entry `i` of a (config name, libcamera value) table, as (value, name).
fn pick(table: &[(&'static str, i32)], i: usize) -> (i32, &'static str) {
    let (name, value) = table[i];
    (value, name)
}

/// Tests against a real libcamera driving the kernel's vimc test camera
/// (and vicodec for the encoder); `ci/vm` runs them in a VM.
#[cfg(test)]
pub(crate) mod vm_tests {
    use std::time::Duration;

    use super::*;
    use crate::encode::v4l2_m2m::codec::vm_tests::code_frames;
    use crate::format::raw::Pixels;
    use crate::source::mapped::vm_tests::{
        assert_overlay_drawn, assert_vimc_frames, raw, vimc_config, vimc_overlay,
    };

    #[test]
    #[ignore = "needs libcamera and the vimc driver: ci/vm runs it"]
    fn the_overlay_is_drawn_into_libcameras_buffers() {
        let mut config = vimc_config(320, 240);
        config.overlay = Some(vimc_overlay());
        let mut camera = LibcameraSource::open(&config).unwrap();
        assert!(camera.overlay.is_some(), "vimc's buffers can be written");
        assert_overlay_drawn(&mut camera);
    }

    #[test]
    #[ignore = "needs libcamera and the vimc driver: ci/vm runs it"]
    fn vimc_frames_come_with_pixels_sensor_times_and_dmabufs() {
        let mut camera = LibcameraSource::open(&vimc_config(320, 240)).unwrap();
        assert!(camera.name().contains("vimc"), "{}", camera.name());
        assert_vimc_frames(&mut camera);
    }

    #[test]
    #[ignore = "needs libcamera and the vimc and vicodec drivers: ci/vm runs it"]
    fn vicodec_codes_vimc_frames_read_in_place() {
        // vicodec codes 640x360 and up.
        let config = vimc_config(640, 480);
        let mut camera = LibcameraSource::open(&config).unwrap();
        assert!(
            code_frames(&mut camera, &config.video, 12, true),
            "the zero-copy path runs"
        );
    }

    #[test]
    #[ignore = "needs libcamera and the vimc driver: ci/vm runs it"]
    fn a_buffer_held_by_the_encoder_is_not_captured_into() {
        let mut camera = LibcameraSource::open(&vimc_config(320, 240)).unwrap();
        let first = raw(camera.next_frame().unwrap());
        let lease = first.dmabuf.as_ref().unwrap().lease.clone();
        let index = first.dmabuf.as_ref().unwrap().index;
        let held: Vec<u8> = match first.pixels {
            Pixels::Rgb24(p) | Pixels::Bgr24(p) => p.data.to_vec(),
            other => panic!("vimc streams RGB, got {other:?}"),
        };
        // The frame goes; the encoder's lease stays.
        drop(first);
        // More frames than the camera has buffers: the held one never
        // comes round again while the lease is out.
        for n in 0..BUFFERS + 2 {
            let frame = raw(camera.next_frame().unwrap());
            let dmabuf = frame.dmabuf.as_ref().unwrap();
            assert_ne!(dmabuf.index, index, "frame {n} reused the held buffer");
        }
        let n = index as usize;
        let (Pixels::Rgb24(p) | Pixels::Bgr24(p)) = camera.buffers[n].pixels(camera.shape) else {
            unreachable!()
        };
        assert_eq!(p.data, &held[..], "the held buffer was written");
        drop(lease);
        let seen = (0..2 * BUFFERS).any(|_| {
            let frame = raw(camera.next_frame().unwrap());
            frame.dmabuf.as_ref().unwrap().index == index
        });
        assert!(seen, "the buffer comes back once the lease is dropped");
    }

    #[test]
    #[ignore = "needs libcamera and the vimc driver: ci/vm runs it"]
    fn a_size_the_camera_cannot_give_is_refused_with_the_sizes_it_can() {
        let error = LibcameraSource::open(&vimc_config(4096, 4096))
            .err()
            .expect("vimc stops at 4096x2160");
        let message = error.to_string();
        assert!(message.contains("4096x4096"), "{message}");
        assert!(message.contains("1920x1080"), "{message}");
    }

    #[test]
    #[ignore = "needs libcamera and the vimc driver: ci/vm runs it"]
    fn an_unknown_camera_id_names_the_cameras_there_are() {
        let mut config = vimc_config(320, 240);
        config.source.device = "no-such-camera".into();
        let message = LibcameraSource::open(&config).err().unwrap().to_string();
        assert!(message.contains("no-such-camera"), "{message}");
        assert!(message.contains("vimc"), "{message}");
    }

    #[test]
    #[ignore = "needs libcamera and the vimc driver: ci/vm runs it"]
    fn a_second_camera_in_one_process_is_refused_not_fatal() {
        let config = vimc_config(320, 240);
        let first = LibcameraSource::open(&config).unwrap();
        let message = LibcameraSource::open(&config).err().unwrap().to_string();
        assert!(message.contains("already open"), "{message}");
        drop(first);
        let mut again = LibcameraSource::open(&config).unwrap();
        raw(again.next_frame().unwrap());
    }

    /// Runs the daemon (`STREAMCAM_BIN`) on `config` until it says it is
    /// streaming; the child and its output lines.
    fn start_daemon(config: &str) -> std::process::Child {
        use std::io::{BufRead, BufReader};
        let bin = std::env::var("STREAMCAM_BIN").expect("STREAMCAM_BIN: the daemon to run");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("streamcam.toml");
        std::fs::write(&path, config).unwrap();
        let mut child = std::process::Command::new(bin)
            .arg("--config")
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("ready: streaming") {
                    let _ = tx.send(());
                }
            }
        });
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = child.kill();
            panic!("the daemon did not start streaming");
        }
        child
    }

    #[test]
    #[ignore = "needs libcamera and the vimc driver: ci/vm runs it"]
    fn a_camera_another_process_holds_is_reported_busy() {
        let mut daemon = start_daemon(
            "[server]\nlisten = \"127.0.0.1:18554\"\n[source]\nkind = \"libcamera\"\n\
             [video]\nwidth = 320\nheight = 240\nencoder = \"software\"\n",
        );
        let result = LibcameraSource::open(&vimc_config(320, 240));
        // SAFETY: signals our own child.
        unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
        let status = daemon.wait().unwrap();
        let message = result.err().expect("the camera is busy").to_string();
        assert!(message.contains("busy"), "{message}");
        let holder = format!("process {} (streamcam)", daemon.id());
        assert!(message.contains(&holder), "{message}");
        assert!(status.success(), "the daemon stops cleanly: {status}");
        let mut camera = LibcameraSource::open(&vimc_config(320, 240)).unwrap();
        raw(camera.next_frame().unwrap());
    }
}
