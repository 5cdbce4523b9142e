//! One RTSP connection, I/O only: reads requests (and interleaved RTCP),
//! runs them through the [`Protocol`], carries out the effects it asks for
//! (sessions are created, played, paused and torn down here) and queues the
//! replies on the connection's writer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtsp_types::{Request, StatusCode};
use tokio::io::{AsyncReadExt, ReadHalf};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::admission::Ticket;
use super::context::ServerContext;
use super::effect::{After, Carriage, Created, Done, Effect, Output, SessionId};
use super::end::End;
use super::media::ClientMedia;
use super::message::{self, FramingError, Input};
use super::mount::MountIndex;
use super::protocol::Protocol;
use super::session::{
    Command, MediaSession, SESSION_TIMEOUT, SessionHandle, Sink, TrackMedia, rtcp_to,
};
use super::transport::Transport;
use super::udp::UdpMedia;
use super::writer::{self, Outgoing, WriterHandle};
use crate::format::sdp::Track;

/// A partial request older than this closes the connection (slow clients).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection that carries no session and sends no request for this long
/// is closed (one that carries a session has [`SESSION_TIMEOUT`]).
const IDLE_WITHOUT_SESSION: Duration = Duration::from_secs(15);
/// Bytes read at a time.
const READ_CHUNK: usize = 4096;
/// Longest DESCRIBE waits for the first picture's parameter sets.
const DESCRIBE_WAIT: Duration = Duration::from_secs(5);
/// Kernel send buffer for a connection: bounds what a client that stops
/// reading can hold up (about 4 s at 1 Mbit/s) before it is noticed.
const SEND_BUFFER: usize = 512 * 1024;
/// Longest a closing connection waits for its last bytes (an error reply,
/// a BYE) to be written.
const FLUSH_WAIT: Duration = Duration::from_millis(500);

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
    #[error("{}", .0.describe())]
    Writer(End),
    #[error("idle for {} s with no session playing", .0.as_secs())]
    Idle(Duration),
    #[error("closed to make room for a new connection (no session on it)")]
    Evicted,
}

impl Close {
    /// How the session on this connection ends with it.
    fn session_end(&self) -> End {
        match self {
            Self::Eof => End::ClientClosed("the client closed the connection"),
            Self::Shutdown => End::ServerStopping,
            Self::Io(e) => writer::io_end(e),
            Self::BadRequest(why) => End::Error(format!("bad request: {why}")),
            Self::Writer(end) => end.clone(),
            Self::Idle(_) => End::Timeout,
            Self::Evicted => End::Error("closed to make room".into()),
        }
    }
}

/// The interleaved session this connection carries.
struct Interleaved {
    handle: Arc<SessionHandle>,
    /// The RTCP channel of each of its tracks.
    rtcp_channels: Vec<u8>,
    playing: bool,
}

