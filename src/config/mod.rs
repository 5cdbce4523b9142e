//! The TOML configuration: every key optional, unknown keys rejected, every
//! value checked before anything starts.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub mod pem;
pub mod srt;

/// Exit code for a bad configuration (sysexits.h `EX_CONFIG`).
pub const EX_CONFIG: i32 = 78;

/// `server.max_clients`: sessions served at once.
pub const MAX_CLIENTS: RangeInclusive<usize> = 1..=1024;
/// `video.width` and `video.height` in pixels (even numbers).
pub const PICTURE_SIZE: RangeInclusive<u32> = 16..=4096;
/// `video.framerate` in frames per second.
pub const FRAMERATE: RangeInclusive<u32> = 1..=120;
/// `video.bitrate` in bit/s.
pub const BITRATE: RangeInclusive<u32> = 50_000..=50_000_000;
/// `video.keyframe_interval` in frames.
pub const KEYFRAME_INTERVAL: RangeInclusive<u32> = 1..=1000;
/// `camera.brightness`.
pub const BRIGHTNESS: RangeInclusive<f32> = -1.0..=1.0;
/// `camera.contrast` and `camera.saturation`.
pub const CONTRAST: RangeInclusive<f32> = 0.0..=32.0;
/// `camera.sharpness`.
pub const SHARPNESS: RangeInclusive<f32> = 0.0..=16.0;

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

/// `[audio]` section: a microphone, coded as Opus, as a second track of
/// the main stream.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AudioConfig {
    /// The ALSA capture device (`default`, `plughw:1,0`, `null` for
    /// silence), or `auto`: the first sound card that can capture.
    pub device: String,
    /// 1 (mono) or 2 (stereo).
    pub channels: u32,
    /// Opus bit rate in bit/s.
    pub bitrate: u32,
}

impl Default for AudioConfig {
    fn default() -> Self {
        Self {
            device: "default".into(),
            channels: 1,
            bitrate: 64_000,
        }
    }
}

/// `audio.bitrate`: what Opus takes, in bit/s.
pub const AUDIO_BITRATE: RangeInclusive<u32> = 6_000..=510_000;

impl AudioConfig {
    /// Checks the device, channels and bit rate, and that this build has audio.
    fn validate(&self) -> Result<(), (String, String)> {
        if !cfg!(feature = "audio") {
            return Err((
                "audio".into(),
                "this build has no audio support (cargo feature \"audio\"): remove [audio] or build with --features audio".into(),
            ));
        }
        if self.device.trim().is_empty() || self.device.contains('\0') {
            return Err((
                "audio.device".into(),
                "is empty: an ALSA device such as \"default\" or \"plughw:1,0\" (arecord -L lists them), or \"auto\"".into(),
            ));
        }
        if !(1..=2).contains(&self.channels) {
            return Err((
                "audio.channels".into(),
                format!("{} must be 1 (mono) or 2 (stereo)", self.channels),
            ));
        }
        if !AUDIO_BITRATE.contains(&self.bitrate) {
            return Err((
                "audio.bitrate".into(),
                format!(
                    "{} is out of range: {} bit/s",
                    self.bitrate,
                    span(&AUDIO_BITRATE)
                ),
            ));
        }
        Ok(())
    }
}

/// `[substream]` section: a second stream of the same camera at a lower
/// size, rate and bit rate (an NVR's "detect" stream), encoded once for
/// all of its clients.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SubstreamConfig {
    /// Its path in the URL, beside `server.path`.
    pub path: String,
    /// Picture width (even, at most `video.width`).
    pub width: u32,
    /// Picture height (even, at most `video.height`).
    pub height: u32,
    /// Frames per second: a divisor of `video.framerate`; `None`: the
    /// largest one up to 10.
    pub framerate: Option<u32>,
    /// Bit rate in bit/s.
    pub bitrate: u32,
    /// Frames between key frames; `None`: one a second.
    pub keyframe_interval: Option<u32>,
}

impl Default for SubstreamConfig {
    fn default() -> Self {
        Self {
            path: "/sub".into(),
            width: 640,
            height: 360,
            framerate: None,
            bitrate: 300_000,
            keyframe_interval: None,
        }
    }
}

/// The substream's frame rate when `substream.framerate` is unset: the
/// largest divisor of the main rate up to this.
const SUBSTREAM_DEFAULT_FRAMERATE: u32 = 10;

