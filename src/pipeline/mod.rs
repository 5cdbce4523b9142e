//! Keeps the pipeline (source -> encoder -> broadcast) running on its own
//! thread: a source or encoder that fails in a way that may pass (unplugged,
//! busy, stalled) is reopened with back-off while clients stay connected;
//! one that can never work as configured is reported once and left alone.
//! The media clock and sequence numbers live in the broadcast, so RTP time
//! stays continuous.

pub mod tap;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::broadcast::stats::{EncoderInput, Part};
use crate::broadcast::{Broadcast, StreamInfo};
use crate::config::{Config, SubstreamConfig};
use crate::encode;
use crate::encode::encoder::{EncodeError, Encoder};
use crate::format::h264::AccessUnit;
use crate::format::raw::RawFrame;
use crate::source;
use crate::source::frame::{Frame, Source, SourceError};
use crate::source::scale::Scaler;
use tap::Tap;

/// First wait before reopening a failed pipeline; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A pipeline that ran this long resets the back-off.
const HEALTHY_RUN: Duration = Duration::from_secs(30);

/// Why the pipeline stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The encoder failed.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A raw frame came from a source that should not need an encoder.
    #[error("raw frame but no encoder")]
    NoEncoder,
}

impl PipelineError {
    /// True if reopening the pipeline may help.
    pub fn may_recover(&self) -> bool {
        match self {
            Self::Source(e) => e.may_recover(),
            Self::Encode(e) => e.may_recover(),
            Self::NoEncoder => false,
        }
    }
}

/// An open source, with the encoder it needs (if it delivers raw frames).
struct Pipeline {
    /// Declared (so dropped) before the source: a zero-copy encoder gives
    /// the camera's buffers back before the camera stops.
    encoder: Option<Box<dyn Encoder>>,
    /// The substream's encoder, fed scaled copies of the raw frames.
    substream: Option<SubstreamEncoder>,
    source: Box<dyn Source>,
    /// Access units ready to publish (kept to reuse its allocation).
    coded: Vec<AccessUnit>,
}

/// The substream: a raw frame each substream frame time (every Nth when
/// the camera delivers every frame), scaled and encoded on its own for
/// its own broadcast.
struct SubstreamEncoder {
    encoder: Box<dyn Encoder>,
    stream: Arc<Broadcast>,
    width: u32,
    height: u32,
    /// One substream frame time.
    interval: Duration,
    /// Half a main-stream frame time: a frame captured this early still
    /// counts as on time (camera time stamps jitter).
    slack: Duration,
    /// The capture time the next substream picture is due at.
    due: Option<Instant>,
    scaler: Scaler,
    coded: Vec<AccessUnit>,
}

impl SubstreamEncoder {
    /// Takes its share of the raw frames: scales, encodes and publishes.
    /// Picked by capture time, so a camera that drops frames does not slow
    /// the substream down.
    fn feed(&mut self, raw: &RawFrame<'_>) -> Result<(), EncodeError> {
        let at = raw.timestamp;
        if self.due.is_some_and(|due| at + self.slack < due) {
            return Ok(());
        }
        self.due = Some(match self.due {
            Some(due) if at < due + self.interval => due + self.interval,
            _ => at + self.interval,
        });
        self.stream.stats().frame_captured();
        if self.stream.take_keyframe_request(Instant::now()) {
            self.encoder.request_keyframe();
        }
        let small = self.scaler.scale(raw, self.width, self.height);
        self.encoder.encode(&small, &mut self.coded)?;
        for au in self.coded.drain(..) {
            self.stream.publish(au);
        }
        Ok(())
    }
}

/// The broadcasts the pipeline feeds: the main stream and, with
/// `[substream]`, the second one.
#[derive(Debug, Clone)]
pub struct Outputs {
    /// The main stream.
    pub main: Arc<Broadcast>,
    /// The substream.
    pub substream: Option<Arc<Broadcast>>,
    /// What else takes the main stream's frames (the snapshot).
    pub taps: Vec<Arc<dyn Tap>>,
}

