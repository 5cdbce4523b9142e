//! The RTSP 1.0 server's state machine (RFC 2326), without sockets, tasks
//! or clocks: a request and the connection's state go in; a response, or an
//! [`Effect`] for the I/O layer to carry out first, comes out. The I/O layer
//! (`connection`) hands the effect's result back to [`Protocol::complete`]
//! for the response. Every rule of the protocol lives here, so it is tested
//! from recorded client transcripts and fuzzed without a network.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use rtsp_types::{Method, Request, Response, StatusCode, Version, headers};

use super::effect::{
    After, Carriage, Done, Effect, Output, SESSION_TIMEOUT_S, SessionId, Sessions,
};
use super::message::CHALLENGE_SEPARATOR;
use super::mount::{Mount, MountIndex, loggable, named_track};
use super::transport::{self, Transport, TransportError};
use crate::config::MulticastConfig;
use crate::format::sdp::{self, TRACK_PREFIX, Track, VIDEO};
use crate::servers::auth::{Attempt, Auth, Verdict};

/// Methods the server implements, for OPTIONS and 405 replies.
pub const PUBLIC: &str =
    "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER";
/// Value of the Server header.
const SERVER: &str = concat!("streamcam/", env!("CARGO_PKG_VERSION"));
/// What the server tells the protocol about itself.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// The streams served: the main one first, then the substream.
    pub mounts: Vec<Mount>,
    /// The `o=` session id of the SDP.
    pub sdp_session_id: u64,
    /// Who may watch; `None`: anyone.
    pub auth: Option<Arc<Auth>>,
    /// The multicast group clients asking for multicast get; `None`: no
    /// multicast.
    pub multicast: Option<MulticastConfig>,
}

/// A request that waits for its effect's result.
#[derive(Debug)]
struct Pending {
    cseq: String,
    /// The request URL without its query.
    url: String,
    effect: Effect,
}

/// The protocol state of one RTSP connection.
#[derive(Debug)]
pub struct Protocol {
    peer: IpAddr,
    local: IpAddr,
    /// True on an RTSPS connection.
    secure: bool,
    /// The interleaved session this connection carries.
    interleaved: Option<SessionId>,
    pending: Option<Pending>,
}

impl Protocol {
    /// State for a new connection from `peer` to our address `local`.
    pub fn new(peer: IpAddr, local: IpAddr) -> Self {
        Self {
            peer: peer.to_canonical(),
            local: local.to_canonical(),
            secure: false,
            interleaved: None,
            pending: None,
        }
    }

    /// The same for a connection inside TLS (RTSPS): media must travel
    /// inside it (interleaved), and Basic credentials are safe.
    pub fn over_tls(mut self) -> Self {
        self.secure = true;
        self
    }

    /// The interleaved session this connection carries, if any.
    pub fn interleaved_session(&self) -> Option<SessionId> {
        self.interleaved
    }

    /// Handles one request, arrived at `now`. At most one request is handled
    /// at a time: after an [`Output::Effect`], call [`Protocol::complete`]
    /// before the next.
    pub fn handle(
        &mut self,
        req: &Request<Vec<u8>>,
        server: &ServerInfo,
        sessions: &dyn Sessions,
        now: Instant,
    ) -> Output {
        debug_assert!(self.pending.is_none(), "a request is still pending");
        let Some(cseq) = req
            .header(&headers::CSEQ)
            .map(|v| v.as_str().trim().to_string())
        else {
            return Output::Reply {
                response: error_response(StatusCode::BadRequest, None),
                after: After::Close,
            };
        };
        let reply = |response| Output::Reply {
            response,
            after: After::Nothing,
        };
        if req.version() != Version::V1_0 {
            return reply(error_response(
                StatusCode::RTSPVersionNotSupported,
                Some(&cseq),
            ));
        }
        if let Some(required) = req.header(&headers::REQUIRE) {
            let mut r = error_response(StatusCode::OptionNotSupported, Some(&cseq));
            r.insert_header(headers::UNSUPPORTED, required.as_str());
            return reply(r);
        }
        if let Err(refusal) = self.authorize(req, &cseq, server.auth.as_deref(), now) {
            return reply(refusal);
        }
        match self.decide(req, &cseq, server, sessions) {
            Ok(Decision::Reply(r)) => reply(r),
            Ok(Decision::Effect(url, effect)) => {
                self.pending = Some(Pending {
                    cseq,
                    url,
                    effect: effect.clone(),
                });
                Output::Effect(effect)
            }
            Err(status) => reply(error_response(status, Some(&cseq))),
        }
    }

