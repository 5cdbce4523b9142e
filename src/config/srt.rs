//! The query of an `srt://` publishing URL: `streamid`, `passphrase` (10
//! to 79 characters), `pbkeylen` (16, 24 or 32) and `latency`
//! (milliseconds), as srt-live-transmit and ffmpeg spell them; `mode` may
//! only be `caller`. Checked when the config loads; the SRT publisher
//! connects with what it says.

use std::time::Duration;

/// What the query of an `srt://` URL asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The stream id the relay routes by (e.g. `publish:cam1`).
    pub stream_id: Option<String>,
    /// The passphrase of AES encryption.
    pub passphrase: Option<String>,
    /// The AES key length in bytes (16 without one).
    pub key_length: Option<u16>,
    /// The time SRT has to recover lost packets.
    pub latency: Option<Duration>,
}

impl Options {
    /// Reads the query of `url`; a key SRT publishing does not take, or a
    /// value out of range, is an error that says which.
    pub fn of(url: &url::Url) -> Result<Options, String> {
        let mut o = Options::default();
        for (key, value) in url.query_pairs() {
            match &*key {
                "streamid" => {
                    if value.len() > 512 {
                        return Err("streamid is longer than SRT's 512 bytes".into());
                    }
                    o.stream_id = Some(value.into_owned());
                }
                "passphrase" => {
                    if !(10..=79).contains(&value.len()) {
                        return Err("passphrase must have 10 to 79 characters".into());
                    }
                    o.passphrase = Some(value.into_owned());
                }
                "pbkeylen" => match value.parse() {
                    Ok(n @ (16 | 24 | 32)) => o.key_length = Some(n),
                    _ => return Err(format!("pbkeylen={value}: 16, 24 or 32")),
                },
                "latency" => match value.parse::<u64>() {
                    Ok(ms) if ms <= 60_000 => o.latency = Some(Duration::from_millis(ms)),
                    _ => return Err(format!("latency={value}: milliseconds, at most 60000")),
                },
                "mode" if value == "caller" => {}
                "mode" => {
                    return Err(format!(
                        "mode={value}: streamcam calls the relay (mode=caller)"
                    ));
                }
                other => {
                    return Err(format!(
                        "{other}= is not an SRT option streamcam takes (streamid, passphrase, pbkeylen, latency)"
                    ));
                }
            }
        }
        if o.key_length.is_some() && o.passphrase.is_none() {
            return Err("pbkeylen needs a passphrase".into());
        }
        if url.port().is_none() {
            return Err("needs a port: srt://host:port".into());
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(url: &str) -> Result<Options, String> {
        Options::of(&url::Url::parse(url).unwrap())
    }

    #[test]
    fn the_query_names_the_stream_and_its_secret() {
        let o = options(
            "srt://relay:8890?streamid=publish:cam1&passphrase=0123456789&pbkeylen=32&latency=200&mode=caller",
        )
        .unwrap();
        assert_eq!(o.stream_id.as_deref(), Some("publish:cam1"));
        assert_eq!(o.passphrase.as_deref(), Some("0123456789"));
        assert_eq!(o.key_length, Some(32));
        assert_eq!(o.latency, Some(Duration::from_millis(200)));
        assert_eq!(options("srt://relay:8890").unwrap(), Options::default());
        for (url, says) in [
            ("srt://relay:8890?passphrase=short", "10 to 79"),
            (
                "srt://relay:8890?passphrase=0123456789&pbkeylen=20",
                "16, 24 or 32",
            ),
            ("srt://relay:8890?pbkeylen=16", "needs a passphrase"),
            ("srt://relay:8890?latency=soon", "milliseconds"),
            ("srt://relay:8890?mode=listener", "mode=caller"),
            ("srt://relay:8890?tlpktdrop=1", "tlpktdrop= is not"),
            ("srt://relay", "needs a port"),
        ] {
            let e = options(url).unwrap_err();
            assert!(e.contains(says), "{url}: {e}");
        }
    }
}
