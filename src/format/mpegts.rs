//! MPEG transport stream of the camera's pictures, for SRT relays: one
//! program with one H.264 stream, which carries the clock (PCR). PAT and
//! PMT go before every key frame (where a relay or player can join), and
//! each key frame brings its SPS and PPS. mpeg2ts writes the packets and
//! tables; what goes in them (how a picture is cut into 188-byte packets,
//! which packet holds the clock) is decided here.

use bytes::{BufMut, Bytes, BytesMut};
use mpeg2ts::es::{StreamId, StreamType};
use mpeg2ts::pes::PesHeader;
use mpeg2ts::time::{ClockReference, Timestamp};
use mpeg2ts::ts::payload::{self, Pat, Pes, Pmt};
use mpeg2ts::ts::{
    AdaptationField, ContinuityCounter, EsInfo, Pid, ProgramAssociation,
    TransportScramblingControl, TsHeader, TsPacket, TsPacketWriter, TsPayload, VersionNumber,
    WriteTsPacket,
};

use crate::format::h264::{self, ParameterSets};

/// Bytes of a transport stream packet.
pub const PACKET: usize = TsPacket::SIZE;
/// The PMT's packet id.
const PMT_PID: u16 = 0x1000;
/// The video's packet id (also the clock's).
const VIDEO_PID: u16 = 0x100;
/// How far presentation runs behind the clock: the decoder's buffer time
/// (as ffmpeg's muxer leaves by default).
const DELAY_90K: u64 = 63_000;
/// Bytes of a PES header with a PTS.
const PES_HEADER: usize = 14;
/// Bytes of an adaptation field with a PCR.
const PCR_FIELD: usize = 8;
/// An Annex B start code.
const START_CODE: [u8; 4] = [0, 0, 0, 1];
/// An access unit delimiter (any slice type), which TS asks for before
/// each H.264 picture.
const AUD: [u8; 2] = [0x09, 0xf0];

/// Makes a transport stream of pictures; one per connection.
pub struct Muxer {
    params: ParameterSets,
    counters: [ContinuityCounter; 3],
}

impl Muxer {
    /// A stream of pictures with `params`.
    pub fn new(params: ParameterSets) -> Self {
        Self {
            params,
            counters: Default::default(),
        }
    }

    /// The packets of one picture captured `time_90k` ticks (90 kHz) after
    /// time 0, with the tables first on a key frame.
    pub fn picture(&mut self, nals: &[Bytes], is_idr: bool, time_90k: u64) -> Bytes {
        let es = self.annex_b(nals, is_idr);
        let mut out = TsPacketWriter::new(Vec::with_capacity((es.len() / 184 + 4) * PACKET));
        if is_idr {
            self.tables(&mut out);
        }
        let clock = time_90k % (Timestamp::MAX + 1);
        let pts = (clock + DELAY_90K) % (Timestamp::MAX + 1);
        let first = es.len().min(PACKET - 4 - PCR_FIELD - PES_HEADER);
        let start = TsPayload::PesStart(Pes {
            header: PesHeader {
                stream_id: StreamId::new(StreamId::VIDEO_MIN),
                priority: false,
                data_alignment_indicator: true,
                copyright: false,
                original_or_copy: false,
                pts: Some(Timestamp::new(pts).expect("below 2^33")),
                dts: None,
                escr: None,
            },
            // Unbounded, as video may be.
            pes_packet_len: 0,
            data: payload::Bytes::new(&es[..first]).expect("fits a packet"),
        });
        let adaptation = AdaptationField {
            discontinuity_indicator: false,
            random_access_indicator: is_idr,
            es_priority_indicator: false,
            pcr: Some(ClockReference::new(clock * 300).expect("below 2^33 * 300")),
            opcr: None,
            splice_countdown: None,
            transport_private_data: Vec::new(),
            extension: None,
        };
        self.write(&mut out, 2, Some(adaptation), start);
        for chunk in es[first..].chunks(payload::Bytes::MAX_SIZE) {
            let more = TsPayload::PesContinuation(payload::Bytes::new(chunk).expect("fits"));
            self.write(&mut out, 2, None, more);
        }
        out.into_stream().into()
    }

    /// PAT and PMT: program 1, its H.264 stream on [`VIDEO_PID`].
    fn tables(&mut self, out: &mut TsPacketWriter<Vec<u8>>) {
        let pat = TsPayload::Pat(Pat {
            transport_stream_id: 1,
            version_number: VersionNumber::new(),
            table: vec![ProgramAssociation {
                program_num: 1,
                program_map_pid: pid(PMT_PID),
            }],
        });
        self.write(out, 0, None, pat);
        let pmt = TsPayload::Pmt(Pmt {
            program_num: 1,
            pcr_pid: Some(pid(VIDEO_PID)),
            version_number: VersionNumber::new(),
            program_info: Vec::new(),
            es_info: vec![EsInfo {
                stream_type: StreamType::H264,
                elementary_pid: pid(VIDEO_PID),
                descriptors: Vec::new(),
            }],
        });
        self.write(out, 1, None, pmt);
    }