    /// The per-request access check: every request passes through here
    /// before it is acted on. With users configured, every method but
    /// OPTIONS needs their credentials.
    fn authorize(
        &self,
        req: &Request<Vec<u8>>,
        cseq: &str,
        auth: Option<&Auth>,
        now: Instant,
    ) -> Result<(), Response<Vec<u8>>> {
        let Some(auth) = auth else { return Ok(()) };
        if req.method() == Method::Options {
            return Ok(());
        }
        let Some(url) = req.request_uri() else {
            return Err(error_response(StatusCode::BadRequest, Some(cseq)));
        };
        let attempt = Attempt {
            method: req.method().into(),
            url,
            authorization: req.header(&headers::AUTHORIZATION).map(|v| v.as_str()),
            client: self.peer,
            secure: self.secure,
            now,
        };
        match auth.check(&attempt) {
            Verdict::Allowed { user } => {
                tracing::debug!(client = %self.peer, user = %user, "authenticated");
                Ok(())
            }
            Verdict::Challenge { stale } => {
                let mut r = error_response(StatusCode::Unauthorized, Some(cseq));
                let challenges = auth.challenges(stale, attempt.secure, now);
                r.insert_header(
                    headers::WWW_AUTHENTICATE,
                    challenges.join(&CHALLENGE_SEPARATOR.to_string()),
                );
                Err(r)
            }
            Verdict::Throttled { retry_after } => {
                let mut r = error_response(StatusCode::ServiceUnavailable, Some(cseq));
                let seconds = (retry_after.as_secs_f64().ceil() as u64).max(1);
                r.insert_header(headers::RETRY_AFTER, format!("{seconds}"));
                Err(r)
            }
        }
    }

    /// Answers the pending request with the result of its effect.
    pub fn complete(&mut self, done: Done, server: &ServerInfo) -> Output {
        let Some(p) = self.pending.take() else {
            return Output::Reply {
                response: error_response(StatusCode::InternalServerError, None),
                after: After::Close,
            };
        };
        let cseq = p.cseq.as_str();
        let mut after = After::Nothing;
        let response = match (p.effect, done) {
            (_, Done::Failed(status)) => error_response(status, Some(cseq)),
            (Effect::Describe(mount), Done::Described(Some(params))) => {
                let m = server.mounts.get(mount);
                let framerate = m.map_or(0, |m| m.framerate);
                let body = sdp::describe(
                    &params,
                    self.local,
                    server.sdp_session_id,
                    params.fps.unwrap_or(f64::from(framerate)),
                    m.and_then(|m| m.audio_channels),
                );
                let base = if p.url.ends_with('/') {
                    p.url
                } else {
                    format!("{}/", p.url)
                };
                let mut r = ok_response(cseq);
                r.insert_header(headers::CONTENT_BASE, base);
                r.insert_header(headers::CONTENT_TYPE, "application/sdp");
                r.map_body(|_| body.into_bytes())
            }
            (Effect::Describe(_), Done::Described(None)) => {
                error_response(StatusCode::ServiceUnavailable, Some(cseq))
            }
            (Effect::CreateSession(_, _, t) | Effect::AddTrack(_, _, _, t), Done::Created(c)) => {
                if matches!(t, Transport::Interleaved { .. }) {
                    self.interleaved = Some(c.id);
                }
                let mut r = session_response(cseq, c.id);
                r.insert_header(
                    headers::TRANSPORT,
                    transport::reply(t, c.ssrc, c.server_ports),
                );
                r
            }
            (Effect::Play(id), Done::Playing(starts)) => {
                after = After::StartMedia(id);
                // The aggregate URL, whichever URL PLAY named.
                let base = p.url.trim_end_matches('/');
                let base = base
                    .rsplit_once('/')
                    .filter(|(_, last)| last.starts_with("trackID="))
                    .map_or(base, |(base, _)| base);
                let info: Vec<String> = starts
                    .iter()
                    .map(|s| {
                        format!(
                            "url={base}/{}{};seq={};rtptime={}",
                            TRACK_PREFIX, s.track, s.seq, s.rtptime
                        )
                    })
                    .collect();
                let mut r = session_response(cseq, id);
                r.insert_header(headers::RANGE, "npt=now-");
                r.insert_header(headers::RTP_INFO, info.join(","));
                r
            }
            (Effect::Pause(id), Done::Paused) => session_response(cseq, id),
            (Effect::Teardown(id), Done::TornDown) => {
                if self.interleaved == Some(id) {
                    self.interleaved = None;
                }
                ok_response(cseq)
            }
            (effect, done) => {
                tracing::error!("{effect:?} completed with {done:?}");
                error_response(StatusCode::InternalServerError, Some(cseq))
            }
        };
        Output::Reply { response, after }
    }

