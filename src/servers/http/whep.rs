//! The live picture by WebRTC (WHEP, draft-ietf-wish-whep): the page
//! POSTs an SDP offer to [`PATH`] and gets the answer, with a session URL
//! to DELETE when it is done. str0m (sans-IO) does ICE (lite: the daemon
//! only answers), DTLS, SRTP and the H.264 packetization; this module
//! feeds it the shared stream's access units and one UDP socket per
//! viewer, on the address the viewer reached the page at.
//!
//! A viewer starts at a key frame (asked for when it connects, and again
//! on its PLI/FIR), subscribes like any other client (the same lag
//! handling), and counts against `server.max_clients`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

use super::context::HttpContext;
use super::live::Timeline;
use crate::broadcast::{SubscribeError, Subscriber};
use crate::format::rtp::packetizer::RtpUnit;

/// Where the page POSTs its offer; sessions live under it.
pub const PATH: &str = "/stream/whep";
/// Longest a viewer may take from the answer to a working connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A viewer heard nothing from for this long is gone (browsers send ICE
/// consent checks and RTCP every few seconds; a closed tab sends nothing).
const SILENCE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest SDP offer taken.
pub const MAX_OFFER: usize = 64 * 1024;

/// Answers an offer: a new viewer, or why not.
pub async fn offer(
    ctx: &Arc<HttpContext>,
    client: IpAddr,
    local: IpAddr,
    offer: &[u8],
) -> Response<Full<Bytes>> {
    let offer = match std::str::from_utf8(offer)
        .ok()
        .and_then(|s| SdpOffer::from_sdp_string(s).ok())
    {
        Some(o) => o,
        None => return text(StatusCode::BAD_REQUEST, "the body must be an SDP offer\n"),
    };
    if super::context::viewers_now(ctx) >= ctx.rtsp.sessions.max() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many viewers: server.max_clients reached\n",
        );
    }
    let socket = match UdpSocket::bind(SocketAddr::new(local, 0)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("WebRTC: cannot open a UDP port on {local}: {e}");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "no UDP port for media\n");
        }
    };
    let Ok(local_addr) = socket.local_addr() else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "no UDP port for media\n");
    };
    let mut rtc = Rtc::builder()
        .set_ice_lite(true)
        .clear_codecs()
        .enable_h264(true)
        .build(Instant::now());
    match Candidate::host(local_addr, "udp") {
        Ok(c) => {
            rtc.add_local_candidate(c);
        }
        Err(e) => {
            tracing::warn!("WebRTC: no ICE candidate for {local_addr}: {e}");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "no address for media\n");
        }
    }
    let answer = match rtc.sdp_api().accept_offer(offer) {
        Ok(a) => a,
        Err(e) => {
            return text(
                StatusCode::NOT_ACCEPTABLE,
                &format!("cannot answer this offer: {e}\n"),
            );
        }
    };
    let id = format!("{:032x}", rand::random::<u128>());
    let (stop_tx, stop_rx) = oneshot::channel();
    ctx.whep.add(id.clone(), stop_tx);
    let session = Arc::clone(ctx);
    let session_id = id.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        tracing::info!(%client, "WebRTC viewer started");
        let (sent, reason) = run(&session, rtc, socket, stop_rx).await;
        session.whep.remove(&session_id);
        tracing::info!(
            %client,
            duration_s = started.elapsed().as_secs(),
            frames = sent,
            "WebRTC viewer ended: {reason}"
        );
    });
    let mut r = Response::new(Full::new(Bytes::from(answer.to_sdp_string())));
    *r.status_mut() = StatusCode::CREATED;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("{PATH}/{id}")) {
        h.insert(header::LOCATION, v);
    }
    r
}

