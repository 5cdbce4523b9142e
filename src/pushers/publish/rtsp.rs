//! Publishing to an RTSP server (`rtsp://`, or `rtsps://` over TLS): ANNOUNCE with the stream's
//! session description, SETUP in record mode over TCP interleaved, RECORD,
//! then the broadcast's packets, which are already framed for interleaved
//! channel 0 (no copy per target). Digest or Basic when the server asks,
//! with the user and password of the URL (http-auth answers the
//! challenge). Sender reports go on channel 1 every 5 s; whatever the
//! server sends (its reports, answers to keep-alives) is read and dropped.
//!
//! The client is written here: no crate publishes over RTSP (retina only
//! plays), and the messages are rtsp-types'.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use rtsp_types::{Message, Method, Request, Response, StatusCode, Version, headers};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};

use super::link::{self, Stream};
use super::target::{ANSWER_TIMEOUT, PublishError, STALL, Target, next_picture};
use crate::broadcast::Broadcast;
use crate::format::h264::ParameterSets;
use crate::format::rtp::packetizer::interleaved_header;
use crate::format::rtp::rtcp::{MAX_RTCP, REPORT_INTERVAL, SentCounts};
use crate::format::sdp::{self, TRACK_PREFIX, VIDEO};

/// How often the session is kept alive with GET_PARAMETER.
const KEEP_ALIVE: Duration = Duration::from_secs(20);
/// The most a server's message may take in the read buffer.
const MAX_MESSAGE: usize = 64 * 1024;

/// The user and password of `url`, percent-decoded.
fn credentials(url: &url::Url) -> Option<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    (!url.username().is_empty())
        .then(|| (decode(url.username()), decode(url.password().unwrap_or(""))))
}

/// One connection to the relay at `url`, told of the stream with
/// `params`, until it fails.
pub async fn session(
    url: &url::Url,
    stream: &Arc<Broadcast>,
    params: ParameterSets,
    target: &Target,
) -> Result<Infallible, PublishError> {
    let link = link::dial(url, target.ca()).await?;
    let local = link.local;
    let (read, write) = tokio::io::split(link.stream);
    let mut plain = url.clone();
    let _ = plain.set_username("");
    let _ = plain.set_password(None);
    let mut c = Client {
        read,
        write,
        buf: BytesMut::new(),
        cseq: 0,
        session: None,
        auth: None,
        credentials: credentials(url),
        url: plain.to_string(),
    };
    let description = sdp::describe(
        &params,
        local.ip(),
        rand::random::<u32>().into(),
        params.fps.unwrap_or(30.0),
        None,
    );
    c.request(
        Method::Announce,
        &c.url.clone(),
        &[(headers::CONTENT_TYPE, "application/sdp".into())],
        description.into_bytes(),
    )
    .await?;
    let track = format!("{}/{TRACK_PREFIX}{VIDEO}", c.url.trim_end_matches('/'));
    let reply = c
        .request(
            Method::Setup,
            &track,
            &[(
                headers::TRANSPORT,
                "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record".into(),
            )],
            Vec::new(),
        )
        .await?;
    let transport = reply
        .header(&headers::TRANSPORT)
        .map(|v| v.as_str().to_ascii_lowercase())
        .unwrap_or_default();
    if transport.contains("interleaved=") && !transport.contains("interleaved=0-1") {
        return Err(PublishError::Refused(format!(
            "the server wants other interleaved channels ({transport}); streamcam sends on 0-1"
        )));
    }
    if c.session.is_none() {
        return Err(PublishError::Refused(
            "SETUP was answered without a session".into(),
        ));
    }
    c.request(
        Method::Record,
        &c.url.clone(),
        &[(headers::RANGE, "npt=0.000-".into())],
        Vec::new(),
    )
    .await?;
    stream_to(c, stream, target, local, &params.sps).await
}

