//! RTSP on the wire, without I/O: what a client's bytes hold (requests and
//! interleaved frames, RFC 2326 section 10.12), and the bytes of responses,
//! with RFC 2326's reason phrases.

use bytes::{Buf, BytesMut};
use rtsp_types::{Message, Request, Response, StatusCode};

/// Largest request (headers and body) a connection buffers.
pub const MAX_REQUEST: usize = 16 * 1024;

/// One message read off a connection.
#[derive(Debug)]
pub enum Input {
    /// An RTSP request.
    Request(Request<Vec<u8>>),
    /// An interleaved frame: channel and payload (RTCP from the client).
    Data(u8, Vec<u8>),
}

/// Why a client's bytes cannot be read as RTSP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// Not RTSP (answer 400 and close).
    #[error("unparseable request {0:?}")]
    Unparseable(String),
    /// Larger than [`MAX_REQUEST`] (answer 413 and close).
    #[error("request larger than {MAX_REQUEST} bytes")]
    TooLarge,
}

impl FramingError {
    /// The status to answer before closing.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unparseable(_) => StatusCode::BadRequest,
            Self::TooLarge => StatusCode::RequestMessageBodyTooLarge,
        }
    }
}

/// Takes one complete message off the front of `buf`, if there is one.
/// Responses (clients never send them) are skipped.
pub fn next_input(buf: &mut BytesMut) -> Result<Option<Input>, FramingError> {
    loop {
        if buf.is_empty() {
            return Ok(None);
        }
        match Message::<Vec<u8>>::parse(&buf[..]) {
            Ok((msg, consumed)) => {
                buf.advance(consumed);
                match msg {
                    Message::Request(_) if consumed > MAX_REQUEST => {
                        return Err(FramingError::TooLarge);
                    }
                    Message::Request(req) => return Ok(Some(Input::Request(req))),
                    Message::Data(data) => {
                        let channel = data.channel_id();
                        return Ok(Some(Input::Data(channel, data.into_body())));
                    }
                    Message::Response(_) => continue,
                }
            }
            Err(rtsp_types::ParseError::Incomplete(_)) => {
                // Refuse a request that could never fit now, not after
                // waiting for bytes that will not come.
                if buf.len() > MAX_REQUEST
                    || declared_body_len(buf).is_some_and(|n| n > MAX_REQUEST)
                {
                    return Err(FramingError::TooLarge);
                }
                return Ok(None);
            }
            Err(rtsp_types::ParseError::Error) => {
                let first = buf[..].split(|&b| b == b'\n').next().unwrap_or_default();
                let line = String::from_utf8_lossy(&first[..first.len().min(80)])
                    .trim()
                    .to_string();
                return Err(FramingError::Unparseable(line));
            }
        }
    }
}

/// The Content-Length of a request whose header block is complete in `buf`.
fn declared_body_len(buf: &[u8]) -> Option<usize> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })
}

/// Separates the challenges of one `WWW-Authenticate` value that go out as
/// headers of their own (rtsp-types keeps one value per header name).
pub const CHALLENGE_SEPARATOR: char = '\n';

/// Appends the bytes of `resp` (with its Content-Length) to `out`.
pub fn write_response(out: &mut Vec<u8>, mut resp: Response<Vec<u8>>) {
    if !resp.body().is_empty() {
        resp.insert_header(
            rtsp_types::headers::CONTENT_LENGTH,
            resp.body().len().to_string(),
        );
    }
    resp.set_reason_phrase(reason_phrase(resp.status()));
    let name = rtsp_types::headers::WWW_AUTHENTICATE;
    let challenges = resp.header(&name).map(|v| v.as_str().to_string());
    let start = out.len();
    match challenges {
        Some(all) if all.contains(CHALLENGE_SEPARATOR) => {
            resp.remove_header(&name);
            resp.write(out).expect("writing to a Vec cannot fail");
            let lines: String = all
                .split(CHALLENGE_SEPARATOR)
                .map(|c| format!("{name}: {c}\r\n"))
                .collect();
            // After the status line and the other headers, before the blank line.
            let end = out[start..]
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(out.len(), |p| start + p + 2);
            out.splice(end..end, lines.into_bytes());
        }
        _ => resp.write(out).expect("writing to a Vec cannot fail"),
    }
}

