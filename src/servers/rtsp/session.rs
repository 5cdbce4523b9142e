//! Media sessions: the table of live sessions, and the one task that
//! streams a session whatever its transport. The task feeds a [`Sink`] (the
//! UDP fan-out, or the interleaved writer of the RTSP connection) and is the
//! one place for the first sender report, the report timer, key-frame
//! requests, liveness, BYE and the session's end line in the log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use tokio::sync::{mpsc, oneshot, watch};

use super::effect::{Carriage, PlayStart, SESSION_TIMEOUT_S, SessionId, Sessions};
use super::end::End;
use super::media::ClientMedia;
use super::udp::{RtcpTo, UdpClient};
use super::writer::{Outgoing, WriterHandle};
use crate::broadcast::SubscribeError;
use crate::format::rtp::packetizer::{FRAME_HEADER, RtpUnit, interleaved_header};
use crate::format::rtp::rtcp::{self, MAX_RTCP, REPORT_INTERVAL, SentCounts};
use crate::format::sdp::{Track, VIDEO};

/// A UDP session with neither RTSP requests nor RTCP for this long is ended.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(SESSION_TIMEOUT_S);
/// Longest a session waits for its PLAY reply to be written.
const PLAY_REPLY_WAIT: Duration = Duration::from_secs(2);
/// Commands queued for a session before senders wait.
const COMMAND_QUEUE: usize = 8;

/// Commands to a session's task.
#[derive(Debug)]
pub enum Command {
    /// Adds a track (a second SETUP, before PLAY); the answer is false if
    /// the session has it already or plays.
    AddTrack(Box<TrackMedia>, oneshot::Sender<bool>),
    /// Start sending after `go` fires (the PLAY reply is out).
    Play {
        /// Where each track's first packet's seq/rtptime go.
        reply: oneshot::Sender<Vec<PlayStart>>,
        /// Fired once the PLAY reply has been written.
        go: oneshot::Receiver<()>,
    },
    /// Stop sending.
    Pause(oneshot::Sender<()>),
    /// Send BYE and end the session.
    Teardown(oneshot::Sender<()>),
    /// RTCP the client sent on the session's interleaved channel.
    Rtcp(Vec<u8>),
    /// The connection carrying the session closed.
    ConnectionClosed(End),
}

/// RTCP from a UDP client, to its session as [`Command::Rtcp`].
pub fn rtcp_to(commands: &mpsc::Sender<Command>) -> RtcpTo {
    let commands = commands.clone();
    RtcpTo::new(move |packet| {
        let _ = commands.try_send(Command::Rtcp(packet));
    })
}

/// A live session as the table knows it.
#[derive(Debug)]
pub struct SessionHandle {
    /// Session id.
    pub id: SessionId,
    /// How its media travels.
    pub carriage: Carriage,
    /// Commands to its task.
    pub commands: mpsc::Sender<Command>,
    /// What it was sent.
    pub counts: Arc<SentCounts>,
    last_seen: Mutex<Instant>,
}

impl SessionHandle {
    /// Notes a sign of life from the client (a request or RTCP).
    pub fn touch(&self) {
        *self.last_seen.lock().unwrap() = Instant::now();
    }

    /// Time since the last sign of life.
    pub fn idle(&self) -> Duration {
        self.last_seen.lock().unwrap().elapsed()
    }
}

/// Why a session could not be created.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// `server.max_clients` sessions exist already.
    #[error("too many clients (server.max_clients = {0})")]
    Full(usize),
}

/// Every live session, bounded by `server.max_clients`, and what the
/// sessions that have ended were sent.
#[derive(Debug)]
pub struct SessionTable {
    sessions: Mutex<HashMap<SessionId, Arc<SessionHandle>>>,
    max: usize,
    ended: Mutex<Ended>,
}

/// What the ended sessions add up to.
#[derive(Debug, Default, Clone, Copy)]
struct Ended {
    sessions: u64,
    packets: u64,
    octets: u64,
}

