//! Publishing: the one encode pushed to relays (`[[publish]]`). Each target
//! has its own task and state: it subscribes to the broadcast like an RTSP
//! client (so a relay that stalls only ever falls behind in its own bounded
//! queue and is dropped, never slowing the camera or other clients),
//! starts every connection at a key frame with its parameter sets, and
//! reconnects after any failure with a jittered back-off from 1 s doubling
//! to 30 s. State changes are logged once each; URLs are logged without
//! their secrets.

pub mod link;
pub mod rtmp;
pub mod rtsp;
pub mod srt;
pub mod target;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::broadcast::Broadcast;
use crate::config::PublishConfig;
use target::parameter_sets;
pub use target::{PublishError, State, Target};

/// First wait before reconnecting; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A connection that lasted this long resets the back-off.
const HEALTHY: Duration = Duration::from_secs(30);
/// Every publish target.
#[derive(Debug, Default)]
pub struct Publishers {
    targets: Vec<Arc<Target>>,
}

impl Publishers {
    /// Starts a task for each of `targets` (validated URLs), sending
    /// `stream` until `shutdown`.
    pub fn start(
        targets: &[PublishConfig],
        stream: &Arc<Broadcast>,
        shutdown: &watch::Receiver<bool>,
    ) -> Arc<Self> {
        let mut all = Vec::new();
        for (index, config) in targets.iter().enumerate() {
            let Ok(url) = config.parsed() else {
                continue; // refused when the configuration was read
            };
            let target = Arc::new(Target::new(index, shown(&url), config.ca.clone()));
            tokio::spawn(run(
                Arc::clone(&target),
                url,
                Arc::clone(stream),
                shutdown.clone(),
            ));
            all.push(target);
        }
        Arc::new(Self { targets: all })
    }

    /// The targets, in configuration order.
    pub fn targets(&self) -> &[Arc<Target>] {
        &self.targets
    }

    /// "publishing to N of M relays", or `None` without targets.
    pub fn summary(&self) -> Option<String> {
        if self.targets.is_empty() {
            return None;
        }
        let up = self
            .targets
            .iter()
            .filter(|t| t.state() == State::Connected)
            .count();
        Some(format!(
            "publishing to {up} of {} relay(s)",
            self.targets.len()
        ))
    }
}

/// A URL as the log and pages may show it: no user or password, no query
/// (SRT passphrases and stream ids), and an RTMP stream key (the last path
/// segment) masked.
pub fn shown(url: &url::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let masked_query = url.query().is_some();
    url.set_query(None);
    if url.scheme().starts_with("rtmp") {
        let path = url.path().to_string();
        if let Some((dir, _key)) = path.rsplit_once('/').filter(|(_, k)| !k.is_empty()) {
            url.set_path(&format!("{dir}/****"));
        }
    }
    let mut text = url.to_string();
    if masked_query {
        text.push_str("?****");
    }
    text
}

/// Publishes to one target until the daemon stops.
async fn run(
    target: Arc<Target>,
    url: url::Url,
    stream: Arc<Broadcast>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = FIRST_BACKOFF;
    let mut last_failure: Option<PublishError> = None;
    loop {
        target.set_state(State::Connecting);
        let started = Instant::now();
        let connects = target.connects();
        let error = tokio::select! {
            _ = crate::service::shutdown::stopped(&mut shutdown) => return,
            e = publish(&url, &stream, &target) => e,
        };
        if error == PublishError::Stopping {
            return;
        }
        let was_up = target.connects() > connects;
        if started.elapsed() >= HEALTHY {
            backoff = FIRST_BACKOFF;
        }
        let wait = jittered(backoff);
        // The same failure again, with no connection in between, is not
        // news: the log says it once.
        if was_up || last_failure.as_ref() != Some(&error) {
            tracing::warn!(
                target_url = %target.shown,
                "publish[{}] {}: {}: {error}; retrying in {:.1} s",
                target.index,
                target.shown,
                if was_up { "lost" } else { "cannot publish" },
                wait.as_secs_f64(),
            );
        } else {
            tracing::debug!(target_url = %target.shown, "publish[{}]: {error}; retrying in {:.1} s", target.index, wait.as_secs_f64());
        }
        target.set_state(State::Retrying {
            reason: error.to_string(),
        });
        last_failure = Some(error);
        tokio::select! {
            _ = crate::service::shutdown::stopped(&mut shutdown) => return,
            _ = tokio::time::sleep(wait) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection to the target, by its scheme, until it fails: once the
/// stream has its parameter sets, the scheme's protocol tells the relay of
/// it and sends it the pictures.
async fn publish(url: &url::Url, stream: &Arc<Broadcast>, target: &Target) -> PublishError {
    let params = match parameter_sets(stream).await {
        Ok(params) => params,
        Err(e) => return e,
    };
    let ended = match url.scheme() {
        "rtsp" | "rtsps" => rtsp::session(url, stream, params, target).await,
        "rtmp" | "rtmps" => rtmp::session(url, stream, params, target).await,
        "srt" => srt::session(url, stream, params, target).await,
        other => Err(PublishError::Refused(format!(
            "{other}:// publishing is not in this build"
        ))),
    };
    match ended {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

/// `wait` give or take a fifth, so that cameras restarted together do not
/// dial a relay in step.
fn jittered(wait: Duration) -> Duration {
    wait.mul_f64(rand::random_range(0.8..1.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_secrets() {
        for (url, expected) in [
            (
                "rtsp://user:secret@relay.example:8554/cam1",
                "rtsp://relay.example:8554/cam1",
            ),
            (
                "rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl",
                "rtmp://a.rtmp.youtube.com/live2/****",
            ),
            (
                "srt://relay.example:8890?streamid=publish:cam1:user:pass&passphrase=x",
                "srt://relay.example:8890?****",
            ),
            ("rtsp://relay.example/", "rtsp://relay.example/"),
        ] {
            assert_eq!(shown(&url::Url::parse(url).unwrap()), expected);
        }
    }

    #[test]
    fn back_off_is_jittered_around_its_value() {
        for _ in 0..100 {
            let w = jittered(Duration::from_secs(10));
            assert!(
                w >= Duration::from_secs(8) && w <= Duration::from_secs(12),
                "{w:?}"
            );
        }
    }
}
