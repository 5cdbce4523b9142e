//! `[server]`: where clients connect, and how many may.

use std::net::SocketAddr;
use std::ops::RangeInclusive;

use serde::Deserialize;

use super::check::socket_addr;

/// `server.max_clients`: sessions served at once.
pub const MAX_CLIENTS: RangeInclusive<usize> = 1..=1024;

/// `[server]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port the RTSP server listens on.
    #[serde(deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    /// Path of the stream in the RTSP URL.
    pub path: String,
    /// Most sessions (clients) served at once.
    pub max_clients: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8554)),
            path: "/stream".into(),
            max_clients: 32,
        }
    }
}
