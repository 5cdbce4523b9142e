//! RTSP sessions: the table of live sessions, their liveness, and the task
//! that streams a UDP session (TCP-interleaved sessions are streamed by
//! their connection, see `connection`).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use super::media::{ClientMedia, PlayStart, REPORT_INTERVAL};
use super::rtp_sender::RtpSender;
use crate::broadcast::Broadcast;
use crate::rtp::rtcp::{self, MAX_RTCP};

/// A session with neither RTSP requests nor RTCP for this long is ended.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest the UDP task waits for the PLAY reply to be written.
const PLAY_REPLY_WAIT: Duration = Duration::from_secs(2);

/// Commands from RTSP requests to a UDP session's task.
#[derive(Debug)]
pub enum UdpCommand {
    /// Start sending after `go` fires (the PLAY reply is out).
    Play {
        /// Where the first packet's seq/rtptime go.
        reply: oneshot::Sender<PlayStart>,
        /// Fired once the PLAY reply has been written.
        go: oneshot::Receiver<()>,
    },
    /// Stop sending.
    Pause(oneshot::Sender<()>),
    /// Send BYE and end the session.
    Teardown(oneshot::Sender<()>),
}

/// How a session's media travels.
#[derive(Debug)]
pub enum SessionKind {
    /// UDP: driven by its own task through this channel.
    Udp(mpsc::Sender<UdpCommand>),
    /// Interleaved on the RTSP connection that set it up.
    Interleaved,
}

/// A live session as the table knows it.
#[derive(Debug)]
pub struct SessionHandle {
    /// Session id (what the `Session` header carries, in hex).
    pub id: u64,
    /// How its media travels.
    pub kind: SessionKind,
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

/// Every live session, bounded by `server.max_clients`.
#[derive(Debug)]
pub struct SessionTable {
    sessions: Mutex<HashMap<u64, Arc<SessionHandle>>>,
    max: usize,
}

impl SessionTable {
    /// An empty table admitting `max` sessions.
    pub fn new(max: usize) -> Self {
        Self {
            sessions: Mutex::default(),
            max,
        }
    }

    /// Adds a session with a fresh random id.
    pub fn insert(&self, kind: SessionKind) -> Result<Arc<SessionHandle>, SessionError> {
        let mut map = self.sessions.lock().unwrap();
        if map.len() >= self.max {
            return Err(SessionError::Full(self.max));
        }
        let id = loop {
            let id: u64 = rand::random();
            if id != 0 && !map.contains_key(&id) {
                break id;
            }
        };
        let handle = Arc::new(SessionHandle {
            id,
            kind,
            last_seen: Mutex::new(Instant::now()),
        });
        map.insert(id, Arc::clone(&handle));
        Ok(handle)
    }

    /// Looks a session up by the value of a `Session` header.
    pub fn get(&self, header: &str) -> Option<Arc<SessionHandle>> {
        let id = header.split(';').next()?.trim();
        let id = u64::from_str_radix(id, 16).ok()?;
        self.sessions.lock().unwrap().get(&id).cloned()
    }

