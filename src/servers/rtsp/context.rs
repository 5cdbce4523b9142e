//! What every connection of the server shares: the streams, the session
//! and UDP tables, what requests are told, the shutdown signal, and the
//! caps on connections.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::admission::Admission;
use super::mount::MountIndex;
use super::protocol::ServerInfo;
use super::session::SessionTable;
use super::udp::UdpMediaTable;
use crate::broadcast::Broadcast;
use crate::format::sdp::{AUDIO, Track, VIDEO};
use crate::service::log::LogLimit;

/// What every connection shares.
#[derive(Debug)]
pub struct ServerContext {
    /// The streams' video, in the order of `info.mounts`: the main one first.
    pub streams: Vec<Arc<Broadcast>>,
    /// The main stream's sound (`[audio]`).
    pub audio: Option<Arc<Broadcast>>,
    /// Live sessions.
    pub sessions: Arc<SessionTable>,
    /// The UDP media sockets and their fan-out, per local address.
    pub udp: UdpMediaTable,
    /// What requests are told about the server.
    pub info: ServerInfo,
    /// Becomes true when the daemon stops.
    pub shutdown: watch::Receiver<bool>,
    /// The open connections, capped.
    pub admission: Arc<Admission>,
    /// Lines about connections refused or closed for what they sent.
    pub refusals: Mutex<LogLimit>,
}

impl ServerContext {
    /// The main stream.
    pub fn stream(&self) -> &Arc<Broadcast> {
        &self.streams[0]
    }

    /// What `track` of stream `mount` carries, if it has that track.
    pub fn track_stream(&self, mount: MountIndex, track: Track) -> Option<&Arc<Broadcast>> {
        match track {
            VIDEO => self.streams.get(mount),
            AUDIO if mount == 0 => self.audio.as_ref(),
            _ => None,
        }
    }
}

/// Least time between two lines about refused or misbehaving connections.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

impl ServerContext {
    /// Context for a server of `streams` (as `info.mounts` lists them),
    /// `max_clients` sessions and at most `max_connections` connections,
    /// which tells requests `info`.
    pub fn new(
        streams: Vec<Arc<Broadcast>>,
        audio: Option<Arc<Broadcast>>,
        info: ServerInfo,
        max_clients: usize,
        max_connections: usize,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Self> {
        assert_eq!(streams.len(), info.mounts.len(), "a stream per mount");
        Arc::new(Self {
            streams,
            audio,
            sessions: Arc::new(SessionTable::new(max_clients)),
            udp: UdpMediaTable::default(),
            info,
            shutdown,
            admission: Admission::new(max_connections),
            refusals: Mutex::new(LogLimit::new(REFUSAL_LOG_EVERY)),
        })
    }
}
