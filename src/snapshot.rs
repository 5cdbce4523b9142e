//! Still pictures for `/snapshot.jpg` (Home Assistant's camera card, a
//! browser tab): the newest raw frame, encoded to JPEG on demand.
//!
//! The pipeline copies a frame only when one is wanted ([`Stills::offer`]
//! costs one atomic load per frame otherwise). Callers share the work: one
//! at a time asks for a frame and encodes it, the others wait and get the
//! same JPEG, which is kept for [`FRESH_FOR`]; so the daemon encodes at
//! most one JPEG a second for each size asked for, however many callers.
//! The encode runs off the I/O thread: on the V4L2 JPEG encoder where
//! there is one (a Pi's bcm2835-codec), else in software (`jpeg-encoder`).
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

use crate::format::raw::RawFrame;
use crate::format::rtp::packetizer::RtpUnit;
use crate::pipeline::tap::Tap;
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
    hardware: Arc<Mutex<Hardware>>,
    requests: AtomicU64,
    encodes: AtomicU64,
}

impl Stills {
    /// Keeps a copy of `frame` when a caller is waiting for one.
    fn offer(&self, frame: &RawFrame<'_>) {
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

    /// Keeps each key frame the stream sends (parameter sets in front),
    /// for sources without raw frames.
    fn keep_keyframe(&self, nals: &[Bytes]) {
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
        let hardware = Arc::clone(&self.hardware);
        let jpeg = tokio::task::spawn_blocking(move || encode(&encoding, width, &hardware))
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

/// Encodes `still` as a `width`-pixel-wide JPEG (4:2:0): by the V4L2
/// image encoder where there is one, else in software.
fn encode(still: &Still, width: u32, hardware: &Mutex<Hardware>) -> Result<Bytes, StillError> {
    let picture = prepare(still, width);
    #[cfg(feature = "v4l2")]
    if let Some(jpeg) = hardware_encode(&picture, hardware) {
        return Ok(jpeg);
    }
    #[cfg(not(feature = "v4l2"))]
    let _ = hardware;
    let mut out = Vec::with_capacity(64 * 1024);
    let mut encoder = Encoder::new(&mut out, QUALITY);
    encoder.set_sampling_factor(SamplingFactor::F_2_2);
    encoder
        .encode_image(Packed(&picture))
        .map_err(|e| StillError::Encode(e.to_string()))?;
    Ok(Bytes::from(out))
}

/// The hardware JPEG encoder: looked for on the first still; `Absent` if
/// there is none or it failed (software takes over, and the log says why).
#[cfg(feature = "v4l2")]
#[derive(Default)]
enum Hardware {
    #[default]
    Unprobed,
    Absent,
    Found(Box<crate::encode::v4l2_jpeg::M2mJpegEncoder>),
}

#[cfg(feature = "v4l2")]
impl std::fmt::Debug for Hardware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Unprobed => "Unprobed",
            Self::Absent => "Absent",
            Self::Found(_) => "Found",
        })
    }
}

/// Without V4L2 every JPEG is coded in software.
#[cfg(not(feature = "v4l2"))]
#[derive(Debug, Default)]
struct Hardware;

/// `picture` coded by the V4L2 JPEG encoder, or `None` to code it in
/// software.
#[cfg(feature = "v4l2")]
fn hardware_encode(picture: &Still, hardware: &Mutex<Hardware>) -> Option<Bytes> {
    use crate::encode::encoder::EncodeError;
    use crate::encode::v4l2_jpeg::M2mJpegEncoder;
    use crate::encode::v4l2_m2m::CodedFormat;
    let mut hardware = hardware.lock().unwrap();
    if let Hardware::Unprobed = *hardware {
        *hardware = match M2mJpegEncoder::find(CodedFormat::Jpeg, QUALITY) {
            Some(encoder) => Hardware::Found(Box::new(encoder)),
            None => {
                tracing::info!("snapshots: JPEG in software (no V4L2 JPEG encoder)");
                Hardware::Absent
            }
        };
    }
    let Hardware::Found(encoder) = &mut *hardware else {
        return None;
    };
    match encoder.encode(&picture.i420, picture.width, picture.height) {
        Ok(jpeg) => Some(jpeg),
        Err(e @ EncodeError::Unavailable(_)) => {
            tracing::debug!("snapshots: {e}; this one in software");
            None
        }
        Err(e) => {
            tracing::warn!(
                "snapshots: the JPEG encoder failed ({e}); JPEG in software from now on"
            );
            *hardware = Hardware::Absent;
            None
        }
    }
}

