//! The RTSP 1.0 server (RFC 2326). `message`, `protocol` and `auth` are the
//! server without I/O (bytes to requests, requests to responses and
//! effects, credentials to verdicts);
//! `connection`, `writer`, `session` and `udp` do the I/O; `media`,
//! `transport` and `sdp` serve them. Reaches the camera and encoder only
//! through the broadcast.

pub mod admission;
pub mod auth;
pub mod connection;
pub mod media;
pub mod message;
pub mod protocol;
pub mod sdp;
pub mod session;
pub mod transport;
pub mod udp;
pub mod writer;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::broadcast::Broadcast;
use crate::service::LogLimit;
use admission::Admission;
use protocol::{MountIndex, ServerInfo};
use sdp::{AUDIO, Track, VIDEO};
use session::SessionTable;
use udp::UdpMediaTable;

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

/// Resolves once the shutdown flag is set (or its sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// Accepts connections until shutdown; with `tls`, RTSPS ones.
pub async fn serve(listener: TcpListener, ctx: Arc<ServerContext>, tls: Option<TlsAcceptor>) {
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            _ = stopped(&mut shutdown) => return,
            a = listener.accept() => a,
        };
        let (mut stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ticket = match ctx.admission.admit(Instant::now()) {
            Ok(t) => t,
            Err(full) => {
                if let Some(held_back) = ctx.refusals.lock().unwrap().allow(Instant::now()) {
                    tracing::warn!(client = %peer.ip().to_canonical(), "refusing connection: {full} ({held_back} more refused or closed since the last line)");
                }
                tokio::spawn(async move {
                    let msg = b"RTSP/1.0 503 Service Unavailable\r\nCSeq: 0\r\n\r\n";
                    let _ = stream.write_all(msg).await;
                });
                continue;
            }
        };
        tracing::debug!(client = %peer.ip().to_canonical(), "connection opened");
        tokio::spawn(connection::serve(
            Arc::clone(&ctx),
            stream,
            peer,
            ticket,
            tls.clone(),
        ));
    }
}
