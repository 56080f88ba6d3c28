//! What the server connection does with clients that break the rules: the event it
//! raises, and what it tells the client before closing.

mod support;

use std::time::Duration;

use support::pair::packets;
use support::{cat, field, frame};
use tabmq_protocol::error::{ConnectionError, ProtocolViolation};
use tabmq_protocol::flow::SessionFlows;
use tabmq_protocol::packet::{Connect, PacketType, Publish};
use tabmq_protocol::server::{CloseCause, Connection, ConnectionPhase, ServerConfig, ServerEvent};
use tabmq_protocol::{DecodeError, Packet, Properties, ProtocolVersion, QoS, ReasonCode, Timestamp};

const T0: Timestamp = Timestamp::from_millis(0);

fn connect_bytes(version: ProtocolVersion) -> Vec<u8> {
    let connect = Connect {
        version,
        clean_start: true,
        keep_alive: 60,
        properties: Properties::default(),
        client_id: "c".into(),
        will: None,
        username: None,
        password: None,
    };
    tabmq_protocol::codec::encode_to_vec(&Packet::Connect(Box::new(connect)), version).expect("valid")
}

fn events(server: &mut Connection) -> Vec<ServerEvent> {
    std::iter::from_fn(|| server.poll_event()).collect()
}

/// The topics of the PUBLISH events waiting, in order.
fn published_topics(server: &mut Connection) -> Vec<String> {
    events(server)
        .into_iter()
        .filter_map(|event| match event {
            ServerEvent::Publish(publish) => Some(publish.topic),
            _ => None,
        })
        .collect()
}

fn accepted(version: ProtocolVersion, config: ServerConfig) -> Connection {
    let mut server = Connection::new(config, T0);
    server.handle_bytes(&connect_bytes(version), T0);
    assert!(matches!(
        events(&mut server).as_slice(),
        [ServerEvent::Connect(_)]
    ));
    server.accept(false, SessionFlows::default(), Properties::default(), T0);
    assert!(matches!(
        packets(&server.poll_transmit().unwrap_or_default(), version).as_slice(),
        [Packet::Connack(_)]
    ));
    server
}

fn closed_with(server: &mut Connection, violation: ProtocolViolation) {
    let events = events(server);
    assert_eq!(
        events.last(),
        Some(&ServerEvent::Closed(CloseCause::Error(violation.into())))
    );
    assert_eq!(server.phase(), ConnectionPhase::Closed);
}

fn disconnect_reason_sent(server: &mut Connection) -> Option<ReasonCode> {
    let sent = packets(&server.poll_transmit().unwrap_or_default(), ProtocolVersion::V5);
    sent.iter().find_map(|packet| match packet {
        Packet::Disconnect(disconnect) => Some(disconnect.reason),
        _ => None,
    })
}

#[test]
fn a_first_packet_other_than_connect_closes_the_connection() {
    let mut server = Connection::new(ServerConfig::default(), T0);
    server.handle_bytes(&frame(0x30, &field(b"t")), T0);
    closed_with(
        &mut server,
        ProtocolViolation::ConnectExpected(PacketType::Publish),
    );
    assert_eq!(server.poll_transmit(), None, "nothing is said before CONNECT");
}

#[test]
fn a_second_connect_is_a_protocol_error() {
    let mut server = accepted(ProtocolVersion::V5, ServerConfig::default());
    server.handle_bytes(&connect_bytes(ProtocolVersion::V5), T0);
    closed_with(&mut server, ProtocolViolation::SecondConnect);
    assert_eq!(
        disconnect_reason_sent(&mut server),
        Some(ReasonCode::ProtocolError)
    );
}

#[test]
fn packets_sent_before_the_broker_accepts_wait_and_are_then_read() {
    let mut server = Connection::new(ServerConfig::default(), T0);
    let publish = frame(0x30, &cat(&[&field(b"t"), b"early"]));
    server.handle_bytes(&cat(&[&connect_bytes(ProtocolVersion::V311), &publish]), T0);
    assert!(matches!(
        events(&mut server).as_slice(),
        [ServerEvent::Connect(_)]
    ));
    server.accept(false, SessionFlows::default(), Properties::default(), T0);
    let after = events(&mut server);
    assert!(matches!(after.as_slice(), [ServerEvent::Publish(p)] if p.payload.as_ref() == b"early"));
}

#[test]
fn connect_that_never_comes_times_out() {
    let config = ServerConfig {
        connect_timeout: Duration::from_secs(5),
        ..ServerConfig::default()
    };
    let mut server = Connection::new(config, T0);
    server.handle_timeout(Timestamp::from_millis(4_999));
    assert!(events(&mut server).is_empty());
    server.handle_timeout(Timestamp::from_millis(5_000));
    assert_eq!(
        events(&mut server),
        vec![ServerEvent::Closed(CloseCause::Error(
            ConnectionError::ConnectTimeout
        ))]
    );
}

