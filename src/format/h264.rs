//! H.264 bitstream helpers: access units, Annex-B splitting, access-unit
//! boundaries and parameter sets (what the SDP and late joiners need).

use std::time::Instant;

use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::rbsp::{BitReader, decode_nal};

/// NAL unit type of a non-IDR coded slice.
pub const NAL_SLICE: u8 = 1;
/// NAL unit type of an IDR coded slice.
pub const NAL_IDR: u8 = 5;
/// NAL unit type of supplemental enhancement information.
pub const NAL_SEI: u8 = 6;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;
/// NAL unit type of an access unit delimiter.
pub const NAL_AUD: u8 = 9;

/// The `nal_unit_type` of a NAL unit (its first byte's low five bits).
pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// One coded picture: the NAL units (without start codes) that make it up.
///
/// NAL payloads are reference-counted `Bytes`: handing an access unit to many
/// clients never copies the picture.
#[derive(Debug, Clone)]
pub struct AccessUnit {
    /// NAL units in decoding order, without Annex-B start codes.
    pub nals: Vec<Bytes>,
    /// When the picture was captured (drives RTP timestamps).
    pub timestamp: Instant,
    /// True if the picture is an IDR picture (a point where decoding can start).
    pub is_idr: bool,
}

impl AccessUnit {
    /// Builds an access unit, deriving `is_idr` from the NAL unit types.
    pub fn new(nals: Vec<Bytes>, timestamp: Instant) -> Self {
        let is_idr = nals.iter().any(|n| nal_type(n) == NAL_IDR);
        Self {
            nals,
            timestamp,
            is_idr,
        }
    }

    /// The SPS and PPS carried in-band by this access unit, if it has both.
    pub fn parameter_sets(&self) -> Option<ParameterSets> {
        let sps = self.nals.iter().find(|n| nal_type(n) == NAL_SPS)?;
        let pps = self.nals.iter().find(|n| nal_type(n) == NAL_PPS)?;
        ParameterSets::new(sps.clone(), pps.clone()).ok()
    }

    /// True if the access unit carries both an SPS and a PPS.
    pub fn has_parameter_sets(&self) -> bool {
        let has = |t| self.nals.iter().any(|n| nal_type(n) == t);
        has(NAL_SPS) && has(NAL_PPS)
    }
}

/// Splits an Annex-B byte stream into NAL units (start codes removed), without
/// copying: every NAL unit is a slice of `data`.
///
/// Hand-written because h264-reader's Annex-B reader is push-based and copies;
/// this is a plain scan for `00 00 01` over a buffer we already hold.
pub fn split_annexb(data: &Bytes) -> Vec<Bytes> {
    let mut nals = Vec::new();
    let mut start: Option<usize> = None;
    let mut i = 0;
    while i + 2 < data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            if let Some(s) = start {
                push_trimmed(&mut nals, data, s, i);
            }
            i += 3;
            start = Some(i);
        } else {
            i += 1;
        }
    }
    if let Some(s) = start {
        push_trimmed(&mut nals, data, s, data.len());
    }
    nals
}

/// Pushes `data[start..end]` minus trailing zero bytes (the leading zero of a
/// four-byte start code, or trailing_zero_8bits), if anything is left.
fn push_trimmed(nals: &mut Vec<Bytes>, data: &Bytes, start: usize, mut end: usize) {
    while end > start && data[end - 1] == 0 {
        end -= 1;
    }
    if end > start {
        nals.push(data.slice(start..end));
    }
}

/// Groups a sequence of NAL units into access units (H.264 7.4.1.2.3).
///
/// A new access unit starts at an AUD, SPS, PPS or SEI that follows a coded
/// slice, or at a coded slice whose `first_mb_in_slice` is zero that follows
/// another coded slice. This covers every stream without arbitrary slice order,
/// which is every stream a camera, encoder or file source here produces.
#[derive(Debug, Default)]
pub struct AccessUnitSplitter {
    current: Vec<Bytes>,
    has_slice: bool,
}

impl AccessUnitSplitter {
    /// Feeds one NAL unit; returns the previous access unit's NAL units when
    /// this NAL unit starts a new one.
    pub fn push(&mut self, nal: Bytes) -> Option<Vec<Bytes>> {
        let t = nal_type(&nal);
        let is_slice = t == NAL_SLICE || t == NAL_IDR;
        let starts_new = if is_slice {
            // first_mb_in_slice is ue(v); a leading 1 bit means zero.
            self.has_slice && nal.get(1).is_some_and(|b| b & 0x80 != 0)
        } else {
            self.has_slice && matches!(t, NAL_AUD | NAL_SPS | NAL_PPS | NAL_SEI | 14..=18)
        };
        let done = if starts_new {
            self.has_slice = false;
            Some(std::mem::take(&mut self.current))
        } else {
            None
        };
        self.has_slice |= is_slice;
        self.current.push(nal);
        done
    }

