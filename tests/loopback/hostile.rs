//! Clients that misbehave: malformed requests, clients that vanish or stop
//! reading. The daemon answers or drops them and nobody else notices.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::clients::{self, Mode};
use crate::daemon::{Daemon, Source};
use crate::raw::{self, RawClient};

/// Sends `request` on a fresh connection; returns the status of the reply
/// (0 if the connection closed without one).
fn status_of(d: &Daemon, request: &[u8]) -> u16 {
    let mut c = RawClient::connect(d);
    c.send(request);
    match c.read_frame() {
        Some(raw::Frame::Response(r)) => r.status,
        Some(raw::Frame::Interleaved(..)) => panic!("media for a bad request"),
        None => 0,
    }
}

#[test]
fn malformed_requests_get_4xx_and_never_stall_other_clients() {
    let d = Daemon::start(Source::File);
    let url = d.url();
    let watcher = {
        let url = url.clone();
        std::thread::spawn(move || clients::ffmpeg(&url, "tcp", 240, Mode::Receive))
    };
    // A client that sends half a request and then nothing holds no one up.
    let mut slow = RawClient::connect(&d);
    slow.send(format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nAcc").as_bytes());

    let other = url.replace("/stream", "/other");
    let huge = format!(
        "OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("not RTSP at all", b"HELLO THERE\r\n\r\n".to_vec(), 400),
        ("binary junk", vec![0xff, 0x00, 0x13, 0x37, b'\r', b'\n', b'\r', b'\n'], 400),
        ("no CSeq", format!("OPTIONS {url} RTSP/1.0\r\n\r\n").into_bytes(), 400),
        (
            "RTSP/2.0",
            format!("OPTIONS {url} RTSP/2.0\r\nCSeq: 1\r\n\r\n").into_bytes(),
            505,
        ),
        (
            "unknown path",
            format!("DESCRIBE {other} RTSP/1.0\r\nCSeq: 1\r\n\r\n").into_bytes(),
            404,
        ),
        (
            "unsupported Require",
            format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\nRequire: funky-feature\r\n\r\n")
                .into_bytes(),
            551,
        ),
        (
            "PLAY without a session",
            format!("PLAY {url} RTSP/1.0\r\nCSeq: 1\r\nSession: 12345678\r\n\r\n").into_bytes(),
            454,
        ),
        (
            "SETUP with multicast only",
            format!("SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;multicast;port=5000-5001\r\n\r\n").into_bytes(),
            461,
        ),
        (
            "SETUP with an unknown profile",
            format!("SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/SAVPF;unicast;client_port=5000-5001\r\n\r\n").into_bytes(),
            461,
        ),
        (
            "SETUP sending media to another host",
            format!("SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;destination=192.0.2.7;client_port=5000-5001\r\n\r\n").into_bytes(),
            403,
        ),
        (
            "SETUP with a hostile destination",
            format!("SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;destination=\"\\\"\\\\;client_port=5000-5001\r\n\r\n").into_bytes(),
            403,
        ),
        (
            "SETUP without client ports",
            format!("SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast\r\n\r\n").into_bytes(),
            461,
        ),
        (
            "unknown method",
            format!("FROBNICATE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n").into_bytes(),
            501,
        ),
        (
            "body too large",
            format!("SET_PARAMETER {url} RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 99999999\r\n\r\n")
                .into_bytes(),
            413,
        ),
        ("header too large", huge.into_bytes(), 413),
    ];
    for (what, request, expected) in &cases {
        let got = status_of(&d, request);
        assert_eq!(got, *expected, "{what}");
    }
    // Nothing was ever sent to the foreign destination: the daemon logged
    // the refusal and still serves.
    let mut c = RawClient::connect(&d);
    let options = c.request("OPTIONS", &url, &[]);
    assert_eq!(options.status, 200);
    assert!(options.header("public").unwrap().contains("PLAY"));

    let seen = watcher.join().unwrap();
    seen.assert_clean("ffmpeg/tcp next to bad clients", 240);
    drop(slow);
}

#[test]
fn a_connection_flood_makes_room_for_newcomers_and_never_closes_a_session() {
    // 144 open files allow 16 connections; max_clients = 2 sessions.
    let d = Daemon::start_limited(Source::File, "max_clients = 2", 144);
    assert!(d.log().contains("up to 16 connections"), "{}", d.log());
    let mut players = Vec::new();
    for i in 0..3 {
        let mut c = RawClient::connect(&d);
        let setup = c.setup("RTP/AVP/TCP;unicast;interleaved=0-1");
        if i < 2 {
            assert_eq!(setup.status, 200, "{setup:?}");
            assert_eq!(c.play(&setup.session()).status, 200);
            players.push(c);
        } else {
            assert_eq!(setup.status, 453, "at most max_clients sessions: {setup:?}");
        }
    }
    let mut held: Vec<TcpStream> = Vec::new();
    for _ in 0..40 {
        let mut s = TcpStream::connect(d.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let url = d.url();
        s.write_all(format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n").as_bytes())
            .unwrap();
        let mut reply = [0u8; 512];
        let n = std::io::Read::read(&mut s, &mut reply).unwrap_or(0);
        let reply = String::from_utf8_lossy(&reply[..n]).to_string();
        assert!(
            reply.starts_with("RTSP/1.0 200"),
            "every newcomer gets in: {reply:?}"
        );
        held.push(s);
    }
    // The oldest connections without a session were closed to make room.
    let mut open = 0;
    for s in &mut held {
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        if let Err(e) = std::io::Read::read(s, &mut [0u8; 64]) {
            open += usize::from(matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ));
        }
    }
    assert!(open <= 16 - 2, "{open} of the flood still open");
    assert!(open >= 10, "the newest stay: {open}");
    // The players were never closed for them and still get media.
    for p in &mut players {
        for _ in 0..30 {
            match p.read_frame() {
                Some(raw::Frame::Interleaved(..)) => {}
                other => panic!("player lost its media: {other:?}"),
            }
        }
    }
}

#[test]
fn vanished_udp_client_is_reaped_after_60_s_and_sending_stops() {
    let d = Daemon::start(Source::File);
    let (rtp, rtcp) = raw::udp_pair("127.0.0.1");
    let (live_rtp, live_rtcp) = raw::udp_pair("127.0.0.1");
    let mut c = RawClient::connect(&d);
    let setup = c.setup(&raw::udp_transport(&rtp));
    assert_eq!(setup.status, 200, "{setup:?}");
    assert_eq!(c.play(&setup.session()).status, 200);
    // The session was last touched by PLAY, at most a second before its
    // reply (PLAY waits for the next key frame).
    let played_at = Instant::now();
    let mut live = RawClient::connect(&d);
    let live_setup = live.setup(&raw::udp_transport(&live_rtp));
    assert_eq!(live.play(&live_setup.session()).status, 200);
    let mut buf = [0u8; 2048];
    rtp.recv(&mut buf).expect("RTP arrives");
    // The vanishing client closes its connection and never speaks again;
    // the live one closes its connection too but keeps sending RTCP.
    drop(c);
    drop(live);
    let server_rtcp = {
        let (_, from) = live_rtcp.recv_from(&mut buf).expect("a sender report");
        from
    };
    rtp.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut last_packet = Instant::now();
    let mut last_rr = Instant::now();
    while played_at.elapsed() < Duration::from_secs(70) {
        if rtp.recv(&mut buf).is_ok() {
            last_packet = Instant::now();
        }
        if last_rr.elapsed() > Duration::from_secs(5) {
            live_rtcp
                .send_to(&raw::receiver_report(0x1234_5678), server_rtcp)
                .unwrap();
            last_rr = Instant::now();
        }
    }
    let sent_for = last_packet.duration_since(played_at);
    assert!(
        (Duration::from_millis(58_500)..Duration::from_secs(62)).contains(&sent_for),
        "media went on for {sent_for:?} after the client's last word"
    );
    assert!(d.log().contains("reason=timeout"), "{}", d.log());
    // The client that kept reporting is still served.
    live_rtp
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    assert!(live_rtp.recv(&mut buf).is_ok(), "live client still served");
    drop(rtcp);
}

#[test]
fn tcp_client_that_stops_reading_is_dropped_while_others_keep_full_rate() {
    let d = Daemon::start(Source::File);
    let url = d.url();
    let watcher = {
        let url = url.clone();
        std::thread::spawn(move || clients::ffmpeg(&url, "tcp", 900, Mode::Receive))
    };
    // A tiny receive window so the stall shows quickly.
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&d.addr().into()).unwrap();
    let mut stalled = RawClient::from_stream(&d, socket.into());
    let setup = stalled.setup("RTP/AVP/TCP;unicast;interleaved=0-1");
    assert_eq!(setup.status, 200);
    let play = stalled.play(&setup.session());
    assert_eq!(play.status, 200);
    let started = Instant::now();
    // ... and never reads again.
    let dropped = d.wait_for_log("reason=lagging", Duration::from_secs(40));
    assert!(
        dropped.is_some(),
        "stalled client not dropped:\n{}",
        d.log()
    );
    let took = started.elapsed();
    let seen = watcher.join().unwrap();
    seen.assert_clean("ffmpeg/tcp next to a stalled client", 900);
    assert!(took < Duration::from_secs(30), "dropped after {took:?}");
}
