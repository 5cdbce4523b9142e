//! What the log says about sessions: exactly one end line per session,
//! with the same fields over UDP and TCP, the reason it ended, and counts
//! that match what the client received.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::daemon::{Daemon, Source};
use crate::raw::{self, Frame, RawClient};

/// The fields every session end line carries.
const END_FIELDS: [&str; 8] = [
    "client",
    "session",
    "transport",
    "duration_s",
    "packets",
    "bytes",
    "lag_drops",
    "reason",
];

/// The key=value fields of the log's "session ended" lines for `session`.
fn end_lines(d: &Daemon, session: &str) -> Vec<HashMap<String, String>> {
    d.log()
        .lines()
        .filter(|l| l.contains("session ended") && l.contains(&format!("session={session}")))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
                .collect()
        })
        .collect()
}

/// Waits (at most 5 s) for the one end line of `session`, and checks that
/// there is exactly one and that it has every field.
fn the_end_line(d: &Daemon, session: &str) -> HashMap<String, String> {
    let until = Instant::now() + Duration::from_secs(5);
    while end_lines(d, session).is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    // A second line for the same end would come right after the first.
    std::thread::sleep(Duration::from_millis(300));
    let lines = end_lines(d, session);
    assert_eq!(lines.len(), 1, "end lines of {session}:\n{}", d.log());
    let line = lines.into_iter().next().unwrap();
    for field in END_FIELDS {
        assert!(line.contains_key(field), "no {field} in {line:?}");
    }
    assert_eq!(line["client"], "127.0.0.1");
    line
}

/// Plays `c`'s session over TCP for about a second; returns the RTP packets
/// it received.
fn play_a_while(c: &mut RawClient, session: &str) -> u64 {
    assert_eq!(c.play(session).status, 200);
    let mut packets = 0;
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        if let Some(Frame::Interleaved(0, _)) = c.read_frame() {
            packets += 1;
        }
    }
    packets
}

#[test]
fn each_end_of_a_tcp_session_is_one_line_with_its_reason() {
    let d = Daemon::start(Source::File);
    let tcp = "RTP/AVP/TCP;unicast;interleaved=0-1";

    // TEARDOWN, then the client closes at once (as VLC does).
    let mut c = RawClient::connect(&d);
    let session = c.setup(tcp).session();
    let mut received = play_a_while(&mut c, &session);
    let url = c.url.clone();
    c.send(format!("TEARDOWN {url} RTSP/1.0\r\nCSeq: 99\r\nSession: {session}\r\n\r\n").as_bytes());
    loop {
        match c.read_frame() {
            Some(Frame::Interleaved(0, _)) => received += 1,
            Some(Frame::Interleaved(..)) => {}
            Some(Frame::Response(r)) => {
                assert_eq!(r.status, 200);
                break;
            }
            None => panic!("no TEARDOWN reply"),
        }
    }
    drop(c);
    let line = the_end_line(&d, &session);
    assert_eq!(line["reason"], "teardown");
    assert_eq!(line["transport"], "tcp");
    let logged: u64 = line["packets"].parse().unwrap();
    assert_eq!(logged, received, "packets logged and received");

    // Closed without TEARDOWN.
    let mut c = RawClient::connect(&d);
    let session = c.setup(tcp).session();
    play_a_while(&mut c, &session);
    c.stream.shutdown(std::net::Shutdown::Both).unwrap();
    drop(c);
    assert_eq!(the_end_line(&d, &session)["reason"], "client-closed");

    // Killed: unread media in its receive buffer makes the kernel reset
    // the connection, as it does for a client that was SIGKILLed.
    let mut c = RawClient::connect(&d);
    let session = c.setup(tcp).session();
    assert_eq!(c.play(&session).status, 200);
    std::thread::sleep(Duration::from_millis(500));
    socket2::SockRef::from(&c.stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(c);
    assert_eq!(the_end_line(&d, &session)["reason"], "client-reset");
}

#[test]
fn udp_and_tcp_sessions_end_with_the_same_fields_when_the_daemon_stops() {
    let mut d = Daemon::start(Source::File);
    let (rtp, _rtcp) = raw::udp_pair("127.0.0.1");
    let mut udp = RawClient::connect(&d);
    let udp_session = udp.setup(&raw::udp_transport(&rtp)).session();
    assert_eq!(udp.play(&udp_session).status, 200);
    let mut tcp = RawClient::connect(&d);
    let tcp_session = tcp.setup("RTP/AVP/TCP;unicast;interleaved=0-1").session();
    assert_eq!(tcp.play(&tcp_session).status, 200);
    // UDP TEARDOWN on its own connection, then a fresh UDP session that
    // the stop ends.
    let mut buf = [0u8; 2048];
    rtp.recv(&mut buf).expect("UDP media flows");
    let url = udp.url.clone();
    let r = udp.request("TEARDOWN", &url, &[("Session", &udp_session)]);
    assert_eq!(r.status, 200);
    let udp_line = the_end_line(&d, &udp_session);
    assert_eq!(
        (udp_line["reason"].as_str(), udp_line["transport"].as_str()),
        ("teardown", "udp")
    );
    assert!(udp_line["packets"].parse::<u64>().unwrap() > 0);
    let (rtp2, _rtcp2) = raw::udp_pair("127.0.0.1");
    let udp_session = udp.setup(&raw::udp_transport(&rtp2)).session();
    assert_eq!(udp.play(&udp_session).status, 200);

    let (status, _) = d.terminate(Duration::from_secs(3)).expect("daemon exits");
    assert!(status.success());
    for (session, transport) in [(udp_session, "udp"), (tcp_session, "tcp")] {
        let line = the_end_line(&d, &session);
        assert_eq!(line["reason"], "server-stopping", "{transport}");
        assert_eq!(line["transport"], transport);
        let mut keys: Vec<&String> = line.keys().collect();
        keys.sort();
        let mut udp_keys: Vec<&String> = udp_line.keys().collect();
        udp_keys.sort();
        assert_eq!(keys, udp_keys, "the same fields over UDP and TCP");
    }
}