    /// Returns the NAL units of the last access unit (at end of stream).
    pub fn finish(&mut self) -> Option<Vec<Bytes>> {
        self.has_slice = false;
        let rest = std::mem::take(&mut self.current);
        (!rest.is_empty()).then_some(rest)
    }
}

/// Builds access units from the buffers of a device that hands out one
/// picture per buffer (a V4L2 encoder or H.264 camera), where parameter
/// sets may come in a buffer of their own: those are kept and put in front
/// of the next picture.
#[cfg(feature = "v4l2")]
#[derive(Debug, Default)]
pub struct PictureAssembler {
    pending: Vec<Bytes>,
}

#[cfg(feature = "v4l2")]
impl PictureAssembler {
    /// Takes one buffer's Annex-B bytes; returns an access unit if the
    /// buffer held a coded picture.
    pub fn push(&mut self, data: &Bytes, timestamp: Instant) -> Option<AccessUnit> {
        let nals = split_annexb(data);
        let has_picture = nals.iter().any(|n| matches!(nal_type(n), 1..=5));
        self.pending.extend(nals);
        has_picture.then(|| AccessUnit::new(std::mem::take(&mut self.pending), timestamp))
    }
}

/// Errors reading parameter sets.
#[derive(Debug, thiserror::Error)]
pub enum H264Error {
    /// The SPS could not be parsed.
    #[error("invalid H.264 sequence parameter set: {0}")]
    BadSps(String),
}

/// A sequence and picture parameter set pair, and what the SPS says.
#[derive(Debug, Clone, PartialEq)]
pub struct ParameterSets {
    /// The SPS NAL unit (header byte included).
    pub sps: Bytes,
    /// The PPS NAL unit (header byte included).
    pub pps: Bytes,
    /// Picture width in pixels (after cropping).
    pub width: u32,
    /// Picture height in pixels (after cropping).
    pub height: u32,
    /// Frame rate from the SPS's VUI timing info, if present.
    pub fps: Option<f64>,
}

/// The NAL units of a picture that go into a length-prefixed sample (MP4,
/// FLV): all but parameter sets and delimiters, which the containers carry
/// in their decoder configuration.
pub fn sample_nals(nals: &[Bytes]) -> impl Iterator<Item = &Bytes> + Clone {
    nals.iter()
        .filter(|n| !n.is_empty() && !matches!(nal_type(n), NAL_SPS | NAL_PPS | NAL_AUD))
}

/// Appends the sample of a picture: each of [`sample_nals`] after its
/// length in 4 bytes.
pub fn put_sample(out: &mut BytesMut, nals: &[Bytes]) {
    for nal in sample_nals(nals) {
        out.put_u32(nal.len() as u32);
        out.put_slice(nal);
    }
}

impl ParameterSets {
    /// The AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1): MP4's
    /// `avcC` and FLV's AVC sequence header, with 4-byte NAL unit lengths.
    pub fn put_decoder_configuration(&self, out: &mut BytesMut) {
        out.put_u8(1);
        out.put_slice(&self.sps[1..4]); // profile, constraints, level
        out.put_u8(0xfc | 3); // NAL unit lengths in 4 bytes
        out.put_u8(0xe0 | 1); // one SPS
        out.put_u16(self.sps.len() as u16);
        out.put_slice(&self.sps);
        out.put_u8(1); // one PPS
        out.put_u16(self.pps.len() as u16);
        out.put_slice(&self.pps);
    }

    /// Parses `sps` and pairs it with `pps`.
    pub fn new(sps: Bytes, pps: Bytes) -> Result<Self, H264Error> {
        if sps.len() < 4 || nal_type(&sps) != NAL_SPS {
            return Err(H264Error::BadSps("too short or not an SPS".into()));
        }
        // decode_nal skips the one-byte NAL header itself.
        let rbsp = decode_nal(&sps[..]).map_err(|e| H264Error::BadSps(e.to_string()))?;
        let parsed = SeqParameterSet::from_bits(BitReader::new(&rbsp[..]))
            .map_err(|e| H264Error::BadSps(format!("{e:?}")))?;
        let (width, height) = parsed
            .pixel_dimensions()
            .map_err(|e| H264Error::BadSps(format!("{e:?}")))?;
        let fps = parsed.fps().filter(|f| f.is_finite() && *f > 0.0);
        Ok(Self {
            sps,
            pps,
            width,
            height,
            fps,
        })
    }

    /// `profile-level-id` for the SDP fmtp line (RFC 6184): the three bytes
    /// after the SPS header, in hex.
    pub fn profile_level_id(&self) -> String {
        format!("{:02x}{:02x}{:02x}", self.sps[1], self.sps[2], self.sps[3])
    }

    /// `sprop-parameter-sets` for the SDP fmtp line: base64 SPS, comma, PPS.
    pub fn sprop_parameter_sets(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        format!("{},{}", b64.encode(&self.sps), b64.encode(&self.pps))
    }
}

