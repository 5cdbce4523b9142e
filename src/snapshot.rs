//! Still pictures for `/snapshot.jpg` (Home Assistant's camera card, a
//! browser tab): the newest raw frame, encoded to JPEG on demand.
//!
//! The pipeline copies a frame only when one is wanted ([`Stills::offer`]
//! costs one atomic load per frame otherwise). Callers share the work: one
//! at a time asks for a frame and encodes it, the others wait and get the
//! same JPEG, which is kept for [`FRESH_FOR`]; so the daemon encodes at
//! most one JPEG a second for each size asked for, however many callers.
//! The encode runs off the I/O thread (`jpeg-encoder`, in software).
//!
//! A source that delivers H.264 itself (a file, an H.264 camera) has no raw
//! frames: its newest key frame is decoded instead (openh264), so its still
//! can be as old as the key-frame interval.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use jpeg_encoder::{Encoder, ImageBuffer, JpegColorType, SamplingFactor};
use tokio::sync::Notify;

use crate::source::RawFrame;
use crate::source::i420;

/// How long a JPEG is served again instead of encoding a newer one.
pub const FRESH_FOR: Duration = Duration::from_secs(1);
/// Longest a caller waits for the pipeline's next frame.
const FRAME_TIMEOUT: Duration = Duration::from_millis(800);
/// JPEG quality (1 to 100).
const QUALITY: u8 = 85;
/// Sizes kept at once (each `?width=` asked for is one).
const MAX_SIZES: usize = 4;
/// The narrowest picture `?width=` may ask for.
pub const MIN_WIDTH: u32 = 16;

/// Why there is no still picture.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StillError {
    /// No frame came from the pipeline in time.
    #[error("no picture from the camera within {FRAME_TIMEOUT:?}")]
    NoFrame,
    /// The JPEG encoder failed.
    #[error("JPEG encoding failed: {0}")]
    Encode(String),
    /// The source's key frame could not be decoded.
    #[error("cannot decode the source's key frame: {0}")]
    Decode(String),
}

/// One raw frame, copied out of the pipeline as tightly packed I420.
#[derive(Debug)]
struct Still {
    width: u32,
    height: u32,
    i420: Vec<u8>,
}

#[derive(Debug, Default)]
struct Cache {
    /// When the kept frame was taken from the pipeline.
    taken: Option<Instant>,
    still: Option<Arc<Still>>,
    /// JPEGs of the kept frame: (width, bytes).
    jpegs: Vec<(u32, Bytes)>,
}

/// The pipeline's side and the callers' side of still pictures.
#[derive(Debug, Default)]
pub struct Stills {
    wanted: AtomicBool,
    offered: Mutex<Option<Arc<Still>>>,
    /// The pipeline has raw frames (else stills come from key frames).
    raw: AtomicBool,
    /// The newest key frame's NAL units, parameter sets first.
    keyframe: Mutex<Option<Vec<Bytes>>>,
    arrived: Notify,
    cache: tokio::sync::Mutex<Cache>,
    requests: AtomicU64,
    encodes: AtomicU64,
}

impl Stills {
    /// Called by the pipeline with each raw frame: keeps a copy when a
    /// caller is waiting for one.
    pub fn offer(&self, frame: &RawFrame<'_>) {
        self.raw.store(true, Ordering::Relaxed);
        if !self.wanted.load(Ordering::Relaxed) || !self.wanted.swap(false, Ordering::AcqRel) {
            return;
        }
        let mut scratch = Vec::new();
        let (w, h) = (frame.width as usize, frame.height as usize);
        let (y, u, v) = i420::planes(frame, &mut scratch);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut out = Vec::with_capacity(w * h + 2 * cw * ch);
        for (plane, width, lines, blank) in [(y, w, h, 16), (u, cw, ch, 128), (v, cw, ch, 128)] {
            let start = out.len();
            for line in plane.data.chunks(plane.stride.max(1)).take(lines) {
                out.extend_from_slice(&line[..width.min(line.len())]);
            }
            // A short plane (a driver's odd stride) is padded, not read past.
            out.resize(start + width * lines, blank);
        }
        *self.offered.lock().unwrap() = Some(Arc::new(Still {
            width: frame.width,
            height: frame.height,
            i420: out,
        }));
        self.arrived.notify_waiters();
    }