impl SubstreamConfig {
    /// The substream's encoding: the main stream's encoder and profile at
    /// this table's size, rate, bit rate and key-frame interval.
    pub fn video(&self, main: &VideoConfig) -> VideoConfig {
        let framerate = self.framerate.unwrap_or_else(|| {
            (1..=main.framerate.min(SUBSTREAM_DEFAULT_FRAMERATE))
                .rev()
                .find(|d| main.framerate % d == 0)
                .unwrap_or(1)
        });
        VideoConfig {
            width: self.width,
            height: self.height,
            framerate,
            bitrate: self.bitrate,
            keyframe_interval: self.keyframe_interval.unwrap_or(framerate),
            ..main.clone()
        }
    }

    /// Source frames per substream frame.
    pub fn every(&self, main: &VideoConfig) -> u32 {
        main.framerate / self.video(main).framerate.max(1)
    }

    /// Checks the table against the main stream's settings.
    fn validate(&self, server: &ServerConfig, main: &VideoConfig) -> Result<(), (String, String)> {
        let key = |k: &str| format!("substream.{k}");
        if !is_stream_path(&self.path) {
            return Err((
                key("path"),
                format!(
                    "{:?} must start with '/', not end with '/', and hold no spaces, '?' or '#', e.g. \"/sub\"",
                    self.path
                ),
            ));
        }
        if self.path == server.path {
            return Err((
                key("path"),
                format!(
                    "{:?} is server.path's: the substream needs a path of its own",
                    self.path
                ),
            ));
        }
        for (name, value, most) in [
            ("width", self.width, main.width),
            ("height", self.height, main.height),
        ] {
            if !PICTURE_SIZE.contains(&value) || value % 2 != 0 || value > most {
                return Err((
                    key(name),
                    format!(
                        "{value} must be an even number from {} up to video.{name} ({most})",
                        PICTURE_SIZE.start()
                    ),
                ));
            }
        }
        if let Some(rate) = self.framerate
            && (rate == 0 || main.framerate % rate != 0)
        {
            let divisors: Vec<String> = (1..=main.framerate)
                .filter(|d| main.framerate % d == 0)
                .map(|d| d.to_string())
                .collect();
            return Err((
                key("framerate"),
                format!(
                    "{rate} must divide video.framerate ({}): one of {}",
                    main.framerate,
                    divisors.join(", ")
                ),
            ));
        }
        if !BITRATE.contains(&self.bitrate) {
            return Err((
                key("bitrate"),
                format!("{} is out of range: {} bit/s", self.bitrate, span(&BITRATE)),
            ));
        }
        if let Some(interval) = self
            .keyframe_interval
            .filter(|i| !KEYFRAME_INTERVAL.contains(i))
        {
            return Err((
                key("keyframe_interval"),
                format!(
                    "{interval} is out of range: {} frames",
                    span(&KEYFRAME_INTERVAL)
                ),
            ));
        }
        Ok(())
    }
}

/// True for a path a stream can be served at: "/name", no spaces, '?' or
/// '#', no trailing '/'.
fn is_stream_path(path: &str) -> bool {
    path.starts_with('/')
        && path.len() > 1
        && !path.ends_with('/')
        && path
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
}

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
    fn validate(&self) -> Result<(), (String, String)> {
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

/// One `[[publish]]` target: a relay the daemon pushes the stream to,
/// reconnecting by itself.
#[derive(Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PublishConfig {
    /// Where to: `rtsp://` or `rtsps://` (ANNOUNCE and RECORD; credentials
    /// in the URL), `rtmp://host/app/key` or `rtmps://host/app/key`, or
    /// `srt://host:port?streamid=...` (MPEG-TS).
    pub url: String,
    /// PEM certificates to trust for an `rtsps://` or `rtmps://` relay
    /// besides the web's roots (its own, if self-signed, or its CA).
    pub ca: Option<PathBuf>,
}

/// Whether a publishing URL's `scheme` runs over TLS.
pub fn is_secure(scheme: &str) -> bool {
    matches!(scheme, "rtsps" | "rtmps")
}

/// The schemes `publish.url` takes.
pub const PUBLISH_SCHEMES: [&str; 5] = ["rtsp", "rtsps", "rtmp", "rtmps", "srt"];

