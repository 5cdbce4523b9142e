//! Paces a source at its frame rate: sleeps until each frame is due and
//! stamps it with its due time, dropping frames to catch up when late (as a
//! camera would) instead of bursting.

use std::time::{Duration, Instant};

/// Frame-rate pacing for generated and file sources.
#[derive(Debug)]
pub struct Pacer {
    period: Duration,
    next: Option<Instant>,
}

impl Pacer {
    /// A pacer for `fps` frames per second.
    pub fn new(fps: f64) -> Self {
        Self {
            period: Duration::from_secs_f64(1.0 / fps),
            next: None,
        }
    }

    /// Sleeps until the next frame is due; returns its capture time.
    pub fn wait(&mut self) -> Instant {
        let now = Instant::now();
        let due = match self.next {
            None => now,
            // More than a frame late: skip ahead rather than burst.
            Some(due) if now > due + self.period => now,
            Some(due) => due,
        };
        if due > now {
            std::thread::sleep(due - now);
        }
        self.next = Some(due + self.period);
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_at_frame_rate_with_exact_stamps() {
        let mut p = Pacer::new(100.0);
        let t0 = p.wait();
        let t1 = p.wait();
        let t2 = p.wait();
        assert_eq!(t1 - t0, Duration::from_millis(10));
        assert_eq!(t2 - t1, Duration::from_millis(10));
        assert!(Instant::now() >= t2);
    }

    #[test]
    fn skips_ahead_when_late() {
        let mut p = Pacer::new(100.0);
        let t0 = p.wait();
        std::thread::sleep(Duration::from_millis(50));
        let t1 = p.wait();
        assert!(
            t1 - t0 >= Duration::from_millis(50),
            "no burst of stale frames"
        );
    }
}