    /// Called with each key frame the stream sends (parameter sets in
    /// front), for sources without raw frames.
    pub fn keep_keyframe(&self, nals: &[Bytes]) {
        *self.keyframe.lock().unwrap() = Some(nals.to_vec());
    }

    /// The newest picture as JPEG, `width` pixels wide if given (never
    /// wider than the picture; the height follows).
    pub async fn jpeg(&self, width: Option<u32>) -> Result<Bytes, StillError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        let fresh = cache
            .taken
            .is_some_and(|t| now.duration_since(t) < FRESH_FOR);
        let still = match (&cache.still, fresh) {
            (Some(still), true) => Arc::clone(still),
            _ => {
                let still = self.next_frame().await?;
                *cache = Cache {
                    taken: Some(Instant::now()),
                    still: Some(Arc::clone(&still)),
                    jpegs: Vec::new(),
                };
                still
            }
        };
        let width = width
            .unwrap_or(still.width)
            .clamp(MIN_WIDTH.min(still.width), still.width);
        if let Some((_, jpeg)) = cache.jpegs.iter().find(|(w, _)| *w == width) {
            return Ok(jpeg.clone());
        }
        let encoding = Arc::clone(&still);
        let jpeg = tokio::task::spawn_blocking(move || encode(&encoding, width))
            .await
            .map_err(|e| StillError::Encode(e.to_string()))??;
        self.encodes.fetch_add(1, Ordering::Relaxed);
        if cache.jpegs.len() >= MAX_SIZES {
            cache.jpegs.remove(0);
        }
        cache.jpegs.push((width, jpeg.clone()));
        Ok(jpeg)
    }

    /// Asks the pipeline for its next frame and waits for it, or decodes
    /// the newest key frame of a source without raw frames.
    async fn next_frame(&self) -> Result<Arc<Still>, StillError> {
        let keyframe = self.keyframe.lock().unwrap().clone();
        if !self.raw.load(Ordering::Relaxed) {
            if let Some(nals) = keyframe {
                return tokio::task::spawn_blocking(move || decode(&nals))
                    .await
                    .map_err(|e| StillError::Decode(e.to_string()))?
                    .map(Arc::new);
            }
        }
        let arrived = self.arrived.notified();
        tokio::pin!(arrived);
        arrived.as_mut().enable();
        *self.offered.lock().unwrap() = None;
        self.wanted.store(true, Ordering::Release);
        let _ = tokio::time::timeout(FRAME_TIMEOUT, arrived).await;
        self.wanted.store(false, Ordering::Relaxed);
        self.offered
            .lock()
            .unwrap()
            .take()
            .ok_or(StillError::NoFrame)
    }

    /// `/snapshot.jpg` requests since the start.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// JPEGs encoded since the start.
    pub fn encodes(&self) -> u64 {
        self.encodes.load(Ordering::Relaxed)
    }
}

/// Decodes one key frame (Annex-B NAL units) to a still.
#[cfg(feature = "software-encoder")]
fn decode(nals: &[Bytes]) -> Result<Still, StillError> {
    use openh264::formats::YUVSource;
    let err = |e: openh264::Error| StillError::Decode(e.to_string());
    let mut annexb = Vec::with_capacity(nals.iter().map(|n| n.len() + 4).sum());
    for nal in nals {
        annexb.extend_from_slice(&[0, 0, 0, 1]);
        annexb.extend_from_slice(nal);
    }
    let mut decoder = openh264::decoder::Decoder::new().map_err(err)?;
    let copy = |yuv: &openh264::decoder::DecodedYUV<'_>| {
        let (w, h) = yuv.dimensions();
        let (ys, us, vs) = yuv.strides();
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut i420 = Vec::with_capacity(w * h + 2 * cw * ch);
        for (data, stride, width, lines) in [
            (yuv.y(), ys, w, h),
            (yuv.u(), us, cw, ch),
            (yuv.v(), vs, cw, ch),
        ] {
            for line in data.chunks(stride.max(1)).take(lines) {
                i420.extend_from_slice(&line[..width.min(line.len())]);
            }
        }
        i420.resize(w * h + 2 * cw * ch, 128);
        Still {
            width: w as u32,
            height: h as u32,
            i420,
        }
    };
    if let Some(yuv) = decoder.decode(&annexb).map_err(err)? {
        return Ok(copy(&yuv));
    }
    let rest = decoder.flush_remaining().map_err(err)?;
    rest.first()
        .map(copy)
        .ok_or_else(|| StillError::Decode("no picture in it".into()))
}

