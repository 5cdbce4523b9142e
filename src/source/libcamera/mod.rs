//! libcamera capture: the Raspberry Pi's cameras (Camera Module v1, v2, v3,
//! HQ, Global Shutter) and anything else libcamera drives. Frames arrive in
//! libcamera's DMABUF buffers; an encoder that can read them in place
//! (zero-copy) holds a frame's [`Lease`], and its request goes back to the
//! camera only once the encoder has let go of the buffer.
//!
//! libcamera's objects borrow its camera manager and call back from
//! libcamera's own thread, so they all live on a thread of their own
//! (`camera`, which sets the camera up with the `controls` `[camera]` asks
//! for). The source, here, talks to it in buffer numbers and reads the
//! pixels through its own mappings of the buffers ([`super::mapped`]).

mod camera;
mod controls;

use std::sync::mpsc;
use std::thread::JoinHandle;

use camera::{FromCamera, ManagerClaim, ToCamera, Wanted, run_camera};

use crate::config::Config;
use crate::format::raw::RawFrame;
use crate::overlay::Overlay;
use crate::source::frame::{Frame, STALL_TIMEOUT, Source, SourceError, monotonic_instant};
use crate::source::mapped::{MappedBuffer, Shape};

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
            Some(ns) => monotonic_instant(ns as i128),
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

/// Tests against a real libcamera driving the kernel's vimc test camera
/// (and vicodec for the encoder); `ci/vm` runs them in a VM.
#[cfg(test)]
pub(crate) mod vm_tests {
    use std::time::Duration;

    use super::camera::BUFFERS;
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
