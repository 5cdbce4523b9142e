//! ONVIF's media service (ver10): the camera's streams as profiles (the
//! main stream, and the substream when `[substream]` is on), their one
//! video source and their encoders, and the RTSP and snapshot URLs. The
//! settings are the configuration file's: every option offered is the
//! value in use.

use super::camera::{Caller, Moment, Onvif, Profile, flag, host_name, http_url};
use super::soap::{Fault, Request, esc};
use crate::config::H264Profile;
use crate::servers::rtsp::effect::SESSION_TIMEOUT_S;

/// The operations answered (for the tests, which call each).
#[cfg(test)]
pub(super) const OPERATIONS: [&str; 14] = [
    "GetServiceCapabilities",
    "GetProfiles",
    "GetProfile",
    "GetVideoSources",
    "GetVideoSourceConfigurations",
    "GetVideoSourceConfiguration",
    "GetCompatibleVideoSourceConfigurations",
    "GetVideoEncoderConfigurations",
    "GetVideoEncoderConfiguration",
    "GetCompatibleVideoEncoderConfigurations",
    "GetVideoEncoderConfigurationOptions",
    "GetGuaranteedNumberOfVideoEncoderInstances",
    "GetStreamUri",
    "GetSnapshotUri",
];

/// The token of the camera, the one video source.
pub(super) const SOURCE: &str = "camera";
/// The token of the video source configuration every profile shares.
pub(super) const SOURCE_CONFIG: &str = "source";

/// The body of the answer to a media service request.
pub(super) fn answer(
    camera: &Onvif,
    request: &Request,
    caller: Caller,
    moment: &Moment,
) -> Result<String, Fault> {
    let (_, op) = request.operation();
    let encoders = |tag: &str| -> String {
        (0..camera.profiles.len())
            .map(|i| encoder(camera, i, moment, tag))
            .collect()
    };
    let body = match op {
        "GetServiceCapabilities" => service_capabilities(),
        "GetProfiles" => (0..camera.profiles.len())
            .map(|i| profile(camera, i, moment, "trt:Profiles"))
            .collect(),
        "GetProfile" => {
            let (i, _) = camera.profile(request.arg("ProfileToken"))?;
            profile(camera, i, moment, "trt:Profile")
        }
        "GetVideoSources" => {
            let (width, height, framerate) = camera.source;
            format!(
                "<trt:VideoSources token=\"{SOURCE}\"><tt:Framerate>{framerate}</tt:Framerate>\
                 <tt:Resolution><tt:Width>{width}</tt:Width><tt:Height>{height}</tt:Height>\
                 </tt:Resolution></trt:VideoSources>"
            )
        }
        "GetVideoSourceConfigurations" | "GetCompatibleVideoSourceConfigurations" => {
            source_config(camera, "trt:Configurations")
        }
        "GetVideoSourceConfiguration" => {
            let token = request.arg("ConfigurationToken").unwrap_or("");
            if token != SOURCE_CONFIG {
                return Err(no_config(token));
            }
            source_config(camera, "trt:Configuration")
        }
        "GetVideoEncoderConfigurations" => encoders("trt:Configurations"),
        "GetVideoEncoderConfiguration" => {
            let token = request.arg("ConfigurationToken");
            let (i, _) = camera
                .profile(token)
                .map_err(|_| no_config(token.unwrap_or("")))?;
            encoder(camera, i, moment, "trt:Configuration")
        }
        "GetCompatibleVideoEncoderConfigurations" => {
            let (i, _) = camera.profile(request.arg("ProfileToken"))?;
            encoder(camera, i, moment, "trt:Configurations")
        }
        "GetVideoEncoderConfigurationOptions" => {
            let token = request
                .arg("ProfileToken")
                .or_else(|| request.arg("ConfigurationToken"));
            let i = match token {
                Some(_) => camera.profile(token)?.0,
                None => 0,
            };
            options(camera, i, moment)
        }
        "GetGuaranteedNumberOfVideoEncoderInstances" => {
            let n = camera.profiles.len();
            format!("<trt:TotalNumber>{n}</trt:TotalNumber><trt:H264>{n}</trt:H264>")
        }
        "GetStreamUri" => {
            let (_, p) = camera.profile(request.arg("ProfileToken"))?;
            if request.arg("Stream") == Some("RTP-Multicast") {
                return Err(Fault::InvalidArgVal(
                    "InvalidStreamSetup",
                    "this camera streams RTP-Unicast (RTSP over UDP or TCP) to ONVIF clients"
                        .into(),
                ));
            }
            if request.arg("Protocol") == Some("HTTP") {
                return Err(Fault::InvalidArgVal(
                    "InvalidStreamSetup",
                    "RTSP over HTTP is not offered: use RTSP (over UDP or TCP)".into(),
                ));
            }
            let uri = format!(
                "rtsp://{}:{}{}",
                host_name(caller.host),
                camera.rtsp_port,
                p.path
            );
            media_uri(&esc(&uri))
        }
        "GetSnapshotUri" => {
            let (i, p) = camera.profile(request.arg("ProfileToken"))?;
            let path = if i == 0 {
                "/snapshot.jpg".to_owned()
            } else {
                format!("/snapshot.jpg?width={}", p.width)
            };
            media_uri(&http_url(caller, &path))
        }
        // The profiles are the configured streams, fixed.
        "CreateProfile" => return Err(Fault::MaxProfiles),
        other => return Err(Fault::ActionNotSupported(other.to_owned())),
    };
    Ok(format!("<trt:{op}Response>{body}</trt:{op}Response>"))
}

