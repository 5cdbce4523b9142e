//! The one shared encode: each access unit packetized once (one sequence
//! space and SSRC for the stream) and handed to every client by reference,
//! per-client lag handling, key-frame requests, and the supervisor that
//! keeps the source and encoder running.
//!
//! The queue is tokio's broadcast ring: the publisher never waits for a
//! client, and memory is bounded by the ring's capacity whatever clients do.
//! A client that falls more than the ring behind skips to the next IDR; one
//! that keeps falling behind is told to go.

pub mod stats;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, watch};

use crate::format::h264::{AccessUnit, ParameterSets};
use crate::format::rtp::clock::MediaClock;
use crate::format::rtp::packetizer::Packetizer;
use crate::format::rtp::packetizer::RtpUnit;
use crate::format::rtp::rtcp::{self, MAX_RTCP, SenderInfo, SentCounts};
use stats::Stats;

/// Access units held for clients: about one second at 30 fps.
const RING_CAPACITY: usize = 32;
/// Least time between two key frames forced for new or lagging clients.
const KEYFRAME_MIN_INTERVAL: Duration = Duration::from_millis(250);
/// A client that falls behind this many times within [`LAG_WINDOW`] is dropped.
const MAX_LAGS: usize = 4;
/// The window over which lag events are counted.
const LAG_WINDOW: Duration = Duration::from_secs(10);

/// What the stream is, for status lines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamInfo {
    /// e.g. "1280x720@30 h264 from testpattern (software encoder)"
    pub description: String,
    /// Why the pipeline is not running, while it is not.
    pub error: Option<String>,
}

/// Why a subscriber stops receiving.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubscribeError {
    /// The client kept falling behind the stream.
    #[error("client is too slow: fell behind the stream {0} times in {LAG_WINDOW:?}")]
    TooSlow(usize),
    /// The stream ended (the daemon is stopping).
    #[error("stream closed")]
    Closed,
}

#[derive(Debug, Default)]
struct KeyframeState {
    pending: bool,
    last_forced: Option<Instant>,
}

/// The shared stream. Clone the `Arc` to share it.
#[derive(Debug)]
pub struct Broadcast {
    tx: broadcast::Sender<Arc<RtpUnit>>,
    packetizer: Mutex<Packetizer>,
    params: watch::Sender<Option<ParameterSets>>,
    keyframe: Mutex<KeyframeState>,
    info: watch::Sender<StreamInfo>,
    clock: MediaClock,
    ssrc: u32,
    last_frame: Mutex<Option<Instant>>,
    clients: AtomicUsize,
    frames: AtomicU64,
    stats: Stats,
}

impl Broadcast {
    /// A new stream with a fresh media clock and a random SSRC.
    pub fn new() -> Arc<Self> {
        Self::with_clock(MediaClock::new())
    }

    /// Another stream of the same capture (the substream): its own SSRC
    /// and RTP base, and this one's capture-to-wall-clock mapping.
    pub fn sibling(&self) -> Arc<Self> {
        Self::with_clock(self.clock.sibling(crate::format::rtp::CLOCK_RATE))
    }

    /// The sound that goes with this stream (`[audio]`): Opus packets on a
    /// 48 kHz clock with this one's capture-to-wall-clock mapping, so that
    /// players keep the two in step.
    pub fn audio_sibling(&self) -> Arc<Self> {
        Self::with_clock(self.clock.sibling(crate::format::rtp::OPUS_CLOCK_RATE))
    }

    fn with_clock(clock: MediaClock) -> Arc<Self> {
        let (tx, _) = broadcast::channel(RING_CAPACITY);
        let ssrc = rand::random();
        Arc::new(Self {
            tx,
            packetizer: Mutex::new(Packetizer::new(ssrc, rand::random())),
            params: watch::Sender::new(None),
            keyframe: Mutex::default(),
            info: watch::Sender::new(StreamInfo::default()),
            clock,
            ssrc,
            last_frame: Mutex::new(None),
            clients: AtomicUsize::new(0),
            frames: AtomicU64::new(0),
            stats: Stats::default(),
        })
    }