/// Sends the stream until the connection fails.
async fn stream_to(
    c: Client,
    stream: &Arc<Broadcast>,
    target: &Target,
    local: SocketAddr,
    announced_sps: &[u8],
) -> Result<Infallible, PublishError> {
    let Client {
        read,
        mut write,
        buf,
        mut cseq,
        session,
        url,
        ..
    } = c;
    let session = session.unwrap_or_default();
    // From the next key frame, which carries SPS/PPS; asked for now.
    let mut feed = stream.subscribe();
    stream.request_keyframe();
    let counts = SentCounts::default();
    let cname = format!("streamcam-{:08x}", stream.ssrc());
    target.connected();
    tracing::debug!(%local, "publishing over RTSP as {url}");
    // Polled here, not spawned: it ends with the connection.
    let drain = drain(read, buf);
    tokio::pin!(drain);
    let mut report = tokio::time::interval(REPORT_INTERVAL);
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
    keep_alive.reset();
    let mut rtcp = [0u8; MAX_RTCP];
    loop {
        let out = tokio::select! {
            ended = &mut drain => return Err(ended),
            unit = next_picture(&mut feed, announced_sps) => {
                let unit = unit?;
                counts.add(&unit);
                unit.framed().clone()
            }
            _ = report.tick() => {
                let n = stream.sender_report(&counts, &cname, &mut rtcp, false);
                let mut out = BytesMut::with_capacity(4 + n);
                out.put_slice(&interleaved_header(1, n));
                out.put_slice(&rtcp[..n]);
                out.freeze()
            }
            _ = keep_alive.tick() => {
                cseq += 1;
                let request = Request::builder(Method::GetParameter, Version::V1_0)
                    .request_uri(url.parse::<rtsp_types::Url>().map_err(|e| PublishError::Refused(e.to_string()))?)
                    .header(headers::CSEQ, cseq.to_string())
                    .header(headers::SESSION, session.clone())
                    .build(Vec::new());
                let mut out = Vec::new();
                request.write(&mut out).map_err(|e| PublishError::Network(e.to_string()))?;
                out.into()
            }
        };
        match tokio::time::timeout(STALL, write.write_all(&out)).await {
            Ok(Ok(())) => target.sent(out.len()),
            Ok(Err(e)) => return Err(PublishError::Network(format!("sending: {e}"))),
            Err(_) => return Err(PublishError::Stalled),
        }
    }
}

/// Reads and drops what the server sends while the stream flows (its
/// receiver reports, answers to keep-alives); returns why reading ended.
async fn drain(mut read: ReadHalf<Box<dyn Stream>>, mut buf: BytesMut) -> PublishError {
    loop {
        match next_message(&mut read, &mut buf).await {
            Ok(Message::Response(r)) if r.status() != StatusCode::Ok => {
                tracing::debug!(status = %u16::from(r.status()), "the RTSP server answered a keep-alive with an error");
            }
            Ok(_) => {}
            Err(e) => return e,
        }
    }
}

/// The next whole message from the server.
async fn next_message(
    read: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
) -> Result<Message<Vec<u8>>, PublishError> {
    loop {
        match Message::<Vec<u8>>::parse(&buf[..]) {
            Ok((message, used)) => {
                let _ = buf.split_to(used);
                return Ok(message);
            }
            Err(rtsp_types::ParseError::Incomplete(_)) if buf.len() < MAX_MESSAGE => {}
            Err(_) => {
                return Err(PublishError::Refused(
                    "the server sent something that is not RTSP".into(),
                ));
            }
        }
        buf.reserve(4096);
        match read.read_buf(buf).await {
            Ok(0) => {
                return Err(PublishError::Network(
                    "the server closed the connection".into(),
                ));
            }
            Ok(_) => {}
            Err(e) => return Err(PublishError::Network(format!("receiving: {e}"))),
        }
    }
}

/// The connection while requests are made.
struct Client {
    read: ReadHalf<Box<dyn Stream>>,
    write: WriteHalf<Box<dyn Stream>>,
    buf: BytesMut,
    cseq: u32,
    session: Option<String>,
    auth: Option<http_auth::PasswordClient>,
    credentials: Option<(String, String)>,
    /// The URL without credentials, as requests name it.
    url: String,
}

