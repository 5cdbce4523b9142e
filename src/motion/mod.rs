//! Motion detection beside the pipeline (`[motion]`): a tap that takes a
//! small luma copy of a raw frame a few times a second ([`Motion`]), and a
//! thread of its own that analyses it ([`detector`]) and says when motion
//! starts and ends: in the journal (`MOTION=start|end`), in its counts,
//! and to whoever follows [`Motion::events`].
//!
//! It never delays a frame: the copy is made on the pipeline thread (one
//! pass over the luma, into a picture about 160 pixels wide), only when
//! the analysis thread is free for it; a picture that comes while it is
//! busy is skipped.

pub mod detector;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use crate::config::MotionConfig;
use crate::format::raw::RawFrame;
use crate::format::rtp::packetizer::RtpUnit;
use crate::pipeline::tap::Tap;
use crate::source::scale::Scaler;
use detector::Detector;
pub use detector::{Area, Event, Settings};

/// The small picture is about this wide (160x90 from 720p or 1080p,
/// 160x120 from 320x240): fine enough that a 2 % object covers whole
/// cells, small enough to cost little.
const SMALL_WIDTH: u32 = 160;
/// Events kept for a follower that has not read them yet.
const EVENTS_KEPT: usize = 16;

/// A small luma picture on its way to the analysis thread.
struct Picture {
    luma: Vec<u8>,
    width: usize,
    height: usize,
    at: Instant,
}

/// The tap, and what the analysis has found.
#[derive(Debug)]
pub struct Motion {
    interval: Duration,
    /// The tap's side: when the next picture is due, the scaler.
    taking: Mutex<Taking>,
    to_analysis: SyncSender<Picture>,
    active: AtomicBool,
    events: broadcast::Sender<Event>,
    starts: AtomicU64,
    skipped: AtomicU64,
}

#[derive(Debug, Default)]
struct Taking {
    due: Option<Instant>,
    scaler: Scaler,
}

impl Motion {
    /// Starts the analysis thread for `config`, with `extra_mask` (the
    /// overlay's box) left out too. The thread ends when the returned
    /// value is dropped.
    pub fn start(config: &MotionConfig, extra_mask: Option<Area>) -> std::sync::Arc<Self> {
        let mut settings = Settings::from(config);
        settings.mask.extend(extra_mask);
        let (to_analysis, pictures) = std::sync::mpsc::sync_channel(1);
        let motion = std::sync::Arc::new(Self {
            interval: Duration::from_secs(1) / config.rate.max(1),
            taking: Mutex::default(),
            to_analysis,
            active: AtomicBool::new(false),
            events: broadcast::channel(EVENTS_KEPT).0,
            starts: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        });
        let weak = std::sync::Arc::downgrade(&motion);
        std::thread::Builder::new()
            .name("motion".into())
            .spawn(move || analyse(settings, &pictures, &weak))
            .expect("spawning the motion thread");
        motion
    }

    /// Whether motion is going on.
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Motion events since the start.
    pub fn starts(&self) -> u64 {
        self.starts.load(Ordering::Relaxed)
    }

    /// Pictures skipped because the analysis was still busy.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// The events from now on.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// What the analysis thread found.
    fn found(&self, event: Event) {
        match event {
            Event::Start { area, .. } => {
                self.active.store(true, Ordering::Relaxed);
                self.starts.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    motion = "start",
                    area = format!("{:.1}", area * 100.0),
                    "motion: started ({:.1} % of the picture changed)",
                    area * 100.0
                );
            }
            Event::End { duration, area, .. } => {
                self.active.store(false, Ordering::Relaxed);
                tracing::info!(
                    motion = "end",
                    duration_s = duration.as_secs(),
                    "motion: ended after {:.1} s (at most {:.1} % of the picture changed)",
                    duration.as_secs_f32(),
                    area * 100.0
                );
            }
        }
        // No follower is no error.
        let _ = self.events.send(event);
    }
}

