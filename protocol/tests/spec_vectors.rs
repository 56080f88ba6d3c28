//! Byte sequences taken from the examples of the MQTT 3.1.1 and 5.0 specifications.

mod support;

use bytes::Bytes;
use support::{cat, field, frame};
use tabmq_protocol::codec::{FixedHeader, decode, encode_to_vec};
use tabmq_protocol::packet::*;
use tabmq_protocol::{PacketId, Properties, ProtocolVersion, QoS, ReasonCode};

const MAX: u32 = tabmq_protocol::codec::PROTOCOL_MAX_PACKET_SIZE;

fn id(value: u16) -> PacketId {
    PacketId::new(value).expect("non-zero")
}

fn assert_both_ways(bytes: &[u8], packet: Packet, version: ProtocolVersion) {
    assert_eq!(
        decode(bytes, version, MAX),
        Ok(Some((packet.clone(), bytes.len())))
    );
    assert_eq!(encode_to_vec(&packet, version).as_deref(), Ok(bytes));
}

#[test]
fn remaining_length_boundaries_from_the_spec_table() {
    let table: &[(&[u8], u32)] = &[
        (&[0x00], 0),
        (&[0x7F], 127),
        (&[0x80, 0x01], 128),
        (&[0xFF, 0x7F], 16_383),
        (&[0x80, 0x80, 0x01], 16_384),
        (&[0xFF, 0xFF, 0x7F], 2_097_151),
        (&[0x80, 0x80, 0x80, 0x01], 2_097_152),
        (&[0xFF, 0xFF, 0xFF, 0x7F], 268_435_455),
    ];
    for (encoded, value) in table {
        let bytes = cat(&[&[0x30], encoded]);
        let header = FixedHeader::parse(&bytes).expect("valid").expect("complete");
        assert_eq!(header.remaining_length, *value);
        assert_eq!(header.header_length, 1 + encoded.len());
    }
}

