//! `[substream]`: a second, smaller stream beside the main one, from the
//! same pictures.

use std::time::{Duration, Instant};

use crate::clients::{self, Mode};
use crate::daemon::{Daemon, Source};
use crate::raw::{Frame, RawClient};

/// The test pattern at 640x360@30 with a 320x180@10 substream: both
/// software encodes together are about a third of one 720p encode.
fn daemon() -> Daemon {
    daemon_with("")
}

/// The same, with `video` added to its `[video]` table.
fn daemon_with(video: &str) -> Daemon {
    Daemon::start_with(
        "127.0.0.1",
        Source::TestPattern,
        &format!(
            "[video]\nwidth = 640\nheight = 360\n{video}\n[substream]\nwidth = 320\nheight = 180\nframerate = 10"
        ),
    )
}

#[test]
fn both_streams_decode_at_their_sizes_and_rates_at_once() {
    let d = daemon();
    for transport in ["udp", "tcp"] {
        let main = {
            let url = d.url();
            std::thread::spawn(move || clients::ffmpeg(&url, transport, 120, Mode::Decode))
        };
        let sub = clients::ffmpeg(&d.url_of("/sub"), transport, 60, Mode::Decode);
        sub.assert_clean_rate(&format!("ffmpeg/{transport} /sub"), 60, (320, 180), 10);
        main.join().unwrap().assert_clean_rate(
            &format!("ffmpeg/{transport} /stream"),
            120,
            (640, 360),
            30,
        );
    }
    clients::gstreamer(&d.url_of("/sub"), "tcp", 20, Mode::Decode).assert_complete(
        "gstreamer/tcp /sub",
        20,
        (320, 180),
    );
    // Another path is still no stream.
    let (_, err) = clients::ffprobe(&d.url_of("/sub2"), "tcp");
    assert!(err.contains("404"), "{err}");
    // The status page and the metrics show it.
    let (_, _, page) = crate::http::curl(&d.http_url("/"), &[]);
    assert!(page.contains(&format!(":{}/sub\"", d.port)), "{page}");
    let (_, _, metrics) = crate::http::curl(&d.http_url("/metrics"), &[]);
    crate::http::promtool_check(&metrics);
    let frames: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("streamcam_substream_frames_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(frames >= 100, "{frames} substream frames");
}

/// A client that stops reading (a tiny receive window, so the stall shows
/// quickly) after PLAY on the stream at `path`.
fn stalled_client(d: &Daemon, path: &str) -> RawClient {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&d.addr().into()).unwrap();
    let mut client = RawClient::from_stream(d, socket.into());
    client.url = d.url_of(path);
    let setup = client.setup("RTP/AVP/TCP;unicast;interleaved=0-1");
    assert_eq!(setup.status, 200, "{path}");
    assert_eq!(client.play(&setup.session()).status, 200, "{path}");
    client
}

#[test]
fn a_stalled_client_of_one_stream_never_slows_the_other() {
    // Every picture a key frame, at a high bit rate: the stalled
    // main-stream client's buffers fill within seconds.
    let d = daemon_with("bitrate = 8000000\nkeyframe_interval = 1");
    let viewer = |path: &'static str, frames: usize| {
        let url = d.url_of(path);
        std::thread::spawn(move || clients::ffmpeg(&url, "tcp", frames, Mode::Receive))
    };
    // 20 s of each stream, watched while a client of each stops reading.
    let main = viewer("/stream", 600);
    let sub = viewer("/sub", 200);
    let _stalled = [stalled_client(&d, "/stream"), stalled_client(&d, "/sub")];
    let dropped = d.wait_for_log("reason=lagging", Duration::from_secs(40));
    assert!(
        dropped.is_some(),
        "stalled client not dropped:\n{}",
        d.log()
    );
    assert!(
        !sub.is_finished(),
        "the main stream's stalled client was dropped only after the substream's viewer ended"
    );
    main.join().unwrap().assert_clean_rate(
        "ffmpeg/tcp /stream next to stalled clients",
        600,
        (640, 360),
        30,
    );
    sub.join().unwrap().assert_clean_rate(
        "ffmpeg/tcp /sub next to stalled clients",
        200,
        (320, 180),
        10,
    );
}

