//! Taps: consumers of the pipeline's frames beside the encoder (the
//! snapshot and motion; recording is to come). The pipeline hands each tap
//! every raw frame before it is encoded and every access unit the main
//! stream published; the broadcast itself carries encoded units to clients
//! only. A tap must return at once: one that needs more time copies what it
//! needs and works on it elsewhere, so that it can never delay a frame.

use std::fmt::Debug;

use crate::format::raw::RawFrame;
use crate::format::rtp::packetizer::RtpUnit;

/// A consumer of the pipeline's frames. Both calls come from the pipeline
/// thread and must not block.
pub trait Tap: Send + Sync + Debug {
    /// A raw frame, before the encoder has it.
    fn raw(&self, frame: &RawFrame<'_>);
    /// An access unit as the main stream sent it (parameter sets in front
    /// of each key frame).
    fn encoded(&self, unit: &RtpUnit);
}
