//! systemd integration: logging to journald or stderr, READY/STATUS/WATCHDOG
//! notifications (a no-op when not started by systemd).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tokio::sync::watch;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

use crate::broadcast::Broadcast;
use crate::config::LogLevel;
use crate::publish::Publishers;

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

/// How often STATUS is refreshed when there is no watchdog.
const STATUS_INTERVAL: Duration = Duration::from_secs(2);

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

fn notify(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::debug!("sd_notify failed: {e}");
    }
}

/// The STATUS line: what streams, to how many clients, and to how many
/// of the publish targets.
pub fn status_line(stream: &Broadcast, publishers: &Publishers) -> String {
    let info = stream.info();
    let line = match info.error {
        Some(e) => format!("not streaming: {e}"),
        None => {
            let n = stream.clients();
            format!(
                "streaming {}, {n} client{}",
                info.description,
                if n == 1 { "" } else { "s" }
            )
        }
    };
    match publishers.summary() {
        Some(publishing) => format!("{line}; {publishing}"),
        None => line,
    }
}

/// Sends READY=1 once the first access unit exists (or the pipeline has
/// reported a failure), then keeps STATUS current and pets the watchdog only
/// while access units keep coming.
pub async fn run(
    stream: Arc<Broadcast>,
    publishers: Arc<Publishers>,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::select! {
        _ = stream.first_frame() => {}
        _ = wait_for_error(&stream) => {}
        _ = shutdown.wait_for(|s| *s) => return,
    }
    let mut status = status_line(&stream, &publishers);
    notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
    tracing::info!(status = %status, "ready: {status}");
    let watchdog = sd_notify::watchdog_enabled();
    let period = watchdog.map_or(STATUS_INTERVAL, |w| (w / 2).min(STATUS_INTERVAL));
    let stall_limit = watchdog
        .unwrap_or(Duration::MAX)
        .max(Duration::from_secs(2));
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => {
                notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
                return;
            }
        }
        let now = status_line(&stream, &publishers);
        if now != status {
            status = now;
            notify(&[NotifyState::Status(&status)]);
        }
        let progressing = stream
            .last_frame_at()
            .is_some_and(|t| t.elapsed() < stall_limit);
        if watchdog.is_some() && progressing {
            notify(&[NotifyState::Watchdog]);
        }
    }
}

async fn wait_for_error(stream: &Broadcast) {
    loop {
        if stream.info().error.is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
