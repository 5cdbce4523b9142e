//! The TOML configuration: every key optional, unknown keys rejected, every
//! value checked before anything starts.

use std::ops::Range;
use std::path::Path;

use serde::Deserialize;

pub mod audio;
pub mod auth;
pub mod camera;
pub mod check;
pub mod http;
pub mod log;
pub mod multicast;
pub mod overlay;
pub mod pem;
pub mod publish;
pub mod server;
pub mod source;
pub mod srt;
pub mod substream;
pub mod tls;
pub mod video;

pub use audio::{AUDIO_BITRATE, AudioConfig};
pub use auth::{AuthConfig, DEFAULT_REALM, UserConfig};
pub use camera::{
    AutofocusMode, AwbMode, BRIGHTNESS, CONTRAST, CameraConfig, DenoiseMode, ExposureMode,
    SHARPNESS,
};
pub use check::header_safe;
use check::{is_stream_path, span};
pub use http::HttpConfig;
pub use log::{LogConfig, LogLevel};
pub use multicast::MulticastConfig;
pub use overlay::{Corner, OVERLAY_SIZE, OVERLAY_TEXT_CHARS, OverlayConfig};
pub use publish::{PUBLISH_SCHEMES, PublishConfig, is_secure};
pub use server::{MAX_CLIENTS, ServerConfig};
pub use source::{SourceConfig, SourceKind};
pub use substream::SubstreamConfig;
pub use tls::TlsConfig;
pub use video::{
    BITRATE, EncoderKind, FRAMERATE, H264Profile, KEYFRAME_INTERVAL, PICTURE_SIZE, VideoConfig,
};

