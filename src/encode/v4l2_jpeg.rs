//! Still pictures on a V4L2 memory-to-memory image encoder: on a Pi, the
//! bcm2835-codec `ENCODE_IMAGE` node (found by what it codes, like the
//! H.264 one; its usual node number is 31), for `/snapshot.jpg`. One
//! picture in, one JPEG out; the codec stays open between stills and is
//! restarted when their size changes.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::encoder::EncodeError;
use super::v4l2_m2m::{CodedBuffer, CodedFormat, JpegQuality, M2mCodec, find_encoder};
use crate::format::raw::{Pixels, Plane, RawFrame};
use crate::v4l2::Device;

/// Longest wait for the encoder's picture.
const WAIT: Duration = Duration::from_secs(1);

/// An image encoder node, and its codec once a still has gone in.
pub struct M2mJpegEncoder {
    coded: CodedFormat,
    quality: JpegQuality,
    path: PathBuf,
    /// The running codec and the picture size it was started for.
    codec: Option<(M2mCodec, u32, u32)>,
}

impl M2mJpegEncoder {
    /// The first encoder coding `coded` (JPEG on a Pi), or `None`.
    pub fn find(coded: CodedFormat, quality: u8) -> Option<Self> {
        let device = find_encoder(coded)?;
        tracing::info!(
            "snapshots: {:?} by {} ({}, driver {})",
            coded,
            device.path().display(),
            device.card(),
            device.driver()
        );
        Some(Self {
            coded,
            quality: JpegQuality(quality),
            path: device.path().to_path_buf(),
            codec: None,
        })
    }

    /// Codes one `width`x`height` picture, tightly packed I420. A size the
    /// encoder cannot code is [`EncodeError::Unavailable`]: that picture
    /// is for someone else to code.
    pub fn encode(&mut self, i420: &[u8], width: u32, height: u32) -> Result<Bytes, EncodeError> {
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        if i420.len() < w * h + 2 * cw * ch {
            return Err(EncodeError::Failed(format!(
                "a {width}x{height} picture needs {} bytes, got {}",
                w * h + 2 * cw * ch,
                i420.len()
            )));
        }
        let (y, chroma) = i420.split_at(w * h);
        let (u, v) = chroma.split_at(cw * ch);
        let frame = RawFrame {
            pixels: Pixels::I420 {
                y: Plane { data: y, stride: w },
                u: Plane {
                    data: u,
                    stride: cw,
                },
                v: Plane {
                    data: &v[..cw * ch],
                    stride: cw,
                },
            },
            dmabuf: None,
            width,
            height,
            timestamp: Instant::now(),
        };
        if self
            .codec
            .as_ref()
            .is_some_and(|(_, cw, ch)| (*cw, *ch) != (width, height))
        {
            // Stopped (and its buffers freed) before the node is opened again.
            self.codec = None;
        }
        let codec = match &mut self.codec {
            Some((codec, _, _)) => codec,
            None => {
                let device = Device::open(&self.path).map_err(EncodeError::from)?;
                let codec = M2mCodec::start(device, self.coded, &frame, &self.quality, false)?;
                if !codec.codes_exact_size() {
                    return Err(EncodeError::Unavailable(format!(
                        "{} cannot code a {width}x{height} picture",
                        self.path.display()
                    )));
                }
                &mut self.codec.insert((codec, width, height)).0
            }
        };
        codec.push(&frame)?;
        let mut out: Vec<CodedBuffer> = Vec::with_capacity(1);
        let until = Instant::now() + WAIT;
        while out.is_empty() && Instant::now() < until {
            codec.pull(until.saturating_duration_since(Instant::now()), &mut out)?;
        }
        match out.pop() {
            Some(coded) if !coded.data.is_empty() => Ok(coded.data),
            _ => {
                // A picture still inside would come out for the next still.
                self.codec = None;
                Err(EncodeError::Stalled(format!(
                    "{} returned no picture within {WAIT:?}",
                    self.path.display()
                )))
            }
        }
    }
}

/// Tests against the kernel's vicodec driver (its FWHT codec stands in for
/// JPEG, which no kernel test driver codes); `ci/vm` runs them in a VM.
#[cfg(test)]
pub(crate) mod vm_tests {
    use super::*;

    /// A `w`x`h` I420 picture with luma `y`.
    fn picture(w: u32, h: u32, y: u8) -> Vec<u8> {
        let (w, h) = (w as usize, h as usize);
        let mut p = vec![y; w * h];
        p.resize(w * h + 2 * w.div_ceil(2) * h.div_ceil(2), 128);
        p
    }

    /// A FWHT frame header's width and height (big-endian words 3 and 4,
    /// after the magics and version).
    fn fwht_size(data: &[u8]) -> (u32, u32) {
        let word = |i: usize| u32::from_be_bytes(data[4 * i..4 * i + 4].try_into().unwrap());
        (word(3), word(4))
    }

    #[test]
    #[ignore = "needs the vicodec driver: ci/vm runs it"]
    fn one_picture_in_one_out_and_a_new_size_restarts_the_codec() {
        let mut encoder = M2mJpegEncoder::find(CodedFormat::Fwht, 85).expect("vicodec");
        let mut trace = Vec::new();
        for (w, h) in [(640, 360), (640, 360), (1280, 720), (640, 360)] {
            for y in [40, 200] {
                let coded = encoder.encode(&picture(w, h, y), w, h).unwrap();
                trace.push(((w, h), fwht_size(&coded), coded.len()));
            }
        }
        assert!(
            trace.iter().all(|(asked, got, _)| asked == got),
            "asked, got, bytes: {trace:?}"
        );
        // vicodec codes nothing under 640x360: such a still is not coded
        // larger, it is refused (and the snapshot codes it in software).
        let err = encoder
            .encode(&picture(320, 180, 90), 320, 180)
            .unwrap_err();
        assert!(matches!(err, EncodeError::Unavailable(_)), "{err}");
        let coded = encoder.encode(&picture(640, 360, 90), 640, 360).unwrap();
        assert_eq!(fwht_size(&coded), (640, 360));
        // A short buffer is refused, not read past.
        let err = encoder.encode(&[0; 100], 640, 360).unwrap_err();
        assert!(err.to_string().contains("needs 345600 bytes"), "{err}");
    }
}