/// Counts over every session since the start, and the live ones by how
/// their media travels.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SessionTotals {
    /// Live sessions over UDP.
    pub udp: usize,
    /// Live sessions interleaved on their connection (TCP, RTSPS).
    pub interleaved: usize,
    /// Live sessions watching the multicast group.
    pub multicast: usize,
    /// Sessions set up since the start.
    pub sessions: u64,
    /// RTP packets sent.
    pub packets: u64,
    /// RTP payload octets sent.
    pub octets: u64,
}

impl SessionTable {
    /// An empty table admitting `max` sessions.
    pub fn new(max: usize) -> Self {
        Self {
            sessions: Mutex::default(),
            max,
            ended: Mutex::default(),
        }
    }

    /// Most sessions at once (`server.max_clients`).
    pub fn max(&self) -> usize {
        self.max
    }

    /// Adds a session with a fresh random id, counted in `counts`, and the
    /// receiving end of its command queue (for its task).
    pub fn insert(
        &self,
        carriage: Carriage,
        counts: Arc<SentCounts>,
    ) -> Result<(Arc<SessionHandle>, mpsc::Receiver<Command>), SessionError> {
        let mut map = self.sessions.lock().unwrap();
        if map.len() >= self.max {
            return Err(SessionError::Full(self.max));
        }
        let id = loop {
            let id = SessionId(rand::random());
            if id.0 != 0 && !map.contains_key(&id) {
                break id;
            }
        };
        let (commands, rx) = mpsc::channel(COMMAND_QUEUE);
        let handle = Arc::new(SessionHandle {
            id,
            carriage,
            commands,
            counts,
            last_seen: Mutex::new(Instant::now()),
        });
        map.insert(id, Arc::clone(&handle));
        Ok((handle, rx))
    }

    /// Looks a session up.
    pub fn get(&self, id: SessionId) -> Option<Arc<SessionHandle>> {
        self.sessions.lock().unwrap().get(&id).cloned()
    }

    /// Removes a session, keeping what it was sent in the totals.
    pub fn remove(&self, id: SessionId) {
        let Some(gone) = self.sessions.lock().unwrap().remove(&id) else {
            return;
        };
        let (packets, octets) = gone.counts.sent();
        let mut ended = self.ended.lock().unwrap();
        ended.sessions += 1;
        ended.packets += packets;
        ended.octets += octets;
    }

    /// The totals now: the ended sessions' plus the live ones'.
    pub fn totals(&self) -> SessionTotals {
        let map = self.sessions.lock().unwrap();
        let ended = *self.ended.lock().unwrap();
        let mut t = SessionTotals {
            sessions: ended.sessions + map.len() as u64,
            packets: ended.packets,
            octets: ended.octets,
            ..SessionTotals::default()
        };
        for handle in map.values() {
            match handle.carriage {
                Carriage::Udp => t.udp += 1,
                Carriage::Interleaved => t.interleaved += 1,
                Carriage::Multicast => t.multicast += 1,
            }
            let (packets, octets) = handle.counts.sent();
            t.packets += packets;
            t.octets += octets;
        }
        t
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.sessions.lock().unwrap().len()
    }

    /// True when no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Sessions for SessionTable {
    fn find(&self, id: SessionId) -> Option<Carriage> {
        let handle = self.get(id)?;
        handle.touch();
        Some(handle.carriage)
    }
}

/// Where a session's packets go.
#[derive(Debug)]
pub enum Sink {
    /// RTP and RTCP over UDP to the client's ports: the media by the UDP
    /// fan-out, which hands the client's RTCP in as [`Command::Rtcp`].
    Udp(UdpClient),
    /// Interleaved frames on the RTSP connection, through its writer.
    Interleaved {
        /// The connection's writer.
        writer: WriterHandle,
        /// Channel of RTP.
        rtp_channel: u8,
        /// Channel of RTCP.
        rtcp_channel: u8,
    },
}