/// Exit code for a bad configuration (sysexits.h `EX_CONFIG`).
pub const EX_CONFIG: i32 = 78;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[server]`: where clients connect.
    pub server: ServerConfig,
    /// `[source]`: where pictures come from.
    pub source: SourceConfig,
    /// `[video]`: the encoded stream.
    pub video: VideoConfig,
    /// `[camera]`: picture controls of libcamera cameras.
    pub camera: CameraConfig,
    /// `[log]`: logging.
    pub log: LogConfig,
    /// `[auth]`: who may watch.
    pub auth: AuthConfig,
    /// `[tls]`: RTSP over TLS (RTSPS); off without the table.
    pub tls: Option<TlsConfig>,
    /// `[http]`: the status page and metrics.
    pub http: HttpConfig,
    /// `[multicast]`: the group clients that SETUP multicast get; off
    /// without the table.
    pub multicast: Option<MulticastConfig>,
    /// `[[publish]]`: relays the stream is pushed to.
    pub publish: Vec<PublishConfig>,
    /// `[overlay]`: text burnt into the picture; off without the table.
    pub overlay: Option<OverlayConfig>,
    /// `[substream]`: a second, smaller stream of the same pictures; off
    /// without the table.
    pub substream: Option<SubstreamConfig>,
    /// `[audio]`: sound from a microphone; off without the table.
    pub audio: Option<AudioConfig>,
}

/// A configuration error: what is wrong, where, and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{origin}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    /// The file (or "defaults").
    pub origin: String,
    /// 1-based line of the offending key, when known.
    pub line: Option<usize>,
    /// What is wrong, naming the key.
    pub message: String,
}

impl Config {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            line: None,
            message: format!("cannot read the configuration file: {e}"),
        })?;
        Self::parse(&text, &origin, path.parent())
    }

    /// Parses and validates configuration text. `origin` names it in errors;
    /// relative `source.file` paths are resolved against `base_dir`.
    pub fn parse(text: &str, origin: &str, base_dir: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let keys = KeyMap::new(text);
            let at = e.span().map(|s| s.start);
            let message = e.message().trim();
            ConfigError {
                origin: origin.to_string(),
                line: at.map(|pos| line_of(text, pos)),
                message: match at.and_then(|pos| keys.name_at(pos)) {
                    Some(key) => format!("{key}: {message}"),
                    None => message.to_string(),
                },
            }
        })?;
        if let (Some(tls), Some(dir)) = (config.tls.as_mut(), base_dir) {
            for path in [&mut tls.cert, &mut tls.key].into_iter().flatten() {
                if path.is_relative() {
                    *path = dir.join(&*path);
                }
            }
        }
        let file = &config.source.file;
        if let Some(dir) = base_dir.filter(|_| file.is_relative() && !file.as_os_str().is_empty()) {
            config.source.file = dir.join(file);
        }
        config.validate().map_err(|(key, message)| {
            let keys = KeyMap::new(text);
            // A key left out (a user without a password) is placed at its table.
            let table = key.rsplit_once('.').map_or("", |(t, _)| t);
            let span = keys.span_of(&key).or_else(|| keys.span_of(table));
            ConfigError {
                origin: origin.to_string(),
                line: span.map(|span| line_of(text, span.start)),
                message: format!("{key}: {message}"),
            }
        })?;
        Ok(config)
    }

    /// Checks every value; on error returns the dotted key and a message.
    fn validate(&self) -> Result<(), (String, String)> {
        self.validate_values()
            .map_err(|(table, key, message)| (format!("{table}.{key}"), message))?;
        self.auth.validate()?;
        if let Some(multicast) = &self.multicast {
            multicast.validate()?;
        }
        if let Some(overlay) = &self.overlay {
            overlay.validate()?;
        }
        if let Some(substream) = &self.substream {
            substream.validate(&self.server, &self.video)?;
        }
        if let Some(audio) = &self.audio {
            audio.validate()?;
        }
        for (i, target) in self.publish.iter().enumerate() {
            target
                .validate()
                .map_err(|(key, message)| (format!("publish[{i}].{key}"), message))?;
        }
        match &self.tls {
            Some(tls)
                if tls.listen.port() != 0 && tls.listen.port() == self.server.listen.port() =>
            {
                Err((
                    "tls.listen".into(),
                    format!(
                        "port {} is server.listen's; RTSPS needs a port of its own (8322 is usual)",
                        tls.listen.port()
                    ),
                ))
            }
            Some(tls) => tls.validate(),
            None => Ok(()),
        }
    }

    /// Checks the values of the fixed keys; on error returns (table, key, message).
    fn validate_values(&self) -> Result<(), (&'static str, &'static str, String)> {
        let s = &self.server;
        if !is_stream_path(&s.path) {
            return Err((
                "server",
                "path",
                format!(
                    "{:?} must start with '/', not end with '/', and hold no spaces, '?' or '#', e.g. \"/stream\"",
                    s.path
                ),
            ));
        }
        if !MAX_CLIENTS.contains(&s.max_clients) {
            return Err((
                "server",
                "max_clients",
                format!("{} is out of range: {}", s.max_clients, span(&MAX_CLIENTS)),
            ));
        }
        let v = &self.video;
        for (key, value) in [("width", v.width), ("height", v.height)] {
            if !PICTURE_SIZE.contains(&value) || value % 2 != 0 {
                return Err((
                    "video",
                    key,
                    format!(
                        "{value} must be an even number from {}",
                        span(&PICTURE_SIZE)
                    ),
                ));
            }
        }
        if !FRAMERATE.contains(&v.framerate) {
            return Err((
                "video",
                "framerate",
                format!(
                    "{} is out of range: {} frames per second",
                    v.framerate,
                    span(&FRAMERATE)
                ),
            ));
        }
        if !BITRATE.contains(&v.bitrate) {
            return Err((
                "video",
                "bitrate",
                format!(
                    "{} is out of range: {} bit/s (1 Mbit/s is 1000000)",
                    v.bitrate,
                    span(&BITRATE)
                ),
            ));
        }
        if !KEYFRAME_INTERVAL.contains(&v.keyframe_interval) {
            return Err((
                "video",
                "keyframe_interval",
                format!(
                    "{} is out of range: {} frames",
                    v.keyframe_interval,
                    span(&KEYFRAME_INTERVAL)
                ),
            ));
        }
        let c = &self.camera;
        for (key, value, range) in [
            ("brightness", c.brightness, BRIGHTNESS),
            ("contrast", c.contrast, CONTRAST),
            ("saturation", c.saturation, CONTRAST),
            ("sharpness", c.sharpness, SHARPNESS),
        ] {
            if let Some(value) = value.filter(|v| !range.contains(v)) {
                return Err((
                    "camera",
                    key,
                    format!(
                        "{value} is out of range: {:.1} to {:.1}",
                        range.start(),
                        range.end()
                    ),
                ));
            }
        }
        let src = &self.source;
        if src.kind == SourceKind::File {
            if src.file.as_os_str().is_empty() {
                return Err((
                    "source",
                    "file",
                    "is required when source.kind = \"file\": the path of an Annex-B H.264 file"
                        .into(),
                ));
            }
            if let Err(e) = std::fs::File::open(&src.file) {
                return Err((
                    "source",
                    "file",
                    format!("cannot open {}: {e}", src.file.display()),
                ));
            }
        }
        Ok(())
    }
}

/// 1-based line number of byte offset `pos` in `text`.
fn line_of(text: &str, pos: usize) -> usize {
    text[..pos.min(text.len())].matches('\n').count() + 1
}

/// Where each key of a TOML text is set: its dotted name (`server.listen`)
/// and the bytes from the key to the end of its value, as toml's own parser
/// reads them (so dotted keys, quoted keys and inline tables are placed
/// right).
struct KeyMap(Vec<(String, Range<usize>)>);

impl KeyMap {
    fn new(text: &str) -> Self {
        let mut keys = Vec::new();
        if let Ok(root) = toml::de::DeTable::parse(text) {
            Self::walk(root.get_ref(), "", &mut keys);
        }
        Self(keys)
    }

    fn walk(table: &toml::de::DeTable<'_>, prefix: &str, out: &mut Vec<(String, Range<usize>)>) {
        for (key, value) in table {
            let name = if prefix.is_empty() {
                key.get_ref().to_string()
            } else {
                format!("{prefix}.{}", key.get_ref())
            };
            match value.get_ref() {
                toml::de::DeValue::Table(inner) => {
                    out.push((name.clone(), key.span().start..value.span().end));
                    Self::walk(inner, &name, out)
                }
                toml::de::DeValue::Array(items) => {
                    out.push((name.clone(), key.span().start..value.span().end));
                    for (i, item) in items.iter().enumerate() {
                        if let toml::de::DeValue::Table(inner) = item.get_ref() {
                            let element = format!("{name}[{i}]");
                            out.push((element.clone(), item.span()));
                            Self::walk(inner, &element, out);
                        }
                    }
                }
                _ => out.push((name, key.span().start..value.span().end)),
            }
        }
    }

    /// Where the value `name` is set (a table or array element: all of it).
    fn span_of(&self, name: &str) -> Option<Range<usize>> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.clone())
    }

    /// The key whose setting covers byte `pos`.
    fn name_at(&self, pos: usize) -> Option<&str> {
        self.0
            .iter()
            .filter(|(_, span)| span.contains(&pos))
            .min_by_key(|(_, span)| span.len())
            .map(|(n, _)| n.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "test.toml", None)
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.server.listen, "0.0.0.0:8554".parse().unwrap());
        assert_eq!(c.server.path, "/stream");
        assert_eq!(c.server.max_clients, 32);
        assert_eq!((c.video.width, c.video.height), (1280, 720));
        assert_eq!((c.video.framerate, c.video.bitrate), (30, 1_000_000));
        assert_eq!(c.video.keyframe_interval, 30);
        assert_eq!(c.source.kind, SourceKind::Auto);
        assert_eq!(c.video.encoder, EncoderKind::Auto);
        assert_eq!(c.log.level, LogLevel::Info);
    }

    #[test]
    fn shipped_config_parses_to_defaults() {
        let text = include_str!("../../dist/streamcam.toml");
        assert_eq!(parse(text).unwrap(), Config::default());
    }

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

    #[test]
    fn full_config() {
        let c = parse(
            r#"
[server]
listen = "[::]:554"
path = "/cam"
max_clients = 4
[source]
kind = "testpattern"
[video]
width = 640
height = 480
framerate = 15
bitrate = 500000
keyframe_interval = 15
encoder = "software"
[log]
level = "debug"
"#,
        )
        .unwrap();
        assert_eq!(c.server.listen, "[::]:554".parse().unwrap());
        assert_eq!(c.server.path, "/cam");
        assert_eq!(c.source.kind, SourceKind::Testpattern);
        assert_eq!(c.video.encoder, EncoderKind::Software);
        assert_eq!(c.log.level, LogLevel::Debug);
        let c = parse("[video]\nencoder = \"v4l2-m2m\"\n").unwrap();
        assert_eq!(c.video.encoder, EncoderKind::V4l2M2m);
        assert_eq!(c.video.profile, None);
        let c = parse("[video]\nprofile = \"main\"\n").unwrap();
        assert_eq!(c.video.profile, Some(H264Profile::Main));
        let e = parse("[video]\nprofile = \"extended\"\n").unwrap_err();
        assert!(e.to_string().contains("profile"), "{e}");
    }

    #[test]
    fn camera_controls() {
        let c = parse(
            "[camera]\nhflip = true\nexposure = \"short\"\nawb = \"daylight\"\n\
             contrast = 1.5\nautofocus = \"continuous\"\ndenoise = \"high-quality\"\n",
        )
        .unwrap();
        assert!(c.camera.hflip && !c.camera.vflip);
        assert_eq!(c.camera.exposure, Some(ExposureMode::Short));
        assert_eq!(c.camera.awb, Some(AwbMode::Daylight));
        assert_eq!(c.camera.contrast, Some(1.5));
        assert_eq!(c.camera.brightness, None);
        assert_eq!(c.camera.autofocus, Some(AutofocusMode::Continuous));
        assert_eq!(c.camera.denoise, Some(DenoiseMode::HighQuality));
        let e = parse("[camera]\nawb = \"sunny\"\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.to_string().contains("sunny"), "{e}");
        let e = parse("[camera]\nzoom = 2\n").unwrap_err();
        assert!(e.to_string().contains("zoom"), "{e}");
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = parse("[video]\nwidth = 640\nwidht = 480\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("test.toml:3: "), "{msg}");
        assert!(msg.contains("widht"), "{msg}");
        let e = parse("[vidoe]\n").unwrap_err();
        assert!(e.to_string().contains("vidoe"), "{e}");
        assert_eq!(e.line, Some(1));
    }

    #[test]
    fn wrong_type_names_line() {
        let e = parse("[video]\n\nbitrate = \"1M\"\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        let e = parse("[source]\nkind = \"webcam\"\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.to_string().contains("webcam"), "{e}");
    }

    #[test]
    fn bad_values_name_key_and_line() {
        let cases = [
            ("[server]\nlisten = \"8554\"\n", "server.listen", 2),
            ("[server]\npath = \"stream\"\n", "server.path", 2),
            ("[server]\npath = \"/a b\"\n", "server.path", 2),
            ("[server]\nmax_clients = 0\n", "server.max_clients", 2),
            ("[video]\nwidth = 1281\n", "video.width", 2),
            ("[video]\n\nheight = 0\n", "video.height", 3),
            ("[video]\nframerate = 0\n", "video.framerate", 2),
            ("[camera]\nbrightness = 1.5\n", "camera.brightness", 2),
            ("[camera]\ncontrast = -1.0\n", "camera.contrast", 2),
            ("[camera]\nsaturation = nan\n", "camera.saturation", 2),
            ("[camera]\n\nsharpness = 17.0\n", "camera.sharpness", 3),
            ("[video]\nbitrate = 10\n", "video.bitrate", 2),
            (
                "video.keyframe_interval = 0\n",
                "video.keyframe_interval",
                1,
            ),
            ("[source]\nkind = \"file\"\n", "source.file", 1),
            (
                "[source]\nkind = \"file\"\nfile = \"/nonexistent/x.h264\"\n",
                "source.file",
                3,
            ),
        ];
        for (text, key, line) in cases {
            let e = parse(text).unwrap_err();
            assert!(e.message.starts_with(key), "{text:?}: {e}");
            assert_eq!(e.line, (line > 0).then_some(line), "{text:?}: {e}");
        }
    }

    #[test]
    fn auth_users() {
        let c = parse(
            "[auth]\nrealm = \"garden\"\n[[auth.users]]\nname = \"viewer\"\npassword = \"secret\"\n\
             [[auth.users]]\nname = \"admin\"\nha1 = \"0123456789abcdef0123456789ABCDEF\"\n",
        )
        .unwrap();
        assert_eq!(c.auth.realm, "garden");
        assert!(!c.auth.basic);
        assert_eq!(c.auth.users.len(), 2);
        let shown = format!("{:?}", c.auth);
        assert!(
            !shown.contains("secret") && !shown.contains("0123"),
            "{shown}"
        );
        assert_eq!(parse("").unwrap().auth.realm, DEFAULT_REALM);
        let user = |body: &str| {
            format!(
                "[auth]\n[[auth.users]]\nname = \"a\"\npassword = \"p\"\n[[auth.users]]\n{body}"
            )
        };
        let cases = [
            (
                user("name = \"\"\npassword = \"x\"\n"),
                "auth.users[1].name",
                6,
            ),
            (
                user("name = \"a\"\npassword = \"x\"\n"),
                "auth.users[1].name",
                6,
            ),
            (
                user("name = \"b:c\"\npassword = \"x\"\n"),
                "auth.users[1].name",
                6,
            ),
            (
                user("name = \"b\"\nha1 = \"abc\"\n"),
                "auth.users[1].ha1",
                7,
            ),
            (
                user("name = \"b\"\nha1 = \"zz23456789abcdef0123456789abcdef\"\n"),
                "auth.users[1].ha1",
                7,
            ),
            (
                user(
                    "name = \"b\"\npassword = \"x\"\nha1 = \"0123456789abcdef0123456789abcdef\"\n",
                ),
                "auth.users[1].ha1",
                8,
            ),
            (user("name = \"b\"\n"), "auth.users[1].password", 5),
            (
                user("name = \"b\"\npassword = \"\"\n"),
                "auth.users[1].password",
                7,
            ),
            ("[auth]\nrealm = \"a\\\"b\"\n".to_string(), "auth.realm", 2),
        ];
        for (text, key, line) in cases {
            let e = parse(&text).unwrap_err();
            assert!(e.message.starts_with(key), "{text:?}: {e}");
            assert_eq!(e.line, Some(line), "{text:?}: {e}");
        }
    }

    #[test]
    fn audio_table() {
        assert_eq!(parse("").unwrap().audio, None, "off without [audio]");
        if !cfg!(feature = "audio") {
            let e = parse("[audio]\n").unwrap_err();
            assert!(e.message.contains("cargo feature"), "{e}");
            return;
        }
        let c = parse("[audio]\n").unwrap().audio.unwrap();
        assert_eq!(c, AudioConfig::default());
        let c = parse("[audio]\ndevice = \"null\"\nchannels = 2\nbitrate = 96000\n")
            .unwrap()
            .audio
            .unwrap();
        assert_eq!(
            (c.device.as_str(), c.channels, c.bitrate),
            ("null", 2, 96_000)
        );
        for (text, key) in [
            ("[audio]\ndevice = \"\"\n", "audio.device"),
            ("[audio]\nchannels = 3\n", "audio.channels"),
            ("[audio]\nbitrate = 1000\n", "audio.bitrate"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.message.starts_with(key), "{text:?}: {e}");
        }
    }

    #[test]
    fn substream_table() {
        assert_eq!(
            parse("").unwrap().substream,
            None,
            "off without [substream]"
        );
        let c = parse("[substream]\n").unwrap();
        let sub = c.substream.as_ref().unwrap();
        assert_eq!(sub.path, "/sub");
        let video = sub.video(&c.video);
        assert_eq!(
            (
                video.width,
                video.height,
                video.framerate,
                video.bitrate,
                video.keyframe_interval
            ),
            (640, 360, 10, 300_000, 10)
        );
        assert_eq!(sub.every(&c.video), 3);
        let c = parse("[video]\nframerate = 25\n[substream]\n").unwrap();
        assert_eq!(c.substream.as_ref().unwrap().video(&c.video).framerate, 5);
        let c = parse(
            "[substream]\nframerate = 15\nkeyframe_interval = 60\nwidth = 320\nheight = 180\n",
        )
        .unwrap();
        let sub = c.substream.as_ref().unwrap();
        assert_eq!(sub.video(&c.video).keyframe_interval, 60);
        assert_eq!(sub.every(&c.video), 2);
        for (text, key, says) in [
            (
                "[substream]\npath = \"/stream\"\n",
                "substream.path",
                "a path of its own",
            ),
            (
                "[substream]\npath = \"sub\"\n",
                "substream.path",
                "must start with '/'",
            ),
            (
                "[substream]\nwidth = 1920\n",
                "substream.width",
                "up to video.width (1280)",
            ),
            ("[substream]\nheight = 181\n", "substream.height", "even"),
            (
                "[substream]\nframerate = 7\n",
                "substream.framerate",
                "1, 2, 3, 5, 6, 10, 15, 30",
            ),
            (
                "[substream]\nbitrate = 10\n",
                "substream.bitrate",
                "out of range",
            ),
            (
                "[substream]\nkeyframe_interval = 0\n",
                "substream.keyframe_interval",
                "out of range",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.message.starts_with(key), "{text:?}: {e}");
            assert!(e.message.contains(says), "{text:?}: {e}");
        }
    }

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

    #[test]
    fn tls_table() {
        assert_eq!(parse("").unwrap().tls, None, "off without [tls]");
        let c = parse("[tls]\n").unwrap().tls.unwrap();
        assert_eq!(c.listen, "0.0.0.0:8322".parse().unwrap());
        assert_eq!((c.cert, c.key), (None, None));
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let c = Config::parse(
            "[tls]\ncert = \"Cargo.toml\"\nkey = \"Cargo.toml\"\n",
            "x",
            Some(dir),
        )
        .unwrap();
        assert_eq!(c.tls.unwrap().cert, Some(dir.join("Cargo.toml")));
        for (text, key, line) in [
            ("[tls]\ncert = \"/etc/hostname\"\n", "tls.key", 1),
            ("[tls]\nkey = \"/etc/hostname\"\n", "tls.cert", 1),
            (
                "[tls]\ncert = \"/nonexistent.pem\"\nkey = \"/etc/hostname\"\n",
                "tls.cert",
                2,
            ),
            ("[tls]\nstore = \"tls\"\n", "tls.store", 2),
            ("[tls]\nlisten = \"8322\"\n", "tls.listen", 2),
            ("[tls]\nlisten = \"[::]:8554\"\n", "tls.listen", 2),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.message.starts_with(key), "{text:?}: {e}");
            assert_eq!(e.line, Some(line), "{text:?}: {e}");
        }
    }

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

    #[test]
    fn publish_targets() {
        assert!(parse("").unwrap().publish.is_empty());
        let c = parse(
            "[[publish]]\nurl = \"rtsp://u:p@relay:8554/cam\"\n[[publish]]\nurl = \"rtsp://relay/cam2\"\n",
        )
        .unwrap();
        assert_eq!(c.publish.len(), 2);
        assert!(!format!("{c:?}").contains("u:p@"), "no secrets in Debug");
        for (text, line, says) in [
            (
                "[[publish]]\nurl = \"relay:1935\"\n",
                2,
                "is not a way to publish",
            ),
            ("[[publish]]\nurl = \"not a url\"\n", 2, "is not a URL"),
            (
                "[[publish]]\nurl = \"http://relay/x\"\n",
                2,
                "http:// is not a way",
            ),
            ("[[publish]]\nurl = \"rtsp:///live\"\n", 2, "names no host"),
            (
                "[[publish]]\nurl = \"srt://relay:8890?passphrase=short\"\n",
                2,
                "10 to 79 characters",
            ),
            ("[[publish]]\n", 1, "is not a URL"),
        ] {
            let e = parse(&format!(
                "[[publish]]\nurl = \"rtsp://ok/live/key\"\n{text}"
            ))
            .unwrap_err();
            assert!(e.message.starts_with("publish[1].url: "), "{text:?}: {e}");
            assert!(e.message.contains(says), "{text:?}: {e}");
            assert_eq!(e.line, Some(line + 2), "{text:?}: {e}");
            assert!(!e.message.contains("key"), "{e}");
        }
    }

    #[test]
    fn secure_schemes() {
        assert!(is_secure("rtsps") && is_secure("rtmps"));
        assert!(!is_secure("rtsp") && !is_secure("rtmp") && !is_secure("srt"));
    }

    #[test]
    fn publish_over_tls_takes_a_ca_file() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("relay.pem");
        let made = rcgen::generate_simple_self_signed(vec!["relay.example".into()]).unwrap();
        std::fs::write(&pem, made.cert.pem()).unwrap();
        let c = parse(&format!(
            "[[publish]]\nurl = \"rtsps://relay.example/cam\"\nca = \"{}\"\n[[publish]]\nurl = \"rtmps://a.rtmp.youtube.com/live2/k\"\n",
            pem.display()
        ))
        .unwrap();
        assert_eq!(c.publish[0].ca.as_deref(), Some(pem.as_path()));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        for (url, ca, says) in [
            (
                "rtsps://relay/cam",
                "/nonexistent/ca.pem",
                "/nonexistent/ca.pem",
            ),
            (
                "rtmps://relay/live/k",
                empty.to_str().unwrap(),
                "no certificate",
            ),
            (
                "rtmp://relay/live/k",
                pem.to_str().unwrap(),
                "rtmp:// has no certificate",
            ),
        ] {
            let e = parse(&format!("[[publish]]\nurl = \"{url}\"\nca = \"{ca}\"\n")).unwrap_err();
            assert!(e.message.starts_with("publish[0].ca: "), "{url}: {e}");
            assert!(e.message.contains(says), "{url}: {e}");
        }
    }

    #[test]
    fn missing_file_is_an_error() {
        let e = Config::load(Path::new("/nonexistent/streamcam.toml")).unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
    }

    #[test]
    fn relative_source_file_is_resolved_against_config_dir() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
        let c = Config::parse(
            "[source]\nkind = \"file\"\nfile = \"data/testsrc2-720p30.h264\"\n",
            "x",
            Some(&dir),
        )
        .unwrap();
        assert_eq!(c.source.file, dir.join("data/testsrc2-720p30.h264"));
    }
}
