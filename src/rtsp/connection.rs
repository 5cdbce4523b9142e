//! One RTSP connection: reads requests (and interleaved RTCP), answers them,
//! and streams the TCP-interleaved session that lives on it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use rtsp_types::{Message, Method, Request, Response, StatusCode, Version, headers};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};

use super::ServerContext;
use super::media::{ClientMedia, REPORT_INTERVAL};
use super::rtp_sender::RtpSender;
use super::sdp::{self, TRACK_CONTROL};
use super::session::{
    self, SESSION_TIMEOUT, SessionHandle, SessionKind, UdpCommand, UdpSession, format_id,
};
use super::transport::{self, Transport, TransportError};
use crate::rtp::packetizer::MAX_PACKET;
use crate::rtp::rtcp::{self, MAX_RTCP};

/// Largest request (headers and body) we buffer.
const MAX_REQUEST: usize = 16 * 1024;
/// A partial request older than this closes the connection (slow clients).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A media write blocked this long means the client is not reading.
const WRITE_STALL: Duration = Duration::from_secs(5);
/// Longest DESCRIBE waits for the first picture's parameter sets.
const DESCRIBE_WAIT: Duration = Duration::from_secs(5);
/// Kernel send buffer for a connection: bounds what a client that stops
/// reading can hold up (about 4 s at 1 Mbit/s) before it is noticed.
const SEND_BUFFER: usize = 512 * 1024;
/// Methods we implement, for OPTIONS.
const PUBLIC: &str =
    "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER";
/// Value of the Server header.
const SERVER: &str = concat!("streamcam/", env!("CARGO_PKG_VERSION"));

/// Why a connection closes.
#[derive(Debug, thiserror::Error)]
enum Close {
    #[error("client closed the connection")]
    Eof,
    #[error("server stopping")]
    Shutdown,
    #[error("network error: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("client is not reading: a write was blocked for {WRITE_STALL:?}")]
    Stalled,
    #[error("dropped: {0}")]
    Slow(String),
    #[error("idle for {} s with no session playing", SESSION_TIMEOUT.as_secs())]
    Idle,
}

/// The TCP-interleaved session that lives on this connection.
struct Interleaved {
    handle: Arc<SessionHandle>,
    media: ClientMedia,
    rtp_channel: u8,
    rtcp_channel: u8,
}

/// Serves one connection until it closes.
pub async fn serve(ctx: Arc<ServerContext>, stream: TcpStream, peer: SocketAddr) {
    let local = match stream.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!(%peer, "connection lost before it started: {e}");
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let _ = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER);
    let (reader, writer) = stream.into_split();
    let mut conn = Connection {
        ctx,
        peer,
        local,
        writer,
        out: Vec::with_capacity(8 * 1024),
        interleaved: None,
    };
    let Err(reason) = conn.run(reader).await;
    if let Some(il) = conn.interleaved.take() {
        if matches!(reason, Close::Shutdown) && il.media.is_playing() {
            let mut buf = [0u8; MAX_RTCP];
            let n = il.media.report(&mut buf, true);
            conn.out.clear();
            interleave(&mut conn.out, il.rtcp_channel, &buf[..n]);
            let _ =
                tokio::time::timeout(Duration::from_millis(200), conn.writer.write_all(&conn.out))
                    .await;
        }
        conn.ctx.sessions.remove(il.handle.id);
        tracing::info!(%peer, session = %format_id(il.handle.id), "TCP session ended: {reason}");
    }
    match reason {
        Close::Eof | Close::Shutdown => tracing::debug!(%peer, "connection closed: {reason}"),
        _ => tracing::info!(%peer, "connection closed: {reason}"),
    }
}

struct Connection {
    ctx: Arc<ServerContext>,
    peer: SocketAddr,
    local: SocketAddr,
    writer: OwnedWriteHalf,
    out: Vec<u8>,
    interleaved: Option<Interleaved>,
}

/// What reading the input buffer found.
enum Input {
    Request(Request<Vec<u8>>),
    Data(u8, Vec<u8>),
}

