//! The client and server state machines driven together in memory with a fake clock:
//! QoS 1 and 2 in both directions, lost connections mid-flow, resend on reconnect,
//! exactly-once delivery, keep-alive, and the takeover reason.

mod support;

use std::time::Duration;

use support::pair::Pair;
use tabmq_protocol::client::{ClientEvent, ConnectionState, DisconnectCause};
use tabmq_protocol::error::ConnectionError;
use tabmq_protocol::flow::SessionFlows;
use tabmq_protocol::packet::{Publish, Subscription, SubscriptionOptions};
use tabmq_protocol::server::{CloseCause, ServerConfig, ServerEvent};
use tabmq_protocol::{Packet, Properties, ProtocolVersion, QoS, ReasonCode};

const VERSIONS: [ProtocolVersion; 2] = [ProtocolVersion::V311, ProtocolVersion::V5];

fn connected(version: ProtocolVersion) -> Pair {
    let mut pair = Pair::new(Pair::config(version), ServerConfig::default());
    pair.connect();
    assert_eq!(pair.client.state(), ConnectionState::Connected);
    pair
}

fn publish_done(pair: &Pair) -> Vec<(u64, ReasonCode)> {
    pair.client_events
        .iter()
        .filter_map(|event| match event {
            ClientEvent::PublishDone { id, reason } => Some((*id, *reason)),
            _ => None,
        })
        .collect()
}

fn session_present_at_last_connect(pair: &Pair) -> Option<bool> {
    pair.client_events.iter().rev().find_map(|event| match event {
        ClientEvent::Connected { session_present, .. } => Some(*session_present),
        _ => None,
    })
}

#[test]
fn client_publishes_at_every_qos_and_each_completes_once() {
    for version in VERSIONS {
        let mut pair = connected(version);
        let ids: Vec<u64> = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
            .into_iter()
            .map(|qos| {
                pair.client
                    .publish(Publish::new("t", vec![qos.bits()], qos), pair.now)
                    .expect("valid")
            })
            .collect();
        pair.settle();
        assert_eq!(pair.broker_messages(), vec![vec![0], vec![1], vec![2]]);
        let done: Vec<u64> = publish_done(&pair).into_iter().map(|(id, _)| id).collect();
        assert_eq!(done, ids, "{version:?}");
        assert_eq!(pair.client.session().outgoing.inflight_len(), 0);
    }
}

#[test]
fn server_delivers_at_every_qos_and_the_client_acknowledges() {
    for version in VERSIONS {
        let mut pair = connected(version);
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            pair.server.deliver(Publish::new("t", vec![qos.bits()], qos));
        }
        pair.settle();
        assert_eq!(pair.client_messages(), vec![vec![0], vec![1], vec![2]]);
        let delivered = pair
            .server_events
            .iter()
            .filter(|event| matches!(event, ServerEvent::Delivered { .. }))
            .count();
        assert_eq!(delivered, 3);
        assert_eq!(pair.server.session().outgoing.inflight_len(), 0);
        assert!(
            pair.client.session().incoming.is_empty(),
            "PUBREL released the QoS 2 id"
        );
    }
}

