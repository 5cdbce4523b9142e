//! The microphone: 16-bit PCM at 48 kHz from an ALSA capture device, read
//! in 20 ms chunks (one Opus frame each), each with its capture time.

use std::ffi::CString;
use std::time::{Duration, Instant};

use alsa::pcm::{Access, Format, HwParams, PCM};
use alsa::{Direction, ValueOr};

use super::error::AudioError;

/// Samples a second per channel: Opus's own rate.
pub const RATE: u32 = 48_000;
/// Samples per channel in one chunk: 20 ms, one Opus frame.
pub const CHUNK: usize = RATE as usize / 50;

/// An open capture device.
pub struct Microphone {
    pcm: PCM,
    name: String,
    channels: usize,
    /// When the first sample was read, and how many frames since: a
    /// device that hands out samples faster than real time (ALSA's `null`
    /// PCM) is paced to the clock.
    started: Option<Instant>,
    frames: u64,
}

impl Microphone {
    /// Opens `device` (an ALSA PCM name such as `default`, `plughw:1,0`
    /// or `null`; `auto`: the first sound card that can capture) for
    /// `channels` channels at 48 kHz.
    pub fn open(device: &str, channels: usize) -> Result<Self, AudioError> {
        if device == "auto" {
            return Self::first_card(channels);
        }
        let name = CString::new(device)
            .map_err(|_| AudioError::Unavailable(format!("{device:?} is not a device name")))?;
        let pcm = PCM::open(&name, Direction::Capture, false)
            .map_err(|e| AudioError::Unavailable(format!("cannot open {device}: {e}")))?;
        configure(&pcm, channels).map_err(|e| {
            AudioError::Unavailable(format!(
                "{device} cannot capture {channels} channel(s) of 16-bit sound at 48 kHz: {e}"
            ))
        })?;
        pcm.start()
            .or_else(|_| pcm.prepare().and_then(|()| pcm.start()))
            .map_err(|e| AudioError::Unavailable(format!("cannot start {device}: {e}")))?;
        Ok(Self {
            pcm,
            name: device.into(),
            channels,
            started: None,
            frames: 0,
        })
    }

    /// The first sound card that can capture (`plughw:<index>`).
    fn first_card(channels: usize) -> Result<Self, AudioError> {
        let mut tried = Vec::new();
        for card in alsa::card::Iter::new().flatten() {
            match Self::open(&format!("plughw:{}", card.get_index()), channels) {
                Ok(mic) => return Ok(mic),
                Err(e) => tried.push(e.to_string()),
            }
        }
        Err(AudioError::Unavailable(if tried.is_empty() {
            "audio.device = \"auto\": no sound card found".into()
        } else {
            format!(
                "audio.device = \"auto\": no sound card can capture ({})",
                tried.join("; ")
            )
        }))
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads the next 20 ms into `out` (interleaved samples) and returns
    /// when its first sample was captured.
    pub fn next_chunk(&mut self, out: &mut Vec<i16>) -> Result<Instant, AudioError> {
        out.resize(CHUNK * self.channels, 0);
        let io = self.pcm.io_i16().map_err(|e| self.lost(e))?;
        let mut filled = 0;
        while filled < CHUNK {
            match io.readi(&mut out[filled * self.channels..]) {
                Ok(n) => filled += n,
                // An overrun: the samples in between are gone; carry on.
                Err(e) => self.pcm.try_recover(e, true).map_err(|e| self.lost(e))?,
            }
        }
        let now = Instant::now();
        let started = *self.started.get_or_insert(now);
        self.frames += CHUNK as u64;
        let due = started + Duration::from_micros(self.frames * 1_000_000 / u64::from(RATE));
        if due > now {
            std::thread::sleep(due - now);
        }
        // The chunk's last sample is the newest, less what is still queued.
        let queued = self.pcm.delay().unwrap_or(0).max(0) as u64;
        let age = Duration::from_micros((CHUNK as u64 + queued) * 1_000_000 / u64::from(RATE));
        let end = Instant::now().max(due);
        Ok(end.checked_sub(age).unwrap_or(end))
    }

    fn lost(&self, e: alsa::Error) -> AudioError {
        AudioError::Lost(format!("{}: {e}", self.name))
    }
}

/// Interleaved 16-bit samples, 48 kHz, `channels`, 20 ms periods.
fn configure(pcm: &PCM, channels: usize) -> alsa::Result<()> {
    let hw = HwParams::any(pcm)?;
    hw.set_access(Access::RWInterleaved)?;
    hw.set_format(Format::s16())?;
    hw.set_channels(channels as u32)?;
    hw.set_rate(RATE, ValueOr::Nearest)?;
    hw.set_period_size_near(CHUNK as alsa::pcm::Frames, ValueOr::Nearest)?;
    hw.set_buffer_size_near(4 * CHUNK as alsa::pcm::Frames)?;
    pcm.hw_params(&hw)
}
