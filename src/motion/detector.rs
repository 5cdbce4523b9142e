//! Motion in a small luma picture, without I/O: each analysed picture is
//! compared with a slowly updated background, its changed pixels counted
//! on a grid of cells, and motion starts after a few consecutive pictures
//! with enough change and ends once none has come for the hold time.
//!
//! What is not motion is kept out:
//! - sensor noise: the picture is a small copy (each pixel the mean of
//!   many), a pixel must differ by `threshold`, and a cell counts only
//!   when a share of its pixels changed, not a stray one;
//! - the picture getting brighter or darker as a whole (auto-exposure, a
//!   cloud, a light switched on): the straight line that best maps the
//!   background to the picture (a gain and an offset) is taken off every
//!   pixel first (clipped highlights left out), and what still changes
//!   over most of the picture starts nothing: the background is taken
//!   again from the new picture;
//! - what the mask covers (a road, a tree, the overlay's clock).
//!
//! By hand: a few loops over a picture of some thousand pixels, which no
//! crate does without bringing an image-processing library.

use std::time::{Duration, Instant};

/// Side of a cell, in pixels of the small picture.
const CELL: usize = 8;
/// A cell counts as changed when at least this share of its (unmasked)
/// pixels changed: a few noisy pixels do not make a cell.
const CELL_SHARE: f32 = 1.0 / 8.0;
/// A change over more than this share of the picture is the light, not
/// something moving.
const GLOBAL_SHARE: f32 = 0.5;
/// How fast the background follows the picture where nothing moves, and
/// where something does (a parked car becomes background within a minute
/// at 5 analyses a second): the new picture's weight, in 256ths.
const FOLLOW: u32 = 16;
const FOLLOW_MOVING: u32 = 1;
/// Luma at or above this is clipped (a light switched on saturates the
/// highlights): such a pixel says nothing about change, and is skipped.
const CLIPPED: u8 = 250;

/// A rectangle of the picture, in fractions of its width and height
/// (0 to 1), from its top-left corner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Area {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

/// What makes motion.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Share of the (unmasked) picture that must change, 0 to 1.
    pub sensitivity: f32,
    /// How much a pixel must change to count, in luma levels (1 to 255).
    pub threshold: u8,
    /// Consecutive analysed pictures with motion before it starts.
    pub min_frames: u32,
    /// Time without motion before it ends.
    pub hold: Duration,
    /// Areas left out.
    pub mask: Vec<Area>,
}

impl From<&crate::config::MotionConfig> for Settings {
    fn from(c: &crate::config::MotionConfig) -> Self {
        Self {
            sensitivity: c.sensitivity / 100.0,
            threshold: u8::try_from(c.threshold).unwrap_or(u8::MAX),
            min_frames: c.min_frames,
            hold: Duration::from_secs_f32(c.hold),
            mask: c
                .mask
                .iter()
                .map(|&[x, y, width, height]| Area {
                    x,
                    y,
                    width,
                    height,
                })
                .collect(),
        }
    }
}

/// A motion event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event {
    /// Motion started; `at` is the capture time of its first picture,
    /// `area` the share of the picture that changed then.
    Start { at: Instant, area: f32 },
    /// Motion ended at `at` (the hold time after the last picture with
    /// motion), `duration` after it started; `area` the largest share
    /// that changed meanwhile.
    End {
        at: Instant,
        duration: Duration,
        area: f32,
    },
}

/// Motion going on.
#[derive(Debug, Clone, Copy)]
struct Active {
    since: Instant,
    last: Instant,
    peak: f32,
}

/// The detector of one stream, for pictures of one size.
#[derive(Debug)]
pub struct Detector {
    settings: Settings,
    width: usize,
    height: usize,
    /// Per pixel, the background in 256ths of a level; empty before the
    /// first picture.
    background: Vec<u32>,
    /// Per pixel, whether the mask leaves it out.
    masked: Vec<bool>,
    /// Unmasked pixels per cell, and in all.
    cell_pixels: Vec<u32>,
    unmasked: u32,
    /// Per cell, changed pixels in the picture being analysed.
    changed: Vec<u32>,
    /// Consecutive pictures with motion, and the capture time of the first.
    run: u32,
    run_start: Option<Instant>,
    active: Option<Active>,
}

