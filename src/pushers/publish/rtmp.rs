//! Publishing to an RTMP server (`rtmp://host[:port]/app/key`, or
//! `rtmps://` over TLS): nginx-rtmp, mediamtx, YouTube Live. rml_rtmp does the handshake, the chunk stream
//! and the AMF0 commands (connect, createStream, publish) without I/O; the
//! FLV video tags are made here: the AVC sequence header (the decoder
//! configuration) first, then one tag per access unit, its NAL units each
//! after a 4-byte length. Time stamps are milliseconds of capture time
//! since the target started, so they run on across reconnections.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
    PublishRequestType, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::link::{self, Stream};
use super::target::{ANSWER_TIMEOUT, PublishError, STALL, Target, next_picture};
use crate::broadcast::Broadcast;
use crate::format::h264::{self, ParameterSets};

/// FLV's codec id of AVC (H.264).
const FLV_AVC: u8 = 7;
/// FLV frame types, in the high nibble of a video tag's first byte.
const FLV_KEY_FRAME: u8 = 1 << 4;
const FLV_INTER_FRAME: u8 = 2 << 4;

/// The application (all of the path but its last segment) and the stream
/// key (its last segment) of `url`.
fn app_and_key(url: &url::Url) -> Result<(String, String), PublishError> {
    let path = url.path().trim_matches('/');
    match path.rsplit_once('/') {
        Some((app, key)) if !app.is_empty() && !key.is_empty() => {
            Ok((app.to_string(), key.to_string()))
        }
        _ => Err(PublishError::Refused(
            "the URL needs an application and a stream key: rtmp://host/app/key".into(),
        )),
    }
}

/// The connection, and the session that speaks RTMP on it.
struct Rtmp {
    socket: Box<dyn Stream>,
    session: ClientSession,
    buf: BytesMut,
}

