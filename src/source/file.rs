//! The file source: an Annex-B H.264 elementary stream, split into access
//! units once, then replayed forever at its frame rate.

use std::path::Path;

use bytes::Bytes;

use super::pacer::Pacer;
use super::{Frame, Source, SourceError};
use crate::h264::{AccessUnit, AccessUnitSplitter, ParameterSets, split_annexb};

/// Largest file the source loads into memory.
const MAX_FILE_SIZE: u64 = 512 * 1024 * 1024;

/// An H.264 file played in a loop.
pub struct FileSource {
    name: String,
    units: Vec<Vec<Bytes>>,
    /// Index of the first IDR access unit: where every loop starts.
    loop_start: usize,
    next: usize,
    params: ParameterSets,
    fps: f64,
    pacer: Pacer,
}

impl FileSource {
    /// Loads `path`; paces at the SPS's frame rate, else `default_fps`.
    pub fn open(path: &Path, default_fps: u32) -> Result<Self, SourceError> {
        let io_err = |error| SourceError::Io {
            path: path.display().to_string(),
            error,
        };
        let size = std::fs::metadata(path).map_err(io_err)?.len();
        if size > MAX_FILE_SIZE {
            return Err(SourceError::Invalid(format!(
                "{} is {size} bytes; the file source loads at most {MAX_FILE_SIZE} bytes",
                path.display()
            )));
        }
        let data = Bytes::from(std::fs::read(path).map_err(io_err)?);
        Self::from_bytes(&path.display().to_string(), &data, default_fps)
    }

    /// Builds the source from the file's bytes; `name` is used in messages.
    pub fn from_bytes(name: &str, data: &Bytes, default_fps: u32) -> Result<Self, SourceError> {
        let hint = "is it an Annex-B H.264 elementary stream? \
                    Convert with: ffmpeg -i IN -c:v copy -bsf:v h264_mp4toannexb -an -f h264 OUT.h264";
        let mut splitter = AccessUnitSplitter::default();
        let mut units: Vec<Vec<Bytes>> = Vec::new();
        for nal in split_annexb(data) {
            units.extend(splitter.push(nal));
        }
        units.extend(splitter.finish());
        let all = || units.iter().flatten();
        let find = |t| all().find(|n| crate::h264::nal_type(n) == t).cloned();
        let (Some(sps), Some(pps)) = (find(crate::h264::NAL_SPS), find(crate::h264::NAL_PPS))
        else {
            return Err(SourceError::Invalid(format!(
                "{name}: no SPS/PPS found; {hint}"
            )));
        };
        let params = ParameterSets::new(sps, pps)
            .map_err(|e| SourceError::Invalid(format!("{name}: {e}")))?;
        let loop_start = units
            .iter()
            .position(|u| {
                u.iter()
                    .any(|n| crate::h264::nal_type(n) == crate::h264::NAL_IDR)
            })
            .ok_or_else(|| {
                SourceError::Invalid(format!("{name}: no IDR (key) frame found; {hint}"))
            })?;
        let fps = match params.fps {
            Some(fps) if (1.0..=240.0).contains(&fps) => fps,
            _ => {
                tracing::info!(
                    file = name,
                    fps = default_fps,
                    "the file's SPS gives no frame rate; pacing at video.framerate"
                );
                f64::from(default_fps)
            }
        };
        Ok(Self {
            name: format!("file {name}"),
            units,
            loop_start,
            next: loop_start,
            params,
            fps,
            pacer: Pacer::new(fps),
        })
    }
}

impl Source for FileSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn dimensions(&self) -> (u32, u32) {
        (self.params.width, self.params.height)
    }

    fn framerate(&self) -> f64 {
        self.fps
    }

    fn parameter_sets(&self) -> Option<ParameterSets> {
        Some(self.params.clone())
    }

    fn next_frame(&mut self) -> Result<Frame<'_>, SourceError> {
        let timestamp = self.pacer.wait();
        let nals = self.units[self.next].clone();
        self.next += 1;
        if self.next == self.units.len() {
            self.next = self.loop_start;
        }
        Ok(Frame::Encoded(AccessUnit::new(nals, timestamp)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_file() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/testsrc2-720p30.h264")
    }

    #[test]
    fn loads_and_loops_a_real_file() {
        let mut src = FileSource::open(&test_file(), 25).unwrap();
        assert_eq!(src.dimensions(), (1280, 720));
        assert_eq!(src.framerate(), 30.0);
        assert_eq!(src.units.len(), 120, "4 s at 30 fps");
        src.pacer = Pacer::new(100_000.0);
        let mut idrs = 0;
        for i in 0..250 {
            let Frame::Encoded(au) = src.next_frame().unwrap() else {
                panic!("file frames are encoded")
            };
            if i == 0 || i == 120 || i == 240 {
                assert!(au.is_idr && au.has_parameter_sets(), "loop starts at IDR");
            }
            idrs += usize::from(au.is_idr);
        }
        assert_eq!(idrs, 9, "an IDR every 30 frames, across loops");
    }

    #[test]
    fn rejects_files_that_are_not_h264() {
        let err = |data: &'static [u8]| {
            FileSource::from_bytes("x", &Bytes::from_static(data), 30)
                .err()
                .unwrap()
                .to_string()
        };
        assert!(err(b"not video at all").contains("no SPS/PPS"));
        assert!(err(b"\0\0\0\x01\x41\x9a\x00").contains("no SPS/PPS"));
        let no_idr: &[u8] = &[
            0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xec, 0x04, 0x40, 0x00, 0x00,
            0x03, 0x00, 0x40, 0x00, 0x00, 0x0f, 0x03, 0xc6, 0x0c, 0xa8, 0, 0, 1, 0x68, 0xce, 0x3c,
            0x80, 0, 0, 1, 0x41, 0x9a,
        ];
        assert!(err(no_idr).contains("no IDR"));
        let e = FileSource::open(Path::new("/nonexistent.h264"), 30)
            .err()
            .unwrap();
        assert!(e.to_string().contains("/nonexistent.h264"));
    }
}
