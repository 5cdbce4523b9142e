//! `[overlay]`: the text is read back from decoded frames by matching them
//! against labels the daemon's own code renders for each nearby second.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use streamcam::config::{Corner, OverlayConfig};
use streamcam::overlay::{Dot, Overlay};

use crate::daemon::{Daemon, Source};

pub(crate) const WIDTH: usize = 640;
pub(crate) const HEIGHT: usize = 360;

/// Decodes `seconds` of the stream at `url` over TCP into 8-bit luma
/// frames of `size` pixels.
pub(crate) fn luma_frames(url: &str, seconds: f64, size: usize) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("frames.gray");
    let result = Command::new("timeout")
        .args(["30", "ffmpeg", "-nostdin", "-loglevel", "error"])
        .args(["-rtsp_transport", "tcp", "-i", url])
        .args([
            "-t",
            &seconds.to_string(),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
        ])
        .arg(&out)
        .output()
        .expect("ffmpeg runs");
    assert!(
        result.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    let bytes = std::fs::read(&out).unwrap();
    assert!(bytes.len() >= size, "no frame decoded");
    bytes.chunks_exact(size).map(<[u8]>::to_vec).collect()
}

/// How well `frame` shows the label for Unix second `secs`: the share of
/// the label's pixels that are bright where it has ink and dark elsewhere.
fn likeness(overlay: &Overlay, frame: &[u8], secs: i64) -> f64 {
    let label = overlay.label_at(secs);
    let (x0, y0) = overlay.origin(&label, WIDTH, HEIGHT);
    let agree = label
        .dots
        .iter()
        .enumerate()
        .filter(|&(i, dot)| {
            let luma = frame[(y0 + i / label.width) * WIDTH + x0 + i % label.width];
            match dot {
                Dot::Ink => luma > 180,
                Dot::Shade => luma < 150,
            }
        })
        .count();
    agree as f64 / label.dots.len() as f64
}

/// The second whose label `frame` shows best, among the `around` ones.
pub(crate) fn read_time(
    overlay: &Overlay,
    frame: &[u8],
    around: std::ops::Range<i64>,
) -> (i64, f64) {
    around
        .map(|secs| (secs, likeness(overlay, frame, secs)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap()
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn the_overlay_shows_the_capture_time_where_it_is_configured() {
    let config = OverlayConfig {
        text: "%H:%M:%S cam".into(),
        position: Corner::BottomRight,
        size: 24,
        timezone: None,
    };
    let d = Daemon::start_with(
        "127.0.0.1",
        Source::TestPattern,
        &format!(
            "[video]\nwidth = {WIDTH}\nheight = {HEIGHT}\n[overlay]\ntext = \"{}\"\nposition = \"bottom-right\"\nsize = {}",
            config.text, config.size
        ),
    );
    let overlay = Overlay::new(&config);
    let started = unix_now();
    let frames = luma_frames(&d.url(), 3.5, WIDTH * HEIGHT);
    let ended = unix_now();
    assert!(frames.len() >= 60, "{} frames in 3.5 s", frames.len());
    let window = started - 3..ended + 2;
    let (first, first_match) = read_time(&overlay, &frames[0], window.clone());
    let (last, last_match) = read_time(&overlay, frames.last().unwrap(), window);
    assert!(
        first_match > 0.97 && last_match > 0.97,
        "the label is not where it belongs: {first_match:.3} and {last_match:.3} of its pixels match"
    );
    assert!(
        (started - 1..=ended).contains(&first),
        "the first frame says {first}, decoding ran from {started} to {ended}"
    );
    assert!(
        (2..=5).contains(&(last - first)),
        "3.5 s of frames, but the time went from {first} to {last}"
    );
    // Another corner holds no label.
    let top_left = Overlay::new(&OverlayConfig {
        position: Corner::TopLeft,
        ..config
    });
    let (_, elsewhere) = read_time(&top_left, &frames[0], first - 1..first + 2);
    assert!(
        elsewhere < 0.8,
        "a label at the top left too ({elsewhere:.3})"
    );
}

#[test]
fn an_overlay_that_does_not_fit_is_cut_and_said_once() {
    let d = Daemon::start_with(
        "127.0.0.1",
        Source::TestPattern,
        "[video]\nwidth = 320\nheight = 180\n[overlay]\ntext = \"a rather long caption for this picture\"\nsize = 32",
    );
    let frames = luma_frames(&d.url(), 1.0, 320 * 180);
    assert!(!frames.is_empty());
    let log = d.log();
    assert_eq!(
        log.matches("does not fit the 320x180 picture").count(),
        1,
        "{log}"
    );
}

#[test]
fn the_overlay_takes_its_time_zone_from_the_config() {
    let d = Daemon::start_with(
        "127.0.0.1",
        Source::TestPattern,
        &format!(
            "[video]\nwidth = {WIDTH}\nheight = {HEIGHT}\n[overlay]\ntext = \"%Z %z\"\ntimezone = \"XYZ-3\"\nsize = 16"
        ),
    );
    // The zone's name and offset, as the daemon must have filled them in.
    let expected = Overlay::new(&OverlayConfig {
        text: "XYZ +0300".into(),
        size: 16,
        ..OverlayConfig::default()
    });
    let frames = luma_frames(&d.url(), 0.5, WIDTH * HEIGHT);
    let seen = likeness(&expected, &frames[0], 0);
    assert!(seen > 0.97, "{seen:.3} of the label's pixels match");
}
