//! The RTSP 1.0 `Transport` header (RFC 2326 section 12.39): which of the
//! client's offered transports we serve, and how.
//!
//! Parsed by hand: rtsp-types' parser asserts on some malformed `dest_addr`
//! escapes (a panic on hostile input), and RTSP 1.0 transports are a short
//! grammar of comma-separated specs with semicolon-separated parameters.

use std::net::IpAddr;

use crate::config::MulticastConfig;

/// A transport we can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// RTP/AVP over UDP unicast to the client's RTP and RTCP ports.
    Udp {
        /// Client RTP port.
        rtp_port: u16,
        /// Client RTCP port.
        rtcp_port: u16,
    },
    /// RTP/AVP over UDP to the server's multicast group (`[multicast]`),
    /// shared by every client that asks for multicast.
    Multicast(MulticastConfig),
    /// RTP/AVP/TCP interleaved on the RTSP connection.
    Interleaved {
        /// Channel for RTP.
        rtp_channel: u8,
        /// Channel for RTCP.
        rtcp_channel: u8,
    },
}

/// Why no offered transport can be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// Nothing offered that we support (answer 461).
    #[error(
        "no supported transport offered (supported: RTP/AVP unicast UDP with client_port, RTP/AVP/TCP interleaved, and multicast when [multicast] is set)"
    )]
    Unsupported,
    /// A multicast group other than the server's (answer 403).
    #[error("multicast group {0} is not the server's; it sends to its own group only")]
    ForeignGroup(String),
    /// A unicast destination other than the client itself (answer 403).
    #[error("destination {0} is not the client's own address; refusing to send elsewhere")]
    ForeignDestination(String),
    /// The header is missing or unreadable (answer 400).
    #[error("malformed Transport header")]
    Malformed,
}

/// Picks the first transport in `header` that we can serve for a client at
/// `peer`. Multicast is served only to the server's group (`multicast`;
/// without one it is skipped), never to a group the client names; a
/// unicast `destination` other than the client's own address is refused.
pub fn choose(
    header: &str,
    peer: IpAddr,
    multicast: Option<MulticastConfig>,
) -> Result<Transport, TransportError> {
    let mut first_refusal = None;
    for spec in header.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match parse_spec(spec, peer, multicast) {
            Ok(Some(t)) => return Ok(t),
            Ok(None) => {}
            Err(e) => {
                first_refusal.get_or_insert(e);
            }
        }
    }
    Err(first_refusal.unwrap_or(TransportError::Unsupported))
}

/// One transport spec: `Ok(None)` if it is not one we serve.
fn parse_spec(
    spec: &str,
    peer: IpAddr,
    multicast: Option<MulticastConfig>,
) -> Result<Option<Transport>, TransportError> {
    let mut parts = spec.split(';').map(str::trim);
    let protocol = parts.next().unwrap_or_default().to_ascii_uppercase();
    let tcp = match protocol.as_str() {
        "RTP/AVP" | "RTP/AVP/UDP" => false,
        "RTP/AVP/TCP" => true,
        _ => return Ok(None),
    };
    let mut wants_multicast = false;
    let mut client_port = None;
    let mut interleaved = None;
    let mut destination = None;
    for param in parts.filter(|p| !p.is_empty()) {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (param, None),
        };
        match (name.to_ascii_lowercase().as_str(), value) {
            ("multicast", _) => wants_multicast = true,
            ("client_port", Some(v)) => client_port = Some(port_range(v)?),
            ("interleaved", Some(v)) => interleaved = Some(channel_range(v)?),
            ("destination", Some(v)) => destination = Some(v.trim_matches('"').to_string()),
            _ => {} // unicast, mode, ssrc, ttl, ...: nothing to do
        }
    }
    let named = |dest: &str| {
        dest.trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
            .ok()
    };
    if wants_multicast {
        // Multicast over TCP is no transport at all.
        let Some(m) = multicast.filter(|_| !tcp) else {
            return Ok(None);
        };
        return match destination {
            Some(dest) if !named(&dest).is_some_and(|ip| same_host(ip, m.group)) => {
                Err(TransportError::ForeignGroup(dest))
            }
            _ => Ok(Some(Transport::Multicast(m))),
        };
    }
    if let Some(dest) = destination {
        if !named(&dest).is_some_and(|ip| same_host(ip, peer)) {
            return Err(TransportError::ForeignDestination(dest));
        }
    }
    Ok(match (tcp, client_port, interleaved) {
        (false, Some((rtp_port, rtcp_port)), _) if rtp_port != 0 => Some(Transport::Udp {
            rtp_port,
            rtcp_port,
        }),
        (true, _, Some((rtp_channel, rtcp_channel))) => Some(Transport::Interleaved {
            rtp_channel,
            rtcp_channel,
        }),
        // TCP without channels: we choose 0-1 (RFC 2326 10.12 lets the server pick).
        (true, _, None) => Some(Transport::Interleaved {
            rtp_channel: 0,
            rtcp_channel: 1,
        }),
        _ => None,
    })
}