/// The analysis thread: until the tap is gone.
fn analyse(settings: Settings, pictures: &Receiver<Picture>, motion: &std::sync::Weak<Motion>) {
    let mut detector: Option<Detector> = None;
    while let Ok(p) = pictures.recv() {
        let d = match &mut detector {
            Some(d) if d.size() == (p.width, p.height) => d,
            _ => detector.insert(Detector::new(settings.clone(), p.width, p.height)),
        };
        let Some(event) = d.analyse(&p.luma, p.at) else {
            continue;
        };
        let Some(motion) = motion.upgrade() else {
            return;
        };
        motion.found(event);
    }
}

impl Tap for Motion {
    fn raw(&self, frame: &RawFrame<'_>) {
        let Ok(mut taking) = self.taking.try_lock() else {
            return;
        };
        if taking.due.is_some_and(|due| frame.timestamp < due) {
            return;
        }
        taking.due = Some(frame.timestamp + self.interval);
        // Even sizes, as the scaler wants.
        let shrink = (frame.width / SMALL_WIDTH).max(1);
        let width = (frame.width / shrink).max(2) & !1;
        let height = (frame.height / shrink).max(2) & !1;
        let luma = taking.scaler.luma(frame, width, height).to_vec();
        let picture = Picture {
            luma,
            width: width as usize,
            height: height as usize,
            at: frame.timestamp,
        };
        match self.to_analysis.try_send(picture) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.skipped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    fn encoded(&self, _unit: &RtpUnit) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::raw::{Pixels, Plane};

    /// Feeds the tap `frames` I420 pictures of 320x240 at 10 a second
    /// from `start`, each with a bright square at `square(n)` if any, and
    /// collects the events that come within `wait` of the last.
    fn feed(
        motion: &Motion,
        start: Instant,
        frames: std::ops::Range<u32>,
        square: impl Fn(u32) -> Option<(usize, usize)>,
    ) {
        let (w, h) = (320usize, 240usize);
        let chroma = vec![128u8; (w / 2) * (h / 2)];
        for n in frames {
            let mut y: Vec<u8> = (0..w * h).map(|i| (60 + (i % w) * 100 / w) as u8).collect();
            if let Some((x0, y0)) = square(n) {
                for row in y0..y0 + 40 {
                    y[row * w + x0..row * w + x0 + 40].fill(240);
                }
            }
            let frame = RawFrame {
                pixels: Pixels::I420 {
                    y: Plane {
                        data: &y,
                        stride: w,
                    },
                    u: Plane {
                        data: &chroma,
                        stride: w / 2,
                    },
                    v: Plane {
                        data: &chroma,
                        stride: w / 2,
                    },
                },
                dmabuf: None,
                width: w as u32,
                height: h as u32,
                timestamp: start + Duration::from_millis(100 * u64::from(n)),
            };
            motion.raw(&frame);
            // Time for the analysis thread (it skips what comes while busy).
            std::thread::sleep(Duration::from_millis(15));
        }
    }

    fn next_event(events: &mut broadcast::Receiver<Event>, wait: Duration) -> Option<Event> {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            match events.try_recv() {
                Ok(e) => return Some(e),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        None
    }

    #[test]
    fn the_tap_finds_motion_in_the_frames_and_says_when_it_ends() {
        let config = MotionConfig {
            hold: 1.0,
            ..MotionConfig::default()
        };
        let motion = Motion::start(&config, None);
        let mut events = motion.events();
        let start = Instant::now();
        feed(&motion, start, 0..20, |_| None);
        assert!(!motion.active());
        // A 40x40 square (2 % of 320x240) moving for 2 s.
        feed(&motion, start, 20..40, |n| {
            Some((20 + (n as usize - 20) * 10, 100))
        });
        let Some(Event::Start { at, .. }) = next_event(&mut events, Duration::from_secs(10)) else {
            panic!("no start");
        };
        // Dated by a frame with the square, within the first half second.
        let first = start + Duration::from_secs(2);
        assert!(
            at >= first && at <= first + Duration::from_millis(500),
            "{at:?}"
        );
        assert!(motion.active());
        assert_eq!(motion.starts(), 1);
        feed(&motion, start, 40..70, |_| None);
        let Some(Event::End { duration, .. }) = next_event(&mut events, Duration::from_secs(10))
        else {
            panic!("no end");
        };
        assert!(duration >= Duration::from_secs(2), "{duration:?}");
        assert!(!motion.active());
    }
}
