//! One test per malformed-input rule: the exact error, and the reason code it maps to.

mod support;

use support::{cat, field, frame};
use tabmq_protocol::DecodeError::{self, *};
use tabmq_protocol::codec::{decode, decode_from_server};
use tabmq_protocol::packet::PacketType;
use tabmq_protocol::properties::PropertyId;
use tabmq_protocol::reason::ReasonContext;
use tabmq_protocol::topic::TopicError;
use tabmq_protocol::{ProtocolVersion, ReasonCode};

const V3: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;
const MAX: u32 = 1024;

fn error_of(bytes: &[u8], version: ProtocolVersion) -> DecodeError {
    match decode(bytes, version, MAX) {
        Err(error) => error,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn assert_rejected(bytes: &[u8], version: ProtocolVersion, expected: DecodeError, reason: ReasonCode) {
    let error = error_of(bytes, version);
    assert_eq!(error, expected);
    assert_eq!(error.reason_code(), reason);
}

fn v5_publish_with_properties(properties: &[u8]) -> Vec<u8> {
    let mut props = vec![properties.len() as u8];
    props.extend_from_slice(properties);
    frame(0x30, &cat(&[&field(b"t"), &props]))
}

fn connect_body(name: &[u8], level: u8, flags: u8) -> Vec<u8> {
    let properties: &[u8] = if level == 5 { &[0x00] } else { &[] };
    cat(&[
        &field(name),
        &[level, flags, 0x00, 0x3C],
        properties,
        &field(b"id"),
    ])
}

#[test]
fn reserved_fixed_header_flags_are_rejected() {
    let cases = [
        (0x80, PacketType::Subscribe),
        (0x60, PacketType::Pubrel),
        (0xA3, PacketType::Unsubscribe),
        (0x41, PacketType::Puback),
    ];
    for (first, packet_type) in cases {
        let bytes = frame(first, &[0x00, 0x01]);
        let flags = first & 0x0F;
        assert_rejected(
            &bytes,
            V3,
            InvalidHeaderFlags { packet_type, flags },
            ReasonCode::MalformedPacket,
        );
    }
    assert_rejected(
        &[0xC1, 0x00],
        V3,
        InvalidHeaderFlags {
            packet_type: PacketType::Pingreq,
            flags: 1,
        },
        ReasonCode::MalformedPacket,
    );
}

#[test]
fn remaining_length_over_four_bytes_is_rejected() {
    assert_rejected(
        &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
        V3,
        RemainingLengthTooLong,
        ReasonCode::MalformedPacket,
    );
}

#[test]
fn reserved_packet_type_zero_and_auth_in_v311_are_rejected() {
    assert_rejected(
        &[0x00, 0x00],
        V3,
        InvalidPacketType(0),
        ReasonCode::MalformedPacket,
    );
    assert_rejected(
        &[0xF0, 0x00],
        V3,
        InvalidPacketType(15),
        ReasonCode::MalformedPacket,
    );
}

#[test]
fn qos_3_is_rejected_in_publish_subscribe_and_will() {
    assert_rejected(
        &frame(0x36, &cat(&[&field(b"t"), &[0, 1]])),
        V3,
        InvalidQos,
        ReasonCode::MalformedPacket,
    );
    let subscribe = frame(0x82, &cat(&[&[0, 1], &field(b"t"), &[0x03]]));
    assert_rejected(&subscribe, V3, InvalidQos, ReasonCode::MalformedPacket);
    let will_qos_3 = frame(0x10, &connect_body(b"MQTT", 4, 0b0001_1100));
    assert_rejected(&will_qos_3, V3, InvalidWillFlags, ReasonCode::MalformedPacket);
}

#[test]
fn dup_on_qos_0_is_rejected() {
    assert_rejected(
        &frame(0x38, &field(b"t")),
        V3,
        DupOnQos0,
        ReasonCode::MalformedPacket,
    );
}

#[test]
fn packet_id_zero_is_rejected_where_one_is_required() {
    let publish = frame(0x32, &cat(&[&field(b"t"), &[0, 0]]));
    assert_rejected(
        &publish,
        V3,
        ZeroPacketId(PacketType::Publish),
        ReasonCode::ProtocolError,
    );
    let subscribe = frame(0x82, &cat(&[&[0, 0], &field(b"t"), &[0]]));
    assert_rejected(
        &subscribe,
        V3,
        ZeroPacketId(PacketType::Subscribe),
        ReasonCode::ProtocolError,
    );
    let unsubscribe = frame(0xA2, &cat(&[&[0, 0], &field(b"t")]));
    assert_rejected(
        &unsubscribe,
        V3,
        ZeroPacketId(PacketType::Unsubscribe),
        ReasonCode::ProtocolError,
    );
    assert_rejected(
        &[0x40, 0x02, 0, 0],
        V5,
        ZeroPacketId(PacketType::Puback),
        ReasonCode::ProtocolError,
    );
    assert_rejected(
        &[0x62, 0x02, 0, 0],
        V5,
        ZeroPacketId(PacketType::Pubrel),
        ReasonCode::ProtocolError,
    );
}

#[test]
fn ill_formed_utf8_is_rejected() {
    // A lone continuation byte, an overlong encoding, and an encoded surrogate (U+D800).
    for bad in [&[0x80][..], &[0xC0, 0xAF], &[0xED, 0xA0, 0x80]] {
        let bytes = frame(0x30, &field(&cat(&[b"a/", bad])));
        assert_rejected(&bytes, V3, InvalidUtf8, ReasonCode::MalformedPacket);
    }
}

#[test]
fn strings_containing_u0000_are_rejected() {
    let bytes = frame(0x30, &field(b"a\0b"));
    assert_rejected(&bytes, V3, NullCharacter, ReasonCode::MalformedPacket);
    let client_id = frame(0x10, &cat(&[&field(b"MQTT"), &[4, 2, 0, 60], &field(b"i\0d")]));
    assert_rejected(&client_id, V3, NullCharacter, ReasonCode::MalformedPacket);
}

#[test]
fn topic_names_with_wildcards_or_empty_are_rejected() {
    for topic in [&b"a/+"[..], b"#", b"a/b#"] {
        let bytes = frame(0x30, &field(topic));
        assert_rejected(
            &bytes,
            V3,
            InvalidTopicName(TopicError::WildcardInName),
            ReasonCode::TopicNameInvalid,
        );
    }
    assert_rejected(
        &frame(0x30, &field(b"")),
        V3,
        InvalidTopicName(TopicError::Empty),
        ReasonCode::TopicNameInvalid,
    );
    // In v5 an empty topic is only valid with a topic alias.
    let bytes = frame(0x30, &cat(&[&field(b""), &[0x00]]));
    assert_rejected(
        &bytes,
        V5,
        InvalidTopicName(TopicError::Empty),
        ReasonCode::TopicNameInvalid,
    );
    let will = frame(
        0x10,
        &cat(&[
            &field(b"MQTT"),
            &[4, 0b0000_0110, 0, 60],
            &field(b"id"),
            &field(b"w/+"),
            &field(b"m"),
        ]),
    );
    assert_rejected(
        &will,
        V3,
        InvalidTopicName(TopicError::WildcardInName),
        ReasonCode::TopicNameInvalid,
    );
}

#[test]
fn malformed_topic_filters_are_rejected() {
    let cases = [
        (&b"a/#/b"[..], TopicError::MisplacedWildcard),
        (b"a+", TopicError::MisplacedWildcard),
        (b"a/b#", TopicError::MisplacedWildcard),
        (b"", TopicError::Empty),
        (b"$share/group", TopicError::InvalidSharedSubscription),
        (b"$share//a", TopicError::InvalidSharedSubscription),
        (b"$share/g+/a", TopicError::InvalidSharedSubscription),
        (b"$share/g/", TopicError::InvalidSharedSubscription),
    ];
    for (filter, topic_error) in cases {
        let subscribe = frame(0x82, &cat(&[&[0, 1], &field(filter), &[0]]));
        assert_rejected(
            &subscribe,
            V3,
            InvalidTopicFilter(topic_error),
            ReasonCode::TopicFilterInvalid,
        );
        let unsubscribe = frame(0xA2, &cat(&[&[0, 1], &field(filter)]));
        assert_rejected(
            &unsubscribe,
            V3,
            InvalidTopicFilter(topic_error),
            ReasonCode::TopicFilterInvalid,
        );
    }
}

#[test]
fn subscribe_and_unsubscribe_need_a_filter() {
    assert_rejected(
        &frame(0x82, &[0, 1]),
        V3,
        NoTopicFilters(PacketType::Subscribe),
        ReasonCode::ProtocolError,
    );
    assert_rejected(
        &frame(0xA2, &[0, 1, 0]),
        V5,
        NoTopicFilters(PacketType::Unsubscribe),
        ReasonCode::ProtocolError,
    );
}

#[test]
fn subscription_option_reserved_bits_and_retain_handling_3_are_rejected() {
    let v3_reserved = frame(0x82, &cat(&[&[0, 1], &field(b"t"), &[0b0000_0101]]));
    assert_rejected(
        &v3_reserved,
        V3,
        InvalidSubscriptionOptions(0b101),
        ReasonCode::MalformedPacket,
    );
    let v5_reserved = frame(0x82, &cat(&[&[0, 1, 0], &field(b"t"), &[0b0100_0000]]));
    assert_rejected(
        &v5_reserved,
        V5,
        InvalidSubscriptionOptions(0b0100_0000),
        ReasonCode::MalformedPacket,
    );
    let retain_handling_3 = frame(0x82, &cat(&[&[0, 1, 0], &field(b"t"), &[0b0011_0000]]));
    assert_rejected(
        &retain_handling_3,
        V5,
        InvalidSubscriptionOptions(0b0011_0000),
        ReasonCode::MalformedPacket,
    );
}

#[test]
fn no_local_on_a_shared_subscription_is_rejected() {
    let bytes = frame(0x82, &cat(&[&[0, 1, 0], &field(b"$share/g/t"), &[0b0000_0100]]));
    assert_rejected(&bytes, V5, NoLocalOnSharedSubscription, ReasonCode::ProtocolError);
}

#[test]
fn duplicate_v5_properties_are_rejected() {
    let twice = v5_publish_with_properties(&[0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2]);
    assert_rejected(
        &twice,
        V5,
        DuplicateProperty(PropertyId::MessageExpiryInterval),
        ReasonCode::ProtocolError,
    );
    // User properties may repeat; subscription identifiers may repeat in PUBLISH only.
    let users = v5_publish_with_properties(&cat(&[
        &[0x26],
        &field(b"k"),
        &field(b"v"),
        &[0x26],
        &field(b"k"),
        &field(b"v"),
    ]));
    assert!(decode(&users, V5, MAX).is_ok());
    let subscribe = frame(0x82, &cat(&[&[0, 1, 4, 0x0B, 1, 0x0B, 2], &field(b"t"), &[0]]));
    assert_rejected(
        &subscribe,
        V5,
        DuplicateProperty(PropertyId::SubscriptionIdentifier),
        ReasonCode::ProtocolError,
    );
}

#[test]
fn unknown_and_misplaced_properties_are_rejected() {
    assert_rejected(
        &v5_publish_with_properties(&[0x7F, 0]),
        V5,
        UnknownProperty(0x7F),
        ReasonCode::MalformedPacket,
    );
    let session_expiry_in_publish = v5_publish_with_properties(&[0x11, 0, 0, 0, 1]);
    let expected = PropertyNotAllowed {
        property: PropertyId::SessionExpiryInterval,
        context: "PUBLISH",
    };
    assert_rejected(
        &session_expiry_in_publish,
        V5,
        expected,
        ReasonCode::MalformedPacket,
    );
}

#[test]
fn property_values_out_of_range_are_rejected() {
    let cases: [(&[u8], PropertyId); 4] = [
        (&[0x01, 2], PropertyId::PayloadFormatIndicator),
        (&[0x23, 0, 0], PropertyId::TopicAlias),
        (&[0x0B, 0], PropertyId::SubscriptionIdentifier),
        (&[0x01, 7], PropertyId::PayloadFormatIndicator),
    ];
    for (properties, id) in cases {
        let bytes = v5_publish_with_properties(properties);
        assert_rejected(&bytes, V5, InvalidPropertyValue(id), ReasonCode::ProtocolError);
    }
    let receive_maximum_zero = frame(
        0x10,
        &cat(&[&field(b"MQTT"), &[5, 2, 0, 60, 3, 0x21, 0, 0], &field(b"id")]),
    );
    assert_rejected(
        &receive_maximum_zero,
        V5,
        InvalidPropertyValue(PropertyId::ReceiveMaximum),
        ReasonCode::ProtocolError,
    );
}

#[test]
fn protocol_name_and_level_are_checked() {
    let wrong_name = frame(0x10, &connect_body(b"MQTX", 4, 0x02));
    assert_rejected(&wrong_name, V3, InvalidProtocolName, ReasonCode::MalformedPacket);
    let mqtt_3_1 = frame(0x10, &connect_body(b"MQIsdp", 3, 0x02));
    assert_rejected(
        &mqtt_3_1,
        V3,
        UnsupportedProtocolVersion(3),
        ReasonCode::UnsupportedProtocolVersion,
    );
    let level_6 = frame(0x10, &connect_body(b"MQTT", 6, 0x02));
    assert_rejected(
        &level_6,
        V3,
        UnsupportedProtocolVersion(6),
        ReasonCode::UnsupportedProtocolVersion,
    );
}

#[test]
fn connect_flag_rules_are_checked() {
    let reserved = frame(0x10, &connect_body(b"MQTT", 4, 0x03));
    assert_rejected(&reserved, V3, ConnectReservedFlag, ReasonCode::MalformedPacket);
    let will_retain_without_will = frame(0x10, &connect_body(b"MQTT", 4, 0b0010_0010));
    assert_rejected(
        &will_retain_without_will,
        V3,
        InvalidWillFlags,
        ReasonCode::MalformedPacket,
    );
    let will_qos_without_will = frame(0x10, &connect_body(b"MQTT", 5, 0b0000_1010));
    assert_rejected(
        &will_qos_without_will,
        V5,
        InvalidWillFlags,
        ReasonCode::MalformedPacket,
    );
    let password_only = frame(
        0x10,
        &cat(&[&connect_body(b"MQTT", 4, 0b0100_0010), &field(b"pw")]),
    );
    assert_rejected(
        &password_only,
        V3,
        PasswordWithoutUsername,
        ReasonCode::MalformedPacket,
    );
    // MQTT 5 allows a password without a user name.
    let v5_password_only = frame(
        0x10,
        &cat(&[&connect_body(b"MQTT", 5, 0b0100_0010), &field(b"pw")]),
    );
    assert!(decode(&v5_password_only, V5, MAX).is_ok());
}

#[test]
fn oversized_packets_are_rejected_from_the_header_alone() {
    // Only the fixed header has arrived: the size is refused before any body is buffered.
    let header_only = [0x30, 0x80, 0x10];
    let error = error_of(&header_only, V3);
    assert_eq!(
        error,
        PacketTooLarge {
            size: 2048 + 3,
            max: MAX
        }
    );
    assert_eq!(error.reason_code(), ReasonCode::PacketTooLarge);
    // Exactly at the limit is fine.
    let at_limit = frame(0x30, &cat(&[&field(b"t"), &vec![0; MAX as usize - 3 - 3]]));
    assert_eq!(at_limit.len(), MAX as usize);
    assert!(decode(&at_limit, V3, MAX).is_ok());
}

#[test]
fn truncated_fields_and_trailing_bytes_are_rejected() {
    let topic_longer_than_packet = frame(0x30, &[0x00, 0x09, b'a']);
    assert_rejected(
        &topic_longer_than_packet,
        V3,
        Truncated,
        ReasonCode::MalformedPacket,
    );
    assert_rejected(&frame(0x40, &[0x00]), V3, Truncated, ReasonCode::MalformedPacket);
    assert_rejected(
        &[0xC0, 0x01, 0x00],
        V3,
        TrailingBytes(1),
        ReasonCode::MalformedPacket,
    );
    assert_rejected(
        &frame(0x40, &[0, 1, 0]),
        V3,
        TrailingBytes(1),
        ReasonCode::MalformedPacket,
    );
    let property_length_past_end = frame(0x30, &cat(&[&field(b"t"), &[0x05, 0x01]]));
    assert_rejected(
        &property_length_past_end,
        V5,
        Truncated,
        ReasonCode::MalformedPacket,
    );
}

#[test]
fn reason_codes_not_allowed_in_the_packet_are_rejected() {
    let expected = InvalidReasonCode {
        code: 0x8E,
        context: ReasonContext::PubackPubrec,
    };
    assert_rejected(
        &[0x40, 0x03, 0, 1, 0x8E],
        V5,
        expected,
        ReasonCode::MalformedPacket,
    );
    let expected = InvalidReasonCode {
        code: 0x03,
        context: ReasonContext::Disconnect,
    };
    assert_rejected(&[0xE0, 0x01, 0x03], V5, expected, ReasonCode::MalformedPacket);
    assert_rejected(
        &[0x20, 0x02, 0x00, 0x06],
        V3,
        InvalidReturnCode(6),
        ReasonCode::MalformedPacket,
    );
    assert_rejected(
        &[0x90, 0x03, 0, 1, 0x03],
        V3,
        InvalidReturnCode(3),
        ReasonCode::MalformedPacket,
    );
}

#[test]
fn connack_flag_rules_are_checked() {
    assert_rejected(
        &[0x20, 0x02, 0x02, 0x00],
        V3,
        InvalidConnackFlags(2),
        ReasonCode::MalformedPacket,
    );
    assert_rejected(
        &[0x20, 0x02, 0x01, 0x05],
        V3,
        InvalidConnackFlags(1),
        ReasonCode::MalformedPacket,
    );
}

#[test]
fn incomplete_input_consumes_nothing_and_asks_for_more() {
    let full = frame(0x32, &cat(&[&field(b"a/b"), &[0, 1], b"payload"]));
    for cut in 0..full.len() {
        assert_eq!(decode(&full[..cut], V3, MAX), Ok(None));
    }
    // An unfinished remaining length is also "need more".
    assert_eq!(decode(&[0x30, 0x80, 0x80], V3, MAX), Ok(None));
}

#[test]
fn a_client_refuses_packet_types_only_clients_send() {
    let pingreq = frame(0xC0, &[]);
    let subscribe = frame(0x82, &cat(&[&[0, 1], &field(b"a/b"), &[0]]));
    let unsubscribe = frame(0xA2, &cat(&[&[0, 1], &field(b"a/b")]));
    let connect = frame(0x10, &cat(&[&field(b"MQTT"), &[4, 2, 0, 60], &field(b"id")]));
    let cases = [
        (pingreq, PacketType::Pingreq),
        (subscribe, PacketType::Subscribe),
        (unsubscribe, PacketType::Unsubscribe),
        (connect, PacketType::Connect),
    ];
    for (bytes, packet_type) in cases {
        assert!(
            matches!(decode(&bytes, V3, MAX), Ok(Some(_))),
            "{packet_type:?} is valid for a server"
        );
        let error = decode_from_server(&bytes, V3, MAX).expect_err("a client refuses it");
        assert_eq!(error, NotSentByServer(packet_type));
        assert_eq!(error.reason_code(), ReasonCode::ProtocolError);
    }
    let pingresp = frame(0xD0, &[]);
    assert!(matches!(decode_from_server(&pingresp, V3, MAX), Ok(Some(_))));
}
