//! `[audio]`: sound from a microphone (ALSA) coded as Opus (RFC 7587):
//! 48 kHz, 20 ms frames, each with the capture time of its first sample
//! on the same clock as the pictures.

pub mod capture;
pub mod error;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opusic_c::{Application, Bitrate, Channels, Encoder, SampleRate};

use crate::broadcast::{Broadcast, StreamInfo};
use crate::config::AudioConfig;
use capture::{CHUNK, Microphone};
use error::AudioError;

/// First wait before reopening a microphone that failed; doubles up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Captures and codes `config`'s microphone on its own thread, publishing
/// each frame to `stream` (an `audio_sibling` of the main stream), until
/// `stop`. A microphone that cannot be opened or vanishes is reopened with
/// back-off while the video goes on; each new failure is logged once.
pub fn start(
    config: &AudioConfig,
    stream: Arc<Broadcast>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    let config = config.clone();
    std::thread::Builder::new()
        .name("audio".into())
        .spawn(move || supervise(&config, &stream, &stop))
        .expect("spawning the audio thread")
}

fn supervise(config: &AudioConfig, stream: &Broadcast, stop: &AtomicBool) {
    let mut backoff = FIRST_BACKOFF;
    let mut last_error = String::new();
    while !stop.load(Ordering::Relaxed) {
        let error =
            match AudioCapture::open(&config.device, config.channels as usize, config.bitrate) {
                Ok(mut audio) => {
                    tracing::info!(
                        device = %audio.name(),
                        "audio: {} channel(s) of Opus at {} bit/s from {}",
                        config.channels,
                        config.bitrate,
                        audio.name()
                    );
                    stream.set_info(StreamInfo {
                        description: format!("opus from {}", audio.name()),
                        error: None,
                    });
                    last_error.clear();
                    backoff = FIRST_BACKOFF;
                    loop {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        match audio.next_frame() {
                            Ok(frame) => stream.publish_opus(&frame.data, frame.captured),
                            Err(e) => break e,
                        }
                    }
                }
                Err(e) => e,
            };
        let message = error.to_string();
        if message != last_error {
            tracing::warn!("audio: {message}; the video goes on, retrying in {backoff:?}");
            last_error = message.clone();
        }
        stream.set_info(StreamInfo {
            description: format!("no sound ({message})"),
            error: Some(message),
        });
        let until = Instant::now() + backoff;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One coded 20 ms frame.
#[derive(Debug, Clone)]
pub struct OpusFrame {
    /// The Opus packet.
    pub data: Vec<u8>,
    /// When its first sample was captured.
    pub captured: Instant,
}

/// The microphone and its encoder.
pub struct AudioCapture {
    mic: Microphone,
    encoder: Encoder,
    samples: Vec<i16>,
}

/// The largest Opus packet (RFC 6716: 1275 bytes a frame).
const MAX_PACKET: usize = 1275;

impl AudioCapture {
    /// Opens `device` for `channels` (1 or 2) and an Opus encoder at
    /// `bitrate` bit/s.
    pub fn open(device: &str, channels: usize, bitrate: u32) -> Result<Self, AudioError> {
        let mic = Microphone::open(device, channels)?;
        let layout = if channels == 2 {
            Channels::Stereo
        } else {
            Channels::Mono
        };
        let mut encoder = Encoder::new(layout, SampleRate::Hz48000, Application::Audio)
            .map_err(|e| AudioError::Opus(format!("{e:?}")))?;
        encoder
            .set_bitrate(Bitrate::Value(bitrate))
            .map_err(|e| AudioError::Opus(format!("bit rate {bitrate}: {e:?}")))?;
        Ok(Self {
            mic,
            encoder,
            samples: Vec::with_capacity(CHUNK * channels),
        })
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        self.mic.name()
    }

    /// Blocks for the next 20 ms of sound and codes it.
    pub fn next_frame(&mut self) -> Result<OpusFrame, AudioError> {
        let captured = self.mic.next_chunk(&mut self.samples)?;
        // The binding takes 16-bit samples as u16.
        let input: Vec<u16> = self.samples.iter().map(|&s| s as u16).collect();
        let mut data = vec![0; MAX_PACKET];
        let n = self
            .encoder
            .encode_to_slice(&input, &mut data)
            .map_err(|e| AudioError::Opus(format!("{e:?}")))?;
        data.truncate(n);
        Ok(OpusFrame { data, captured })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_null_device_gives_paced_silence_that_codes_as_opus() {
        let mut audio = AudioCapture::open("null", 1, 64_000).unwrap();
        assert_eq!(audio.name(), "null");
        let started = Instant::now();
        let mut frames = Vec::new();
        for _ in 0..10 {
            frames.push(audio.next_frame().unwrap());
        }
        // Ten 20 ms frames take 200 ms even from a device that does not wait.
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(170), "{took:?}");
        for pair in frames.windows(2) {
            let step = pair[1].captured - pair[0].captured;
            assert!(
                step > Duration::from_millis(15) && step < Duration::from_millis(25),
                "{step:?}"
            );
        }
        let mut decoder = opusic_c::Decoder::new(Channels::Mono, SampleRate::Hz48000).unwrap();
        for frame in &frames {
            assert!(!frame.data.is_empty() && frame.data.len() <= MAX_PACKET);
            let mut pcm = vec![0u16; CHUNK];
            let n = decoder
                .decode_to_slice(&frame.data, &mut pcm, false)
                .unwrap();
            assert_eq!(n, CHUNK, "20 ms per packet");
            assert!(
                pcm.iter().all(|&s| (s as i16).unsigned_abs() < 64),
                "silence"
            );
        }
    }

    #[test]
    fn a_device_that_does_not_exist_is_named_in_the_error() {
        let Err(e) = AudioCapture::open("hw:CARD=NoSuchCard", 1, 64_000) else {
            panic!("opened a card that is not there")
        };
        assert!(e.to_string().contains("hw:CARD=NoSuchCard"), "{e}");
    }
}
