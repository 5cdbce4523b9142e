//! The session description (RFC 4566) of the stream, answered to DESCRIBE
//! and announced when publishing: an H.264 video
//! track (RFC 6184) with its parameter sets, and an Opus audio track
//! (RFC 7587) where there is sound.

use std::net::IpAddr;

use sdp_types::{AddrType, Attribute, Connection, Media, NetType, Origin, Session, Time};

use crate::format::h264::ParameterSets;
use crate::format::rtp::{CLOCK_RATE, OPUS_CLOCK_RATE, OPUS_PAYLOAD_TYPE, PAYLOAD_TYPE};

/// A track of a mount: [`VIDEO`] or [`AUDIO`] (its `trackID` in the SDP).
pub type Track = usize;
/// The video track.
pub const VIDEO: Track = 0;
/// The audio track.
pub const AUDIO: Track = 1;

/// Control URLs of tracks, relative to the Content-Base: this and the
/// track's number.
pub const TRACK_PREFIX: &str = "trackID=";

fn attr(name: &str, value: impl Into<String>) -> Attribute {
    Attribute {
        attribute: name.into(),
        value: Some(value.into()),
    }
}

/// Builds the SDP for a stream served from `server_ip`, with an audio
/// track of `audio_channels` if it has sound.
pub fn describe(
    params: &ParameterSets,
    server_ip: IpAddr,
    session_id: u64,
    framerate: f64,
    audio_channels: Option<u32>,
) -> String {
    let (addrtype, any) = match server_ip {
        IpAddr::V4(_) => (AddrType::Ip4, "0.0.0.0"),
        IpAddr::V6(_) => (AddrType::Ip6, "::"),
    };
    let session = Session {
        origin: Origin::new(session_id, 1, NetType::In, addrtype.clone(), server_ip),
        session_name: "streamcam".into(),
        session_description: None,
        uri: None,
        emails: vec![],
        phones: vec![],
        connection: Some(Connection {
            nettype: NetType::In,
            addrtype,
            connection_address: any.into(),
        }),
        bandwidths: vec![],
        times: vec![Time {
            start_time: 0,
            stop_time: 0,
            repeats: vec![],
        }],
        time_zones: vec![],
        key: None,
        attributes: vec![
            attr("tool", concat!("streamcam ", env!("CARGO_PKG_VERSION"))),
            attr("type", "broadcast"),
            attr("control", "*"),
            attr("range", "npt=now-"),
        ],
        medias: vec![],
    };
    let mut session = session;
    session.medias.push(Media {
            media: "video".into(),
            port: 0,
            num_ports: None,
            proto: "RTP/AVP".into(),
            fmt: PAYLOAD_TYPE.to_string(),
            media_title: None,
            connections: vec![],
            bandwidths: vec![],
            key: None,
            attributes: vec![
                attr("rtpmap", format!("{PAYLOAD_TYPE} H264/{CLOCK_RATE}")),
                attr(
                    "fmtp",
                    format!(
                        "{PAYLOAD_TYPE} packetization-mode=1;profile-level-id={};sprop-parameter-sets={}",
                        params.profile_level_id(),
                        params.sprop_parameter_sets()
                    ),
                ),
                attr("framerate", format!("{framerate}")),
                attr("control", format!("{TRACK_PREFIX}{VIDEO}")),
            ],
        });
    if let Some(channels) = audio_channels {
        session.medias.push(Media {
            media: "audio".into(),
            port: 0,
            num_ports: None,
            proto: "RTP/AVP".into(),
            fmt: OPUS_PAYLOAD_TYPE.to_string(),
            media_title: None,
            connections: vec![],
            bandwidths: vec![],
            key: None,
            attributes: vec![
                // RFC 7587: always "opus/48000/2"; mono or stereo is in fmtp.
                attr(
                    "rtpmap",
                    format!("{OPUS_PAYLOAD_TYPE} opus/{OPUS_CLOCK_RATE}/2"),
                ),
                attr(
                    "fmtp",
                    format!(
                        "{OPUS_PAYLOAD_TYPE} sprop-stereo={0};stereo={0}",
                        u8::from(channels == 2)
                    ),
                ),
                attr("control", format!("{TRACK_PREFIX}{AUDIO}")),
            ],
        });
    }
    let mut out = Vec::new();
    session
        .write(&mut out)
        .expect("writing to a Vec cannot fail");
    String::from_utf8(out).expect("SDP is ASCII")
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::format::h264::fixtures::{PPS, SPS_720P};

    fn params() -> ParameterSets {
        ParameterSets::new(Bytes::from_static(SPS_720P), Bytes::from_static(PPS)).unwrap()
    }

    #[test]
    fn describes_h264_track() {
        let sdp = describe(&params(), "192.168.1.20".parse().unwrap(), 42, 30.0, None);
        let lines: Vec<&str> = sdp.lines().collect();
        assert_eq!(lines[0], "v=0");
        assert!(lines.contains(&"o=- 42 1 IN IP4 192.168.1.20"));
        assert!(lines.contains(&"c=IN IP4 0.0.0.0"));
        assert!(lines.contains(&"m=video 0 RTP/AVP 96"));
        assert!(lines.contains(&"a=rtpmap:96 H264/90000"));
        assert!(lines.contains(
            &"a=fmtp:96 packetization-mode=1;profile-level-id=42c01f;sprop-parameter-sets=Z0LAH9oBQBbsBEAAAAMAQAAADwPGDKg=,aM48gA=="
        ));
        assert!(lines.contains(&"a=control:trackID=0"));
        assert!(sdp.ends_with("\r\n"));
        // It parses back (the same crate clients such as retina's dependency use).
        let parsed = Session::parse(sdp.as_bytes()).unwrap();
        assert_eq!(parsed.medias.len(), 1);
    }

    #[test]
    fn describes_an_opus_track_where_there_is_sound() {
        let sdp = describe(
            &params(),
            "192.168.1.20".parse().unwrap(),
            42,
            30.0,
            Some(1),
        );
        let lines: Vec<&str> = sdp.lines().collect();
        let audio = lines
            .iter()
            .position(|l| *l == "m=audio 0 RTP/AVP 97")
            .expect(&sdp);
        assert!(lines.iter().position(|l| l.starts_with("m=video")).unwrap() < audio);
        assert_eq!(
            &lines[audio + 1..],
            [
                "a=rtpmap:97 opus/48000/2",
                "a=fmtp:97 sprop-stereo=0;stereo=0",
                "a=control:trackID=1"
            ]
        );
        let parsed = Session::parse(sdp.as_bytes()).unwrap();
        assert_eq!(parsed.medias.len(), 2);
    }

    #[test]
    fn ipv6_server() {
        let sdp = describe(&params(), "::1".parse().unwrap(), 1, 30.0, None);
        assert!(sdp.contains("o=- 1 1 IN IP6 ::1\r\n"));
        assert!(sdp.contains("c=IN IP6 ::\r\n"));
    }
}
