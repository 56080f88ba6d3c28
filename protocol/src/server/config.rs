//! The limits a server connection enforces and announces.

use std::time::Duration;

use crate::qos::QoS;

/// Limits of a [`Connection`](super::Connection), announced to v5 clients in CONNACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Largest packet accepted from the client; larger ones end the connection (0x95).
    pub maximum_packet_size: u32,
    /// How many QoS 1/2 publishes the client may have in flight to us, and we to it.
    pub receive_maximum: u16,
    /// Highest topic alias the client may use (0: none).
    pub topic_alias_maximum: u16,
    /// Most topic aliases the server assigns to the topics it sends a v5 client (0: none),
    /// never more than the client's Topic Alias Maximum.
    pub aliases_to_client: u16,
    /// Highest QoS the server accepts in PUBLISH.
    pub maximum_qos: QoS,
    /// Upper bound on the keep-alive; a v5 client asking for more (or for 0) is told
    /// this value in CONNACK's server keep alive. `None`: accept what the client asks.
    pub max_keep_alive: Option<u16>,
    /// How long a new connection may take to send CONNECT.
    pub connect_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            maximum_packet_size: 1024 * 1024,
            receive_maximum: 100,
            topic_alias_maximum: 10,
            aliases_to_client: 16,
            maximum_qos: QoS::ExactlyOnce,
            max_keep_alive: None,
            connect_timeout: Duration::from_secs(10),
        }
    }
}
