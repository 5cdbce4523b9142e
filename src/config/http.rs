//! `[http]`: the status page and metrics.

use std::net::SocketAddr;

use serde::Deserialize;

use super::check::optional_socket_addr;

/// `[http]` section: the status page and Prometheus metrics.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address and port of the HTTP server; `None` (`listen = ""`) turns
    /// it off.
    #[serde(deserialize_with = "optional_socket_addr")]
    pub listen: Option<SocketAddr>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: Some(SocketAddr::from(([0, 0, 0, 0], 8080))),
        }
    }
}