/// Serves one admitted connection until it closes; with `tls`, inside TLS
/// (RTSPS) once its handshake is done.
pub async fn serve(
    ctx: Arc<ServerContext>,
    stream: TcpStream,
    peer: SocketAddr,
    ticket: Ticket,
    tls: Option<TlsAcceptor>,
) {
    let local = match stream.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!(client = %peer.ip().to_canonical(), "connection lost before it started: {e}");
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let _ = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER);
    let client = peer.ip().to_canonical();
    let (reader, (writer, mut writer_task), protocol) = match tls {
        None => {
            let (reader, half) = stream.into_split();
            let protocol = Protocol::new(peer.ip(), local.ip());
            (Reader::Plain(reader), writer::spawn(half), protocol)
        }
        Some(acceptor) => {
            let handshake = tokio::time::timeout(REQUEST_TIMEOUT, acceptor.accept(stream));
            let tls = tokio::select! {
                done = handshake => done,
                _ = ticket.evicted() => return,
            };
            let tls = match tls {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(client = %client, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(client = %client, "TLS handshake not done after {} s", REQUEST_TIMEOUT.as_secs());
                    return;
                }
            };
            let (reader, half) = tokio::io::split(tls);
            let protocol = Protocol::new(peer.ip(), local.ip()).over_tls();
            (Reader::Tls(reader), writer::spawn(half), protocol)
        }
    };
    let mut conn = Connection {
        protocol,
        ctx: Arc::clone(&ctx),
        peer,
        local,
        writer,
        interleaved: None,
        udp_sessions: Vec::new(),
        go: None,
        ticket,
    };
    let close = conn.run(reader, &mut writer_task).await;
    let carried_session = conn.interleaved.take();
    if let Some(il) = &carried_session {
        // The session logs its own end; it ends with its connection.
        let _ = il
            .handle
            .commands
            .send(Command::ConnectionClosed(close.session_end()))
            .await;
    }
    drop(conn);
    if !matches!(close, Close::Writer(_)) {
        // The writer ends once the session lets go of it too.
        let _ = tokio::time::timeout(FLUSH_WAIT, writer_task).await;
    }
    match (&close, carried_session) {
        (Close::BadRequest(_), _) => {
            let limit = ctx.refusals.lock().unwrap().allow(Instant::now());
            if let Some(held_back) = limit {
                tracing::info!(client = %peer.ip().to_canonical(), "connection closed: {close} ({held_back} more refused or closed since the last line)");
            }
        }
        (_, Some(_)) => {}
        _ => tracing::debug!(client = %peer.ip().to_canonical(), "connection closed: {close}"),
    }
}

/// A connection's reading half, plain or inside TLS.
enum Reader {
    Plain(OwnedReadHalf),
    Tls(ReadHalf<TlsStream<TcpStream>>),
}

impl Reader {
    /// Reads what has arrived into `buf`; 0 at the end. Cancel-safe. A
    /// plain connection grows `buf` only once bytes are there.
    async fn read(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        match self {
            Self::Plain(r) => loop {
                r.readable().await?;
                buf.reserve(READ_CHUNK);
                match r.try_read_buf(buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    done => return done,
                }
            },
            Self::Tls(r) => {
                buf.reserve(READ_CHUNK);
                r.read_buf(buf).await
            }
        }
    }
}

struct Connection {
    ctx: Arc<ServerContext>,
    protocol: Protocol,
    peer: SocketAddr,
    local: SocketAddr,
    writer: WriterHandle,
    interleaved: Option<Interleaved>,
    /// UDP sessions this connection set up.
    udp_sessions: Vec<SessionId>,
    /// Fires the session's media once the PLAY reply is written.
    go: Option<oneshot::Sender<()>>,
    /// Its place among the open connections.
    ticket: Ticket,
}

