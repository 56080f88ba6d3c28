//! Errors reported to the app, each with a `kind` it can switch on. Pure data: they
//! cross to the driver as kind, message and reason code (`wire::values::write_error`),
//! where the JS `Error` objects are made.

use thiserror::Error;

/// Something the client could not do.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClientError {
    /// No device id is stored: ask the user for one (`setDeviceId`).
    #[error("a device id is needed before connecting")]
    DeviceIdNeeded,
    /// IndexedDB failed (quota exceeded, private mode, ...); nothing was dropped silently.
    #[error("storage failure: {0}")]
    Storage(String),
    /// The request itself is invalid (bad topic, ...), or needs a connection.
    #[error("request refused: {0}")]
    Request(String),
    /// The broker refused the message or connection with this MQTT reason code.
    #[error("refused by the broker with reason code {0:#04x}")]
    Refused(u8),
    /// Another client took the session over; reconnecting stopped.
    #[error("the session was taken over by another connection")]
    TakenOver,
    /// The client was disconnected before the request completed.
    #[error("disconnected")]
    Disconnected,
    /// An error another tab's client reported, as it arrived over the BroadcastChannel.
    #[error("{message}")]
    Relayed {
        /// The other tab's [`ClientError::kind`].
        kind: String,
        /// Its message.
        message: String,
        /// The broker's reason code, for `refused`.
        reason_code: Option<u8>,
    },
}

impl ClientError {
    /// The stable, machine-readable name of this error.
    pub fn kind(&self) -> &str {
        match self {
            Self::DeviceIdNeeded => "device-id-needed",
            Self::Storage(_) => "storage",
            Self::Request(_) => "request",
            Self::Refused(_) => "refused",
            Self::TakenOver => "takeover",
            Self::Disconnected => "disconnected",
            Self::Relayed { kind, .. } => kind,
        }
    }

    /// The broker's reason code, for a refusal.
    pub fn reason_code(&self) -> Option<u8> {
        match self {
            Self::Refused(code) => Some(*code),
            Self::Relayed { reason_code, .. } => *reason_code,
            _ => None,
        }
    }
}