/// Opens the pipeline once (so a source that cannot work is reported before
/// anything starts), then keeps it running on its own thread until `stop`.
pub fn start(
    config: &Config,
    outputs: Outputs,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, PipelineError> {
    let first = open(config, &outputs)?;
    let mut config = config.clone();
    // A camera that `auto` chose is the one reopened after a failure: a
    // camera that is briefly gone must not turn the stream into the test
    // pattern for good.
    config.source.kind = first.source.kind();
    Ok(std::thread::Builder::new()
        .name("pipeline".into())
        .spawn(move || supervise(first, &config, &outputs, &stop))
        .expect("spawning the pipeline thread"))
}

fn supervise(first: Pipeline, config: &Config, outputs: &Outputs, stop: &AtomicBool) {
    let stream = &*outputs.main;
    let mut pipeline = Some(first);
    let mut backoff = FIRST_BACKOFF;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let result = match pipeline.take() {
            Some(p) => run(p, outputs, stop),
            None => open(config, outputs).and_then(|p| run(p, outputs, stop)),
        };
        let Err(error) = result else { return };
        let part = match error {
            PipelineError::Encode(_) => Part::Encoder,
            PipelineError::Source(_) | PipelineError::NoEncoder => Part::Source,
        };
        stream.stats().pipeline_failed(part, &error.to_string());
        if !error.may_recover() {
            tracing::error!(
                "video pipeline failed: {error}; this cannot work without a change to the \
                 settings or the camera: not retrying (fix it and restart streamcam)"
            );
            for s in outputs.all() {
                s.set_info(StreamInfo {
                    description: format!("pipeline failed ({error}); not retrying"),
                    error: Some(format!("{error} (not retrying)")),
                });
            }
            return;
        }
        if started.elapsed() >= HEALTHY_RUN {
            backoff = FIRST_BACKOFF;
        }
        tracing::error!("video pipeline failed: {error}; retrying in {backoff:?}");
        for s in outputs.all() {
            s.set_info(StreamInfo {
                description: format!("pipeline failed ({error}); retrying"),
                error: Some(error.to_string()),
            });
        }
        let until = Instant::now() + backoff;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

impl Outputs {
    /// The main stream and the substream.
    fn all(&self) -> impl Iterator<Item = &Arc<Broadcast>> {
        std::iter::once(&self.main).chain(&self.substream)
    }
}

/// Opens the source, and the encoders if it needs them.
fn open(config: &Config, outputs: &Outputs) -> Result<Pipeline, PipelineError> {
    let stream = &*outputs.main;
    let source = source::open(config)?;
    stream.stats().set_encoder_input(EncoderInput::None);
    let (w, h) = source.dimensions();
    let mut encoder = None;
    if let Some(ps) = source.parameter_sets() {
        stream.set_parameter_sets(ps);
    }
    if !source.is_encoded() {
        // The encoder codes the pictures the source gives (a raw file has
        // its own size).
        let mut video = config.video.clone();
        (video.width, video.height) = (w, h);
        encoder = Some(encode::open(&video)?);
    } else {
        if config.overlay.is_some() {
            tracing::warn!(
                "overlay: {} delivers H.264, which cannot be drawn on: streaming without the \
                 overlay (it needs a camera with raw frames, or the test pattern)",
                source.name()
            );
        }
        if config.motion.is_some() {
            tracing::warn!(
                "motion: {} delivers H.264, which streamcam does not decode: no motion \
                 detection (it needs a camera with raw frames, or the test pattern)",
                source.name()
            );
        }
    }
    let description = format!(
        "{w}x{h}@{} h264 from {}{}",
        source.framerate().round(),
        source.name(),
        encoder
            .as_ref()
            .map(|e| format!(" ({} encoder)", e.name()))
            .unwrap_or_default()
    );
    tracing::info!(
        source = %source.name(),
        encoder = encoder.as_ref().map_or("none", |e| e.name()),
        "streaming {description}"
    );
    stream.set_info(StreamInfo {
        description,
        error: None,
    });
    let substream = match (&outputs.substream, &config.substream) {
        (Some(sub), Some(sub_config)) => open_substream(config, sub_config, sub, &*source)?,
        _ => None,
    };
    Ok(Pipeline {
        source,
        encoder,
        substream,
        coded: Vec::new(),
    })
}

/// Opens the substream's encoder, if the source's frames can be scaled.
fn open_substream(
    config: &Config,
    sub: &SubstreamConfig,
    stream: &Arc<Broadcast>,
    source: &dyn Source,
) -> Result<Option<SubstreamEncoder>, PipelineError> {
    if source.is_encoded() {
        let why = format!(
            "{} delivers H.264, which streamcam does not decode to scale: no substream",
            source.name()
        );
        tracing::warn!("substream: {why}");
        stream.set_info(StreamInfo {
            description: why.clone(),
            error: Some(why),
        });
        return Ok(None);
    }
    let video = sub.video(&config.video);
    let encoder = encode::open(&video)?;
    let description = format!(
        "{}x{}@{} h264, every {} frame(s) of {} scaled ({} encoder)",
        video.width,
        video.height,
        video.framerate,
        sub.every(&config.video),
        source.name(),
        encoder.name()
    );
    tracing::info!(
        encoder = encoder.name(),
        "substream {}: {description}",
        sub.path
    );
    stream.set_info(StreamInfo {
        description,
        error: None,
    });
    Ok(Some(SubstreamEncoder {
        encoder,
        stream: Arc::clone(stream),
        width: video.width,
        height: video.height,
        interval: Duration::from_secs(1) / video.framerate.max(1),
        slack: Duration::from_secs(1) / (2 * config.video.framerate.max(1)),
        due: None,
        scaler: Scaler::default(),
        coded: Vec::new(),
    }))
}

/// Publishes until stopped (`Ok`) or something fails (`Err`, for the user).
fn run(mut p: Pipeline, outputs: &Outputs, stop: &AtomicBool) -> Result<(), PipelineError> {
    while !stop.load(Ordering::Relaxed) {
        pump(&mut p, &outputs.main, &outputs.taps)?;
    }
    Ok(())
}

/// Moves one frame from the source through the encoder to the broadcast,
/// and shows it to the taps on its way.
fn pump(p: &mut Pipeline, stream: &Broadcast, taps: &[Arc<dyn Tap>]) -> Result<(), PipelineError> {
    let frame = p.source.next_frame()?;
    stream.stats().frame_captured();
    let wants_keyframe = stream.take_keyframe_request(Instant::now());
    match (frame, p.encoder.as_mut()) {
        (Frame::Encoded(au), _) => p.coded.push(au),
        (Frame::Raw(raw), Some(enc)) => {
            for tap in taps {
                tap.raw(&raw);
            }
            if wants_keyframe {
                enc.request_keyframe();
            }
            enc.encode(&raw, &mut p.coded)?;
            if let Some(sub) = &mut p.substream {
                sub.feed(&raw)?;
            }
            stream.stats().set_encoder_input(if enc.is_zero_copy() {
                EncoderInput::ZeroCopy
            } else {
                EncoderInput::Copied
            });
        }
        (Frame::Raw(_), None) => return Err(PipelineError::NoEncoder),
    };
    for au in p.coded.drain(..) {
        let unit = stream.publish(au);
        for tap in taps {
            tap.encoded(&unit);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceKind;

    #[test]
    fn a_source_that_can_never_work_again_is_reported_once_not_retried() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("clip.h264");
        let sample = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/testsrc2-720p30.h264"
        );
        std::fs::copy(sample, &file).unwrap();
        let mut config = Config::default();
        config.source.kind = SourceKind::File;
        config.source.file = file.clone();
        let stream = Broadcast::new();
        let stop = Arc::new(AtomicBool::new(false));
        let outputs = Outputs {
            main: Arc::clone(&stream),
            substream: None,
            taps: Vec::new(),
        };
        let pipeline = start(&config, outputs, Arc::clone(&stop)).unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        while stream.last_frame_at().is_none() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(stream.last_frame_at().is_some(), "no first frame");
        // The file is cut to nothing: no reopen can play it.
        std::fs::File::create(&file).unwrap();
        let until = Instant::now() + Duration::from_secs(10);
        while !pipeline.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            pipeline.is_finished(),
            "still retrying: {:?}",
            stream.info()
        );
        let error = stream.info().error.expect("the failure is reported");
        assert!(error.contains("not retrying"), "{error}");
        pipeline.join().unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_substream_gets_every_nth_picture_scaled_with_its_capture_time() {
        let config = Config::parse(
            "[source]\nkind = \"testpattern\"\n[video]\nwidth = 320\nheight = 240\n\
             [substream]\nwidth = 160\nheight = 120\nframerate = 10\n",
            "test",
            None,
        )
        .unwrap();
        let main = Broadcast::new();
        let sub = main.sibling();
        let (mut main_rx, mut sub_rx) = (main.subscribe(), sub.subscribe());
        let stop = Arc::new(AtomicBool::new(false));
        let outputs = Outputs {
            main: Arc::clone(&main),
            substream: Some(Arc::clone(&sub)),
            taps: Vec::new(),
        };
        let pipeline = start(&config, outputs, Arc::clone(&stop)).unwrap();
        let mut captured = Vec::new();
        while captured.len() < 30 {
            captured.push(main_rx.next().await.unwrap().captured);
        }
        let mut sub_units = Vec::new();
        while sub_units.len() < 5 {
            sub_units.push(sub_rx.next().await.unwrap());
        }
        stop.store(true, Ordering::Relaxed);
        pipeline.join().unwrap();
        let params = sub.parameter_sets(Duration::ZERO).await.unwrap();
        assert_eq!((params.width, params.height), (160, 120));
        // Ten pictures a second in capture time (a busy machine's test
        // pattern may skip a slot now and then).
        let span = sub_units[4].captured - sub_units[0].captured;
        assert!(
            span > Duration::from_millis(330) && span < Duration::from_millis(470),
            "{span:?} for four substream frame times"
        );
        for unit in &sub_units {
            assert!(
                captured.contains(&unit.captured),
                "a substream picture with a capture time no main-stream picture has"
            );
        }
        assert!(
            sub.info().description.contains("160x120@10"),
            "{:?}",
            sub.info()
        );
    }

    #[test]
    fn errors_say_whether_retrying_can_help() {
        let invalid = PipelineError::from(SourceError::Invalid("not H.264".into()));
        assert!(!invalid.may_recover());
        assert!(PipelineError::from(SourceError::Stalled("no frame for 2 s".into())).may_recover());
        assert!(PipelineError::from(EncodeError::Stalled("no picture".into())).may_recover());
        assert!(!PipelineError::from(EncodeError::Unavailable("no encoder".into())).may_recover());
    }
}

/// Tests against the kernel's vivid driver; `ci/vm` runs them in a VM.
#[cfg(all(test, feature = "v4l2", feature = "software-encoder"))]
mod vm_tests {
    use super::*;
    use crate::config::EncoderKind;
    use crate::source::v4l2::vm_tests::{camera_config, plug};

    /// Waits up to `limit` for `what`.
    fn wait_for(limit: Duration, what: impl Fn() -> bool) -> bool {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if what() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Starts the pipeline on `config` and waits for its first frame.
    fn start_streaming(config: &Config) -> (Arc<Broadcast>, Arc<AtomicBool>, JoinHandle<()>) {
        let stream = Broadcast::new();
        let stop = Arc::new(AtomicBool::new(false));
        let outputs = Outputs {
            main: stream.clone(),
            substream: None,
            taps: Vec::new(),
        };
        let pipeline = start(config, outputs, stop.clone()).unwrap();
        assert!(
            wait_for(Duration::from_secs(10), || stream.last_frame_at().is_some()),
            "no first frame"
        );
        (stream, stop, pipeline)
    }

    #[test]
    #[ignore = "needs the vivid driver: ci/vm runs it"]
    fn a_camera_unplugged_and_plugged_back_streams_again() {
        let mut config = camera_config("vivid-000-vid-cap");
        config.video.width = 320;
        config.video.height = 180;
        config.video.encoder = EncoderKind::Software;
        let (stream, stop, pipeline) = start_streaming(&config);
        let rtp_before = stream.current_rtp_timestamp();
        // Software encoding reads the camera's frames, never in place.
        assert_eq!(stream.stats().encoder_input(), EncoderInput::Copied);

        plug(false);
        assert!(
            wait_for(Duration::from_secs(5), || stream.info().error.is_some()),
            "the pipeline did not notice the camera vanish"
        );
        let unplugged_at = Instant::now();
        plug(true);
        assert!(
            wait_for(Duration::from_secs(20), || {
                stream.last_frame_at().is_some_and(|t| t > unplugged_at)
            }),
            "no frames after the camera came back: {:?}",
            stream.info()
        );
        assert_eq!(stream.info().error, None);
        let rtp_after = stream.current_rtp_timestamp();
        let advanced = rtp_after.wrapping_sub(rtp_before);
        assert!(
            advanced > 0 && advanced < 90_000 * 60,
            "RTP time jumped by {advanced} ticks across the restart"
        );
        stop.store(true, Ordering::Relaxed);
        pipeline.join().unwrap();
    }

    /// Run on its own (it leaves libcamera holding the vanished camera, so
    /// no libcamera camera opens again in this process).
    #[cfg(feature = "libcamera")]
    #[test]
    #[ignore = "needs libcamera and the vimc driver: ci/vm runs it alone"]
    fn a_libcamera_camera_that_vanishes_is_reported_without_a_crash() {
        use crate::source::mapped::vm_tests::{plug_vimc, vimc_config};
        let mut config = vimc_config(320, 240);
        config.video.encoder = EncoderKind::Software;
        let (stream, stop, pipeline) = start_streaming(&config);

        plug_vimc(false);
        assert!(
            wait_for(Duration::from_secs(10), || stream.info().error.is_some()),
            "the pipeline did not notice the camera vanish"
        );
        plug_vimc(true);
        // The reopen after the back-off says why there is no camera.
        assert!(
            wait_for(Duration::from_secs(10), || stream
                .info()
                .error
                .is_some_and(|e| e.contains("until streamcam restarts"))),
            "{:?}",
            stream.info()
        );
        stop.store(true, Ordering::Relaxed);
        pipeline.join().unwrap();
    }
}