impl Rtmp {
    /// Sends what the session produced; returns the events it raised.
    async fn send(
        &mut self,
        results: Vec<ClientSessionResult>,
        target: &Target,
    ) -> Result<Vec<ClientSessionEvent>, PublishError> {
        let mut events = Vec::new();
        for result in results {
            match result {
                ClientSessionResult::OutboundResponse(packet) => {
                    write(&mut self.socket, &packet.bytes).await?;
                    target.sent(packet.bytes.len());
                }
                ClientSessionResult::RaisedEvent(event) => events.push(event),
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(events)
    }

    /// Reads from the server into the session, answering what it asks.
    async fn receive(&mut self, target: &Target) -> Result<Vec<ClientSessionEvent>, PublishError> {
        self.buf.clear();
        let read = self.socket.read_buf(&mut self.buf).await;
        self.received(read, target).await
    }

    /// Hands what a read got to the session and sends its answers. Apart
    /// from the read, so that a read can be raced against the stream
    /// (reading is cancel-safe; a half-sent answer would not be).
    async fn received(
        &mut self,
        read: std::io::Result<usize>,
        target: &Target,
    ) -> Result<Vec<ClientSessionEvent>, PublishError> {
        let n = read.map_err(|e| PublishError::Network(format!("receiving: {e}")))?;
        if n == 0 {
            return Err(PublishError::Network(
                "the server closed the connection".into(),
            ));
        }
        let results = self
            .session
            .handle_input(&self.buf[..n])
            .map_err(|e| PublishError::Refused(format!("the server's RTMP: {e}")))?;
        self.send(results, target).await
    }

    /// Receives until the server accepts (`Ok`) or refuses what was asked.
    async fn wait_for(
        &mut self,
        accepted: ClientSessionEvent,
        what: &str,
        target: &Target,
    ) -> Result<(), PublishError> {
        let until = Instant::now() + ANSWER_TIMEOUT;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let events = tokio::time::timeout(left, self.receive(target))
                .await
                .map_err(|_| {
                    PublishError::Network(format!("no answer to {what} within {ANSWER_TIMEOUT:?}"))
                })??;
            for event in events {
                match event {
                    e if e == accepted => return Ok(()),
                    ClientSessionEvent::ConnectionRequestRejected { description } => {
                        return Err(PublishError::Refused(format!(
                            "{what} refused: {description}"
                        )));
                    }
                    ClientSessionEvent::UnhandleableOnStatusCode { code } => {
                        return Err(PublishError::Refused(format!("{what} refused: {code}")));
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Writes `bytes`, or fails if the server has taken nothing for [`STALL`].
async fn write(socket: &mut Box<dyn Stream>, bytes: &[u8]) -> Result<(), PublishError> {
    match tokio::time::timeout(STALL, socket.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(PublishError::Network(format!("sending: {e}"))),
        Err(_) => Err(PublishError::Stalled),
    }
}

/// Connects and does the RTMP handshake; returns the bytes that came after
/// it.
async fn connect(
    url: &url::Url,
    target: &Target,
) -> Result<(Box<dyn Stream>, Vec<u8>), PublishError> {
    let mut socket = link::dial(url, target.ca()).await?.stream;
    let handshake_error = |e: rml_rtmp::handshake::HandshakeError| {
        PublishError::Refused(format!("RTMP handshake: {e}"))
    };
    let mut handshake = Handshake::new(PeerType::Client);
    let hello = handshake
        .generate_outbound_p0_and_p1()
        .map_err(handshake_error)?;
    write(&mut socket, &hello).await?;
    let mut buf = vec![0u8; 4096];
    let until = Instant::now() + ANSWER_TIMEOUT;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, socket.read(&mut buf))
            .await
            .map_err(|_| {
                PublishError::Network(format!("no RTMP handshake within {ANSWER_TIMEOUT:?}"))
            })?
            .map_err(|e| PublishError::Network(format!("receiving: {e}")))?;
        if n == 0 {
            return Err(PublishError::Network(
                "the server closed the connection during the handshake".into(),
            ));
        }
        match handshake
            .process_bytes(&buf[..n])
            .map_err(handshake_error)?
        {
            HandshakeProcessResult::InProgress { response_bytes } => {
                write(&mut socket, &response_bytes).await?;
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                write(&mut socket, &response_bytes).await?;
                return Ok((socket, remaining_bytes));
            }
        }
    }
}

/// One connection to the relay at `url`, told of the stream with
/// `params`, until it fails.
pub async fn session(
    url: &url::Url,
    stream: &Arc<Broadcast>,
    params: ParameterSets,
    target: &Target,
) -> Result<Infallible, PublishError> {
    let (app, key) = app_and_key(url)?;
    let (socket, early) = connect(url, target).await?;
    let mut config = ClientSessionConfig::new();
    config.tc_url = Some(format!(
        "{}://{}:{}/{app}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.port()
            .unwrap_or(super::link::default_port(url.scheme()))
    ));
    let rtmp_error =
        |e: rml_rtmp::sessions::ClientSessionError| PublishError::Refused(format!("RTMP: {e}"));
    let (session, results) = ClientSession::new(config).map_err(rtmp_error)?;
    let mut c = Rtmp {
        socket,
        session,
        buf: BytesMut::with_capacity(16 * 1024),
    };
    c.send(results, target).await?;
    if !early.is_empty() {
        let results = c.session.handle_input(&early).map_err(rtmp_error)?;
        c.send(results, target).await?;
    }
    let request = c.session.request_connection(app).map_err(rtmp_error)?;
    c.send(vec![request], target).await?;
    c.wait_for(
        ClientSessionEvent::ConnectionRequestAccepted,
        "connect",
        target,
    )
    .await?;
    let request = c
        .session
        .request_publishing(key, PublishRequestType::Live)
        .map_err(rtmp_error)?;
    c.send(vec![request], target).await?;
    c.wait_for(
        ClientSessionEvent::PublishRequestAccepted,
        "publish",
        target,
    )
    .await?;
    let metadata = c
        .session
        .publish_metadata(&metadata(&params))
        .map_err(rtmp_error)?;
    c.send(vec![metadata], target).await?;
    stream_to(c, stream, target, &params).await
}

/// What the server tells players about the stream (onMetaData).
fn metadata(params: &ParameterSets) -> StreamMetadata {
    let mut m = StreamMetadata::new();
    m.video_width = Some(params.width);
    m.video_height = Some(params.height);
    m.video_codec_id = Some(u32::from(FLV_AVC));
    m.video_frame_rate = params.fps.map(|f| f as f32);
    m.encoder = Some(format!("streamcam {}", env!("CARGO_PKG_VERSION")));
    m
}

/// The FLV video tag of the AVC sequence header.
fn sequence_header(params: &ParameterSets) -> Bytes {
    let mut tag = BytesMut::with_capacity(64);
    tag.put_slice(&[FLV_KEY_FRAME | FLV_AVC, 0, 0, 0, 0]);
    params.put_decoder_configuration(&mut tag);
    tag.freeze()
}

/// The FLV video tag of one access unit.
fn picture(nals: &[Bytes], is_idr: bool) -> Bytes {
    let len: usize = h264::sample_nals(nals).map(|n| 4 + n.len()).sum();
    let mut tag = BytesMut::with_capacity(5 + len);
    let kind = if is_idr {
        FLV_KEY_FRAME
    } else {
        FLV_INTER_FRAME
    };
    // AVC NALU packet, composition time 0 (no B-frames).
    tag.put_slice(&[kind | FLV_AVC, 1, 0, 0, 0]);
    h264::put_sample(&mut tag, nals);
    tag.freeze()
}

/// Sends the stream until the connection fails.
async fn stream_to(
    mut c: Rtmp,
    stream: &Arc<Broadcast>,
    target: &Target,
    params: &ParameterSets,
) -> Result<Infallible, PublishError> {
    let rtmp_error =
        |e: rml_rtmp::sessions::ClientSessionError| PublishError::Refused(format!("RTMP: {e}"));
    // From the next key frame; asked for now.
    let mut feed = stream.subscribe();
    stream.request_keyframe();
    let mut header_sent = false;
    target.connected();
    loop {
        c.buf.clear();
        let unit = tokio::select! {
            read = c.socket.read_buf(&mut c.buf) => {
                c.received(read, target).await?;
                continue;
            }
            unit = next_picture(&mut feed, &params.sps) => unit?,
        };
        let at = RtmpTimestamp::new(target.millis_since_start(unit.captured));
        if !header_sent {
            let header = c
                .session
                .publish_video_data(sequence_header(params), at, false)
                .map_err(rtmp_error)?;
            c.send(vec![header], target).await?;
            header_sent = true;
        }
        let tag = c
            .session
            .publish_video_data(picture(&unit.nals, unit.is_idr), at, false)
            .map_err(rtmp_error)?;
        c.send(vec![tag], target).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_path_segment_is_the_key() {
        let split = |u: &str| app_and_key(&url::Url::parse(u).unwrap());
        assert_eq!(
            split("rtmp://a.rtmp.youtube.com/live2/abcd-1234").unwrap(),
            ("live2".into(), "abcd-1234".into())
        );
        assert_eq!(
            split("rtmp://relay/app/inner/cam1").unwrap(),
            ("app/inner".into(), "cam1".into())
        );
        assert!(split("rtmp://relay/live").is_err());
        assert!(split("rtmp://relay/live/").is_err());
    }

    #[test]
    fn tags_carry_the_decoder_configuration_then_length_prefixed_pictures() {
        let sps = Bytes::from_static(&[
            0x67, 0x42, 0xc0, 0x1f, 0x8c, 0x68, 0x05, 0x00, 0x5b, 0xa0, 0x1e, 0x11, 0x08, 0xd4,
        ]);
        let pps = Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80]);
        let params = ParameterSets::new(sps.clone(), pps.clone()).unwrap();
        let header = sequence_header(&params);
        assert_eq!(header[..5], [0x17, 0, 0, 0, 0]);
        assert_eq!(header[5..9], [1, 0x42, 0xc0, 0x1f]);
        let slice = Bytes::from(vec![0x65, 1, 2, 3]);
        let tag = picture(&[sps, pps, slice], true);
        assert_eq!(tag[..], [0x17, 1, 0, 0, 0, 0, 0, 0, 4, 0x65, 1, 2, 3]);
        let tag = picture(&[Bytes::from_static(&[0x41, 9])], false);
        assert_eq!(tag[..], [0x27, 1, 0, 0, 0, 0, 0, 0, 2, 0x41, 9]);
    }
}
