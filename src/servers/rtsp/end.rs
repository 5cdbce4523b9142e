//! Why a session ended, as its end line and the journal's `REASON` field
//! say it.

use super::effect::SESSION_TIMEOUT_S;

/// Why a session ended: the `REASON` field of its end line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The client sent TEARDOWN.
    Teardown,
    /// The client closed its connection, or said RTCP BYE.
    ClientClosed(&'static str),
    /// The client's connection was reset.
    ClientReset,
    /// No sign of life from a UDP client.
    Timeout,
    /// The client could not keep up with the stream.
    Lagging(String),
    /// The daemon is stopping.
    ServerStopping,
    /// Something else failed.
    Error(String),
}

impl End {
    /// The `REASON` value: one of a small fixed set.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Teardown => "teardown",
            Self::ClientClosed(_) => "client-closed",
            Self::ClientReset => "client-reset",
            Self::Timeout => "timeout",
            Self::Lagging(_) => "lagging",
            Self::ServerStopping => "server-stopping",
            Self::Error(_) => "error",
        }
    }

    /// A sentence for people.
    pub fn describe(&self) -> String {
        match self {
            Self::Teardown => "TEARDOWN".into(),
            Self::ClientClosed(how) => (*how).into(),
            Self::ClientReset => "the client reset its connection".into(),
            Self::Timeout => format!(
                "timed out: no RTSP request or RTCP from the client for {SESSION_TIMEOUT_S} s"
            ),
            Self::Lagging(why) => format!("dropped: {why}"),
            Self::ServerStopping => "server stopping".into(),
            Self::Error(e) => e.clone(),
        }
    }

    /// True if a playing client gets a BYE at the end: it may still be
    /// there to read it (TEARDOWN sends its own, ahead of the reply).
    pub fn says_bye(&self) -> bool {
        matches!(
            self,
            Self::ServerStopping | Self::Timeout | Self::Lagging(_)
        )
    }
}
