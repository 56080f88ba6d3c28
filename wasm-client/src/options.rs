//! The client options, as `npm/src/options.js` checked, defaulted and wrote them.

use tabmq_protocol::client::ClientConfig;
use tabmq_protocol::packet::Will;
use tabmq_protocol::{Properties, ProtocolVersion, QoS};

use crate::backoff::BackoffOptions;

/// A will message, as given in options.
#[derive(Debug, Clone)]
pub struct WillOptions {
    /// Topic.
    pub topic: String,
    /// Payload, as text.
    pub payload: String,
    /// QoS 0, 1 or 2.
    pub qos: u8,
    /// Retained?
    pub retain: bool,
    /// v5 will delay, in seconds.
    pub delay_seconds: Option<u32>,
}

/// Client options (JavaScript names in camelCase).
#[derive(Debug, Clone)]
pub struct Options {
    /// App namespace: names the IndexedDB database and prefixes the client id.
    pub namespace: String,
    /// The signed-in user, when the app has one: the client id becomes
    /// `{namespace}-{user}-{deviceId}` (a broker's `client_id_pattern` can then tie ids to
    /// users), and the CONNECT user name defaults to it.
    pub user: Option<String>,
    /// Keep-alive in seconds (default 60).
    pub keep_alive: u16,
    /// Discard the broker's stored session on connect (default false).
    pub clean_start: bool,
    /// v5 session expiry interval in seconds (default one day).
    pub session_expiry: u32,
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Will message.
    pub will: Option<WillOptions>,
    /// How many QoS 1/2 messages the broker may send before the app has handled the
    /// first (MQTT 5 receive maximum; default 100).
    pub receive_maximum: u16,
    /// Reconnect backoff.
    pub backoff: BackoffOptions,
    /// How long to wait before the one retry after a flap-guard refusal (CONNACK 0x9F):
    /// the tabmq broker's default `flap_cooldown_secs`, 30 s.
    pub flap_cooldown_ms: u32,
}

impl Options {
    /// The CONNECT user name: `username`, else the signed-in `user`.
    pub fn login_name(&self) -> Option<String> {
        self.username.clone().or_else(|| self.user.clone())
    }

    /// The CONNECT password.
    pub fn login_password(&self) -> Option<bytes::Bytes> {
        self.password.clone().map(|p| p.into_bytes().into())
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
            }
            .into(),
        });
        ClientConfig {
            version,
            keep_alive: self.keep_alive,
            clean_start: self.clean_start,
            session_expiry_interval: self.session_expiry,
            username: self.login_name(),
            password: self.login_password(),
            will,
            // Background tabs run timers late (Chromium: once a minute after five minutes
            // hidden); pinging at half the keep-alive keeps within the broker's 1.5×.
            ping_divisor: 2,
            receive_maximum: self.receive_maximum,
            ..ClientConfig::new(client_id)
        }
    }
}
