//! Picture sources: where frames come from. A source hands out either raw
//! frames (for the encoder) or ready access units (H.264 already). A file
//! is either (`y4m`, `file`).

pub mod file;
pub mod frame;
pub mod i420;
#[cfg(feature = "libcamera")]
pub mod libcamera;
#[cfg(feature = "gstreamer")]
pub mod libcamerasrc;
#[cfg(any(feature = "libcamera", feature = "gstreamer"))]
pub(crate) mod mapped;
pub mod pacer;
pub mod scale;
pub mod testpattern;
#[cfg(feature = "v4l2")]
pub mod v4l2;
pub mod y4m;

use crate::config::{Config, SourceKind};
use crate::overlay::Overlay;

pub use frame::{Frame, STALL_TIMEOUT, Source, SourceError, monotonic_instant};

/// Opens the configured source; `auto` picks a camera when one exists and
/// the test pattern otherwise, and says why.
pub fn open(config: &Config) -> Result<Box<dyn Source>, SourceError> {
    match config.source.kind {
        SourceKind::Auto => Ok(auto(config)),
        SourceKind::Testpattern => Ok(Box::new(test_pattern(config))),
        SourceKind::File => file_source(config),
        SourceKind::V4l2 => v4l2_camera(config),
        SourceKind::Libcamera => libcamera_camera(config),
    }
}

/// `source.kind = "file"`: raw pictures when the file is YUV4MPEG2 (by
/// its first bytes), H.264 otherwise.
fn file_source(config: &Config) -> Result<Box<dyn Source>, SourceError> {
    let path = &config.source.file;
    let mut start = [0u8; y4m::MAGIC.len()];
    let raw = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut start))
        .is_ok_and(|()| start == y4m::MAGIC);
    if raw {
        let overlay = Overlay::configured(config.overlay.as_ref());
        Ok(Box::new(y4m::Y4mSource::open(path, overlay)?))
    } else {
        Ok(Box::new(file::FileSource::open(
            path,
            config.video.framerate,
        )?))
    }
}

/// `source.kind = "auto"`: a libcamera camera (natively, else through
/// GStreamer), else a V4L2 camera, else the test pattern; the log says why
/// each one before the chosen one was passed over.
fn auto(config: &Config) -> Box<dyn Source> {
    let mut passed = Vec::new();
    for (what, open) in [
        ("libcamera", native_libcamera as Opener),
        ("libcamera through GStreamer", gstreamer_libcamera),
        ("V4L2", v4l2_camera),
    ] {
        match open(config) {
            Ok(camera) => {
                tracing::info!(
                    "source.kind = \"auto\": using {}{}",
                    camera.name(),
                    passed_over(&passed)
                );
                return camera;
            }
            Err(why) => passed.push(format!("{what}: {why}")),
        }
    }
    tracing::info!(
        "source.kind = \"auto\": streaming the test pattern{}",
        passed_over(&passed)
    );
    Box::new(test_pattern(config))
}

type Opener = fn(&Config) -> Result<Box<dyn Source>, SourceError>;

/// " (passed over: why; why)", or nothing.
fn passed_over(why: &[String]) -> String {
    if why.is_empty() {
        String::new()
    } else {
        format!(" (passed over: {})", why.join("; "))
    }
}

/// The test pattern, with the configured overlay.
fn test_pattern(config: &Config) -> testpattern::TestPattern {
    testpattern::TestPattern::new(&config.video, Overlay::configured(config.overlay.as_ref()))
}

/// `source.kind = "libcamera"`: natively where the build links libcamera,
/// else through GStreamer's element; which one is missing says what to
/// install.
fn libcamera_camera(config: &Config) -> Result<Box<dyn Source>, SourceError> {
    if !cfg!(feature = "gstreamer") {
        return native_libcamera(config);
    }
    if cfg!(feature = "libcamera") {
        match native_libcamera(config) {
            Ok(camera) => return Ok(camera),
            Err(why) => tracing::info!("libcamera: {why}; trying GStreamer's libcamerasrc"),
        }
    }
    gstreamer_libcamera(config)
}

#[cfg(feature = "libcamera")]
fn native_libcamera(config: &Config) -> Result<Box<dyn Source>, SourceError> {
    Ok(Box::new(libcamera::LibcameraSource::open(config)?))
}

#[cfg(not(feature = "libcamera"))]
fn native_libcamera(_config: &Config) -> Result<Box<dyn Source>, SourceError> {
    Err(SourceError::Unavailable(
        "this build does not link libcamera (cargo feature \"libcamera\")".into(),
    ))
}

#[cfg(feature = "gstreamer")]
fn gstreamer_libcamera(config: &Config) -> Result<Box<dyn Source>, SourceError> {
    match libcamerasrc::unavailable() {
        // A missing element is a missing package: say which, and never retry.
        Some(why) => Err(SourceError::Invalid(why)),
        None => Ok(Box::new(libcamerasrc::LibcamerasrcSource::open(config)?)),
    }
}

#[cfg(not(feature = "gstreamer"))]
fn gstreamer_libcamera(_config: &Config) -> Result<Box<dyn Source>, SourceError> {
    Err(SourceError::Unavailable(
        "this build has no GStreamer support (cargo feature \"gstreamer\")".into(),
    ))
}

#[cfg(feature = "v4l2")]
fn v4l2_camera(config: &Config) -> Result<Box<dyn Source>, SourceError> {
    Ok(Box::new(v4l2::V4l2Source::open(config)?))
}

#[cfg(not(feature = "v4l2"))]
fn v4l2_camera(_config: &Config) -> Result<Box<dyn Source>, SourceError> {
    Err(SourceError::Unavailable(
        "this build has no V4L2 support (cargo feature \"v4l2\")".into(),
    ))
}
