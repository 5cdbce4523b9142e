//! The file source: an Annex-B H.264 elementary stream read from disk as it
//! plays (memory stays small whatever the file's size), paced at its frame
//! rate, and looped forever from its first IDR.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use bytes::{Bytes, BytesMut};

use super::pacer::{Pacer, WhenLate};
use crate::format::h264::{
    AccessUnit, AccessUnitSplitter, NAL_IDR, NAL_PPS, NAL_SPS, ParameterSets, nal_type,
};
use crate::source::frame::{Frame, Source, SourceError};

/// Bytes read from the file at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Largest NAL unit accepted: far above any real picture, small enough that
/// a file that is not H.264 cannot make the daemon buffer it whole.
const MAX_NAL: usize = 8 * 1024 * 1024;
/// How far into the file the first IDR (and the SPS/PPS) must be.
const PROBE_LIMIT: u64 = 64 * 1024 * 1024;

const HINT: &str = "is it an Annex-B H.264 elementary stream? \
    Convert with: ffmpeg -i IN -c:v copy -bsf:v h264_mp4toannexb -an -f h264 OUT.h264";

/// Reads NAL units (start codes removed) one by one from an Annex-B stream.
///
/// Hand-written: h264-reader's Annex-B reader is push-based and copies every
/// NAL; this hands out `Bytes` slices of the read buffer and knows each NAL's
/// file offset, which looping needs.
struct NalReader {
    file: File,
    buf: BytesMut,
    /// File offset of `buf[0]`.
    base: u64,
    /// Where to resume looking for the next start code in `buf`.
    scan_from: usize,
    eof: bool,
}

impl NalReader {
    fn new(file: File) -> Self {
        Self {
            file,
            buf: BytesMut::new(),
            base: 0,
            scan_from: 0,
            eof: false,
        }
    }

    fn seek(&mut self, offset: u64) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Start(offset))?;
        self.buf.clear();
        self.base = offset;
        self.scan_from = 0;
        self.eof = false;
        Ok(())
    }

    fn fill(&mut self) -> std::io::Result<()> {
        self.buf.reserve(READ_CHUNK);
        let start = self.buf.len();
        self.buf.resize(start + READ_CHUNK, 0);
        let n = self.file.read(&mut self.buf[start..])?;
        self.buf.truncate(start + n);
        self.eof = n == 0;
        Ok(())
    }

    /// The next NAL unit and the file offset of its start code; `None` at
    /// the end of the file.
    fn next(&mut self) -> Result<Option<(u64, Bytes)>, String> {
        loop {
            // Drop anything before the first start code (keeping two bytes
            // when there is none: one may straddle the next read).
            let first = find_start_code(&self.buf, 0);
            let junk = first.unwrap_or(self.buf.len().saturating_sub(2));
            if junk > 0 {
                let _ = self.buf.split_to(junk);
                self.base += junk as u64;
                self.scan_from = 0;
            }
            if first.is_some() {
                let search = self.scan_from.max(3);
                if let Some(next) = find_start_code(&self.buf, search) {
                    return Ok(Some(self.take(next)));
                }
                self.scan_from = self.buf.len().saturating_sub(2).max(3);
            }
            if self.eof {
                if self.buf.len() > 3 && self.buf.starts_with(&[0, 0, 1]) {
                    let end = self.buf.len();
                    return Ok(Some(self.take(end)));
                }
                return Ok(None);
            }
            if self.buf.len() > MAX_NAL {
                return Err(format!(
                    "a NAL unit larger than {} MB at byte {}",
                    MAX_NAL >> 20,
                    self.base
                ));
            }
            self.fill().map_err(|e| e.to_string())?;
        }
    }

    /// Splits off `buf[..end]` (a start code and its NAL unit).
    fn take(&mut self, end: usize) -> (u64, Bytes) {
        let offset = self.base;
        let chunk = self.buf.split_to(end).freeze();
        self.base += end as u64;
        self.scan_from = 0;
        // Trailing zeros belong to the next start code (or are padding).
        let mut len = chunk.len();
        while len > 3 && chunk[len - 1] == 0 {
            len -= 1;
        }
        (offset, chunk.slice(3..len))
    }
}

/// Position of the first `00 00 01` in `buf` at or after `from`.
fn find_start_code(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(3)
        .position(|w| w == [0, 0, 1])
        .map(|p| p + from)
}

/// An H.264 file played in a loop.
pub struct FileSource {
    name: String,
    reader: NalReader,
    splitter: AccessUnitSplitter,
    /// File offset of the access unit holding the first IDR: where every
    /// loop starts.
    loop_start: u64,
    params: ParameterSets,
    fps: f64,
    pacer: Pacer,
}

