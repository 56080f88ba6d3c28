//! Errors reported to JavaScript, each with a `kind` the app can switch on.

use thiserror::Error;
use wasm_bindgen::JsValue;

/// Something the client could not do.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClientError {
    /// No device id is stored: ask the user for one (`setDeviceId`).
    #[error("a device id is needed before connecting")]
    DeviceIdNeeded,
    /// The device id given is not acceptable.
    #[error("invalid device id: {0}")]
    InvalidDeviceId(#[from] crate::device_id::DeviceIdError),
    /// The options object is not valid.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
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
}

impl ClientError {
    /// The stable, machine-readable name of this error.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::DeviceIdNeeded => "device-id-needed",
            Self::InvalidDeviceId(_) => "invalid-device-id",
            Self::InvalidOptions(_) => "invalid-options",
            Self::Storage(_) => "storage",
            Self::Request(_) => "request",
            Self::Refused(_) => "refused",
            Self::TakenOver => "takeover",
            Self::Disconnected => "disconnected",
        }
    }

    /// A JavaScript `Error` with `kind` (and `reasonCode` for refusals) set.
    pub fn to_js(&self) -> JsValue {
        let error = js_sys::Error::new(&self.to_string());
        let _ = js_sys::Reflect::set(&error, &"kind".into(), &self.kind().into());
        if let Self::Refused(code) = self {
            let _ = js_sys::Reflect::set(&error, &"reasonCode".into(), &JsValue::from(*code));
        }
        error.into()
    }
}

impl From<ClientError> for JsValue {
    fn from(error: ClientError) -> JsValue {
        error.to_js()
    }
}

/// The message of a JavaScript exception, or a fixed text if it has none.
pub fn js_message(error: &JsValue) -> String {
    js_sys::Reflect::get(error, &"message".into())
        .ok()
        .and_then(|message| message.as_string())
        .unwrap_or_else(|| "unknown JavaScript error".into())
}
