//! A client and a server connection wired together in memory, with a fake clock and a
//! tiny broker that stores the server-side session between connections.

use std::time::Duration;

use tabmq_protocol::client::{Client, ClientConfig, ClientEvent};
use tabmq_protocol::codec::decode;
use tabmq_protocol::flow::SessionFlows;
use tabmq_protocol::packet::{Publish, Suback};
use tabmq_protocol::server::{Connection, ServerConfig, ServerEvent};
use tabmq_protocol::{Packet, Properties, ProtocolVersion, ReasonCode, Timestamp};

/// The broker side of the test: what a real broker would store.
#[derive(Debug, Default)]
pub struct TestBroker {
    /// The server-side session, kept while no connection holds it.
    pub stored_session: Option<SessionFlows>,
    /// Every PUBLISH the server connection reported, in order.
    pub received: Vec<Publish>,
    /// Acknowledge incoming QoS 1/2 messages at once (as if stored instantly).
    pub auto_ack: bool,
    /// Refuse every CONNECT with this reason instead of accepting it.
    pub refuse_with: Option<ReasonCode>,
}

/// A client, a server connection and the link between them.
pub struct Pair {
    pub now: Timestamp,
    pub client: Client,
    pub server: Connection,
    pub server_config: ServerConfig,
    pub broker: TestBroker,
    pub client_events: Vec<ClientEvent>,
    pub server_events: Vec<ServerEvent>,
}

impl Pair {
    /// A pair whose client is not connected yet.
    pub fn new(config: ClientConfig, server_config: ServerConfig) -> Self {
        Self::with_session(config, server_config, SessionFlows::default())
    }

    /// A pair whose client starts from a restored session (a page reload).
    pub fn with_session(config: ClientConfig, server_config: ServerConfig, session: SessionFlows) -> Self {
        let now = Timestamp::from_millis(1_000);
        Self {
            now,
            client: Client::new(config, session),
            server: Connection::new(server_config.clone(), now),
            server_config,
            broker: TestBroker {
                auto_ack: true,
                ..TestBroker::default()
            },
            client_events: Vec::new(),
            server_events: Vec::new(),
        }
    }

    /// A client config for `version` with a persistent session.
    pub fn config(version: ProtocolVersion) -> ClientConfig {
        ClientConfig {
            version,
            ..ClientConfig::new("device-1")
        }
    }

    /// Opens a new transport: a fresh server connection, and CONNECT from the client.
    pub fn connect(&mut self) {
        self.server = Connection::new(self.server_config.clone(), self.now);
        self.client.connect(self.now).expect("client was disconnected");
        self.settle();
    }

    /// Moves the client's pending bytes to the server. Returns the packets moved.
    pub fn client_to_server(&mut self) -> Vec<Packet> {
        let bytes = self.client.poll_transmit().unwrap_or_default();
        self.server.handle_bytes(&bytes, self.now);
        self.collect();
        packets(&bytes, self.client.config().version)
    }

    /// Moves the server's pending bytes to the client. Returns the packets moved.
    pub fn server_to_client(&mut self) -> Vec<Packet> {
        let bytes = self.server.poll_transmit().unwrap_or_default();
        self.client.handle_bytes(&bytes, self.now);
        self.collect();
        packets(&bytes, self.client.config().version)
    }

    /// Bytes the server would send, thrown away (lost in the network).
    pub fn lose_server_output(&mut self) -> Vec<Packet> {
        let bytes = self.server.poll_transmit().unwrap_or_default();
        packets(&bytes, self.client.config().version)
    }

    /// Bytes the client would send, thrown away.
    pub fn lose_client_output(&mut self) -> Vec<Packet> {
        let bytes = self.client.poll_transmit().unwrap_or_default();
        packets(&bytes, self.client.config().version)
    }

    /// Shuttles bytes both ways until neither side has anything to say.
    pub fn settle(&mut self) {
        for _ in 0..1_000 {
            self.collect();
            let moved_up = !self.client_to_server().is_empty();
            let moved_down = !self.server_to_client().is_empty();
            if !moved_up && !moved_down {
                return;
            }
        }
        panic!("the pair never settled");
    }

    /// The transport breaks: both ends learn it; the broker keeps the session.
    pub fn break_link(&mut self) {
        self.client.poll_transmit();
        self.server.poll_transmit();
        self.client.connection_lost();
        self.broker.stored_session = Some(self.server.take_session());
        self.collect();
    }

    /// Advances the fake clock and runs both sides' timers.
    pub fn advance(&mut self, duration: Duration) {
        self.now = self.now + duration;
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
        self.collect();
    }

    /// Gathers events from both sides and plays the broker's part.
    fn collect(&mut self) {
        while let Some(event) = self.client.poll_event() {
            self.client_events.push(event);
        }
        while let Some(event) = self.server.poll_event() {
            match &event {
                ServerEvent::Connect(_) if self.broker.refuse_with.is_some() => {
                    self.server
                        .refuse(self.broker.refuse_with.unwrap_or(ReasonCode::UnspecifiedError));
                }
                ServerEvent::Connect(connect) => {
                    let stored = if connect.clean_start {
                        None
                    } else {
                        self.broker.stored_session.take()
                    };
                    let present = stored.is_some();
                    self.server.accept(
                        present,
                        stored.unwrap_or_default(),
                        Properties::default(),
                        self.now,
                    );
                }
                ServerEvent::Publish(publish) => {
                    self.broker.received.push(publish.clone());
                    if let (true, Some(id)) = (self.broker.auto_ack, publish.packet_id) {
                        self.server.acknowledge(id, ReasonCode::Success);
                    }
                }
                ServerEvent::Subscribe(subscribe) => {
                    let reasons = subscribe
                        .subscriptions
                        .iter()
                        .map(|s| ReasonCode::granted(s.options.qos))
                        .collect();
                    self.server.send_suback(Suback {
                        packet_id: subscribe.packet_id,
                        properties: Properties::default(),
                        reasons,
                    });
                }
                _ => {}
            }
            self.server_events.push(event);
        }
    }

    /// Payloads of the application messages the client has received so far.
    pub fn client_messages(&self) -> Vec<Vec<u8>> {
        self.client_events
            .iter()
            .filter_map(|event| match event {
                ClientEvent::Message(publish) => Some(publish.payload.to_vec()),
                _ => None,
            })
            .collect()
    }

    /// Payloads the broker has received so far.
    pub fn broker_messages(&self) -> Vec<Vec<u8>> {
        self.broker
            .received
            .iter()
            .map(|publish| publish.payload.to_vec())
            .collect()
    }
}

/// Decodes every packet in `bytes`.
pub fn packets(bytes: &[u8], version: ProtocolVersion) -> Vec<Packet> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Ok(Some((packet, used))) = decode(rest, version, u32::MAX) {
        out.push(packet);
        rest = &rest[used..];
    }
    assert!(rest.is_empty(), "undecodable bytes left: {rest:?}");
    out
}