/// `still` scaled to `width` by picking the nearest pixel, with its levels
/// widened from video range (Y 16-235, Cb/Cr 16-240) to the full range
/// JPEG uses.
fn prepare(still: &Still, width: u32) -> Still {
    let (sw, sh) = (still.width as usize, still.height as usize);
    let (scw, sch) = (sw.div_ceil(2), sh.div_ceil(2));
    // JPEG's sizes are 16-bit.
    let height = (u64::from(still.height) * u64::from(width) / u64::from(still.width))
        .clamp(1, u64::from(u16::MAX)) as u32;
    let width = width.min(u32::from(u16::MAX));
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut i420 = Vec::with_capacity(w * h + 2 * cw * ch);
    let columns: Vec<usize> = (0..w).map(|x| x * sw / w).collect();
    for row in 0..h {
        let line = &still.i420[row * sh / h * sw..][..sw];
        i420.extend(columns.iter().map(|&x| full_luma(line[x])));
    }
    for plane in 0..2 {
        let base = sw * sh + plane * scw * sch;
        for row in 0..ch {
            let line = &still.i420[base + (2 * row * sh / h) / 2 * scw..][..scw];
            i420.extend((0..cw).map(|c| full_chroma(line[columns[(2 * c).min(w - 1)] / 2])));
        }
    }
    Still {
        width,
        height,
        i420,
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

/// A packed I420 still as `jpeg-encoder` reads it, row by row.
struct Packed<'a>(&'a Still);

impl ImageBuffer for Packed<'_> {
    fn get_jpeg_color_type(&self) -> JpegColorType {
        JpegColorType::Ycbcr
    }

    fn width(&self) -> u16 {
        self.0.width as u16
    }

    fn height(&self) -> u16 {
        self.0.height as u16
    }

    fn fill_buffers(&self, row: u16, buffers: &mut [Vec<u8>; 4]) {
        let s = self.0;
        let (w, h) = (s.width as usize, s.height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let y = usize::from(row);
        let chroma = |plane: usize| &s.i420[w * h + plane * cw * ch + (y / 2) * cw..][..cw];
        let (cb, cr) = (chroma(0), chroma(1));
        buffers[0].extend_from_slice(&s.i420[y * w..(y + 1) * w]);
        for x in 0..w {
            buffers[1].push(cb[x / 2]);
            buffers[2].push(cr[x / 2]);
        }
    }
}

/// The pipeline's side: a raw frame copied when a caller waits for one,
/// and the newest key frame.
impl Tap for Stills {
    fn raw(&self, frame: &RawFrame<'_>) {
        self.offer(frame);
    }

    fn encoded(&self, unit: &RtpUnit) {
        if unit.is_idr {
            self.keep_keyframe(&unit.nals);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::raw::{Pixels, Plane};

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
        let nals = crate::format::h264::split_annexb(&Bytes::from(sample));
        let first_idr = nals
            .iter()
            .position(|n| crate::format::h264::nal_type(n) == crate::format::h264::NAL_IDR)
            .unwrap();
        let stills = Stills::default();
        stills.keep_keyframe(&nals[..=first_idr]);
        let jpeg = rt.block_on(stills.jpeg(Some(640))).unwrap();
        assert_eq!(jpeg_size(&jpeg), (640, 360));
    }

    #[test]
    fn scaling_picks_each_planes_nearest_pixel_at_odd_sizes() {
        // 7x5: luma is the column (16 + 20 x), Cb the chroma column (16 or
        // 240), Cr the chroma row (16 or 240).
        let (w, h, cw, ch) = (7, 5, 4, 3);
        let mut i420: Vec<u8> = (0..h)
            .flat_map(|_| (0..w).map(|x| 16 + 20 * x as u8))
            .collect();
        i420.extend((0..ch).flat_map(|_| (0..cw).map(|c| if c < 2 { 16 } else { 240 })));
        i420.extend((0..ch).flat_map(|r| (0..cw).map(move |_| if r < 1 { 16 } else { 240 })));
        let still = Still {
            width: w,
            height: h,
            i420,
        };
        let same = prepare(&still, 7);
        assert_eq!((same.width, same.height), (7, 5));
        assert_eq!(same.i420.len(), 7 * 5 + 2 * 4 * 3);
        assert_eq!(same.i420[..7], [0, 23, 46, 69, 93, 116, 139], "widened");
        let half = prepare(&still, 3);
        assert_eq!((half.width, half.height), (3, 2));
        // Columns 0, 2, 4 of luma; 2x1 chroma from columns 0 and 2 (of 4).
        assert_eq!(half.i420[..3], [0, 46, 93]);
        assert_eq!(half.i420[6..8], [1, 255], "Cb follows the columns");
        assert_eq!(half.i420[8..10], [1, 1], "Cr of the first row");
        let jpeg = encode(&still, 3, &Mutex::default()).unwrap();
        assert_eq!(jpeg_size(&jpeg), (3, 2));
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
