//! The server side of one connection.
//!
//! A [`Connection`] enforces what the protocol requires of a client: CONNECT first and
//! only once, keep-alive within 1.5 times the interval, packets within the maximum
//! size, the receive maximum, topic alias bounds. Every violation ends the connection
//! with the right reason code (v5 DISCONNECT, or a plain close in 3.1.1) and a
//! [`ServerEvent::Closed`] naming the fault.
//!
//! Routing, authentication and storage are not its business: it hands CONNECT,
//! PUBLISH, SUBSCRIBE and UNSUBSCRIBE to the broker as [`ServerEvent`]s and takes the
//! broker's answers ([`Connection::accept`], [`Connection::acknowledge`],
//! [`Connection::send_suback`], ...). The broker lends it the session's
//! [`SessionFlows`] at [`Connection::accept`] and takes them back with
//! [`Connection::take_session`] when the connection ends.
//!
//! Driving it mirrors the client: feed bytes to [`Connection::handle_bytes`], call
//! [`Connection::handle_timeout`] at [`Connection::poll_timeout`], and drain
//! [`Connection::poll_event`] and [`Connection::poll_transmit`] after every call.

mod config;
mod event;

pub use config::ServerConfig;
pub use event::{CloseCause, ServerEvent};

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use crate::codec::stream::PacketStream;
use crate::error::{ConnectionError, DecodeError, ProtocolViolation};
use crate::flow::{AckOutcome, MessageId, OutgoingAliases, PeerLimits, SessionFlows, transmit_queued};
use crate::packet::{Connack, Connect, Disconnect, Packet, PubResponse, Publish, Suback, Unsuback};
use crate::properties::Properties;
use crate::qos::{PacketId, QoS};
use crate::reason::ReasonCode;
use crate::time::Timestamp;
use crate::version::ProtocolVersion;

/// Where the connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionPhase {
    /// Waiting for CONNECT until the deadline.
    ExpectConnect {
        /// When the connect timeout fires.
        deadline: Timestamp,
    },
    /// CONNECT reported; waiting for the broker to accept or refuse it. Packets the
    /// client sends meanwhile are buffered, not read.
    AwaitingAccept,
    /// Accepted: application packets flow.
    Connected,
    /// Over; nothing more is read or sent.
    Closed,
}

/// The server end of one MQTT connection.
#[derive(Debug)]
pub struct Connection {
    config: ServerConfig,
    phase: ConnectionPhase,
    version: ProtocolVersion,
    stream: PacketStream,
    events: VecDeque<ServerEvent>,
    session: SessionFlows,
    client_limits: PeerLimits,
    keep_alive: Duration,
    last_received: Timestamp,
    session_expiry_was_zero: bool,
    topic_aliases: HashMap<u16, String>,
    /// Aliases of the topics we send the client.
    aliases_to_client: OutgoingAliases,
    /// Incoming QoS 1/2 messages reported to the broker and not yet acknowledged by it.
    awaiting_ack: BTreeMap<PacketId, QoS>,
}

impl Connection {
    /// A connection whose transport just opened at `now`.
    pub fn new(config: ServerConfig, now: Timestamp) -> Self {
        let deadline = now + config.connect_timeout;
        Self {
            config,
            phase: ConnectionPhase::ExpectConnect { deadline },
            version: ProtocolVersion::V311,
            stream: PacketStream::default(),
            events: VecDeque::new(),
            session: SessionFlows::default(),
            client_limits: PeerLimits::UNLIMITED,
            keep_alive: Duration::ZERO,
            last_received: now,
            session_expiry_was_zero: true,
            topic_aliases: HashMap::new(),
            aliases_to_client: OutgoingAliases::default(),
            awaiting_ack: BTreeMap::new(),
        }
    }

    /// Where the connection stands.
    pub fn phase(&self) -> ConnectionPhase {
        self.phase
    }

    /// The protocol version, once CONNECT has arrived (3.1.1 before).
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// The session's QoS state, as lent at [`Connection::accept`] and updated since.
    pub fn session(&self) -> &SessionFlows {
        &self.session
    }

