//! What every publishing target and protocol shares: the target's state
//! as the status page, metrics and STATUS see it, why a connection ends,
//! the time limits, and the waits for the first picture and the next.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::broadcast::{Broadcast, SubscribeError, Subscriber};
use crate::format::h264::{NAL_SPS, ParameterSets, nal_type};
use crate::format::rtp::packetizer::RtpUnit;

/// A relay that takes no data for this long has stalled: it is dropped and
/// redialled.
pub const STALL: Duration = Duration::from_secs(5);
/// Longest wait for a connection, or for an answer to a request.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the stream's parameter sets (the camera starting).
const PICTURE_WAIT: Duration = Duration::from_secs(5);

/// Why a connection to a relay ended (or never began).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PublishError {
    /// The relay could not be reached or the connection broke.
    #[error("{0}")]
    Network(String),
    /// The relay answered, but not as it should have.
    #[error("{0}")]
    Refused(String),
    /// The relay took nothing for [`STALL`].
    #[error("the relay took no data for {} s", STALL.as_secs())]
    Stalled,
    /// The stream has no picture to send yet.
    #[error("the camera has sent no picture yet")]
    NoPicture,
    /// The daemon is stopping.
    #[error("the daemon is stopping")]
    Stopping,
}

/// Where a target is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Dialling (or setting up).
    Connecting,
    /// Sending.
    Connected,
    /// Waiting to dial again after `reason`.
    Retrying {
        /// Why the last attempt ended.
        reason: String,
    },
}

/// One publish target, as the status page, metrics and STATUS see it.
#[derive(Debug)]
pub struct Target {
    /// Its place in `[[publish]]`.
    pub index: usize,
    /// Its URL without secrets.
    pub shown: String,
    /// Certificates it trusts besides the web's roots (`rtsps`, `rtmps`).
    ca: Option<PathBuf>,
    state: Mutex<State>,
    /// Time 0 of the target's time stamps (RTMP), kept across connections.
    started: Instant,
    connects: AtomicU64,
    sent_bytes: AtomicU64,
}

impl Target {
    /// Target `index` of `[[publish]]`, shown as `shown`, trusting `ca`
    /// besides the web's roots; connecting.
    pub fn new(index: usize, shown: String, ca: Option<PathBuf>) -> Self {
        Self {
            index,
            shown,
            ca,
            state: Mutex::new(State::Connecting),
            started: Instant::now(),
            connects: AtomicU64::new(0),
            sent_bytes: AtomicU64::new(0),
        }
    }

    /// Where it is now.
    pub fn state(&self) -> State {
        self.state.lock().unwrap().clone()
    }

    /// Connections made since the start.
    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::Relaxed)
    }

    /// Bytes handed to the relay's connection since the start.
    pub fn sent_bytes(&self) -> u64 {
        self.sent_bytes.load(Ordering::Relaxed)
    }

    /// Milliseconds from the target's start to `at` (0 before it), which
    /// run on across reconnections; they wrap after 49 days, as RTMP's do.
    pub fn millis_since_start(&self, at: Instant) -> u32 {
        self.since_start(at).as_millis() as u32
    }

    /// The time from the target's start to `at` (zero before it), which
    /// runs on across reconnections.
    pub fn since_start(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.started)
    }

    /// The certificates it trusts besides the web's roots.
    pub fn ca(&self) -> Option<&Path> {
        self.ca.as_deref()
    }

    /// Moves it to `state`.
    pub fn set_state(&self, state: State) {
        *self.state.lock().unwrap() = state;
    }

    /// Counts `n` bytes sent.
    pub fn sent(&self, n: usize) {
        self.sent_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The connection is up and the stream flows: logged once per
    /// connection.
    pub fn connected(&self) {
        self.connects.fetch_add(1, Ordering::Relaxed);
        *self.state.lock().unwrap() = State::Connected;
        tracing::info!(target_url = %self.shown, "publish[{}] {}: connected, sending", self.index, self.shown);
    }
}

/// The stream's parameter sets, what a relay is told first, waiting up to
/// [`PICTURE_WAIT`] for the camera's first picture.
pub async fn parameter_sets(stream: &Broadcast) -> Result<ParameterSets, PublishError> {
    stream
        .parameter_sets(PICTURE_WAIT)
        .await
        .ok_or(PublishError::NoPicture)
}

/// The next picture for a relay that was told of the stream with
/// `announced_sps`; or why the connection ends: it fell behind, the daemon
/// stops, or the camera's picture format changed (the relay must be told
/// anew). Cancel-safe, as the subscription is.
pub async fn next_picture(
    feed: &mut Subscriber,
    announced_sps: &[u8],
) -> Result<Arc<RtpUnit>, PublishError> {
    let unit = match feed.next().await {
        Ok(unit) => unit,
        Err(SubscribeError::TooSlow(n)) => {
            return Err(PublishError::Network(format!(
                "the relay's connection fell behind the stream {n} times"
            )));
        }
        Err(SubscribeError::Closed) => return Err(PublishError::Stopping),
    };
    let sps_changed = unit.is_idr
        && unit
            .nals
            .iter()
            .any(|n| nal_type(n) == NAL_SPS && n[..] != *announced_sps);
    if sps_changed {
        return Err(PublishError::Network(
            "the camera's picture format changed; publishing it anew".into(),
        ));
    }
    Ok(unit)
}
