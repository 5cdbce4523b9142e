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

#[cfg(test)]
mod tests {
    use crate::config::tests::parse;

    #[test]
    fn http_listens_on_8080_unless_turned_off() {
        assert_eq!(
            parse("").unwrap().http.listen,
            Some("0.0.0.0:8080".parse().unwrap())
        );
        assert_eq!(parse("[http]\nlisten = \"\"\n").unwrap().http.listen, None);
        assert_eq!(
            parse("[http]\nlisten = \"[::1]:80\"\n")
                .unwrap()
                .http
                .listen,
            Some("[::1]:80".parse().unwrap())
        );
        let e = parse("[http]\nlisten = \"8080\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("test.toml:2") && e.contains("http.listen"),
            "{e}"
        );
    }
}