    /// Writes one packet of the stream `which` (0 PAT, 1 PMT, 2 video).
    fn write(
        &mut self,
        out: &mut TsPacketWriter<Vec<u8>>,
        which: usize,
        adaptation_field: Option<AdaptationField>,
        payload: TsPayload,
    ) {
        let counter = &mut self.counters[which];
        let packet = TsPacket {
            header: TsHeader {
                transport_error_indicator: false,
                transport_priority: false,
                pid: pid([0, PMT_PID, VIDEO_PID][which]),
                transport_scrambling_control: TransportScramblingControl::NotScrambled,
                continuity_counter: *counter,
            },
            adaptation_field,
            payload: Some(payload),
        };
        counter.increment();
        out.write_ts_packet(&packet)
            .expect("packets are sized to fit and written to memory");
    }

    /// The picture in Annex B: a delimiter, the parameter sets on a key
    /// frame, then its NAL units, each after a start code.
    fn annex_b(&self, nals: &[Bytes], is_idr: bool) -> Bytes {
        let parameter_sets = [&self.params.sps, &self.params.pps];
        let sets: &[&Bytes] = if is_idr { &parameter_sets } else { &[] };
        let len: usize = h264::sample_nals(nals)
            .chain(sets.iter().copied())
            .map(|n| 4 + n.len())
            .sum();
        let mut es = BytesMut::with_capacity(6 + len);
        es.put_slice(&START_CODE);
        es.put_slice(&AUD);
        for nal in sets.iter().copied().chain(h264::sample_nals(nals)) {
            es.put_slice(&START_CODE);
            es.put_slice(nal);
        }
        es.freeze()
    }
}

/// A packet id that is known to be valid.
fn pid(n: u16) -> Pid {
    Pid::new(n).expect("below 0x1fff")
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpeg2ts::ts::{ReadTsPacket, TsPacketReader};

    fn params() -> ParameterSets {
        ParameterSets::new(
            Bytes::from_static(h264::fixtures::SPS_720P),
            Bytes::from_static(h264::fixtures::PPS),
        )
        .unwrap()
    }

    #[test]
    fn a_key_frame_reads_back_as_tables_then_one_pes_with_its_clock() {
        let mut m = Muxer::new(params());
        let slice = Bytes::from(vec![0x65; 1000]);
        let ts = m.picture(std::slice::from_ref(&slice), true, 90_000);
        assert_eq!(ts.len() % PACKET, 0);
        let mut reader = TsPacketReader::new(&ts[..]);
        let mut packets = Vec::new();
        while let Some(p) = reader.read_ts_packet().unwrap() {
            packets.push(p);
        }
        assert!(matches!(packets[0].payload, Some(TsPayload::Pat(_))));
        assert!(matches!(packets[1].payload, Some(TsPayload::Pmt(_))));
        let Some(TsPayload::PesStart(pes)) = &packets[2].payload else {
            panic!("{:?}", packets[2]);
        };
        assert_eq!(pes.header.pts.unwrap().as_u64(), 90_000 + DELAY_90K);
        let field = packets[2].adaptation_field.as_ref().unwrap();
        assert!(field.random_access_indicator);
        assert_eq!(field.pcr.unwrap().as_u64(), 90_000 * 300);
        // The elementary stream, put together again.
        let mut es = pes.data.to_vec();
        for p in &packets[3..] {
            let Some(TsPayload::PesContinuation(b)) = &p.payload else {
                panic!("{p:?}");
            };
            es.extend_from_slice(b);
        }
        let mut expected = vec![0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1];
        expected.extend_from_slice(h264::fixtures::SPS_720P);
        expected.extend_from_slice(&[0, 0, 0, 1]);
        expected.extend_from_slice(h264::fixtures::PPS);
        expected.extend_from_slice(&[0, 0, 0, 1]);
        expected.extend_from_slice(&slice);
        assert_eq!(es, expected);
        // The next picture continues the counters and has no tables.
        // (A reader needs the tables first: the header is read raw.)
        let ts = m.picture(&[Bytes::from_static(&[0x41, 1])], false, 93_000);
        assert_eq!(ts.len(), PACKET);
        assert_eq!(ts[0], TsPacket::SYNC_BYTE);
        assert_eq!(ts[1] & 0x40, 0x40, "a payload unit starts");
        assert_eq!(u16::from_be_bytes([ts[1] & 0x1f, ts[2]]), VIDEO_PID);
        assert_eq!(ts[3] & 0x0f, (packets.len() as u8 - 2) % 16);
    }
}