impl Connection {
    async fn run(&mut self, mut reader: Reader, writer_task: &mut JoinHandle<()>) -> Close {
        // Allocated when bytes arrive and let go once they are used: an idle
        // connection holds no buffer.
        let mut inbuf = BytesMut::new();
        let mut shutdown = self.ctx.shutdown.clone();
        let mut partial_since: Option<tokio::time::Instant> = None;
        let mut last_request = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            loop {
                match message::next_input(&mut inbuf) {
                    Ok(Some(Input::Request(req))) => {
                        partial_since = None;
                        last_request = tokio::time::Instant::now();
                        if let Err(close) = self.handle(req).await {
                            return close;
                        }
                    }
                    Ok(Some(Input::Data(channel, data))) => {
                        partial_since = None;
                        self.interleaved_data(channel, data);
                    }
                    Ok(None) => break,
                    Err(e) => return self.refuse(e).await,
                }
            }
            if inbuf.is_empty() {
                inbuf = BytesMut::new();
            } else {
                partial_since.get_or_insert_with(tokio::time::Instant::now);
            }
            // A session that ended on its own (it lagged) no longer keeps
            // the connection from idling out.
            let playing = self
                .interleaved
                .as_ref()
                .is_some_and(|i| i.playing && self.ctx.sessions.get(i.handle.id).is_some());
            let carries = self.carries_session();
            self.ticket.set_carries_session(carries);
            let idle_limit = if carries {
                SESSION_TIMEOUT
            } else {
                IDLE_WITHOUT_SESSION
            };
            tokio::select! {
                _ = crate::service::shutdown::stopped(&mut shutdown) => return Close::Shutdown,
                _ = self.ticket.evicted() => return Close::Evicted,
                n = reader.read(&mut inbuf) => match n {
                    Ok(0) => return Close::Eof,
                    Ok(_) => {}
                    Err(e) => return Close::Io(e),
                },
                _ = &mut *writer_task => return Close::Writer(self.writer.failure()),
                _ = tick.tick() => {
                    if partial_since.is_some_and(|t| t.elapsed() > REQUEST_TIMEOUT) {
                        return Close::BadRequest(format!(
                            "request incomplete after {} s",
                            REQUEST_TIMEOUT.as_secs()
                        ));
                    }
                    if !playing && last_request.elapsed() > idle_limit {
                        return Close::Idle(idle_limit);
                    }
                }
            }
        }
    }

    /// True while a session this connection set up is live.
    fn carries_session(&mut self) -> bool {
        let sessions = &self.ctx.sessions;
        self.udp_sessions.retain(|id| sessions.get(*id).is_some());
        !self.udp_sessions.is_empty()
            || self
                .interleaved
                .as_ref()
                .is_some_and(|il| sessions.get(il.handle.id).is_some())
    }

    /// Answers bytes that are not RTSP, and closes.
    async fn refuse(&mut self, e: FramingError) -> Close {
        let mut out = Vec::new();
        message::write_response(&mut out, super::protocol::error_response(e.status(), None));
        let _ = self.writer.send(Outgoing::data(out.into())).await;
        Close::BadRequest(e.to_string())
    }

    /// RTCP (or anything) the client sent on an interleaved channel.
    fn interleaved_data(&mut self, channel: u8, data: Vec<u8>) {
        let Some(il) = &self.interleaved else { return };
        if il.rtcp_channels.contains(&channel) {
            // RTCP is advisory: dropped if the session is busy.
            let _ = il.handle.commands.try_send(Command::Rtcp(data));
        }
    }

    /// Answers one request.
    async fn handle(&mut self, req: Request<Vec<u8>>) -> Result<(), Close> {
        tracing::debug!(client = %self.peer.ip().to_canonical(), method = ?req.method(), uri = ?req.request_uri().map(super::mount::loggable), "request");
        let mut out =
            self.protocol
                .handle(&req, &self.ctx.info, &*self.ctx.sessions, Instant::now());
        loop {
            match out {
                Output::Effect(effect) => {
                    let done = self.execute(effect).await;
                    out = self.protocol.complete(done, &self.ctx.info);
                }
                Output::Reply { response, after } => {
                    let mut bytes = Vec::new();
                    message::write_response(&mut bytes, response);
                    let bytes = Bytes::from(bytes);
                    let outgoing = match (after, self.go.take()) {
                        (After::StartMedia(_), Some(go)) => Outgoing::signalled(bytes, go),
                        _ => Outgoing::data(bytes),
                    };
                    self.writer.send(outgoing).await.map_err(Close::Writer)?;
                    if after == After::Close {
                        return Err(Close::BadRequest("request without CSeq".into()));
                    }
                    return Ok(());
                }
            }
        }
    }

    /// Carries out what the protocol asked for.
    async fn execute(&mut self, effect: Effect) -> Done {
        match effect {
            Effect::Describe(mount) => {
                Done::Described(self.ctx.streams[mount].parameter_sets(DESCRIBE_WAIT).await)
            }
            Effect::CreateSession(mount, track, t) => self.create_session(mount, track, t).await,
            Effect::AddTrack(id, mount, track, t) => self.add_track(id, mount, track, t).await,
            Effect::Play(id) => {
                let Some(handle) = self.ctx.sessions.get(id) else {
                    return Done::Failed(StatusCode::SessionNotFound);
                };
                let (reply, start) = oneshot::channel();
                let (go, wait) = oneshot::channel();
                if handle
                    .commands
                    .send(Command::Play { reply, go: wait })
                    .await
                    .is_err()
                {
                    return Done::Failed(StatusCode::SessionNotFound);
                }
                let Ok(start) = start.await else {
                    return Done::Failed(StatusCode::SessionNotFound);
                };
                self.go = Some(go);
                self.set_playing(id, true);
                tracing::debug!(client = %self.peer.ip().to_canonical(), session = %id, "PLAY");
                Done::Playing(start)
            }
            Effect::Pause(id) => {
                let (done, wait) = oneshot::channel();
                match self.command(id, Command::Pause(done)).await {
                    Ok(()) if wait.await.is_ok() => {
                        self.set_playing(id, false);
                        Done::Paused
                    }
                    _ => Done::Failed(StatusCode::SessionNotFound),
                }
            }
            Effect::Teardown(id) => {
                let (done, wait) = oneshot::channel();
                if self.command(id, Command::Teardown(done)).await.is_ok() {
                    let _ = wait.await;
                }
                if self
                    .interleaved
                    .as_ref()
                    .is_some_and(|il| il.handle.id == id)
                {
                    self.interleaved = None;
                }
                self.ctx.sessions.remove(id);
                Done::TornDown
            }
        }
    }

    async fn command(&self, id: SessionId, command: Command) -> Result<(), ()> {
        let handle = self.ctx.sessions.get(id).ok_or(())?;
        handle.commands.send(command).await.map_err(|_| ())
    }

    fn set_playing(&mut self, id: SessionId, playing: bool) {
        if let Some(il) = self.interleaved.as_mut().filter(|il| il.handle.id == id) {
            il.playing = playing;
        }
    }

    /// The UDP media of `track` of stream `mount` on the address this
    /// connection came to; `None` (logged) if its ports cannot be bound.
    async fn udp_media(&self, mount: MountIndex, track: Track) -> Option<Arc<UdpMedia>> {
        let local = self.local.ip().to_canonical();
        let stream = self.ctx.track_stream(mount, track)?;
        match self
            .ctx
            .udp
            .get(local, (mount, track), stream, &self.ctx.shutdown)
            .await
        {
            Ok(udp) => Some(udp),
            Err(e) => {
                tracing::error!(client = %self.peer.ip(), "SETUP: cannot bind UDP ports on {local}: {e}");
                None
            }
        }
    }

    /// `track` of stream `mount` for session `handle`, carried by `t`, and
    /// our UDP ports for it; the status to answer if it cannot be made.
    async fn track_media(
        &mut self,
        handle: &Arc<SessionHandle>,
        mount: MountIndex,
        track: Track,
        t: Transport,
        media: ClientMedia,
    ) -> Result<(TrackMedia, Option<(u16, u16)>), StatusCode> {
        let peer_ip = self.peer.ip().to_canonical();
        let (sink, server_ports) = match t {
            Transport::Interleaved {
                rtp_channel,
                rtcp_channel,
            } => {
                match &mut self.interleaved {
                    Some(il) if il.handle.id == handle.id => il.rtcp_channels.push(rtcp_channel),
                    _ => {
                        self.interleaved = Some(Interleaved {
                            handle: Arc::clone(handle),
                            rtcp_channels: vec![rtcp_channel],
                            playing: false,
                        });
                    }
                }
                let sink = Sink::Interleaved {
                    writer: self.writer.clone(),
                    rtp_channel,
                    rtcp_channel,
                };
                (sink, None)
            }
            Transport::Udp {
                rtp_port,
                rtcp_port,
            } => {
                let udp = self
                    .udp_media(mount, track)
                    .await
                    .ok_or(StatusCode::InternalServerError)?;
                let client = udp.add(
                    handle.id,
                    SocketAddr::new(peer_ip, rtp_port),
                    SocketAddr::new(peer_ip, rtcp_port),
                    Arc::clone(media.counts()),
                    rtcp_to(&handle.commands),
                );
                if !self.udp_sessions.contains(&handle.id) {
                    self.udp_sessions.push(handle.id);
                }
                (Sink::Udp(client), Some(udp.ports()))
            }
            Transport::Multicast(m) => {
                let udp = self
                    .udp_media(mount, track)
                    .await
                    .ok_or(StatusCode::InternalServerError)?;
                let counts = Arc::clone(media.counts());
                match udp.add_multicast(handle.id, &m, counts, rtcp_to(&handle.commands)) {
                    Ok(client) => {
                        self.udp_sessions.push(handle.id);
                        (Sink::Udp(client), Some(udp.ports()))
                    }
                    Err(e) => {
                        tracing::warn!(client = %peer_ip, local = %self.local.ip(), "SETUP refused: multicast: {e}");
                        return Err(StatusCode::UnsupportedTransport);
                    }
                }
            }
        };
        Ok((TrackMedia { track, media, sink }, server_ports))
    }

    /// Adds `track` of stream `mount` to session `id` (a second SETUP).
    async fn add_track(
        &mut self,
        id: SessionId,
        mount: MountIndex,
        track: Track,
        t: Transport,
    ) -> Done {
        let Some(handle) = self.ctx.sessions.get(id) else {
            return Done::Failed(StatusCode::SessionNotFound);
        };
        let Some(stream) = self.ctx.track_stream(mount, track) else {
            return Done::Failed(StatusCode::NotFound);
        };
        let media = ClientMedia::new(stream);
        let ssrc = media.ssrc();
        let (track_media, server_ports) =
            match self.track_media(&handle, mount, track, t, media).await {
                Ok(made) => made,
                Err(status) => return Done::Failed(status),
            };
        let (answer, added) = oneshot::channel();
        if handle
            .commands
            .send(Command::AddTrack(Box::new(track_media), answer))
            .await
            .is_err()
        {
            return Done::Failed(StatusCode::SessionNotFound);
        }
        match added.await {
            Ok(true) => Done::Created(Created {
                id,
                ssrc,
                server_ports,
            }),
            // The session has the track already, or plays.
            _ => Done::Failed(StatusCode::AggregateOperationNotAllowed),
        }
    }

    /// Creates a session with `track` of stream `mount` and starts its task.
    async fn create_session(&mut self, mount: MountIndex, track: Track, t: Transport) -> Done {
        let peer_ip = self.peer.ip().to_canonical();
        let Some(stream) = self.ctx.track_stream(mount, track) else {
            return Done::Failed(StatusCode::NotFound);
        };
        let media = ClientMedia::new(stream);
        let ssrc = media.ssrc();
        let carriage = match t {
            Transport::Interleaved { .. } => Carriage::Interleaved,
            Transport::Udp { .. } => Carriage::Udp,
            Transport::Multicast(_) => Carriage::Multicast,
        };
        let (handle, commands) = match self
            .ctx
            .sessions
            .insert(carriage, Arc::clone(media.counts()))
        {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(client = %peer_ip, "SETUP refused: {e}");
                return Done::Failed(StatusCode::NotEnoughBandwidth);
            }
        };
        let (track_media, server_ports) =
            match self.track_media(&handle, mount, track, t, media).await {
                Ok(made) => made,
                Err(status) => {
                    self.ctx.sessions.remove(handle.id);
                    return Done::Failed(status);
                }
            };
        let task = MediaSession {
            handle: Arc::clone(&handle),
            table: Arc::clone(&self.ctx.sessions),
            tracks: vec![track_media],
            client: peer_ip,
            path: self.ctx.info.mounts[mount].path.clone(),
            commands,
            shutdown: self.ctx.shutdown.clone(),
        };
        tokio::spawn(task.run());
        Done::Created(Created {
            id: handle.id,
            ssrc,
            server_ports,
        })
    }
}
