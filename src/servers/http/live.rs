//! The live picture for browsers: fragmented MP4 over a WebSocket
//! ([`PATH`]), for the page's Media Source Extensions player.
//!
//! Each viewer subscribes to the shared stream like an RTSP client (the
//! same ring, the same lag handling: a viewer that falls behind skips to
//! the next key frame, one that keeps falling behind is dropped) and is
//! sent, in this order: a text message with the MSE type and picture size,
//! the init segment, then one fragment per access unit from a key frame on.
//! When the parameter sets change (the camera came back at another size)
//! the socket is closed and the page reconnects to a new init segment.
//!
//! Browsers cannot put a Digest `Authorization` header on a WebSocket, so
//! when `[auth]` is on the page passes a token it got from an
//! authenticated request ([`super::tokens::Tokens`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

use super::context::HttpContext;
use crate::broadcast::SubscribeError;
use crate::format::fmp4;
use crate::format::h264::ParameterSets;
use crate::servers::rtsp::mount::MountIndex;

/// Where the page opens its WebSocket.
pub const PATH: &str = "/stream.ws";
/// Where browsers get the substream (`[substream]`) the same way.
pub const SUB_PATH: &str = "/substream.ws";

/// The stream a WebSocket path asks for, of the `mounts` the server has.
pub fn mount_of(path: &str, mounts: usize) -> Option<MountIndex> {
    match path {
        PATH => Some(0),
        SUB_PATH if mounts > 1 => Some(1),
        _ => None,
    }
}
/// Longest a viewer may take to accept one message before it is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a new viewer waits for the stream's first parameter sets.
const PARAMETER_SETS_TIMEOUT: Duration = Duration::from_secs(5);
/// What a viewer may send: close and ping frames, nothing big.
const MAX_INCOMING_MESSAGE: usize = 4096;

/// Counts one viewer in; counts it out when dropped.
struct ViewerGuard(Arc<HttpContext>);

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        self.0.viewers.left();
    }
}

/// The `token` query parameter of a request, if any.
pub fn token_of<B>(req: &Request<B>) -> Option<&str> {
    req.uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
}

/// Answers a WebSocket upgrade for stream `mount` and, once the connection is
/// handed over, streams to it. `None` if the request is no upgrade.
pub fn upgrade<B>(
    ctx: &Arc<HttpContext>,
    client: IpAddr,
    req: &mut Request<B>,
    mount: MountIndex,
) -> Option<Response<http_body_util::Full<Bytes>>> {
    let headers = req.headers();
    let wants = |name: header::HeaderName, value: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(value)))
        })
    };
    if !wants(header::UPGRADE, "websocket")
        || !wants(header::CONNECTION, "upgrade")
        || !wants(header::SEC_WEBSOCKET_VERSION, "13")
    {
        return None;
    }
    let key = headers.get(header::SEC_WEBSOCKET_KEY)?.as_bytes();
    let accept = accept_key(key);
    if super::context::viewers_now(ctx) >= ctx.rtsp.sessions.max() {
        return Some(super::reply::plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many viewers: server.max_clients reached\n",
        ));
    }
    let Ok(ticket) = ctx.rtsp.admission.admit(Instant::now()) else {
        return Some(super::reply::plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many open connections\n",
        ));
    };
    ticket.set_carries_session(true);
    ctx.viewers.joined();
    let guard = ViewerGuard(Arc::clone(ctx));
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(%client, "WebSocket upgrade failed: {e}");
                return;
            }
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_INCOMING_MESSAGE))
            .max_frame_size(Some(MAX_INCOMING_MESSAGE));
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        let ctx = Arc::clone(&guard.0);
        let started = Instant::now();
        tracing::info!(%client, "browser viewer started");
        let (sent, reason) = tokio::select! {
            r = view(&ctx, ws, mount) => r,
            () = ticket.evicted() => (0, "connection limit".into()),
        };
        tracing::info!(
            %client,
            duration_s = started.elapsed().as_secs(),
            bytes = sent,
            "browser viewer ended: {reason}"
        );
        drop(guard);
    });
    let mut r = Response::new(http_body_util::Full::default());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).ok()?,
    );
    Some(r)
}

