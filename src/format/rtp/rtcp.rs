//! RTCP (RFC 3550 section 6): the sender reports and BYE we send, and what we
//! read from clients (receiver reports, BYE, key-frame requests).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use rtcp_types::{
    Bye, Compound, CompoundBuilder, Packet, RtcpPacketParser, RtcpPacketWriterExt, Sdes, SdesChunk,
    SdesItem, SenderReport,
};

/// SDES item type of a canonical name (RFC 3550 6.5.1).
const SDES_CNAME: u8 = 1;
/// Payload-specific feedback message types that ask for a key frame:
/// picture loss indication (RFC 4585) and full intra request (RFC 5104).
const PSFB_PLI: u8 = 1;
const PSFB_FIR: u8 = 4;
/// RTCP packet type of payload-specific feedback.
const RTCP_PSFB: u8 = 206;

use super::packetizer::RtpUnit;

/// Time between RTCP sender reports.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(5);
/// What a session was sent, counted by whoever sends it (the session's
/// own task, or the UDP fan-out) and read for its sender reports and its
/// end line.
#[derive(Debug, Default)]
pub struct SentCounts {
    packets: AtomicU64,
    octets: AtomicU64,
    /// Times the sender fell behind the stream and skipped to a key frame.
    lags: AtomicUsize,
}

impl SentCounts {
    /// Counts `unit` as sent.
    pub fn add(&self, unit: &RtpUnit) {
        self.packets
            .fetch_add(u64::from(unit.packet_count), Ordering::Relaxed);
        self.octets
            .fetch_add(u64::from(unit.payload_octets), Ordering::Relaxed);
    }

    /// Counts one skip to a key frame.
    pub fn lagged(&self) {
        self.lags.fetch_add(1, Ordering::Relaxed);
    }

    /// Times the sender skipped to a key frame.
    pub fn lags(&self) -> usize {
        self.lags.load(Ordering::Relaxed)
    }

    /// Packets and RTP payload octets sent.
    pub fn sent(&self) -> (u64, u64) {
        (
            self.packets.load(Ordering::Relaxed),
            self.octets.load(Ordering::Relaxed),
        )
    }
}

/// Largest RTCP packet this module writes.
pub const MAX_RTCP: usize = 256;

/// What a sender report says.
#[derive(Debug, Clone, Copy)]
pub struct SenderInfo {
    /// The stream's SSRC.
    pub ssrc: u32,
    /// Wall-clock time of the report (NTP format).
    pub ntp_timestamp: u64,
    /// The same instant in RTP time.
    pub rtp_timestamp: u32,
    /// Packets sent to this client so far.
    pub packet_count: u32,
    /// Payload octets sent to this client so far.
    pub octet_count: u32,
}

/// Writes a compound RTCP packet into `buf`: a sender report, an SDES with
/// `cname`, and a BYE if `bye`. Returns its length.
pub fn write_report(buf: &mut [u8; MAX_RTCP], info: &SenderInfo, cname: &str, bye: bool) -> usize {
    let mut compound = CompoundBuilder::default()
        .add_packet(
            SenderReport::builder(info.ssrc)
                .ntp_timestamp(info.ntp_timestamp)
                .rtp_timestamp(info.rtp_timestamp)
                .packet_count(info.packet_count)
                .octet_count(info.octet_count),
        )
        .add_packet(Sdes::builder().add_chunk(
            SdesChunk::builder(info.ssrc).add_item(SdesItem::builder(SDES_CNAME, cname)),
        ));
    if bye {
        compound = compound.add_packet(Bye::builder().add_source(info.ssrc));
    }
    compound
        .write_into(buf)
        .expect("a report with a short CNAME fits MAX_RTCP")
}

/// What a client's RTCP packet told us.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ClientFeedback {
    /// The client sent a receiver report (it is alive).
    pub report: bool,
    /// The client said BYE.
    pub bye: bool,
    /// The client asked for a key frame (PLI or FIR).
    pub keyframe_request: bool,
}

/// Errors reading a client's RTCP packet.
#[derive(Debug, thiserror::Error)]
#[error("malformed RTCP packet: {0:?}")]
pub struct RtcpError(rtcp_types::RtcpParseError);