    fn decide(
        &self,
        req: &Request<Vec<u8>>,
        cseq: &str,
        server: &ServerInfo,
        sessions: &dyn Sessions,
    ) -> Result<Decision, StatusCode> {
        // A Session header must name a live session, whatever the method.
        let session = match req.header(&headers::SESSION) {
            Some(v) => {
                let id = SessionId::from_header(v.as_str()).ok_or(StatusCode::SessionNotFound)?;
                let carriage = sessions.find(id).ok_or(StatusCode::SessionNotFound)?;
                Some((id, carriage))
            }
            None => None,
        };
        let keep_alive = || match session {
            Some((id, _)) => session_response(cseq, id),
            None => ok_response(cseq),
        };
        let method = req.method();
        let track_allowed = !matches!(method, Method::Options | Method::Describe);
        let (mount, track, url) = match method {
            // OPTIONS * and keep-alives on any URL are fine.
            Method::Options | Method::GetParameter | Method::SetParameter => {
                (0, None, String::new())
            }
            _ => self.stream_url(req, server, track_allowed)?,
        };
        let controlled = |s: Option<(SessionId, Carriage)>| -> Result<SessionId, StatusCode> {
            let (id, carriage) = s.ok_or(StatusCode::SessionNotFound)?;
            if carriage == Carriage::Interleaved && self.interleaved != Some(id) {
                // Interleaved media can only flow on the connection that set it up.
                return Err(StatusCode::MethodNotValidInThisState);
            }
            Ok(id)
        };
        Ok(match method {
            Method::Options => {
                let mut r = ok_response(cseq);
                r.insert_header(headers::PUBLIC, PUBLIC);
                Decision::Reply(r)
            }
            Method::Describe => Decision::Effect(url, Effect::Describe(mount)),
            Method::Setup => {
                // The aggregate URL sets up the video track.
                let track = track.unwrap_or(VIDEO);
                if session.is_some_and(|_| track == VIDEO) {
                    // A session's first SETUP is its video (or its audio
                    // only); another video SETUP changes nothing.
                    return Err(StatusCode::AggregateOperationNotAllowed);
                }
                let header = req
                    .header(&headers::TRANSPORT)
                    .ok_or(StatusCode::BadRequest)?;
                let offered = if self.secure {
                    // UDP would carry the media outside TLS, in the clear.
                    let inside: Vec<&str> = header
                        .as_str()
                        .split(',')
                        .filter(|spec| spec.trim().to_ascii_uppercase().starts_with("RTP/AVP/TCP"))
                        .collect();
                    if inside.is_empty() {
                        tracing::info!(client = %self.peer, transport = %header.as_str(), "SETUP refused: RTSPS carries media inside TLS only (RTP/AVP/TCP)");
                        return Err(StatusCode::UnsupportedTransport);
                    }
                    inside.join(",")
                } else {
                    header.as_str().to_string()
                };
                // Multicast carries the main stream's video only.
                let multicast = server.multicast.filter(|_| mount == 0 && track == VIDEO);
                let chosen = transport::choose(&offered, self.peer, multicast).map_err(|e| {
                    tracing::info!(client = %self.peer, transport = %header.as_str(), "SETUP refused: {e}");
                    match e {
                        TransportError::Unsupported => StatusCode::UnsupportedTransport,
                        TransportError::ForeignDestination(_) | TransportError::ForeignGroup(_) => {
                            StatusCode::Forbidden
                        }
                        TransportError::Malformed => StatusCode::BadRequest,
                    }
                })?;
                if let Some((id, carriage)) = session {
                    // A second track: the same session, carried the same way.
                    let same = match chosen {
                        Transport::Interleaved { .. } => {
                            carriage == Carriage::Interleaved && self.interleaved == Some(id)
                        }
                        Transport::Udp { .. } => carriage == Carriage::Udp,
                        Transport::Multicast(_) => false,
                    };
                    if !same {
                        return Err(StatusCode::UnsupportedTransport);
                    }
                    return Ok(Decision::Effect(
                        url,
                        Effect::AddTrack(id, mount, track, chosen),
                    ));
                }
                if matches!(chosen, Transport::Interleaved { .. }) && self.interleaved.is_some() {
                    // One interleaved session per connection keeps channels unambiguous.
                    return Err(StatusCode::NotEnoughBandwidth);
                }
                Decision::Effect(url, Effect::CreateSession(mount, track, chosen))
            }
            Method::Play => Decision::Effect(url, Effect::Play(controlled(session)?)),
            Method::Pause => Decision::Effect(url, Effect::Pause(controlled(session)?)),
            Method::Teardown => Decision::Effect(url, Effect::Teardown(controlled(session)?)),
            Method::GetParameter => Decision::Reply(keep_alive()),
            Method::SetParameter => {
                if !req.body().is_empty() {
                    return Err(StatusCode::ParameterNotUnderstood);
                }
                Decision::Reply(keep_alive())
            }
            Method::Announce | Method::Record | Method::Redirect | Method::PlayNotify => {
                let mut r = error_response(StatusCode::MethodNotAllowed, Some(cseq));
                r.insert_header(headers::ALLOW, PUBLIC);
                Decision::Reply(r)
            }
            Method::Extension(_) => return Err(StatusCode::NotImplemented),
        })
    }

