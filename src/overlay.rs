//! `[overlay]`: a line of text (strftime fields filled from the capture
//! time, in the system's time zone) burnt into raw frames before they are
//! encoded, in a corner, white on a darkened box. Only the box is touched.
//!
//! The font is font8x8's 8x8 bitmaps scaled to the configured height
//! (nearest neighbour): nothing to load from the system, and a box costs
//! a few hundred thousand instructions a frame. The label is rendered to
//! a mask once a second, when its text can change; each frame then only
//! blends the mask in.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use font8x8::UnicodeFonts;

use crate::config::{Corner, OverlayConfig};
use crate::format::raw::{Canvas, PlaneMut};

/// Luma of the text (white, in video range).
const INK_LUMA: u8 = 235;
/// Longest text strftime may make, in bytes.
const MAX_TEXT_BYTES: usize = 1024;

/// What one pixel of a label is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dot {
    /// Part of a character: white.
    Ink,
    /// The box around the characters: darkened.
    Shade,
}

/// A rendered label: the box and what each of its pixels is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Width in pixels (even).
    pub width: usize,
    /// Height in pixels (even).
    pub height: usize,
    /// Row by row, `width` dots each.
    pub dots: Vec<Dot>,
}

impl Label {
    /// `text` in characters `size` pixels high (and wide), with a margin
    /// of a quarter character around them.
    pub fn render(text: &str, size: usize) -> Self {
        let pad = (size / 4).max(1);
        let chars: Vec<[u8; 8]> = text.chars().map(glyph).collect();
        let width = (2 * pad + chars.len() * size).next_multiple_of(2);
        let height = (2 * pad + size).next_multiple_of(2);
        let mut dots = vec![Dot::Shade; width * height];
        for (i, bits) in chars.iter().enumerate() {
            for gy in 0..size {
                let row = bits[gy * 8 / size];
                if row == 0 {
                    continue;
                }
                let line = (pad + gy) * width + pad + i * size;
                for gx in 0..size {
                    if row & (1 << (gx * 8 / size)) != 0 {
                        dots[line + gx] = Dot::Ink;
                    }
                }
            }
        }
        Self {
            width,
            height,
            dots,
        }
    }

    /// Where the label's top-left corner goes in a `width` x `height`
    /// picture: half a character in from the corner's edges, on even
    /// coordinates (4:2:0 chroma), and never outside the picture.
    pub fn origin(
        &self,
        corner: Corner,
        width: usize,
        height: usize,
        size: usize,
    ) -> (usize, usize) {
        let margin = (size / 2) & !1;
        let right = width.saturating_sub(self.width + margin) & !1;
        let bottom = height.saturating_sub(self.height + margin) & !1;
        let (left, top) = (margin.min(right), margin.min(bottom));
        match corner {
            Corner::TopLeft => (left, top),
            Corner::TopRight => (right, top),
            Corner::BottomLeft => (left, bottom),
            Corner::BottomRight => (right, bottom),
        }
    }
}

/// font8x8's bitmap for `c` (its Basic Latin, Latin-1 and box-drawing
/// sets), or '?' for a character it lacks. Bit 0 is the leftmost pixel.
fn glyph(c: char) -> [u8; 8] {
    font8x8::BASIC_FONTS
        .get(c)
        .or_else(|| font8x8::LATIN_FONTS.get(c))
        .or_else(|| font8x8::BOX_FONTS.get(c))
        .or_else(|| font8x8::BASIC_FONTS.get('?'))
        .unwrap_or([0; 8])
}

unsafe extern "C" {
    /// POSIX: reads `TZ` or /etc/localtime for `localtime_r`.
    fn tzset();
}

/// The overlay of one pipeline: its settings and the label of the second
/// it last drew.
pub struct Overlay {
    format: CString,
    corner: Corner,
    size: usize,
    /// The Unix second the label was made for, and the label.
    label: Option<(i64, Label)>,
    /// Whether the text was found too wide for the picture (said once).
    too_wide: bool,
    /// Whether making a frame's memory ready for the CPU failed (said once).
    sync_failed: bool,
}

