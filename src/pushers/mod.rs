//! The ways out the camera drives itself: `publish` (pushing the stream to
//! RTSP, RTMP and SRT relays). Each subscribes to the broadcast like an
//! RTSP client does.

pub mod publish;
