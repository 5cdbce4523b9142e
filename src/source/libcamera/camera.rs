//! The camera thread: libcamera's camera manager, the camera it opens,
//! configures and starts, and its requests, which it passes to the source
//! as buffer numbers and queues again when the source gives them back.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use libcamera::camera::{ActiveCamera, Orientation};
use libcamera::camera_manager::CameraManager;
use libcamera::controls;
use libcamera::framebuffer::AsFrameBuffer;
use libcamera::framebuffer_allocator::{FrameBuffer, FrameBufferAllocator};
use libcamera::geometry::Size;
use libcamera::logging::{LoggingLevel, LoggingStream};
use libcamera::pixel_format::PixelFormat;
use libcamera::properties;
use libcamera::request::{Request, RequestStatus, ReuseFlag};
use libcamera::stream::StreamRole;

use super::controls::camera_controls;
use crate::config::{CameraConfig, VideoConfig};
use crate::source::frame::SourceError;
use crate::source::mapped::{Layout, PREFERENCE, PlaneAt, Shape, media_devices};

/// Set while this process has a libcamera camera manager: libcamera
/// aborts the process if a second one is made.
static MANAGER_IN_USE: AtomicBool = AtomicBool::new(false);
/// Set once a camera vanished while streaming: libcamera can neither stop
/// it (it aborts the process) nor make a second camera manager, so this
/// process opens no camera again; the service watchdog restarts it.
static MANAGER_LEFT_RUNNING: AtomicBool = AtomicBool::new(false);

/// This process's claim on libcamera's one camera manager, given up when
/// dropped (after the manager itself).
pub(super) struct ManagerClaim;

impl ManagerClaim {
    /// Claims the camera manager, or says why it cannot be had.
    pub(super) fn take() -> Result<Self, SourceError> {
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
pub(super) const BUFFERS: u32 = 6;

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
pub(super) struct BufferPlanes {
    /// Its DMABUFs.
    pub(super) fds: Vec<OwnedFd>,
    /// Where each plane lies in them.
    pub(super) planes: Vec<PlaneAt>,
}

/// What the camera thread reports once the camera is streaming.
pub(super) struct Streaming {
    /// The camera's name, for the log.
    pub(super) name: String,
    /// The frames' layout, size and stride.
    pub(super) shape: Shape,
    /// Its frame buffers, in request order.
    pub(super) buffers: Vec<BufferPlanes>,
}

/// Messages to the camera thread.
pub(super) enum ToCamera {
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
pub(super) enum FromCamera {
    /// Buffer `buffer` holds a new frame, captured at `nanos` (monotonic).
    Frame { buffer: u64, nanos: Option<i64> },
    /// The camera failed; the source should be reopened.
    Failed(String),
}

/// What the camera thread is asked to open.
pub(super) struct Wanted {
    /// `source.device`: a libcamera camera id, or empty for the first.
    pub(super) id: String,
    /// `[video]`: the size and rate.
    pub(super) video: VideoConfig,
    /// `[camera]`: the picture controls.
    pub(super) camera: CameraConfig,
}

/// The camera thread: opens, configures and starts the camera, reports
/// that on `started`, then passes finished requests to the source and
/// queues the ones it gives back until told to stop.
pub(super) fn run_camera(
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
    let controls = camera_controls(
        camera.controls(),
        wanted.video.framerate,
        &wanted.camera,
        &name,
    );
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