/// `trt:Capabilities` of the media service.
pub(super) fn service_capabilities() -> String {
    "<trt:Capabilities SnapshotUri=\"true\" Rotation=\"false\" VideoSourceMode=\"false\" \
     OSD=\"false\"><trt:ProfileCapabilities MaximumNumberOfProfiles=\"2\"/>\
     <trt:StreamingCapabilities RTPMulticast=\"false\" RTP_TCP=\"true\" RTP_RTSP_TCP=\"true\" \
     NonAggregateControl=\"false\" NoRTSPStreaming=\"false\"/></trt:Capabilities>"
        .to_owned()
}

fn no_config(token: &str) -> Fault {
    Fault::InvalidArgVal("NoConfig", format!("no configuration {token:?}"))
}

/// A `tt:MediaUri` for `uri` (escaped), valid for as long as the camera
/// runs this configuration.
fn media_uri(uri: &str) -> String {
    format!(
        "<trt:MediaUri><tt:Uri>{uri}</tt:Uri><tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>\
         <tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout>\
         </trt:MediaUri>"
    )
}

/// Profile `i` as the element `tag`.
fn profile(camera: &Onvif, i: usize, moment: &Moment, tag: &str) -> String {
    let p = &camera.profiles[i];
    format!(
        "<{tag} token=\"{0}\" fixed=\"true\"><tt:Name>{0}</tt:Name>{1}{2}</{tag}>",
        p.token,
        source_config(camera, "tt:VideoSourceConfiguration"),
        encoder(camera, i, moment, "tt:VideoEncoderConfiguration")
    )
}

/// The one video source configuration, as the element `tag`.
fn source_config(camera: &Onvif, tag: &str) -> String {
    let (width, height, _) = camera.source;
    format!(
        "<{tag} token=\"{SOURCE_CONFIG}\"><tt:Name>{SOURCE_CONFIG}</tt:Name>\
         <tt:UseCount>{}</tt:UseCount><tt:SourceToken>{SOURCE}</tt:SourceToken>\
         <tt:Bounds x=\"0\" y=\"0\" width=\"{width}\" height=\"{height}\"/></{tag}>",
        camera.profiles.len()
    )
}

