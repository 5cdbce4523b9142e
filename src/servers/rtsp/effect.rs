//! What the state machine (`protocol`) and the I/O layer hand each other:
//! the sessions as requests see them, the [`Effect`]s the protocol asks
//! for, their results ([`Done`]), and what follows a reply.

use rtsp_types::{Response, StatusCode};

use super::mount::MountIndex;
use super::transport::Transport;
use crate::format::h264::ParameterSets;
use crate::format::sdp::Track;

/// A session with neither RTSP requests nor RTCP for this long is ended;
/// announced in every `Session` header.
pub const SESSION_TIMEOUT_S: u64 = 60;

/// A session's id (what the `Session` header carries, in hex).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(pub u64);

impl SessionId {
    /// Parses the id out of a `Session` header value ("ID;timeout=60").
    pub fn from_header(value: &str) -> Option<Self> {
        let id = value.split(';').next()?.trim();
        u64::from_str_radix(id, 16).ok().map(Self)
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016X}", self.0)
    }
}

/// How a live session's media travels, as far as requests care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carriage {
    /// RTP/RTCP over UDP: any connection may control it.
    Udp,
    /// Interleaved on the connection that set it up, and only that one.
    Interleaved,
    /// RTP/RTCP to the server's multicast group: any connection may
    /// control it.
    Multicast,
}

/// The server's live sessions, as requests see them.
pub trait Sessions {
    /// How session `id` travels, if it is live. Being named in a request
    /// is a sign of life: implementations note it.
    fn find(&self, id: SessionId) -> Option<Carriage>;
}

/// Something the I/O layer must do before the request can be answered; its
/// result goes to [`Protocol::complete`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Wait (briefly) for a stream's parameter sets: [`Done::Described`].
    Describe(MountIndex),
    /// Create a session with one track of a stream, carried by this
    /// transport: [`Done::Created`].
    CreateSession(MountIndex, Track, Transport),
    /// Add a track to a session (a second SETUP): [`Done::Created`].
    AddTrack(SessionId, MountIndex, Track, Transport),
    /// Start (or resume) a session's media at the next key frame:
    /// [`Done::Playing`]. Packets flow only once the reply is written
    /// ([`After::StartMedia`]).
    Play(SessionId),
    /// Stop sending a session's media: [`Done::Paused`].
    Pause(SessionId),
    /// End a session (it says BYE): [`Done::TornDown`].
    Teardown(SessionId),
}

/// The result of an [`Effect`].
#[derive(Debug, Clone)]
pub enum Done {
    /// The parameter sets, if the stream has produced any.
    Described(Option<ParameterSets>),
    /// The new session.
    Created(Created),
    /// Where the client's first packet of each track starts.
    Playing(Vec<PlayStart>),
    /// Media stopped.
    Paused,
    /// The session is gone.
    TornDown,
    /// The effect could not be carried out: answer with this status.
    Failed(StatusCode),
}

/// A session the I/O layer created.
#[derive(Debug, Clone, Copy)]
pub struct Created {
    /// Its id.
    pub id: SessionId,
    /// The SSRC its packets carry.
    pub ssrc: u32,
    /// Our RTP and RTCP ports (UDP sessions).
    pub server_ports: Option<(u16, u16)>,
}

/// What PLAY tells the client about the first packet it will get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlayStart {
    /// The track.
    pub track: Track,
    /// Sequence number of the first packet.
    pub seq: u16,
    /// RTP time at (or before) the first packet.
    pub rtptime: u32,
}

/// What the I/O layer does once a reply is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Nothing more.
    Nothing,
    /// Let the session's media flow (the PLAY reply is out).
    StartMedia(SessionId),
    /// Close the connection (the request could not be understood).
    Close,
}

/// What handling a request produced.
#[derive(Debug)]
pub enum Output {
    /// Write this response, then do `after`.
    Reply {
        /// The response.
        response: Response<Vec<u8>>,
        /// What follows it.
        after: After,
    },
    /// Carry out this effect and pass its result to [`Protocol::complete`].
    Effect(Effect),
}
