//! Paces a source at its frame rate: sleeps until each frame is due and
//! stamps it with its due time. Due times sit on an exact grid (start +
//! n / fps), so timestamps stay evenly spaced whatever the scheduler does.

use std::time::{Duration, Instant};

/// What a pacer does when the source falls more than a frame behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenLate {
    /// Drop the missed slots and go on at the current one, as a camera
    /// would (generated sources: any picture can be made for any slot).
    Skip,
    /// Send the late frames at once, keeping their timestamps, until caught
    /// up (encoded files: every picture is needed to decode the next).
    /// Beyond [`MAX_CATCH_UP`] behind, start a new grid at now.
    CatchUp,
}

/// Longest a catching-up source may run behind before its grid restarts.
pub const MAX_CATCH_UP: Duration = Duration::from_secs(1);

/// Frame-rate pacing for generated and file sources.
#[derive(Debug)]
pub struct Pacer {
    fps: f64,
    when_late: WhenLate,
    start: Option<Instant>,
    index: u64,
}

impl Pacer {
    /// A pacer for `fps` frames per second.
    pub fn new(fps: f64, when_late: WhenLate) -> Self {
        Self {
            fps,
            when_late,
            start: None,
            index: 0,
        }
    }

    fn slot(&self, start: Instant, index: u64) -> Instant {
        start + Duration::from_secs_f64(index as f64 / self.fps)
    }

    /// Sleeps until the next frame is due; returns its capture time.
    pub fn wait(&mut self) -> Instant {
        let now = Instant::now();
        let start = *self.start.get_or_insert(now);
        let mut due = self.slot(start, self.index);
        let period = Duration::from_secs_f64(1.0 / self.fps);
        if now > due + period {
            match self.when_late {
                WhenLate::Skip => {
                    self.index = ((now - start).as_secs_f64() * self.fps) as u64;
                    due = self.slot(start, self.index);
                }
                WhenLate::CatchUp if now > due + MAX_CATCH_UP => {
                    self.start = Some(now);
                    self.index = 0;
                    due = now;
                }
                WhenLate::CatchUp => {}
            }
        }
        if due > now {
            std::thread::sleep(due - now);
        }
        self.index += 1;
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_at_frame_rate_on_an_exact_grid() {
        let mut p = Pacer::new(100.0, WhenLate::Skip);
        let t0 = p.wait();
        let t1 = p.wait();
        let t2 = p.wait();
        assert_eq!(t1 - t0, Duration::from_millis(10));
        assert_eq!(t2 - t0, Duration::from_millis(20));
        assert!(Instant::now() >= t2);
    }

    #[test]
    fn skipping_drops_missed_slots_and_stays_on_the_grid() {
        let mut p = Pacer::new(100.0, WhenLate::Skip);
        let t0 = p.wait();
        std::thread::sleep(Duration::from_millis(55));
        let t1 = p.wait();
        let t2 = p.wait();
        let late = (t1 - t0).as_secs_f64() * 100.0;
        assert!(late >= 5.0, "no burst of stale frames: slot {late}");
        assert!(
            (late - late.round()).abs() < 1e-6,
            "on the grid: slot {late}"
        );
        assert_eq!(t2 - t1, Duration::from_millis(10));
    }

    #[test]
    fn catching_up_keeps_every_slot_then_restarts_when_far_behind() {
        let mut p = Pacer::new(100.0, WhenLate::CatchUp);
        let t0 = p.wait();
        std::thread::sleep(Duration::from_millis(55));
        let late: Vec<Instant> = (0..3).map(|_| p.wait()).collect();
        assert_eq!(late[0] - t0, Duration::from_millis(10), "no slot skipped");
        assert_eq!(late[2] - t0, Duration::from_millis(30));
        std::thread::sleep(MAX_CATCH_UP + Duration::from_millis(50));
        let before = Instant::now();
        let restarted = p.wait();
        assert!(restarted >= before, "a new grid starts at now");
    }
}