    /// Takes the session's QoS state back, leaving an empty one (the connection ended).
    pub fn take_session(&mut self) -> SessionFlows {
        std::mem::take(&mut self.session)
    }

    /// Feeds bytes received from the transport.
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Timestamp) {
        if self.phase == ConnectionPhase::Closed {
            return;
        }
        if !bytes.is_empty() {
            self.last_received = now;
        }
        if self.stream.has_partial() {
            self.stream.receive(bytes);
            self.read_packets(now);
            return;
        }
        // Whole packets are decoded where they lie; only an incomplete one is kept.
        let mut rest = bytes;
        while !rest.is_empty()
            && matches!(
                self.phase,
                ConnectionPhase::ExpectConnect { .. } | ConnectionPhase::Connected
            )
        {
            match crate::codec::decode(rest, self.version, self.config.maximum_packet_size) {
                Ok(Some((packet, used))) => {
                    rest = &rest[used..];
                    if let Err(violation) = self.handle_packet(packet, now) {
                        self.fail(violation.into());
                    }
                }
                Ok(None) => break,
                Err(error) => self.fail(error.into()),
            }
        }
        if self.phase != ConnectionPhase::Closed {
            self.stream.receive(rest);
        }
    }

    fn read_packets(&mut self, now: Timestamp) {
        while matches!(
            self.phase,
            ConnectionPhase::ExpectConnect { .. } | ConnectionPhase::Connected
        ) {
            match self
                .stream
                .next_packet::<false>(self.version, self.config.maximum_packet_size)
            {
                Ok(Some(packet)) => {
                    if let Err(violation) = self.handle_packet(packet, now) {
                        self.fail(violation.into());
                    }
                }
                Ok(None) => break,
                Err(error) => self.fail(error.into()),
            }
        }
    }

    fn handle_packet(&mut self, packet: Packet, now: Timestamp) -> Result<(), ProtocolViolation> {
        if let ConnectionPhase::ExpectConnect { .. } = self.phase {
            return match packet {
                Packet::Connect(connect) => {
                    self.handle_connect(connect, now);
                    Ok(())
                }
                other => Err(ProtocolViolation::ConnectExpected(other.packet_type())),
            };
        }
        match packet {
            Packet::Connect(_) => return Err(ProtocolViolation::SecondConnect),
            Packet::Publish(publish) => self.handle_publish(publish)?,
            Packet::Puback(ack) => {
                let outcome = self.session.outgoing.on_puback(&ack);
                self.apply_ack(outcome);
            }
            Packet::Pubrec(ack) => {
                let outcome = self.session.outgoing.on_pubrec(&ack);
                self.apply_ack(outcome);
            }
            Packet::Pubcomp(ack) => {
                let outcome = self.session.outgoing.on_pubcomp(&ack);
                self.apply_ack(outcome);
            }
            Packet::Pubrel(release) => {
                let packet_id = release.packet_id;
                let mut complete = PubResponse::success(packet_id);
                if self.session.incoming.on_pubrel(packet_id) {
                    self.events.push_back(ServerEvent::Released { packet_id });
                } else {
                    complete.reason = ReasonCode::PacketIdentifierNotFound;
                }
                self.send(&Packet::Pubcomp(complete));
            }
            Packet::Subscribe(subscribe) => {
                self.events.push_back(ServerEvent::Subscribe(Box::new(subscribe)))
            }
            Packet::Unsubscribe(unsubscribe) => self
                .events
                .push_back(ServerEvent::Unsubscribe(Box::new(unsubscribe))),
            Packet::Pingreq => self.send(&Packet::Pingresp),
            Packet::Disconnect(disconnect) => {
                let expiry = disconnect.properties.session_expiry_interval;
                if self.session_expiry_was_zero && expiry.is_some_and(|seconds| seconds != 0) {
                    return Err(ProtocolViolation::SessionExpiryAfterZero);
                }
                self.phase = ConnectionPhase::Closed;
                self.events
                    .push_back(ServerEvent::Closed(CloseCause::ClientDisconnect(Box::new(
                        disconnect,
                    ))));
            }
            Packet::Auth(_) => return Err(ProtocolViolation::UnexpectedAuth),
            other @ (Packet::Connack(_) | Packet::Suback(_) | Packet::Unsuback(_) | Packet::Pingresp) => {
                return Err(ProtocolViolation::UnexpectedPacket(other.packet_type()));
            }
        }
        Ok(())
    }

    fn handle_connect(&mut self, connect: Box<Connect>, now: Timestamp) {
        self.version = connect.version;
        let props = &connect.properties;
        // We send at most as many unacknowledged QoS 1/2 messages as we accept (as
        // Mosquitto's max_inflight_messages does), fewer if a v5 client asks for fewer.
        self.client_limits.receive_maximum = self.config.receive_maximum;
        if connect.version.is_v5() {
            self.client_limits.receive_maximum = props
                .receive_maximum
                .unwrap_or(u16::MAX)
                .min(self.config.receive_maximum);
            if let Some(size) = props.maximum_packet_size {
                self.client_limits.maximum_packet_size = size;
            }
            self.aliases_to_client = OutgoingAliases::new(
                props.topic_alias_maximum.unwrap_or(0),
                self.config.aliases_to_client,
            );
            self.session_expiry_was_zero = props.session_expiry_interval.unwrap_or(0) == 0;
        }
        self.keep_alive = Duration::from_secs(u64::from(self.effective_keep_alive(connect.keep_alive)));
        self.last_received = now;
        self.phase = ConnectionPhase::AwaitingAccept;
        self.events.push_back(ServerEvent::Connect(connect));
    }

    /// The keep-alive in force: the client's, capped for v5 clients by `max_keep_alive`.
    fn effective_keep_alive(&self, requested: u16) -> u16 {
        match self.config.max_keep_alive {
            Some(max) if self.version.is_v5() && (requested == 0 || requested > max) => max,
            _ => requested,
        }
    }

    fn handle_publish(&mut self, mut publish: Publish) -> Result<(), ProtocolViolation> {
        if publish.qos > self.config.maximum_qos {
            return Err(ProtocolViolation::QosNotSupported(publish.qos));
        }
        if !publish.properties.subscription_identifiers.is_empty() {
            return Err(ProtocolViolation::SubscriptionIdentifierFromClient);
        }
        if let Some(alias) = publish.properties.edit_if_any(|p| p.topic_alias.take()) {
            self.resolve_topic_alias(alias, &mut publish.topic)?;
        }
        let Some(packet_id) = publish.packet_id else {
            self.events.push_back(ServerEvent::Publish(publish));
            return Ok(());
        };
        if self.awaiting_ack.contains_key(&packet_id) {
            // A resend of a message the broker is still storing: its acknowledgement will come.
            return Ok(());
        }
        if publish.qos == QoS::ExactlyOnce && !self.session.incoming.on_publish(packet_id) {
            // Already received and acknowledged: acknowledge again, deliver nothing.
            self.send(&Packet::Pubrec(PubResponse::success(packet_id)));
            return Ok(());
        }
        self.awaiting_ack.insert(packet_id, publish.qos);
        let in_flight = self.awaiting_ack.len() + self.session.incoming.len();
        let pending_qos2 = self
            .awaiting_ack
            .values()
            .filter(|qos| **qos == QoS::ExactlyOnce)
            .count();
        if in_flight - pending_qos2 > usize::from(self.config.receive_maximum) {
            return Err(ProtocolViolation::ReceiveMaximumExceeded(
                self.config.receive_maximum,
            ));
        }
        self.events.push_back(ServerEvent::Publish(publish));
        Ok(())
    }

    /// Applies a client topic alias: sets it when a topic is given, looks it up when not.
    fn resolve_topic_alias(&mut self, alias: u16, topic: &mut String) -> Result<(), ProtocolViolation> {
        if alias == 0 || alias > self.config.topic_alias_maximum {
            return Err(ProtocolViolation::TopicAliasOutOfRange(alias));
        }
        if topic.is_empty() {
            let known = self
                .topic_aliases
                .get(&alias)
                .ok_or(ProtocolViolation::UnknownTopicAlias(alias))?;
            topic.clone_from(known);
        } else {
            self.topic_aliases.insert(alias, topic.clone());
        }
        Ok(())
    }

    fn apply_ack(&mut self, outcome: AckOutcome) {
        match outcome {
            AckOutcome::Completed { id, reason } => {
                self.events.push_back(ServerEvent::Delivered { id, reason });
                self.send_queued();
            }
            AckOutcome::SendPubrel(packet_id) => self.send(&Packet::Pubrel(PubResponse::success(packet_id))),
            AckOutcome::Unknown => {}
        }
    }

    /// Accepts the CONNECT: sends CONNACK and starts reading application packets.
    ///
    /// `session` is the stored QoS state of the session (empty for a new one); when
    /// `session_present`, its in-flight messages are sent again with DUP. The limits
    /// of [`ServerConfig`] are added to `properties` for v5 clients.
    pub fn accept(
        &mut self,
        session_present: bool,
        session: SessionFlows,
        mut properties: Properties,
        now: Timestamp,
    ) {
        if self.phase != ConnectionPhase::AwaitingAccept {
            return;
        }
        if self.version.is_v5() {
            let config = &self.config;
            properties.receive_maximum =
                (config.receive_maximum != u16::MAX).then_some(config.receive_maximum);
            properties.maximum_packet_size = Some(config.maximum_packet_size);
            properties.topic_alias_maximum =
                (config.topic_alias_maximum != 0).then_some(config.topic_alias_maximum);
            properties.maximum_qos =
                (config.maximum_qos != QoS::ExactlyOnce).then_some(config.maximum_qos.bits());
            if let Some(max) = config.max_keep_alive {
                properties.server_keep_alive = (self.keep_alive.as_secs() == u64::from(max)).then_some(max);
            }
        } else {
            properties = Properties::default();
        }
        self.send(&Packet::Connack(Connack {
            session_present,
            reason: ReasonCode::Success,
            properties,
        }));
        self.session = session;
        self.phase = ConnectionPhase::Connected;
        if session_present {
            for packet in self.session.outgoing.resend() {
                self.send(&packet);
            }
        }
        self.send_queued();
        self.read_packets(now);
    }

    /// Refuses the CONNECT with `reason` (mapped to the nearest 3.1.1 return code) and closes.
    pub fn refuse(&mut self, reason: ReasonCode) {
        if self.phase != ConnectionPhase::AwaitingAccept {
            return;
        }
        let connack = Connack {
            session_present: false,
            reason,
            properties: Properties::default(),
        };
        self.send(&Packet::Connack(connack));
        self.phase = ConnectionPhase::Closed;
        self.events
            .push_back(ServerEvent::Closed(CloseCause::Refused(reason)));
    }

    /// Acknowledges an incoming QoS 1/2 PUBLISH the broker has stored (PUBACK or
    /// PUBREC with `reason`). Unknown packet ids are ignored.
    pub fn acknowledge(&mut self, packet_id: PacketId, reason: ReasonCode) {
        let Some(qos) = self.awaiting_ack.remove(&packet_id) else {
            return;
        };
        let response = PubResponse {
            packet_id,
            reason,
            properties: Properties::default(),
        };
        if qos == QoS::ExactlyOnce {
            if reason.is_error() {
                self.session.incoming.on_pubrel(packet_id);
            }
            self.send(&Packet::Pubrec(response));
        } else {
            self.send(&Packet::Puback(response));
        }
    }

    /// Queues a message for the client and sends it as soon as its receive maximum
    /// allows. [`ServerEvent::Delivered`] reports its completion.
    pub fn deliver(&mut self, publish: Publish) -> MessageId {
        let id = self.session.outgoing.enqueue(publish);
        self.send_queued();
        id
    }

    /// Like [`Connection::deliver`], under a handle the broker chose (its storage
    /// sequence number); handles must increase.
    pub fn deliver_as(&mut self, id: MessageId, publish: Publish) {
        self.session.outgoing.enqueue_as(id, publish);
        self.send_queued();
    }

    /// Answers SUBSCRIBE.
    pub fn send_suback(&mut self, suback: Suback) {
        self.send(&Packet::Suback(suback));
    }

    /// Answers UNSUBSCRIBE.
    pub fn send_unsuback(&mut self, unsuback: Unsuback) {
        self.send(&Packet::Unsuback(unsuback));
    }

    /// Ends the connection from the server side: v5 clients get DISCONNECT with `reason`
    /// (session taken over, server shutting down, ...); 3.1.1 has no such packet, so the
    /// transport must say why (the broker's WebSocket close code). No event is raised.
    pub fn close(&mut self, reason: ReasonCode) {
        self.close_explained(reason, None);
    }

    /// Like [`Connection::close`], with a reason string in the v5 DISCONNECT for people
    /// reading logs (`why`).
    pub fn close_explained(&mut self, reason: ReasonCode, why: Option<&str>) {
        if self.phase == ConnectionPhase::Connected && self.version.is_v5() {
            let mut disconnect = Disconnect::with_reason(reason);
            disconnect.properties.reason_string = why.map(str::to_owned);
            self.send(&Packet::Disconnect(disconnect));
        }
        self.phase = ConnectionPhase::Closed;
    }

    fn fail(&mut self, error: ConnectionError) {
        let reason = error.reason_code();
        match self.phase {
            ConnectionPhase::Connected if self.version.is_v5() => {
                self.send(&Packet::Disconnect(Disconnect::with_reason(reason)));
            }
            ConnectionPhase::ExpectConnect { .. } => {
                if let ConnectionError::Decode(DecodeError::UnsupportedProtocolVersion(_)) = error {
                    // Both versions answer an unknown level with CONNACK; the 3.1.1 form
                    // (return code 1) is the one every client can read.
                    let connack = Connack {
                        session_present: false,
                        reason,
                        properties: Properties::default(),
                    };
                    self.stream
                        .send_control(&Packet::Connack(connack), ProtocolVersion::V311);
                }
            }
            _ => {}
        }
        self.phase = ConnectionPhase::Closed;
        self.events
            .push_back(ServerEvent::Closed(CloseCause::Error(error)));
    }

    fn send_queued(&mut self) {
        if self.phase != ConnectionPhase::Connected {
            return;
        }
        let finished = transmit_queued(
            &mut self.session.outgoing,
            &mut self.stream,
            self.version,
            self.client_limits,
            &mut self.aliases_to_client,
            |_| false,
        );
        for (id, reason) in finished {
            self.events.push_back(ServerEvent::Delivered { id, reason });
        }
    }

    fn send(&mut self, packet: &Packet) {
        self.stream.send_control(packet, self.version);
    }

    /// Gives back memory kept from the last burst (bytes received and decoded, events
    /// taken), so that an idle connection holds only its state: call before waiting.
    pub fn release_idle_memory(&mut self) {
        self.stream.release_idle();
        if self.events.is_empty() {
            self.events = VecDeque::new();
        }
    }

    /// Bytes to write to the transport, or `None`. Call after every other call.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.stream.take_transmit()
    }

    /// The next event, or `None`. Call after every other call.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// When [`Connection::handle_timeout`] should next be called, if at all.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match self.phase {
            ConnectionPhase::ExpectConnect { deadline } => Some(deadline),
            ConnectionPhase::Connected if !self.keep_alive.is_zero() => {
                Some(self.last_received + self.keep_alive.mul_f32(1.5))
            }
            _ => None,
        }
    }

    /// Runs timers: the connect timeout and the 1.5 x keep-alive allowance.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let Some(deadline) = self.poll_timeout() else {
            return;
        };
        if now < deadline {
            return;
        }
        let error = match self.phase {
            ConnectionPhase::ExpectConnect { .. } => ConnectionError::ConnectTimeout,
            _ => ConnectionError::KeepAliveTimeout,
        };
        self.fail(error);
    }
}
