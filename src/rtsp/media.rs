//! One client's media: its packetizer (sequence numbers survive PAUSE/PLAY),
//! its place in the shared stream while playing, and its RTCP reports.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::protocol::PlayStart;
use crate::broadcast::{Broadcast, ClientGuard, SubscribeError, Subscriber};
use crate::h264::AccessUnit;
use crate::rtp::Packetizer;
use crate::rtp::packetizer::Packets;
use crate::rtp::rtcp::{self, MAX_RTCP, SenderInfo};

/// Time between RTCP sender reports.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(5);
/// Longest PLAY waits for the key frame a client starts with.
const FIRST_FRAME_WAIT: Duration = Duration::from_secs(2);

/// RTP state of one session.
#[derive(Debug)]
pub struct ClientMedia {
    stream: Arc<Broadcast>,
    packetizer: Packetizer,
    playing: Option<(Subscriber, ClientGuard)>,
    /// The key frame PLAY waited for, sent first.
    first: Option<Arc<AccessUnit>>,
    cname: String,
    /// Times the client fell behind and skipped to a key frame, in earlier
    /// PLAYs.
    lag_drops: usize,
}

impl ClientMedia {
    /// Media for a new session, starting at a random sequence number.
    pub fn new(stream: &Arc<Broadcast>) -> Self {
        Self {
            packetizer: Packetizer::new(stream.ssrc(), rand::random()),
            stream: Arc::clone(stream),
            playing: None,
            first: None,
            lag_drops: 0,
            cname: format!("streamcam-{:08x}", stream.ssrc()),
        }
    }

    /// Starts (or resumes) playing at the next IDR: asks for a key frame and
    /// waits (briefly) for it, so that the reply to PLAY names the exact
    /// sequence number and RTP time of the first packet.
    pub async fn play(&mut self) -> PlayStart {
        if self.playing.is_none() {
            let mut subscriber = self.stream.subscribe();
            self.stream.request_keyframe();
            self.first = tokio::time::timeout(FIRST_FRAME_WAIT, subscriber.next())
                .await
                .ok()
                .and_then(Result::ok);
            self.playing = Some((subscriber, self.stream.client_guard()));
        }
        let rtptime = match &self.first {
            Some(au) => self.stream.clock().rtp_timestamp(au.timestamp),
            None => self.stream.current_rtp_timestamp(),
        };
        PlayStart {
            seq: self.packetizer.next_seq(),
            rtptime,
        }
    }

    /// Stops sending until the next `play`.
    pub fn pause(&mut self) {
        if let Some((sub, _)) = self.playing.take() {
            self.lag_drops += sub.lags();
        }
        self.first = None;
    }

    /// True while playing.
    pub fn is_playing(&self) -> bool {
        self.playing.is_some()
    }

    /// Waits for the next access unit to send; pending forever when paused.
    pub async fn next(&mut self) -> Result<Arc<AccessUnit>, SubscribeError> {
        if let Some(au) = self.first.take() {
            return Ok(au);
        }
        match &mut self.playing {
            Some((sub, _)) => sub.next().await,
            None => std::future::pending().await,
        }
    }

    /// The RTP packets of `au`.
    pub fn packets<'a>(&'a mut self, au: &'a AccessUnit) -> Packets<'a> {
        let ts = self.stream.clock().rtp_timestamp(au.timestamp);
        self.packetizer.packets(au, ts)
    }

    /// Asks the encoder for a key frame (the client reported picture loss).
    pub fn request_keyframe(&self) {
        self.stream.request_keyframe();
    }

    /// Writes a sender report (and BYE if `bye`) for now into `buf`.
    pub fn report(&self, buf: &mut [u8; MAX_RTCP], bye: bool) -> usize {
        let now = Instant::now();
        let clock = self.stream.clock();
        let (packet_count, octet_count) = self.packetizer.counts();
        let info = SenderInfo {
            ssrc: self.packetizer.ssrc(),
            ntp_timestamp: clock.ntp_timestamp(now),
            rtp_timestamp: clock.rtp_timestamp(now),
            packet_count,
            octet_count,
        };
        rtcp::write_report(buf, &info, &self.cname, bye)
    }

    /// Packets and payload octets sent so far.
    pub fn counts(&self) -> (u32, u32) {
        self.packetizer.counts()
    }

    /// Times the client fell behind the stream and skipped to a key frame.
    pub fn lag_drops(&self) -> usize {
        self.lag_drops + self.playing.as_ref().map_or(0, |(sub, _)| sub.lags())
    }

    /// The shared stream.
    pub fn stream(&self) -> &Broadcast {
        &self.stream
    }

    /// The stream's SSRC.
    pub fn ssrc(&self) -> u32 {
        self.packetizer.ssrc()
    }
}
