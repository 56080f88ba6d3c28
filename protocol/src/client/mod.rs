//! The client session state machine.
//!
//! A [`Client`] is driven by its owner (the browser client, a test, a benchmark):
//!
//! 1. [`Client::connect`] once the transport is open;
//! 2. [`Client::handle_bytes`] with everything the transport receives;
//! 3. [`Client::handle_timeout`] when [`Client::poll_timeout`]'s deadline passes;
//! 4. after each of these and after each API call, drain [`Client::poll_event`] and
//!    [`Client::poll_transmit`]. A driver that persists state saves
//!    [`Client::session`] *before* writing the transmit bytes, so that nothing it
//!    acknowledges to the server is lost if the page dies;
//! 5. [`Client::connection_lost`] when the transport closes.
//!
//! The session ([`SessionFlows`]) outlives connections: messages published while
//! disconnected wait in its queue, and messages in flight are sent again, with DUP,
//! when the server reports the session present.

mod config;
mod event;

pub use config::ClientConfig;
pub use event::{ClientEvent, DisconnectCause};

use std::collections::VecDeque;
use std::time::Duration;

use thiserror::Error;

use crate::codec::stream::PacketStream;
use crate::error::{ConnectionError, ProtocolViolation};
use crate::flow::{AckOutcome, MessageId, PeerLimits, SessionFlows, transmit_queued};
use crate::packet::{Connack, Connect, Disconnect, Packet, PacketType, PubResponse, Publish};
use crate::packet::{Subscribe, Subscription, Unsubscribe};
use crate::properties::Properties;
use crate::qos::{PacketId, QoS};
use crate::reason::ReasonCode;
use crate::time::Timestamp;
use crate::topic::{TopicError, validate_topic_filter, validate_topic_name};
use crate::version::ProtocolVersion;

/// A request refused by the client before anything was sent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    /// The topic name or filter is invalid.
    #[error("invalid topic: {0}")]
    InvalidTopic(#[from] TopicError),
    /// SUBSCRIBE and UNSUBSCRIBE need a live connection.
    #[error("not connected")]
    NotConnected,
    /// SUBSCRIBE or UNSUBSCRIBE without any filter.
    #[error("no topic filter given")]
    NoFilters,
    /// All 65,535 packet ids are in use.
    #[error("no free packet identifier")]
    PacketIdsExhausted,
    /// `connect` was called while already connecting or connected.
    #[error("already connecting or connected")]
    AlreadyConnected,
    /// Publish properties a client may not send (topic alias, subscription identifiers).
    #[error("property not allowed in a client PUBLISH: {0}")]
    PropertyNotAllowed(&'static str),
}

/// Where the connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// No transport, or the last one ended. Publishing queues; `connect` starts anew.
    Disconnected,
    /// CONNECT sent; waiting for CONNACK until the deadline.
    ExpectConnack {
        /// When to give up.
        deadline: Timestamp,
    },
    /// CONNACK accepted.
    Connected,
}

/// What the server told us in CONNACK about its limits.
#[derive(Debug, Clone, Copy)]
struct ServerLimits {
    peer: PeerLimits,
    keep_alive: Duration,
}

/// An MQTT client session: one connection at a time, a session across them.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    state: ConnectionState,
    session: SessionFlows,
    /// SUBSCRIBE and UNSUBSCRIBE requests awaiting their acknowledgement, with their
    /// packet ids (a handful at a time: a list keeps the browser client's wasm small).
    requests: Vec<(PacketId, PacketType)>,
    stream: PacketStream,
    events: VecDeque<ClientEvent>,
    limits: ServerLimits,
    last_sent: Timestamp,
    ping_sent: Option<Timestamp>,
}

impl Client {
    /// A disconnected client with a session restored from `session` (or a default one).
    pub fn new(config: ClientConfig, session: SessionFlows) -> Self {
        let limits = Self::default_limits(&config);
        Self {
            config,
            state: ConnectionState::Disconnected,
            session,
            requests: Vec::new(),
            stream: PacketStream::default(),
            events: VecDeque::new(),
            limits,
            last_sent: Timestamp::default(),
            ping_sent: None,
        }
    }