    /// Publishes one Opus frame (an audio stream's, `audio_sibling`)
    /// captured at `captured`.
    pub fn publish_opus(&self, payload: &[u8], captured: Instant) {
        let timestamp = self.clock.rtp_timestamp(captured);
        let unit = self
            .packetizer
            .lock()
            .unwrap()
            .packetize_opus(payload, timestamp, captured);
        self.stats.frame_sent(payload.len(), Instant::now());
        let _ = self.tx.send(Arc::new(unit));
        *self.last_frame.lock().unwrap() = Some(captured);
        self.frames.fetch_add(1, Ordering::Relaxed);
    }

    /// Packetizes one access unit and publishes it to every subscriber;
    /// returns it as sent. Never waits. Every IDR goes out with SPS/PPS in
    /// front, so that any client can start at any IDR.
    pub fn publish(&self, mut au: AccessUnit) -> Arc<RtpUnit> {
        if au.is_idr {
            match au.parameter_sets() {
                Some(ps) => {
                    self.params.send_if_modified(|cur| {
                        let changed = cur.as_ref() != Some(&ps);
                        if changed {
                            *cur = Some(ps);
                        }
                        changed
                    });
                }
                None => {
                    if let Some(ps) = self.params.borrow().clone() {
                        au.nals.splice(0..0, [ps.sps, ps.pps]);
                    }
                }
            }
        }
        let timestamp = self.clock.rtp_timestamp(au.timestamp);
        let unit = self.packetizer.lock().unwrap().packetize(&au, timestamp);
        let (captured, is_idr) = (au.timestamp, au.is_idr);
        self.stats
            .frame_sent(unit.payload_octets as usize, Instant::now());
        let unit = Arc::new(unit);
        let _ = self.tx.send(Arc::clone(&unit)); // no subscribers is fine
        if is_idr {
            self.keyframe.lock().unwrap().pending = false;
        }
        *self.last_frame.lock().unwrap() = Some(captured);
        self.frames.fetch_add(1, Ordering::Relaxed);
        unit
    }

    /// Access units published since the start.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// The sequence number of the next packet the stream will send.
    pub fn next_seq(&self) -> u16 {
        self.packetizer.lock().unwrap().next_seq()
    }

    /// Sets the parameter sets out of band (a source whose IDRs lack them).
    pub fn set_parameter_sets(&self, ps: ParameterSets) {
        self.params.send_replace(Some(ps));
    }

    /// Called by the pipeline before each frame: true if a key frame should
    /// be forced now (a client asked, and the rate limit allows it).
    pub fn take_keyframe_request(&self, now: Instant) -> bool {
        let mut k = self.keyframe.lock().unwrap();
        let allowed = k
            .last_forced
            .is_none_or(|t| now.duration_since(t) >= KEYFRAME_MIN_INTERVAL);
        if k.pending && allowed {
            k.pending = false;
            k.last_forced = Some(now);
            true
        } else {
            false
        }
    }

    /// Asks the encoder for a key frame soon (rate-limited, coalesced).
    pub fn request_keyframe(&self) {
        self.keyframe.lock().unwrap().pending = true;
    }

    /// A new subscriber; it starts at the next IDR picture.
    pub fn subscribe(self: &Arc<Self>) -> Subscriber {
        Subscriber {
            rx: self.tx.subscribe(),
            stream: Arc::clone(self),
            waiting_for_idr: true,
            lags: Vec::new(),
            lags_total: 0,
        }
    }

    /// The current SPS/PPS, waiting up to `timeout` for the first ones.
    pub async fn parameter_sets(&self, timeout: Duration) -> Option<ParameterSets> {
        let mut rx = self.params.subscribe();
        let found = tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await;
        found.ok()?.ok()?.clone()
    }

    /// Waits until the first access unit has been published.
    pub async fn first_frame(&self) {
        let mut rx = self.params.subscribe();
        let _ = rx.wait_for(Option::is_some).await;
    }

    /// The stream's media clock (capture time to RTP and NTP time).
    pub fn clock(&self) -> &MediaClock {
        &self.clock
    }