/// RFC 2326 section 7.1.1's reason phrase for `status` (rtsp-types' own
/// phrases differ in case and wording, e.g. "Ok").
pub fn reason_phrase(status: StatusCode) -> &'static str {
    match u16::from(status) {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        250 => "Low on Storage Space",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Time-out",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        415 => "Unsupported Media Type",
        451 => "Parameter Not Understood",
        452 => "Conference Not Found",
        453 => "Not Enough Bandwidth",
        454 => "Session Not Found",
        455 => "Method Not Valid in This State",
        456 => "Header Field Not Valid for Resource",
        457 => "Invalid Range",
        458 => "Parameter Is Read-Only",
        459 => "Aggregate operation not allowed",
        460 => "Only aggregate operation allowed",
        461 => "Unsupported transport",
        462 => "Destination unreachable",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Time-out",
        505 => "RTSP Version not supported",
        551 => "Option not supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use rtsp_types::Version;

    use super::*;

    #[test]
    fn requests_and_interleaved_frames_are_split() {
        let mut buf = BytesMut::from(
            &b"$\x01\x00\x03abcOPTIONS rtsp://h/stream RTSP/1.0\r\nCSeq: 1\r\n\r\nRTSP/1.0 200 OK\r\nCSeq: 9\r\n\r\nPLAY"[..],
        );
        match next_input(&mut buf).unwrap() {
            Some(Input::Data(1, d)) => assert_eq!(d, b"abc"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            next_input(&mut buf).unwrap(),
            Some(Input::Request(_))
        ));
        // The stray response is skipped; "PLAY" waits for more bytes.
        assert!(next_input(&mut buf).unwrap().is_none());
        assert_eq!(&buf[..], b"PLAY");
    }

    #[test]
    fn garbage_and_oversized_requests_are_refused() {
        let mut buf = BytesMut::from(&b"\x16\x03\x01 hello\r\n\r\n"[..]);
        let e = next_input(&mut buf).unwrap_err();
        assert_eq!(e.status(), StatusCode::BadRequest);
        let mut buf = BytesMut::from(
            &b"SET_PARAMETER rtsp://h/stream RTSP/1.0\r\nCSeq: 2\r\nContent-Length: 999999\r\n\r\n"
                [..],
        );
        assert_eq!(next_input(&mut buf).unwrap_err(), FramingError::TooLarge);
        let mut buf = BytesMut::from(&vec![b'A'; MAX_REQUEST + 1][..]);
        assert!(next_input(&mut buf).is_err());
        let huge = format!(
            "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX-Padding: {}\r\n\r\n",
            "a".repeat(MAX_REQUEST)
        );
        let mut buf = BytesMut::from(huge.as_bytes());
        assert_eq!(next_input(&mut buf).unwrap_err(), FramingError::TooLarge);
    }

    #[test]
    fn every_status_the_server_sends_has_rfc_2326s_phrase() {
        let sent = [
            (StatusCode::Ok, "OK"),
            (StatusCode::BadRequest, "Bad Request"),
            (StatusCode::Unauthorized, "Unauthorized"),
            (StatusCode::Forbidden, "Forbidden"),
            (StatusCode::NotFound, "Not Found"),
            (StatusCode::MethodNotAllowed, "Method Not Allowed"),
            (
                StatusCode::RequestMessageBodyTooLarge,
                "Request Entity Too Large",
            ),
            (
                StatusCode::ParameterNotUnderstood,
                "Parameter Not Understood",
            ),
            (StatusCode::NotEnoughBandwidth, "Not Enough Bandwidth"),
            (StatusCode::SessionNotFound, "Session Not Found"),
            (
                StatusCode::MethodNotValidInThisState,
                "Method Not Valid in This State",
            ),
            (
                StatusCode::AggregateOperationNotAllowed,
                "Aggregate operation not allowed",
            ),
            (StatusCode::UnsupportedTransport, "Unsupported transport"),
            (StatusCode::InternalServerError, "Internal Server Error"),
            (StatusCode::NotImplemented, "Not Implemented"),
            (StatusCode::ServiceUnavailable, "Service Unavailable"),
            (
                StatusCode::RTSPVersionNotSupported,
                "RTSP Version not supported",
            ),
            (StatusCode::OptionNotSupported, "Option not supported"),
        ];
        for (status, phrase) in sent {
            let mut out = Vec::new();
            write_response(
                &mut out,
                Response::builder(Version::V1_0, status).build(Vec::new()),
            );
            let line = String::from_utf8(out).unwrap();
            let line = line.lines().next().unwrap();
            assert_eq!(line, format!("RTSP/1.0 {} {phrase}", u16::from(status)));
        }
    }
}