impl Detector {
    /// A detector for `width` x `height` luma pictures.
    pub fn new(settings: Settings, width: usize, height: usize) -> Self {
        let cols = width.div_ceil(CELL);
        let rows = height.div_ceil(CELL);
        let mut masked = vec![false; width * height];
        for area in &settings.mask {
            let x0 = (area.x.clamp(0.0, 1.0) * width as f32).floor() as usize;
            let y0 = (area.y.clamp(0.0, 1.0) * height as f32).floor() as usize;
            let x1 = ((area.x + area.width).clamp(0.0, 1.0) * width as f32).ceil() as usize;
            let y1 = ((area.y + area.height).clamp(0.0, 1.0) * height as f32).ceil() as usize;
            for y in y0..y1.min(height) {
                masked[y * width + x0.min(width)..y * width + x1.min(width)].fill(true);
            }
        }
        let mut cell_pixels = vec![0; cols * rows];
        for y in 0..height {
            for x in 0..width {
                if !masked[y * width + x] {
                    cell_pixels[(y / CELL) * cols + x / CELL] += 1;
                }
            }
        }
        let unmasked = cell_pixels.iter().sum();
        Self {
            settings,
            width,
            height,
            background: Vec::new(),
            masked,
            changed: vec![0; cell_pixels.len()],
            cell_pixels,
            unmasked,
            run: 0,
            run_start: None,
            active: None,
        }
    }

    /// The size of the pictures it takes.
    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// Whether motion is going on.
    #[cfg(test)]
    fn active(&self) -> bool {
        self.active.is_some()
    }

    /// Analyses `luma` (`width` x `height`, tightly packed), captured at
    /// `at`: the event it makes, if any.
    pub fn analyse(&mut self, luma: &[u8], at: Instant) -> Option<Event> {
        let n = self.width * self.height;
        let luma = &luma[..n];
        if self.background.len() != n || self.unmasked == 0 {
            self.background = luma.iter().map(|&p| u32::from(p) << 8).collect();
            return None;
        }
        // The picture's overall change (exposure, gain, a light): the
        // least-squares line from background to picture, taken off each
        // pixel, so that only what changed apart from it counts.
        let (mut sb, mut sp, mut sbb, mut sbp, mut n) = (0f64, 0f64, 0f64, 0f64, 0f64);
        for ((&p, &b), &m) in luma.iter().zip(&self.background).zip(&self.masked) {
            if !m && p < CLIPPED && b < u32::from(CLIPPED) << 8 {
                let (b, p) = (f64::from(b) / 256.0, f64::from(p));
                sb += b;
                sp += p;
                sbb += b * b;
                sbp += b * p;
                n += 1.0;
            }
        }
        let n = n.max(1.0);
        let variance = sbb - sb * sb / n;
        let gain = if variance > n {
            ((sbp - sb * sp / n) / variance).clamp(0.25, 4.0)
        } else {
            1.0
        };
        let offset = (sp - gain * sb) / n;
        // In 256ths of a level, as the background.
        let (gain, offset) = ((gain * 65_536.0) as i64, (offset * 256.0) as i64);
        let threshold = i64::from(self.settings.threshold) << 8;
        let cols = self.width.div_ceil(CELL);
        self.changed.fill(0);
        let mut changed_pixels = 0u32;
        for y in 0..self.height {
            let row = y * self.width;
            let cells = (y / CELL) * cols;
            for x in 0..self.width {
                let i = row + x;
                if self.masked[i] || luma[i] >= CLIPPED {
                    continue;
                }
                let expected = ((i64::from(self.background[i]) * gain) >> 16) + offset;
                let d = (i64::from(luma[i]) << 8) - expected;
                if d.abs() > threshold {
                    self.changed[cells + x / CELL] += 1;
                    changed_pixels += 1;
                }
            }
        }
        let global = changed_pixels as f32 > GLOBAL_SHARE * self.unmasked as f32;
        let mut area_pixels = 0u32;
        for (changed, &pixels) in self.changed.iter_mut().zip(&self.cell_pixels) {
            let moving = pixels > 0 && *changed as f32 >= CELL_SHARE * pixels as f32;
            if moving {
                area_pixels += *changed;
            } else {
                *changed = 0;
            }
        }
        let area = area_pixels as f32 / self.unmasked as f32;
        if global {
            // The light changed: the new picture is the background.
            for (b, &p) in self.background.iter_mut().zip(luma) {
                *b = u32::from(p) << 8;
            }
        } else {
            self.follow(luma);
        }
        let moving = !global && area >= self.settings.sensitivity;
        self.step(moving, area, at)
    }