/// Without openh264 there is no decoder.
#[cfg(not(feature = "software-encoder"))]
fn decode(_: &[Bytes]) -> Result<Still, StillError> {
    Err(StillError::Decode(
        "this build has no H.264 decoder (feature software-encoder)".into(),
    ))
}

/// Encodes `still` as a `width`-pixel-wide JPEG (4:2:0).
fn encode(still: &Still, width: u32) -> Result<Bytes, StillError> {
    let scaled = Scaled::new(still, width);
    let mut out = Vec::with_capacity(64 * 1024);
    let mut encoder = Encoder::new(&mut out, QUALITY);
    encoder.set_sampling_factor(SamplingFactor::F_2_2);
    encoder
        .encode_image(scaled)
        .map_err(|e| StillError::Encode(e.to_string()))?;
    Ok(Bytes::from(out))
}

/// A still, scaled by picking the nearest pixel, with its levels widened
/// from video range (Y 16-235, Cb/Cr 16-240) to the full range JPEG uses.
struct Scaled<'a> {
    still: &'a Still,
    width: u16,
    height: u16,
    /// For each output column, the source column.
    columns: Vec<usize>,
}

impl<'a> Scaled<'a> {
    fn new(still: &'a Still, width: u32) -> Self {
        let height = (u64::from(still.height) * u64::from(width) / u64::from(still.width)).max(1);
        // JPEG's sizes are 16-bit.
        let width = width.min(u32::from(u16::MAX)) as u16;
        let height = height.min(u64::from(u16::MAX)) as u16;
        let columns = (0..usize::from(width))
            .map(|x| x * still.width as usize / usize::from(width))
            .collect();
        Self {
            still,
            width,
            height,
            columns,
        }
    }
}

/// Video-range luma to full range.
fn full_luma(y: u8) -> u8 {
    ((i32::from(y) - 16) * 255 / 219).clamp(0, 255) as u8
}

/// Video-range chroma to full range.
fn full_chroma(c: u8) -> u8 {
    ((i32::from(c) - 128) * 255 / 224 + 128).clamp(0, 255) as u8
}

