//! The configuration file, as a user (or a broken SD card) may write it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamcam::config::Config;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::parse(text, "fuzz.toml", None);
    }
});
