//! Publishing over SRT (`srt://host:port?streamid=...`), as a caller, with
//! MPEG-TS inside: what mediamtx, srt-live-transmit, ffmpeg and SRT
//! gateways take. srt-tokio speaks SRT (handshake, retransmission within
//! the latency, AES with a passphrase); [`super::mpegts`] makes the
//! stream. Each SRT message holds seven TS packets (1316 bytes), the size
//! every SRT peer expects in live mode.
//!
//! The URL's query takes `streamid`, `passphrase` (10 to 79 characters),
//! `pbkeylen` (16, 24 or 32) and `latency` (milliseconds), as
//! srt-live-transmit and ffmpeg spell them; `mode` may only be `caller`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use srt_tokio::SrtSocket;

use super::mpegts::{Muxer, PACKET};
use super::{ANSWER_TIMEOUT, PICTURE_WAIT, PublishError, STALL, Target, next_picture};
use crate::broadcast::Broadcast;

/// TS packets in one SRT message.
const PACKETS_PER_MESSAGE: usize = 7;
/// SRT's latency when the URL gives none (as libsrt's default).
const DEFAULT_LATENCY: Duration = Duration::from_millis(120);

/// What the query of an `srt://` URL asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The stream id the relay routes by (e.g. `publish:cam1`).
    pub stream_id: Option<String>,
    /// The passphrase of AES encryption.
    pub passphrase: Option<String>,
    /// The AES key length in bytes (16 without one).
    pub key_length: Option<u16>,
    /// The time SRT has to recover lost packets.
    pub latency: Option<Duration>,
}

impl Options {
    /// Reads the query of `url`; a key SRT publishing does not take, or a
    /// value out of range, is an error that says which.
    pub fn of(url: &url::Url) -> Result<Options, String> {
        let mut o = Options::default();
        for (key, value) in url.query_pairs() {
            match &*key {
                "streamid" => {
                    if value.len() > 512 {
                        return Err("streamid is longer than SRT's 512 bytes".into());
                    }
                    o.stream_id = Some(value.into_owned());
                }
                "passphrase" => {
                    if !(10..=79).contains(&value.len()) {
                        return Err("passphrase must have 10 to 79 characters".into());
                    }
                    o.passphrase = Some(value.into_owned());
                }
                "pbkeylen" => match value.parse() {
                    Ok(n @ (16 | 24 | 32)) => o.key_length = Some(n),
                    _ => return Err(format!("pbkeylen={value}: 16, 24 or 32")),
                },
                "latency" => match value.parse::<u64>() {
                    Ok(ms) if ms <= 60_000 => o.latency = Some(Duration::from_millis(ms)),
                    _ => return Err(format!("latency={value}: milliseconds, at most 60000")),
                },
                "mode" if value == "caller" => {}
                "mode" => {
                    return Err(format!(
                        "mode={value}: streamcam calls the relay (mode=caller)"
                    ));
                }
                other => {
                    return Err(format!(
                        "{other}= is not an SRT option streamcam takes (streamid, passphrase, pbkeylen, latency)"
                    ));
                }
            }
        }
        if o.key_length.is_some() && o.passphrase.is_none() {
            return Err("pbkeylen needs a passphrase".into());
        }
        if url.port().is_none() {
            return Err("needs a port: srt://host:port".into());
        }
        Ok(o)
    }
}

/// One connection to `url` until it fails.
pub async fn publish(url: &url::Url, stream: &Arc<Broadcast>, target: &Target) -> PublishError {
    match session(url, stream, target).await {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

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

async fn session(
    url: &url::Url,
    stream: &Arc<Broadcast>,
    target: &Target,
) -> Result<std::convert::Infallible, PublishError> {
    let options = Options::of(url).map_err(PublishError::Refused)?;
    let params = stream
        .parameter_sets(PICTURE_WAIT)
        .await
        .ok_or(PublishError::NoPicture)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn options(url: &str) -> Result<Options, String> {
        Options::of(&url::Url::parse(url).unwrap())
    }

    #[test]
    fn the_query_names_the_stream_and_its_secret() {
        let o = options(
            "srt://relay:8890?streamid=publish:cam1&passphrase=0123456789&pbkeylen=32&latency=200&mode=caller",
        )
        .unwrap();
        assert_eq!(o.stream_id.as_deref(), Some("publish:cam1"));
        assert_eq!(o.passphrase.as_deref(), Some("0123456789"));
        assert_eq!(o.key_length, Some(32));
        assert_eq!(o.latency, Some(Duration::from_millis(200)));
        assert_eq!(options("srt://relay:8890").unwrap(), Options::default());
        for (url, says) in [
            ("srt://relay:8890?passphrase=short", "10 to 79"),
            (
                "srt://relay:8890?passphrase=0123456789&pbkeylen=20",
                "16, 24 or 32",
            ),
            ("srt://relay:8890?pbkeylen=16", "needs a passphrase"),
            ("srt://relay:8890?latency=soon", "milliseconds"),
            ("srt://relay:8890?mode=listener", "mode=caller"),
            ("srt://relay:8890?tlpktdrop=1", "tlpktdrop= is not"),
            ("srt://relay", "needs a port"),
        ] {
            let e = options(url).unwrap_err();
            assert!(e.contains(says), "{url}: {e}");
        }
    }
}