/// The wall-clock capture times (seconds since 1900) of the pictures the
/// stream at `path` sends in `window`, over TCP: each picture's RTP time
/// mapped through the stream's first sender report.
fn capture_times(d: &Daemon, path: &str, window: Duration) -> Vec<f64> {
    let mut client = RawClient::connect(d);
    client.url = d.url_of(path);
    let setup = client.setup("RTP/AVP/TCP;unicast;interleaved=0-1");
    assert_eq!(setup.status, 200, "{path}");
    assert_eq!(client.play(&setup.session()).status, 200, "{path}");
    let started = Instant::now();
    let mut rtp_times = Vec::new();
    let mut report = None;
    while started.elapsed() < window {
        match client.read_frame() {
            Some(Frame::Interleaved(0, p)) if p.len() >= 12 => {
                let rtp = u32::from_be_bytes(p[4..8].try_into().unwrap());
                if rtp_times.last() != Some(&rtp) {
                    rtp_times.push(rtp);
                }
            }
            // A sender report: NTP time, then the RTP time of that instant.
            Some(Frame::Interleaved(1, p)) if p.len() >= 20 && p[1] == 200 && report.is_none() => {
                let ntp = u64::from_be_bytes(p[8..16].try_into().unwrap());
                let rtp = u32::from_be_bytes(p[16..20].try_into().unwrap());
                report = Some((ntp as f64 / 4_294_967_296.0, rtp));
            }
            Some(_) => {}
            None => break,
        }
    }
    let (ntp, at) = report.unwrap_or_else(|| panic!("{path}: no sender report"));
    rtp_times
        .iter()
        .map(|&rtp| ntp + f64::from(rtp.wrapping_sub(at) as i32) / 90_000.0)
        .collect()
}

#[test]
fn both_streams_share_one_capture_clock() {
    // Each substream picture is a main-stream picture scaled: with one
    // capture clock, its capture time read through the substream's sender
    // report is one the main stream's report gives too.
    let d = daemon();
    let (main, sub) = std::thread::scope(|s| {
        let main = s.spawn(|| capture_times(&d, "/stream", Duration::from_secs(4)));
        let sub = capture_times(&d, "/sub", Duration::from_secs(4));
        (main.join().unwrap(), sub)
    });
    assert!(
        main.len() >= 90 && sub.len() >= 30,
        "{} and {} pictures",
        main.len(),
        sub.len()
    );
    let mut matched = 0;
    for t in &sub {
        if main.first().is_some_and(|f| t < f) || main.last().is_some_and(|l| t > l) {
            continue;
        }
        let nearest = main.iter().map(|m| (m - t).abs()).fold(f64::MAX, f64::min);
        assert!(
            nearest < 0.000_5,
            "a substream picture {:.1} ms from any main-stream one",
            nearest * 1000.0
        );
        matched += 1;
    }
    assert!(
        matched >= 25,
        "only {matched} substream pictures overlap the main stream's"
    );
}

#[test]
fn browsers_get_the_substream_by_websocket() {
    let d = daemon();
    let out = tempfile::NamedTempFile::new().unwrap();
    // curl does the upgrade and writes the WebSocket's frames as they come:
    // the first is the hello with the picture size.
    let status = std::process::Command::new("curl")
        .args(["-s", "--http1.1", "--max-time", "3", "-o"])
        .arg(out.path())
        .args([
            "-H",
            "Connection: Upgrade",
            "-H",
            "Upgrade: websocket",
            "-H",
            "Sec-WebSocket-Version: 13",
            "-H",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        ])
        .arg(d.http_url("/substream.ws"))
        .status()
        .unwrap();
    // curl ends at --max-time (28) with the stream still flowing.
    assert_eq!(status.code(), Some(28), "curl: {status}");
    let got = std::fs::read(out.path()).unwrap();
    let text = String::from_utf8_lossy(&got[..got.len().min(200)]);
    assert!(text.contains("\"width\":320,\"height\":180"), "{text}");
    assert!(
        got.len() > 10_000,
        "only {} bytes of video in 3 s",
        got.len()
    );
}

#[test]
fn the_substream_asks_for_the_password_like_the_main_stream() {
    let d = Daemon::start_with(
        "127.0.0.1",
        Source::TestPattern,
        &format!(
            "[video]\nwidth = 640\nheight = 360\n[substream]\nwidth = 320\nheight = 180\n{}",
            crate::auth::users(false)
        ),
    );
    let (_, err) = clients::ffprobe(&d.url_of("/sub"), "tcp");
    assert!(err.contains("401"), "{err}");
    let url = d.url_of("/sub").replace("rtsp://", "rtsp://viewer:secret@");
    let (out, err) = clients::ffprobe(&url, "tcp");
    assert_eq!(err, "", "ffprobe with the password");
    assert!(out.contains("width=320|height=180"), "{out}");
}
