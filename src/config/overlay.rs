//! `[overlay]`: the line of text drawn into the picture.

use std::ops::RangeInclusive;
use std::path::Path;

use serde::Deserialize;

use super::check::span;

/// `[overlay]` section: a line of text drawn into every raw frame before
/// it is encoded, with the capture time in it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct OverlayConfig {
    /// The text, with strftime's `%` fields filled from the frame's
    /// capture time in the system's time zone.
    pub text: String,
    /// The corner it sits in.
    pub position: Corner,
    /// Height of a character in pixels.
    pub size: u32,
    /// The time zone of the `%` fields, instead of the system's: a zone
    /// name (`Europe/Berlin`, needs the zone database) or a POSIX rule
    /// (`CET-1CEST,M3.5.0,M10.5.0/3`, needs nothing).
    pub timezone: Option<String>,
}

impl Default for OverlayConfig {
    fn default() -> Self {
        Self {
            text: "%Y-%m-%d %H:%M:%S".into(),
            position: Corner::TopLeft,
            size: 24,
            timezone: None,
        }
    }
}

/// Where zone names are looked up (glibc's default).
const ZONEINFO: &str = "/usr/share/zoneinfo";

/// Checks `overlay.timezone`: a POSIX rule (a name of three or more
/// letters or `<...>`, then an offset), `UTC`/`GMT`, or a name found in
/// the zone database.
fn check_time_zone(zone: &str) -> Result<(), String> {
    let example = "a POSIX rule such as \"CET-1CEST,M3.5.0,M10.5.0/3\" (Central Europe) or \"EST5EDT,M3.2.0,M11.1.0\" (US Eastern) needs no zone database";
    let zone = zone.strip_prefix(':').unwrap_or(zone);
    if zone.is_empty() || zone.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("is not a time zone: {example}"));
    }
    if zone == "UTC" || zone == "GMT" {
        return Ok(());
    }
    let rest = match zone.strip_prefix('<') {
        Some(quoted) => quoted.split_once('>').map(|(_, rest)| rest),
        None => {
            let letters = zone.chars().take_while(char::is_ascii_alphabetic).count();
            (letters >= 3).then(|| &zone[letters..])
        }
    };
    if let Some(offset) = rest.filter(|r| !r.is_empty()) {
        let digits = offset.trim_start_matches(['+', '-']);
        return if digits.starts_with(|c: char| c.is_ascii_digit()) {
            Ok(())
        } else {
            Err(format!(
                "is not a POSIX time-zone rule (the name must be followed by its offset from UTC): {example}"
            ))
        };
    }
    let named = zone
        .split('/')
        .all(|part| !part.is_empty() && part != ".." && part != ".");
    if named && Path::new(ZONEINFO).join(zone).is_file() {
        return Ok(());
    }
    Err(format!(
        "is not in this system's zone database ({ZONEINFO}/{zone}); {example}"
    ))
}

/// `overlay.size`: character heights in pixels.
pub const OVERLAY_SIZE: RangeInclusive<u32> = 8..=256;
/// Longest `overlay.text`, in characters.
pub const OVERLAY_TEXT_CHARS: usize = 200;

impl OverlayConfig {
    /// Checks the text and size.
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        if self.text.trim().is_empty() {
            return Err((
                "overlay.text".into(),
                "is empty: e.g. \"%Y-%m-%d %H:%M:%S  garden\"".into(),
            ));
        }
        if self.text.chars().count() > OVERLAY_TEXT_CHARS {
            return Err((
                "overlay.text".into(),
                format!("is longer than {OVERLAY_TEXT_CHARS} characters"),
            ));
        }
        if self.text.chars().any(char::is_control) {
            return Err((
                "overlay.text".into(),
                "holds a control character (a line break or tab): the overlay is one line".into(),
            ));
        }
        if !OVERLAY_SIZE.contains(&self.size) {
            return Err((
                "overlay.size".into(),
                format!(
                    "{} is out of range: {} pixels",
                    self.size,
                    span(&OVERLAY_SIZE)
                ),
            ));
        }
        if let Some(zone) = &self.timezone {
            check_time_zone(zone)
                .map_err(|m| ("overlay.timezone".into(), format!("{zone:?} {m}")))?;
        }
        Ok(())
    }
}

/// `overlay.position` values.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Corner {
    /// Top left.
    TopLeft,
    /// Top right.
    TopRight,
    /// Bottom left.
    BottomLeft,
    /// Bottom right.
    BottomRight,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::parse;

    #[test]
    fn overlay_table() {
        assert_eq!(parse("").unwrap().overlay, None, "off without [overlay]");
        let c = parse("[overlay]\n").unwrap().overlay.unwrap();
        assert_eq!(c, OverlayConfig::default());
        let c =
            parse("[overlay]\ntext = \"%H:%M garden\"\nposition = \"bottom-right\"\nsize = 40\n")
                .unwrap()
                .overlay
                .unwrap();
        assert_eq!(
            (c.text.as_str(), c.position, c.size),
            ("%H:%M garden", Corner::BottomRight, 40)
        );
        for (text, key, says) in [
            ("[overlay]\ntext = \"  \"\n", "overlay.text", "is empty"),
            ("[overlay]\ntext = \"a\\nb\"\n", "overlay.text", "one line"),
            ("[overlay]\nsize = 4\n", "overlay.size", "8 to 256"),
            (
                "[overlay]\nposition = \"middle\"\n",
                "overlay.position",
                "top-left",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.message.starts_with(key), "{text:?}: {e}");
            assert!(e.message.contains(says), "{text:?}: {e}");
        }
        let long = format!("[overlay]\ntext = \"{}\"\n", "x".repeat(201));
        assert!(
            parse(&long)
                .unwrap_err()
                .message
                .contains("longer than 200")
        );
    }
}
