//! RTP packetizer: H.264 (RFC 6184, packetization-mode=1: single NAL unit
//! packets, and FU-A fragments for NAL units larger than the payload
//! limit) and Opus (RFC 7587: a frame a packet).
//!
//! Hand-written (about a hundred lines) because it is the per-packet hot path:
//! it runs once per access unit for every client together, writing all the
//! packets into one buffer.

use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};

use super::{OPUS_PAYLOAD_TYPE, PAYLOAD_TYPE};
use crate::format::h264::AccessUnit;

/// Largest RTP payload: keeps every packet under a 1500-byte MTU with room
/// for IP, UDP and tunnel headers.
pub const MAX_PAYLOAD: usize = 1400;
/// Fixed RTP header length (no CSRCs, no extension).
pub const HEADER_LEN: usize = 12;
/// Largest packet the packetizer writes.
pub const MAX_PACKET: usize = HEADER_LEN + MAX_PAYLOAD;

/// NAL unit type of an FU-A fragment.
const FU_A: u8 = 28;

/// Length of the RTSP interleaved header (`$`, channel, length; RFC 2326
/// 10.12) in front of every packet of an [`RtpUnit`].
pub const FRAME_HEADER: usize = 4;

/// The header of an interleaved frame (RFC 2326 10.12) carrying `len` bytes.
pub fn interleaved_header(channel: u8, len: usize) -> [u8; FRAME_HEADER] {
    let [hi, lo] = (len as u16).to_be_bytes();
    [b'$', channel, hi, lo]
}

/// The RTP packets of one access unit, made once for every client. They lie
/// back to back in one buffer, each behind the interleaved header of
/// channel 0, so that a TCP client on channel 0 is sent the buffer as it is
/// and a UDP client is sent the packets between the headers, both without
/// a copy in user space.
#[derive(Debug, Clone)]
pub struct RtpUnit {
    /// `$`, 0, length, packet; for every packet.
    framed: Bytes,
    /// Sequence number of the first packet.
    pub first_seq: u16,
    /// RTP timestamp of the packets.
    pub rtp_timestamp: u32,
    /// When the picture was captured.
    pub captured: Instant,
    /// True for an IDR picture (where a client can start).
    pub is_idr: bool,
    /// Number of packets.
    pub packet_count: u32,
    /// RTP payload octets in all packets (for sender reports).
    pub payload_octets: u32,
    /// The access unit's NAL units, for containers that carry them whole
    /// (fMP4 for browsers). They share the encoder's buffers.
    pub nals: Vec<Bytes>,
}

impl RtpUnit {
    /// The packets with their interleaved headers for channel 0.
    pub fn framed(&self) -> &Bytes {
        &self.framed
    }

    /// The RTP packets, in order.
    pub fn packets(&self) -> RtpPackets<'_> {
        RtpPackets {
            rest: &self.framed[..],
        }
    }
}

/// Iterator over the RTP packets of an [`RtpUnit`].
pub struct RtpPackets<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for RtpPackets<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let header = self.rest.get(..FRAME_HEADER)?;
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        let packet = self.rest.get(FRAME_HEADER..FRAME_HEADER + len)?;
        self.rest = &self.rest[FRAME_HEADER + len..];
        Some(packet)
    }
}

/// The stream's RTP state: SSRC and one sequence space for every client.
#[derive(Debug)]
pub struct Packetizer {
    ssrc: u32,
    seq: u16,
}

impl Packetizer {
    /// A packetizer for stream `ssrc` whose first packet has sequence `seq`.
    pub fn new(ssrc: u32, seq: u16) -> Self {
        Self { ssrc, seq }
    }

    /// The sequence number the next packet will carry.
    pub fn next_seq(&self) -> u16 {
        self.seq
    }