#[test]
fn v311_connect_with_will_user_and_password() {
    // Protocol name, level 4, flags 0xCE (user, password, will QoS 1, will, clean), keep alive 10.
    let body = cat(&[
        &field(b"MQTT"),
        &[0x04, 0xCE, 0x00, 0x0A],
        &field(b"c"),
        &field(b"w"),
        &field(b"m"),
        &field(b"u"),
        &field(b"p"),
    ]);
    let packet = Packet::Connect(Box::new(Connect {
        version: ProtocolVersion::V311,
        clean_start: true,
        keep_alive: 10,
        properties: Properties::default(),
        client_id: "c".into(),
        will: Some(Will {
            topic: "w".into(),
            payload: Bytes::from_static(b"m"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Default::default(),
        }),
        username: Some("u".into()),
        password: Some(Bytes::from_static(b"p")),
    }));
    assert_both_ways(&frame(0x10, &body), packet, ProtocolVersion::V311);
}

#[test]
fn v5_connect_with_session_expiry_and_empty_client_id() {
    let body = cat(&[
        &field(b"MQTT"),
        &[0x05, 0x02, 0x00, 0x3C],
        &[0x05, 0x11, 0x00, 0x00, 0x0E, 0x10],
        &field(b""),
    ]);
    let packet = Packet::Connect(Box::new(Connect {
        version: ProtocolVersion::V5,
        clean_start: true,
        keep_alive: 60,
        properties: Properties {
            session_expiry_interval: Some(3600),
            ..Properties::default()
        },
        client_id: String::new(),
        will: None,
        username: None,
        password: None,
    }));
    assert_both_ways(&frame(0x10, &body), packet, ProtocolVersion::V5);
}

#[test]
fn v311_publish_example_topic_a_b_packet_id_10() {
    let bytes = frame(0x32, &cat(&[&field(b"a/b"), &[0x00, 0x0A], b"hi"]));
    let packet = Packet::Publish(Publish {
        packet_id: Some(id(10)),
        ..Publish::new("a/b", Bytes::from_static(b"hi"), QoS::AtLeastOnce)
    });
    assert_both_ways(&bytes, packet, ProtocolVersion::V311);
}

#[test]
fn v311_subscribe_and_suback_examples() {
    let bytes = frame(
        0x82,
        &cat(&[&[0x00, 0x0A], &field(b"a/b"), &[0x01], &field(b"c/d"), &[0x02]]),
    );
    let subscription = |filter: &str, qos| Subscription {
        filter: filter.into(),
        options: SubscriptionOptions {
            qos,
            ..SubscriptionOptions::default()
        },
    };
    let packet = Packet::Subscribe(Subscribe {
        packet_id: id(10),
        properties: Properties::default(),
        subscriptions: vec![
            subscription("a/b", QoS::AtLeastOnce),
            subscription("c/d", QoS::ExactlyOnce),
        ],
    });
    assert_both_ways(&bytes, packet, ProtocolVersion::V311);

    let suback = Packet::Suback(Suback {
        packet_id: id(10),
        properties: Properties::default(),
        reasons: vec![
            ReasonCode::Success,
            ReasonCode::GrantedQos2,
            ReasonCode::UnspecifiedError,
        ],
    });
    assert_both_ways(
        &[0x90, 0x05, 0x00, 0x0A, 0x00, 0x02, 0x80],
        suback,
        ProtocolVersion::V311,
    );
}

#[test]
fn two_byte_packets() {
    let v3 = ProtocolVersion::V311;
    assert_both_ways(&[0xC0, 0x00], Packet::Pingreq, v3);
    assert_both_ways(&[0xD0, 0x00], Packet::Pingresp, v3);
    assert_both_ways(
        &[0xE0, 0x00],
        Packet::Disconnect(Disconnect::with_reason(ReasonCode::Success)),
        v3,
    );
    assert_both_ways(
        &[0xB0, 0x02, 0x00, 0x0A],
        Packet::Unsuback(Unsuback {
            packet_id: id(10),
            properties: Properties::default(),
            reasons: vec![],
        }),
        v3,
    );
    let session_present = Connack {
        session_present: true,
        reason: ReasonCode::Success,
        properties: Properties::default(),
    };
    assert_both_ways(&[0x20, 0x02, 0x01, 0x00], Packet::Connack(session_present), v3);
}

#[test]
fn v5_short_forms_leave_out_default_reason_and_properties() {
    let v5 = ProtocolVersion::V5;
    assert_both_ways(
        &[0x40, 0x02, 0x00, 0x01],
        Packet::Puback(PubResponse::success(id(1))),
        v5,
    );
    let no_subscribers = PubResponse {
        reason: ReasonCode::NoMatchingSubscribers,
        ..PubResponse::success(id(1))
    };
    assert_both_ways(
        &[0x40, 0x03, 0x00, 0x01, 0x10],
        Packet::Puback(no_subscribers),
        v5,
    );
    assert_both_ways(
        &[0xE0, 0x00],
        Packet::Disconnect(Disconnect::with_reason(ReasonCode::Success)),
        v5,
    );
    let takeover = Disconnect::with_reason(ReasonCode::SessionTakenOver);
    assert_both_ways(&[0xE0, 0x01, 0x8E], Packet::Disconnect(takeover), v5);
    let connack = Connack {
        session_present: false,
        reason: ReasonCode::Success,
        properties: Properties::default(),
    };
    assert_both_ways(&[0x20, 0x03, 0x00, 0x00, 0x00], Packet::Connack(connack), v5);
    // A PUBREL with a two-byte body still means success (v5 section 3.6.2.1).
    assert_eq!(
        decode(&[0x62, 0x02, 0x00, 0x07], v5, MAX),
        Ok(Some((Packet::Pubrel(PubResponse::success(id(7))), 4)))
    );
}

#[test]
fn v311_connack_return_codes_map_to_v5_reasons() {
    let expected = [
        (1, ReasonCode::UnsupportedProtocolVersion),
        (2, ReasonCode::ClientIdentifierNotValid),
        (3, ReasonCode::ServerUnavailable),
        (4, ReasonCode::BadUserNameOrPassword),
        (5, ReasonCode::NotAuthorized),
    ];
    for (code, reason) in expected {
        let connack = Connack {
            session_present: false,
            reason,
            properties: Properties::default(),
        };
        assert_both_ways(
            &[0x20, 0x02, 0x00, code],
            Packet::Connack(connack),
            ProtocolVersion::V311,
        );
    }
}

#[test]
fn decoding_stops_at_the_packet_end_and_leaves_the_next_one() {
    let bytes = [0xC0, 0x00, 0xD0, 0x00];
    assert_eq!(
        decode(&bytes, ProtocolVersion::V311, MAX),
        Ok(Some((Packet::Pingreq, 2)))
    );
    assert_eq!(
        decode(&bytes[2..], ProtocolVersion::V311, MAX),
        Ok(Some((Packet::Pingresp, 2)))
    );
}