    /// Moves the background towards `luma`: slowly where something moves.
    fn follow(&mut self, luma: &[u8]) {
        let cols = self.width.div_ceil(CELL);
        for y in 0..self.height {
            let row = y * self.width;
            let cells = (y / CELL) * cols;
            for x in 0..self.width {
                let i = row + x;
                let weight = if self.changed[cells + x / CELL] > 0 {
                    FOLLOW_MOVING
                } else {
                    FOLLOW
                };
                let b = self.background[i];
                let p = u32::from(luma[i]) << 8;
                self.background[i] = (b * (256 - weight) + p * weight) >> 8;
            }
        }
    }

    /// The state machine: `min_frames` pictures with motion start it,
    /// `hold` without end it.
    fn step(&mut self, moving: bool, area: f32, at: Instant) -> Option<Event> {
        if moving {
            self.run += 1;
            let first = *self.run_start.get_or_insert(at);
            if let Some(active) = &mut self.active {
                active.last = at;
                active.peak = active.peak.max(area);
                return None;
            }
            if self.run >= self.settings.min_frames.max(1) {
                self.active = Some(Active {
                    since: first,
                    last: at,
                    peak: area,
                });
                return Some(Event::Start { at: first, area });
            }
            return None;
        }
        self.run = 0;
        self.run_start = None;
        let active = self.active?;
        if at.saturating_duration_since(active.last) < self.settings.hold {
            return None;
        }
        self.active = None;
        Some(Event::End {
            at,
            duration: at.saturating_duration_since(active.since),
            area: active.peak,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: usize = 160;
    const H: usize = 90;

    fn settings() -> Settings {
        Settings {
            sensitivity: 0.01,
            threshold: 20,
            min_frames: 2,
            hold: Duration::from_secs(2),
            mask: Vec::new(),
        }
    }

    /// A still scene: a gradient with some texture, and `noise` levels of
    /// deterministic noise per picture `n`.
    fn scene(n: u32, noise: i32) -> Vec<u8> {
        let mut state = n.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..W * H)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let (x, y) = (i % W, i / W);
                let base = 40 + (x * 120 / W) as i32 + ((x / 10 + y / 10) % 2) as i32 * 30;
                let jitter = (state % (2 * noise as u32 + 1)) as i32 - noise;
                (base + jitter).clamp(0, 255) as u8
            })
            .collect()
    }

    /// `picture` with a bright square of `side` pixels at (`x`, `y`).
    fn with_object(mut picture: Vec<u8>, x: usize, y: usize, side: usize) -> Vec<u8> {
        for row in y..(y + side).min(H) {
            for col in x..(x + side).min(W) {
                picture[row * W + col] = 230;
            }
        }
        picture
    }