/// Parameter sets for tests, shared by every module's tests.
#[cfg(test)]
pub mod fixtures {
    /// The SPS of tests/data/testsrc2-720p30.h264 (libx264, baseline, 720p30).
    pub const SPS_720P: &[u8] = &[
        0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xec, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00,
        0x40, 0x00, 0x00, 0x0f, 0x03, 0xc6, 0x0c, 0xa8,
    ];
    /// Its PPS.
    pub const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];
}

#[cfg(test)]
mod tests {
    use super::fixtures::{PPS, SPS_720P};
    use super::*;

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let data = Bytes::from_static(&[
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5, 0,
        ]);
        let nals = split_annexb(&data);
        assert_eq!(nals.len(), 3);
        assert_eq!(&nals[0][..], &[0x67, 1, 2]);
        assert_eq!(&nals[1][..], &[0x68, 3]);
        assert_eq!(&nals[2][..], &[0x65, 4, 5]);
    }

    #[test]
    fn split_ignores_garbage_before_first_start_code() {
        let data = Bytes::from_static(&[9, 9, 0, 0, 1, 0x41, 7]);
        assert_eq!(split_annexb(&data), vec![Bytes::from_static(&[0x41, 7])]);
        assert!(split_annexb(&Bytes::from_static(&[1, 2, 3])).is_empty());
    }

    #[test]
    #[cfg(feature = "v4l2")]
    fn parameter_sets_in_a_buffer_of_their_own_join_the_next_picture() {
        let mut pictures = PictureAssembler::default();
        let t0 = Instant::now();
        let mut headers = vec![0, 0, 0, 1];
        headers.extend_from_slice(SPS_720P);
        headers.extend_from_slice(&[0, 0, 0, 1]);
        headers.extend_from_slice(PPS);
        assert!(pictures.push(&Bytes::from(headers), t0).is_none());
        let t1 = t0 + std::time::Duration::from_millis(33);
        let idr = pictures
            .push(&Bytes::from_static(&[0, 0, 0, 1, 0x65, 0x88, 1]), t1)
            .expect("a picture");
        assert!(idr.is_idr && idr.has_parameter_sets());
        assert_eq!((idr.nals.len(), idr.timestamp), (3, t1));
        let p = pictures
            .push(&Bytes::from_static(&[0, 0, 0, 1, 0x41, 0x9a, 2]), t1)
            .expect("a picture");
        assert!(!p.is_idr && p.nals.len() == 1, "nothing left over");
        assert!(
            pictures.push(&Bytes::new(), t1).is_none(),
            "an empty buffer is no picture"
        );
    }

    #[test]
    fn groups_nals_into_access_units() {
        let mut s = AccessUnitSplitter::default();
        let nal = |b: &'static [u8]| Bytes::from_static(b);
        assert!(s.push(nal(&[0x67, 0x42])).is_none());
        assert!(s.push(nal(&[0x68, 0xce])).is_none());
        assert!(s.push(nal(&[0x65, 0x88])).is_none()); // IDR, first_mb = 0
        assert!(s.push(nal(&[0x65, 0x40])).is_none()); // second slice, first_mb != 0
        let au = s
            .push(nal(&[0x41, 0x9a]))
            .expect("new picture ends the IDR");
        assert_eq!(au.len(), 4);
        let au = s.push(nal(&[0x09, 0xf0])).expect("AUD ends the P picture");
        assert_eq!(au.len(), 1);
        assert!(s.push(nal(&[0x41, 0x9a])).is_none());
        assert_eq!(s.finish().map(|v| v.len()), Some(2));
        assert!(s.finish().is_none());
    }

    #[test]
    fn parses_parameter_sets() {
        let ps = ParameterSets::new(Bytes::from_static(SPS_720P), Bytes::from_static(PPS)).unwrap();
        assert_eq!((ps.width, ps.height), (1280, 720));
        assert_eq!(ps.profile_level_id(), "42c01f");
        assert_eq!(
            ps.sprop_parameter_sets(),
            "Z0LAH9oBQBbsBEAAAAMAQAAADwPGDKg=,aM48gA=="
        );
        assert_eq!(ps.fps, Some(30.0));
    }

    #[test]
    fn rejects_bad_sps() {
        assert!(ParameterSets::new(Bytes::from_static(&[0x67, 1]), Bytes::new()).is_err());
        assert!(ParameterSets::new(Bytes::from_static(PPS), Bytes::new()).is_err());
        let garbage = Bytes::from_static(&[0x67, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert!(ParameterSets::new(garbage, Bytes::new()).is_err());
    }

    #[test]
    fn access_unit_flags() {
        let t = Instant::now();
        let au = AccessUnit::new(
            vec![
                Bytes::from_static(SPS_720P),
                Bytes::from_static(PPS),
                Bytes::from_static(&[0x65, 0x88]),
            ],
            t,
        );
        assert!(au.is_idr && au.has_parameter_sets());
        assert_eq!(au.parameter_sets().unwrap().width, 1280);
        let p = AccessUnit::new(vec![Bytes::from_static(&[0x41, 0x9a])], t);
        assert!(!p.is_idr && !p.has_parameter_sets() && p.parameter_sets().is_none());
    }
}