    /// Removes a session.
    pub fn remove(&self, id: u64) {
        self.sessions.lock().unwrap().remove(&id);
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.sessions.lock().unwrap().len()
    }
}

/// Formats a session id for the `Session` header.
pub fn format_id(id: u64) -> String {
    format!("{id:016X}")
}

/// Binds an RTP/RTCP socket pair (even, even + 1) on `ip`.
pub async fn bind_pair(ip: IpAddr) -> io::Result<(UdpSocket, UdpSocket)> {
    let mut last = io::Error::other("no free port pair");
    for _ in 0..32 {
        let first = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        let port = first.local_addr()?.port();
        let pair = if port % 2 == 0 {
            UdpSocket::bind(SocketAddr::new(ip, port + 1))
                .await
                .map(|rtcp| (first, rtcp))
        } else {
            UdpSocket::bind(SocketAddr::new(ip, port - 1))
                .await
                .map(|rtp| (rtp, first))
        };
        match pair {
            Ok(p) => return Ok(p),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Everything a UDP session's task needs.
pub struct UdpSession {
    /// The table entry (for liveness and removal).
    pub handle: Arc<SessionHandle>,
    /// The table (to remove the session when it ends).
    pub table: Arc<SessionTable>,
    /// The session's media state.
    pub media: ClientMedia,
    /// RTP out, from our RTP socket to the client's.
    pub rtp: RtpSender,
    /// Our RTCP socket.
    pub rtcp: UdpSocket,
    /// Where RTP goes.
    pub client_rtp: SocketAddr,
    /// Where RTCP goes.
    pub client_rtcp: SocketAddr,
    /// Commands from RTSP requests.
    pub commands: mpsc::Receiver<UdpCommand>,
    /// Set when the daemon stops.
    pub shutdown: watch::Receiver<bool>,
}

impl UdpSession {
    /// Streams until TEARDOWN, BYE, timeout, a too-slow client or shutdown.
    pub async fn run(mut self, stream: Arc<Broadcast>) {
        let id = format_id(self.handle.id);
        let reason = self.serve().await;
        if self.media.is_playing() || matches!(reason, End::Teardown | End::Shutdown) {
            self.send_report(true).await;
        }
        self.table.remove(self.handle.id);
        self.media.pause(); // no longer counted as a client
        tracing::info!(
            session = %id,
            client = %self.client_rtp,
            clients = stream.clients(),
            "UDP session ended: {}",
            reason.describe()
        );
    }

    async fn serve(&mut self) -> End {
        let mut rtcp_in = [0u8; 1500];
        let mut report = tokio::time::interval(REPORT_INTERVAL);
        let mut liveness = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = self.shutdown.changed() => return End::Shutdown,
                cmd = self.commands.recv() => match cmd {
                    Some(UdpCommand::Play { reply, go }) => {
                        let start = self.media.play().await;
                        let _ = reply.send(start);
                        let _ = tokio::time::timeout(PLAY_REPLY_WAIT, go).await;
                        // A sender report ahead of the first RTP packet lets
                        // clients map RTP time to wall time from the start.
                        self.send_report(false).await;
                        report.reset();
                    }
                    Some(UdpCommand::Pause(done)) => {
                        self.media.pause();
                        let _ = done.send(());
                    }
                    Some(UdpCommand::Teardown(done)) => {
                        let _ = done.send(());
                        return End::Teardown;
                    }
                    None => return End::Teardown,
                },
                au = self.media.next() => match au {
                    Ok(au) => self.rtp.send(self.media.packets(&au)).await,
                    Err(e) => return End::Slow(e.to_string()),
                },
                got = self.rtcp.recv_from(&mut rtcp_in) => {
                    let from_client = got.ok().filter(|(_, from)| from.ip() == self.client_rtcp.ip());
                    if let Some(end) = from_client.and_then(|(n, _)| self.client_rtcp_packet(&rtcp_in[..n])) {
                        return end;
                    }
                }
                _ = report.tick(), if self.media.is_playing() => self.send_report(false).await,
                _ = liveness.tick() => {
                    if self.handle.idle() >= SESSION_TIMEOUT {
                        return End::Timeout;
                    }
                }
            }
        }
    }

    /// Handles RTCP from the client; returns how the session ends, if it does.
    fn client_rtcp_packet(&mut self, data: &[u8]) -> Option<End> {
        match rtcp::parse_feedback(data) {
            Ok(fb) => {
                self.handle.touch();
                if fb.keyframe_request {
                    self.media.request_keyframe();
                }
                fb.bye.then_some(End::Bye)
            }
            Err(e) => {
                tracing::debug!("ignoring RTCP from {}: {e}", self.client_rtcp);
                None
            }
        }
    }

    async fn send_report(&self, bye: bool) {
        let mut buf = [0u8; MAX_RTCP];
        let n = self.media.report(&mut buf, bye);
        let _ = self.rtcp.send_to(&buf[..n], self.client_rtcp).await;
    }
}

/// How a UDP session ended.
enum End {
    Teardown,
    Shutdown,
    Bye,
    Timeout,
    Slow(String),
}

impl End {
    fn describe(&self) -> String {
        match self {
            End::Teardown => "TEARDOWN".into(),
            End::Shutdown => "server stopping".into(),
            End::Bye => "client sent RTCP BYE".into(),
            End::Timeout => format!(
                "timed out: no RTSP request or RTCP from the client for {} s",
                SESSION_TIMEOUT.as_secs()
            ),
            End::Slow(e) => format!("dropped: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_limits_and_lookup() {
        let t = SessionTable::new(2);
        let a = t.insert(SessionKind::Interleaved).unwrap();
        let _b = t.insert(SessionKind::Interleaved).unwrap();
        assert!(matches!(
            t.insert(SessionKind::Interleaved),
            Err(SessionError::Full(2))
        ));
        let header = format!("{};timeout=60", format_id(a.id));
        assert_eq!(t.get(&header).unwrap().id, a.id);
        assert_eq!(t.get(&format_id(a.id).to_lowercase()).unwrap().id, a.id);
        assert!(t.get("nonsense").is_none());
        assert!(t.get("").is_none());
        t.remove(a.id);
        assert_eq!(t.len(), 1);
        assert!(t.get(&header).is_none());
    }

    #[tokio::test]
    async fn binds_even_odd_pairs() {
        let (rtp, rtcp) = bind_pair("127.0.0.1".parse().unwrap()).await.unwrap();
        let (p, q) = (
            rtp.local_addr().unwrap().port(),
            rtcp.local_addr().unwrap().port(),
        );
        assert_eq!(p % 2, 0);
        assert_eq!(q, p + 1);
    }
}
