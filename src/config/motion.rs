//! `[motion]`: motion detection on the raw frames.

use std::ops::RangeInclusive;

use serde::Deserialize;

use super::check::span;

/// `[motion]` section: what counts as motion, and where it is not looked
/// for.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MotionConfig {
    /// Pictures analysed a second.
    pub rate: u32,
    /// Percent of the picture (what the mask leaves) that must change.
    pub sensitivity: f32,
    /// How much a pixel must change to count, in luma levels.
    pub threshold: u32,
    /// Consecutive analysed pictures with motion before it starts.
    pub min_frames: u32,
    /// Seconds without motion before it ends.
    pub hold: f32,
    /// Rectangles left out, as `[x, y, width, height]` in fractions of the
    /// picture from its top-left corner.
    pub mask: Vec<[f32; 4]>,
}

impl Default for MotionConfig {
    fn default() -> Self {
        Self {
            rate: 5,
            sensitivity: 1.0,
            threshold: 20,
            min_frames: 2,
            hold: 5.0,
            mask: Vec::new(),
        }
    }
}

/// `motion.rate`: analyses a second.
pub const MOTION_RATE: RangeInclusive<u32> = 1..=30;
/// `motion.sensitivity`: percent of the picture.
pub const MOTION_SENSITIVITY: RangeInclusive<f32> = 0.1..=50.0;
/// `motion.threshold`: luma levels.
pub const MOTION_THRESHOLD: RangeInclusive<u32> = 1..=255;
/// `motion.min_frames`.
pub const MOTION_MIN_FRAMES: RangeInclusive<u32> = 1..=30;
/// `motion.hold`: seconds.
pub const MOTION_HOLD: RangeInclusive<f32> = 0.0..=600.0;
/// Most rectangles in `motion.mask`.
pub const MOTION_MASK_AREAS: usize = 16;

impl MotionConfig {
    /// Checks every key against its range, and each mask rectangle.
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        let out_of = |key: &str, value: String, range: String, unit: &str| {
            Err((
                format!("motion.{key}"),
                format!("{value} is out of range: {range}{unit}"),
            ))
        };
        if !MOTION_RATE.contains(&self.rate) {
            return out_of(
                "rate",
                self.rate.to_string(),
                span(&MOTION_RATE),
                " a second",
            );
        }
        if !MOTION_SENSITIVITY.contains(&self.sensitivity) {
            return out_of(
                "sensitivity",
                self.sensitivity.to_string(),
                span(&MOTION_SENSITIVITY),
                " percent of the picture",
            );
        }
        if !MOTION_THRESHOLD.contains(&self.threshold) {
            return out_of(
                "threshold",
                self.threshold.to_string(),
                span(&MOTION_THRESHOLD),
                " luma levels",
            );
        }
        if !MOTION_MIN_FRAMES.contains(&self.min_frames) {
            return out_of(
                "min_frames",
                self.min_frames.to_string(),
                span(&MOTION_MIN_FRAMES),
                " pictures",
            );
        }
        if !MOTION_HOLD.contains(&self.hold) {
            return out_of(
                "hold",
                self.hold.to_string(),
                span(&MOTION_HOLD),
                " seconds",
            );
        }
        if self.mask.len() > MOTION_MASK_AREAS {
            return Err((
                "motion.mask".into(),
                format!(
                    "has {} rectangles: at most {MOTION_MASK_AREAS}",
                    self.mask.len()
                ),
            ));
        }
        for (i, &[x, y, w, h]) in self.mask.iter().enumerate() {
            let inside = [x, y, w, h].iter().all(|v| (0.0..=1.0).contains(v))
                && w > 0.0
                && h > 0.0
                && x + w <= 1.0 + f32::EPSILON
                && y + h <= 1.0 + f32::EPSILON;
            if !inside {
                return Err((
                    format!("motion.mask[{i}]"),
                    format!(
                        "[{x}, {y}, {w}, {h}] is not a rectangle inside the picture: \
                         [x, y, width, height] as fractions of it (0 to 1), e.g. \
                         [0.0, 0.5, 1.0, 0.5] for the lower half"
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::parse;

    #[test]
    fn motion_table() {
        assert_eq!(parse("").unwrap().motion, None, "off without [motion]");
        let c = parse("[motion]\n").unwrap().motion.unwrap();
        assert_eq!(c, MotionConfig::default());
        let c = parse(
            "[motion]\nrate = 2\nsensitivity = 0.5\nthreshold = 30\nmin_frames = 3\nhold = 10\n\
             mask = [[0.0, 0.0, 1.0, 0.1], [0.5, 0.5, 0.5, 0.5]]\n",
        )
        .unwrap()
        .motion
        .unwrap();
        assert_eq!((c.rate, c.threshold, c.min_frames), (2, 30, 3));
        assert_eq!((c.sensitivity, c.hold), (0.5, 10.0));
        assert_eq!(c.mask.len(), 2);
        for (text, key, says) in [
            ("[motion]\nrate = 0\n", "motion.rate", "1 to 30"),
            (
                "[motion]\nsensitivity = 80\n",
                "motion.sensitivity",
                "0.1 to 50",
            ),
            ("[motion]\nthreshold = 0\n", "motion.threshold", "1 to 255"),
            ("[motion]\nmin_frames = 0\n", "motion.min_frames", "1 to 30"),
            ("[motion]\nhold = -1\n", "motion.hold", "0 to 600"),
            (
                "[motion]\nmask = [[0.5, 0.0, 0.6, 0.1]]\n",
                "motion.mask[0]",
                "not a rectangle inside the picture",
            ),
            (
                "[motion]\nmask = [[0.0, 0.0, 0.0, 0.1]]\n",
                "motion.mask[0]",
                "not a rectangle",
            ),
            ("[motion]\nmask = [[0.0, 0.0, 1.0]]\n", "motion.mask", ""),
            ("[motion]\nspeed = 3\n", "motion", "speed"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.message.starts_with(key), "{text:?}: {e}");
            assert!(e.message.contains(says), "{text:?}: {e}");
        }
    }
}