/// Parses a (compound) RTCP packet sent by a client.
pub fn parse_feedback(data: &[u8]) -> Result<ClientFeedback, RtcpError> {
    let mut fb = ClientFeedback::default();
    for packet in Compound::parse(data).map_err(RtcpError)? {
        match packet.map_err(RtcpError)? {
            Packet::Rr(_) | Packet::Sr(_) => fb.report = true,
            Packet::Bye(_) => fb.bye = true,
            p @ (Packet::PayloadFeedback(_) | Packet::Unknown(_)) => {
                let [first, packet_type, ..] = p.header_data();
                let fmt = first & 0x1f;
                fb.keyframe_request |=
                    packet_type == RTCP_PSFB && (fmt == PSFB_PLI || fmt == PSFB_FIR);
            }
            _ => {}
        }
    }
    Ok(fb)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> SenderInfo {
        SenderInfo {
            ssrc: 0xcafe_babe,
            ntp_timestamp: 0x1122_3344_5566_7788,
            rtp_timestamp: 90_000,
            packet_count: 10,
            octet_count: 12_345,
        }
    }

    #[test]
    fn writes_sender_report_with_cname() {
        let mut buf = [0u8; MAX_RTCP];
        let n = write_report(&mut buf, &info(), "streamcam", false);
        let packets: Vec<_> = Compound::parse(&buf[..n]).unwrap().collect();
        assert_eq!(packets.len(), 2);
        match packets[0].as_ref().unwrap() {
            Packet::Sr(sr) => {
                assert_eq!(sr.ssrc(), 0xcafe_babe);
                assert_eq!(sr.ntp_timestamp(), 0x1122_3344_5566_7788);
                assert_eq!(sr.rtp_timestamp(), 90_000);
                assert_eq!((sr.packet_count(), sr.octet_count()), (10, 12_345));
            }
            p => panic!("expected SR, got {p:?}"),
        }
        assert!(matches!(packets[1], Ok(Packet::Sdes(_))));
    }

    #[test]
    fn writes_bye() {
        let mut buf = [0u8; MAX_RTCP];
        let n = write_report(&mut buf, &info(), "streamcam", true);
        let last = Compound::parse(&buf[..n]).unwrap().last().unwrap().unwrap();
        match last {
            Packet::Bye(b) => assert_eq!(b.ssrcs().collect::<Vec<_>>(), vec![0xcafe_babe]),
            p => panic!("expected BYE, got {p:?}"),
        }
    }

    #[test]
    fn reads_client_feedback() {
        // A receiver report with one report block, then an SDES, as clients send.
        let rr = [
            0x81, 0xc9, 0x00, 0x07, 0x3f, 0x1b, 0x6a, 0x3e, 0xca, 0xfe, 0xba, 0xbe, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x5c, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x81, 0xca, 0x00, 0x02, 0x3f, 0x1b, 0x6a, 0x3e, 0x01, 0x00,
            0x00, 0x00,
        ];
        let fb = parse_feedback(&rr).unwrap();
        assert!(fb.report && !fb.bye && !fb.keyframe_request);
        let bye = [0x81, 0xcb, 0x00, 0x01, 0x3f, 0x1b, 0x6a, 0x3e];
        assert!(parse_feedback(&bye).unwrap().bye);
        let pli = [
            0x81, 0xce, 0x00, 0x02, 0x3f, 0x1b, 0x6a, 0x3e, 0xca, 0xfe, 0xba, 0xbe,
        ];
        assert!(parse_feedback(&pli).unwrap().keyframe_request);
        // A PLI after a receiver report in one compound packet.
        let rr_then_pli = [&rr[..32], &pli[..]].concat();
        let fb = parse_feedback(&rr_then_pli).unwrap();
        assert!(fb.report && fb.keyframe_request);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_feedback(&[]).is_err());
        assert!(parse_feedback(&[0x80]).is_err());
        assert!(parse_feedback(&[0x81, 0xc9, 0x00, 0x07, 0, 0, 0, 0]).is_err());
        assert!(parse_feedback(&[0x40, 0xc9, 0x00, 0x00]).is_err());
    }

    #[test]
    fn reads_the_recorded_packets() {
        let read = |name: &str| {
            let path = format!("{}/tests/data/rtcp/{name}", env!("CARGO_MANIFEST_DIR"));
            parse_feedback(&std::fs::read(path).unwrap()).unwrap()
        };
        let report = ClientFeedback {
            report: true,
            ..ClientFeedback::default()
        };
        assert_eq!(read("receiver-report.bin"), report);
        assert_eq!(
            read("bye.bin"),
            ClientFeedback {
                bye: true,
                ..report
            }
        );
        for name in ["pli.bin", "fir.bin"] {
            let keyframe_request = true;
            assert_eq!(
                read(name),
                ClientFeedback {
                    keyframe_request,
                    ..report
                },
                "{name}"
            );
        }
    }
}