/// Ends the session at `path` ([`PATH`]`/<id>`).
pub fn delete(ctx: &HttpContext, path: &str) -> Response<Full<Bytes>> {
    let id = path
        .strip_prefix(PATH)
        .and_then(|p| p.strip_prefix('/'))
        .unwrap_or("");
    match ctx.whep.remove(id) {
        Some(stop) => {
            let _ = stop.send(());
            text(StatusCode::OK, "ended\n")
        }
        None => text(StatusCode::NOT_FOUND, "no such session\n"),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// What one step of the session loop brought.
enum Step {
    Input(Instant, usize, SocketAddr),
    Timeout,
    Unit(Result<Arc<RtpUnit>, SubscribeError>),
    Stop(&'static str),
}

/// Drives one viewer's `Rtc` until it goes; returns the pictures sent and
/// why it ended.
async fn run(
    ctx: &HttpContext,
    mut rtc: Rtc,
    socket: UdpSocket,
    mut stop: oneshot::Receiver<()>,
) -> (u64, String) {
    let stream = ctx.rtsp.stream();
    let mut shutdown = ctx.rtsp.shutdown.clone();
    let local = socket.local_addr().expect("a bound socket");
    let mut buf = vec![0u8; 2048];
    let mut mid: Option<Mid> = None;
    let mut subscriber: Option<Subscriber> = None;
    let mut timeline = Timeline::default();
    let mut annexb = Vec::new();
    let mut sent = 0u64;
    let connect_by = Instant::now() + CONNECT_TIMEOUT;
    let mut heard = Instant::now();
    loop {
        // Drain: send what str0m has, act on its events, learn its deadline.
        let deadline = loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => break t,
                Ok(Output::Transmit(t)) => {
                    let _ = socket.send_to(&t.contents, t.destination).await;
                }
                Ok(Output::Event(event)) => match event {
                    Event::MediaAdded(m) => mid = Some(m.mid),
                    Event::Connected => {
                        subscriber = Some(stream.subscribe());
                        stream.request_keyframe();
                    }
                    Event::KeyframeRequest(_) => stream.request_keyframe(),
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        return (sent, "the viewer's connection was lost".into());
                    }
                    _ => {}
                },
                Err(e) => return (sent, format!("WebRTC: {e}")),
            }
        };
        if !rtc.is_alive() {
            return (sent, "the viewer closed the connection".into());
        }
        if subscriber.is_some() && heard.elapsed() > SILENCE_TIMEOUT {
            return (
                sent,
                format!("nothing heard from the viewer for {SILENCE_TIMEOUT:?}"),
            );
        }
        if subscriber.is_none() && Instant::now() > connect_by {
            return (
                sent,
                format!("no connection within {CONNECT_TIMEOUT:?} (a firewall?)"),
            );
        }
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_secs(1));
        let step = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => Step::Input(Instant::now(), n, from),
                Err(_) => Step::Timeout,
            },
            () = tokio::time::sleep(wait) => Step::Timeout,
            u = next_unit(&mut subscriber) => Step::Unit(u),
            _ = &mut stop => Step::Stop("ended by the viewer (DELETE)"),
            _ = crate::service::shutdown::stopped(&mut shutdown) => Step::Stop("server stopping"),
        };
        let result = match step {
            Step::Stop(why) => return (sent, why.into()),
            Step::Timeout => rtc.handle_input(Input::Timeout(Instant::now())),
            Step::Input(now, n, source) => match (&buf[..n]).try_into() {
                Ok(contents) => {
                    heard = now;
                    rtc.handle_input(Input::Receive(
                        now,
                        Receive {
                            proto: Protocol::Udp,
                            source,
                            destination: local,
                            contents,
                        },
                    ))
                }
                Err(_) => continue, // not STUN, DTLS or RTP: ignored
            },
            Step::Unit(Err(e)) => return (sent, e.to_string()),
            Step::Unit(Ok(unit)) => {
                let Some(writer) = mid.and_then(|m| rtc.writer(m)) else {
                    continue;
                };
                let Some(pt) = writer
                    .payload_params()
                    .find(|p| p.spec().codec == Codec::H264)
                    .map(|p| p.pt())
                else {
                    return (sent, "the viewer takes no H.264".into());
                };
                annexb.clear();
                for nal in &unit.nals {
                    annexb.extend_from_slice(&[0, 0, 0, 1]);
                    annexb.extend_from_slice(nal);
                }
                let time = MediaTime::from_90khz(timeline.decode_time(unit.rtp_timestamp));
                sent += 1;
                writer.write(pt, unit.captured, time, annexb.as_slice())
            }
        };
        if let Err(e) = result {
            return (sent, format!("WebRTC: {e}"));
        }
    }
}

/// The next access unit, or never before the viewer has connected.
async fn next_unit(subscriber: &mut Option<Subscriber>) -> Result<Arc<RtpUnit>, SubscribeError> {
    match subscriber {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}