impl Overlay {
    /// The configured overlay.
    pub fn new(config: &OverlayConfig) -> Self {
        // SAFETY: no arguments; sets the C library's zone globals once.
        unsafe { tzset() };
        Self {
            // Validation refuses control characters, so there is no NUL.
            format: CString::new(config.text.as_str()).unwrap_or_default(),
            corner: config.position,
            size: config.size as usize,
            label: None,
            too_wide: false,
            sync_failed: false,
        }
    }

    /// The overlay `config` asks for, if any.
    pub fn configured(config: Option<&OverlayConfig>) -> Option<Self> {
        config.map(Self::new)
    }

    /// The text for Unix second `secs`, in local time.
    pub fn text_at(&self, secs: i64) -> String {
        // SAFETY: plain C structs filled by the calls below.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        let time = secs as libc::time_t;
        // SAFETY: valid pointers to a time and a struct to fill.
        if unsafe { libc::localtime_r(&time, &mut tm) }.is_null() {
            return self.format.to_string_lossy().into_owned();
        }
        let mut out = [0u8; MAX_TEXT_BYTES];
        // SAFETY: writes at most `out.len()` bytes, NUL included, and
        // returns how many it wrote before the NUL (0 if it did not fit).
        let n = unsafe {
            libc::strftime(
                out.as_mut_ptr().cast(),
                out.len(),
                self.format.as_ptr(),
                &tm,
            )
        };
        String::from_utf8_lossy(&out[..n]).into_owned()
    }

    /// The label for Unix second `secs`, rendered at the configured size.
    pub fn label_at(&self, secs: i64) -> Label {
        Label::render(&self.text_at(secs), self.size)
    }

    /// Where the label goes in a `width` x `height` picture.
    pub fn origin(&self, label: &Label, width: usize, height: usize) -> (usize, usize) {
        label.origin(self.corner, width, height, self.size)
    }

    /// The box the label takes in a `width` x `height` picture as
    /// `[x, y, width, height]` fractions of it, with a character to spare
    /// on each side (the text's length changes with the time): what
    /// motion detection leaves out.
    pub fn area(&self, width: usize, height: usize) -> [f32; 4] {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let label = self.label_at(now);
        let (x, y) = self.origin(&label, width, height);
        let spare = self.size;
        let (x0, y0) = (x.saturating_sub(spare), y.saturating_sub(spare));
        let x1 = (x + label.width + spare).min(width);
        let y1 = (y + label.height + spare).min(height);
        let (w, h) = (width.max(1) as f32, height.max(1) as f32);
        [
            x0 as f32 / w,
            y0 as f32 / h,
            (x1 - x0) as f32 / w,
            (y1 - y0) as f32 / h,
        ]
    }