#[test]
fn with_manual_acks_nothing_is_acknowledged_until_the_driver_says_so_and_a_qos2_resend_is_not_redelivered() {
    for version in VERSIONS {
        let config = tabmq_protocol::client::ClientConfig {
            manual_acks: true,
            ..Pair::config(version)
        };
        let mut pair = Pair::new(config, ServerConfig::default());
        pair.connect();
        pair.server.deliver(Publish::new("t", vec![1], QoS::AtLeastOnce));
        pair.server.deliver(Publish::new("t", vec![2], QoS::ExactlyOnce));
        pair.settle();
        assert_eq!(pair.client_messages(), vec![vec![1], vec![2]]);
        assert_eq!(
            pair.server.session().outgoing.inflight_len(),
            2,
            "{version:?}: no ack yet"
        );
        assert!(
            pair.client.session().incoming.is_empty(),
            "the QoS 2 id is recorded only at the ack"
        );

        // The link breaks before the acks: both are resent, and both delivered again (the
        // driver decides what a resend of a message it still holds means).
        pair.break_link();
        pair.connect();
        assert_eq!(pair.client_messages().len(), 4);
        let ids: Vec<_> = pair
            .client_events
            .iter()
            .filter_map(|event| match event {
                ClientEvent::Message(publish) => publish.packet_id.map(|id| (id, publish.qos)),
                _ => None,
            })
            .skip(2)
            .collect();
        for (packet_id, qos) in &ids {
            pair.client.acknowledge(*packet_id, *qos, pair.now);
        }
        pair.settle();
        assert_eq!(
            pair.server.session().outgoing.inflight_len(),
            0,
            "both acknowledged"
        );

        // A QoS 2 resend after the PUBREC (its id recorded) is acknowledged, not delivered.
        pair.server.deliver(Publish::new("t", vec![3], QoS::ExactlyOnce));
        pair.server_to_client();
        let (packet_id, qos) = match pair.client_events.last() {
            Some(ClientEvent::Message(publish)) => (publish.packet_id.expect("QoS 2"), publish.qos),
            other => panic!("expected the message, got {other:?}"),
        };
        pair.client.acknowledge(packet_id, qos, pair.now);
        pair.lose_client_output();
        pair.break_link();
        pair.connect();
        assert_eq!(
            pair.client_messages().len(),
            5,
            "{version:?}: not delivered a second time"
        );
        assert_eq!(
            pair.server.session().outgoing.inflight_len(),
            0,
            "the resend got its PUBREC"
        );
    }
}

#[test]
fn qos1_publish_whose_puback_is_lost_is_resent_with_dup_on_reconnect() {
    for version in VERSIONS {
        let mut pair = connected(version);
        let id = pair
            .client
            .publish(Publish::new("t", "m", QoS::AtLeastOnce), pair.now)
            .expect("valid");
        pair.client_to_server();
        let lost = pair.lose_server_output();
        assert!(matches!(lost.as_slice(), [Packet::Puback(_)]));
        pair.break_link();

        pair.connect();
        assert_eq!(session_present_at_last_connect(&pair), Some(true));
        let resent = &pair.broker.received[1];
        assert!(resent.dup, "resend carries DUP");
        assert_eq!(resent.packet_id, pair.broker.received[0].packet_id);
        assert_eq!(publish_done(&pair), vec![(id, ReasonCode::Success)]);
    }
}

#[test]
fn qos2_publish_is_never_delivered_twice_when_pubrec_is_lost() {
    for version in VERSIONS {
        let mut pair = connected(version);
        pair.client
            .publish(Publish::new("t", "once", QoS::ExactlyOnce), pair.now)
            .expect("valid");
        pair.client_to_server();
        assert!(matches!(
            pair.lose_server_output().as_slice(),
            [Packet::Pubrec(_)]
        ));
        pair.break_link();

        pair.connect();
        assert_eq!(
            pair.broker_messages(),
            vec![b"once".to_vec()],
            "{version:?}: delivered exactly once"
        );
        assert_eq!(publish_done(&pair).len(), 1);
        assert!(pair.server.session().incoming.is_empty());
    }
}

#[test]
fn lost_pubcomp_makes_the_client_send_pubrel_again_not_the_publish() {
    let mut pair = connected(ProtocolVersion::V5);
    let id = pair
        .client
        .publish(Publish::new("t", "m", QoS::ExactlyOnce), pair.now)
        .expect("valid");
    pair.client_to_server();
    pair.server_to_client(); // PUBREC arrives, PUBREL queued
    pair.client_to_server(); // PUBREL arrives at the server
    assert!(matches!(
        pair.lose_server_output().as_slice(),
        [Packet::Pubcomp(_)]
    ));
    pair.break_link();

    pair.server = tabmq_protocol::server::Connection::new(pair.server_config.clone(), pair.now);
    pair.client.connect(pair.now).expect("disconnected");
    pair.client_to_server();
    pair.server_to_client();
    let resent = pair.client_to_server();
    assert!(matches!(resent.as_slice(), [Packet::Pubrel(_)]), "got {resent:?}");
    pair.settle();
    // The new server no longer knows the packet id and answers PUBCOMP 0x92: during
    // recovery that is no error, the message was delivered.
    assert_eq!(publish_done(&pair), vec![(id, ReasonCode::Success)]);
    assert_eq!(pair.broker_messages().len(), 1);
}