impl Sink {
    /// The transport's name in the log.
    fn name(&self) -> &'static str {
        match self {
            Self::Udp(client) if client.is_multicast() => "multicast",
            Self::Udp(_) => "udp",
            Self::Interleaved { .. } => "tcp",
        }
    }

    /// Starts sending from the unit whose first packet is `seq` (PLAY).
    /// Returns true if the sink takes the stream from there itself (the
    /// UDP fan-out), false if the session hands it each unit.
    fn play(&mut self, seq: u16) -> bool {
        match self {
            Self::Udp(client) => {
                client.play(seq);
                true
            }
            Self::Interleaved { .. } => false,
        }
    }

    /// Stops sending (PAUSE).
    fn pause(&mut self) {
        if let Self::Udp(client) = self {
            client.pause();
        }
    }

    /// Sends the packets of one access unit.
    async fn send_au(&mut self, unit: &RtpUnit) -> Result<(), End> {
        match self {
            // Never handed units: the fan-out sends them (see `play`).
            Self::Udp(_) => Ok(()),
            Self::Interleaved {
                writer,
                rtp_channel: 0,
                ..
            } => writer.send(Outgoing::data(unit.framed().clone())).await,
            Self::Interleaved {
                writer,
                rtp_channel,
                ..
            } => {
                // The shared buffer is framed for channel 0; another channel
                // (rare) gets its own copy.
                let mut out = BytesMut::with_capacity(unit.framed().len());
                for packet in unit.packets() {
                    out.put_slice(&interleaved_header(*rtp_channel, packet.len()));
                    out.put_slice(packet);
                }
                writer.send(Outgoing::data(out.freeze())).await
            }
        }
    }

    /// Sends one RTCP packet; a UDP send error is the client's network's
    /// business (it times out if it is gone).
    async fn send_rtcp(&mut self, packet: &[u8]) -> Result<(), End> {
        match self {
            Self::Udp(client) => {
                client.send_rtcp(packet).await;
                Ok(())
            }
            Self::Interleaved {
                writer,
                rtcp_channel,
                ..
            } => {
                let mut out = BytesMut::with_capacity(FRAME_HEADER + packet.len());
                out.put_slice(&interleaved_header(*rtcp_channel, packet.len()));
                out.put_slice(packet);
                writer.send(Outgoing::data(out.freeze())).await
            }
        }
    }

    /// True if the session must show signs of life: UDP has no connection
    /// to tell that the client is gone.
    fn needs_liveness(&self) -> bool {
        matches!(self, Self::Udp(_))
    }
}

/// One track of a session: its media and where its packets go.
#[derive(Debug)]
pub struct TrackMedia {
    /// Which track.
    pub track: Track,
    /// The track's media state.
    pub media: ClientMedia,
    /// Where its packets go.
    pub sink: Sink,
}

/// One session's task: its media, where it goes, and its commands.
pub struct MediaSession {
    /// The table entry (liveness).
    pub handle: Arc<SessionHandle>,
    /// The table (to leave it when the session ends).
    pub table: Arc<SessionTable>,
    /// Its tracks: the one its first SETUP named, then any added.
    pub tracks: Vec<TrackMedia>,
    /// The client's address, for the log.
    pub client: IpAddr,
    /// The stream's path, for the log.
    pub path: String,
    /// Commands from RTSP requests and the connection.
    pub commands: mpsc::Receiver<Command>,
    /// Set when the daemon stops.
    pub shutdown: watch::Receiver<bool>,
}