/// The H.264 profile of profile `i`: the configured one, else the one its
/// encoder's SPS says, else Baseline (every decoder's).
fn h264_profile(p: &Profile, idc: Option<u8>) -> &'static str {
    match (p.h264, idc) {
        (Some(H264Profile::Baseline), _) | (None, Some(66) | None) => "Baseline",
        (Some(H264Profile::Main), _) | (None, Some(77)) => "Main",
        (None, Some(88)) => "Extended",
        (Some(H264Profile::High), _) | (None, Some(_)) => "High",
    }
}

/// Profile `i`'s encoder configuration (token as the profile's), as the
/// element `tag`.
fn encoder(camera: &Onvif, i: usize, moment: &Moment, tag: &str) -> String {
    let p = &camera.profiles[i];
    let idc = moment.profile_idc.get(i).copied().flatten();
    format!(
        "<{tag} token=\"{0}\"><tt:Name>{0}</tt:Name><tt:UseCount>1</tt:UseCount>\
         <tt:Encoding>H264</tt:Encoding><tt:Resolution><tt:Width>{1}</tt:Width>\
         <tt:Height>{2}</tt:Height></tt:Resolution><tt:Quality>5</tt:Quality>\
         <tt:RateControl><tt:FrameRateLimit>{3}</tt:FrameRateLimit>\
         <tt:EncodingInterval>{4}</tt:EncodingInterval><tt:BitrateLimit>{5}</tt:BitrateLimit>\
         </tt:RateControl><tt:H264><tt:GovLength>{6}</tt:GovLength>\
         <tt:H264Profile>{7}</tt:H264Profile></tt:H264><tt:Multicast><tt:Address>\
         <tt:Type>IPv4</tt:Type><tt:IPv4Address>0.0.0.0</tt:IPv4Address></tt:Address>\
         <tt:Port>0</tt:Port><tt:TTL>0</tt:TTL><tt:AutoStart>{8}</tt:AutoStart></tt:Multicast>\
         <tt:SessionTimeout>PT{9}S</tt:SessionTimeout></{tag}>",
        p.token,
        p.width,
        p.height,
        p.framerate,
        p.interval,
        p.bitrate / 1000,
        p.keyframe_interval,
        h264_profile(p, idc),
        flag(false),
        SESSION_TIMEOUT_S
    )
}

/// `GetVideoEncoderConfigurationOptions` for profile `i`: the values in
/// use, as ranges of one.
fn options(camera: &Onvif, i: usize, moment: &Moment) -> String {
    let p = &camera.profiles[i];
    let idc = moment.profile_idc.get(i).copied().flatten();
    let range = |name: &str, v: u32| {
        format!("<tt:{name}><tt:Min>{v}</tt:Min><tt:Max>{v}</tt:Max></tt:{name}>")
    };
    format!(
        "<trt:Options><tt:QualityRange><tt:Min>5</tt:Min><tt:Max>5</tt:Max></tt:QualityRange>\
         <tt:H264><tt:ResolutionsAvailable><tt:Width>{}</tt:Width><tt:Height>{}</tt:Height>\
         </tt:ResolutionsAvailable>{}{}{}<tt:H264ProfilesSupported>{}</tt:H264ProfilesSupported>\
         </tt:H264></trt:Options>",
        p.width,
        p.height,
        range("GovLengthRange", p.keyframe_interval),
        range("FrameRateRange", p.framerate),
        range("EncodingIntervalRange", p.interval),
        h264_profile(p, idc)
    )
}

#[cfg(test)]
mod tests {
    use super::super::Service;
    use super::super::soap::TRT;
    use super::super::tests::{ask, camera};