#[test]
fn incoming_qos2_is_delivered_once_across_a_lost_pubrec_and_a_page_reload() {
    for version in VERSIONS {
        let mut pair = connected(version);
        pair.server
            .deliver(Publish::new("t", "exactly", QoS::ExactlyOnce));
        pair.server_to_client();
        assert!(matches!(
            pair.lose_client_output().as_slice(),
            [Packet::Pubrec(_)]
        ));
        pair.break_link();

        // The page reloads: the client comes back from its persisted session.
        let saved = serde_json::to_string(pair.client.session()).expect("serializable");
        let restored: SessionFlows = serde_json::from_str(&saved).expect("deserializable");
        let mut reloaded = Pair::with_session(Pair::config(version), ServerConfig::default(), restored);
        reloaded.broker = std::mem::take(&mut pair.broker);
        reloaded.broker.auto_ack = true;
        reloaded.connect();

        assert!(
            reloaded.client_messages().is_empty(),
            "{version:?}: the resent PUBLISH is not delivered again"
        );
        let mut messages = pair.client_messages();
        messages.extend(reloaded.client_messages());
        assert_eq!(messages, vec![b"exactly".to_vec()]);
        assert!(
            reloaded.server.session().outgoing.inflight_len() == 0,
            "handshake completed"
        );
    }
}

#[test]
fn messages_published_offline_wait_in_the_session_and_go_out_in_order() {
    let mut pair = Pair::new(Pair::config(ProtocolVersion::V5), ServerConfig::default());
    for n in 0..5u8 {
        pair.client
            .publish(Publish::new("t", vec![n], QoS::AtLeastOnce), pair.now)
            .expect("valid");
    }
    assert_eq!(pair.client.session().outgoing.queued_len(), 5);
    // Survives a reload before any connection.
    let saved = serde_json::to_vec(pair.client.session()).expect("serializable");
    let restored: SessionFlows = serde_json::from_slice(&saved).expect("deserializable");
    let mut pair = Pair::with_session(
        Pair::config(ProtocolVersion::V5),
        ServerConfig::default(),
        restored,
    );
    pair.connect();
    assert_eq!(
        pair.broker_messages(),
        (0..5u8).map(|n| vec![n]).collect::<Vec<_>>()
    );
}

#[test]
fn without_a_stored_session_unacknowledged_messages_are_sent_afresh() {
    let mut pair = connected(ProtocolVersion::V5);
    pair.client
        .publish(Publish::new("t", "a", QoS::AtLeastOnce), pair.now)
        .expect("valid");
    pair.client
        .publish(Publish::new("t", "b", QoS::ExactlyOnce), pair.now)
        .expect("valid");
    pair.lose_client_output();
    pair.break_link();
    pair.broker.stored_session = None; // the broker lost the session

    pair.connect();
    assert_eq!(session_present_at_last_connect(&pair), Some(false));
    assert_eq!(pair.broker_messages(), vec![b"a".to_vec(), b"b".to_vec()]);
    assert!(
        pair.broker.received.iter().all(|publish| !publish.dup),
        "fresh sends carry no DUP"
    );
    assert_eq!(publish_done(&pair).len(), 2);
}

#[test]
fn the_server_receive_maximum_bounds_messages_in_flight() {
    let server_config = ServerConfig {
        receive_maximum: 2,
        ..ServerConfig::default()
    };
    let mut pair = Pair::new(Pair::config(ProtocolVersion::V5), server_config);
    pair.connect();
    for n in 0..5u8 {
        pair.client
            .publish(Publish::new("t", vec![n], QoS::AtLeastOnce), pair.now)
            .expect("valid");
    }
    let first_flight = pair.client_to_server();
    assert_eq!(
        first_flight.len(),
        2,
        "only the receive maximum goes out before acknowledgements"
    );
    assert_eq!(pair.client.session().outgoing.queued_len(), 3);
    pair.settle();
    assert_eq!(pair.broker_messages().len(), 5);
}