impl MediaSession {
    /// Streams until the session ends, then leaves the table and logs one
    /// end line.
    pub async fn run(mut self) {
        let started = Instant::now();
        let id = self.handle.id;
        tracing::info!(
            client = %self.client,
            session = %id,
            transport = %self.transport(),
            path = %self.path,
            "session started"
        );
        let end = self.serve().await;
        if end.says_bye() {
            let _ = self.send_reports(true).await;
        }
        self.table.remove(id);
        let (mut packets, mut bytes, mut lag_drops) = (0, 0, 0);
        for t in &mut self.tracks {
            let (p, b) = t.media.counts().sent();
            packets += p;
            bytes += b;
            lag_drops += t.media.lag_drops();
            t.media.pause(); // no longer counted as a client
        }
        tracing::info!(
            client = %self.client,
            session = %id,
            transport = %self.transport(),
            duration_s = format_args!("{:.1}", started.elapsed().as_secs_f64()),
            packets,
            bytes,
            lag_drops,
            reason = %end.reason(),
            clients = self.tracks[0].media.stream().clients(),
            "session ended: {}",
            end.describe()
        );
    }

    /// The transport's name in the log.
    fn transport(&self) -> &'static str {
        self.tracks[0].sink.name()
    }

    async fn serve(&mut self) -> End {
        let mut report = tokio::time::interval(REPORT_INTERVAL);
        let mut liveness = tokio::time::interval(Duration::from_secs(1));
        let playing = |tracks: &[TrackMedia]| tracks.iter().any(|t| t.media.is_playing());
        loop {
            tokio::select! {
                _ = crate::service::shutdown::stopped(&mut self.shutdown) => return End::ServerStopping,
                cmd = self.commands.recv() => match cmd {
                    Some(Command::AddTrack(track, answer)) => {
                        let new = !playing(&self.tracks)
                            && self.tracks.iter().all(|t| t.track != track.track);
                        if new {
                            self.tracks.push(*track);
                        }
                        let _ = answer.send(new);
                    }
                    Some(Command::Play { reply, go }) => {
                        let mut starts = Vec::with_capacity(self.tracks.len());
                        for t in &mut self.tracks {
                            starts.push(t.media.play(t.track).await);
                        }
                        let _ = reply.send(starts.clone());
                        if tokio::time::timeout(PLAY_REPLY_WAIT, go).await.is_err() {
                            tracing::debug!(session = %self.handle.id, "PLAY reply not written in time");
                        }
                        // A sender report ahead of the first RTP packet lets
                        // clients map RTP time to wall time from the start.
                        if let Err(end) = self.send_reports(false).await {
                            return end;
                        }
                        for (t, start) in self.tracks.iter_mut().zip(&starts) {
                            if t.sink.play(start.seq) {
                                t.media.hand_off();
                            }
                        }
                        report.reset();
                    }
                    Some(Command::Pause(done)) => {
                        for t in &mut self.tracks {
                            t.sink.pause();
                            t.media.pause();
                        }
                        let _ = done.send(());
                    }
                    Some(Command::Teardown(done)) => {
                        // BYE goes ahead of the TEARDOWN reply.
                        let _ = self.send_reports(true).await;
                        let _ = done.send(());
                        return End::Teardown;
                    }
                    Some(Command::Rtcp(data)) => {
                        if let Some(end) = self.client_rtcp(&data) {
                            return end;
                        }
                    }
                    Some(Command::ConnectionClosed(end)) => return end,
                    None => return End::Error("session dropped".into()),
                },
                (i, unit) = next_unit(&mut self.tracks) => match unit {
                    Ok(unit) => {
                        if let Err(end) = self.tracks[i].sink.send_au(&unit).await {
                            return end;
                        }
                    }
                    Err(e @ SubscribeError::TooSlow(_)) => return End::Lagging(e.to_string()),
                    Err(SubscribeError::Closed) => return End::ServerStopping,
                },
                _ = report.tick(), if playing(&self.tracks) => {
                    if let Err(end) = self.send_reports(false).await {
                        return end;
                    }
                }
                _ = liveness.tick(), if self.tracks[0].sink.needs_liveness() => {
                    if self.handle.idle() >= SESSION_TIMEOUT {
                        return End::Timeout;
                    }
                }
            }
        }
    }

    /// Handles RTCP from the client; returns how the session ends, if it does.
    fn client_rtcp(&mut self, data: &[u8]) -> Option<End> {
        match rtcp::parse_feedback(data) {
            Ok(fb) => {
                self.handle.touch();
                if fb.keyframe_request {
                    for t in self.tracks.iter().filter(|t| t.track == VIDEO) {
                        t.media.request_keyframe();
                    }
                }
                fb.bye
                    .then_some(End::ClientClosed("the client sent RTCP BYE"))
            }
            Err(e) => {
                tracing::debug!(client = %self.client, "ignoring RTCP: {e}");
                None
            }
        }
    }

    /// A sender report (and BYE if `bye`) on each playing track.
    async fn send_reports(&mut self, bye: bool) -> Result<(), End> {
        let mut buf = [0u8; MAX_RTCP];
        for t in self.tracks.iter_mut().filter(|t| t.media.is_playing()) {
            let n = t.media.report(&mut buf, bye);
            t.sink.send_rtcp(&buf[..n]).await?;
        }
        Ok(())
    }
}