    /// The stream a request URL names, the track if it names one (only
    /// with `allow_track`), and the URL without its query; else 404.
    fn stream_url(
        &self,
        req: &Request<Vec<u8>>,
        server: &ServerInfo,
        allow_track: bool,
    ) -> Result<(MountIndex, Option<Track>, String), StatusCode> {
        let url = req.request_uri().ok_or(StatusCode::NotFound)?;
        let named = server.mounts.iter().enumerate().find_map(|(i, m)| {
            let tracks = if allow_track { m.tracks() } else { 0 };
            named_track(url.path(), &m.path, tracks).map(|track| (i, track))
        });
        match named {
            Some((mount, track)) => {
                let mut url = url.clone();
                url.set_query(None);
                Ok((mount, track, url.to_string()))
            }
            None => {
                let paths: Vec<&str> = server.mounts.iter().map(|m| m.path.as_str()).collect();
                tracing::info!(client = %self.peer, url = %loggable(url), "no such stream (404); the streams are at {}", paths.join(" and "));
                Err(StatusCode::NotFound)
            }
        }
    }
}

/// What a request calls for.
enum Decision {
    Reply(Response<Vec<u8>>),
    /// An effect, and the request URL it concerns.
    Effect(String, Effect),
}

fn ok_response(cseq: &str) -> Response<Vec<u8>> {
    Response::builder(Version::V1_0, StatusCode::Ok)
        .header(headers::CSEQ, cseq)
        .header(headers::SERVER, SERVER)
        .build(Vec::new())
}

fn session_response(cseq: &str, id: SessionId) -> Response<Vec<u8>> {
    let mut r = ok_response(cseq);
    r.insert_header(
        headers::SESSION,
        format!("{id};timeout={SESSION_TIMEOUT_S}"),
    );
    r
}

