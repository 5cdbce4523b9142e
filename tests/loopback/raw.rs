//! A bare RTSP client over a plain socket, for what real clients never do:
//! malformed requests, vanishing, not reading. It speaks just enough RTSP to
//! drive the daemon and reads its replies byte for byte.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use crate::daemon::Daemon;

/// A parsed RTSP response.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
}

impl Response {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The session id of a SETUP reply.
    pub fn session(&self) -> String {
        let s = self.header("session").expect("Session header");
        s.split(';').next().unwrap().trim().to_string()
    }
}

/// What came off the connection.
#[derive(Debug)]
pub enum Frame {
    /// An RTSP response.
    Response(Response),
    /// An interleaved packet: channel and payload.
    Interleaved(u8, Vec<u8>),
}

/// A plain TCP connection to the daemon.
pub struct RawClient {
    /// The socket.
    pub stream: TcpStream,
    buf: Vec<u8>,
    cseq: u32,
    /// Sequence number of the last RTP packet seen on channel 0.
    pub last_rtp_seq: Option<u16>,
    /// The stream's URL.
    pub url: String,
}

impl RawClient {
    /// Connects to `d`.
    pub fn connect(d: &Daemon) -> RawClient {
        Self::from_stream(d, TcpStream::connect(d.addr()).expect("connect"))
    }

    /// Wraps an already connected socket.
    pub fn from_stream(d: &Daemon, stream: TcpStream) -> RawClient {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        RawClient {
            stream,
            buf: Vec::new(),
            cseq: 0,
            last_rtp_seq: None,
            url: d.url(),
        }
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Sends a request (CSeq added) and returns the response, skipping
    /// interleaved packets.
    pub fn request(&mut self, method: &str, url: &str, headers: &[(&str, &str)]) -> Response {
        self.cseq += 1;
        let mut req = format!("{method} {url} RTSP/1.0\r\nCSeq: {}\r\n", self.cseq);
        for (name, value) in headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        req.push_str("User-Agent: streamcam-tests raw\r\n\r\n");
        self.send(req.as_bytes());
        self.response()
    }

    /// Reads until a response, skipping interleaved packets.
    pub fn response(&mut self) -> Response {
        loop {
            match self.read_frame() {
                Some(Frame::Response(r)) => return r,
                Some(Frame::Interleaved(..)) => continue,
                None => panic!("connection closed while waiting for a response"),
            }
        }
    }

    /// Reads the next response or interleaved packet; `None` at EOF.
    pub fn read_frame(&mut self) -> Option<Frame> {
        self.read_until(false)
    }

    /// Like [`RawClient::read_frame`], but `None` also when the read
    /// timeout passes with nothing complete.
    pub fn read_frame_or_timeout(&mut self) -> Option<Frame> {
        self.read_until(true)
    }

    fn read_until(&mut self, timeout_ends: bool) -> Option<Frame> {
        use std::io::ErrorKind::{ConnectionReset, TimedOut, WouldBlock};
        loop {
            if let Some(frame) = self.take_frame() {
                return Some(frame);
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ConnectionReset => return None,
                Err(e) if timeout_ends && matches!(e.kind(), WouldBlock | TimedOut) => return None,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    fn take_frame(&mut self) -> Option<Frame> {
        if self.buf.first() == Some(&b'$') {
            if self.buf.len() < 4 {
                return None;
            }
            let len = u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize;
            if self.buf.len() < 4 + len {
                return None;
            }
            let channel = self.buf[1];
            let payload = self.buf[4..4 + len].to_vec();
            if channel == 0 && payload.len() >= 4 {
                self.last_rtp_seq = Some(u16::from_be_bytes([payload[2], payload[3]]));
            }
            self.buf.drain(..4 + len);
            return Some(Frame::Interleaved(channel, payload));
        }
        let end = self.buf.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        assert!(
            status_line.starts_with("RTSP/1.0 "),
            "status line {status_line:?}"
        );
        let status = status_line[9..12].parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse().unwrap());
        if self.buf.len() < end + 4 + len {
            return None;
        }
        let body = String::from_utf8_lossy(&self.buf[end + 4..end + 4 + len]).to_string();
        self.buf.drain(..end + 4 + len);
        Some(Frame::Response(Response {
            status,
            headers,
            body,
        }))
    }

    /// DESCRIBE, then SETUP with `transport`; returns the SETUP reply.
    pub fn setup(&mut self, transport: &str) -> Response {
        let url = self.url.clone();
        let describe = self.request("DESCRIBE", &url, &[("Accept", "application/sdp")]);
        assert_eq!(describe.status, 200, "{describe:?}");
        self.request(
            "SETUP",
            &format!("{url}/trackID=0"),
            &[("Transport", transport)],
        )
    }

    /// PLAY for `session`; returns the reply.
    pub fn play(&mut self, session: &str) -> Response {
        let url = self.url.clone();
        self.request(
            "PLAY",
            &url,
            &[("Session", session), ("Range", "npt=0.000-")],
        )
    }
}

/// An even/odd pair of UDP sockets for RTP and RTCP on `ip`.
pub fn udp_pair(ip: &str) -> (UdpSocket, UdpSocket) {
    for _ in 0..100 {
        let rtp = UdpSocket::bind((ip, 0)).unwrap();
        let port = rtp.local_addr().unwrap().port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind((ip, port + 1)) {
            rtp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            rtcp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            return (rtp, rtcp);
        }
    }
    panic!("no free even/odd UDP port pair");
}

/// The `client_port=` transport for a pair from [`udp_pair`].
pub fn udp_transport(rtp: &UdpSocket) -> String {
    let port = rtp.local_addr().unwrap().port();
    format!("RTP/AVP;unicast;client_port={}-{}", port, port + 1)
}

/// True if the RTCP compound packet `data` contains a BYE (packet type 203).
pub fn has_bye(data: &[u8]) -> bool {
    let mut rest = data;
    while rest.len() >= 4 {
        if rest[1] == 203 {
            return true;
        }
        let len = (u16::from_be_bytes([rest[2], rest[3]]) as usize + 1) * 4;
        rest = &rest[len.min(rest.len())..];
    }
    false
}

/// A minimal RTCP receiver report (no report blocks) from `ssrc`.
pub fn receiver_report(ssrc: u32) -> Vec<u8> {
    let mut rr = vec![0x80, 201, 0, 1];
    rr.extend_from_slice(&ssrc.to_be_bytes());
    rr
}
