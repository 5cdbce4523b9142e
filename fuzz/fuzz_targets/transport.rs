//! The `Transport` header of SETUP, as any client may write it.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use streamcam::config::MulticastConfig;
use streamcam::servers::rtsp::transport;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = std::str::from_utf8(data) {
        let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let _ = transport::choose(header, peer, None);
        let _ = transport::choose(header, peer, Some(MulticastConfig::default()));
    }
});