#[test]
fn unsupported_protocol_level_is_answered_with_connack_return_code_1() {
    let mut server = Connection::new(ServerConfig::default(), T0);
    server.handle_bytes(
        &frame(0x10, &cat(&[&field(b"MQTT"), &[6, 2, 0, 60], &field(b"c")])),
        T0,
    );
    assert_eq!(server.poll_transmit(), Some(vec![0x20, 0x02, 0x00, 0x01]));
    let events = events(&mut server);
    assert_eq!(
        events,
        vec![ServerEvent::Closed(CloseCause::Error(
            DecodeError::UnsupportedProtocolVersion(6).into()
        ))]
    );
}

#[test]
fn malformed_packets_end_the_connection_with_their_reason_code() {
    let mut server = accepted(ProtocolVersion::V5, ServerConfig::default());
    server.handle_bytes(&frame(0x30, &cat(&[&field(b"a/+"), &[0]])), T0);
    assert_eq!(
        disconnect_reason_sent(&mut server),
        Some(ReasonCode::TopicNameInvalid)
    );
    assert_eq!(server.phase(), ConnectionPhase::Closed);
    server.handle_bytes(&[0xC0, 0x00], T0);
    assert_eq!(server.poll_transmit(), None, "nothing is read after closing");
}

#[test]
fn oversized_packets_are_refused_with_0x95() {
    let config = ServerConfig {
        maximum_packet_size: 100,
        ..ServerConfig::default()
    };
    let mut server = accepted(ProtocolVersion::V5, config);
    server.handle_bytes(&[0x30, 0xE8, 0x07], T0); // announces 1000 bytes
    assert_eq!(
        disconnect_reason_sent(&mut server),
        Some(ReasonCode::PacketTooLarge)
    );
}

#[test]
fn packets_only_a_server_sends_are_refused() {
    let mut server = accepted(ProtocolVersion::V5, ServerConfig::default());
    server.handle_bytes(&[0xD0, 0x00], T0);
    closed_with(
        &mut server,
        ProtocolViolation::UnexpectedPacket(PacketType::Pingresp),
    );
}

#[test]
fn topic_aliases_are_resolved_and_bounds_enforced() {
    let config = ServerConfig {
        topic_alias_maximum: 5,
        ..ServerConfig::default()
    };
    let mut server = accepted(ProtocolVersion::V5, config);
    let set_alias = frame(0x30, &cat(&[&field(b"long/topic"), &[3, 0x23, 0, 2], b"one"]));
    let use_alias = frame(0x30, &cat(&[&field(b""), &[3, 0x23, 0, 2], b"two"]));
    server.handle_bytes(&cat(&[&set_alias, &use_alias]), T0);
    let topics = published_topics(&mut server);
    assert_eq!(topics, vec!["long/topic", "long/topic"]);

    server.handle_bytes(&frame(0x30, &cat(&[&field(b""), &[3, 0x23, 0, 4], b"x"])), T0);
    closed_with(&mut server, ProtocolViolation::UnknownTopicAlias(4));

    let mut server = accepted(
        ProtocolVersion::V5,
        ServerConfig {
            topic_alias_maximum: 5,
            ..ServerConfig::default()
        },
    );
    server.handle_bytes(&frame(0x30, &cat(&[&field(b"t"), &[3, 0x23, 0, 6]])), T0);
    closed_with(&mut server, ProtocolViolation::TopicAliasOutOfRange(6));
    assert_eq!(
        disconnect_reason_sent(&mut server),
        Some(ReasonCode::TopicAliasInvalid)
    );
}

#[test]
fn exceeding_the_receive_maximum_is_refused_with_0x93() {
    let config = ServerConfig {
        receive_maximum: 2,
        ..ServerConfig::default()
    };
    let mut server = accepted(ProtocolVersion::V5, config);
    for id in 1..=3u8 {
        server.handle_bytes(&frame(0x32, &cat(&[&field(b"t"), &[0, id, 0]])), T0);
    }
    closed_with(&mut server, ProtocolViolation::ReceiveMaximumExceeded(2));
    assert_eq!(
        disconnect_reason_sent(&mut server),
        Some(ReasonCode::ReceiveMaximumExceeded)
    );
}

#[test]
fn qos_above_the_maximum_is_refused_with_0x9b() {
    let config = ServerConfig {
        maximum_qos: QoS::AtLeastOnce,
        ..ServerConfig::default()
    };
    let mut server = accepted(ProtocolVersion::V5, config);
    server.handle_bytes(&frame(0x34, &cat(&[&field(b"t"), &[0, 1, 0]])), T0);
    closed_with(&mut server, ProtocolViolation::QosNotSupported(QoS::ExactlyOnce));
    assert_eq!(
        disconnect_reason_sent(&mut server),
        Some(ReasonCode::QosNotSupported)
    );
}

