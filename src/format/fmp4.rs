//! Fragmented MP4 (ISO/IEC 14496-12, H.264 per 14496-15) for Media Source
//! Extensions: an init segment from the stream's SPS/PPS, then one movie
//! fragment per access unit.
//!
//! Written by hand: a live player needs each fragment on its own, at once,
//! with its decode time in the 90 kHz clock of the RTP stream. The muxer
//! crates write whole files through `Write + Seek`, or take durations in
//! whole milliseconds (a 30 fps stream would run 1% fast against the
//! camera's clock); the dozen boxes below are all MSE needs.

use bytes::{BufMut, Bytes, BytesMut};

use crate::format::h264::{self, ParameterSets};

/// The track's timescale: the RTP clock of H.264 (RFC 6184).
pub const TIMESCALE: u32 = 90_000;
const TRACK_ID: u32 = 1;
/// `sample_flags` of a sync sample (an IDR picture): depends on no other.
const SYNC_SAMPLE: u32 = 0x0200_0000;
/// `sample_flags` of any other picture: depends on others, not a sync sample.
const NON_SYNC_SAMPLE: u32 = 0x0101_0000;
/// The unity matrix of `mvhd` and `tkhd`.
const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// The MSE type of the stream, e.g. `video/mp4; codecs="avc1.42c01f"`.
pub fn mime_type(ps: &ParameterSets) -> String {
    format!("video/mp4; codecs=\"avc1.{}\"", ps.profile_level_id())
}

/// The init segment (`ftyp` and `moov`) for a stream with these parameter
/// sets.
pub fn init_segment(ps: &ParameterSets) -> Bytes {
    let mut out = BytesMut::with_capacity(1024);
    boxed(&mut out, b"ftyp", |b| {
        b.put_slice(b"isom");
        b.put_u32(0x200);
        b.put_slice(b"isomiso6avc1mp41");
    });
    boxed(&mut out, b"moov", |b| {
        full_box(b, b"mvhd", 0, 0, |b| {
            b.put_u64(0); // creation and modification time
            b.put_u32(1000); // timescale
            b.put_u32(0); // duration: unknown (live)
            b.put_u32(0x0001_0000); // rate 1.0
            b.put_u16(0x0100); // volume 1.0
            b.put_bytes(0, 10);
            MATRIX.iter().for_each(|m| b.put_u32(*m));
            b.put_bytes(0, 24);
            b.put_u32(TRACK_ID + 1); // next_track_ID
        });
        boxed(b, b"trak", |b| {
            // Flags: enabled, in movie.
            full_box(b, b"tkhd", 0, 3, |b| {
                b.put_u64(0);
                b.put_u32(TRACK_ID);
                b.put_u32(0);
                b.put_u32(0); // duration
                b.put_bytes(0, 8);
                b.put_u32(0); // layer, alternate group
                b.put_u32(0); // volume, reserved
                MATRIX.iter().for_each(|m| b.put_u32(*m));
                b.put_u32(ps.width << 16);
                b.put_u32(ps.height << 16);
            });
            boxed(b, b"mdia", |b| {
                full_box(b, b"mdhd", 0, 0, |b| {
                    b.put_u64(0);
                    b.put_u32(TIMESCALE);
                    b.put_u32(0);
                    b.put_u16(0x55c4); // language "und"
                    b.put_u16(0);
                });
                full_box(b, b"hdlr", 0, 0, |b| {
                    b.put_u32(0);
                    b.put_slice(b"vide");
                    b.put_bytes(0, 12);
                    b.put_slice(b"streamcam\0");
                });
                boxed(b, b"minf", |b| {
                    full_box(b, b"vmhd", 0, 1, |b| b.put_bytes(0, 8));
                    boxed(b, b"dinf", |b| {
                        full_box(b, b"dref", 0, 0, |b| {
                            b.put_u32(1);
                            // Flag 1: the media is in this file.
                            full_box(b, b"url ", 0, 1, |_| {});
                        });
                    });
                    boxed(b, b"stbl", |b| {
                        full_box(b, b"stsd", 0, 0, |b| {
                            b.put_u32(1);
                            sample_entry(b, ps);
                        });
                        // No samples here: they come in fragments.
                        full_box(b, b"stts", 0, 0, |b| b.put_u32(0));
                        full_box(b, b"stsc", 0, 0, |b| b.put_u32(0));
                        full_box(b, b"stsz", 0, 0, |b| b.put_u64(0));
                        full_box(b, b"stco", 0, 0, |b| b.put_u32(0));
                    });
                });
            });
        });
        boxed(b, b"mvex", |b| {
            full_box(b, b"trex", 0, 0, |b| {
                b.put_u32(TRACK_ID);
                b.put_u32(1); // sample description index
                b.put_u32(0); // default duration, size, flags: each fragment says
                b.put_u32(0);
                b.put_u32(0);
            });
        });
    });
    out.freeze()
}

