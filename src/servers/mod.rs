//! The ways out that clients pull from: `rtsp` (the RTSP server), `http`
//! (the page, the browser's live streams, WHEP, the snapshot and the
//! metrics), `onvif` (the ONVIF services, which `http` serves) and
//! `discovery` (WS-Discovery, which finds them for NVRs). Each reaches the
//! camera and encoder only through the broadcast.

pub mod auth;
pub mod discovery;
pub mod http;
pub mod onvif;
pub mod rtsp;
