//! `[multicast]`: the group clients that SETUP multicast get.

use std::net::IpAddr;

use serde::Deserialize;

use super::check::ip_addr;

/// `[multicast]` section: server-chosen multicast for a LAN. Every client
/// that asks for multicast gets this group, and each packet is sent to it
/// once however many of them watch.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MulticastConfig {
    /// The group (224.0.0.0/4 or ff00::/8).
    #[serde(deserialize_with = "ip_addr")]
    pub group: IpAddr,
    /// RTP port at the group (even); RTCP goes to the next one.
    pub port: u16,
    /// Hops the packets may take: 1 keeps them on the camera's own network.
    pub ttl: u8,
}

impl Default for MulticastConfig {
    fn default() -> Self {
        Self {
            group: IpAddr::from([239, 255, 0, 1]),
            port: 5004,
            ttl: 1,
        }
    }
}

impl MulticastConfig {
    /// Checks the group, port and TTL.
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        if !self.group.is_multicast() {
            return Err((
                "multicast.group".into(),
                format!(
                    "{} is not a multicast address: use one in 224.0.0.0/4 or ff00::/8 (239.255.0.0/16 is for local use)",
                    self.group
                ),
            ));
        }
        if self.port == 0 || self.port % 2 != 0 || self.port == u16::MAX {
            return Err((
                "multicast.port".into(),
                format!(
                    "{} must be an even port from 2 to 65534 (RTP there, RTCP on the next one)",
                    self.port
                ),
            ));
        }
        if self.ttl == 0 {
            return Err((
                "multicast.ttl".into(),
                "0 would keep every packet on this machine: 1 for the local network, more to cross routers".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::parse;

    #[test]
    fn multicast_table() {
        assert_eq!(
            parse("").unwrap().multicast,
            None,
            "off without [multicast]"
        );
        let c = parse("[multicast]\n").unwrap().multicast.unwrap();
        assert_eq!(
            (c.group, c.port, c.ttl),
            ("239.255.0.1".parse().unwrap(), 5004, 1)
        );
        let c = parse("[multicast]\ngroup = \"ff15::1\"\nport = 6000\nttl = 4\n")
            .unwrap()
            .multicast
            .unwrap();
        assert_eq!(
            (c.group, c.port, c.ttl),
            ("ff15::1".parse().unwrap(), 6000, 4)
        );
        for (text, key, line, says) in [
            (
                "[multicast]\ngroup = \"192.168.1.5\"\n",
                "multicast.group",
                2,
                "not a multicast address",
            ),
            (
                "[multicast]\ngroup = \"fe80::1\"\n",
                "multicast.group",
                2,
                "not a multicast address",
            ),
            (
                "[multicast]\ngroup = \"lan\"\n",
                "multicast.group",
                2,
                "not an IP address",
            ),
            (
                "[multicast]\nport = 5005\n",
                "multicast.port",
                2,
                "even port",
            ),
            ("[multicast]\nport = 0\n", "multicast.port", 2, "even port"),
            (
                "[multicast]\n\nttl = 0\n",
                "multicast.ttl",
                3,
                "local network",
            ),
            ("[multicast]\nttl = 300\n", "multicast.ttl", 2, ""),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.message.starts_with(key), "{text:?}: {e}");
            assert!(e.message.contains(says), "{text:?}: {e}");
            assert_eq!(e.line, Some(line), "{text:?}: {e}");
        }
    }
}
