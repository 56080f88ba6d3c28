//! A raw MQTT connection: packets as the test builds them, answered only when the test
//! says so (to leave a handshake half done on purpose).

use std::net::SocketAddr;

use tabmq_protocol::codec::{PROTOCOL_MAX_PACKET_SIZE, decode_from_server, encode_to_vec};
use tabmq_protocol::packet::{Connect, Subscribe, Subscription, Will};
use tabmq_protocol::{Packet, PacketId, Properties, ProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::client::WAIT;

/// One TCP connection speaking MQTT packet by packet.
pub struct RawClient {
    stream: TcpStream,
    version: ProtocolVersion,
    received: Vec<u8>,
}

/// A CONNECT for `client_id` that keeps its session (v5: never expiring).
pub fn persistent_connect(version: ProtocolVersion, client_id: &str, will: Option<Will>) -> Connect {
    let mut properties = Properties::default();
    if version.is_v5() {
        properties.session_expiry_interval = Some(u32::MAX);
    }
    Connect {
        version,
        clean_start: false,
        keep_alive: 0,
        properties,
        client_id: client_id.to_owned(),
        will,
        username: None,
        password: None,
    }
}

/// A packet id for tests: never zero.
pub fn packet_id(value: u16) -> PacketId {
    PacketId::new(value).expect("a non-zero packet id")
}

impl RawClient {
    /// Connects, sends `connect` and returns the connection with the CONNACK's
    /// session-present flag; panics on a refusal.
    pub async fn connect(address: SocketAddr, connect: Connect) -> (Self, bool) {
        let stream = TcpStream::connect(address).await.expect("tcp connect");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        let mut client = Self {
            stream,
            version: connect.version,
            received: Vec::new(),
        };
        client.send(Packet::Connect(Box::new(connect))).await;
        match client.next().await {
            Packet::Connack(connack) if !connack.reason.is_error() => (client, connack.session_present),
            other => panic!("expected a successful CONNACK, got {other:?}"),
        }
    }

    /// Sends one packet.
    pub async fn send(&mut self, packet: Packet) {
        let bytes = encode_to_vec(&packet, self.version).expect("encode");
        self.stream.write_all(&bytes).await.expect("send");
    }

    /// Subscribes to `subscriptions` (with `properties`) and waits for the SUBACK.
    pub async fn subscribe(&mut self, subscriptions: Vec<Subscription>, properties: Properties) {
        self.send(Packet::Subscribe(Subscribe {
            packet_id: packet_id(1),
            properties,
            subscriptions,
        }))
        .await;
        match self.next().await {
            Packet::Suback(suback) if suback.reasons.iter().all(|r| !r.is_error()) => {}
            other => panic!("expected a successful SUBACK, got {other:?}"),
        }
    }

    /// The next packet from the broker; panics after [`WAIT`].
    pub async fn next(&mut self) -> Packet {
        tokio::time::timeout(WAIT, self.read_packet())
            .await
            .expect("a packet from the broker in time")
    }

    async fn read_packet(&mut self) -> Packet {
        loop {
            let decoded = decode_from_server(&self.received, self.version, PROTOCOL_MAX_PACKET_SIZE)
                .expect("a well-formed packet");
            if let Some((packet, used)) = decoded {
                self.received.drain(..used);
                return packet;
            }
            let mut chunk = [0u8; 4096];
            let read = self.stream.read(&mut chunk).await.expect("read");
            assert!(read > 0, "the broker closed the connection");
            self.received.extend_from_slice(&chunk[..read]);
        }
    }
}