impl Connection {
    async fn run(&mut self, mut reader: OwnedReadHalf) -> Result<std::convert::Infallible, Close> {
        let mut inbuf = BytesMut::with_capacity(4096);
        let mut shutdown = self.ctx.shutdown.clone();
        let mut report = tokio::time::interval(REPORT_INTERVAL);
        let mut partial_since: Option<tokio::time::Instant> = None;
        let mut last_request = tokio::time::Instant::now();
        let mut was_playing = false;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            while let Some(input) = self.parse(&mut inbuf)? {
                partial_since = None;
                match input {
                    Input::Request(req) => {
                        last_request = tokio::time::Instant::now();
                        self.handle(req).await?;
                    }
                    Input::Data(channel, data) => self.interleaved_data(channel, &data),
                }
            }
            if !inbuf.is_empty() {
                partial_since.get_or_insert_with(tokio::time::Instant::now);
            }
            let playing = self
                .interleaved
                .as_ref()
                .is_some_and(|i| i.media.is_playing());
            if playing && !was_playing {
                // A sender report ahead of the first RTP packet lets clients
                // map RTP time to wall time from the start.
                self.send_report().await?;
                report.reset();
            }
            was_playing = playing;
            tokio::select! {
                _ = super::stopped(&mut shutdown) => return Err(Close::Shutdown),
                n = reader.read_buf(&mut inbuf) => {
                    if n? == 0 {
                        return Err(Close::Eof);
                    }
                    if inbuf.len() > MAX_REQUEST {
                        self.respond_error(StatusCode::RequestMessageBodyTooLarge, None).await?;
                        return Err(Close::BadRequest(format!("request larger than {MAX_REQUEST} bytes")));
                    }
                }
                au = next_au(&mut self.interleaved), if playing => {
                    let au = au.map_err(|e| Close::Slow(e.to_string()))?;
                    self.send_au(&au).await?;
                }
                _ = report.tick(), if playing => self.send_report().await?,
                _ = tick.tick() => {
                    if partial_since.is_some_and(|t| t.elapsed() > REQUEST_TIMEOUT) {
                        return Err(Close::BadRequest("request incomplete after 10 s".into()));
                    }
                    if !playing && last_request.elapsed() > SESSION_TIMEOUT {
                        return Err(Close::Idle);
                    }
                }
            }
        }
    }

    /// Takes one complete message off the front of `inbuf`, if there is one.
    fn parse(&mut self, inbuf: &mut BytesMut) -> Result<Option<Input>, Close> {
        if inbuf.is_empty() {
            return Ok(None);
        }
        match Message::<Vec<u8>>::parse(&inbuf[..]) {
            Ok((msg, consumed)) => {
                inbuf.advance(consumed);
                match msg {
                    Message::Request(req) => Ok(Some(Input::Request(req))),
                    Message::Data(data) => {
                        let channel = data.channel_id();
                        Ok(Some(Input::Data(channel, data.into_body())))
                    }
                    Message::Response(_) => Ok(None), // clients don't send these; ignore
                }
            }
            Err(rtsp_types::ParseError::Incomplete(_)) => {
                // Refuse a body that could never fit now, not after waiting
                // for bytes that will not come.
                if declared_body_len(inbuf).is_some_and(|n| n > MAX_REQUEST) {
                    self.out.clear();
                    let r = error_response(StatusCode::RequestMessageBodyTooLarge, None);
                    write_response(&mut self.out, r);
                    let _ = self.writer.try_write(&self.out);
                    return Err(Close::BadRequest(format!(
                        "request body larger than {MAX_REQUEST} bytes"
                    )));
                }
                Ok(None)
            }
            Err(rtsp_types::ParseError::Error) => {
                let first = inbuf[..].split(|&b| b == b'\n').next().unwrap_or_default();
                let line = String::from_utf8_lossy(&first[..first.len().min(80)])
                    .trim()
                    .to_string();
                self.out.clear();
                write_response(&mut self.out, error_response(StatusCode::BadRequest, None));
                // Best effort: the connection is closed right after.
                let _ = self.writer.try_write(&self.out);
                Err(Close::BadRequest(format!("unparseable request {line:?}")))
            }
        }
    }

    /// RTCP (or anything) the client sent on an interleaved channel.
    fn interleaved_data(&mut self, channel: u8, data: &[u8]) {
        let Some(il) = &self.interleaved else { return };
        if channel != il.rtcp_channel {
            return;
        }
        if let Ok(fb) = rtcp::parse_feedback(data) {
            il.handle.touch();
            if fb.keyframe_request {
                il.media.request_keyframe();
            }
        }
    }

    async fn send_au(&mut self, au: &crate::h264::AccessUnit) -> Result<(), Close> {
        let il = self
            .interleaved
            .as_mut()
            .expect("playing implies a session");
        let mut pkt = [0u8; MAX_PACKET];
        self.out.clear();
        let mut packets = il.media.packets(au);
        while let Some(n) = packets.next_into(&mut pkt) {
            interleave(&mut self.out, il.rtp_channel, &pkt[..n]);
        }
        self.write_out().await
    }

    async fn send_report(&mut self) -> Result<(), Close> {
        let il = self
            .interleaved
            .as_ref()
            .expect("playing implies a session");
        let mut buf = [0u8; MAX_RTCP];
        let n = il.media.report(&mut buf, false);
        self.out.clear();
        interleave(&mut self.out, il.rtcp_channel, &buf[..n]);
        self.write_out().await
    }

    async fn write_out(&mut self) -> Result<(), Close> {
        match tokio::time::timeout(WRITE_STALL, self.writer.write_all(&self.out)).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(Close::Stalled),
        }
    }

    async fn respond_error(&mut self, status: StatusCode, cseq: Option<&str>) -> Result<(), Close> {
        self.out.clear();
        write_response(&mut self.out, error_response(status, cseq));
        self.write_out().await
    }

    /// Answers one request.
    async fn handle(&mut self, req: Request<Vec<u8>>) -> Result<(), Close> {
        let Some(cseq) = req
            .header(&headers::CSEQ)
            .map(|v| v.as_str().trim().to_string())
        else {
            self.respond_error(StatusCode::BadRequest, None).await?;
            return Err(Close::BadRequest("request without CSeq".into()));
        };
        tracing::debug!(peer = %self.peer, method = ?req.method(), uri = ?req.request_uri().map(|u| u.as_str()), "request");
        let mut after_reply = None;
        let resp = if req.version() != Version::V1_0 {
            error_response(StatusCode::RTSPVersionNotSupported, Some(&cseq))
        } else if req.header(&headers::REQUIRE).is_some() {
            let mut r = error_response(StatusCode::OptionNotSupported, Some(&cseq));
            let required = req.header(&headers::REQUIRE).unwrap().as_str().to_string();
            r.insert_header(headers::UNSUPPORTED, required);
            r
        } else {
            match self.respond(&req, &cseq, &mut after_reply).await {
                Ok(r) => r,
                Err(status) => error_response(status, Some(&cseq)),
            }
        };
        self.out.clear();
        write_response(&mut self.out, resp);
        self.write_out().await?;
        if let Some(go) = after_reply {
            let _ = go.send(()); // the PLAY reply is out: media may flow
        }
        Ok(())
    }

    /// The response to a request, or the error status to answer with.
    async fn respond(
        &mut self,
        req: &Request<Vec<u8>>,
        cseq: &str,
        after_reply: &mut Option<oneshot::Sender<()>>,
    ) -> Result<Response<Vec<u8>>, StatusCode> {
        let ok = || ok_response(cseq);
        let session = req
            .header(&headers::SESSION)
            .map(|v| v.as_str().to_string());
        let handle = match &session {
            Some(s) => Some(
                self.ctx
                    .sessions
                    .get(s)
                    .ok_or(StatusCode::SessionNotFound)?,
            ),
            None => None,
        };
        if let Some(h) = &handle {
            h.touch();
        }
        match req.method() {
            Method::Options => {
                let mut r = ok();
                r.insert_header(headers::PUBLIC, PUBLIC);
                Ok(r)
            }
            Method::Describe => {
                let url = self.stream_url(req, false)?;
                let params = self
                    .ctx
                    .stream
                    .parameter_sets(DESCRIBE_WAIT)
                    .await
                    .ok_or(StatusCode::ServiceUnavailable)?;
                let base = if url.ends_with('/') {
                    url
                } else {
                    format!("{url}/")
                };
                let body = sdp::describe(
                    &params,
                    self.local.ip().to_canonical(),
                    self.ctx.sdp_session_id,
                    params.fps.unwrap_or(f64::from(self.ctx.framerate)),
                );
                let mut r = ok();
                r.insert_header(headers::CONTENT_BASE, base);
                r.insert_header(headers::CONTENT_TYPE, "application/sdp");
                Ok(r.map_body(|_| body.into_bytes()))
            }
            Method::Setup => self.setup(req, cseq, handle).await,
            Method::Play => {
                let url = self.stream_url(req, true)?;
                let handle = handle.ok_or(StatusCode::SessionNotFound)?;
                let start = match &handle.kind {
                    SessionKind::Udp(tx) => {
                        let (reply, start) = oneshot::channel();
                        let (go_tx, go) = oneshot::channel();
                        tx.send(UdpCommand::Play { reply, go })
                            .await
                            .map_err(|_| StatusCode::SessionNotFound)?;
                        *after_reply = Some(go_tx);
                        start.await.map_err(|_| StatusCode::SessionNotFound)?
                    }
                    SessionKind::Interleaved => {
                        let il = self.own_session(&handle)?;
                        il.media.play().await
                    }
                };
                tracing::info!(peer = %self.peer, session = %format_id(handle.id), clients = self.ctx.stream.clients(), "PLAY");
                let track = if url.ends_with(TRACK_CONTROL) {
                    url
                } else {
                    format!("{}/{TRACK_CONTROL}", url.trim_end_matches('/'))
                };
                let mut r = session_response(cseq, handle.id);
                r.insert_header(headers::RANGE, "npt=now-");
                r.insert_header(
                    headers::RTP_INFO,
                    format!("url={track};seq={};rtptime={}", start.seq, start.rtptime),
                );
                Ok(r)
            }
            Method::Pause => {
                self.stream_url(req, true)?;
                let handle = handle.ok_or(StatusCode::SessionNotFound)?;
                match &handle.kind {
                    SessionKind::Udp(tx) => {
                        let (done, wait) = oneshot::channel();
                        tx.send(UdpCommand::Pause(done))
                            .await
                            .map_err(|_| StatusCode::SessionNotFound)?;
                        let _ = wait.await;
                    }
                    SessionKind::Interleaved => self.own_session(&handle)?.media.pause(),
                }
                Ok(session_response(cseq, handle.id))
            }
            Method::Teardown => {
                self.stream_url(req, true)?;
                let handle = handle.ok_or(StatusCode::SessionNotFound)?;
                match &handle.kind {
                    SessionKind::Udp(tx) => {
                        let (done, wait) = oneshot::channel();
                        if tx.send(UdpCommand::Teardown(done)).await.is_ok() {
                            let _ = wait.await;
                        }
                    }
                    SessionKind::Interleaved => {
                        self.own_session(&handle)?;
                        if let Some(il) = self.interleaved.take() {
                            let mut buf = [0u8; MAX_RTCP];
                            let n = il.media.report(&mut buf, true);
                            self.out.clear();
                            interleave(&mut self.out, il.rtcp_channel, &buf[..n]);
                            self.write_out()
                                .await
                                .map_err(|_| StatusCode::InternalServerError)?;
                        }
                        self.ctx.sessions.remove(handle.id);
                        tracing::info!(peer = %self.peer, session = %format_id(handle.id), "TCP session ended: TEARDOWN");
                    }
                }
                Ok(ok())
            }
            Method::GetParameter => Ok(match &handle {
                Some(h) => session_response(cseq, h.id),
                None => ok(),
            }),
            Method::SetParameter => {
                if !req.body().is_empty() {
                    return Err(StatusCode::ParameterNotUnderstood);
                }
                Ok(match &handle {
                    Some(h) => session_response(cseq, h.id),
                    None => ok(),
                })
            }
            Method::Announce | Method::Record | Method::Redirect | Method::PlayNotify => {
                let mut r = error_response(StatusCode::MethodNotAllowed, Some(cseq));
                r.insert_header(headers::ALLOW, PUBLIC);
                Ok(r)
            }
            Method::Extension(_) => Err(StatusCode::NotImplemented),
        }
    }

    /// The interleaved session `handle`, if it lives on this connection.
    fn own_session(&mut self, handle: &SessionHandle) -> Result<&mut Interleaved, StatusCode> {
        match self.interleaved.as_mut() {
            Some(il) if il.handle.id == handle.id => Ok(il),
            // Interleaved media can only flow on the connection that set it up.
            _ => Err(StatusCode::MethodNotValidInThisState),
        }
    }

    async fn setup(
        &mut self,
        req: &Request<Vec<u8>>,
        cseq: &str,
        existing: Option<Arc<SessionHandle>>,
    ) -> Result<Response<Vec<u8>>, StatusCode> {
        self.stream_url(req, true)?;
        if let Some(h) = existing {
            // One track only: a second SETUP on a session changes nothing.
            return Err(if self.ctx.sessions.get(&format_id(h.id)).is_some() {
                StatusCode::AggregateOperationNotAllowed
            } else {
                StatusCode::SessionNotFound
            });
        }
        let header = req
            .header(&headers::TRANSPORT)
            .map(|v| v.as_str().to_string())
            .ok_or(StatusCode::BadRequest)?;
        let peer_ip = self.peer.ip().to_canonical();
        let chosen = transport::choose(&header, peer_ip).map_err(|e| {
            tracing::info!(peer = %self.peer, transport = %header, "SETUP refused: {e}");
            match e {
                TransportError::Unsupported => StatusCode::UnsupportedTransport,
                TransportError::ForeignDestination(_) => StatusCode::Forbidden,
                TransportError::Malformed => StatusCode::BadRequest,
            }
        })?;
        let media = ClientMedia::new(&self.ctx.stream);
        let ssrc = media.ssrc();
        let (handle, reply_transport) = match chosen {
            Transport::Interleaved {
                rtp_channel,
                rtcp_channel,
            } => {
                if self.interleaved.is_some() {
                    // One interleaved session per connection keeps channels unambiguous.
                    return Err(StatusCode::NotEnoughBandwidth);
                }
                let handle = self
                    .ctx
                    .sessions
                    .insert(SessionKind::Interleaved)
                    .map_err(|e| self.refuse(e))?;
                self.interleaved = Some(Interleaved {
                    handle: Arc::clone(&handle),
                    media,
                    rtp_channel,
                    rtcp_channel,
                });
                let t = format!(
                    "RTP/AVP/TCP;unicast;interleaved={rtp_channel}-{rtcp_channel};ssrc={ssrc:08X};mode=\"PLAY\""
                );
                (handle, t)
            }
            Transport::Udp {
                rtp_port,
                rtcp_port,
            } => {
                let (rtp, rtcp) = session::bind_pair(self.local.ip().to_canonical())
                    .await
                    .map_err(|e| {
                        tracing::error!("SETUP: cannot bind UDP ports: {e}");
                        StatusCode::InternalServerError
                    })?;
                let (server_rtp, server_rtcp) = (
                    rtp.local_addr()
                        .map_err(|_| StatusCode::InternalServerError)?
                        .port(),
                    rtcp.local_addr()
                        .map_err(|_| StatusCode::InternalServerError)?
                        .port(),
                );
                let (tx, commands) = mpsc::channel(4);
                let handle = self
                    .ctx
                    .sessions
                    .insert(SessionKind::Udp(tx))
                    .map_err(|e| self.refuse(e))?;
                let task = UdpSession {
                    handle: Arc::clone(&handle),
                    table: Arc::clone(&self.ctx.sessions),
                    media,
                    rtp: RtpSender::new(rtp, SocketAddr::new(peer_ip, rtp_port)),
                    rtcp,
                    client_rtp: SocketAddr::new(peer_ip, rtp_port),
                    client_rtcp: SocketAddr::new(peer_ip, rtcp_port),
                    commands,
                    shutdown: self.ctx.shutdown.clone(),
                };
                tokio::spawn(task.run(Arc::clone(&self.ctx.stream)));
                let t = format!(
                    "RTP/AVP;unicast;client_port={rtp_port}-{rtcp_port};server_port={server_rtp}-{server_rtcp};ssrc={ssrc:08X};mode=\"PLAY\""
                );
                (handle, t)
            }
        };
        tracing::info!(peer = %self.peer, session = %format_id(handle.id), transport = %reply_transport, "SETUP");
        let mut r = session_response(cseq, handle.id);
        r.insert_header(headers::TRANSPORT, reply_transport);
        Ok(r)
    }

    fn refuse(&self, e: session::SessionError) -> StatusCode {
        tracing::warn!(peer = %self.peer, "SETUP refused: {e}");
        StatusCode::NotEnoughBandwidth
    }

    /// The request URL if it names our stream (with `allow_track`, also its
    /// track); else 404.
    fn stream_url(&self, req: &Request<Vec<u8>>, allow_track: bool) -> Result<String, StatusCode> {
        let url = req.request_uri().ok_or(StatusCode::NotFound)?;
        let base = self.ctx.path.as_str();
        if names_stream(url.path(), base, allow_track) {
            let mut url = url.clone();
            url.set_query(None);
            Ok(url.to_string())
        } else {
            tracing::info!(peer = %self.peer, url = %url, "no such stream (404); the stream is at {base}");
            Err(StatusCode::NotFound)
        }
    }
}