    /// The packets of one access unit stamped with RTP time `timestamp`.
    pub fn packetize(&mut self, au: &AccessUnit, timestamp: u32) -> RtpUnit {
        let nals: Vec<&Bytes> = au.nals.iter().filter(|n| !n.is_empty()).collect();
        let size: usize = nals.iter().map(|n| n.len()).sum();
        let fragments = size / (MAX_PAYLOAD - 2) + nals.len();
        let mut out = BytesMut::with_capacity(size + fragments * (FRAME_HEADER + HEADER_LEN + 2));
        let first_seq = self.seq;
        let mut packet_count = 0u32;
        let mut payload_octets = 0u32;
        for (i, nal) in nals.iter().enumerate() {
            let last_nal = i + 1 == nals.len();
            let mut packet = |out: &mut BytesMut, marker: bool, payload: &[&[u8]]| {
                let header = Header {
                    marker,
                    payload_type: PAYLOAD_TYPE,
                    seq: self.seq,
                    timestamp,
                    ssrc: self.ssrc,
                };
                let len = header.put(out, payload);
                self.seq = self.seq.wrapping_add(1);
                packet_count += 1;
                payload_octets = payload_octets.wrapping_add(len as u32);
            };
            if nal.len() <= MAX_PAYLOAD {
                // Single NAL unit packet.
                packet(&mut out, last_nal, &[nal]);
                continue;
            }
            // FU-A: indicator keeps F and NRI, header carries S/E and the type;
            // the NAL header byte travels in the FU header.
            let indicator = (nal[0] & 0xe0) | FU_A;
            let mut offset = 1;
            while offset < nal.len() {
                let chunk = (nal.len() - offset).min(MAX_PAYLOAD - 2);
                let start = offset == 1;
                let end = offset + chunk == nal.len();
                let fu_header = (u8::from(start) << 7) | (u8::from(end) << 6) | (nal[0] & 0x1f);
                packet(
                    &mut out,
                    end && last_nal,
                    &[&[indicator, fu_header], &nal[offset..offset + chunk]],
                );
                offset += chunk;
            }
        }
        RtpUnit {
            framed: out.freeze(),
            first_seq,
            rtp_timestamp: timestamp,
            captured: au.timestamp,
            is_idr: au.is_idr,
            packet_count,
            payload_octets,
            nals: au.nals.clone(),
        }
    }
}

impl Packetizer {
    /// One Opus packet (RFC 7587: one frame a packet, no marker) stamped
    /// with RTP time `timestamp`, captured at `captured`. Every one is a
    /// place a client can start.
    pub fn packetize_opus(&mut self, payload: &[u8], timestamp: u32, captured: Instant) -> RtpUnit {
        let mut out = BytesMut::with_capacity(FRAME_HEADER + HEADER_LEN + payload.len());
        let header = Header {
            marker: false,
            payload_type: OPUS_PAYLOAD_TYPE,
            seq: self.seq,
            timestamp,
            ssrc: self.ssrc,
        };
        let len = header.put(&mut out, &[payload]);
        let first_seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        RtpUnit {
            framed: out.freeze(),
            first_seq,
            rtp_timestamp: timestamp,
            captured,
            is_idr: true,
            packet_count: 1,
            payload_octets: len as u32,
            nals: Vec::new(),
        }
    }
}

/// The fixed RTP header of one packet.
struct Header {
    marker: bool,
    payload_type: u8,
    seq: u16,
    timestamp: u32,
    ssrc: u32,
}

