//! What the ONVIF side answers with: the camera's streams as profiles,
//! the machine, the RTSP port, and what each request brings (who called,
//! at which address, at what time). The services below (`device`,
//! `media`, `events`) read it; the dispatch above them (`onvif`) answers with it.

use std::net::IpAddr;
use std::time::Instant;

use super::identity::Identity;
use super::soap::{self, Fault};
use super::subscriptions::{Subscriptions, Topic};
use crate::config::{Config, H264Profile};

/// Where the device service is: clients such as Home Assistant's always
/// ask here, whatever the discovery said.
pub const DEVICE_PATH: &str = "/onvif/device_service";
/// Where the media service is.
pub const MEDIA_PATH: &str = "/onvif/media_service";

/// One of the camera's streams as a media profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Its token, fixed for the life of the configuration: "main" or "sub"
    /// (clients key what they store on it).
    pub token: &'static str,
    /// Its RTSP path, e.g. "/stream".
    pub path: String,
    pub width: u32,
    pub height: u32,
    pub framerate: u32,
    /// Bit rate in bit/s.
    pub bitrate: u32,
    /// Frames between key frames.
    pub keyframe_interval: u32,
    /// The configured H.264 profile, if one is.
    pub h264: Option<H264Profile>,
    /// Frames of the camera per frame of this stream.
    pub interval: u32,
}

/// The ONVIF side: what it answers with.
#[derive(Debug)]
pub struct Onvif {
    /// `onvif.name`.
    pub name: String,
    /// `onvif.location`.
    pub location: String,
    /// The machine.
    pub identity: Identity,
    /// The streams: the main one, then the substream if it is on.
    pub profiles: Vec<Profile>,
    /// The RTSP port.
    pub rtsp_port: u16,
    /// The camera's full size and rate, its one video source.
    pub source: (u32, u32, u32),
    /// Whether it answers WS-Discovery (`onvif.discovery`).
    pub discoverable: bool,
    /// The event service's subscriptions, and the state they report.
    pub events: Subscriptions,
}

/// What changes while the daemon runs, as a request is answered.
#[derive(Debug, Clone)]
pub struct Moment {
    /// The monotonic time, for throttling.
    pub now: Instant,
    /// Unix time, for the clock and the tokens.
    pub unix: u64,
    /// Each profile's H.264 `profile_idc` as its encoder gives it (`None`
    /// before the first picture).
    pub profile_idc: Vec<Option<u8>>,
}

/// Who sent a request, and how.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The client's address.
    pub client: IpAddr,
    /// Inside TLS.
    pub secure: bool,
    /// The request's `Host` header: the address the client reached us at,
    /// which the URLs in answers use.
    pub host: &'a str,
    /// The request's path, which an HTTP Digest login signs.
    pub path: &'a str,
    /// The request's `Authorization` header (HTTP Digest), if any.
    pub authorization: Option<&'a str>,
}

impl Onvif {
    /// The ONVIF side of `config`, its RTSP port and this machine.
    pub fn new(config: &Config, rtsp_port: u16, identity: Identity) -> Self {
        let onvif = config.onvif.clone().unwrap_or_default();
        let video = &config.video;
        let profile = |token, path: &str, v: &crate::config::VideoConfig| Profile {
            token,
            path: path.to_owned(),
            width: v.width,
            height: v.height,
            framerate: v.framerate,
            bitrate: v.bitrate,
            keyframe_interval: v.keyframe_interval,
            h264: v.profile,
            interval: (video.framerate / v.framerate.max(1)).max(1),
        };
        let mut topics = vec![Topic::SignalLoss];
        if config.motion.is_some() {
            topics.extend([Topic::MotionAlarm, Topic::CellMotion]);
        }
        let mut profiles = vec![profile("main", &config.server.path, video)];
        if let Some(sub) = &config.substream {
            profiles.push(profile("sub", &sub.path, &sub.video(video)));
        }
        Self {
            name: onvif.name,
            location: onvif.location,
            identity,
            profiles,
            rtsp_port,
            source: (video.width, video.height, video.framerate),
            discoverable: onvif.discovery,
            events: Subscriptions::new(topics),
        }
    }

    /// The profile named by `token`.
    pub(super) fn profile(&self, token: Option<&str>) -> Result<(usize, &Profile), Fault> {
        let token = token.unwrap_or("");
        self.profiles
            .iter()
            .enumerate()
            .find(|(_, p)| p.token == token)
            .ok_or_else(|| {
                Fault::InvalidArgVal(
                    "NoProfile",
                    format!(
                        "no profile {token:?}: the profiles are {}",
                        self.profiles
                            .iter()
                            .map(|p| p.token)
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ),
                )
            })
    }
}

/// The host part of a `Host` header ("cam.local:8080" → "cam.local",
/// "[::1]:80" → "[::1]"); "streamcam.local" when there is none.
pub(super) fn host_name(host: &str) -> &str {
    let host = host.trim();
    let name = if host.starts_with('[') {
        host.find(']').map_or(host, |end| &host[..=end])
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    if name.is_empty() {
        "streamcam.local"
    } else {
        name
    }
}

/// The port of a `Host` header, if it names one.
pub(super) fn host_port(host: &str) -> Option<u16> {
    let after = host
        .trim()
        .rsplit_once(']')
        .map_or(host.trim(), |(_, rest)| rest);
    after.rsplit_once(':')?.1.parse().ok()
}

/// `http://HOST/PATH` for a service or a page on this HTTP server, with
/// the `Host` the client used (its port included).
pub(super) fn http_url(caller: Caller, path: &str) -> String {
    let host = caller.host.trim();
    let host = if host.is_empty() {
        "streamcam.local"
    } else {
        host
    };
    let scheme = if caller.secure { "https" } else { "http" };
    soap::esc(&format!("{scheme}://{host}{path}"))
}

/// `xs:boolean`.
pub(super) fn flag(on: bool) -> &'static str {
    if on { "true" } else { "false" }
}