/// The `avc1` sample entry with its `avcC` (the decoder configuration).
fn sample_entry(b: &mut BytesMut, ps: &ParameterSets) {
    boxed(b, b"avc1", |b| {
        b.put_bytes(0, 6);
        b.put_u16(1); // data reference index
        b.put_bytes(0, 16);
        b.put_u16(ps.width as u16);
        b.put_u16(ps.height as u16);
        b.put_u32(0x0048_0000); // 72 dpi
        b.put_u32(0x0048_0000);
        b.put_u32(0);
        b.put_u16(1); // frame count
        b.put_bytes(0, 32); // compressor name
        b.put_u16(0x0018); // depth
        b.put_i16(-1);
        boxed(b, b"avcC", |b| ps.put_decoder_configuration(b));
    });
}

/// One picture to put in a fragment.
#[derive(Debug)]
pub struct Sample<'a> {
    /// The access unit's NAL units (parameter sets and delimiters are left
    /// out: they live in the init segment).
    pub nals: &'a [Bytes],
    /// Decode (and presentation) time in [`TIMESCALE`] units.
    pub decode_time: u64,
    /// How long the picture shows, in [`TIMESCALE`] units.
    pub duration: u32,
    /// An IDR picture.
    pub is_idr: bool,
}

/// One movie fragment (`moof` and `mdat`) holding one picture.
pub fn fragment(sequence: u32, sample: &Sample<'_>) -> Bytes {
    let data_len: usize = h264::sample_nals(sample.nals).map(|n| 4 + n.len()).sum();
    let mut out = BytesMut::with_capacity(128 + data_len);
    boxed(&mut out, b"moof", |b| {
        full_box(b, b"mfhd", 0, 0, |b| b.put_u32(sequence));
        boxed(b, b"traf", |b| {
            // Flag 0x020000: offsets count from the start of the moof.
            full_box(b, b"tfhd", 0, 0x02_0000, |b| b.put_u32(TRACK_ID));
            full_box(b, b"tfdt", 1, 0, |b| b.put_u64(sample.decode_time));
            // Flags: data offset, then each sample's duration, size, flags.
            full_box(b, b"trun", 0, 0x0701, |b| {
                b.put_u32(1);
                // Patched below, once the moof's size is known.
                b.put_u32(0);
                b.put_u32(sample.duration);
                b.put_u32(data_len as u32);
                b.put_u32(if sample.is_idr {
                    SYNC_SAMPLE
                } else {
                    NON_SYNC_SAMPLE
                });
            });
        });
    });
    // data_offset: past the moof and the mdat's header, to the first byte
    // of the sample. It sits 20 bytes from the trun's end (four fields).
    let moof_len = out.len();
    let offset_at = moof_len - 16;
    out[offset_at..offset_at + 4].copy_from_slice(&((moof_len + 8) as u32).to_be_bytes());
    out.put_u32((8 + data_len) as u32);
    out.put_slice(b"mdat");
    h264::put_sample(&mut out, sample.nals);
    out.freeze()
}