impl PublishConfig {
    /// The URL, checked: a scheme streamcam publishes with and a host.
    pub fn parsed(&self) -> Result<url::Url, String> {
        let url = url::Url::parse(&self.url)
            .map_err(|e| format!("is not a URL ({e}), e.g. \"rtmp://relay.example/live/cam1\""))?;
        if !PUBLISH_SCHEMES.contains(&url.scheme()) {
            return Err(format!(
                "{}:// is not a way to publish in this version: use {}",
                url.scheme(),
                PUBLISH_SCHEMES.map(|s| format!("{s}://")).join(", ")
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!(
                "names no host: {}://<host>[:port]/...",
                url.scheme()
            ));
        }
        Ok(url)
    }

    /// Checks the URL and the `ca` file; on error returns the key (relative
    /// to the target's table) and a message.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        let url = self.parsed().map_err(|m| ("url", m))?;
        if url.scheme() == "srt" {
            srt::Options::of(&url).map_err(|m| ("url", m))?;
        }
        if let Some(ca) = &self.ca {
            if !is_secure(url.scheme()) {
                return Err((
                    "ca",
                    format!(
                        "is for rtsps:// and rtmps:// targets; {}:// has no certificate to check",
                        url.scheme()
                    ),
                ));
            }
            pem::ca_roots(ca).map_err(|e| ("ca", e.to_string()))?;
        }
        Ok(())
    }
}

/// Never shows the URL, which may hold a password or a stream key.
impl fmt::Debug for PublishConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishConfig")
            .field("url", &"<hidden>")
            .field("ca", &self.ca)
            .finish()
    }
}

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
    fn validate(&self) -> Result<(), (String, String)> {
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

/// `[server]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port the RTSP server listens on.
    #[serde(deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    /// Path of the stream in the RTSP URL.
    pub path: String,
    /// Most sessions (clients) served at once.
    pub max_clients: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8554)),
            path: "/stream".into(),
            max_clients: 32,
        }
    }
}

/// Kinds of picture source.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A camera when one exists, else the test pattern.
    #[default]
    Auto,
    /// A Raspberry Pi camera through libcamera.
    Libcamera,
    /// A V4L2 capture device.
    V4l2,
    /// A generated test pattern.
    Testpattern,
    /// An Annex-B H.264 file, looped.
    File,
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Libcamera => "libcamera",
            Self::V4l2 => "v4l2",
            Self::Testpattern => "testpattern",
            Self::File => "file",
        })
    }
}

/// `[source]` section.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// Which source to use.
    pub kind: SourceKind,
    /// A V4L2 node or libcamera camera id; empty means detect.
    pub device: String,
    /// The H.264 file for `kind = "file"`.
    pub file: PathBuf,
}

/// Encoder choice.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum EncoderKind {
    /// The hardware encoder where there is one, else software.
    #[default]
    Auto,
    /// A V4L2 memory-to-memory encoder (the Pi's bcm2835-codec).
    V4l2M2m,
    /// The software encoder.
    Software,
}

/// H.264 profile the encoder is asked for.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum H264Profile {
    /// Constrained baseline: every decoder, every browser's WebRTC.
    Baseline,
    /// Main: better compression; WebRTC in Chromium.
    Main,
    /// High: the best compression; not every browser takes it over WebRTC.
    High,
}

/// `[video]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VideoConfig {
    /// Picture width in pixels.
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
    /// Frames per second (an upper bound for cameras).
    pub framerate: u32,
    /// Target bit rate in bit/s.
    pub bitrate: u32,
    /// Frames between key frames.
    pub keyframe_interval: u32,
    /// Which encoder to use.
    pub encoder: EncoderKind,
    /// H.264 profile; `None`: the encoder's own (High on the Pi's encoder,
    /// constrained baseline in software).
    pub profile: Option<H264Profile>,
}

impl Default for VideoConfig {
    fn default() -> Self {
        Self {
            width: 1280,
            height: 720,
            framerate: 30,
            bitrate: 1_000_000,
            keyframe_interval: 30,
            encoder: EncoderKind::Auto,
            profile: None,
        }
    }
}

