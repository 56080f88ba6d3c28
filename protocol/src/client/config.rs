//! What a client asks for when it connects.

use std::time::Duration;

use bytes::Bytes;

use crate::packet::Will;
use crate::properties::Properties;
use crate::version::ProtocolVersion;

/// Connection settings of a [`Client`](super::Client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Protocol version to speak.
    pub version: ProtocolVersion,
    /// Client identifier; a persistent session needs a non-empty one.
    pub client_id: String,
    /// Keep-alive in seconds (0: off). The server may override it (v5 server keep alive).
    pub keep_alive: u16,
    /// Clean session (3.1.1) or clean start (5.0): discard any stored session.
    pub clean_start: bool,
    /// v5 session expiry interval in seconds (0: ends at disconnect, `u32::MAX`: never).
    pub session_expiry_interval: u32,
    /// How many QoS 1/2 messages the server may have in flight to us (v5 receive maximum).
    pub receive_maximum: u16,
    /// Largest packet we accept, announced to the server in v5.
    pub maximum_packet_size: u32,
    /// User name, if any.
    pub username: Option<String>,
    /// Password, if any.
    pub password: Option<Bytes>,
    /// Will message, if any.
    pub will: Option<Will>,
    /// v5 user properties sent in CONNECT.
    pub user_properties: Vec<(String, String)>,
    /// How long to wait for CONNACK after sending CONNECT.
    pub connect_timeout: Duration,
    /// Ping after a silence of keep-alive / `ping_divisor` (at least 1). 1 pings at the
    /// keep-alive, the latest the spec allows; 2 pings at half of it, for hosts whose
    /// timers run late, such as background browser tabs.
    pub ping_divisor: u32,
    /// Whether the driver acknowledges received QoS 1/2 messages itself, with
    /// [`Client::acknowledge`](super::Client::acknowledge), once the application has
    /// handled them. Off: PUBACK and PUBREC leave as soon as the PUBLISH is decoded.
    pub manual_acks: bool,
}

impl ClientConfig {
    /// Settings for a persistent session of `client_id`: v5, keep-alive 60 s, clean
    /// start off, session expiry one day, receive maximum 100, 1 MiB packets, ping at
    /// the keep-alive, automatic acknowledgements.
    pub fn new(client_id: impl Into<String>) -> Self {
        Self {
            version: ProtocolVersion::V5,
            client_id: client_id.into(),
            keep_alive: 60,
            clean_start: false,
            session_expiry_interval: 86_400,
            receive_maximum: 100,
            maximum_packet_size: 1024 * 1024,
            username: None,
            password: None,
            will: None,
            user_properties: Vec::new(),
            connect_timeout: Duration::from_secs(30),
            ping_divisor: 1,
            manual_acks: false,
        }
    }

    /// CONNECT properties for these settings (v5).
    pub(crate) fn connect_properties(&self) -> Properties {
        Properties {
            session_expiry_interval: (self.session_expiry_interval != 0)
                .then_some(self.session_expiry_interval),
            receive_maximum: (self.receive_maximum != u16::MAX).then_some(self.receive_maximum.max(1)),
            maximum_packet_size: Some(self.maximum_packet_size.max(1)),
            user_properties: self.user_properties.clone(),
            ..Properties::default()
        }
    }
}