/// Writes a box: its size, its type, then what `body` puts.
fn boxed(out: &mut BytesMut, kind: &[u8; 4], body: impl FnOnce(&mut BytesMut)) {
    let start = out.len();
    out.put_u32(0);
    out.put_slice(kind);
    body(out);
    let size = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// Writes a full box: a box whose body starts with a version and flags.
fn full_box(
    out: &mut BytesMut,
    kind: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut BytesMut),
) {
    boxed(out, kind, |b| {
        b.put_u32((u32::from(version) << 24) | flags);
        body(b);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::h264::fixtures::{PPS, SPS_720P};

    fn ps() -> ParameterSets {
        ParameterSets::new(Bytes::from_static(SPS_720P), Bytes::from_static(PPS)).unwrap()
    }

    /// The boxes at the top of `data`: (type, size).
    fn top_boxes(data: &[u8]) -> Vec<(String, usize)> {
        let mut boxes = Vec::new();
        let mut rest = data;
        while rest.len() >= 8 {
            let size = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            boxes.push((String::from_utf8_lossy(&rest[4..8]).into_owned(), size));
            rest = &rest[size..];
        }
        assert!(rest.is_empty(), "boxes must fill the buffer exactly");
        boxes
    }

    fn find(data: &[u8], kind: &[u8; 4]) -> usize {
        data.windows(4).position(|w| w == kind).unwrap() - 4
    }

    #[test]
    fn init_segment_is_ftyp_then_moov_with_the_parameter_sets() {
        let init = init_segment(&ps());
        let boxes = top_boxes(&init);
        assert_eq!(
            boxes.iter().map(|b| b.0.as_str()).collect::<Vec<_>>(),
            ["ftyp", "moov"]
        );
        let avcc = find(&init, b"avcC");
        assert_eq!(&init[avcc + 9..avcc + 12], &SPS_720P[1..4]);
        assert!(init.windows(SPS_720P.len()).any(|w| w == SPS_720P));
        assert!(init.windows(PPS.len()).any(|w| w == PPS));
        let tkhd = find(&init, b"tkhd");
        // Width and height are the last two fields, 16.16 fixed point.
        let size = u32::from_be_bytes(init[tkhd..tkhd + 4].try_into().unwrap()) as usize;
        let dims = &init[tkhd + size - 8..tkhd + size];
        assert_eq!(dims, [0x05, 0, 0, 0, 0x02, 0xd0, 0, 0]);
    }

    #[test]
    fn fragment_points_its_sample_into_the_mdat() {
        let slice = Bytes::from_static(&[0x65, 1, 2, 3, 4]);
        let nals = [
            Bytes::from_static(&[0x09, 0xf0]),
            Bytes::from_static(SPS_720P),
            Bytes::from_static(PPS),
            slice.clone(),
        ];
        let sample = Sample {
            nals: &nals,
            decode_time: 1 << 33,
            duration: 3000,
            is_idr: true,
        };
        let frag = fragment(7, &sample);
        let boxes = top_boxes(&frag);
        assert_eq!(boxes[0].0, "moof");
        assert_eq!(boxes[1], ("mdat".into(), 8 + 4 + slice.len()));
        let trun = find(&frag, b"trun");
        let field = |i: usize| {
            let at = trun + 12 + 4 * i;
            u32::from_be_bytes(frag[at..at + 4].try_into().unwrap())
        };
        assert_eq!(field(0), 1, "one sample");
        let offset = field(1) as usize;
        assert_eq!(&frag[offset..offset + 4], &[0, 0, 0, 5], "length prefix");
        assert_eq!(&frag[offset + 4..], &slice[..]);
        assert_eq!((field(2), field(3), field(4)), (3000, 9, SYNC_SAMPLE));
        let tfdt = find(&frag, b"tfdt");
        assert_eq!(&frag[tfdt + 12..tfdt + 20], &(1u64 << 33).to_be_bytes());
    }
}