/// True if a request URL's `path` names the stream at `base` (with or
/// without a trailing slash), or its one track when `allow_track`.
fn names_stream(path: &str, base: &str, allow_track: bool) -> bool {
    let path = path.trim_end_matches('/');
    path == base
        || (allow_track
            && path
                .strip_prefix(base)
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(|rest| rest == TRACK_CONTROL))
}

async fn next_au(
    il: &mut Option<Interleaved>,
) -> Result<Arc<crate::h264::AccessUnit>, crate::broadcast::SubscribeError> {
    match il {
        Some(il) => il.media.next().await,
        None => std::future::pending().await,
    }
}

/// Appends an interleaved frame (RFC 2326 10.12) to `out`.
fn interleave(out: &mut Vec<u8>, channel: u8, packet: &[u8]) {
    out.push(b'$');
    out.push(channel);
    out.extend_from_slice(&(packet.len() as u16).to_be_bytes());
    out.extend_from_slice(packet);
}

fn ok_response(cseq: &str) -> Response<Vec<u8>> {
    Response::builder(Version::V1_0, StatusCode::Ok)
        .header(headers::CSEQ, cseq)
        .header(headers::SERVER, SERVER)
        .build(Vec::new())
}

fn session_response(cseq: &str, id: u64) -> Response<Vec<u8>> {
    let mut r = ok_response(cseq);
    r.insert_header(
        headers::SESSION,
        format!("{};timeout={}", format_id(id), SESSION_TIMEOUT.as_secs()),
    );
    r
}

