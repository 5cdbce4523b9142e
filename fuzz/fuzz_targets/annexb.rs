//! An H.264 byte stream (a file, a camera's or an encoder's output): split
//! into NAL units and access units, parameter sets parsed, packetized.
#![no_main]

use std::time::Instant;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use streamcam::format::h264::{AccessUnit, AccessUnitSplitter, split_annexb};
use streamcam::format::rtp::packetizer::Packetizer;

fuzz_target!(|data: &[u8]| {
    let data = Bytes::copy_from_slice(data);
    let mut splitter = AccessUnitSplitter::default();
    let mut packetizer = Packetizer::new(1, 0);
    let mut units = Vec::new();
    for nal in split_annexb(&data) {
        units.extend(splitter.push(nal));
    }
    units.extend(splitter.finish());
    for nals in units {
        let au = AccessUnit::new(nals, Instant::now());
        if let Some(ps) = au.parameter_sets() {
            let _ = (ps.profile_level_id(), ps.sprop_parameter_sets());
        }
        let unit = packetizer.packetize(&au, 0);
        assert_eq!(unit.packets().count() as u32, unit.packet_count);
    }
});
