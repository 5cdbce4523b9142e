//! What can go wrong on the audio path: the microphone or the Opus coder.

/// Errors opening or reading the microphone, or coding its sound.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The device cannot be opened as configured.
    #[error("{0}")]
    Unavailable(String),
    /// The device failed or went away while capturing.
    #[error("{0}")]
    Lost(String),
    /// The Opus encoder refused something.
    #[error("Opus: {0}")]
    Opus(String),
}
