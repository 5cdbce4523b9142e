//! RTCP from clients (UDP datagrams or interleaved frames).
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamcam::format::rtp::rtcp;

fuzz_target!(|data: &[u8]| {
    let _ = rtcp::parse_feedback(data);
});