#[test]
fn subscription_identifiers_from_a_client_are_refused() {
    let mut server = accepted(ProtocolVersion::V5, ServerConfig::default());
    server.handle_bytes(&frame(0x30, &cat(&[&field(b"t"), &[2, 0x0B, 1]])), T0);
    closed_with(&mut server, ProtocolViolation::SubscriptionIdentifierFromClient);
}

#[test]
fn qos1_acknowledgement_waits_for_the_broker() {
    let mut server = accepted(ProtocolVersion::V311, ServerConfig::default());
    server.handle_bytes(&frame(0x32, &cat(&[&field(b"t"), &[0, 9], b"m"])), T0);
    let publish = events(&mut server);
    assert!(matches!(publish.as_slice(), [ServerEvent::Publish(_)]));
    assert_eq!(
        server.poll_transmit(),
        None,
        "no PUBACK before the broker stored it"
    );
    server.acknowledge(
        tabmq_protocol::PacketId::new(9).expect("non-zero"),
        ReasonCode::Success,
    );
    assert_eq!(server.poll_transmit(), Some(vec![0x40, 0x02, 0x00, 0x09]));
}

#[test]
fn will_is_published_unless_the_client_disconnects_normally() {
    let mut server = accepted(ProtocolVersion::V5, ServerConfig::default());
    server.handle_bytes(&[0xE0, 0x00], T0);
    let Some(ServerEvent::Closed(cause)) = events(&mut server).pop() else {
        panic!("not closed")
    };
    assert!(!cause.publishes_will());

    let mut server = accepted(ProtocolVersion::V5, ServerConfig::default());
    server.handle_bytes(&[0xE0, 0x01, 0x04], T0);
    let Some(ServerEvent::Closed(cause)) = events(&mut server).pop() else {
        panic!("not closed")
    };
    assert!(cause.publishes_will(), "0x04 asks for the will");

    let mut server = accepted(ProtocolVersion::V311, ServerConfig::default());
    server.handle_bytes(&[0xC0, 0x01, 0x00], T0);
    let Some(ServerEvent::Closed(cause)) = events(&mut server).pop() else {
        panic!("not closed")
    };
    assert!(cause.publishes_will(), "a protocol error publishes the will");
}

#[test]
fn session_expiry_cannot_be_set_at_disconnect_after_connect_said_zero() {
    let mut server = accepted(ProtocolVersion::V5, ServerConfig::default());
    server.handle_bytes(&[0xE0, 0x07, 0x00, 0x05, 0x11, 0, 0, 0, 10], T0);
    closed_with(&mut server, ProtocolViolation::SessionExpiryAfterZero);
}

#[test]
fn deliveries_too_large_for_the_client_are_dropped_and_reported() {
    let mut server = Connection::new(ServerConfig::default(), T0);
    let connect = frame(
        0x10,
        &cat(&[
            &field(b"MQTT"),
            &[5, 2, 0, 60, 5, 0x27, 0, 0, 0, 40],
            &field(b"c"),
        ]),
    );
    server.handle_bytes(&connect, T0);
    events(&mut server);
    server.accept(false, SessionFlows::default(), Properties::default(), T0);
    server.poll_transmit();
    let id = server.deliver(Publish::new("t", vec![0u8; 64], QoS::AtLeastOnce));
    assert_eq!(server.poll_transmit(), None);
    assert_eq!(
        events(&mut server),
        vec![ServerEvent::Delivered {
            id,
            reason: ReasonCode::PacketTooLarge
        }]
    );
    assert_eq!(server.session().outgoing.inflight_len(), 0);
}

#[test]
fn packets_are_read_whole_or_cut_anywhere_including_those_sent_with_the_connect() {
    let version = ProtocolVersion::V5;
    let publishes: Vec<Vec<u8>> = (0..3)
        .map(|n| {
            let publish = Publish::new(format!("t/{n}"), vec![n as u8; 40], QoS::AtMostOnce);
            tabmq_protocol::codec::encode_to_vec(&Packet::Publish(publish), version).expect("valid")
        })
        .collect();
    let mut all = connect_bytes(version);
    for publish in &publishes {
        all.extend_from_slice(publish);
    }
    for cut in 1..all.len() {
        let mut server = Connection::new(ServerConfig::default(), T0);
        // The CONNECT and the packets behind it, in two pieces cut at `cut`.
        server.handle_bytes(&all[..cut], T0);
        server.handle_bytes(&all[cut..], T0);
        assert!(
            matches!(events(&mut server).as_slice(), [ServerEvent::Connect(_)]),
            "cut at {cut}"
        );
        server.accept(false, SessionFlows::default(), Properties::default(), T0);
        let topics = published_topics(&mut server);
        assert_eq!(topics, ["t/0", "t/1", "t/2"], "cut at {cut}");
    }
}
