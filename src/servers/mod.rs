//! The ways out that clients pull from: `rtsp` (the RTSP server), `http`
//! (the page, the browser's live streams, WHEP, the snapshot and the
//! metrics) and `onvif` (the ONVIF services, which `http` serves). Each
//! reaches the camera and encoder only through the broadcast.

pub mod auth;
pub mod http;
pub mod onvif;
pub mod rtsp;
