//! A Raspberry Pi has no real-time clock: it boots with a stale time and
//! NTP steps the clock forward later, often while clients watch. Here the
//! daemon's wall clock is stepped by hours and years, forward and back,
//! with libfaketime (preloaded; it moves `CLOCK_REALTIME` only, as a step
//! does, and leaves the monotonic clock running), while a client plays.

use std::io::Write;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use streamcam::config::{Corner, OverlayConfig};
use streamcam::overlay::Overlay;

use crate::daemon::{Daemon, Source};
use crate::overlay::{HEIGHT, WIDTH, luma_frames, read_time, unix_now};
use crate::raw::{Frame, RawClient};

/// Where Debian's libfaketime (package `libfaketime`) is.
pub fn libfaketime() -> String {
    let path = format!(
        "/usr/lib/{}-linux-gnu/faketime/libfaketime.so.1",
        std::env::consts::ARCH
    );
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: install the package libfaketime (ci/test does)"
    );
    path
}

/// Seconds since 1970 of an RFC 3339 time's date and time fields
/// ("2026-12-07T01:47:59"), as the daemon's log lines start.
fn unix_of(stamp: &str) -> Option<i64> {
    let n = |r: std::ops::Range<usize>| stamp.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    // Days from 1970-01-01 to the date (the proleptic Gregorian calendar).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// NTP seconds (since 1900) of the system clock now, as a float.
fn ntp_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + 2_208_988_800.0
}

/// What the playing client saw: RTP packets' arrival, and sender reports'
/// NTP time with their arrival.
enum Seen {
    Rtp(Instant),
    Report { ntp: f64, at: f64 },
}

#[test]
fn a_wall_clock_step_is_followed_and_drops_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let offset = dir.path().join("offset");
    std::fs::write(&offset, "+0").unwrap();
    let lib = libfaketime();
    let text = "%Y-%m-%d %H:%M:%S";
    let d = Daemon::start_env(
        "127.0.0.1",
        Source::TestPattern,
        &format!(
            "[video]\nwidth = {WIDTH}\nheight = {HEIGHT}\n[overlay]\ntext = \"{text}\"\nposition = \"bottom-right\"\nsize = 16"
        ),
        &[
            ("LD_PRELOAD", lib.as_str()),
            ("FAKETIME_TIMESTAMP_FILE", offset.to_str().unwrap()),
            ("FAKETIME_NO_CACHE", "1"),
            ("DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    let overlay = Overlay::new(&OverlayConfig {
        text: text.into(),
        position: Corner::BottomRight,
        size: 16,
        timezone: None,
    });

    // One client plays over TCP throughout, on a thread of its own.
    let mut client = RawClient::connect(&d);
    let setup = client.setup("RTP/AVP/TCP;unicast;interleaved=0-1");
    let session = setup.session();
    assert_eq!(client.play(&session).status, 200);
    let (tx, seen) = mpsc::channel();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = stop.clone();
    let reader = std::thread::spawn(move || {
        while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
            match client.read_frame_or_timeout() {
                Some(Frame::Interleaved(0, _)) => {
                    let _ = tx.send(Seen::Rtp(Instant::now()));
                }
                Some(Frame::Interleaved(1, p)) if p.len() >= 16 && p[1] == 200 => {
                    let ntp = u64::from_be_bytes(p[8..16].try_into().unwrap());
                    let _ = tx.send(Seen::Report {
                        ntp: ntp as f64 / 4_294_967_296.0,
                        at: ntp_now(),
                    });
                }
                Some(_) => {}
                None => break,
            }
        }
        client
    });

    let mut last_rtp = Instant::now();
    let mut longest_gap = Duration::ZERO;
    let day = 86_400;
    for (step, seconds) in [
        ("+5h", 5 * 3600),
        ("+1095d", 1095 * day),
        ("-730d", -730 * day),
        ("+0", 0),
    ] {
        std::fs::write(&offset, step).unwrap();
        let stepped = Instant::now();
        // The next sender report (one every 5 s) carries the new time.
        let mut followed = None;
        while followed.is_none() && stepped.elapsed() < Duration::from_secs(8) {
            match seen.recv_timeout(Duration::from_secs(1)) {
                Ok(Seen::Rtp(at)) => {
                    longest_gap = longest_gap.max(at - last_rtp);
                    last_rtp = at;
                }
                Ok(Seen::Report { ntp, at }) => {
                    if (ntp - at - seconds as f64).abs() < 2.0 {
                        followed = Some(stepped.elapsed());
                    }
                }
                Err(_) => {}
            }
        }
        let followed =
            followed.unwrap_or_else(|| panic!("{step}: no sender report with the new time in 8 s"));
        // The overlay shows the new time.
        let started = unix_now() + seconds;
        let frames = luma_frames(&d.url(), 1.0, WIDTH * HEIGHT);
        let ended = unix_now() + seconds;
        let (shown, likeness) =
            read_time(&overlay, &frames[frames.len() / 2], started - 3..ended + 2);
        assert!(likeness > 0.95, "{step}: the label matches {likeness:.3}");
        assert!(
            (started - 2..=ended).contains(&shown),
            "{step}: the overlay says {shown}, the stepped clock ran from {started} to {ended}"
        );
        // So does the log: its newest line is stamped with the new time.
        let log = d.log();
        let line = log.lines().rev().find(|l| unix_of(l).is_some()).unwrap();
        let logged = unix_of(line).unwrap();
        assert!(
            (logged - (unix_now() + seconds)).abs() < 30,
            "{step}: the newest log line is stamped {logged}, the stepped clock says {}: {line}",
            unix_now() + seconds
        );
        eprintln!(
            "{step}: sender report followed after {followed:?}; overlay {shown}; log {logged}"
        );
    }
    // Nothing dropped the playing client: packets kept coming, and its
    // session is still there.
    while let Ok(s) = seen.try_recv() {
        if let Seen::Rtp(at) = s {
            longest_gap = longest_gap.max(at - last_rtp);
            last_rtp = at;
        }
    }
    assert!(
        last_rtp.elapsed() < Duration::from_secs(2),
        "the client's packets stopped {:?} ago",
        last_rtp.elapsed()
    );
    assert!(
        longest_gap < Duration::from_secs(3),
        "a {longest_gap:?} gap in the packets"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut client = reader.join().unwrap();
    let url = client.url.clone();
    let alive = client.request("GET_PARAMETER", &url, &[("Session", &session)]);
    assert_eq!(alive.status, 200, "the session survived the steps");
    let log = d.log();
    assert!(
        !log.contains("timed out") && !log.contains("ERROR"),
        "the steps ended a session or failed something:\n{log}"
    );
    let _ = std::io::stderr().flush();
}