#[test]
fn the_client_receive_maximum_bounds_what_the_server_sends() {
    let config = tabmq_protocol::client::ClientConfig {
        receive_maximum: 3,
        ..Pair::config(ProtocolVersion::V5)
    };
    let mut pair = Pair::new(config, ServerConfig::default());
    pair.connect();
    for n in 0..10u8 {
        pair.server.deliver(Publish::new("t", vec![n], QoS::ExactlyOnce));
    }
    assert_eq!(pair.server_to_client().len(), 3);
    pair.settle();
    assert_eq!(pair.client_messages().len(), 10);
}

#[test]
fn the_server_sends_no_more_in_flight_than_its_own_receive_maximum() {
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let config = tabmq_protocol::client::ClientConfig {
            receive_maximum: 1_000,
            ..Pair::config(version)
        };
        let server_config = ServerConfig {
            receive_maximum: 4,
            ..ServerConfig::default()
        };
        let mut pair = Pair::new(config, server_config);
        pair.connect();
        for n in 0..10u8 {
            pair.server.deliver(Publish::new("t", vec![n], QoS::AtLeastOnce));
        }
        assert_eq!(pair.server_to_client().len(), 4, "{version:?}");
        pair.settle();
        assert_eq!(pair.client_messages().len(), 10, "{version:?}");
    }
}

#[test]
fn client_pings_after_keep_alive_and_times_out_when_unanswered() {
    let mut config = Pair::config(ProtocolVersion::V5);
    config.keep_alive = 10;
    let mut pair = Pair::new(config, ServerConfig::default());
    pair.connect();
    pair.advance(Duration::from_secs(10));
    assert!(matches!(pair.client_to_server().as_slice(), [Packet::Pingreq]));
    assert!(matches!(pair.server_to_client().as_slice(), [Packet::Pingresp]));

    pair.advance(Duration::from_secs(10));
    assert!(matches!(pair.lose_client_output().as_slice(), [Packet::Pingreq]));
    pair.advance(Duration::from_secs(9));
    assert_eq!(
        pair.client.state(),
        ConnectionState::Connected,
        "still waiting for PINGRESP"
    );
    pair.advance(Duration::from_secs(1));
    assert_eq!(pair.client.state(), ConnectionState::Disconnected);
    assert_eq!(
        pair.client_events.last(),
        Some(&ClientEvent::Disconnected(DisconnectCause::Error(
            ConnectionError::KeepAliveTimeout
        )))
    );
}

#[test]
fn client_with_ping_divisor_two_pings_at_half_the_keep_alive() {
    let mut config = Pair::config(ProtocolVersion::V5);
    config.keep_alive = 10;
    config.ping_divisor = 2;
    let mut pair = Pair::new(config, ServerConfig::default());
    pair.connect();
    pair.advance(Duration::from_secs(4));
    assert!(pair.client_to_server().is_empty());
    pair.advance(Duration::from_secs(1));
    assert!(matches!(pair.client_to_server().as_slice(), [Packet::Pingreq]));
    assert!(matches!(pair.server_to_client().as_slice(), [Packet::Pingresp]));

    // The PINGRESP timeout is still the whole keep-alive.
    pair.advance(Duration::from_secs(5));
    assert!(matches!(pair.lose_client_output().as_slice(), [Packet::Pingreq]));
    pair.advance(Duration::from_secs(9));
    assert_eq!(pair.client.state(), ConnectionState::Connected);
    pair.advance(Duration::from_secs(1));
    assert_eq!(pair.client.state(), ConnectionState::Disconnected);
}

#[test]
fn server_closes_a_silent_client_after_one_and_a_half_keep_alives() {
    for version in VERSIONS {
        let mut config = Pair::config(version);
        config.keep_alive = 10;
        let mut pair = Pair::new(config, ServerConfig::default());
        pair.connect();
        pair.advance(Duration::from_millis(14_999));
        assert!(
            !pair
                .server_events
                .iter()
                .any(|event| matches!(event, ServerEvent::Closed(_)))
        );
        pair.lose_client_output(); // the client's PINGREQ never arrives
        pair.advance(Duration::from_millis(1));
        assert_eq!(
            pair.server_events.last(),
            Some(&ServerEvent::Closed(CloseCause::Error(
                ConnectionError::KeepAliveTimeout
            )))
        );
        let told = pair.server_to_client();
        match version {
            ProtocolVersion::V5 => assert!(matches!(told.as_slice(),
                [Packet::Disconnect(d)] if d.reason == ReasonCode::KeepAliveTimeout)),
            ProtocolVersion::V311 => assert!(told.is_empty(), "3.1.1 has no server DISCONNECT"),
        }
    }
}