    #[test]
    fn the_two_streams_are_two_fixed_h264_profiles() {
        let c = camera(true);
        let xml = ask(&c, Service::Media, TRT, "GetProfiles", "").xml;
        assert!(
            xml.contains("<trt:Profiles token=\"main\" fixed=\"true\"><tt:Name>main</tt:Name>"),
            "{xml}"
        );
        assert!(
            xml.contains("<trt:Profiles token=\"sub\" fixed=\"true\">"),
            "{xml}"
        );
        // The main stream: 1280x720 at 30, 2 Mbit/s, High from its SPS;
        // the substream: 640x360 every third frame, Baseline (no SPS yet).
        assert!(
            xml.contains("<tt:Width>1280</tt:Width><tt:Height>720</tt:Height>"),
            "{xml}"
        );
        assert!(
            xml.contains("<tt:H264Profile>High</tt:H264Profile>"),
            "{xml}"
        );
        assert!(
            xml.contains("<tt:Width>640</tt:Width><tt:Height>360</tt:Height>"),
            "{xml}"
        );
        assert!(xml.contains("<tt:FrameRateLimit>10</tt:FrameRateLimit><tt:EncodingInterval>3</tt:EncodingInterval><tt:BitrateLimit>300</tt:BitrateLimit>"), "{xml}");
        assert!(
            xml.contains("<tt:H264Profile>Baseline</tt:H264Profile>"),
            "{xml}"
        );
        assert_eq!(
            xml.matches("<tt:SourceToken>camera</tt:SourceToken>")
                .count(),
            2
        );
        let xml = ask(
            &c,
            Service::Media,
            TRT,
            "GetProfile",
            "<o:ProfileToken>nope</o:ProfileToken>",
        )
        .xml;
        assert!(
            xml.contains("ter:NoProfile") && xml.contains("main and sub"),
            "{xml}"
        );
        let single = ask(&camera(false), Service::Media, TRT, "GetProfiles", "").xml;
        assert_eq!(single.matches("<trt:Profiles ").count(), 1);
    }

    #[test]
    fn stream_and_snapshot_urls_use_the_address_the_client_called() {
        let c = camera(true);
        let setup = "<o:StreamSetup><tt:Stream xmlns:tt=\"http://www.onvif.org/ver10/schema\">RTP-Unicast</tt:Stream></o:StreamSetup>";
        let xml = ask(
            &c,
            Service::Media,
            TRT,
            "GetStreamUri",
            &format!("{setup}<o:ProfileToken>sub</o:ProfileToken>"),
        )
        .xml;
        assert!(
            xml.contains("<tt:Uri>rtsp://192.0.2.1:8554/sub</tt:Uri>"),
            "{xml}"
        );
        let xml = ask(
            &c,
            Service::Media,
            TRT,
            "GetStreamUri",
            "<o:ProfileToken>main</o:ProfileToken>",
        )
        .xml;
        assert!(
            xml.contains("<tt:Uri>rtsp://192.0.2.1:8554/stream</tt:Uri>"),
            "{xml}"
        );
        let multicast = "<o:StreamSetup><o:Stream>RTP-Multicast</o:Stream></o:StreamSetup><o:ProfileToken>main</o:ProfileToken>";
        let xml = ask(&c, Service::Media, TRT, "GetStreamUri", multicast).xml;
        assert!(xml.contains("ter:InvalidStreamSetup"), "{xml}");
        let xml = ask(
            &c,
            Service::Media,
            TRT,
            "GetSnapshotUri",
            "<o:ProfileToken>main</o:ProfileToken>",
        )
        .xml;
        assert!(
            xml.contains("<tt:Uri>http://192.0.2.1:8080/snapshot.jpg</tt:Uri>"),
            "{xml}"
        );
        let xml = ask(
            &c,
            Service::Media,
            TRT,
            "GetSnapshotUri",
            "<o:ProfileToken>sub</o:ProfileToken>",
        )
        .xml;
        assert!(
            xml.contains("<tt:Uri>http://192.0.2.1:8080/snapshot.jpg?width=640</tt:Uri>"),
            "{xml}"
        );
    }
}