    fn default_limits(config: &ClientConfig) -> ServerLimits {
        ServerLimits {
            peer: PeerLimits::UNLIMITED,
            keep_alive: Duration::from_secs(u64::from(config.keep_alive)),
        }
    }

    /// The settings this client connects with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The connection state.
    pub fn state(&self) -> ConnectionState {
        self.state
    }

    /// The session to persist: queued and in-flight messages, incoming QoS 2 ids.
    pub fn session(&self) -> &SessionFlows {
        &self.session
    }

    fn version(&self) -> ProtocolVersion {
        self.config.version
    }

    /// Sets the user name and password the next CONNECT carries (a fresh token before a
    /// reconnect, say).
    pub fn set_credentials(&mut self, username: Option<String>, password: Option<bytes::Bytes>) {
        self.config.username = username;
        self.config.password = password;
    }

    /// Starts a connection on a freshly opened transport by sending CONNECT.
    pub fn connect(&mut self, now: Timestamp) -> Result<(), RequestError> {
        if self.state != ConnectionState::Disconnected {
            return Err(RequestError::AlreadyConnected);
        }
        self.stream.reset();
        self.limits = Self::default_limits(&self.config);
        let connect = Connect {
            version: self.version(),
            clean_start: self.config.clean_start,
            keep_alive: self.config.keep_alive,
            properties: match self.version() {
                ProtocolVersion::V5 => self.config.connect_properties(),
                ProtocolVersion::V311 => Properties::default(),
            },
            client_id: self.config.client_id.clone(),
            will: self.config.will.clone(),
            username: self.config.username.clone(),
            password: self.config.password.clone(),
        };
        self.send(&Packet::Connect(Box::new(connect)), now);
        self.state = ConnectionState::ExpectConnack {
            deadline: now + self.config.connect_timeout,
        };
        Ok(())
    }

    /// Queues `publish` for sending and returns its handle; sends it at once if the
    /// connection and the server's receive maximum allow. Completion is reported by
    /// [`ClientEvent::PublishDone`].
    pub fn publish(&mut self, publish: Publish, now: Timestamp) -> Result<MessageId, RequestError> {
        validate_topic_name(&publish.topic)?;
        if publish.properties.topic_alias.is_some() {
            return Err(RequestError::PropertyNotAllowed("topic alias"));
        }
        if !publish.properties.subscription_identifiers.is_empty() {
            return Err(RequestError::PropertyNotAllowed("subscription identifier"));
        }
        let id = self.session.outgoing.enqueue(publish);
        self.send_queued(now);
        Ok(id)
    }

    /// Sends SUBSCRIBE; [`ClientEvent::Subscribed`] reports the SUBACK.
    pub fn subscribe(
        &mut self,
        subscriptions: Vec<Subscription>,
        properties: Properties,
        now: Timestamp,
    ) -> Result<PacketId, RequestError> {
        if subscriptions.is_empty() {
            return Err(RequestError::NoFilters);
        }
        for subscription in &subscriptions {
            validate_topic_filter(&subscription.filter)?;
        }
        let packet_id = self.start_request(PacketType::Subscribe)?;
        self.send(
            &Packet::Subscribe(Subscribe {
                packet_id,
                properties,
                subscriptions,
            }),
            now,
        );
        Ok(packet_id)
    }

    /// Sends UNSUBSCRIBE; [`ClientEvent::Unsubscribed`] reports the UNSUBACK.
    pub fn unsubscribe(&mut self, filters: Vec<String>, now: Timestamp) -> Result<PacketId, RequestError> {
        if filters.is_empty() {
            return Err(RequestError::NoFilters);
        }
        for filter in &filters {
            validate_topic_filter(filter)?;
        }
        let packet_id = self.start_request(PacketType::Unsubscribe)?;
        let packet = Unsubscribe {
            packet_id,
            properties: Properties::default(),
            filters,
        };
        self.send(&Packet::Unsubscribe(packet), now);
        Ok(packet_id)
    }

