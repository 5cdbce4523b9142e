//! RTP and RTCP (RFC 3550) for H.264 (RFC 6184) and Opus (RFC 7587): the
//! media clock, the packetizer and RTCP reports. Knows packets, not sessions.

pub mod clock;
pub mod packetizer;
pub mod rtcp;

/// The RTP payload type announced for H.264 in the SDP.
pub const PAYLOAD_TYPE: u8 = 96;
/// The RTP clock rate of video (RFC 6184).
pub const CLOCK_RATE: u32 = 90_000;
/// The RTP payload type announced for Opus in the SDP.
pub const OPUS_PAYLOAD_TYPE: u8 = 97;
/// The RTP clock rate of Opus (RFC 7587: always 48 kHz).
pub const OPUS_CLOCK_RATE: u32 = 48_000;