/// `Sec-WebSocket-Accept` for a client's key (RFC 6455 4.2.2).
fn accept_key(key: &[u8]) -> String {
    const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key);
    ctx.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(ctx.finish())
}

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Streams to one viewer until it goes, falls behind for good, or the
/// stream changes; returns the bytes sent and why it ended.
async fn view(ctx: &HttpContext, mut ws: Socket, mount: MountIndex) -> (u64, String) {
    let stream = &ctx.rtsp.streams[mount];
    let mut shutdown = ctx.rtsp.shutdown.clone();
    let Some(params) = stream.parameter_sets(PARAMETER_SETS_TIMEOUT).await else {
        close(&mut ws, "no picture yet").await;
        return (0, "no picture yet".into());
    };
    let mut sub = stream.subscribe();
    stream.request_keyframe();
    let hello = format!(
        "{{\"type\":{:?},\"width\":{},\"height\":{}}}",
        fmp4::mime_type(&params),
        params.width,
        params.height
    );
    let mut sent = 0u64;
    let mut timeline = Timeline::default();
    let mut first = vec![
        Message::text(hello),
        Message::binary(fmp4::init_segment(&params)),
    ];
    loop {
        for message in first.drain(..) {
            if let Err(reason) = send(ctx, &mut ws, message, &mut sent).await {
                return (sent, reason);
            }
        }
        let unit = tokio::select! {
            u = sub.next() => u,
            m = ws.next() => match m {
                Some(Ok(Message::Close(_))) | None => return (sent, "viewer left".into()),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return (sent, format!("viewer's socket: {e}")),
            },
            _ = crate::service::shutdown::stopped(&mut shutdown) => {
                close(&mut ws, "server stopping").await;
                return (sent, "server stopping".into());
            }
        };
        let unit = match unit {
            Ok(u) => u,
            Err(e @ SubscribeError::TooSlow(_)) => {
                close(&mut ws, "too slow").await;
                return (sent, e.to_string());
            }
            Err(SubscribeError::Closed) => return (sent, "stream closed".into()),
        };
        if unit.is_idr && parameter_sets_changed(&params, &unit.nals) {
            close(&mut ws, "the picture changed: reconnect").await;
            return (sent, "the stream's parameter sets changed".into());
        }
        let sample = fmp4::Sample {
            nals: &unit.nals,
            decode_time: timeline.decode_time(unit.rtp_timestamp),
            duration: timeline.duration(),
            is_idr: unit.is_idr,
        };
        first.push(Message::binary(fmp4::fragment(timeline.sequence, &sample)));
    }
}

/// Sends one message, within [`SEND_TIMEOUT`].
async fn send(
    ctx: &HttpContext,
    ws: &mut Socket,
    message: Message,
    sent: &mut u64,
) -> Result<(), String> {
    let len = message.len() as u64;
    match tokio::time::timeout(SEND_TIMEOUT, ws.send(message)).await {
        Ok(Ok(())) => {
            *sent += len;
            ctx.viewers.sent(len);
            Ok(())
        }
        Ok(Err(e)) => Err(format!("viewer's socket: {e}")),
        Err(_) => Err(format!("viewer took more than {SEND_TIMEOUT:?} to read")),
    }
}

/// Says goodbye with a reason the page can show; a viewer that does not
/// read is not waited for.
async fn close(ws: &mut Socket, reason: &'static str) {
    let frame = CloseFrame {
        code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Away,
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(Some(frame))).await;
}

/// True if an IDR carries parameter sets other than the init segment's.
fn parameter_sets_changed(params: &ParameterSets, nals: &[Bytes]) -> bool {
    let sps = nals
        .iter()
        .find(|n| crate::format::h264::nal_type(n) == crate::format::h264::NAL_SPS);
    sps.is_some_and(|sps| *sps != params.sps)
}

/// One viewer's media timeline: decode times from 0 at its first picture,
/// in the 90 kHz RTP clock, carried past the RTP timestamp's wrap.
#[derive(Debug, Default)]
pub(super) struct Timeline {
    last_rtp: Option<u32>,
    decode_time: u64,
    last_step: u32,
    sequence: u32,
}

impl Timeline {
    /// The decode time of the picture with this RTP timestamp.
    pub(super) fn decode_time(&mut self, rtp: u32) -> u64 {
        if let Some(last) = self.last_rtp {
            self.last_step = rtp.wrapping_sub(last);
            self.decode_time += u64::from(self.last_step);
        }
        self.last_rtp = Some(rtp);
        self.sequence = self.sequence.wrapping_add(1);
        self.decode_time
    }

    /// How long the newest picture shows: as long as the step before it
    /// (the next picture's time is not known yet); 1/30 s at the start.
    fn duration(&self) -> u32 {
        match self.last_step {
            0 => fmp4::TIMESCALE / 30,
            step => step,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_6455() {
        // The example of RFC 6455, section 1.3.
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn timeline_counts_across_the_rtp_wrap() {
        let mut t = Timeline::default();
        assert_eq!(t.decode_time(u32::MAX - 1499), 0);
        assert_eq!(t.duration(), 3000);
        assert_eq!(t.decode_time(1500), 3000);
        assert_eq!(t.decode_time(4500), 6000);
        assert_eq!(t.duration(), 3000);
        assert_eq!(t.decode_time(10_500), 12_000);
        assert_eq!(t.duration(), 6000);
    }
}