    /// Draws the text for capture time `at` into `canvas`, a `width` x
    /// `height` picture. `dmabufs` are the DMABUFs the picture's memory
    /// belongs to: CPU access to them is bracketed with `DMA_BUF_IOCTL_SYNC`.
    pub fn draw(
        &mut self,
        canvas: &mut Canvas<'_>,
        width: usize,
        height: usize,
        at: Instant,
        dmabufs: &[BorrowedFd<'_>],
    ) {
        let wall = SystemTime::now() - at.elapsed();
        let secs = wall
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if self.label.as_ref().is_none_or(|(s, _)| *s != secs) {
            self.label = Some((secs, self.label_at(secs)));
        }
        let Some((_, label)) = &self.label else {
            return;
        };
        if !self.too_wide && (label.width > width || label.height > height) {
            self.too_wide = true;
            tracing::warn!(
                "overlay: the text ({}x{} pixels at overlay.size = {}) does not fit the \
                 {width}x{height} picture; it is cut at the edge",
                label.width,
                label.height,
                self.size
            );
        }
        let (x, y) = label.origin(self.corner, width, height, self.size);
        let area = Area {
            x,
            y,
            width: label.width.min(width - x),
            height: label.height.min(height - y),
        };
        let access = CpuAccess::begin(dmabufs);
        if !access.ok && !self.sync_failed {
            self.sync_failed = true;
            tracing::warn!(
                "overlay: DMA_BUF_IOCTL_SYNC failed on a camera buffer ({}); drawing anyway",
                std::io::Error::last_os_error()
            );
        }
        blend(canvas, label, area);
        drop(access);
    }
}

/// The part of the picture a label covers (clipped to the picture).
#[derive(Debug, Clone, Copy)]
struct Area {
    x: usize,
    y: usize,
    width: usize,
    height: usize,
}

/// Darkens a shaded pixel's value to half, keeping video range.
fn shade(v: u8) -> u8 {
    v / 2 + 8
}

/// Blends `label` into `area` of `canvas`: ink white, the box darkened and
/// (in YUV) grey. Rows or planes shorter than the picture are left alone.
fn blend(canvas: &mut Canvas<'_>, label: &Label, area: Area) {
    match canvas {
        Canvas::I420 { y, u, v } => {
            luma(y, label, area, 1);
            for plane in [u, v] {
                grey_chroma(plane, area, 1);
            }
        }
        Canvas::Nv12 { y, uv } => {
            luma(y, label, area, 1);
            grey_chroma(uv, area, 2);
        }
        Canvas::Yuyv(p) => {
            luma(p, label, area, 2);
            for row in area.y..area.y + area.height {
                let line = row * p.stride;
                if let Some(px) = p
                    .data
                    .get_mut(line + area.x * 2..line + (area.x + area.width) * 2)
                {
                    for c in px.iter_mut().skip(1).step_by(2) {
                        *c = 128;
                    }
                }
            }
        }
        Canvas::Rgb24(p) | Canvas::Bgr24(p) => {
            for (r, dots) in label.dots.chunks(label.width).take(area.height).enumerate() {
                let line = (area.y + r) * p.stride + area.x * 3;
                let Some(px) = p.data.get_mut(line..line + area.width * 3) else {
                    continue;
                };
                for (rgb, dot) in px.chunks_exact_mut(3).zip(dots) {
                    match dot {
                        Dot::Ink => rgb.fill(255),
                        Dot::Shade => rgb.iter_mut().for_each(|c| *c /= 2),
                    }
                }
            }
        }
    }
}

/// Blends the label into a luma plane whose luma samples are `step` bytes
/// apart (1 for planar, 2 for YUYV).
fn luma(plane: &mut PlaneMut<'_>, label: &Label, area: Area, step: usize) {
    for (r, dots) in label.dots.chunks(label.width).take(area.height).enumerate() {
        let line = (area.y + r) * plane.stride + area.x * step;
        let Some(px) = plane.data.get_mut(line..line + area.width * step) else {
            continue;
        };
        for (y, dot) in px.iter_mut().step_by(step).zip(dots) {
            *y = match dot {
                Dot::Ink => INK_LUMA,
                Dot::Shade => shade(*y),
            };
        }
    }
}

/// Sets a 4:2:0 chroma plane (`per_pixel` bytes per chroma sample: 1 for
/// I420's, 2 for NV12's CbCr pairs) to grey under `area`.
fn grey_chroma(plane: &mut PlaneMut<'_>, area: Area, per_pixel: usize) {
    for row in area.y / 2..(area.y + area.height).div_ceil(2) {
        let line = row * plane.stride + area.x / 2 * per_pixel;
        let end = line + area.width.div_ceil(2) * per_pixel;
        if let Some(px) = plane.data.get_mut(line..end) {
            px.fill(128);
        }
    }
}

/// `DMA_BUF_IOCTL_SYNC`: `_IOW('b', 0, struct dma_buf_sync)` (linux/dma-buf.h;
/// the libc crate does not have it).
const DMA_BUF_IOCTL_SYNC: libc::c_ulong = 0x4008_6200;
/// `DMA_BUF_SYNC_READ | DMA_BUF_SYNC_WRITE`.
const DMA_BUF_SYNC_RW: u64 = 3;
/// `DMA_BUF_SYNC_START`.
const DMA_BUF_SYNC_START: u64 = 0;
/// `DMA_BUF_SYNC_END`.
const DMA_BUF_SYNC_END: u64 = 4;

/// CPU access to DMABUFs, from `begin` until dropped: caches are made
/// coherent for the CPU at the start and for devices at the end.
struct CpuAccess<'a> {
    dmabufs: &'a [BorrowedFd<'a>],
    /// False if the start failed on any of them.
    ok: bool,
}

impl<'a> CpuAccess<'a> {
    fn begin(dmabufs: &'a [BorrowedFd<'a>]) -> Self {
        let ok = dmabufs
            .iter()
            .all(|fd| dma_buf_sync(*fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW));
        Self { dmabufs, ok }
    }
}

