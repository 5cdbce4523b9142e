//! Loopback integration tests: the real daemon against real RTSP clients.

mod attack;
#[cfg(feature = "audio")]
mod audio;
mod auth;
mod browser;
mod clients;
mod clock;
mod daemon;
mod hostile;
mod http;
mod journal;
mod lan;
mod lifecycle;
mod onvif;
mod overlay;
mod publish;
mod raw;
mod retina_client;
mod substream;
mod tls;

use std::time::Duration;

use clients::Mode;
use daemon::{Daemon, Source};

/// Frames each decoding client checks: four seconds of video.
const FRAMES: usize = 120;

#[test]
fn ffprobe_sees_720p30_h264_over_udp_and_tcp() {
    let d = Daemon::start(Source::TestPattern);
    for transport in ["udp", "tcp"] {
        let (out, err) = clients::ffprobe(&d.url(), transport);
        assert_eq!(err, "", "ffprobe over {transport}");
        assert!(out.contains("codec_name=h264"), "{out}");
        assert!(out.contains("width=1280|height=720"), "{out}");
        assert!(out.contains("r_frame_rate=30/1"), "{out}");
    }
}

/// The test pattern at 640x360: its software encode is a quarter of
/// 720p's, so it keeps real time on a busy 2-core machine and what is
/// checked is the daemon's delivery (every picture, evenly paced), not how
/// fast the CPU encodes. Not run under qemu-user (ci/cross skips it):
/// software encoding in emulation is not real time.
#[test]
fn ffmpeg_decodes_the_test_pattern_over_udp_and_tcp() {
    let d = Daemon::start_with(
        "127.0.0.1",
        Source::TestPattern,
        "[video]\nwidth = 640\nheight = 360",
    );
    for transport in ["udp", "tcp"] {
        clients::ffmpeg(&d.url(), transport, FRAMES, Mode::Decode).assert_clean_at(
            &format!("ffmpeg/{transport}"),
            FRAMES,
            (640, 360),
        );
    }
}

#[test]
fn ffmpeg_copy_records_a_clean_stream() {
    let d = Daemon::start(Source::File);
    for transport in ["udp", "tcp"] {
        clients::ffmpeg_copy(&d.url(), transport, 60)
            .assert_clean(&format!("ffmpeg -c copy/{transport}"), 60);
    }
}

#[test]
fn gstreamer_decodes_over_udp_and_tcp() {
    let d = Daemon::start(Source::File);
    for transport in ["udp", "tcp"] {
        clients::gstreamer(&d.url(), transport, 90, Mode::Decode)
            .assert_clean(&format!("gstreamer/{transport}"), 90);
    }
}

#[test]
fn retina_decodes_over_tcp_and_udp() {
    let d = Daemon::start(Source::File);
    for transport in ["tcp", "udp"] {
        let run = retina_client::play(&d.url(), transport, 90, Mode::Decode);
        run.decoded.assert_clean(&format!("retina/{transport}"), 90);
    }
}

#[test]
fn late_joiner_decodes_within_half_a_second() {
    let d = Daemon::start(Source::TestPattern);
    // The stream has been running for a while: the joiner must not wait
    // for the next regular key frame.
    std::thread::sleep(Duration::from_millis(1500));
    for transport in ["tcp", "udp"] {
        let run = retina_client::play(&d.url(), transport, 3, Mode::Decode);
        assert_eq!(run.decoded.errors, "");
        assert!(
            run.first_frame_after_play < Duration::from_millis(500),
            "{transport}: first frame {:?} after PLAY",
            run.first_frame_after_play
        );
    }
}

#[test]
fn eight_clients_over_mixed_transports_all_get_full_rate() {
    let d = Daemon::start(Source::File);
    let url = d.url();
    let runs: Vec<_> = (0..8)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                let r = Mode::Receive;
                let (name, received) = match i % 4 {
                    0 => ("ffmpeg/udp", clients::ffmpeg(&url, "udp", FRAMES, r)),
                    1 => ("ffmpeg/tcp", clients::ffmpeg(&url, "tcp", FRAMES, r)),
                    2 => ("gstreamer/udp", clients::gstreamer(&url, "udp", FRAMES, r)),
                    _ => (
                        "retina/tcp",
                        retina_client::play(&url, "tcp", FRAMES, r).decoded,
                    ),
                };
                (format!("client {i} {name}"), received)
            })
        })
        .collect();
    for r in runs {
        let (name, received) = r.join().unwrap();
        received.assert_clean(&name, FRAMES);
    }
}

#[test]
fn ipv6_loopback_works_like_ipv4() {
    let d = Daemon::start_with("::1", Source::File, "");
    assert!(d.url().starts_with("rtsp://[::1]:"));
    for transport in ["udp", "tcp"] {
        clients::ffmpeg(&d.url(), transport, 60, Mode::Receive)
            .assert_clean(&format!("[::1] {transport}"), 60);
    }
}
