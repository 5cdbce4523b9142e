//! One client's media: its place in the shared stream while playing, what
//! it was sent, and its RTCP reports.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::protocol::PlayStart;
use crate::broadcast::{Broadcast, ClientGuard, SubscribeError, Subscriber};
use crate::rtp::packetizer::RtpUnit;
use crate::rtp::rtcp::{self, MAX_RTCP, SenderInfo};

/// Time between RTCP sender reports.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(5);
/// Longest PLAY waits for the key frame a client starts with.
const FIRST_FRAME_WAIT: Duration = Duration::from_secs(2);

/// RTP state of one session.
#[derive(Debug)]
pub struct ClientMedia {
    stream: Arc<Broadcast>,
    playing: Option<(Subscriber, ClientGuard)>,
    /// The key frame PLAY waited for, sent first.
    first: Option<Arc<RtpUnit>>,
    cname: String,
    /// Times the client fell behind and skipped to a key frame, in earlier
    /// PLAYs.
    lag_drops: usize,
    /// Packets sent to this client.
    packets: u64,
    /// RTP payload octets sent to this client.
    octets: u64,
}

impl ClientMedia {
    /// Media for a new session.
    pub fn new(stream: &Arc<Broadcast>) -> Self {
        Self {
            stream: Arc::clone(stream),
            playing: None,
            first: None,
            lag_drops: 0,
            packets: 0,
            octets: 0,
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
        match &self.first {
            Some(unit) => PlayStart {
                seq: unit.first_seq,
                rtptime: unit.rtp_timestamp,
            },
            // No picture yet: the client starts at whatever comes next.
            None => PlayStart {
                seq: self.stream.next_seq(),
                rtptime: self.stream.current_rtp_timestamp(),
            },
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

    /// Waits for the next access unit's packets to send (counted as sent);
    /// pending forever when paused.
    pub async fn next(&mut self) -> Result<Arc<RtpUnit>, SubscribeError> {
        let unit = match self.first.take() {
            Some(unit) => unit,
            None => match &mut self.playing {
                Some((sub, _)) => sub.next().await?,
                None => std::future::pending().await,
            },
        };
        self.packets += u64::from(unit.packet_count);
        self.octets += u64::from(unit.payload_octets);
        Ok(unit)
    }

    /// Asks the encoder for a key frame (the client reported picture loss).
    pub fn request_keyframe(&self) {
        self.stream.request_keyframe();
    }

    /// Writes a sender report (and BYE if `bye`) for now into `buf`.
    pub fn report(&self, buf: &mut [u8; MAX_RTCP], bye: bool) -> usize {
        let now = Instant::now();
        let clock = self.stream.clock();
        let info = SenderInfo {
            ssrc: self.stream.ssrc(),
            ntp_timestamp: clock.ntp_timestamp(now),
            rtp_timestamp: clock.rtp_timestamp(now),
            // RFC 3550 counts wrap at 32 bits.
            packet_count: self.packets as u32,
            octet_count: self.octets as u32,
        };
        rtcp::write_report(buf, &info, &self.cname, bye)
    }

    /// Packets and payload octets sent so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.packets, self.octets)
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
        self.stream.ssrc()
    }
}
