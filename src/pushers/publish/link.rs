//! The connection to a relay: TCP, and TLS over it for `rtsps://` and
//! `rtmps://` (the server's name checked against the built-in web roots and
//! the target's `ca`). Small kernel buffers, so that a relay that stops
//! reading shows within seconds, not after megabytes.

use std::net::SocketAddr;
use std::path::Path;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::target::{ANSWER_TIMEOUT, PublishError};
use crate::config::is_secure;

/// Kernel send buffer of a connection: about two seconds of a 1 Mbit/s
/// stream.
const SEND_BUFFER: usize = 256 * 1024;

/// A byte stream to a relay, plain or encrypted.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// An open connection to a relay.
pub struct Link {
    /// Its bytes.
    pub stream: Box<dyn Stream>,
    /// The local address it leaves from.
    pub local: SocketAddr,
}

/// The port of a scheme's URLs that name none.
pub fn default_port(scheme: &str) -> u16 {
    match scheme {
        "rtsps" => 322,
        "rtmp" => 1935,
        "rtmps" => 443,
        _ => 554,
    }
}

/// Connects to the host of `url`, with TLS if its scheme asks for it
/// (trusting the certificates of `ca` as well as the web's roots).
pub async fn dial(url: &url::Url, ca: Option<&Path>) -> Result<Link, PublishError> {
    let host = url.host_str().unwrap_or_default();
    let port = url.port().unwrap_or(default_port(url.scheme()));
    let socket = tokio::time::timeout(ANSWER_TIMEOUT, TcpStream::connect((host, port)))
        .await
        .map_err(|_| {
            PublishError::Network(format!(
                "no answer from {host}:{port} within {ANSWER_TIMEOUT:?}"
            ))
        })?
        .map_err(|e| PublishError::Network(format!("cannot connect to {host}:{port}: {e}")))?;
    let _ = socket.set_nodelay(true);
    let _ = socket2::SockRef::from(&socket).set_send_buffer_size(SEND_BUFFER);
    let local = socket
        .local_addr()
        .map_err(|e| PublishError::Network(e.to_string()))?;
    if !is_secure(url.scheme()) {
        return Ok(Link {
            stream: Box::new(socket),
            local,
        });
    }
    let connector = crate::tls::client(ca).map_err(|e| PublishError::Refused(e.to_string()))?;
    // The host as the certificate must name it (an IP literal without
    // brackets).
    let name = match url.host() {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        _ => host.to_string(),
    };
    let server = rustls::pki_types::ServerName::try_from(name)
        .map_err(|e| PublishError::Refused(format!("{host} is not a TLS server name: {e}")))?;
    let stream = tokio::time::timeout(ANSWER_TIMEOUT, connector.connect(server, socket))
        .await
        .map_err(|_| {
            PublishError::Network(format!(
                "no TLS handshake with {host}:{port} within {ANSWER_TIMEOUT:?}"
            ))
        })?
        .map_err(|e| tls_refused(host, port, &e))?;
    Ok(Link {
        stream: Box::new(stream),
        local,
    })
}

/// Why a TLS handshake failed, with what to do when it is the relay's
/// certificate.
fn tls_refused(host: &str, port: u16, e: &std::io::Error) -> PublishError {
    let certificate = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)));
    let hint = if certificate {
        " (a relay with a self-signed certificate or a private CA needs it in the target's `ca`)"
    } else {
        ""
    };
    PublishError::Refused(format!("TLS with {host}:{port}: {e}{hint}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_schemes_and_their_ports() {
        assert_eq!(
            ["rtsp", "rtsps", "rtmp", "rtmps"].map(default_port),
            [554, 322, 1935, 443]
        );
    }
}