/// `[camera]` section: picture controls for libcamera cameras. A control
/// left out keeps the camera's own default.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CameraConfig {
    /// Mirror the picture left to right.
    pub hflip: bool,
    /// Turn the picture upside down.
    pub vflip: bool,
    /// How the exposure is split between time and gain.
    pub exposure: Option<ExposureMode>,
    /// White balance.
    pub awb: Option<AwbMode>,
    /// -1.0 (dark) to 1.0 (bright); 0.0 is normal.
    pub brightness: Option<f32>,
    /// 0.0 to 32.0; 1.0 is normal.
    pub contrast: Option<f32>,
    /// 0.0 (greyscale) to 32.0; 1.0 is normal.
    pub saturation: Option<f32>,
    /// 0.0 (none) to 16.0; 1.0 is normal.
    pub sharpness: Option<f32>,
    /// Focus, on cameras that can focus (Camera Module 3).
    pub autofocus: Option<AutofocusMode>,
    /// Noise reduction.
    pub denoise: Option<DenoiseMode>,
}

/// `camera.exposure` values (libcamera's `AeExposureMode`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ExposureMode {
    /// The camera's balance of exposure time and gain.
    Normal,
    /// Short exposures (less motion blur, more noise).
    Short,
    /// Long exposures (less noise, more motion blur).
    Long,
}

impl ExposureMode {
    /// Its name in the config (and libcamera's, in kebab case).
    pub fn name(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Short => "short",
            Self::Long => "long",
        }
    }
}

/// `camera.awb` values (libcamera's `AwbMode`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AwbMode {
    /// Automatic white balance.
    Auto,
    /// Incandescent light.
    Incandescent,
    /// Tungsten light.
    Tungsten,
    /// Fluorescent light.
    Fluorescent,
    /// Indoors.
    Indoor,
    /// Daylight.
    Daylight,
    /// Cloudy daylight.
    Cloudy,
}

impl AwbMode {
    /// Its name in the config (and libcamera's, in kebab case).
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Incandescent => "incandescent",
            Self::Tungsten => "tungsten",
            Self::Fluorescent => "fluorescent",
            Self::Indoor => "indoor",
            Self::Daylight => "daylight",
            Self::Cloudy => "cloudy",
        }
    }
}

/// `camera.autofocus` values (libcamera's `AfMode`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AutofocusMode {
    /// Fixed focus at the lens position the camera starts with.
    Manual,
    /// Focus once when the camera starts.
    Auto,
    /// Keep focusing as the scene changes.
    Continuous,
}

impl AutofocusMode {
    /// Its name in the config (and libcamera's, in kebab case).
    pub fn name(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Auto => "auto",
            Self::Continuous => "continuous",
        }
    }
}

/// `camera.denoise` values (libcamera's `NoiseReductionMode`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DenoiseMode {
    /// No noise reduction.
    Off,
    /// Noise reduction that keeps the frame rate.
    Fast,
    /// Stronger noise reduction, possibly at a lower frame rate.
    HighQuality,
    /// The least noise reduction that keeps the frame rate.
    Minimal,
}

impl DenoiseMode {
    /// Its name in the config (and libcamera's, in kebab case).
    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Fast => "fast",
            Self::HighQuality => "high-quality",
            Self::Minimal => "minimal",
        }
    }
}

/// Log levels.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// The default: start-up, clients, problems.
    #[default]
    Info,
    /// Per-request detail.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The level as a `tracing` filter.
    pub fn filter(self) -> tracing::level_filters::LevelFilter {
        use tracing::level_filters::LevelFilter;
        match self {
            Self::Error => LevelFilter::ERROR,
            Self::Warn => LevelFilter::WARN,
            Self::Info => LevelFilter::INFO,
            Self::Debug => LevelFilter::DEBUG,
            Self::Trace => LevelFilter::TRACE,
        }
    }
}

/// `[log]` section.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Least severe level that is logged.
    pub level: LogLevel,
}

/// `[auth]` section: with no users, the stream is open to anyone who can
/// reach the port.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The realm clients are challenged with; a user's `ha1` depends on it.
    pub realm: String,
    /// Accept Basic authentication (the password in clear) on plain RTSP.
    pub basic: bool,
    /// `[[auth.users]]`: who may watch.
    pub users: Vec<UserConfig>,
}

/// `[tls]` section: RTSPS on its own port.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Address and port for RTSPS.
    #[serde(deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    /// The certificate chain (PEM); with `key`, or neither.
    pub cert: Option<PathBuf>,
    /// The private key (PEM).
    pub key: Option<PathBuf>,
    /// Where a self-signed certificate is kept when no `cert` is given:
    /// made once, then used at every start.
    pub store: PathBuf,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8322)),
            cert: None,
            key: None,
            store: PathBuf::from("/var/lib/streamcam/tls"),
        }
    }
}

