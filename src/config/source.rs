//! `[source]`: where pictures come from.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

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
