//! A camera's DMABUF frame buffers mapped into this process: where each
//! plane lies, the pixels to read, the canvas the overlay draws on, and the
//! DMABUF an encoder imports in place (zero-copy). Shared by the two ways
//! to libcamera: natively and through GStreamer's `libcamerasrc`, which
//! both hand out frames in buffers that libcamera allocated.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Instant;

use crate::format::raw::{Canvas, DmaBuf, Lease, Pixels, Plane, PlaneMut};
use crate::overlay::Overlay;

/// The pixel layouts taken from libcamera, in order of preference: the
/// encoders' own YUV 4:2:0 first; RGB only for cameras with nothing else
/// (test cameras).
pub(super) const PREFERENCE: [Layout; 4] =
    [Layout::I420, Layout::Nv12, Layout::Rgb24, Layout::Bgr24];

/// What a libcamera stream delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    I420,
    Nv12,
    /// Bytes R, G, B: libcamera's `BGR888` (DRM fourcc `BG24`), GStreamer's `RGB`.
    Rgb24,
    /// Bytes B, G, R: libcamera's `RGB888` (DRM fourcc `RG24`), GStreamer's `BGR`.
    Bgr24,
}

impl std::fmt::Display for Layout {
    /// libcamera's name for the layout.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::I420 => "YUV420",
            Self::Nv12 => "NV12",
            Self::Rgb24 => "BGR888",
            Self::Bgr24 => "RGB888",
        })
    }
}

impl Layout {
    /// Byte ranges of the planes of a `stride` x `height` picture packed in
    /// one buffer, as V4L2's single-plane formats lay them out.
    pub(super) fn packed_planes(self, stride: usize, height: usize) -> Vec<(usize, usize)> {
        let luma = stride * height;
        match self {
            Self::I420 => {
                let chroma = (stride / 2) * height.div_ceil(2);
                vec![(0, luma), (luma, chroma), (luma + chroma, chroma)]
            }
            Self::Nv12 => vec![(0, luma), (luma, stride * height.div_ceil(2))],
            Self::Rgb24 | Self::Bgr24 => vec![(0, luma)],
        }
    }

    /// A picture of this layout to read, from its planes in order (Y, U,
    /// V; Y, UV; or the one plane), each made by `plane` from its number
    /// and its line stride: `stride` for the luma, half that for I420's
    /// chroma.
    pub(super) fn pixels<'a>(
        self,
        stride: usize,
        mut plane: impl FnMut(usize, usize) -> Plane<'a>,
    ) -> Pixels<'a> {
        match self {
            Self::I420 => Pixels::I420 {
                y: plane(0, stride),
                u: plane(1, stride / 2),
                v: plane(2, stride / 2),
            },
            Self::Nv12 => Pixels::Nv12 {
                y: plane(0, stride),
                uv: plane(1, stride),
            },
            Self::Rgb24 => Pixels::Rgb24(plane(0, stride)),
            Self::Bgr24 => Pixels::Bgr24(plane(0, stride)),
        }
    }

    /// The same picture to draw on, its planes made by `plane` as for
    /// [`Layout::pixels`].
    pub(super) fn canvas<'a>(
        self,
        stride: usize,
        mut plane: impl FnMut(usize, usize) -> PlaneMut<'a>,
    ) -> Canvas<'a> {
        match self {
            Self::I420 => Canvas::I420 {
                y: plane(0, stride),
                u: plane(1, stride / 2),
                v: plane(2, stride / 2),
            },
            Self::Nv12 => Canvas::Nv12 {
                y: plane(0, stride),
                uv: plane(1, stride),
            },
            Self::Rgb24 => Canvas::Rgb24(plane(0, stride)),
            Self::Bgr24 => Canvas::Bgr24(plane(0, stride)),
        }
    }
}

/// What every buffer of a stream shares: the layout, the picture size and
/// the luma line stride (chroma lines of I420 are half as long).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Shape {
    pub layout: Layout,
    pub width: u32,
    pub height: u32,
    pub stride: usize,
}

/// Where one plane of a frame buffer lies: which of the buffer's DMABUFs,
/// at which offset, how many bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PlaneAt {
    pub fd: usize,
    pub offset: usize,
    pub len: usize,
}