fn error_response(status: StatusCode, cseq: Option<&str>) -> Response<Vec<u8>> {
    let mut b = Response::builder(Version::V1_0, status).header(headers::SERVER, SERVER);
    if let Some(c) = cseq {
        b = b.header(headers::CSEQ, c);
    }
    b.build(Vec::new())
}

fn write_response(out: &mut Vec<u8>, resp: Response<Vec<u8>>) {
    let mut resp = resp;
    if !resp.body().is_empty() {
        resp.insert_header(headers::CONTENT_LENGTH, resp.body().len().to_string());
    }
    resp.write(out).expect("writing to a Vec cannot fail");
}

/// The Content-Length of a request whose header block is complete in `buf`.
fn declared_body_len(buf: &[u8]) -> Option<usize> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use rtsp_types::{Message, Method, headers};

    use super::{TRACK_CONTROL, names_stream};
    use crate::rtsp::transport::{self, Transport};

    /// The requests one real client sent to streamcam, captured on the wire
    /// (tests/data/requests/CLIENT-TRANSPORT.txt).
    fn transcript(name: &str) -> Vec<rtsp_types::Request<Vec<u8>>> {
        let path = format!(
            "{}/tests/data/requests/{name}.txt",
            env!("CARGO_MANIFEST_DIR")
        );
        let data = std::fs::read(&path).unwrap();
        let mut rest = &data[..];
        let mut requests = Vec::new();
        while !rest.is_empty() {
            let (msg, used) = Message::<Vec<u8>>::parse(rest)
                .unwrap_or_else(|e| panic!("{name}: unparsable request: {e:?}"));
            match msg {
                Message::Request(r) => requests.push(r),
                other => panic!("{name}: not a request: {other:?}"),
            }
            rest = &rest[used..];
        }
        requests
    }

    #[test]
    fn real_clients_requests_are_understood() {
        let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
        for client in ["ffmpeg", "gstreamer", "live555", "retina"] {
            for kind in ["udp", "tcp"] {
                let name = format!("{client}-{kind}");
                let requests = transcript(&name);
                let methods: Vec<Method> = requests.iter().map(|r| r.method().clone()).collect();
                for needed in [
                    Method::Describe,
                    Method::Setup,
                    Method::Play,
                    Method::Teardown,
                ] {
                    assert!(methods.contains(&needed), "{name}: no {needed:?}");
                }
                for req in &requests {
                    assert!(req.header(&headers::CSEQ).is_some(), "{name}: no CSeq");
                    let url = req.request_uri().expect("absolute URL");
                    let track_ok = matches!(
                        req.method(),
                        Method::Setup
                            | Method::Play
                            | Method::Pause
                            | Method::Teardown
                            | Method::GetParameter
                    );
                    assert!(
                        names_stream(url.path(), "/stream", track_ok),
                        "{name}: {:?} {url} not recognised",
                        req.method()
                    );
                    if *req.method() == Method::Setup {
                        let header = req.header(&headers::TRANSPORT).expect("Transport");
                        let chosen = transport::choose(header.as_str(), peer).unwrap();
                        match (kind, chosen) {
                            (
                                "udp",
                                Transport::Udp {
                                    rtp_port,
                                    rtcp_port,
                                },
                            ) => {
                                assert_eq!(rtcp_port, rtp_port + 1, "{name}")
                            }
                            (
                                "tcp",
                                Transport::Interleaved {
                                    rtp_channel: 0,
                                    rtcp_channel: 1,
                                },
                            ) => {}
                            other => panic!("{name}: chose {other:?}"),
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn stream_path_matching() {
        assert!(names_stream("/stream", "/stream", false));
        assert!(names_stream("/stream/", "/stream", false));
        assert!(!names_stream("/stream/trackID=0", "/stream", false));
        assert!(names_stream(
            &format!("/stream/{TRACK_CONTROL}"),
            "/stream",
            true
        ));
        assert!(!names_stream("/streamx", "/stream", true));
        assert!(!names_stream("/streamtrackID=0", "/stream", true));
        assert!(!names_stream("/other", "/stream", true));
        assert!(!names_stream("/", "/stream", true));
        assert!(!names_stream("/cam/stream", "/stream", true));
    }
}
