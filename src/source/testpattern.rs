//! The test pattern: scrolling colour bars, a bouncing box, and a burnt-in
//! frame counter and wall-clock time (UTC, milliseconds), so a person can
//! judge smoothness and read latency off the picture; the same time as a
//! row of squares along the bottom for programs to read.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::source::frame::{Frame, Source, SourceError, owned_i420};

use super::pacer::{Pacer, WhenLate};
use crate::config::VideoConfig;
use crate::format::civil::format_utc;
use crate::overlay::Overlay;

/// 75% colour bars as (Y, Cb, Cr), BT.601 limited range.
const BARS: [(u8, u8, u8); 8] = [
    (180, 128, 128), // white
    (162, 44, 142),  // yellow
    (131, 156, 44),  // cyan
    (112, 72, 58),   // green
    (84, 184, 198),  // magenta
    (65, 100, 212),  // red
    (35, 212, 114),  // blue
    (16, 128, 128),  // black
];
/// Pixels the bars move per frame.
const SCROLL: usize = 4;
/// Glyph scale: 8x8 font cells drawn as SCALE x SCALE blocks.
const SCALE: usize = 4;
/// Squares in the bottom row's timecode (Unix milliseconds fit in 48 bits
/// until the year 10889).
pub const TIMECODE_BITS: usize = 48;

/// The generated test pattern source.
pub struct TestPattern {
    width: usize,
    height: usize,
    fps: u32,
    frame: u64,
    pacer: Pacer,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
    /// One row of bars, twice over, so a scrolled row is one slice copy.
    bar_rows: [Vec<u8>; 3],
    /// `[overlay]`, drawn over the pattern.
    overlay: Option<Overlay>,
}

impl TestPattern {
    /// A pattern of `width` x `height` whose frames come as fast as they
    /// are asked for (1000 fps): what tests feed an encoder.
    #[cfg(test)]
    pub fn unpaced(width: u32, height: u32) -> Self {
        Self::new(
            &VideoConfig {
                width,
                height,
                framerate: 1000,
                ..VideoConfig::default()
            },
            None,
        )
    }

    /// A pattern of the configured size and frame rate, with `overlay`
    /// drawn over it.
    pub fn new(video: &VideoConfig, overlay: Option<Overlay>) -> Self {
        let (w, h) = (video.width as usize, video.height as usize);
        let row = |plane: usize, width: usize| -> Vec<u8> {
            (0..width * 2)
                .map(|x| {
                    let (y, u, v) = BARS[(x % width) * BARS.len() / width];
                    [y, u, v][plane]
                })
                .collect()
        };
        Self {
            width: w,
            height: h,
            fps: video.framerate,
            frame: 0,
            pacer: Pacer::new(f64::from(video.framerate), WhenLate::Skip),
            y: vec![16; w * h],
            u: vec![128; w * h / 4],
            v: vec![128; w * h / 4],
            bar_rows: [row(0, w), row(1, w / 2), row(2, w / 2)],
            overlay,
        }
    }

    /// Draws frame number `n` at wall-clock time `now`.
    fn render(&mut self, n: u64, now: SystemTime) {
        let (w, h) = (self.width, self.height);
        let cw = w / 2;
        let bars_h = h * 2 / 3;
        let shift = (n as usize * SCROLL) % w;
        for r in 0..bars_h {
            self.y[r * w..(r + 1) * w].copy_from_slice(&self.bar_rows[0][shift..shift + w]);
        }
        for r in 0..bars_h / 2 {
            let s = shift / 2;
            self.u[r * cw..(r + 1) * cw].copy_from_slice(&self.bar_rows[1][s..s + cw]);
            self.v[r * cw..(r + 1) * cw].copy_from_slice(&self.bar_rows[2][s..s + cw]);
        }
        // Lower third: a grey ramp with a white box bouncing across it.
        for r in bars_h..h {
            for (x, px) in self.y[r * w..(r + 1) * w].iter_mut().enumerate() {
                *px = (16 + x * 219 / w) as u8;
            }
        }
        self.u[bars_h / 2 * cw..].fill(128);
        self.v[bars_h / 2 * cw..].fill(128);
        let side = (h / 8).max(2) & !1;
        let travel = w.saturating_sub(side).max(1);
        let pos = (n as usize * SCROLL * 2) % (2 * travel);
        let bx = if pos < travel { pos } else { 2 * travel - pos } & !1;
        let by = (bars_h + (h - bars_h).saturating_sub(side) / 2) & !1;
        self.fill_rect(bx, by, side, side.min(h - by), 235);

        // Text band across the middle of the bars.
        let line_h = 8 * SCALE;
        let band_h = 2 * line_h + 3 * SCALE * 2;
        let band_y = (bars_h.saturating_sub(band_h) / 2) & !1;
        let band_h = band_h.min(h - band_y) & !1;
        self.fill_rect(0, band_y, w, band_h, 16);
        let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let line1 = format!("streamcam {}x{}@{} frame {n:07}", w, h, self.fps);
        let line2 = format_utc(secs.as_secs(), secs.subsec_millis());
        self.draw_text(&line1, SCALE * 2, band_y + SCALE * 2);
        self.draw_text(&line2, SCALE * 2, band_y + SCALE * 4 + line_h);
        self.draw_timecode(secs.as_millis() as u64);
    }

