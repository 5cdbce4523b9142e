//! The `retina` crate (a strict RTSP client) with openh264 decoding every
//! picture it receives.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use retina::client::{PlayOptions, SessionGroup, SessionOptions, SetupOptions, Transport};
use retina::codec::{CodecItem, FrameFormat, ParametersRef};

use crate::clients::{Decoded, Mode};

/// What retina saw, beyond the decoded pictures.
pub struct RetinaRun {
    /// Pictures decoded by openh264.
    pub decoded: Decoded,
    /// From sending PLAY to the first decoded picture.
    pub first_frame_after_play: Duration,
}

/// Plays `url` over `transport` ("udp" or "tcp") until `frames` pictures
/// are received (and, in `Decode` mode, decoded), or 20 s pass.
pub fn play(url: &str, transport: &str, frames: usize, mode: Mode) -> RetinaRun {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), run(url, transport, frames, mode))
            .await
            .unwrap_or_else(|_| panic!("retina: no {frames} frames within 20 s"))
    })
}

async fn run(url: &str, transport: &str, frames: usize, mode: Mode) -> RetinaRun {
    let group = Arc::new(SessionGroup::default());
    // Credentials in the URL (rtsp://user:password@host/...) go to retina's own option.
    let mut url = url::Url::parse(url).unwrap();
    let creds = (!url.username().is_empty()).then(|| retina::client::Credentials {
        username: url.username().to_string(),
        password: url.password().unwrap_or_default().to_string(),
    });
    url.set_username("").unwrap();
    url.set_password(None).unwrap();
    let options = SessionOptions::default()
        .session_group(Arc::clone(&group))
        .creds(creds)
        .user_agent("streamcam-tests retina".into());
    let mut session = retina::client::Session::describe(url, options)
        .await
        .expect("retina DESCRIBE");
    let video = session
        .streams()
        .iter()
        .position(|s| s.media() == "video" && s.encoding_name() == "h264")
        .expect("an H.264 video stream in the SDP");
    let setup = SetupOptions::default()
        .transport(transport.parse::<Transport>().unwrap())
        .frame_format(FrameFormat::SIMPLE);
    session.setup(video, setup).await.expect("retina SETUP");
    let start = Instant::now();
    let playing = session
        .play(PlayOptions::default())
        .await
        .expect("retina PLAY");
    let mut demuxed = playing.demuxed().expect("demuxed");
    let mut decoder = openh264::decoder::Decoder::new().unwrap();
    let mut d = Decoded::default();
    let mut first = None;
    while d.frames < frames {
        let item = demuxed
            .next()
            .await
            .expect("stream ended early")
            .expect("retina error");
        let CodecItem::VideoFrame(frame) = item else {
            continue;
        };
        if frame.loss() > 0 {
            d.errors
                .push_str(&format!("{} packets lost\n", frame.loss()));
        }
        let pts = frame.timestamp().elapsed();
        if mode == Mode::Receive {
            if let Some(ParametersRef::Video(v)) = demuxed.streams()[video].parameters() {
                (d.width, d.height) = v.pixel_dimensions();
            }
            first.get_or_insert_with(|| start.elapsed());
            d.arrivals.push(start.elapsed());
            d.pts.push(pts);
            d.frames += 1;
            continue;
        }
        match decoder.decode(frame.data()) {
            Ok(Some(yuv)) => {
                use openh264::formats::YUVSource;
                let (w, h) = yuv.dimensions();
                (d.width, d.height) = (w as u32, h as u32);
                first.get_or_insert_with(|| start.elapsed());
                d.arrivals.push(start.elapsed());
                d.pts.push(pts);
                d.frames += 1;
            }
            Ok(None) => d.errors.push_str("decoder produced no picture\n"),
            Err(e) => d.errors.push_str(&format!("decode error: {e}\n")),
        }
    }
    drop(demuxed); // TEARDOWN
    group.await_teardown().await.ok();
    RetinaRun {
        decoded: d,
        first_frame_after_play: first.unwrap(),
    }
}
