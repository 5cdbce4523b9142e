//! The ways out that clients pull from: `rtsp` (the RTSP server) and `http`
//! (the page, the browser's live streams, WHEP, the snapshot and the
//! metrics). Each reaches the camera and encoder only through the
//! broadcast.

pub mod auth;
pub mod http;
pub mod rtsp;