/// A mapping of one DMABUF: read and write where the overlay draws, else
/// read only.
struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
    /// Whether it may be written (the overlay).
    writable: bool,
}

// SAFETY: the mapping is plain memory owned by this value; it is written
// only through `canvas`, with its buffer borrowed mutably.
unsafe impl Send for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd`, for writing too if `write` and the DMABUF
    /// allows it.
    fn new(fd: BorrowedFd<'_>, len: usize, write: bool) -> io::Result<Self> {
        let map = |prot| {
            // SAFETY: maps `len` bytes of a DMABUF; checked below.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    prot,
                    libc::MAP_SHARED,
                    fd.as_raw_fd(),
                    0,
                )
            };
            (ptr != libc::MAP_FAILED).then_some(ptr)
        };
        if write && let Some(ptr) = map(libc::PROT_READ | libc::PROT_WRITE) {
            return Ok(Self {
                ptr,
                len,
                writable: true,
            });
        }
        match map(libc::PROT_READ) {
            Some(ptr) => Ok(Self {
                ptr,
                len,
                writable: false,
            }),
            None => Err(io::Error::last_os_error()),
        }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes until `self` is dropped.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// One frame buffer of the camera, mapped: its DMABUFs (this process's own
/// descriptors), their mappings, and its planes in them.
pub(super) struct MappedBuffer {
    fds: Vec<OwnedFd>,
    maps: Vec<Mapping>,
    planes: Vec<PlaneAt>,
    /// Held by an encoder reading the buffer in place.
    pub lease: Lease,
}

impl MappedBuffer {
    /// Maps each of `fds` as far as `planes` reach into it, writable too
    /// if `write` (the overlay) and the DMABUF allows it.
    pub fn new(fds: Vec<OwnedFd>, planes: Vec<PlaneAt>, write: bool) -> io::Result<Self> {
        let maps = fds
            .iter()
            .enumerate()
            .map(|(i, fd)| {
                let len = planes
                    .iter()
                    .filter(|p| p.fd == i)
                    .map(|p| p.offset + p.len)
                    .max()
                    .unwrap_or(0);
                Mapping::new(fd.as_fd(), len, write)
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Self {
            fds,
            maps,
            planes,
            lease: Lease::default(),
        })
    }

    /// The planes as (mapping, offset, len): the buffer's own planes, or
    /// the packed layout when it gives one plane for a multi-plane format.
    fn ranges(&self, shape: Shape) -> Vec<(usize, usize, usize)> {
        let packed = shape
            .layout
            .packed_planes(shape.stride, shape.height as usize);
        if self.planes.len() == packed.len() {
            self.planes
                .iter()
                .map(|p| (p.fd, p.offset, p.len))
                .collect()
        } else {
            let base = self.planes.first().copied().unwrap_or(PlaneAt {
                fd: 0,
                offset: 0,
                len: 0,
            });
            packed
                .into_iter()
                .map(|(offset, len)| (base.fd, base.offset + offset, len))
                .collect()
        }
    }

    /// True if the overlay can draw into this buffer: every plane in a
    /// writable mapping, no two overlapping.
    pub fn drawable(&self, shape: Shape) -> bool {
        // SAFETY: the canvas is dropped at once, without a write.
        unsafe { canvas(&self.maps, &self.ranges(shape), shape) }.is_some()
    }

    /// Draws `overlay` into the buffer, for a frame captured at `at`.
    ///
    /// # Safety
    /// Nothing else (the camera, an encoder) may read or write the buffer
    /// while this runs: call it before the frame is handed out.
    pub unsafe fn draw(&self, shape: Shape, overlay: &mut Overlay, at: Instant) {
        let ranges = self.ranges(shape);
        let fds: Vec<BorrowedFd<'_>> = self.fds.iter().map(AsFd::as_fd).collect();
        // SAFETY: the caller's promise.
        if let Some(mut canvas) = unsafe { canvas(&self.maps, &ranges, shape) } {
            overlay.draw(
                &mut canvas,
                shape.width as usize,
                shape.height as usize,
                at,
                &fds,
            );
        }
    }

    /// The buffer's pixels.
    pub fn pixels(&self, shape: Shape) -> Pixels<'_> {
        let plane = |(fd, offset, len): (usize, usize, usize), stride: usize| {
            let bytes = self.maps.get(fd).map_or(&[][..], |m| m.bytes());
            let end = (offset + len).min(bytes.len());
            Plane {
                data: bytes.get(offset..end).unwrap_or(&[]),
                stride,
            }
        };
        let ranges = self.ranges(shape);
        shape
            .layout
            .pixels(shape.stride, |i, stride| plane(ranges[i], stride))
    }

    /// The buffer as one DMABUF an encoder can import (`index` is the
    /// buffer's number, one DMABUF per number), when its planes lie in one
    /// DMABUF, packed as V4L2's single-plane formats are.
    pub fn dmabuf(&self, shape: Shape, index: u32) -> Option<DmaBuf<'_>> {
        let packed = shape
            .layout
            .packed_planes(shape.stride, shape.height as usize);
        let ranges = self.ranges(shape);
        let one_fd = self.fds.len() == 1 && ranges.iter().all(|r| r.0 == 0);
        let in_place = ranges
            .iter()
            .zip(&packed)
            .all(|(r, p)| r.1 == p.0 && r.2 >= p.1);
        if !one_fd || !in_place {
            return None;
        }
        let used = packed.last().map_or(0, |(offset, len)| offset + len);
        Some(DmaBuf {
            fd: self.fds[0].as_fd(),
            index,
            length: self.maps[0].len,
            used,
            lease: self.lease.clone(),
        })
    }
}

/// The media devices there are now, as (name, device number), sorted: one
/// gone since a camera started means the camera vanished, and libcamera
/// aborts the process if it is asked to stop such a camera.
pub(super) fn media_devices() -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = std::fs::read_dir("/sys/bus/media/devices")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| {
                    let dev = std::fs::read_to_string(e.path().join("dev")).unwrap_or_default();
                    (e.file_name().to_string_lossy().into_owned(), dev)
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// A buffer's pixels to draw on, from its `maps` and its planes' `ranges`
/// (mapping, offset, length): `None` unless every plane lies in a writable
/// mapping and no two overlap.
///
/// # Safety
/// Nothing else may read or write the mapped memory while the canvas lives.
unsafe fn canvas<'a>(
    maps: &'a [Mapping],
    ranges: &[(usize, usize, usize)],
    shape: Shape,
) -> Option<Canvas<'a>> {
    for (i, &(fd, offset, len)) in ranges.iter().enumerate() {
        let map = maps.get(fd)?;
        let overlaps = ranges[..i]
            .iter()
            .any(|&(f, o, l)| f == fd && offset < o + l && o < offset + len);
        if !map.writable || offset + len > map.len || overlaps {
            return None;
        }
    }
    let plane = |(fd, offset, len): (usize, usize, usize), stride: usize| {
        // SAFETY: inside a writable mapping that lives as long as `maps`
        // (checked above); no two planes overlap (checked above) and
        // nothing else uses the memory meanwhile (the caller's promise).
        let data =
            unsafe { std::slice::from_raw_parts_mut(maps[fd].ptr.cast::<u8>().add(offset), len) };
        PlaneMut { data, stride }
    };
    Some(
        shape
            .layout
            .canvas(shape.stride, |i, stride| plane(ranges[i], stride)),
    )
}

/// What the tests of both ways to libcamera share: vimc, the kernel's test
/// camera, which `ci/vm` loads in its VM.
#[cfg(test)]
pub(crate) mod vm_tests {
    use crate::config::{Config, Corner, OverlayConfig, SourceKind};
    use crate::format::raw::{Pixels, RawFrame};
    use crate::overlay::{Dot, Label};
    use crate::source::frame::{Frame, STALL_TIMEOUT, Source};

    /// Unbinds (false) or binds (true) vimc's platform device: the camera
    /// vanishes or comes back. When it comes back, its nodes get the udev
    /// database entries libcamera looks for, as udev would give them.
    pub(crate) fn plug_vimc(present: bool) {
        let action = if present { "bind" } else { "unbind" };
        std::fs::write(format!("/sys/bus/platform/drivers/vimc/{action}"), "vimc.0")
            .unwrap_or_else(|e| panic!("vimc {action}: {e}"));
        if !present {
            return;
        }
        for class in ["/sys/bus/media/devices", "/sys/class/video4linux"] {
            for entry in std::fs::read_dir(class).unwrap().filter_map(Result::ok) {
                if let Ok(dev) = std::fs::read_to_string(entry.path().join("dev")) {
                    let path = format!("/run/udev/data/c{}", dev.trim());
                    std::fs::write(&path, "I:1\n").unwrap_or_else(|e| panic!("{path}: {e}"));
                }
            }
        }
    }

    /// A config for vimc's camera at `width`x`height`.
    pub(crate) fn vimc_config(width: u32, height: u32) -> Config {
        let mut config = Config::default();
        config.source.kind = SourceKind::Libcamera;
        config.video.width = width;
        config.video.height = height;
        config
    }

    /// The raw frame of `frame`.
    pub(crate) fn raw(frame: Frame<'_>) -> RawFrame<'_> {
        match frame {
            Frame::Raw(frame) => frame,
            Frame::Encoded(_) => panic!("libcamera gives raw frames"),
        }
    }

    /// `camera` (vimc at 320x240) gives five frames of colour bars in
    /// DMABUFs, stamped with sensor times that run forward.
    pub(crate) fn assert_vimc_frames(camera: &mut dyn Source) {
        assert_eq!(camera.dimensions(), (320, 240));
        let mut last = None;
        for n in 0..5 {
            let frame = raw(camera.next_frame().unwrap());
            assert_eq!((frame.width, frame.height), (320, 240));
            let (Pixels::Rgb24(p) | Pixels::Bgr24(p)) = frame.pixels else {
                panic!("vimc streams RGB, got {:?}", frame.pixels)
            };
            assert!(p.stride >= 3 * 320, "stride {}", p.stride);
            assert!(
                p.data.len() >= p.stride * 239 + 3 * 320,
                "{} bytes",
                p.data.len()
            );
            // vimc's sensor draws colour bars: not one flat colour.
            let first = &p.data[..3];
            assert!(
                p.data[..3 * 320].chunks(3).any(|px| px != first),
                "frame {n} is one flat colour"
            );
            let dmabuf = frame.dmabuf.as_ref().expect("a DMABUF to import");
            assert!(dmabuf.used >= p.stride * 240 && dmabuf.length >= dmabuf.used);
            // Sensor timestamps: monotonic, in the recent past.
            let age = frame.timestamp.elapsed();
            assert!(age < STALL_TIMEOUT, "frame {n} is {age:?} old");
            if let Some(last) = last {
                assert!(frame.timestamp > last, "frame {n}: time went backwards");
            }
            last = Some(frame.timestamp);
        }
    }

    /// The `[overlay]` that [`assert_overlay_drawn`] looks for.
    pub(crate) fn vimc_overlay() -> OverlayConfig {
        OverlayConfig {
            text: "vimc".into(),
            position: Corner::BottomLeft,
            size: 16,
            timezone: None,
        }
    }

    /// `camera` (vimc at 320x240, with [`vimc_overlay`]) has the label in
    /// five frames running: white ink on a dark box.
    pub(crate) fn assert_overlay_drawn(camera: &mut dyn Source) {
        let label = Label::render("vimc", 16);
        let (x0, y0) = label.origin(Corner::BottomLeft, 320, 240, 16);
        for n in 0..5 {
            let frame = raw(camera.next_frame().unwrap());
            let (Pixels::Rgb24(p) | Pixels::Bgr24(p)) = frame.pixels else {
                panic!("vimc streams RGB, got {:?}", frame.pixels)
            };
            for (i, dot) in label.dots.iter().enumerate() {
                let (col, row) = (x0 + i % label.width, y0 + i / label.width);
                let at = row * p.stride + col * 3;
                let rgb = &p.data[at..at + 3];
                match dot {
                    Dot::Ink => assert_eq!(rgb, [255; 3], "frame {n}: ink at ({col}, {row})"),
                    Dot::Shade => assert!(
                        rgb.iter().all(|&c| c <= 127),
                        "frame {n}: shade at ({col}, {row}): {rgb:?}"
                    ),
                }
            }
        }
    }
}