/// The default realm.
pub const DEFAULT_REALM: &str = "streamcam";

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            realm: DEFAULT_REALM.into(),
            basic: false,
            users: Vec::new(),
        }
    }
}

/// One `[[auth.users]]` entry: a name and either its password or its
/// `ha1` (MD5 of "name:realm:password" in hex, from `streamcam
/// hash-password`).
#[derive(Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UserConfig {
    /// The user name.
    pub name: String,
    /// The password, in clear.
    pub password: Option<String>,
    /// MD5("name:realm:password") as 32 hex digits.
    pub ha1: Option<String>,
}

/// Never shows a password or `ha1`.
impl fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserConfig")
            .field("name", &self.name)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("ha1", &self.ha1.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

/// True for a name or realm that fits inside a quoted header parameter and
/// a Basic `name:password` pair: printable, no `"`, `\` or `:`, not empty.
pub fn header_safe(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| !c.is_control() && !matches!(c, '"' | '\\' | ':'))
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

impl TlsConfig {
    /// Checks that `cert` and `key` come together and can be read.
    fn validate(&self) -> Result<(), (String, String)> {
        match (&self.cert, &self.key) {
            (Some(_), None) => Err((
                "tls.key".into(),
                "is required with tls.cert: the certificate's private key (PEM)".into(),
            )),
            (None, Some(_)) => Err((
                "tls.cert".into(),
                "is required with tls.key: the certificate chain (PEM)".into(),
            )),
            (Some(cert), Some(key)) => {
                for (name, path) in [("tls.cert", cert), ("tls.key", key)] {
                    if let Err(e) = std::fs::File::open(path) {
                        return Err((name.into(), format!("cannot open {}: {e}", path.display())));
                    }
                }
                Ok(())
            }
            (None, None) if self.store.is_relative() => Err((
                "tls.store".into(),
                format!("{} must be an absolute path", self.store.display()),
            )),
            (None, None) => Ok(()),
        }
    }
}

impl AuthConfig {
    /// Checks the realm and users; on error returns the dotted key
    /// (`auth.users[1].ha1`) and a message.
    fn validate(&self) -> Result<(), (String, String)> {
        if !header_safe(&self.realm) {
            return Err((
                "auth.realm".into(),
                format!(
                    "{:?} must be printable text without '\"', '\\' or ':'",
                    self.realm
                ),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, user) in self.users.iter().enumerate() {
            let key = |k: &str| format!("auth.users[{i}].{k}");
            if !header_safe(&user.name) {
                return Err((
                    key("name"),
                    format!(
                        "{:?} must be printable text without '\"', '\\' or ':'",
                        user.name
                    ),
                ));
            }
            if !seen.insert(user.name.as_str()) {
                return Err((key("name"), format!("{:?} is listed twice", user.name)));
            }
            match (&user.password, &user.ha1) {
                (Some(_), Some(_)) => {
                    return Err((key("ha1"), "give either password or ha1, not both".into()));
                }
                (None, None) => {
                    return Err((
                        key("password"),
                        format!(
                            "user {:?} needs a password (or an ha1 from `streamcam hash-password`)",
                            user.name
                        ),
                    ));
                }
                (Some(p), None) if p.is_empty() => {
                    return Err((key("password"), "must not be empty".into()));
                }
                (None, Some(h)) if h.len() != 32 || !h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    return Err((
                        key("ha1"),
                        "must be 32 hex digits: MD5(name:realm:password), as `streamcam hash-password NAME` prints"
                            .into(),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// "MIN to MAX" for messages.
fn span<T: fmt::Display>(range: &RangeInclusive<T>) -> String {
    format!("{} to {}", range.start(), range.end())
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

/// Reads `server.listen`, saying what a valid one looks like.
fn socket_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "{text:?} is not an address and port, e.g. \"0.0.0.0:8554\" or \"[::]:8554\""
        ))
    })
}

/// An IP address (no port), saying what a valid one looks like.
fn ip_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<IpAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "{text:?} is not an IP address, e.g. \"239.255.0.1\" or \"ff15::1\""
        ))
    })
}

/// An address and port, or "" for none.
fn optional_socket_addr<'de, D: serde::Deserializer<'de>>(
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