    /// The capture time (Unix milliseconds) along the bottom edge as
    /// [`TIMECODE_BITS`] squares, most significant first, white for 1: a
    /// viewer's latency is its clock minus the time read back from the
    /// picture (bench/browser reads it in the page).
    fn draw_timecode(&mut self, millis: u64) {
        let cell = (self.width / TIMECODE_BITS) & !1;
        if cell < 2 || self.height < cell {
            return;
        }
        let y = (self.height - cell) & !1;
        for bit in 0..TIMECODE_BITS {
            let one = (millis >> (TIMECODE_BITS - 1 - bit)) & 1 == 1;
            self.fill_rect(bit * cell, y, cell, cell, if one { 235 } else { 16 });
        }
    }

    /// Fills a rectangle with grey level `luma` (chroma neutral).
    fn fill_rect(&mut self, x: usize, y: usize, w: usize, h: usize, luma: u8) {
        let (x1, y1) = ((x + w).min(self.width), (y + h).min(self.height));
        for r in y..y1 {
            self.y[r * self.width + x..r * self.width + x1].fill(luma);
        }
        let cw = self.width / 2;
        for r in y / 2..y1 / 2 {
            self.u[r * cw + x / 2..r * cw + x1 / 2].fill(128);
            self.v[r * cw + x / 2..r * cw + x1 / 2].fill(128);
        }
    }

    /// Draws `text` in white, top-left corner at (x, y), clipped to the frame.
    fn draw_text(&mut self, text: &str, x: usize, y: usize) {
        use font8x8::UnicodeFonts;
        for (i, c) in text.chars().enumerate() {
            let glyph = font8x8::BASIC_FONTS.get(c).unwrap_or([0; 8]);
            let gx = x + i * 8 * SCALE;
            for (gy, bits) in glyph.iter().enumerate() {
                for bit in 0..8 {
                    if bits & (1 << bit) != 0 {
                        let px = gx + bit * SCALE;
                        self.fill_luma(px, y + gy * SCALE, SCALE, 235);
                    }
                }
            }
        }
    }

    fn fill_luma(&mut self, x: usize, y: usize, size: usize, luma: u8) {
        if x >= self.width || y >= self.height {
            return;
        }
        let x1 = (x + size).min(self.width);
        for r in y..(y + size).min(self.height) {
            self.y[r * self.width + x..r * self.width + x1].fill(luma);
        }
    }
}

impl Source for TestPattern {
    fn kind(&self) -> crate::config::SourceKind {
        crate::config::SourceKind::Testpattern
    }

    fn name(&self) -> String {
        "testpattern".into()
    }

    fn dimensions(&self) -> (u32, u32) {
        (self.width as u32, self.height as u32)
    }

    fn framerate(&self) -> f64 {
        f64::from(self.fps)
    }