impl Drop for CpuAccess<'_> {
    fn drop(&mut self) {
        for fd in self.dmabufs {
            dma_buf_sync(*fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW);
        }
    }
}

/// One `DMA_BUF_IOCTL_SYNC`; false if the kernel refused it.
fn dma_buf_sync(fd: BorrowedFd<'_>, flags: u64) -> bool {
    let sync = flags;
    // SAFETY: the ioctl reads one u64 (`struct dma_buf_sync`) from a valid pointer.
    unsafe { libc::ioctl(fd.as_raw_fd(), DMA_BUF_IOCTL_SYNC as _, &sync) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str, position: Corner, size: u32) -> OverlayConfig {
        OverlayConfig {
            text: text.into(),
            position,
            size,
            timezone: None,
        }
    }

    #[test]
    fn a_label_is_the_font_scaled_inside_a_shaded_box() {
        let label = Label::render("I", 8);
        // 8-pixel character, 2-pixel margin: 12x12.
        assert_eq!((label.width, label.height), (12, 12));
        let ink = |l: &Label, x: usize, y: usize| l.dots[y * l.width + x] == Dot::Ink;
        let bits = glyph('I');
        assert!(bits.iter().any(|&row| row != 0));
        for (gy, row) in bits.iter().enumerate() {
            for gx in 0..8 {
                assert_eq!(ink(&label, 2 + gx, 2 + gy), row & (1 << gx) != 0);
            }
        }
        assert!((0..12).all(|x| !ink(&label, x, 0) && !ink(&label, x, 11)));
        // Scaled three times: every font pixel is a 3x3 block.
        let big = Label::render("I", 24);
        assert_eq!((big.width, big.height), (36, 36));
        for gy in 0..24 {
            for gx in 0..24 {
                assert_eq!(
                    ink(&big, 6 + gx, 6 + gy),
                    bits[gy / 3] & (1 << (gx / 3)) != 0
                );
            }
        }
        let unknown = Label::render("\u{4e2d}", 8);
        assert_eq!(unknown, Label::render("?", 8), "a character the font lacks");
    }

    #[test]
    fn labels_sit_in_their_corner_on_even_pixels() {
        let label = Label::render("12:00", 16);
        assert_eq!((label.width, label.height), (88, 24));
        let at = |c| label.origin(c, 640, 360, 16);
        assert_eq!(at(Corner::TopLeft), (8, 8));
        assert_eq!(at(Corner::TopRight), (640 - 88 - 8, 8));
        assert_eq!(at(Corner::BottomLeft), (8, 360 - 24 - 8));
        assert_eq!(at(Corner::BottomRight), (544, 328));
        // Wider than the picture: from the left edge, cut on the right.
        assert_eq!(label.origin(Corner::TopRight, 64, 360, 16), (0, 8));
    }

    #[test]
    fn strftime_fields_are_filled_from_the_capture_second() {
        let o = Overlay::new(&config("%S s, %%, garden", Corner::TopLeft, 8));
        // Every zone's offset is whole minutes: the seconds are the same.
        assert_eq!(o.text_at(3723), "03 s, %, garden");
        let plain = Overlay::new(&config("no fields", Corner::TopLeft, 8));
        assert_eq!(plain.text_at(0), "no fields");
    }

    /// A 64x32 I420 picture of mid grey with a colour, as plane buffers.
    fn i420(w: usize, h: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        (vec![120; w * h], vec![90; w * h / 4], vec![200; w * h / 4])
    }

    /// The planes of a `w`-pixel-wide I420 picture to draw on.
    fn canvas<'a>(y: &'a mut [u8], u: &'a mut [u8], v: &'a mut [u8], w: usize) -> Canvas<'a> {
        Canvas::I420 {
            y: PlaneMut { data: y, stride: w },
            u: PlaneMut {
                data: u,
                stride: w / 2,
            },
            v: PlaneMut {
                data: v,
                stride: w / 2,
            },
        }
    }

    #[test]
    fn drawing_changes_only_the_box() {
        let (w, h) = (64, 32);
        let mut overlay = Overlay::new(&config("AB", Corner::BottomRight, 8));
        let (mut y, mut u, mut v) = i420(w, h);
        let mut canvas = canvas(&mut y, &mut u, &mut v, w);
        overlay.draw(&mut canvas, w, h, Instant::now(), &[]);
        let label = Label::render("AB", 8);
        let (x0, y0) = label.origin(Corner::BottomRight, w, h, 8);
        assert_eq!((x0, y0, label.width, label.height), (40, 16, 20, 12));
        for row in 0..h {
            for col in 0..w {
                let inside =
                    (x0..x0 + label.width).contains(&col) && (y0..y0 + label.height).contains(&row);
                let got = y[row * w + col];
                let want = if !inside {
                    120
                } else if label.dots[(row - y0) * label.width + col - x0] == Dot::Ink {
                    INK_LUMA
                } else {
                    shade(120)
                };
                assert_eq!(got, want, "luma at ({col}, {row})");
                let c = (row / 2) * w / 2 + col / 2;
                let grey = inside;
                assert_eq!(u[c], if grey { 128 } else { 90 }, "Cb at ({col}, {row})");
                assert_eq!(v[c], if grey { 128 } else { 200 }, "Cr at ({col}, {row})");
            }
        }
    }

    #[test]
    fn every_layout_gets_the_same_label() {
        let (w, h) = (48, 24);
        let label = Label::render("7", 8);
        let (x0, y0) = label.origin(Corner::TopLeft, w, h, 8);
        let ink_at = |col: usize, row: usize| {
            (x0..x0 + label.width).contains(&col)
                && (y0..y0 + label.height).contains(&row)
                && label.dots[(row - y0) * label.width + col - x0] == Dot::Ink
        };
        let draw = |canvas: &mut Canvas<'_>| {
            Overlay::new(&config("7", Corner::TopLeft, 8)).draw(canvas, w, h, Instant::now(), &[]);
        };
        // NV12, with a stride wider than the picture.
        let stride = 64;
        let mut y = vec![100; stride * h];
        let mut uv = vec![60; stride * h / 2];
        draw(&mut Canvas::Nv12 {
            y: PlaneMut {
                data: &mut y,
                stride,
            },
            uv: PlaneMut {
                data: &mut uv,
                stride,
            },
        });
        // YUYV.
        let mut yuyv = vec![100; w * 2 * h];
        draw(&mut Canvas::Yuyv(PlaneMut {
            data: &mut yuyv,
            stride: w * 2,
        }));
        // RGB.
        let mut rgb = vec![100; w * 3 * h];
        draw(&mut Canvas::Rgb24(PlaneMut {
            data: &mut rgb,
            stride: w * 3,
        }));
        for row in 0..h {
            for col in 0..w {
                let want = if ink_at(col, row) {
                    INK_LUMA
                } else if col < x0 + label.width
                    && row < y0 + label.height
                    && col >= x0
                    && row >= y0
                {
                    shade(100)
                } else {
                    100
                };
                assert_eq!(y[row * stride + col], want, "NV12 luma at ({col}, {row})");
                assert_eq!(
                    yuyv[row * w * 2 + col * 2],
                    want,
                    "YUYV luma at ({col}, {row})"
                );
                let rgb_want = match want {
                    INK_LUMA => 255,
                    100 => 100,
                    _ => 50,
                };
                assert_eq!(
                    rgb[row * w * 3 + col * 3 + 1],
                    rgb_want,
                    "green at ({col}, {row})"
                );
            }
        }
        // The stride's padding is never touched.
        assert!((0..h).all(|r| {
            y[r * stride + w..(r + 1) * stride]
                .iter()
                .all(|&b| b == 100)
        }));
        let box_start = y0 * w * 2 + x0 * 2;
        assert_eq!(yuyv[box_start + 1], 128, "chroma under the box is grey");
        assert_eq!(yuyv[box_start - 1], 100, "chroma outside it is kept");
    }

    #[test]
    fn a_label_is_made_once_a_second() {
        let mut overlay = Overlay::new(&config("%s", Corner::TopLeft, 8));
        let (w, h) = (64, 32);
        let (mut y, mut u, mut v) = i420(w, h);
        let at = Instant::now();
        for _ in 0..3 {
            overlay.draw(&mut canvas(&mut y, &mut u, &mut v, w), w, h, at, &[]);
        }
        let (secs, label) = overlay.label.clone().unwrap();
        assert_eq!(label, overlay.label_at(secs));
        assert_eq!(overlay.text_at(secs), secs.to_string());
    }
}
