//! What the pipeline and the fan-out did since the start, for `/metrics`
//! and the status page: counts kept where they happen, and the last few
//! pipeline errors.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Pipeline errors kept for the status page.
const RECENT_ERRORS: usize = 5;
/// The bit rate is measured over windows this long.
const RATE_WINDOW: Duration = Duration::from_secs(2);

/// Counts of the pipeline and the fan-out.
#[derive(Debug, Default)]
pub struct Stats {
    captured: AtomicU64,
    source_failures: AtomicU64,
    encoder_failures: AtomicU64,
    lag_skips: AtomicU64,
    slow_drops: AtomicU64,
    encoded_bytes: AtomicU64,
    /// How raw frames reach the encoder: an [`EncoderInput`] as a number.
    encoder_input: AtomicU8,
    rate: Mutex<Rate>,
    errors: Mutex<VecDeque<(SystemTime, String)>>,
}

/// The encoded bit rate: bytes counted over the current window, and the
/// rate the last full window had.
#[derive(Debug, Default)]
struct Rate {
    window_start: Option<Instant>,
    bytes: u64,
    last_bps: u64,
    last_at: Option<Instant>,
}

/// Which part of the pipeline failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The camera, test pattern or file.
    Source,
    /// The H.264 encoder.
    Encoder,
}

/// How the frames the encoder codes reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderInput {
    /// No encoder: the source delivers H.264 (or nothing is coded yet).
    None,
    /// Each frame is copied into the encoder's buffers (or coded in
    /// software from the camera's).
    Copied,
    /// The encoder reads the camera's buffers in place (DMABUF).
    ZeroCopy,
}

impl Stats {
    /// Frames reach the encoder as `input` (from the newest frame coded).
    pub fn set_encoder_input(&self, input: EncoderInput) {
        self.encoder_input.store(input as u8, Ordering::Relaxed);
    }

    /// How frames reach the encoder now.
    pub fn encoder_input(&self) -> EncoderInput {
        match self.encoder_input.load(Ordering::Relaxed) {
            x if x == EncoderInput::Copied as u8 => EncoderInput::Copied,
            x if x == EncoderInput::ZeroCopy as u8 => EncoderInput::ZeroCopy,
            _ => EncoderInput::None,
        }
    }

    /// A frame came from the source.
    pub fn frame_captured(&self) {
        self.captured.fetch_add(1, Ordering::Relaxed);
    }

    /// An access unit of `bytes` went out to the stream at `now`.
    pub fn frame_sent(&self, bytes: usize, now: Instant) {
        self.encoded_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        let mut rate = self.rate.lock().unwrap();
        let start = *rate.window_start.get_or_insert(now);
        rate.bytes += bytes as u64;
        let elapsed = now.duration_since(start);
        if elapsed >= RATE_WINDOW {
            rate.last_bps = (rate.bytes as f64 * 8.0 / elapsed.as_secs_f64()) as u64;
            rate.last_at = Some(now);
            rate.window_start = Some(now);
            rate.bytes = 0;
        }
    }

    /// Encoded bytes sent out to the stream since the start.
    pub fn encoded_bytes(&self) -> u64 {
        self.encoded_bytes.load(Ordering::Relaxed)
    }

    /// The stream's bit rate over the last couple of seconds at `now`
    /// (`None` before the first window or when the stream has stopped).
    pub fn bitrate(&self, now: Instant) -> Option<u64> {
        let rate = self.rate.lock().unwrap();
        let at = rate.last_at?;
        (now.duration_since(at) < 2 * RATE_WINDOW).then_some(rate.last_bps)
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
    fn bit_rate_over_the_last_window() {
        let stats = Stats::default();
        let t0 = Instant::now();
        assert_eq!(stats.bitrate(t0), None);
        // 30 frames a second of 4 kB: 960 kbit/s.
        for i in 0..=90u32 {
            stats.frame_sent(4000, t0 + Duration::from_millis(u64::from(i) * 1000 / 30));
        }
        let now = t0 + Duration::from_secs(3);
        let bps = stats.bitrate(now).unwrap();
        assert!((940_000..=1_000_000).contains(&bps), "{bps}");
        assert_eq!(stats.encoded_bytes(), 91 * 4000);
        assert_eq!(
            stats.bitrate(now + Duration::from_secs(10)),
            None,
            "stopped"
        );
    }

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
