//! One client's media: its place in the shared stream while playing, what
//! it was sent, and its RTCP reports.

use std::sync::Arc;
use std::time::Duration;

use super::effect::PlayStart;

use crate::broadcast::{Broadcast, ClientGuard, SubscribeError, Subscriber};
use crate::format::rtp::packetizer::RtpUnit;
use crate::format::rtp::rtcp::{MAX_RTCP, SentCounts};
use crate::format::sdp::Track;

/// Longest PLAY waits for the key frame a client starts with.
const FIRST_FRAME_WAIT: Duration = Duration::from_secs(2);

/// A playing session's place in the stream.
#[derive(Debug)]
struct Playing {
    /// The stream's units, for a session that sends them itself (none for
    /// UDP, where the fan-out does).
    feed: Option<Subscriber>,
    _client: ClientGuard,
}

/// RTP state of one session.
#[derive(Debug)]
pub struct ClientMedia {
    stream: Arc<Broadcast>,
    playing: Option<Playing>,
    /// The key frame PLAY waited for, sent first.
    first: Option<Arc<RtpUnit>>,
    cname: String,
    /// Times the session's own feed fell behind, in earlier PLAYs.
    feed_lags: usize,
    counts: Arc<SentCounts>,
}

impl ClientMedia {
    /// Media for a new session.
    pub fn new(stream: &Arc<Broadcast>) -> Self {
        Self {
            stream: Arc::clone(stream),
            playing: None,
            first: None,
            feed_lags: 0,
            counts: Arc::default(),
            cname: format!("streamcam-{:08x}", stream.ssrc()),
        }
    }

    /// Starts (or resumes) playing at the next IDR: asks for a key frame and
    /// waits (briefly) for it, so that the reply to PLAY names the exact
    /// sequence number and RTP time of the first packet.
    pub async fn play(&mut self, track: Track) -> PlayStart {
        if self.playing.is_none() {
            let mut subscriber = self.stream.subscribe();
            self.stream.request_keyframe();
            self.first = tokio::time::timeout(FIRST_FRAME_WAIT, subscriber.next())
                .await
                .ok()
                .and_then(Result::ok);
            self.playing = Some(Playing {
                feed: Some(subscriber),
                _client: self.stream.client_guard(),
            });
        }
        match &self.first {
            Some(unit) => PlayStart {
                track,
                seq: unit.first_seq,
                rtptime: unit.rtp_timestamp,
            },
            // No picture yet: the client starts at whatever comes next.
            None => PlayStart {
                track,
                seq: self.stream.next_seq(),
                rtptime: self.stream.current_rtp_timestamp(),
            },
        }
    }

    /// Leaves sending to someone else (the UDP fan-out) until the next
    /// `pause`: the session's own feed and the unit PLAY waited for go.
    pub fn hand_off(&mut self) {
        if let Some(feed) = self.playing.as_mut().and_then(|p| p.feed.take()) {
            self.feed_lags += feed.lags();
        }
        self.first = None;
    }

    /// Stops sending until the next `play`.
    pub fn pause(&mut self) {
        self.hand_off();
        self.playing = None;
    }

    /// True while playing.
    pub fn is_playing(&self) -> bool {
        self.playing.is_some()
    }

    /// Waits for the next access unit's packets to send (counted as sent);
    /// pending forever when paused or handed off.
    pub async fn next(&mut self) -> Result<Arc<RtpUnit>, SubscribeError> {
        let unit = match self.first.take() {
            Some(unit) => unit,
            None => match self.playing.as_mut().and_then(|p| p.feed.as_mut()) {
                Some(feed) => feed.next().await?,
                None => std::future::pending().await,
            },
        };
        self.counts.add(&unit);
        Ok(unit)
    }

    /// Asks the encoder for a key frame (the client reported picture loss).
    pub fn request_keyframe(&self) {
        self.stream.request_keyframe();
    }

    /// Writes a sender report (and BYE if `bye`) for now into `buf`.
    pub fn report(&self, buf: &mut [u8; MAX_RTCP], bye: bool) -> usize {
        self.stream
            .sender_report(&self.counts, &self.cname, buf, bye)
    }

    /// What was sent, shared with a sender the session hands off to.
    pub fn counts(&self) -> &Arc<SentCounts> {
        &self.counts
    }

    /// Times the client fell behind the stream and skipped to a key frame.
    pub fn lag_drops(&self) -> usize {
        let feed = self.playing.as_ref().and_then(|p| p.feed.as_ref());
        self.feed_lags + feed.map_or(0, Subscriber::lags) + self.counts.lags()
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