    fn start_request(&mut self, kind: PacketType) -> Result<PacketId, RequestError> {
        if self.state != ConnectionState::Connected {
            return Err(RequestError::NotConnected);
        }
        let requests = &self.requests;
        let packet_id = self
            .session
            .outgoing
            .allocate_packet_id(|id| requests.iter().any(|(used, _)| used.get() == id))
            .ok_or(RequestError::PacketIdsExhausted)?;
        self.requests.push((packet_id, kind));
        Ok(packet_id)
    }

    /// Ends the connection on purpose with a DISCONNECT; the session stays for next time.
    pub fn disconnect(&mut self, reason: ReasonCode, now: Timestamp) {
        if self.state == ConnectionState::Disconnected {
            return;
        }
        self.send(&Packet::Disconnect(Disconnect::with_reason(reason)), now);
        self.end_connection(DisconnectCause::Local);
    }

    /// The transport closed. Reports [`ClientEvent::Disconnected`] unless already reported.
    pub fn connection_lost(&mut self) {
        if self.state != ConnectionState::Disconnected {
            self.end_connection(DisconnectCause::TransportClosed);
        }
        self.stream.reset();
    }

    fn end_connection(&mut self, cause: DisconnectCause) {
        self.state = ConnectionState::Disconnected;
        self.requests.clear();
        self.ping_sent = None;
        self.events.push_back(ClientEvent::Disconnected(cause));
    }

    fn fail(&mut self, error: ConnectionError, now: Timestamp) {
        if self.version().is_v5() && !matches!(error, ConnectionError::KeepAliveTimeout) {
            self.send(
                &Packet::Disconnect(Disconnect::with_reason(error.reason_code())),
                now,
            );
        }
        self.end_connection(DisconnectCause::Error(error));
    }

