//! streamcam: a lean RTSP camera daemon for the Raspberry Pi.
//!
//! Data flow: source -> [encoder] -> broadcast -> RTSP sessions -> RTP/RTCP.
//! The modules follow it; `daemon` wires them together and `main.rs` is the
//! command line over this library.

#[cfg(feature = "audio")]
pub mod audio;
pub mod broadcast;
pub mod config;
pub mod daemon;
pub mod encode;
pub mod format;
pub mod motion;
pub mod notify;
pub mod overlay;
pub mod pipeline;
pub mod pushers;
pub mod servers;
pub mod service;
pub mod snapshot;
pub mod source;
pub mod tls;
#[cfg(feature = "v4l2")]
pub mod v4l2;
