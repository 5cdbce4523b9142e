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
pub mod motion;
pub mod multicast;
pub mod onvif;
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
pub use motion::MotionConfig;
pub use multicast::MulticastConfig;
pub use onvif::OnvifConfig;
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
    /// `[motion]`: motion detection on the raw frames; off without the
    /// table.
    pub motion: Option<MotionConfig>,
    /// `[substream]`: a second, smaller stream of the same pictures; off
    /// without the table.
    pub substream: Option<SubstreamConfig>,
    /// `[audio]`: sound from a microphone; off without the table.
    pub audio: Option<AudioConfig>,
    /// `[onvif]`: the ONVIF services NVRs and Home Assistant use; off
    /// without the table.
    pub onvif: Option<OnvifConfig>,
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
        if let Some(motion) = &self.motion {
            motion.validate()?;
        }
        if let Some(substream) = &self.substream {
            substream.validate(&self.server, &self.video)?;
        }
        if let Some(audio) = &self.audio {
            audio.validate()?;
        }
        if let Some(onvif) = &self.onvif {
            onvif.validate(self.http.listen.is_some())?;
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

    /// `text` read as a config file (for every section's tests).
    pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
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