    /// Feeds bytes received from the transport.
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Timestamp) {
        if self.state == ConnectionState::Disconnected {
            return;
        }
        self.stream.receive(bytes);
        while self.state != ConnectionState::Disconnected {
            match self
                .stream
                .next_packet::<true>(self.version(), self.config.maximum_packet_size)
            {
                Ok(Some(packet)) => {
                    if let Err(violation) = self.handle_packet(packet, now) {
                        self.fail(violation.into(), now);
                    }
                }
                Ok(None) => break,
                Err(error) => self.fail(error.into(), now),
            }
        }
    }

    fn handle_packet(&mut self, packet: Packet, now: Timestamp) -> Result<(), ProtocolViolation> {
        if let ConnectionState::ExpectConnack { .. } = self.state {
            return match packet {
                Packet::Connack(connack) => {
                    self.handle_connack(connack, now);
                    Ok(())
                }
                other => Err(ProtocolViolation::ConnackExpected(other.packet_type())),
            };
        }
        match packet {
            Packet::Publish(publish) => self.handle_publish(publish, now)?,
            Packet::Puback(ack) => {
                let outcome = self.session.outgoing.on_puback(&ack);
                self.apply_ack(outcome, now);
            }
            Packet::Pubrec(ack) => {
                let outcome = self.session.outgoing.on_pubrec(&ack);
                self.apply_ack(outcome, now);
            }
            Packet::Pubcomp(ack) => {
                let outcome = self.session.outgoing.on_pubcomp(&ack);
                self.apply_ack(outcome, now);
            }
            Packet::Pubrel(release) => {
                let known = self.session.incoming.on_pubrel(release.packet_id);
                let mut complete = PubResponse::success(release.packet_id);
                if !known {
                    complete.reason = ReasonCode::PacketIdentifierNotFound;
                }
                self.send(&Packet::Pubcomp(complete), now);
            }
            Packet::Suback(suback) => {
                if self.take_request(suback.packet_id) == Some(PacketType::Subscribe) {
                    let event = ClientEvent::Subscribed {
                        packet_id: suback.packet_id,
                        reasons: suback.reasons,
                    };
                    self.events.push_back(event);
                }
            }
            Packet::Unsuback(unsuback) => {
                if self.take_request(unsuback.packet_id) == Some(PacketType::Unsubscribe) {
                    let event = ClientEvent::Unsubscribed {
                        packet_id: unsuback.packet_id,
                        reasons: unsuback.reasons,
                    };
                    self.events.push_back(event);
                }
            }
            Packet::Pingresp => self.ping_sent = None,
            Packet::Disconnect(disconnect) => {
                let cause = DisconnectCause::ServerDisconnect {
                    reason: disconnect.reason,
                    reason_string: disconnect.properties.reason_string,
                };
                self.end_connection(cause);
            }
            Packet::Auth(_) => return Err(ProtocolViolation::UnexpectedAuth),
            other => return Err(ProtocolViolation::UnexpectedPacket(other.packet_type())),
        }
        Ok(())
    }

    fn handle_connack(&mut self, connack: Connack, now: Timestamp) {
        if connack.reason.is_error() {
            self.end_connection(DisconnectCause::Refused(connack.reason));
            return;
        }
        let props = &connack.properties;
        if let Some(maximum) = props.receive_maximum {
            self.limits.peer.receive_maximum = maximum;
        }
        if let Some(maximum) = props.maximum_packet_size {
            self.limits.peer.maximum_packet_size = maximum;
        }
        if let Some(qos) = props.maximum_qos.and_then(QoS::from_bits) {
            self.limits.peer.maximum_qos = qos;
        }
        if let Some(seconds) = props.server_keep_alive {
            self.limits.keep_alive = Duration::from_secs(u64::from(seconds));
        }
        if let Some(assigned) = &props.assigned_client_identifier {
            self.config.client_id = assigned.clone();
        }
        self.state = ConnectionState::Connected;
        self.ping_sent = None;
        self.events.push_back(ClientEvent::Connected {
            session_present: connack.session_present,
            properties: Box::new(connack.properties.clone()),
        });
        if connack.session_present {
            for packet in self.session.outgoing.resend() {
                self.send(&packet, now);
            }
        } else {
            self.session.incoming.clear();
            for id in self.session.outgoing.restart_without_session() {
                self.events.push_back(ClientEvent::PublishDone {
                    id,
                    reason: ReasonCode::Success,
                });
            }
        }
        self.send_queued(now);
    }

    fn handle_publish(&mut self, publish: Publish, now: Timestamp) -> Result<(), ProtocolViolation> {
        if let Some(alias) = publish.properties.topic_alias {
            // We announce no topic alias maximum, so the server may not use any.
            return Err(ProtocolViolation::TopicAliasOutOfRange(alias));
        }
        let Some(packet_id) = publish.packet_id.filter(|_| publish.qos != QoS::AtMostOnce) else {
            self.events.push_back(ClientEvent::Message(publish));
            return Ok(());
        };
        if publish.qos == QoS::ExactlyOnce && self.session.incoming.contains(packet_id) {
            // A resend of a message already handled: acknowledged again, not delivered again.
            self.send(&Packet::Pubrec(PubResponse::success(packet_id)), now);
            return Ok(());
        }
        let qos = publish.qos;
        self.events.push_back(ClientEvent::Message(publish));
        if self.config.manual_acks {
            return Ok(());
        }
        self.send_ack(packet_id, qos, now)
    }

    /// Acknowledges a received QoS 1 or 2 message (PUBACK, or PUBREC after recording its
    /// packet id so that a resend is not delivered again). Automatic unless
    /// [`ClientConfig::manual_acks`] is set; a driver acknowledging manually must do so in
    /// the order the messages were received (MQTT-4.6.0-2), and saves [`Client::session`]
    /// before writing the PUBREC. Nothing is sent while disconnected: the server resends
    /// the message on the next connection.
    pub fn acknowledge(&mut self, packet_id: PacketId, qos: QoS, now: Timestamp) {
        if self.state != ConnectionState::Connected {
            return;
        }
        if let Err(violation) = self.send_ack(packet_id, qos, now) {
            self.fail(violation.into(), now);
        }
    }

    fn send_ack(&mut self, packet_id: PacketId, qos: QoS, now: Timestamp) -> Result<(), ProtocolViolation> {
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.send(&Packet::Puback(PubResponse::success(packet_id)), now),
            QoS::ExactlyOnce => {
                self.session.incoming.on_publish(packet_id);
                if self.session.incoming.len() > usize::from(self.config.receive_maximum) {
                    return Err(ProtocolViolation::ReceiveMaximumExceeded(
                        self.config.receive_maximum,
                    ));
                }
                self.send(&Packet::Pubrec(PubResponse::success(packet_id)), now);
            }
        }
        Ok(())
    }

    fn apply_ack(&mut self, outcome: AckOutcome, now: Timestamp) {
        match outcome {
            AckOutcome::Completed { id, reason } => {
                self.events.push_back(ClientEvent::PublishDone { id, reason });
                self.send_queued(now);
            }
            AckOutcome::SendPubrel(packet_id) => {
                self.send(&Packet::Pubrel(PubResponse::success(packet_id)), now)
            }
            AckOutcome::Unknown => {}
        }
    }

    /// Sends queued messages as far as the connection and the receive maximum allow.
    fn send_queued(&mut self, now: Timestamp) {
        if self.state != ConnectionState::Connected {
            return;
        }
        let requests = &self.requests;
        let in_use = |id| {
            requests
                .iter()
                .any(|(used, _): &(PacketId, PacketType)| used.get() == id)
        };
        let pending_before = self.stream.pending_len();
        let finished = transmit_queued(
            &mut self.session.outgoing,
            &mut self.stream,
            self.config.version,
            self.limits.peer,
            &mut (),
            in_use,
        );
        if self.stream.pending_len() > pending_before {
            self.last_sent = now;
        }
        for (id, reason) in finished {
            self.events.push_back(ClientEvent::PublishDone { id, reason });
        }
    }

    fn send(&mut self, packet: &Packet, now: Timestamp) {
        self.stream.send_control(packet, self.version());
        self.last_sent = now;
    }

    /// Removes the request sent under `packet_id`, returning its kind.
    fn take_request(&mut self, packet_id: PacketId) -> Option<PacketType> {
        let index = self.requests.iter().position(|(id, _)| *id == packet_id)?;
        Some(self.requests.swap_remove(index).1)
    }

    /// Bytes to write to the transport, or `None`. Call after every other call.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.stream.take_transmit()
    }

    /// The next event, or `None`. Call after every other call.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When [`Client::handle_timeout`] should next be called, if at all.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match self.state {
            ConnectionState::Disconnected => None,
            ConnectionState::ExpectConnack { deadline } => Some(deadline),
            ConnectionState::Connected if self.limits.keep_alive.is_zero() => None,
            ConnectionState::Connected => Some(match self.ping_sent {
                Some(sent) => sent + self.limits.keep_alive,
                None => self.last_sent + self.limits.keep_alive / self.config.ping_divisor.max(1),
            }),
        }
    }

    /// Runs timers: CONNACK timeout, keep-alive ping, PINGRESP timeout.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let Some(deadline) = self.poll_timeout() else {
            return;
        };
        if now < deadline {
            return;
        }
        match (self.state, self.ping_sent) {
            (ConnectionState::ExpectConnack { .. }, _) => self.fail(ConnectionError::ConnectTimeout, now),
            (_, Some(_)) => self.fail(ConnectionError::KeepAliveTimeout, now),
            (_, None) => {
                self.send(&Packet::Pingreq, now);
                self.ping_sent = Some(now);
            }
        }
    }
}