impl ImageBuffer for Scaled<'_> {
    fn get_jpeg_color_type(&self) -> JpegColorType {
        JpegColorType::Ycbcr
    }

    fn width(&self) -> u16 {
        self.width
    }

    fn height(&self) -> u16 {
        self.height
    }

    fn fill_buffers(&self, row: u16, buffers: &mut [Vec<u8>; 4]) {
        let s = self.still;
        let (w, h) = (s.width as usize, s.height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let y = usize::from(row) * h / usize::from(self.height);
        let luma = &s.i420[y * w..(y + 1) * w];
        let chroma = |plane: usize| {
            let start = w * h + plane * cw * ch + (y / 2) * cw;
            &s.i420[start..start + cw]
        };
        let (cb, cr) = (chroma(0), chroma(1));
        for &x in &self.columns {
            buffers[0].push(full_luma(luma[x]));
            buffers[1].push(full_chroma(cb[x / 2]));
            buffers[2].push(full_chroma(cr[x / 2]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Pixels, Plane};

    /// A `w`x`h` I420 frame: luma from `luma(x, y)`, chroma neutral.
    fn frame_of(w: u32, h: u32, luma: impl Fn(u32, u32) -> u8) -> (Vec<u8>, Vec<u8>) {
        let y = (0..h)
            .flat_map(|r| (0..w).map(move |c| (c, r)))
            .map(|(c, r)| luma(c, r))
            .collect();
        let chroma = vec![128; (w.div_ceil(2) * h.div_ceil(2)) as usize];
        (y, chroma)
    }

    fn offer(stills: &Stills, w: u32, h: u32, luma: &[u8], chroma: &[u8]) {
        let frame = RawFrame {
            pixels: Pixels::I420 {
                y: Plane {
                    data: luma,
                    stride: w as usize,
                },
                u: Plane {
                    data: chroma,
                    stride: w.div_ceil(2) as usize,
                },
                v: Plane {
                    data: chroma,
                    stride: w.div_ceil(2) as usize,
                },
            },
            dmabuf: None,
            width: w,
            height: h,
            timestamp: Instant::now(),
        };
        stills.offer(&frame);
    }

    /// Width and height from a JPEG's SOF0 marker.
    fn jpeg_size(jpeg: &[u8]) -> (u16, u16) {
        assert_eq!(&jpeg[..2], [0xff, 0xd8], "SOI");
        let at = jpeg.windows(2).position(|m| m == [0xff, 0xc0]).unwrap();
        let be = |i: usize| u16::from_be_bytes([jpeg[at + i], jpeg[at + i + 1]]);
        (be(7), be(5))
    }

    #[test]
    fn frames_are_copied_only_when_wanted() {
        let stills = Stills::default();
        let (luma, chroma) = frame_of(8, 4, |x, _| x as u8);
        offer(&stills, 8, 4, &luma, &chroma);
        assert!(stills.offered.lock().unwrap().is_none());
        stills.wanted.store(true, Ordering::Relaxed);
        offer(&stills, 8, 4, &luma, &chroma);
        let still = stills.offered.lock().unwrap().clone().unwrap();
        assert_eq!(&still.i420[..8], &luma[..8]);
        assert_eq!(still.i420.len(), 8 * 4 + 2 * 4 * 2);
        assert!(
            !stills.wanted.load(Ordering::Relaxed),
            "one copy per request"
        );
    }

    #[test]
    fn callers_within_a_second_share_one_encode() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let stills = Arc::new(Stills::default());
        let (luma, chroma) = frame_of(64, 36, |x, y| (16 + (x + y) * 2) as u8);
        // The "pipeline": offers a frame every 5 ms.
        let pipeline = {
            let stills = Arc::clone(&stills);
            std::thread::spawn(move || {
                for _ in 0..200 {
                    offer(&stills, 64, 36, &luma, &chroma);
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        rt.block_on(async {
            let calls: Vec<_> = (0..20)
                .map(|_| {
                    let stills = Arc::clone(&stills);
                    tokio::spawn(async move { stills.jpeg(None).await })
                })
                .collect();
            let mut first = None;
            for call in calls {
                let jpeg = call.await.unwrap().unwrap();
                assert_eq!(jpeg_size(&jpeg), (64, 36));
                assert_eq!(first.get_or_insert(jpeg.clone()), &jpeg);
            }
            assert_eq!(stills.encodes(), 1);
            let small = stills.jpeg(Some(32)).await.unwrap();
            assert_eq!(jpeg_size(&small), (32, 18));
            assert_eq!(stills.encodes(), 2);
            let huge = stills.jpeg(Some(10_000)).await.unwrap();
            assert_eq!(huge, first.unwrap(), "never wider than the picture");
            assert_eq!(stills.requests(), 22);
        });
        pipeline.join().unwrap();
    }

    #[test]
    fn no_frame_is_an_error_in_time() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let stills = Stills::default();
        let started = Instant::now();
        assert_eq!(rt.block_on(stills.jpeg(None)), Err(StillError::NoFrame));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[cfg(feature = "software-encoder")]
    #[test]
    fn a_key_frame_is_decoded_when_there_are_no_raw_frames() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sample = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/testsrc2-720p30.h264"
        ))
        .unwrap();
        let nals = crate::h264::split_annexb(&Bytes::from(sample));
        let first_idr = nals
            .iter()
            .position(|n| crate::h264::nal_type(n) == crate::h264::NAL_IDR)
            .unwrap();
        let stills = Stills::default();
        stills.keep_keyframe(&nals[..=first_idr]);
        let jpeg = rt.block_on(stills.jpeg(Some(640))).unwrap();
        assert_eq!(jpeg_size(&jpeg), (640, 360));
    }

    #[test]
    fn video_range_becomes_full_range() {
        assert_eq!((full_luma(16), full_luma(235), full_luma(0)), (0, 255, 0));
        assert_eq!(
            (full_chroma(16), full_chroma(128), full_chroma(240)),
            (1, 128, 255)
        );
    }
}
