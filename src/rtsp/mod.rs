//! The RTSP 1.0 server (RFC 2326). `message`, `protocol` and `auth` are the
//! server without I/O (bytes to requests, requests to responses and
//! effects, credentials to verdicts);
//! `connection`, `writer`, `session` and `udp` do the I/O; `media`,
//! `transport` and `sdp` serve them. Reaches the camera and encoder only
//! through the broadcast.

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

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broadcast::Broadcast;
use auth::Auth;
use protocol::ServerInfo;
use session::SessionTable;
use udp::UdpMediaTable;

/// What every connection shares.
#[derive(Debug)]
pub struct ServerContext {
    /// The one shared stream.
    pub stream: Arc<Broadcast>,
    /// Live sessions.
    pub sessions: Arc<SessionTable>,
    /// The UDP media sockets and their fan-out, per local address.
    pub udp: UdpMediaTable,
    /// What requests are told about the server.
    pub info: ServerInfo,
    /// Becomes true when the daemon stops.
    pub shutdown: watch::Receiver<bool>,
    /// Most connections open at once.
    pub max_connections: usize,
    connections: AtomicUsize,
}

impl ServerContext {
    /// Context for a server of `max_clients` sessions; `auth`: who may
    /// watch (`None`: anyone).
    pub fn new(
        stream: Arc<Broadcast>,
        path: String,
        framerate: u32,
        max_clients: usize,
        auth: Option<Arc<Auth>>,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Self> {
        Arc::new(Self {
            stream,
            sessions: Arc::new(SessionTable::new(max_clients)),
            udp: UdpMediaTable::default(),
            info: ServerInfo {
                path,
                framerate,
                sdp_session_id: rand::random::<u32>().into(),
                auth,
            },
            shutdown,
            // Room for clients that DESCRIBE on a second connection, and probes.
            max_connections: max_clients * 2 + 8,
            connections: AtomicUsize::new(0),
        })
    }
}

/// Resolves once the shutdown flag is set (or its sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// Accepts connections until shutdown.
pub async fn serve(listener: TcpListener, ctx: Arc<ServerContext>) {
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
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        if ctx.connections.load(Ordering::Relaxed) >= ctx.max_connections {
            tracing::warn!(client = %peer.ip().to_canonical(), "refusing connection: {} connections open", ctx.max_connections);
            tokio::spawn(async move {
                let msg = b"RTSP/1.0 503 Service Unavailable\r\nCSeq: 0\r\n\r\n";
                let _ = stream.write_all(msg).await;
            });
            continue;
        }
        ctx.connections.fetch_add(1, Ordering::Relaxed);
        let ctx = Arc::clone(&ctx);
        tokio::spawn(async move {
            tracing::debug!(client = %peer.ip().to_canonical(), "connection opened");
            connection::serve(Arc::clone(&ctx), stream, peer).await;
            ctx.connections.fetch_sub(1, Ordering::Relaxed);
        });
    }
}