    fn next_frame(&mut self) -> Result<Frame<'_>, SourceError> {
        let timestamp = self.pacer.wait();
        let n = self.frame;
        self.frame += 1;
        self.render(n, SystemTime::now());
        Ok(owned_i420(
            (&mut self.y, &mut self.u, &mut self.v),
            self.width,
            self.height,
            self.overlay.as_mut(),
            timestamp,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::raw::{Pixels, RawFrame};

    #[test]
    fn the_bottom_row_carries_the_time_in_milliseconds() {
        let mut tp = TestPattern::new(&VideoConfig::default(), None);
        assert_eq!((tp.width, tp.height), (1280, 720));
        let when = UNIX_EPOCH + std::time::Duration::from_millis(1_796_000_123_456);
        tp.render(7, when);
        let cell = (1280 / TIMECODE_BITS) & !1;
        let row = 720 - cell + cell / 2;
        let read = (0..TIMECODE_BITS).fold(0u64, |acc, bit| {
            let x = bit * cell + cell / 2;
            (acc << 1) | u64::from(tp.y[row * 1280 + x] > 128)
        });
        assert_eq!(read, 1_796_000_123_456);
    }

    #[test]
    fn frames_differ_and_text_is_drawn() {
        let mut tp = TestPattern::unpaced(320, 240);
        let first = match tp.next_frame().unwrap() {
            Frame::Raw(RawFrame {
                pixels: Pixels::I420 { y, u, v },
                width,
                height,
                ..
            }) => {
                assert_eq!((width, height), (320, 240));
                assert_eq!((y.data.len(), y.stride), (320 * 240, 320));
                assert_eq!((u.data.len(), u.stride), (160 * 120, 160));
                assert_eq!((v.data.len(), v.stride), (160 * 120, 160));
                y.data.to_vec()
            }
            other => panic!("the test pattern is raw I420: {other:?}"),
        };
        let Frame::Raw(RawFrame {
            pixels: Pixels::I420 { y: second, .. },
            ..
        }) = tp.next_frame().unwrap()
        else {
            panic!("raw")
        };
        assert_ne!(first, second.data, "pattern moves");
        // The text band holds white glyph pixels on black.
        let band = &second.data[30 * 320..70 * 320];
        assert!(band.iter().filter(|&&p| p == 235).count() > 500);
        assert!(band.iter().filter(|&&p| p == 16).count() > 1000);
    }

    #[test]
    fn an_overlay_changes_only_its_box() {
        use crate::config::{Corner, OverlayConfig};
        let config = OverlayConfig {
            text: "garden".into(),
            position: Corner::BottomLeft,
            size: 16,
            timezone: None,
        };
        let mut plain = TestPattern::unpaced(320, 240);
        let mut marked = TestPattern::unpaced(320, 240);
        marked.overlay = Some(Overlay::new(&config));
        let luma = |tp: &mut TestPattern| match tp.next_frame().unwrap() {
            Frame::Raw(RawFrame {
                pixels: Pixels::I420 { y, .. },
                ..
            }) => y.data.to_vec(),
            other => panic!("{other:?}"),
        };
        // The pattern's own clock runs in milliseconds: compare the rows
        // without it (the text band and the time code along the bottom).
        let (a, b) = (luma(&mut plain), luma(&mut marked));
        let label = crate::overlay::Label::render("garden", 16);
        let (x0, y0) = label.origin(Corner::BottomLeft, 320, 240, 16);
        let inside = |i: usize| {
            let (col, row) = (i % 320, i / 320);
            (x0..x0 + label.width).contains(&col) && (y0..y0 + label.height).contains(&row)
        };
        let clock = |i: usize| (36..124).contains(&(i / 320)) || i / 320 >= 232;
        for (i, (pa, pb)) in a.iter().zip(&b).enumerate() {
            if !inside(i) && !clock(i) {
                assert_eq!(pa, pb, "pixel {i} outside the box changed");
            }
        }
        assert!(
            (0..a.len()).filter(|&i| inside(i) && a[i] != b[i]).count()
                > label.width * label.height / 2,
            "the box is drawn"
        );
    }

    #[test]
    fn odd_sizes_do_not_panic() {
        for (w, h) in [(16, 16), (18, 2000), (4096, 18), (642, 362)] {
            let mut tp = TestPattern::unpaced(w, h);
            for n in [0, 1, 1_000_000] {
                tp.render(n, SystemTime::now());
            }
        }
    }
}
