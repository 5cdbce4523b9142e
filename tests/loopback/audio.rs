//! `[audio]`: an Opus track beside the video, from ALSA's `null` capture
//! device (silence, paced to the clock by the daemon), so that no sound
//! card is needed.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::clients::{self, Mode};
use crate::daemon::{Daemon, Source};
use crate::raw::{Frame, RawClient};
use crate::retina_client;

/// The test pattern at 640x360 with sound from `device`.
fn daemon(device: &str) -> Daemon {
    Daemon::start_with(
        "127.0.0.1",
        Source::TestPattern,
        &format!("[video]\nwidth = 640\nheight = 360\n[audio]\ndevice = \"{device}\""),
    )
}

/// Runs `cmd` (bounded by `timeout`), returning whether it succeeded, its
/// stdout and its stderr.
fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("the client runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ffprobe_ffmpeg_and_gstreamer_get_both_tracks() {
    let d = daemon("null");
    for transport in ["tcp", "udp"] {
        let (out, err) = clients::ffprobe(&d.url(), transport);
        assert_eq!(err, "", "ffprobe over {transport}");
        assert!(out.contains("codec_name=h264"), "{out}");
        assert!(out.contains("codec_name=opus"), "{out}");
        // Three seconds of both, decoded: one line per audio frame.
        let (ended, frames, err) = run(Command::new("timeout").args([
            "30",
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-rtsp_transport",
            transport,
            "-i",
            &d.url(),
            "-t",
            "3",
            "-map",
            "0:a",
            "-f",
            "framecrc",
            "-",
        ]));
        assert!(ended, "ffmpeg over {transport}: {err}");
        assert_eq!(err, "", "ffmpeg over {transport}: decoder errors");
        let audio = frames.lines().filter(|l| !l.starts_with('#')).count();
        assert!(
            (120..=170).contains(&audio),
            "{audio} audio frames of 20 ms in 3 s over {transport}"
        );
    }
    // GStreamer: both of rtspsrc's pads linked, 2 s of sound decoded and
    // 30 pictures depayloaded; the pipeline reaches EOS once both sinks
    // have had theirs.
    let (_, out, err) = run(Command::new("timeout").args([
        "30",
        "gst-launch-1.0",
        "rtspsrc",
        &format!("location={}", d.url()),
        "protocols=tcp",
        "name=s",
        "s.",
        "!",
        "rtpopusdepay",
        "!",
        "opusdec",
        "!",
        "fakesink",
        "num-buffers=100",
        "s.",
        "!",
        "rtph264depay",
        "!",
        "fakesink",
        "num-buffers=30",
    ]));
    let all = format!("{out}{err}");
    let (before, after) = all
        .split_once("Got EOS from element \"pipeline0\"")
        .unwrap_or_else(|| panic!("gstreamer never reached EOS: {all}"));
    assert!(!before.contains("ERROR"), "gstreamer: {before}");
    // After EOS, only GStreamer's own shutdown race (see is_teardown_race).
    for error in after.split("ERROR:").skip(1) {
        assert!(
            clients::is_teardown_race(error),
            "gstreamer after EOS: {error}"
        );
    }
}

#[test]
fn a_video_only_client_gets_the_video_alone() {
    let d = daemon("null");
    // retina sets up the video track only.
    let run = retina_client::play(&d.url(), "tcp", 60, Mode::Decode);
    run.decoded
        .assert_complete("retina/tcp, video only", 60, (640, 360));
    let mut client = RawClient::connect(&d);
    let setup = client.setup("RTP/AVP/TCP;unicast;interleaved=0-1");
    assert_eq!(setup.status, 200);
    let play = client.play(&setup.session());
    assert_eq!(play.status, 200);
    let info = play.header("rtp-info").unwrap_or_default();
    assert!(!info.contains("trackID=1"), "{info}");
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        if let Some(Frame::Interleaved(channel, _)) = client.read_frame() {
            assert!(channel <= 1, "a video-only session got channel {channel}");
        }
    }
}

/// Seconds since 1900 (NTP) of an NTP timestamp.
fn ntp_seconds(ntp: u64) -> f64 {
    ntp as f64 / 4_294_967_296.0
}

/// Seconds since 1900 now.
fn now_ntp() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + 2_208_988_800.0
}

#[test]
fn audio_and_video_capture_times_agree() {
    // Both tracks over one connection; each packet's capture time, read
    // through its track's sender report, against when it arrived. Players
    // keep lip sync by those reports: the two tracks' delays must agree.
    let d = daemon("null");
    let mut client = RawClient::connect(&d);
    let setup = client.setup("RTP/AVP/TCP;unicast;interleaved=0-1");
    assert_eq!(setup.status, 200);
    let session = setup.session();
    let audio_url = format!("{}/trackID=1", client.url);
    let audio = client.request(
        "SETUP",
        &audio_url,
        &[
            ("Transport", "RTP/AVP/TCP;unicast;interleaved=2-3"),
            ("Session", &session),
        ],
    );
    assert_eq!(audio.status, 200, "{audio:?}");
    let play = client.play(&session);
    assert_eq!(play.status, 200);
    let info = play.header("rtp-info").unwrap_or_default();
    assert!(
        info.contains("trackID=0") && info.contains("trackID=1"),
        "{info}"
    );
    // (channel of RTP) -> sender report's (NTP seconds, RTP time), and
    // (RTP time, arrival) of each packet.
    let mut reports: [Option<(f64, u32)>; 2] = [None, None];
    let mut packets: [Vec<(u32, f64)>; 2] = [Vec::new(), Vec::new()];
    let rates = [90_000.0, 48_000.0];
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let Some(Frame::Interleaved(channel, p)) = client.read_frame() else {
            continue;
        };
        let track = usize::from(channel / 2);
        assert!(track < 2, "channel {channel}");
        if channel % 2 == 0 && p.len() >= 12 {
            let rtp = u32::from_be_bytes(p[4..8].try_into().unwrap());
            packets[track].push((rtp, now_ntp()));
        } else if p.len() >= 20 && p[1] == 200 && reports[track].is_none() {
            let ntp = u64::from_be_bytes(p[8..16].try_into().unwrap());
            let rtp = u32::from_be_bytes(p[16..20].try_into().unwrap());
            reports[track] = Some((ntp_seconds(ntp), rtp));
        }
    }
    let delay = |track: usize| {
        let (ntp, at) =
            reports[track].unwrap_or_else(|| panic!("no sender report on track {track}"));
        let mut delays: Vec<f64> = packets[track]
            .iter()
            .map(|&(rtp, arrived)| {
                arrived - (ntp + f64::from(rtp.wrapping_sub(at) as i32) / rates[track])
            })
            .collect();
        assert!(delays.len() > 50, "track {track}: {} packets", delays.len());
        delays.sort_by(f64::total_cmp);
        delays[delays.len() / 2]
    };
    let (video, audio) = (delay(0), delay(1));
    assert!(
        (video - audio).abs() < 0.040,
        "capture to arrival: video {:.1} ms, audio {:.1} ms",
        video * 1000.0,
        audio * 1000.0
    );
}

#[test]
fn a_missing_microphone_leaves_the_video_streaming() {
    let d = daemon("hw:CARD=NoSuchCard");
    let seen = clients::ffmpeg(&d.url(), "tcp", 60, Mode::Receive);
    assert_eq!(seen.frames, 60, "video frames: {seen:?}");
    // Reopened with back-off, said once.
    std::thread::sleep(Duration::from_secs(2));
    let log = d.log();
    assert_eq!(
        log.matches("audio: cannot open hw:CARD=NoSuchCard").count(),
        1,
        "{log}"
    );
}
