//! Formats, without I/O: what the bytes of a stream are, below everything
//! that moves them. `h264` (access units and parameter sets), `rtp` (RTP
//! and RTCP packets, the media clock), `fmp4` (fragmented MP4), `mpegts`
//! (the transport stream), `sdp` (the session description), `raw`
//! (pictures before encoding), `civil` (dates and times in UTC) and
//! `markup` (text escaped for XML and HTML). They import nothing else of
//! the crate.

pub mod civil;
pub mod fmp4;
pub mod h264;
pub mod markup;
pub mod mpegts;
pub mod raw;
pub mod rtp;
pub mod sdp;
