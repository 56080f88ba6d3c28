//! The options object given to `TabMqClient.create`.

use serde::Deserialize;
use tabmq_protocol::client::ClientConfig;
use tabmq_protocol::packet::Will;
use tabmq_protocol::{Properties, ProtocolVersion, QoS};

use crate::backoff::BackoffOptions;
use crate::error::ClientError;

/// A will message, as given in options.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WillOptions {
    /// Topic.
    pub topic: String,
    /// Payload, as text.
    pub payload: String,
    /// QoS 0, 1 or 2.
    #[serde(default)]
    pub qos: u8,
    /// Retained?
    #[serde(default)]
    pub retain: bool,
    /// v5 will delay, in seconds.
    #[serde(default)]
    pub delay_seconds: Option<u32>,
}

/// Client options (JavaScript names in camelCase).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Options {
    /// Broker URL, e.g. `ws://localhost:8080/mqtt`.
    pub url: String,
    /// App namespace: names the IndexedDB database and prefixes the client id.
    pub namespace: String,
    /// `"5.0"` (default) or `"3.1.1"`.
    #[serde(default = "default_version")]
    pub version: String,
    /// Keep-alive in seconds (default 60).
    #[serde(default = "default_keep_alive")]
    pub keep_alive: u16,
    /// Discard the broker's stored session on connect (default false).
    #[serde(default)]
    pub clean_start: bool,
    /// v5 session expiry interval in seconds (default one day).
    #[serde(default = "default_session_expiry")]
    pub session_expiry: u32,
    /// User name.
    #[serde(default)]
    pub username: Option<String>,
    /// Password.
    #[serde(default)]
    pub password: Option<String>,
    /// Will message.
    #[serde(default)]
    pub will: Option<WillOptions>,
    /// Reconnect backoff.
    #[serde(default)]
    pub backoff: BackoffOptions,
}

fn default_version() -> String {
    "5.0".into()
}

fn default_keep_alive() -> u16 {
    60
}

fn default_session_expiry() -> u32 {
    86_400
}

impl Options {
    /// Checks values that serde cannot.
    pub fn validate(&self) -> Result<ProtocolVersion, ClientError> {
        let invalid = |message: &str| Err(ClientError::InvalidOptions(message.to_owned()));
        if !(self.url.starts_with("ws://") || self.url.starts_with("wss://")) {
            return invalid("url must start with ws:// or wss://");
        }
        if crate::device_id::validate(&self.namespace).is_err() {
            return invalid("namespace must be a non-empty name of letters, digits, '-', '_' or '.'");
        }
        if let Some(will) = &self.will
            && QoS::from_bits(will.qos).is_none()
        {
            return invalid("will.qos must be 0, 1 or 2");
        }
        match self.version.as_str() {
            "5.0" | "5" => Ok(ProtocolVersion::V5),
            "3.1.1" | "4" => Ok(ProtocolVersion::V311),
            _ => invalid("version must be \"5.0\" or \"3.1.1\""),
        }
    }

    /// The protocol client's settings for `client_id`.
    pub fn client_config(&self, version: ProtocolVersion, client_id: String) -> ClientConfig {
        let will = self.will.as_ref().map(|will| Will {
            topic: will.topic.clone(),
            payload: will.payload.clone().into_bytes().into(),
            qos: QoS::from_bits(will.qos).unwrap_or_default(),
            retain: will.retain,
            properties: Properties {
                will_delay_interval: will.delay_seconds,
                ..Properties::default()
            },
        });
        ClientConfig {
            version,
            keep_alive: self.keep_alive,
            clean_start: self.clean_start,
            session_expiry_interval: self.session_expiry,
            username: self.username.clone(),
            password: self.password.clone().map(|p| p.into_bytes().into()),
            will,
            ..ClientConfig::new(client_id)
        }
    }
}