#[test]
fn server_keep_alive_caps_what_a_v5_client_asked_for() {
    let mut config = Pair::config(ProtocolVersion::V5);
    config.keep_alive = 0;
    let server_config = ServerConfig {
        max_keep_alive: Some(30),
        ..ServerConfig::default()
    };
    let mut pair = Pair::new(config, server_config);
    pair.connect();
    let Some(ClientEvent::Connected { properties, .. }) = pair.client_events.first() else {
        panic!("no CONNACK")
    };
    assert_eq!(properties.server_keep_alive, Some(30));
    pair.advance(Duration::from_secs(30));
    assert!(
        matches!(pair.client_to_server().as_slice(), [Packet::Pingreq]),
        "client follows the server's value"
    );
}

#[test]
fn takeover_reason_reaches_the_client() {
    let mut pair = connected(ProtocolVersion::V5);
    pair.server.close(ReasonCode::SessionTakenOver);
    pair.server_to_client();
    let Some(ClientEvent::Disconnected(cause)) = pair.client_events.last() else {
        panic!("not disconnected")
    };
    assert!(cause.is_takeover());
    assert_eq!(pair.client.state(), ConnectionState::Disconnected);

    let mut v3 = connected(ProtocolVersion::V311);
    v3.server.close(ReasonCode::SessionTakenOver);
    assert!(
        v3.server_to_client().is_empty(),
        "3.1.1 learns of a takeover from the transport instead"
    );
}

#[test]
fn refused_connack_is_reported_with_its_reason() {
    let mut pair = Pair::new(Pair::config(ProtocolVersion::V311), ServerConfig::default());
    pair.broker.refuse_with = Some(ReasonCode::NotAuthorized);
    pair.connect();
    assert_eq!(pair.client.state(), ConnectionState::Disconnected);
    assert!(
        pair.client_events
            .contains(&ClientEvent::Disconnected(DisconnectCause::Refused(
                ReasonCode::NotAuthorized
            )))
    );
}

#[test]
fn client_gives_up_when_connack_never_comes() {
    let mut pair = Pair::new(Pair::config(ProtocolVersion::V5), ServerConfig::default());
    pair.client.connect(pair.now).expect("disconnected");
    pair.lose_client_output();
    pair.advance(Duration::from_secs(30));
    assert_eq!(
        pair.client_events.last(),
        Some(&ClientEvent::Disconnected(DisconnectCause::Error(
            ConnectionError::ConnectTimeout
        )))
    );
}

#[test]
fn subscribe_reports_the_granted_qos() {
    let mut pair = connected(ProtocolVersion::V5);
    let subscription = Subscription {
        filter: "a/+".into(),
        options: SubscriptionOptions {
            qos: QoS::ExactlyOnce,
            ..SubscriptionOptions::default()
        },
    };
    let packet_id = pair
        .client
        .subscribe(vec![subscription], Properties::default(), pair.now)
        .expect("connected");
    pair.settle();
    assert!(pair.client_events.contains(&ClientEvent::Subscribed {
        packet_id,
        reasons: vec![ReasonCode::GrantedQos2]
    }));
}

#[test]
fn too_large_messages_are_refused_locally_not_sent() {
    let server_config = ServerConfig {
        maximum_packet_size: 64,
        ..ServerConfig::default()
    };
    let mut pair = Pair::new(Pair::config(ProtocolVersion::V5), server_config);
    pair.connect();
    let id = pair
        .client
        .publish(Publish::new("t", vec![0u8; 100], QoS::AtLeastOnce), pair.now)
        .expect("valid");
    assert!(pair.client_to_server().is_empty());
    assert_eq!(publish_done(&pair), vec![(id, ReasonCode::PacketTooLarge)]);
    assert_eq!(pair.client.state(), ConnectionState::Connected);
}