    /// Feeds `pictures` at 5 a second from `start`; the events, with the
    /// index of the picture that made each.
    fn run(d: &mut Detector, start: Instant, pictures: &[Vec<u8>]) -> Vec<(usize, Event)> {
        pictures
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let at = start + Duration::from_millis(200 * i as u64);
                d.analyse(p, at).map(|e| (i, e))
            })
            .collect()
    }

    #[test]
    fn noise_alone_is_never_motion() {
        let mut d = Detector::new(settings(), W, H);
        let pictures: Vec<_> = (0..200).map(|n| scene(n, 12)).collect();
        assert_eq!(run(&mut d, Instant::now(), &pictures), []);
    }

    #[test]
    fn an_object_of_two_percent_starts_motion_at_its_first_picture_and_ends_after_the_hold() {
        let mut d = Detector::new(settings(), W, H);
        let start = Instant::now();
        // 2 % of 160x90 is 288 pixels: a 17x17 square, moving.
        let mut pictures: Vec<_> = (0..20).map(|n| scene(n, 4)).collect();
        for n in 20..40 {
            pictures.push(with_object(scene(n, 4), 10 + (n as usize - 20) * 5, 30, 17));
        }
        pictures.extend((40..80).map(|n| scene(n, 4)));
        let events = run(&mut d, start, &pictures);
        assert_eq!(events.len(), 2, "{events:?}");
        let (i, Event::Start { at, area }) = events[0] else {
            panic!("{events:?}");
        };
        // Started at the second picture with it (min_frames 2), dated by
        // the first.
        assert_eq!(i, 21);
        assert_eq!(at, start + Duration::from_millis(200 * 20));
        assert!((0.015..0.06).contains(&area), "{area}");
        let (i, Event::End { duration, .. }) = events[1] else {
            panic!("{events:?}");
        };
        // The last picture with the object is 39; 2 s (10 pictures) on.
        assert!((49..=50).contains(&i), "{i}");
        assert!(duration >= Duration::from_secs(5), "{duration:?}");
        assert!(!d.active());
    }

    #[test]
    fn the_light_changing_is_not_motion() {
        let mut d = Detector::new(settings(), W, H);
        let start = Instant::now();
        let mut pictures: Vec<_> = (0..20).map(|n| scene(n, 4)).collect();
        // A slow ramp: 30 levels brighter over 10 s.
        for n in 0..50u32 {
            let up = (n * 30 / 50) as u8;
            pictures.push(scene(n, 4).iter().map(|p| p.saturating_add(up)).collect());
        }
        // A light switched on: everything 60 % brighter at once.
        for n in 0..30u32 {
            pictures.push(
                scene(n, 4)
                    .iter()
                    .map(|&p| (u32::from(p) * 16 / 10).min(255) as u8)
                    .collect(),
            );
        }
        assert_eq!(run(&mut d, start, &pictures), []);
    }

    #[test]
    fn motion_inside_the_mask_is_not_seen() {
        let mask = vec![Area {
            x: 0.0,
            y: 0.25,
            width: 0.5,
            height: 0.5,
        }];
        let mut d = Detector::new(Settings { mask, ..settings() }, W, H);
        let mut pictures: Vec<_> = (0..10).map(|n| scene(n, 4)).collect();
        for n in 10..40 {
            // Inside x < 80, 22 <= y < 68.
            pictures.push(with_object(scene(n, 4), 5 + (n as usize - 10) * 2, 30, 17));
        }
        assert_eq!(run(&mut d, Instant::now(), &pictures), []);
        // The same outside the mask is seen.
        let mut d = Detector::new(settings(), W, H);
        let events = run(&mut d, Instant::now(), &pictures);
        assert!(
            matches!(events.first(), Some((_, Event::Start { .. }))),
            "{events:?}"
        );
    }

    #[test]
    fn motion_that_stops_past_the_hold_and_starts_again_is_two_events() {
        let mut d = Detector::new(settings(), W, H);
        let object = |n: u32| with_object(scene(n, 4), 20 + (n as usize % 20) * 4, 40, 17);
        let mut pictures: Vec<_> = (0..10).map(|n| scene(n, 4)).collect();
        pictures.extend((10..20).map(object));
        pictures.extend((20..40).map(|n| scene(n, 4)));
        pictures.extend((40..50).map(object));
        pictures.extend((50..70).map(|n| scene(n, 4)));
        let events = run(&mut d, Instant::now(), &pictures);
        let kinds: Vec<_> = events
            .iter()
            .map(|(_, e)| matches!(e, Event::Start { .. }))
            .collect();
        assert_eq!(kinds, [true, false, true, false], "{events:?}");
        // A pause shorter than the hold is one event.
        let mut d = Detector::new(settings(), W, H);
        let mut pictures: Vec<_> = (0..10).map(|n| scene(n, 4)).collect();
        pictures.extend((10..20).map(object));
        pictures.extend((20..25).map(|n| scene(n, 4)));
        pictures.extend((25..35).map(object));
        pictures.extend((35..60).map(|n| scene(n, 4)));
        let events = run(&mut d, Instant::now(), &pictures);
        assert_eq!(events.len(), 2, "{events:?}");
    }

    #[test]
    fn a_parked_object_becomes_background() {
        let mut d = Detector::new(settings(), W, H);
        let mut pictures: Vec<_> = (0..10).map(|n| scene(n, 4)).collect();
        // Arrives and stays for 5 minutes at 5 a second.
        pictures.extend((10..1500).map(|n| with_object(scene(n, 4), 60, 30, 20)));
        let events = run(&mut d, Instant::now(), &pictures);
        assert!(
            matches!(events.first(), Some((10 | 11, Event::Start { .. }))),
            "{events:?}"
        );
        assert!(
            matches!(events.get(1), Some((_, Event::End { .. }))),
            "{events:?}"
        );
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(!d.active());
    }
}