impl Header {
    /// Writes the packet (header and `payload`) behind the RTSP
    /// interleaved header of channel 0; returns the payload's length.
    fn put(&self, out: &mut BytesMut, payload: &[&[u8]]) -> usize {
        let len: usize = payload.iter().map(|p| p.len()).sum();
        out.put_slice(&interleaved_header(0, HEADER_LEN + len));
        out.put_u8(0x80); // version 2, no padding, no extension, no CSRC
        out.put_u8((u8::from(self.marker) << 7) | self.payload_type);
        out.put_u16(self.seq);
        out.put_u32(self.timestamp);
        out.put_u32(self.ssrc);
        for p in payload {
            out.put_slice(p);
        }
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaved_header_carries_channel_and_length() {
        assert_eq!(interleaved_header(1, 0x0102), [b'$', 1, 1, 2]);
    }

    fn collect(p: &mut Packetizer, au: &AccessUnit, ts: u32) -> Vec<Vec<u8>> {
        p.packetize(au, ts).packets().map(<[u8]>::to_vec).collect()
    }

    fn nal(header: u8, len: usize) -> Bytes {
        let mut v: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        v[0] = header;
        Bytes::from(v)
    }

    #[test]
    fn small_nals_are_single_packets_with_marker_on_last() {
        let au = AccessUnit::new(
            vec![nal(0x67, 20), nal(0x68, 4), nal(0x65, 1000)],
            Instant::now(),
        );
        let mut p = Packetizer::new(0x1234_5678, 65534);
        let unit = p.packetize(&au, 0xdead_beef);
        assert_eq!((unit.first_seq, unit.rtp_timestamp), (65534, 0xdead_beef));
        assert!(unit.is_idr);
        assert_eq!((unit.packet_count, unit.payload_octets), (3, 1024));
        let pkts: Vec<&[u8]> = unit.packets().collect();
        assert_eq!(pkts.len(), 3);
        for (i, pkt) in pkts.iter().enumerate() {
            assert_eq!(pkt[0], 0x80);
            assert_eq!(pkt[1] & 0x7f, 96);
            assert_eq!(pkt[1] >> 7, u8::from(i == 2), "marker only on last");
            let seq = u16::from_be_bytes([pkt[2], pkt[3]]);
            assert_eq!(seq, 65534u16.wrapping_add(i as u16));
            assert_eq!(&pkt[4..8], &0xdead_beefu32.to_be_bytes());
            assert_eq!(&pkt[8..12], &0x1234_5678u32.to_be_bytes());
            assert_eq!(&pkt[12..], &au.nals[i][..]);
        }
        assert_eq!(p.next_seq(), 1);
    }

    #[test]
    fn packets_are_framed_for_interleaved_channel_0() {
        let au = AccessUnit::new(vec![nal(0x41, 10), nal(0x41, 3000)], Instant::now());
        let unit = Packetizer::new(1, 0).packetize(&au, 0);
        let mut rest = &unit.framed()[..];
        for pkt in unit.packets() {
            assert_eq!(rest[..2], [b'$', 0]);
            assert_eq!(
                usize::from(u16::from_be_bytes([rest[2], rest[3]])),
                pkt.len()
            );
            assert_eq!(&rest[FRAME_HEADER..FRAME_HEADER + pkt.len()], pkt);
            rest = &rest[FRAME_HEADER + pkt.len()..];
        }
        assert!(rest.is_empty());
    }

    #[test]
    fn large_nal_is_fragmented_and_reassembles() {
        let big = nal(0x65, 5000);
        let au = AccessUnit::new(vec![big.clone()], Instant::now());
        let mut p = Packetizer::new(1, 0);
        let pkts = collect(&mut p, &au, 0);
        assert_eq!(pkts.len(), 4); // 4999 payload bytes in 1398-byte chunks
        let mut rebuilt = vec![0u8];
        for (i, pkt) in pkts.iter().enumerate() {
            assert!(pkt.len() <= MAX_PACKET);
            let (ind, hdr) = (pkt[12], pkt[13]);
            assert_eq!(ind, 0x60 | 28, "F/NRI kept, type FU-A");
            assert_eq!(hdr >> 7, u8::from(i == 0), "start bit");
            assert_eq!((hdr >> 6) & 1, u8::from(i == 3), "end bit");
            assert_eq!(hdr & 0x1f, 5);
            assert_eq!(pkt[1] >> 7, u8::from(i == 3), "marker");
            rebuilt[0] = (ind & 0xe0) | (hdr & 0x1f);
            rebuilt.extend_from_slice(&pkt[14..]);
        }
        assert_eq!(rebuilt, big.to_vec());
        assert_eq!(p.next_seq(), 4);
    }

    #[test]
    fn payload_boundaries() {
        // Exactly MAX_PAYLOAD fits one packet; one byte more needs two.
        for (len, count) in [(MAX_PAYLOAD, 1), (MAX_PAYLOAD + 1, 2), (1, 1)] {
            let au = AccessUnit::new(vec![nal(0x41, len)], Instant::now());
            let pkts = collect(&mut Packetizer::new(1, 0), &au, 0);
            assert_eq!(pkts.len(), count, "len {len}");
        }
        let au = AccessUnit::new(vec![nal(0x41, 10), Bytes::new()], Instant::now());
        let pkts = collect(&mut Packetizer::new(1, 0), &au, 0);
        assert_eq!(pkts.len(), 1);
        assert_eq!(pkts[0][1] >> 7, 1, "marker despite trailing empty NAL");
    }
}