/// The next unit to send of any of `tracks` (at most two: video and
/// audio), and which track it is for.
async fn next_unit(tracks: &mut [TrackMedia]) -> (usize, Result<Arc<RtpUnit>, SubscribeError>) {
    match tracks {
        [one] => (0, one.media.next().await),
        [first, second] => tokio::select! {
            unit = first.media.next() => (0, unit),
            unit = second.media.next() => (1, unit),
        },
        _ => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_limits_and_lookup() {
        let t = SessionTable::new(2);
        let (a, _ra) = t.insert(Carriage::Interleaved, Arc::default()).unwrap();
        let (_b, _rb) = t.insert(Carriage::Udp, Arc::default()).unwrap();
        assert!(matches!(
            t.insert(Carriage::Udp, Arc::default()),
            Err(SessionError::Full(2))
        ));
        let header = format!("{};timeout=60", a.id);
        let id = SessionId::from_header(&header).unwrap();
        assert_eq!(t.find(id), Some(Carriage::Interleaved));
        let lower = SessionId::from_header(&a.id.to_string().to_lowercase()).unwrap();
        assert_eq!(t.get(lower).unwrap().id, a.id);
        assert!(SessionId::from_header("nonsense").is_none());
        assert!(SessionId::from_header("").is_none());
        t.remove(a.id);
        assert_eq!(t.len(), 1);
        assert_eq!(t.find(id), None);
    }

    #[test]
    fn totals_keep_what_ended_sessions_were_sent() {
        let unit = crate::format::rtp::packetizer::Packetizer::new(1, 0).packetize(
            &crate::format::h264::AccessUnit::new(
                vec![bytes::Bytes::from(vec![0x41; 3000])],
                Instant::now(),
            ),
            0,
        );
        let t = SessionTable::new(4);
        let (a, _ra) = t.insert(Carriage::Interleaved, Arc::default()).unwrap();
        let (b, _rb) = t.insert(Carriage::Udp, Arc::default()).unwrap();
        a.counts.add(&unit);
        b.counts.add(&unit);
        let live = t.totals();
        assert_eq!((live.udp, live.interleaved, live.sessions), (1, 1, 2));
        assert_eq!(live.packets, 2 * u64::from(unit.packet_count));
        assert!(live.packets > 2);
        t.remove(a.id);
        t.remove(a.id); // a second removal counts nothing
        b.counts.add(&unit);
        let later = t.totals();
        assert_eq!((later.udp, later.interleaved, later.sessions), (1, 0, 2));
        assert_eq!(later.packets, 3 * u64::from(unit.packet_count));
        assert_eq!(later.octets, 3 * u64::from(unit.payload_octets));
    }
}
