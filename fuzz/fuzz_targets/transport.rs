//! The `Transport` header of SETUP, as any client may write it.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use streamcam::rtsp::transport;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = std::str::from_utf8(data) {
        let _ = transport::choose(header, IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
});
