//! `[onvif]`: ONVIF Profile S, so NVRs and Home Assistant find and add the
//! camera.

use serde::Deserialize;

/// Longest `onvif.name` and `onvif.location`, in characters.
pub const ONVIF_TEXT_CHARS: usize = 64;

/// `[onvif]` section: the ONVIF device and media services on the HTTP
/// port (`/onvif/...`), and WS-Discovery on the local networks; off
/// without the table.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct OnvifConfig {
    /// The camera's name, as NVRs list it.
    pub name: String,
    /// Where the camera is, e.g. "garden".
    pub location: String,
    /// Whether the camera answers WS-Discovery probes and announces
    /// itself (UDP port 3702 on every interface's local network).
    pub discovery: bool,
}

impl Default for OnvifConfig {
    fn default() -> Self {
        Self {
            name: "streamcam".into(),
            location: String::new(),
            discovery: true,
        }
    }
}

impl OnvifConfig {
    /// Checks the name and location, and that the HTTP side the services
    /// live on is on (`http_on`); on error returns the dotted key and a
    /// message.
    pub(super) fn validate(&self, http_on: bool) -> Result<(), (String, String)> {
        if !http_on {
            return Err((
                "onvif".into(),
                "ONVIF is served on the HTTP port, and [http] listen is \"\": give http.listen \
                 an address (e.g. \"0.0.0.0:8080\") or remove [onvif]"
                    .into(),
            ));
        }
        for (key, value, empty_ok) in [
            ("name", &self.name, false),
            ("location", &self.location, true),
        ] {
            let chars = value.chars().count();
            if (chars == 0 && !empty_ok)
                || chars > ONVIF_TEXT_CHARS
                || value.chars().any(char::is_control)
            {
                return Err((
                    format!("onvif.{key}"),
                    format!(
                        "{value:?} must be 1 to {ONVIF_TEXT_CHARS} printable characters{}",
                        if empty_ok { " (or empty)" } else { "" }
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::parse;

    #[test]
    fn onvif_is_off_without_the_table_and_named_streamcam_by_default() {
        assert_eq!(parse("").unwrap().onvif, None);
        let on = parse("[onvif]\n").unwrap().onvif.unwrap();
        assert_eq!((on.name.as_str(), on.location.as_str()), ("streamcam", ""));
        assert!(on.discovery);
        let hidden = parse("[onvif]\ndiscovery = false\n")
            .unwrap()
            .onvif
            .unwrap();
        assert!(!hidden.discovery);
        let named = parse("[onvif]\nname = \"Front door\"\nlocation = \"porch\"\n")
            .unwrap()
            .onvif
            .unwrap();
        assert_eq!(named.name, "Front door");
        assert_eq!(named.location, "porch");
    }

    #[test]
    fn bad_onvif_settings_are_named() {
        for (text, key) in [
            ("[onvif]\nname = \"\"\n", "onvif.name"),
            ("[onvif]\nname = \"a\\nb\"\n", "onvif.name"),
            (
                &format!("[onvif]\nlocation = \"{}\"\n", "x".repeat(65)),
                "onvif.location",
            ),
            ("[onvif]\ncolour = \"red\"\n", "colour"),
            ("[http]\nlisten = \"\"\n[onvif]\n", "onvif"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
    }
}
