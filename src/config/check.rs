//! What the sections' checks share: how a range is written in a message,
//! what a stream path and a header-safe name are, and addresses read from
//! their strings.

use std::fmt;

use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;

/// True for a path a stream can be served at: "/name", no spaces, '?' or
/// '#', no trailing '/'.
pub fn is_stream_path(path: &str) -> bool {
    path.starts_with('/')
        && path.len() > 1
        && !path.ends_with('/')
        && path
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
}

/// True for a name or realm that fits inside a quoted header parameter and
/// a Basic `name:password` pair: printable, no `"`, `\` or `:`, not empty.
pub fn header_safe(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| !c.is_control() && !matches!(c, '"' | '\\' | ':'))
}

/// "MIN to MAX" for messages.
pub fn span<T: fmt::Display>(range: &RangeInclusive<T>) -> String {
    format!("{} to {}", range.start(), range.end())
}

/// Reads `server.listen`, saying what a valid one looks like.
pub fn socket_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "{text:?} is not an address and port, e.g. \"0.0.0.0:8554\" or \"[::]:8554\""
        ))
    })
}

/// An IP address (no port), saying what a valid one looks like.
pub fn ip_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<IpAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "{text:?} is not an IP address, e.g. \"239.255.0.1\" or \"ff15::1\""
        ))
    })
}

/// An address and port, or "" for none.
pub fn optional_socket_addr<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "{text:?} is not an address and port, e.g. \"0.0.0.0:8080\", or \"\" for off"
        ))
    })
}
