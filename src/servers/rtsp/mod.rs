//! The RTSP 1.0 server (RFC 2326). `message`, `protocol` and `auth` are the
//! server without I/O (bytes to requests, requests to responses and
//! effects, credentials to verdicts);
//! `connection`, `writer`, `session` and `udp` do the I/O; `media` and
//! `transport` serve them (the session description is a format:
//! `format::sdp`). Reaches the camera and encoder only
//! through the broadcast.

pub mod admission;
pub mod connection;
pub mod context;
pub mod effect;
pub mod end;
pub mod media;
pub mod message;
pub mod mount;
pub mod protocol;
pub mod session;
pub mod transport;
pub mod udp;
pub mod writer;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use context::ServerContext;

/// Accepts connections until shutdown; with `tls`, RTSPS ones.
pub async fn serve(listener: TcpListener, ctx: Arc<ServerContext>, tls: Option<TlsAcceptor>) {
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            _ = crate::service::shutdown::stopped(&mut shutdown) => return,
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