/// Compares addresses, treating IPv4-mapped IPv6 as IPv4.
fn same_host(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

/// `a-b` or `a` (then b = a + 1).
fn port_range(v: &str) -> Result<(u16, u16), TransportError> {
    let (a, b) = match v.split_once('-') {
        Some((a, b)) => (a, Some(b)),
        None => (v, None),
    };
    let a: u16 = a.trim().parse().map_err(|_| TransportError::Malformed)?;
    let b = match b {
        Some(b) => b.trim().parse().map_err(|_| TransportError::Malformed)?,
        None => a.checked_add(1).ok_or(TransportError::Malformed)?,
    };
    Ok((a, b))
}

/// `a-b` or `a` (then b = a + 1) for interleaved channels.
fn channel_range(v: &str) -> Result<(u8, u8), TransportError> {
    let (a, b) = port_range(v)?;
    Ok((
        u8::try_from(a).map_err(|_| TransportError::Malformed)?,
        u8::try_from(b).map_err(|_| TransportError::Malformed)?,
    ))
}

/// The Transport header answered to a SETUP that chose `t`, for packets
/// with `ssrc`, from our `server_ports` (UDP sessions).
pub fn reply(t: Transport, ssrc: u32, server_ports: Option<(u16, u16)>) -> String {
    match (t, server_ports) {
        (Transport::Multicast(m), _) => format!(
            "RTP/AVP;multicast;destination={};port={}-{};ttl={};ssrc={ssrc:08X};mode=\"PLAY\"",
            m.group,
            m.port,
            m.port + 1,
            m.ttl
        ),
        (
            Transport::Interleaved {
                rtp_channel,
                rtcp_channel,
            },
            _,
        ) => format!(
            "RTP/AVP/TCP;unicast;interleaved={rtp_channel}-{rtcp_channel};ssrc={ssrc:08X};mode=\"PLAY\""
        ),
        (
            Transport::Udp {
                rtp_port,
                rtcp_port,
            },
            ports,
        ) => {
            let (server_rtp, server_rtcp) = ports.unwrap_or_default();
            format!(
                "RTP/AVP;unicast;client_port={rtp_port}-{rtcp_port};server_port={server_rtp}-{server_rtcp};ssrc={ssrc:08X};mode=\"PLAY\""
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> IpAddr {
        "127.0.0.1".parse().unwrap()
    }

    #[test]
    fn transports_real_clients_send() {
        // ffmpeg/ffprobe, UDP and TCP
        assert_eq!(
            choose("RTP/AVP/UDP;unicast;client_port=35230-35231", peer(), None),
            Ok(Transport::Udp {
                rtp_port: 35230,
                rtcp_port: 35231
            })
        );
        assert_eq!(
            choose("RTP/AVP/TCP;unicast;interleaved=0-1", peer(), None),
            Ok(Transport::Interleaved {
                rtp_channel: 0,
                rtcp_channel: 1
            })
        );
        // GStreamer rtspsrc offers several at once; the first supported wins.
        assert_eq!(
            choose(
                "RTP/AVP;unicast;client_port=46446-46447;mode=\"PLAY\",RTP/AVP/TCP;unicast;interleaved=0-1",
                peer(),
                None
            ),
            Ok(Transport::Udp {
                rtp_port: 46446,
                rtcp_port: 46447
            })
        );
        // VLC / live555
        assert_eq!(
            choose("RTP/AVP;unicast;client_port=50000-50001", peer(), None),
            Ok(Transport::Udp {
                rtp_port: 50000,
                rtcp_port: 50001
            })
        );
        // retina
        assert_eq!(
            choose("RTP/AVP/TCP;unicast;interleaved=2-3", peer(), None),
            Ok(Transport::Interleaved {
                rtp_channel: 2,
                rtcp_channel: 3
            })
        );
    }

    #[test]
    fn without_a_group_multicast_is_skipped_for_the_next_offer() {
        assert_eq!(
            choose(
                "RTP/AVP;multicast;port=5000-5001, RTP/AVP/TCP;interleaved=4-5",
                peer(),
                None
            ),
            Ok(Transport::Interleaved {
                rtp_channel: 4,
                rtcp_channel: 5
            })
        );
        assert_eq!(
            choose(
                "RTP/AVP;multicast;destination=239.1.1.1;port=5000-5001",
                peer(),
                None
            ),
            Err(TransportError::Unsupported)
        );
    }

    #[test]
    fn multicast_gets_the_servers_group_only() {
        let m = MulticastConfig::default();
        let group = Some(m);
        // ffmpeg (-rtsp_transport udp_multicast), GStreamer (protocols=udp-mcast)
        for offer in [
            "RTP/AVP;multicast",
            "RTP/AVP;multicast;port=5000-5001",
            "RTP/AVP;multicast;destination=239.255.0.1;port=5000-5001",
            "RTP/AVP;multicast;destination=[239.255.0.1]",
        ] {
            assert_eq!(
                choose(offer, peer(), group),
                Ok(Transport::Multicast(m)),
                "{offer}"
            );
        }
        assert_eq!(
            choose(
                "RTP/AVP;multicast;destination=239.9.9.9;port=5000-5001",
                peer(),
                group
            ),
            Err(TransportError::ForeignGroup("239.9.9.9".into()))
        );
        assert_eq!(
            choose("RTP/AVP;multicast;destination=10.0.0.7", peer(), group),
            Err(TransportError::ForeignGroup("10.0.0.7".into()))
        );
        // A foreign group is refused, but a later offer may still serve.
        assert_eq!(
            choose(
                "RTP/AVP;multicast;destination=239.9.9.9, RTP/AVP;unicast;client_port=6000-6001",
                peer(),
                group
            ),
            Ok(Transport::Udp {
                rtp_port: 6000,
                rtcp_port: 6001
            })
        );
        assert_eq!(
            choose("RTP/AVP/TCP;multicast", peer(), group),
            Err(TransportError::Unsupported)
        );
    }

    #[test]
    fn foreign_destination_is_refused() {
        let t = "RTP/AVP;unicast;destination=10.1.2.3;client_port=5000-5001";
        assert_eq!(
            choose(t, peer(), None),
            Err(TransportError::ForeignDestination("10.1.2.3".into()))
        );
        let own = "RTP/AVP;unicast;destination=127.0.0.1;client_port=5000-5001";
        assert!(choose(own, peer(), None).is_ok());
        let v6 = "RTP/AVP;unicast;destination=[::1];client_port=5000-5001";
        assert!(choose(v6, "::1".parse().unwrap(), None).is_ok());
        let mapped = "RTP/AVP;unicast;destination=127.0.0.1;client_port=5000-5001";
        assert!(choose(mapped, "::ffff:127.0.0.1".parse().unwrap(), None).is_ok());
        let name = "RTP/AVP;unicast;destination=evil.example;client_port=5000-5001";
        assert!(matches!(
            choose(name, peer(), None),
            Err(TransportError::ForeignDestination(_))
        ));
    }

    #[test]
    fn unsupported_and_malformed() {
        assert_eq!(choose("", peer(), None), Err(TransportError::Unsupported));
        assert_eq!(
            choose("RAW/RAW/UDP;unicast", peer(), None),
            Err(TransportError::Unsupported)
        );
        assert_eq!(
            choose("RTP/AVP;unicast", peer(), None),
            Err(TransportError::Unsupported)
        );
        assert_eq!(
            choose("RTP/AVP;unicast;client_port=99999-100000", peer(), None),
            Err(TransportError::Malformed)
        );
        assert_eq!(
            choose("RTP/AVP/TCP;interleaved=300-301", peer(), None),
            Err(TransportError::Malformed)
        );
        assert_eq!(
            choose("RTP/AVP;unicast;client_port=65535", peer(), None),
            Err(TransportError::Malformed)
        );
        // Hostile: escapes and separators in odd places never panic.
        for junk in [
            "RTP/AVP;dest_addr=\"\\\"",
            ";;;,,,",
            "RTP/AVP;=;=x;client_port=-",
            "\u{0}",
        ] {
            let _ = choose(junk, peer(), None);
        }
        assert_eq!(
            choose("RTP/AVP;unicast;client_port=6000", peer(), None),
            Ok(Transport::Udp {
                rtp_port: 6000,
                rtcp_port: 6001
            })
        );
        assert_eq!(
            choose("rtp/avp/tcp;unicast", peer(), None),
            Ok(Transport::Interleaved {
                rtp_channel: 0,
                rtcp_channel: 1
            })
        );
    }
}