/// A response with no body: `status`, and the request's CSeq when known.
pub fn error_response(status: StatusCode, cseq: Option<&str>) -> Response<Vec<u8>> {
    let mut b = Response::builder(Version::V1_0, status).header(headers::SERVER, SERVER);
    if let Some(c) = cseq {
        b = b.header(headers::CSEQ, c);
    }
    b.build(Vec::new())
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    use bytes::Bytes;
    use rtsp_types::Message;

    use super::*;
    use crate::format::h264::ParameterSets;
    use crate::format::h264::fixtures::{PPS, SPS_720P};
    use crate::format::sdp::AUDIO;
    use crate::servers::rtsp::effect::{Created, PlayStart};

    /// The requests one real client sent to streamcam, captured on the wire
    /// (tests/data/requests/CLIENT-TRANSPORT.txt).
    fn transcript(name: &str) -> Vec<Request<Vec<u8>>> {
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

    fn server() -> ServerInfo {
        ServerInfo {
            mounts: vec![Mount {
                path: "/stream".into(),
                framerate: 30,
                audio_channels: None,
            }],
            sdp_session_id: 7,
            auth: None,
            multicast: None,
        }
    }

    /// A server whose one user is viewer/secret; `basic`: `auth.basic`.
    fn server_with_viewer(basic: bool) -> ServerInfo {
        let text = format!(
            "[auth]\nbasic = {basic}\n[[auth.users]]\nname = \"viewer\"\npassword = \"secret\"\n"
        );
        let config = crate::config::Config::parse(&text, "test", None).unwrap();
        ServerInfo {
            auth: Auth::new(&config.auth).map(Arc::new),
            ..server()
        }
    }

    fn params() -> ParameterSets {
        ParameterSets::new(Bytes::from_static(SPS_720P), Bytes::from_static(PPS)).unwrap()
    }

    /// A session table in memory, and what the "I/O layer" did.
    #[derive(Default)]
    struct Table {
        live: RefCell<HashMap<u64, Carriage>>,
        next: RefCell<u64>,
    }

    impl Sessions for Table {
        fn find(&self, id: SessionId) -> Option<Carriage> {
            self.live.borrow().get(&id.0).copied()
        }
    }

    impl Table {
        /// Carries out `effect` as the connection would.
        fn execute(&self, effect: &Effect) -> Done {
            match effect {
                Effect::Describe(_) => Done::Described(Some(params())),
                Effect::CreateSession(_, _, t) | Effect::AddTrack(_, _, _, t) => {
                    *self.next.borrow_mut() += 1;
                    let id = match effect {
                        Effect::AddTrack(id, ..) => id.0,
                        _ => 0xABC0 + *self.next.borrow(),
                    };
                    let (carriage, ports) = match t {
                        Transport::Udp { .. } => (Carriage::Udp, Some((6970, 6971))),
                        Transport::Interleaved { .. } => (Carriage::Interleaved, None),
                        Transport::Multicast(_) => (Carriage::Multicast, Some((6970, 6971))),
                    };
                    self.live.borrow_mut().insert(id, carriage);
                    Done::Created(Created {
                        id: SessionId(id),
                        ssrc: 0x1234_5678,
                        server_ports: ports,
                    })
                }
                Effect::Play(_) => Done::Playing(vec![
                    PlayStart {
                        track: VIDEO,
                        seq: 100,
                        rtptime: 9000,
                    },
                    PlayStart {
                        track: AUDIO,
                        seq: 7,
                        rtptime: 4800,
                    },
                ]),
                Effect::Pause(_) => Done::Paused,
                Effect::Teardown(id) => {
                    self.live.borrow_mut().remove(&id.0);
                    Done::TornDown
                }
            }
        }
    }

    /// Runs one request through the protocol to its response.
    fn exchange(
        p: &mut Protocol,
        table: &Table,
        req: &Request<Vec<u8>>,
    ) -> (Response<Vec<u8>>, Vec<Effect>, After) {
        exchange_with(p, table, req, &server())
    }

    /// [`exchange`] with a server of its own.
    fn exchange_with(
        p: &mut Protocol,
        table: &Table,
        req: &Request<Vec<u8>>,
        server: &ServerInfo,
    ) -> (Response<Vec<u8>>, Vec<Effect>, After) {
        let mut effects = Vec::new();
        let mut out = p.handle(req, server, table, Instant::now());
        loop {
            match out {
                Output::Reply { response, after } => return (response, effects, after),
                Output::Effect(e) => {
                    let done = table.execute(&e);
                    effects.push(e);
                    out = p.complete(done, server);
                }
            }
        }
    }

    fn header<'a>(r: &'a Response<Vec<u8>>, name: &rtsp_types::HeaderName) -> &'a str {
        r.header(name).map_or("", |v| v.as_str())
    }

    /// A request for tests, from its text.
    fn request(text: &str) -> Request<Vec<u8>> {
        let text = text.replace('\n', "\r\n") + "\r\n";
        match Message::<Vec<u8>>::parse(text.as_bytes()).unwrap().0 {
            Message::Request(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn real_clients_transcripts_play_and_tear_down() {
        for client in ["ffmpeg", "gstreamer", "live555", "retina"] {
            for kind in ["udp", "tcp"] {
                let name = format!("{client}-{kind}");
                let table = Table::default();
                let mut p = Protocol::new(Ipv4Addr::LOCALHOST.into(), Ipv4Addr::LOCALHOST.into());
                let mut session = None;
                let mut seen = Vec::new();
                for req in transcript(&name) {
                    // The recording carries the session id streamcam gave
                    // then; this run's table gave another.
                    let mut req = req;
                    if let Some(id) = session {
                        if req.header(&headers::SESSION).is_some() {
                            req.insert_header(headers::SESSION, format!("{id}"));
                        }
                    }
                    let (r, effects, after) = exchange(&mut p, &table, &req);
                    assert_eq!(
                        r.status(),
                        StatusCode::Ok,
                        "{name}: {:?} -> {r:?}",
                        req.method()
                    );
                    assert_eq!(
                        header(&r, &headers::CSEQ),
                        req.header(&headers::CSEQ).unwrap().as_str().trim(),
                        "{name}"
                    );
                    match req.method() {
                        Method::Describe => {
                            assert_eq!(effects, [Effect::Describe(0)], "{name}");
                            assert!(header(&r, &headers::CONTENT_BASE).ends_with("/stream/"));
                            let sdp = String::from_utf8(r.body().clone()).unwrap();
                            assert!(sdp.contains("a=control:trackID=0"), "{name}: {sdp}");
                        }
                        Method::Setup => {
                            let Some(Effect::CreateSession(0, 0, t)) = effects.first() else {
                                panic!("{name}: SETUP did {effects:?}");
                            };
                            let reply = header(&r, &headers::TRANSPORT);
                            match (kind, t) {
                                (
                                    "udp",
                                    Transport::Udp {
                                        rtp_port,
                                        rtcp_port,
                                    },
                                ) => {
                                    assert_eq!(*rtcp_port, rtp_port + 1, "{name}");
                                    assert!(reply.contains("server_port=6970-6971"), "{reply}");
                                }
                                (
                                    "tcp",
                                    Transport::Interleaved {
                                        rtp_channel: 0,
                                        rtcp_channel: 1,
                                    },
                                ) => {
                                    assert!(reply.contains("interleaved=0-1"), "{reply}");
                                    assert!(p.interleaved_session().is_some());
                                }
                                other => panic!("{name}: chose {other:?}"),
                            }
                            assert!(reply.contains("ssrc=12345678"), "{reply}");
                            let s = SessionId::from_header(header(&r, &headers::SESSION)).unwrap();
                            assert!(header(&r, &headers::SESSION).ends_with(";timeout=60"));
                            session = Some(s);
                        }
                        Method::Play => {
                            assert_eq!(effects, [Effect::Play(session.unwrap())], "{name}");
                            assert_eq!(after, After::StartMedia(session.unwrap()));
                            let info = header(&r, &headers::RTP_INFO);
                            assert!(
                                info.contains("/stream/trackID=0;seq=100;rtptime=9000"),
                                "{name}: {info}"
                            );
                        }
                        Method::Pause => {
                            assert_eq!(effects, [Effect::Pause(session.unwrap())], "{name}");
                            assert!(
                                header(&r, &headers::SESSION)
                                    .starts_with(&session.unwrap().to_string())
                            );
                        }
                        Method::Teardown => {
                            assert_eq!(effects, [Effect::Teardown(session.unwrap())], "{name}");
                            assert_eq!(p.interleaved_session(), None);
                        }
                        _ => assert!(effects.is_empty(), "{name}: {effects:?}"),
                    }
                    seen.push(req.method().clone());
                }
                for needed in [
                    Method::Describe,
                    Method::Setup,
                    Method::Play,
                    Method::Teardown,
                ] {
                    assert!(seen.contains(&needed), "{name}: no {needed:?}");
                }
                assert!(
                    table.live.borrow().is_empty(),
                    "{name}: a session outlived TEARDOWN"
                );
            }
        }
    }

    #[test]
    fn with_users_every_method_but_options_needs_credentials() {
        let server = server_with_viewer(true);
        let credentials = "Basic dmlld2VyOnNlY3JldA=="; // viewer:secret
        let table = Table::default();
        let mut p = Protocol::new(Ipv4Addr::LOCALHOST.into(), Ipv4Addr::LOCALHOST.into());
        let mut session = None;
        for req in transcript("ffmpeg-udp") {
            let mut req = req;
            if let (Some(id), Some(_)) = (session, req.header(&headers::SESSION)) {
                req.insert_header(headers::SESSION, format!("{id}"));
            }
            req.remove_header(&headers::AUTHORIZATION);
            let (r, effects, _) = exchange_with(&mut p, &table, &req, &server);
            if req.method() == Method::Options {
                assert_eq!(r.status(), StatusCode::Ok);
                continue;
            }
            assert_eq!(r.status(), StatusCode::Unauthorized, "{:?}", req.method());
            assert!(effects.is_empty(), "nothing done without credentials");
            let mut bytes = Vec::new();
            crate::servers::rtsp::message::write_response(&mut bytes, r);
            let text = String::from_utf8(bytes).unwrap();
            let digest = text.find("\r\nWWW-Authenticate: Digest realm=\"streamcam\", nonce=\"");
            let basic = text.find("\r\nWWW-Authenticate: Basic realm=\"streamcam\"");
            assert!(
                digest.is_some() && basic.is_some() && digest < basic,
                "{text}"
            );
            assert!(text.ends_with("\r\n\r\n"), "{text}");
            req.insert_header(headers::AUTHORIZATION, credentials);
            let (r, _, _) = exchange_with(&mut p, &table, &req, &server);
            assert_eq!(r.status(), StatusCode::Ok, "{:?}", req.method());
            if let Some(v) = r.header(&headers::SESSION) {
                session = SessionId::from_header(v.as_str());
            }
        }
        assert!(session.is_some(), "the transcript set up a session");
    }

    #[test]
    fn a_second_setup_adds_the_audio_track_to_the_session() {
        let with_audio = ServerInfo {
            mounts: vec![Mount {
                path: "/stream".into(),
                framerate: 30,
                audio_channels: Some(1),
            }],
            ..server()
        };
        let table = Table::default();
        let local = Ipv4Addr::LOCALHOST.into();
        let mut p = Protocol::new(local, local);
        let setup = |track: usize, transport: &str, session: &str| {
            request(&format!(
                "SETUP rtsp://h/stream/trackID={track} RTSP/1.0\nCSeq: 2\n{session}Transport: {transport}\n"
            ))
        };
        let (r, effects, _) = exchange_with(
            &mut p,
            &table,
            &setup(0, "RTP/AVP/TCP;unicast;interleaved=0-1", ""),
            &with_audio,
        );
        assert_eq!(r.status(), StatusCode::Ok);
        assert!(matches!(effects[..], [Effect::CreateSession(0, VIDEO, _)]));
        let id = r
            .header(&headers::SESSION)
            .unwrap()
            .as_str()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let session = format!("Session: {id}\n");
        // Over UDP, a track of an interleaved session is refused.
        let (r, effects, _) = exchange_with(
            &mut p,
            &table,
            &setup(1, "RTP/AVP;unicast;client_port=5000-5001", &session),
            &with_audio,
        );
        assert_eq!(r.status(), StatusCode::UnsupportedTransport);
        assert!(effects.is_empty());
        let (r, effects, _) = exchange_with(
            &mut p,
            &table,
            &setup(1, "RTP/AVP/TCP;unicast;interleaved=2-3", &session),
            &with_audio,
        );
        assert_eq!(r.status(), StatusCode::Ok);
        assert!(matches!(
            effects[..],
            [Effect::AddTrack(
                _,
                0,
                AUDIO,
                Transport::Interleaved {
                    rtp_channel: 2,
                    rtcp_channel: 3
                }
            )]
        ));
        assert!(
            r.header(&headers::SESSION)
                .unwrap()
                .as_str()
                .starts_with(&id)
        );
        // Video again on the same session changes nothing.
        let (r, _, _) = exchange_with(
            &mut p,
            &table,
            &setup(0, "RTP/AVP/TCP;unicast;interleaved=4-5", &session),
            &with_audio,
        );
        assert_eq!(r.status(), StatusCode::AggregateOperationNotAllowed);
        let play = request(&format!(
            "PLAY rtsp://h/stream/ RTSP/1.0\nCSeq: 3\n{session}"
        ));
        let (r, _, _) = exchange_with(&mut p, &table, &play, &with_audio);
        assert_eq!(r.status(), StatusCode::Ok);
        assert_eq!(
            r.header(&headers::RTP_INFO).unwrap().as_str(),
            "url=rtsp://h/stream/trackID=0;seq=100;rtptime=9000,url=rtsp://h/stream/trackID=1;seq=7;rtptime=4800"
        );
        // Without sound there is no track 1.
        let mut q = Protocol::new(local, local);
        let (r, _, _) = exchange(
            &mut q,
            &table,
            &setup(1, "RTP/AVP/TCP;unicast;interleaved=0-1", ""),
        );
        assert_eq!(r.status(), StatusCode::NotFound);
    }

    #[test]
    fn over_tls_media_stays_inside_and_basic_is_accepted() {
        let server = server_with_viewer(false);
        let table = Table::default();
        let local = Ipv4Addr::LOCALHOST.into();
        let basic = "Authorization: Basic dmlld2VyOnNlY3JldA==\n"; // viewer:secret
        let mut plain = Protocol::new(local, local);
        let mut tls = Protocol::new(local, local).over_tls();
        let setup = |transport: &str| {
            request(&format!(
                "SETUP rtsp://h/stream/trackID=0 RTSP/1.0\nCSeq: 2\n{basic}Transport: {transport}\n"
            ))
        };
        let udp = "RTP/AVP;unicast;client_port=5000-5001";
        let (r, _, _) = exchange_with(&mut plain, &table, &setup(udp), &server);
        assert_eq!(
            r.status(),
            StatusCode::Unauthorized,
            "Basic refused on plain RTSP"
        );
        let (r, effects, _) = exchange_with(&mut tls, &table, &setup(udp), &server);
        assert_eq!(
            r.status(),
            StatusCode::UnsupportedTransport,
            "no UDP over RTSPS"
        );
        assert!(effects.is_empty());
        let both = format!("{udp},RTP/AVP/TCP;unicast;interleaved=0-1");
        let (r, effects, _) = exchange_with(&mut tls, &table, &setup(&both), &server);
        assert_eq!(r.status(), StatusCode::Ok, "Basic over TLS, TCP picked");
        assert!(matches!(
            effects[..],
            [Effect::CreateSession(0, 0, Transport::Interleaved { .. })]
        ));
    }

    #[test]
    fn requests_outside_the_rules_are_refused_without_effects() {
        let table = Table::default();
        let mut p = Protocol::new(Ipv4Addr::LOCALHOST.into(), Ipv4Addr::LOCALHOST.into());
        let cases = [
            (
                "DESCRIBE rtsp://h/other RTSP/1.0\nCSeq: 1\n",
                StatusCode::NotFound,
            ),
            (
                "DESCRIBE rtsp://h/stream/trackID=0 RTSP/1.0\nCSeq: 1\n",
                StatusCode::NotFound,
            ),
            (
                "PLAY rtsp://h/stream RTSP/1.0\nCSeq: 2\n",
                StatusCode::SessionNotFound,
            ),
            (
                "PLAY rtsp://h/stream RTSP/1.0\nCSeq: 2\nSession: 1234\n",
                StatusCode::SessionNotFound,
            ),
            (
                "TEARDOWN rtsp://h/stream RTSP/1.0\nCSeq: 2\nSession: zz\n",
                StatusCode::SessionNotFound,
            ),
            (
                "SETUP rtsp://h/stream/trackID=0 RTSP/1.0\nCSeq: 3\n",
                StatusCode::BadRequest,
            ),
            (
                "SETUP rtsp://h/stream/trackID=0 RTSP/1.0\nCSeq: 3\nTransport: RTP/AVP;multicast\n",
                StatusCode::UnsupportedTransport,
            ),
            (
                "SETUP rtsp://h/stream/trackID=0 RTSP/1.0\nCSeq: 3\nTransport: RTP/AVP;unicast;destination=10.9.9.9;client_port=5000-5001\n",
                StatusCode::Forbidden,
            ),
            (
                "SET_PARAMETER rtsp://h/stream RTSP/1.0\nCSeq: 4\nContent-Length: 3\n\nx=1",
                StatusCode::ParameterNotUnderstood,
            ),
            (
                "OPTIONS * RTSP/1.0\nCSeq: 5\nRequire: funky\n",
                StatusCode::OptionNotSupported,
            ),
            (
                "RECORD rtsp://h/stream RTSP/1.0\nCSeq: 6\n",
                StatusCode::MethodNotAllowed,
            ),
            (
                "FROB rtsp://h/stream RTSP/1.0\nCSeq: 7\n",
                StatusCode::NotImplemented,
            ),
            (
                "OPTIONS * RTSP/2.0\nCSeq: 8\n",
                StatusCode::RTSPVersionNotSupported,
            ),
        ];
        for (text, status) in cases {
            let (r, effects, after) = exchange(&mut p, &table, &request(text));
            assert_eq!(r.status(), status, "{text}");
            assert!(effects.is_empty(), "{text}: {effects:?}");
            assert_eq!(after, After::Nothing, "{text}");
        }
        let (r, _, after) = exchange(&mut p, &table, &request("OPTIONS * RTSP/1.0\n"));
        assert_eq!((r.status(), after), (StatusCode::BadRequest, After::Close));
    }

    #[test]
    fn interleaved_sessions_belong_to_their_connection() {
        let table = Table::default();
        let local = Ipv4Addr::LOCALHOST.into();
        let mut a = Protocol::new(local, local);
        let mut b = Protocol::new(local, local);
        let setup = "SETUP rtsp://h/stream/trackID=0 RTSP/1.0\nCSeq: 1\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\n";
        let (r, _, _) = exchange(&mut a, &table, &request(setup));
        let id = SessionId::from_header(header(&r, &headers::SESSION)).unwrap();
        // A second interleaved session on the same connection is refused.
        let (r, _, _) = exchange(&mut a, &table, &request(setup));
        assert_eq!(r.status(), StatusCode::NotEnoughBandwidth);
        // Another connection may neither play nor tear it down...
        for m in ["PLAY", "PAUSE", "TEARDOWN"] {
            let text = format!("{m} rtsp://h/stream RTSP/1.0\nCSeq: 2\nSession: {id}\n");
            let (r, effects, _) = exchange(&mut b, &table, &request(&text));
            assert_eq!(r.status(), StatusCode::MethodNotValidInThisState, "{m}");
            assert!(effects.is_empty());
        }
        // ...but may keep it alive, and SETUP on a live session is refused.
        let text = format!("GET_PARAMETER rtsp://h/stream RTSP/1.0\nCSeq: 3\nSession: {id}\n");
        assert_eq!(
            exchange(&mut b, &table, &request(&text)).0.status(),
            StatusCode::Ok
        );
        let text = format!("{setup}Session: {id}\n");
        let (r, _, _) = exchange(&mut a, &table, &request(&text));
        assert_eq!(r.status(), StatusCode::AggregateOperationNotAllowed);
    }

    #[test]
    fn describe_before_the_first_picture_is_unavailable() {
        let table = Table::default();
        let mut p = Protocol::new(Ipv4Addr::LOCALHOST.into(), Ipv4Addr::LOCALHOST.into());
        let out = p.handle(
            &request("DESCRIBE rtsp://h/stream RTSP/1.0\nCSeq: 1\n"),
            &server(),
            &table,
            Instant::now(),
        );
        assert!(matches!(out, Output::Effect(Effect::Describe(0))));
        let Output::Reply { response, .. } = p.complete(Done::Described(None), &server()) else {
            panic!("no reply");
        };
        assert_eq!(response.status(), StatusCode::ServiceUnavailable);
    }
}
