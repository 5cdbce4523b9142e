//! H.264 RTP packetizer (RFC 6184, packetization-mode=1): single NAL unit
//! packets, and FU-A fragments for NAL units larger than the payload limit.
//!
//! Hand-written (about a hundred lines) because it is the per-packet hot path:
//! it writes each packet into a caller-owned buffer and allocates nothing.

use bytes::Bytes;

use super::PAYLOAD_TYPE;
use crate::h264::AccessUnit;

/// Largest RTP payload: keeps every packet under a 1500-byte MTU with room
/// for IP, UDP and tunnel headers.
pub const MAX_PAYLOAD: usize = 1400;
/// Fixed RTP header length (no CSRCs, no extension).
pub const HEADER_LEN: usize = 12;
/// Largest packet the packetizer writes.
pub const MAX_PACKET: usize = HEADER_LEN + MAX_PAYLOAD;

/// NAL unit type of an FU-A fragment.
const FU_A: u8 = 28;

/// Per-client RTP state: SSRC, sequence numbers and sender statistics.
#[derive(Debug)]
pub struct Packetizer {
    ssrc: u32,
    seq: u16,
    packet_count: u32,
    octet_count: u32,
}

impl Packetizer {
    /// A packetizer for stream `ssrc` whose first packet has sequence `seq`.
    pub fn new(ssrc: u32, seq: u16) -> Self {
        Self {
            ssrc,
            seq,
            packet_count: 0,
            octet_count: 0,
        }
    }

    /// The sequence number the next packet will carry.
    pub fn next_seq(&self) -> u16 {
        self.seq
    }

    /// The SSRC packets carry.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Packets and payload octets sent so far (for sender reports).
    pub fn counts(&self) -> (u32, u32) {
        (self.packet_count, self.octet_count)
    }

    /// The packets of one access unit stamped with RTP time `timestamp`.
    pub fn packets<'a>(&'a mut self, au: &'a AccessUnit, timestamp: u32) -> Packets<'a> {
        Packets {
            packetizer: self,
            nals: &au.nals,
            timestamp,
            nal: 0,
            offset: 0,
        }
    }
}

/// The packets of one access unit, written one at a time by [`Packets::next_into`].
pub struct Packets<'a> {
    packetizer: &'a mut Packetizer,
    nals: &'a [Bytes],
    timestamp: u32,
    nal: usize,
    offset: usize,
}

impl Packets<'_> {
    /// Writes the next packet into `buf` and returns its length, or `None`
    /// when the access unit is done.
    pub fn next_into(&mut self, buf: &mut [u8; MAX_PACKET]) -> Option<usize> {
        while self.nal < self.nals.len() && self.nals[self.nal].is_empty() {
            self.nal += 1;
        }
        let nal = self.nals.get(self.nal)?;
        let last_nal = self.nals[self.nal + 1..].iter().all(Bytes::is_empty);
        let payload_len;
        let end_of_nal;
        if self.offset == 0 && nal.len() <= MAX_PAYLOAD {
            // Single NAL unit packet.
            buf[HEADER_LEN..HEADER_LEN + nal.len()].copy_from_slice(nal);
            payload_len = nal.len();
            end_of_nal = true;
        } else {
            // FU-A: indicator keeps F and NRI, header carries S/E and the type.
            let start = self.offset == 0;
            if start {
                self.offset = 1; // the NAL header byte travels in the FU header
            }
            let chunk = (nal.len() - self.offset).min(MAX_PAYLOAD - 2);
            end_of_nal = self.offset + chunk == nal.len();
            buf[HEADER_LEN] = (nal[0] & 0xe0) | FU_A;
            buf[HEADER_LEN + 1] =
                (u8::from(start) << 7) | (u8::from(end_of_nal) << 6) | (nal[0] & 0x1f);
            buf[HEADER_LEN + 2..HEADER_LEN + 2 + chunk]
                .copy_from_slice(&nal[self.offset..self.offset + chunk]);
            self.offset += chunk;
            payload_len = chunk + 2;
        }
        let marker = end_of_nal && last_nal;
        let p = &mut *self.packetizer;
        buf[0] = 0x80; // version 2, no padding, no extension, no CSRC
        buf[1] = (u8::from(marker) << 7) | PAYLOAD_TYPE;
        buf[2..4].copy_from_slice(&p.seq.to_be_bytes());
        buf[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        buf[8..12].copy_from_slice(&p.ssrc.to_be_bytes());
        p.seq = p.seq.wrapping_add(1);
        p.packet_count = p.packet_count.wrapping_add(1);
        p.octet_count = p.octet_count.wrapping_add(payload_len as u32);
        if end_of_nal {
            self.nal += 1;
            self.offset = 0;
        }
        Some(HEADER_LEN + payload_len)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn collect(p: &mut Packetizer, au: &AccessUnit, ts: u32) -> Vec<Vec<u8>> {
        let mut buf = [0u8; MAX_PACKET];
        let mut out = Vec::new();
        let mut packets = p.packets(au, ts);
        while let Some(n) = packets.next_into(&mut buf) {
            out.push(buf[..n].to_vec());
        }
        out
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
        let pkts = collect(&mut p, &au, 0xdead_beef);
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
        assert_eq!(p.counts(), (3, 1024));
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
