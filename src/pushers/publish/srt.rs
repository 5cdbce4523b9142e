//! Publishing over SRT (`srt://host:port?streamid=...`), as a caller, with
//! MPEG-TS inside: what mediamtx, srt-live-transmit, ffmpeg and SRT
//! gateways take. srt-tokio speaks SRT (handshake, retransmission within
//! the latency, AES with a passphrase); [`crate::format::mpegts`] makes the
//! stream. Each SRT message holds seven TS packets (1316 bytes), the size
//! every SRT peer expects in live mode.
//!
//! The URL's query is read by [`crate::config::srt::Options`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use srt_tokio::SrtSocket;

use super::target::{ANSWER_TIMEOUT, PublishError, STALL, Target, next_picture};
use crate::broadcast::Broadcast;
use crate::config::srt::Options;
use crate::format::h264::ParameterSets;
use crate::format::mpegts::{Muxer, PACKET};

/// TS packets in one SRT message.
const PACKETS_PER_MESSAGE: usize = 7;
/// SRT's latency when the URL gives none (as libsrt's default).
const DEFAULT_LATENCY: Duration = Duration::from_millis(120);

/// The relay's address.
async fn resolve(url: &url::Url) -> Result<SocketAddr, PublishError> {
    let host = url.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let port = url.port().unwrap_or_default();
    let mut addrs = tokio::time::timeout(ANSWER_TIMEOUT, tokio::net::lookup_host((bare, port)))
        .await
        .map_err(|_| PublishError::Network(format!("cannot resolve {host} in time")))?
        .map_err(|e| PublishError::Network(format!("cannot resolve {host}: {e}")))?;
    addrs
        .next()
        .ok_or_else(|| PublishError::Network(format!("{host} has no address")))
}

/// One connection to the relay at `url`, told of the stream with
/// `params`, until it fails.
pub async fn session(
    url: &url::Url,
    stream: &Arc<Broadcast>,
    params: ParameterSets,
    target: &Target,
) -> Result<Infallible, PublishError> {
    let options = Options::of(url).map_err(PublishError::Refused)?;
    let remote = resolve(url).await?;
    let mut builder = SrtSocket::builder().latency(options.latency.unwrap_or(DEFAULT_LATENCY));
    if let Some(passphrase) = &options.passphrase {
        // Checked above: a length srt-tokio takes, and a key size it knows.
        builder = builder.encryption(options.key_length.unwrap_or(16), passphrase.as_str());
    }
    let mut socket = tokio::time::timeout(
        ANSWER_TIMEOUT,
        builder.call(remote, options.stream_id.as_deref()),
    )
    .await
    .map_err(|_| {
        PublishError::Network(format!(
            "no SRT answer from {remote} within {ANSWER_TIMEOUT:?}"
        ))
    })?
    .map_err(|e| {
        // srt-tokio gives a caller that heard nothing back an empty error.
        let why = e.to_string();
        PublishError::Network(if why.trim().is_empty() {
            format!("no SRT answer from {remote}")
        } else {
            format!("SRT with {remote}: {why}")
        })
    })?;
    // From the next key frame, which brings the tables and parameter sets.
    let mut feed = stream.subscribe();
    stream.request_keyframe();
    let mut muxer = Muxer::new(params.clone());
    target.connected();
    loop {
        let unit = next_picture(&mut feed, &params.sps).await?;
        let ticks = target.since_start(unit.captured).as_micros() as u64 * 9 / 100;
        let ts = muxer.picture(&unit.nals, unit.is_idr, ticks);
        let send = async {
            for message in ts.chunks(PACKETS_PER_MESSAGE * PACKET) {
                socket.feed((Instant::now(), ts.slice_ref(message))).await?;
            }
            socket.flush().await
        };
        match tokio::time::timeout(STALL, send).await {
            Ok(Ok(())) => target.sent(ts.len()),
            Ok(Err(e)) => return Err(PublishError::Network(format!("sending: {e}"))),
            Err(_) => return Err(PublishError::Stalled),
        }
    }
}