impl FileSource {
    /// Opens `path` and checks it holds H.264 (SPS, PPS and an IDR near the
    /// start); paces at the SPS's frame rate, else `default_fps`.
    pub fn open(path: &Path, default_fps: u32) -> Result<Self, SourceError> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|error| SourceError::Io {
            path: name.clone(),
            error,
        })?;
        let invalid = |what: String| SourceError::Invalid(format!("{name}: {what}"));
        let mut reader = NalReader::new(file);
        let (mut sps, mut pps) = (None, None);
        let mut splitter = AccessUnitSplitter::default();
        let mut unit_offset = 0;
        let mut loop_start = None;
        while loop_start.is_none() {
            let Some((offset, nal)) = reader.next().map_err(invalid)? else {
                break;
            };
            if offset > PROBE_LIMIT {
                break;
            }
            if splitter.push(nal.clone()).is_some() {
                unit_offset = offset;
            }
            match nal_type(&nal) {
                NAL_SPS => sps = Some(nal),
                NAL_PPS => pps = Some(nal),
                NAL_IDR => loop_start = Some(unit_offset),
                _ => {}
            }
        }
        let (Some(sps), Some(pps)) = (sps, pps) else {
            return Err(invalid(format!("no SPS/PPS found; {HINT}")));
        };
        let params = ParameterSets::new(sps, pps).map_err(|e| invalid(e.to_string()))?;
        let loop_start =
            loop_start.ok_or_else(|| invalid(format!("no IDR (key) frame found; {HINT}")))?;
        let fps = match params.fps {
            Some(fps) if (1.0..=240.0).contains(&fps) => fps,
            _ => {
                tracing::info!(
                    file = %name,
                    fps = default_fps,
                    "the file's SPS gives no frame rate; pacing at video.framerate"
                );
                f64::from(default_fps)
            }
        };
        reader
            .seek(loop_start)
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            name: format!("file {name}"),
            reader,
            splitter: AccessUnitSplitter::default(),
            loop_start,
            params,
            fps,
            pacer: Pacer::new(fps, WhenLate::CatchUp),
        })
    }

    /// The next access unit in file order, looping at the end.
    fn next_unit(&mut self) -> Result<Vec<Bytes>, SourceError> {
        let mut looped = false;
        loop {
            let next = self.reader.next().map_err(|e| broken(&self.name, e))?;
            match next {
                Some((_, nal)) => {
                    if let Some(unit) = self.splitter.push(nal) {
                        return Ok(unit);
                    }
                }
                None if looped => {
                    return Err(broken(
                        &self.name,
                        "nothing left to play: was the file truncated?",
                    ));
                }
                None => {
                    looped = true;
                    let last = self.splitter.finish();
                    self.reader
                        .seek(self.loop_start)
                        .map_err(|e| broken(&self.name, e))?;
                    if let Some(unit) = last {
                        return Ok(unit);
                    }
                }
            }
        }
    }
}

/// A file that stopped making sense while playing.
fn broken(name: &str, e: impl std::fmt::Display) -> SourceError {
    SourceError::Invalid(format!("{name}: {e}"))
}

impl Source for FileSource {
    fn kind(&self) -> crate::config::SourceKind {
        crate::config::SourceKind::File
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn dimensions(&self) -> (u32, u32) {
        (self.params.width, self.params.height)
    }

    fn framerate(&self) -> f64 {
        self.fps
    }

    fn is_encoded(&self) -> bool {
        true
    }

    fn parameter_sets(&self) -> Option<ParameterSets> {
        Some(self.params.clone())
    }

    fn next_frame(&mut self) -> Result<Frame<'_>, SourceError> {
        // Read first: disk latency is absorbed before the frame is due.
        let nals = self.next_unit()?;
        let timestamp = self.pacer.wait();
        Ok(Frame::Encoded(AccessUnit::new(nals, timestamp)))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn test_file() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/testsrc2-720p30.h264")
    }

    fn open_bytes(data: &[u8]) -> Result<FileSource, SourceError> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(data).unwrap();
        FileSource::open(f.path(), 30)
    }

    fn play(src: &mut FileSource, n: usize) -> Vec<AccessUnit> {
        src.pacer = Pacer::new(100_000.0, WhenLate::CatchUp);
        (0..n)
            .map(|_| match src.next_frame().unwrap() {
                Frame::Encoded(au) => au,
                Frame::Raw(_) => panic!("file frames are encoded"),
            })
            .collect()
    }

    #[test]
    fn plays_and_loops_a_real_file() {
        let mut src = FileSource::open(&test_file(), 25).unwrap();
        assert_eq!(src.dimensions(), (1280, 720));
        assert_eq!(src.framerate(), 30.0);
        let units = play(&mut src, 250);
        for (i, au) in units.iter().enumerate() {
            let starts_gop = i % 30 == 0;
            assert_eq!(au.is_idr, starts_gop, "frame {i}: an IDR every 30 frames");
            if starts_gop {
                assert!(au.has_parameter_sets(), "frame {i}: SPS/PPS before the IDR");
            }
        }
        // The file holds 120 pictures: the second loop repeats the first.
        let nals = |au: &AccessUnit| au.nals.clone();
        assert_eq!(nals(&units[5]), nals(&units[125]));
        assert_eq!(nals(&units[119]), nals(&units[239]));
    }

    #[test]
    fn skips_leading_junk_and_loops_from_the_first_idr() {
        let file = std::fs::read(test_file()).unwrap();
        // Junk, then a P slice that cannot be decoded before any IDR, then
        // the real stream.
        let mut data = b"junk".to_vec();
        data.extend_from_slice(&[0, 0, 0, 1, 0x41, 0x9a, 0x11]);
        data.extend_from_slice(&file);
        let mut src = open_bytes(&data).unwrap();
        let units = play(&mut src, 121);
        assert!(units[0].is_idr, "starts at the first IDR");
        assert!(units[120].is_idr, "loops to the first IDR, not to the junk");
        assert_eq!(units[0].nals, units[120].nals);
    }

    #[test]
    fn rejects_files_that_are_not_h264() {
        let err = |data: &[u8]| open_bytes(data).err().unwrap().to_string();
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

    #[test]
    fn a_file_without_start_codes_is_refused_without_reading_it_whole() {
        let big = vec![0x55u8; MAX_NAL + 2 * READ_CHUNK];
        let e = open_bytes(&big).err().unwrap().to_string();
        assert!(e.contains("no SPS/PPS"), "{e}");
        let mut huge_nal = vec![0, 0, 1, 0x65];
        huge_nal.extend(vec![0x55u8; MAX_NAL + 2 * READ_CHUNK]);
        let e = open_bytes(&huge_nal).err().unwrap().to_string();
        assert!(e.contains("larger than"), "{e}");
    }
}
