//! V4L2 devices, through the `v4l2r` crate's thin ioctl wrappers: opening a
//! node and asking what it is, finding nodes by capability and driver, and
//! the memory-mapped buffers of a queue. Shared by the V4L2 capture source
//! and the memory-to-memory encoder; knows nothing of frames or streams.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use v4l2r::ioctl::IntoErrno;
use v4l2r::ioctl::{
    self, Capabilities, Capability, FormatIterator, MemoryConsistency, PlaneMapping, QueryBuffer,
};
use v4l2r::memory::MemoryType;
pub use v4l2r::{Format, PixelFormat, QueueType};

/// The V4L2 pixel formats streamcam speaks, by their kernel fourcc
/// (`videodev2.h`): the one table for cameras and encoders.
pub mod fourcc {
    use super::PixelFormat;

    /// YUV 4:2:0, three planes (I420).
    pub const YU12: PixelFormat = PixelFormat::from_fourcc(b"YU12");
    /// YUV 4:2:0, a Y plane and an interleaved CbCr plane.
    pub const NV12: PixelFormat = PixelFormat::from_fourcc(b"NV12");
    /// YUV 4:2:2, packed Y0 Cb Y1 Cr.
    pub const YUYV: PixelFormat = PixelFormat::from_fourcc(b"YUYV");
    /// Packed bytes R, G, B.
    pub const RGB3: PixelFormat = PixelFormat::from_fourcc(b"RGB3");
    /// Packed bytes B, G, R.
    pub const BGR3: PixelFormat = PixelFormat::from_fourcc(b"BGR3");
    /// H.264, Annex B.
    pub const H264: PixelFormat = PixelFormat::from_fourcc(b"H264");
    /// vicodec's FWHT (the kernel's test codec).
    pub const FWHT: PixelFormat = PixelFormat::from_fourcc(b"FWHT");
    /// Motion JPEG.
    pub const MJPG: PixelFormat = PixelFormat::from_fourcc(b"MJPG");
    /// JPEG: what some webcams call their Motion JPEG, and what the Pi's
    /// image encoder codes.
    pub const JPEG: PixelFormat = PixelFormat::from_fourcc(b"JPEG");
}

/// A failed operation on a V4L2 node: which node, what was being done, why.
#[derive(Debug, thiserror::Error)]
#[error("{device}: {action}: {cause}")]
pub struct V4l2Error {
    /// The node, e.g. `/dev/video0`.
    pub device: String,
    /// What was being done, e.g. "starting the capture queue".
    pub action: String,
    /// The kernel's or the driver's answer.
    pub cause: String,
    /// The kernel's error number, when the kernel refused; `None` when the
    /// device works but cannot do what was asked (a format it lacks).
    pub errno: Option<i32>,
}

impl V4l2Error {
    /// True if the same operation may work later: the device went away,
    /// is busy or timed out. False when it refused what was asked (a format
    /// or size it cannot do, an ioctl it lacks: ENOTTY from a kernel, ENOSYS
    /// from an emulator such as qemu-user) or access is denied: those need a
    /// change of settings or of the machine.
    pub fn may_recover(&self) -> bool {
        self.errno.is_some_and(|e| {
            !matches!(
                e,
                libc::EINVAL
                    | libc::ENOTTY
                    | libc::ENOSYS
                    | libc::EPERM
                    | libc::EACCES
                    | libc::ENOMEM
            )
        })
    }
}

/// An open V4L2 node and what it says it is.
pub struct Device {
    file: File,
    path: PathBuf,
    caps: Capability,
}