    /// The stream's SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Writes a sender report of the stream for now into `buf`, for a
    /// receiver that was sent `counts`, with `cname` (and BYE if `bye`).
    /// Returns its length.
    pub fn sender_report(
        &self,
        counts: &SentCounts,
        cname: &str,
        buf: &mut [u8; MAX_RTCP],
        bye: bool,
    ) -> usize {
        let now = Instant::now();
        let (packets, octets) = counts.sent();
        let info = SenderInfo {
            ssrc: self.ssrc,
            ntp_timestamp: self.clock.ntp_timestamp(now),
            rtp_timestamp: self.clock.rtp_timestamp(now),
            // RFC 3550 counts wrap at 32 bits.
            packet_count: packets as u32,
            octet_count: octets as u32,
        };
        rtcp::write_report(buf, &info, cname, bye)
    }

    /// RTP time of the newest access unit (or of now, before the first one):
    /// never later than the next packet any client will get.
    pub fn current_rtp_timestamp(&self) -> u32 {
        let t = self.last_frame.lock().unwrap().unwrap_or_else(Instant::now);
        self.clock.rtp_timestamp(t)
    }

    /// When the newest access unit was captured.
    pub fn last_frame_at(&self) -> Option<Instant> {
        *self.last_frame.lock().unwrap()
    }

    /// Describes the stream for status lines.
    pub fn set_info(&self, info: StreamInfo) {
        self.info.send_replace(info);
    }

    /// What the stream is.
    pub fn info(&self) -> StreamInfo {
        self.info.borrow().clone()
    }

    /// What the stream is, as it changes.
    pub fn watch_info(&self) -> watch::Receiver<StreamInfo> {
        self.info.subscribe()
    }

    /// Counts a client in (for status); the guard counts it out when dropped.
    pub fn client_guard(self: &Arc<Self>) -> ClientGuard {
        self.clients.fetch_add(1, Ordering::Relaxed);
        ClientGuard(Arc::clone(self))
    }

