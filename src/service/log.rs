//! Logging: to journald (fields under their own names) when started by
//! systemd, else to stderr; and `LogLimit`, for lines anyone on the network
//! can make the daemon repeat.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

use crate::config::LogLevel;

/// Lets a line that anyone on the network can make the daemon repeat
/// (bad requests, a full server) through at most once per interval, so an
/// attack cannot flood the journal; the lines held back are counted.
#[derive(Debug)]
pub struct LogLimit {
    every: Duration,
    last: Option<Instant>,
    held_back: u64,
}

impl LogLimit {
    /// At most one line per `every`.
    pub const fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            held_back: 0,
        }
    }

    /// `Some(n)` if a line may be logged now (`n` were held back since the
    /// last one), else `None` (this one is counted).
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < self.every)
        {
            self.held_back += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held_back))
    }
}

/// Logs to journald when started by systemd (`JOURNAL_STREAM` set), else to
/// stderr. Nothing is written to files.
pub fn init_logging(level: LogLevel) {
    // Other crates' warnings, but not the SRT crates': they warn of what
    // the publish target's own line already says (a refused handshake).
    // A fixed list of targets, not EnvFilter (whose regex engine would
    // cost the binary some 250 KB for nothing).
    let filter = Targets::new()
        .with_default(LevelFilter::WARN)
        .with_target("srt_protocol", LevelFilter::ERROR)
        .with_target("srt_tokio", LevelFilter::ERROR)
        .with_target("streamcam", level.filter());
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        match tracing_journald::layer() {
            Ok(journald) => {
                tracing_subscriber::registry()
                    .with(
                        journald
                            .with_syslog_identifier("streamcam".into())
                            // Fields under their own names (CLIENT=,
                            // REASON=, ...), so `journalctl REASON=timeout` works.
                            .with_field_prefix(None),
                    )
                    .with(filter)
                    .init();
                return;
            }
            Err(e) => eprintln!("streamcam: journald unavailable ({e}); logging to stderr"),
        }
    }
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(false),
        )
        .with(filter)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_limit_lets_one_line_through_per_interval_and_counts_the_rest() {
        let mut l = LogLimit::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(l.allow(t0), Some(0));
        assert_eq!(l.allow(t0 + Duration::from_secs(1)), None);
        assert_eq!(l.allow(t0 + Duration::from_secs(9)), None);
        assert_eq!(l.allow(t0 + Duration::from_secs(10)), Some(2));
    }
}
