//! What the HTTP side's pages share: the RTSP server's state, the ports,
//! the start time, the publishers, and the browser viewers (their counts,
//! tokens, and the WebRTC ones' stop switches).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;
#[cfg(feature = "webrtc")]
use std::{collections::HashMap, sync::Mutex};

#[cfg(feature = "webrtc")]
use tokio::sync::oneshot;

use super::tokens::Tokens;
use crate::motion::Motion;
use crate::pushers::publish::Publishers;
use crate::servers::onvif::Onvif;
use crate::servers::rtsp::ServerContext;
use crate::snapshot::Stills;

/// What the HTTP side shows, besides the RTSP server's state.
#[derive(Debug)]
pub struct HttpContext {
    /// The RTSP server: stream, sessions, connections, users.
    pub rtsp: Arc<ServerContext>,
    /// The RTSP port, for the URL on the status page.
    pub rtsp_port: u16,
    /// The RTSPS port, when RTSPS is on.
    pub rtsps_port: Option<u16>,
    /// When the daemon started.
    pub started: Instant,
    /// The publish targets.
    pub publishers: Arc<Publishers>,
    /// Still pictures of the main stream.
    pub stills: Arc<Stills>,
    /// Browsers watching the live picture.
    pub viewers: Viewers,
    /// Tokens that let the page's WebSocket in.
    pub tokens: Tokens,
    /// The ONVIF services (`[onvif]`), when they are on.
    pub onvif: Option<Onvif>,
    /// Motion detection (`[motion]`), when it is on.
    pub motion: Option<Arc<Motion>>,
    /// Browsers watching by WebRTC.
    #[cfg(feature = "webrtc")]
    pub whep: WebrtcViewers,
}

/// Viewers of every kind now: RTSP sessions and browsers.
pub fn viewers_now(ctx: &HttpContext) -> usize {
    #[cfg(feature = "webrtc")]
    let webrtc = ctx.whep.current();
    #[cfg(not(feature = "webrtc"))]
    let webrtc = 0;
    ctx.rtsp.sessions.len() + ctx.viewers.current() + webrtc
}

/// Counts of browser viewers, for the status page and metrics.
#[derive(Debug, Default)]
pub struct Viewers {
    current: AtomicUsize,
    total: AtomicU64,
    sent_bytes: AtomicU64,
}

impl Viewers {
    /// Viewers watching now.
    pub fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    /// Viewers since the start.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Bytes of MP4 sent to viewers.
    pub fn sent_bytes(&self) -> u64 {
        self.sent_bytes.load(Ordering::Relaxed)
    }

    /// Counts a viewer in.
    pub fn joined(&self) {
        self.current.fetch_add(1, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a viewer out.
    pub fn left(&self) {
        self.current.fetch_sub(1, Ordering::Relaxed);
    }

    /// Counts `n` bytes sent to a viewer.
    pub fn sent(&self, n: u64) {
        self.sent_bytes.fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(feature = "webrtc")]
/// The WebRTC viewers: each one's way to be told to stop.
#[derive(Debug, Default)]
pub struct WebrtcViewers {
    stops: Mutex<HashMap<String, oneshot::Sender<()>>>,
}

#[cfg(feature = "webrtc")]
impl WebrtcViewers {
    /// WebRTC viewers now.
    pub fn current(&self) -> usize {
        self.stops.lock().unwrap().len()
    }

    /// Adds viewer `id`, told to stop through `stop`.
    pub fn add(&self, id: String, stop: oneshot::Sender<()>) {
        self.stops.lock().unwrap().insert(id, stop);
    }

    /// Takes viewer `id` out, with its way to be told to stop.
    pub fn remove(&self, id: &str) -> Option<oneshot::Sender<()>> {
        self.stops.lock().unwrap().remove(id)
    }
}