impl Client {
    /// Sends a request and returns its 200 answer, answering one
    /// authentication challenge on the way.
    async fn request(
        &mut self,
        method: Method,
        uri: &str,
        extra: &[(headers::HeaderName, String)],
        body: Vec<u8>,
    ) -> Result<Response<Vec<u8>>, PublishError> {
        let name: &str = (&method).into();
        let parsed = uri
            .parse::<rtsp_types::Url>()
            .map_err(|e| PublishError::Refused(format!("{uri}: {e}")))?;
        for _ in 0..2 {
            self.cseq += 1;
            let mut request = Request::builder(method.clone(), Version::V1_0)
                .request_uri(parsed.clone())
                .header(headers::CSEQ, self.cseq.to_string());
            if let Some(session) = &self.session {
                request = request.header(headers::SESSION, session.clone());
            }
            for (header, value) in extra {
                request = request.header(header.clone(), value.clone());
            }
            if let (Some(auth), Some((user, password))) = (&mut self.auth, &self.credentials) {
                let answer = auth
                    .respond(&http_auth::PasswordParams {
                        username: user,
                        password,
                        uri,
                        method: name,
                        body: Some(&body),
                    })
                    .map_err(PublishError::Refused)?;
                request = request.header(headers::AUTHORIZATION, answer);
            }
            let mut out = Vec::new();
            request
                .build(body.clone())
                .write(&mut out)
                .map_err(|e| PublishError::Network(e.to_string()))?;
            let response = tokio::time::timeout(ANSWER_TIMEOUT, async {
                self.write
                    .write_all(&out)
                    .await
                    .map_err(|e| PublishError::Network(format!("sending {name}: {e}")))?;
                loop {
                    if let Message::Response(r) =
                        next_message(&mut self.read, &mut self.buf).await?
                    {
                        return Ok(r);
                    }
                }
            })
            .await
            .map_err(|_| {
                PublishError::Network(format!("no answer to {name} within {ANSWER_TIMEOUT:?}"))
            })??;
            match response.status() {
                StatusCode::Ok => {
                    if let Some(session) = response.header(&headers::SESSION) {
                        let id = session.as_str().split(';').next().unwrap_or_default();
                        self.session = Some(id.trim().to_string());
                    }
                    return Ok(response);
                }
                StatusCode::Unauthorized if self.auth.is_none() => {
                    if self.credentials.is_none() {
                        return Err(PublishError::Refused(format!(
                            "{name}: the server wants a user and password (put them in the URL: rtsp://user:password@host/path)"
                        )));
                    }
                    let challenge = response
                        .header(&headers::WWW_AUTHENTICATE)
                        .map(|v| v.as_str().to_string())
                        .unwrap_or_default();
                    self.auth = Some(
                        http_auth::PasswordClient::try_from(challenge.as_str()).map_err(|e| {
                            PublishError::Refused(format!(
                                "{name}: cannot answer the server's challenge: {e}"
                            ))
                        })?,
                    );
                }
                StatusCode::Unauthorized => {
                    return Err(PublishError::Refused(format!(
                        "{name}: the server refused the user and password"
                    )));
                }
                status => {
                    return Err(PublishError::Refused(format!(
                        "{name} answered {} {}",
                        u16::from(status),
                        response.reason_phrase()
                    )));
                }
            }
        }
        Err(PublishError::Refused(format!(
            "{name}: authentication failed"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_percent_decoded_from_the_url() {
        let url = url::Url::parse("rtsp://cam%40home:p%3Ass@relay/cam").unwrap();
        assert_eq!(
            credentials(&url),
            Some(("cam@home".to_string(), "p:ss".to_string()))
        );
        assert_eq!(
            credentials(&url::Url::parse("rtsp://relay/cam").unwrap()),
            None
        );
    }
}