    /// Clients currently playing.
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    /// What the pipeline and the fan-out did.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

/// Counts one playing client; see [`Broadcast::client_guard`].
#[derive(Debug)]
pub struct ClientGuard(Arc<Broadcast>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One client's view of the stream.
#[derive(Debug)]
pub struct Subscriber {
    rx: broadcast::Receiver<Arc<RtpUnit>>,
    stream: Arc<Broadcast>,
    waiting_for_idr: bool,
    lags: Vec<Instant>,
    lags_total: usize,
}

impl Subscriber {
    /// The next access unit's packets for this client. After a start or a
    /// lag, that is the next IDR (which carries SPS/PPS).
    pub async fn next(&mut self) -> Result<Arc<RtpUnit>, SubscribeError> {
        loop {
            match self.rx.recv().await {
                Ok(unit) if self.waiting_for_idr && !unit.is_idr => continue,
                Ok(unit) => {
                    self.waiting_for_idr = false;
                    return Ok(unit);
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    let now = Instant::now();
                    self.lags.retain(|t| now.duration_since(*t) < LAG_WINDOW);
                    self.lags.push(now);
                    self.lags_total += 1;
                    if self.lags.len() >= MAX_LAGS {
                        self.stream.stats.slow_dropped();
                        return Err(SubscribeError::TooSlow(self.lags.len()));
                    }
                    self.stream.stats.lag_skipped();
                    tracing::debug!(missed, "client fell behind; skipping to the next key frame");
                    self.waiting_for_idr = true;
                    self.stream.request_keyframe();
                }
                Err(broadcast::error::RecvError::Closed) => return Err(SubscribeError::Closed),
            }
        }
    }

    /// Times this subscriber fell behind the stream.
    pub fn lags(&self) -> usize {
        self.lags_total
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::format::h264::fixtures::{PPS, SPS_720P as SPS};

    /// NAL unit types of a unit's packets (single NAL unit packets only).
    fn nal_types(unit: &RtpUnit) -> Vec<u8> {
        unit.packets().map(|p| p[12] & 0x1f).collect()
    }

    fn idr(with_ps: bool) -> AccessUnit {
        let mut nals = Vec::new();
        if with_ps {
            nals.push(Bytes::from_static(SPS));
            nals.push(Bytes::from_static(PPS));
        }
        nals.push(Bytes::from_static(&[0x65, 0x88, 0x80]));
        AccessUnit::new(nals, Instant::now())
    }

    fn p_frame() -> AccessUnit {
        AccessUnit::new(vec![Bytes::from_static(&[0x41, 0x9a])], Instant::now())
    }

    #[tokio::test]
    async fn subscriber_starts_at_idr_with_parameter_sets() {
        let b = Broadcast::new();
        b.publish(idr(true)); // gives the stream its parameter sets
        let mut s = b.subscribe();
        b.publish(p_frame());
        b.publish(idr(false));
        b.publish(p_frame());
        let first = s.next().await.unwrap();
        assert!(first.is_idr);
        assert_eq!(nal_types(&first), [7, 8, 5], "SPS/PPS put in front");
        assert!(!s.next().await.unwrap().is_idr);
        assert!(b.parameter_sets(Duration::ZERO).await.is_some());
    }

    #[tokio::test]
    async fn every_client_gets_the_same_packets_in_one_sequence_space() {
        let b = Broadcast::new();
        let (mut s1, mut s2) = (b.subscribe(), b.subscribe());
        let seq = b.next_seq();
        b.publish(idr(true));
        b.publish(p_frame());
        let (a1, a2) = (s1.next().await.unwrap(), s2.next().await.unwrap());
        assert!(Arc::ptr_eq(&a1, &a2), "packetized once, shared");
        assert_eq!(a1.first_seq, seq);
        let (b1, b2) = (s1.next().await.unwrap(), s2.next().await.unwrap());
        assert!(Arc::ptr_eq(&b1, &b2));
        assert_eq!(b1.first_seq, seq.wrapping_add(3));
        assert_eq!(b.next_seq(), seq.wrapping_add(4));
        assert_eq!(b1.rtp_timestamp, b.clock().rtp_timestamp(b1.captured));
    }

    #[tokio::test]
    async fn lagging_subscriber_skips_to_idr_then_is_dropped() {
        let b = Broadcast::new();
        let mut s = b.subscribe();
        for round in 0..MAX_LAGS {
            for _ in 0..RING_CAPACITY + 5 {
                b.publish(p_frame());
            }
            b.publish(idr(true));
            b.publish(p_frame());
            let got = s.next().await;
            if round + 1 < MAX_LAGS {
                assert!(got.unwrap().is_idr, "skipped to the IDR after lagging");
                assert!(!s.next().await.unwrap().is_idr);
            } else {
                assert_eq!(got.unwrap_err(), SubscribeError::TooSlow(MAX_LAGS));
            }
        }
    }

    #[test]
    fn keyframe_requests_are_coalesced_and_rate_limited() {
        let b = Broadcast::new();
        let t0 = Instant::now();
        assert!(!b.take_keyframe_request(t0), "nothing asked");
        b.request_keyframe();
        b.request_keyframe();
        assert!(b.take_keyframe_request(t0));
        assert!(!b.take_keyframe_request(t0), "coalesced");
        b.request_keyframe();
        assert!(!b.take_keyframe_request(t0 + Duration::from_millis(100)));
        assert!(
            b.take_keyframe_request(t0 + KEYFRAME_MIN_INTERVAL),
            "deferred, not lost"
        );
        b.request_keyframe();
        b.publish(idr(true));
        assert!(
            !b.take_keyframe_request(t0 + Duration::from_secs(5)),
            "a published IDR answers the request"
        );
    }

    #[tokio::test]
    async fn client_count_and_timestamps() {
        let b = Broadcast::new();
        let g1 = b.client_guard();
        let g2 = b.client_guard();
        assert_eq!(b.clients(), 2);
        drop(g1);
        assert_eq!(b.clients(), 1);
        drop(g2);
        assert_eq!(b.clients(), 0);
        let au = idr(true);
        let expected = b.clock().rtp_timestamp(au.timestamp);
        b.publish(au);
        assert_eq!(b.current_rtp_timestamp(), expected);
        assert!(b.parameter_sets(Duration::from_millis(1)).await.is_some());
    }
}