impl Device {
    /// Opens `path` (non-blocking: waits go through [`Device::wait`]).
    pub fn open(path: &Path) -> Result<Self, V4l2Error> {
        let file = File::options()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| V4l2Error {
                device: path.display().to_string(),
                action: "opening".into(),
                cause: e.to_string(),
                errno: e.raw_os_error(),
            })?;
        let caps: Capability = ioctl::querycap(&file).map_err(|e| V4l2Error {
            device: path.display().to_string(),
            action: "querying capabilities (is this a V4L2 device?)".into(),
            cause: e.to_string(),
            errno: Some(e.into_errno()),
        })?;
        Ok(Self {
            file,
            path: path.to_owned(),
            caps,
        })
    }

    /// The node's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The kernel driver's name, e.g. `uvcvideo`, `bcm2835-codec`.
    pub fn driver(&self) -> &str {
        &self.caps.driver
    }

    /// The device's own name, e.g. the webcam's model.
    pub fn card(&self) -> &str {
        &self.caps.card
    }

    /// What this node can do.
    pub fn caps(&self) -> Capabilities {
        self.caps.device_caps()
    }

    /// The capture queue of a camera-like node (capture, streaming, not a
    /// memory-to-memory device), single- or multi-planar.
    pub fn capture_queue(&self) -> Option<QueueType> {
        let caps = self.caps();
        if !caps.contains(Capabilities::STREAMING)
            || caps.intersects(Capabilities::VIDEO_M2M | Capabilities::VIDEO_M2M_MPLANE)
        {
            return None;
        }
        if caps.contains(Capabilities::VIDEO_CAPTURE_MPLANE) {
            Some(QueueType::VideoCaptureMplane)
        } else if caps.contains(Capabilities::VIDEO_CAPTURE) {
            Some(QueueType::VideoCapture)
        } else {
            None
        }
    }

    /// The (OUTPUT, CAPTURE) queues of a memory-to-memory device.
    pub fn m2m_queues(&self) -> Option<(QueueType, QueueType)> {
        let caps = self.caps();
        if !caps.contains(Capabilities::STREAMING) {
            None
        } else if caps.contains(Capabilities::VIDEO_M2M_MPLANE) {
            Some((QueueType::VideoOutputMplane, QueueType::VideoCaptureMplane))
        } else if caps.contains(Capabilities::VIDEO_M2M) {
            Some((QueueType::VideoOutput, QueueType::VideoCapture))
        } else {
            None
        }
    }

    /// The node's descriptor, for the ioctl wrappers.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// The pixel formats a queue offers, in the driver's order of preference.
    pub fn formats(&self, queue: QueueType) -> Vec<PixelFormat> {
        FormatIterator::new(&self.file, queue)
            .map(|f| f.pixelformat)
            .collect()
    }

    /// Waits until a buffer can be dequeued (or an event is pending): false
    /// on timeout.
    pub fn wait(&self, timeout: Duration) -> Result<bool, V4l2Error> {
        let mut pfd = libc::pollfd {
            fd: self.file.as_raw_fd(),
            events: libc::POLLIN | libc::POLLOUT | libc::POLLPRI,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(self.error_with("waiting for a buffer", &e, e.raw_os_error()));
        }
        if pfd.revents & libc::POLLERR != 0 && pfd.revents & (libc::POLLIN | libc::POLLOUT) == 0 {
            // What an unplugged camera looks like.
            let cause = "the device reported an error";
            return Err(self.error_with("waiting for a buffer", cause, Some(libc::EIO)));
        }
        Ok(n > 0)
    }

    /// Allocates `count` MMAP buffers on `queue` (the driver may give more or
    /// fewer) and maps every plane of each.
    pub fn map_buffers(
        &self,
        queue: QueueType,
        count: u32,
    ) -> Result<Vec<MappedBuffer>, V4l2Error> {
        let n: usize = ioctl::reqbufs(
            &self.file,
            queue,
            MemoryType::Mmap,
            count,
            MemoryConsistency::empty(),
        )
        .map_err(|e| self.ioctl_error(format!("allocating {count} buffers"), e))?;
        if n == 0 {
            return Err(self.error("allocating buffers", "the driver gave none"));
        }
        (0..n)
            .map(|index| {
                let info: QueryBuffer = ioctl::querybuf(&self.file, queue, index)
                    .map_err(|e| self.ioctl_error("querying a buffer", e))?;
                let planes = info
                    .planes
                    .iter()
                    .map(|p| {
                        ioctl::mmap(&self.file, p.mem_offset, p.length)
                            .map_err(|e| self.ioctl_error("mapping a buffer", e))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(MappedBuffer { planes })
            })
            .collect()
    }

    /// Exports MMAP buffer `index` (its first plane) as a DMABUF.
    pub fn export(&self, queue: QueueType, index: usize) -> Result<OwnedFd, V4l2Error> {
        ioctl::expbuf::<OwnedFd>(
            &self.file,
            queue,
            index,
            0,
            ioctl::ExpbufFlags::CLOEXEC | ioctl::ExpbufFlags::RDWR,
        )
        .map_err(|e| self.ioctl_error("exporting a buffer as DMABUF", e))
    }

    /// Makes room for `count` DMABUF buffers on `queue` (imported, not
    /// allocated); returns how many the driver allows.
    pub fn request_dmabufs(&self, queue: QueueType, count: u32) -> Result<usize, V4l2Error> {
        ioctl::reqbufs(
            &self.file,
            queue,
            MemoryType::DmaBuf,
            count,
            MemoryConsistency::empty(),
        )
        .map_err(|e| self.ioctl_error(format!("making room for {count} DMABUF buffers"), e))
    }

    /// The device cannot do what `action` asked, for `cause` (no retry
    /// helps).
    pub fn error(&self, action: impl Into<String>, cause: impl std::fmt::Display) -> V4l2Error {
        self.error_with(action, cause, None)
    }

    /// An ioctl for `action` failed; the kernel's error number is kept.
    pub fn ioctl_error<E: std::fmt::Display + IntoErrno>(
        &self,
        action: impl Into<String>,
        e: E,
    ) -> V4l2Error {
        let cause = e.to_string();
        self.error_with(action, cause, Some(e.into_errno()))
    }

    fn error_with(
        &self,
        action: impl Into<String>,
        cause: impl std::fmt::Display,
        errno: Option<i32>,
    ) -> V4l2Error {
        V4l2Error {
            device: self.path.display().to_string(),
            action: action.into(),
            cause: cause.to_string(),
            errno,
        }
    }
}

/// The planes of one MMAP buffer, mapped into this process.
pub struct MappedBuffer {
    /// One mapping per plane.
    pub planes: Vec<PlaneMapping>,
}

/// Every `/dev/videoN` node, in number order.
pub fn nodes() -> Vec<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let n = name.strip_prefix("video")?.parse().ok()?;
            Some((n, entry.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_node_names_itself() {
        let Err(e) = Device::open(Path::new("/dev/video-does-not-exist")) else {
            panic!("opened a missing node")
        };
        let text = e.to_string();
        assert!(
            text.starts_with("/dev/video-does-not-exist: opening: "),
            "{text}"
        );
        // A node that is not there (yet, or any more: unplugged) may come.
        assert_eq!(e.errno, Some(libc::ENOENT));
        assert!(e.may_recover());
    }

    #[test]
    fn a_file_that_is_not_a_device_is_refused() {
        let Err(e) = Device::open(Path::new("/dev/null")) else {
            panic!("/dev/null is not a V4L2 device")
        };
        assert!(e.to_string().contains("is this a V4L2 device?"), "{e}");
        // No retry turns a file that is not a camera into one. A kernel
        // answers an ioctl a file lacks with ENOTTY; qemu-user, which the
        // cross tier runs the tests under, with ENOSYS.
        assert!(
            matches!(e.errno, Some(libc::ENOTTY | libc::ENOSYS)),
            "{:?}",
            e.errno
        );
        assert!(!e.may_recover());
    }
}
