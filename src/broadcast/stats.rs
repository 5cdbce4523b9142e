//! What the pipeline and the fan-out did since the start, for `/metrics`
//! and the status page: counts kept where they happen, and the last few
//! pipeline errors.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// Pipeline errors kept for the status page.
const RECENT_ERRORS: usize = 5;

/// Counts of the pipeline and the fan-out.
#[derive(Debug, Default)]
pub struct Stats {
    captured: AtomicU64,
    source_failures: AtomicU64,
    encoder_failures: AtomicU64,
    lag_skips: AtomicU64,
    slow_drops: AtomicU64,
    errors: Mutex<VecDeque<(SystemTime, String)>>,
}

/// Which part of the pipeline failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The camera, test pattern or file.
    Source,
    /// The H.264 encoder.
    Encoder,
}

impl Stats {
    /// A frame came from the source.
    pub fn frame_captured(&self) {
        self.captured.fetch_add(1, Ordering::Relaxed);
    }

    /// The pipeline failed in `part` with `error` (it is reopened, or not).
    pub fn pipeline_failed(&self, part: Part, error: &str) {
        let count = match part {
            Part::Source => &self.source_failures,
            Part::Encoder => &self.encoder_failures,
        };
        count.fetch_add(1, Ordering::Relaxed);
        let mut errors = self.errors.lock().unwrap();
        if errors.len() == RECENT_ERRORS {
            errors.pop_front();
        }
        errors.push_back((SystemTime::now(), error.to_string()));
    }

    /// A client fell behind the stream and skipped to the next key frame.
    pub fn lag_skipped(&self) {
        self.lag_skips.fetch_add(1, Ordering::Relaxed);
    }

    /// A client kept falling behind and was dropped.
    pub fn slow_dropped(&self) {
        self.slow_drops.fetch_add(1, Ordering::Relaxed);
    }

    /// Frames from the source since the start.
    pub fn captured(&self) -> u64 {
        self.captured.load(Ordering::Relaxed)
    }

    /// Failures of `part` since the start.
    pub fn failures(&self, part: Part) -> u64 {
        match part {
            Part::Source => self.source_failures.load(Ordering::Relaxed),
            Part::Encoder => self.encoder_failures.load(Ordering::Relaxed),
        }
    }

    /// Times a client skipped ahead to a key frame.
    pub fn lag_skips(&self) -> u64 {
        self.lag_skips.load(Ordering::Relaxed)
    }

    /// Clients dropped for being too slow.
    pub fn slow_drops(&self) -> u64 {
        self.slow_drops.load(Ordering::Relaxed)
    }

    /// The last few pipeline errors, oldest first.
    pub fn recent_errors(&self) -> Vec<(SystemTime, String)> {
        self.errors.lock().unwrap().iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_errors_and_counts_them_all() {
        let stats = Stats::default();
        for i in 0..7 {
            stats.pipeline_failed(Part::Source, &format!("unplugged {i}"));
        }
        stats.pipeline_failed(Part::Encoder, "encoder gone");
        assert_eq!(stats.failures(Part::Source), 7);
        assert_eq!(stats.failures(Part::Encoder), 1);
        let recent: Vec<String> = stats.recent_errors().into_iter().map(|e| e.1).collect();
        assert_eq!(
            recent,
            [
                "unplugged 3",
                "unplugged 4",
                "unplugged 5",
                "unplugged 6",
                "encoder gone"
            ]
        );
    }
}
