//! proptest strategies producing every packet type, valid for a given protocol version.

use bytes::Bytes;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use tabmq_protocol::packet::*;
use tabmq_protocol::properties::{Properties, PropertyContext, PropertyId};
use tabmq_protocol::reason::{ReasonCode, ReasonContext};
use tabmq_protocol::{PacketId, ProtocolVersion, QoS};

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 _é€-]{0,12}"
}

fn topic_name() -> impl Strategy<Value = String> {
    "[a-z$]{1,4}(/[a-zA-Z0-9é]{0,4}){0,3}"
}

fn topic_filter() -> impl Strategy<Value = String> {
    prop_oneof![
        topic_name(),
        "[a-z]{1,3}/\\+/[a-z]{1,3}",
        "[a-z]{1,3}/#",
        Just("#".to_owned()),
        "\\$share/[a-z]{1,5}/[a-z]{1,3}/\\+",
    ]
}

fn binary() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

fn packet_id() -> impl Strategy<Value = PacketId> {
    (1u16..=u16::MAX).prop_map(|id| PacketId::new(id).expect("non-zero by range"))
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn flag() -> impl Strategy<Value = Option<u8>> {
    option::of(0u8..=1)
}

/// Properties with every field random, then cut down to what `context` allows.
fn properties(context: PropertyContext) -> impl Strategy<Value = Properties> {
    let messages = (
        flag(),
        option::of(any::<u32>()),
        option::of(text()),
        option::of(topic_name()),
        option::of(binary()),
        vec(1u32..=268_435_455, 0..3),
        option::of(any::<u32>()),
        option::of(text()),
        option::of(any::<u16>()),
    );
    let auth_and_info = (
        option::of(text()),
        option::of(binary()),
        flag(),
        option::of(any::<u32>()),
        flag(),
        option::of(text()),
        option::of(text()),
        option::of(text()),
    );
    let limits = (
        option::of(1u16..),
        option::of(any::<u16>()),
        option::of(1u16..),
        flag(),
        flag(),
        vec((text(), text()), 0..3),
        option::of(1u32..),
        flag(),
        flag(),
        flag(),
    );
    (messages, auth_and_info, limits).prop_map(move |(m, a, l)| {
        let mut p = Properties {
            payload_format_indicator: m.0,
            message_expiry_interval: m.1,
            content_type: m.2,
            response_topic: m.3,
            correlation_data: m.4,
            subscription_identifiers: m.5,
            session_expiry_interval: m.6,
            assigned_client_identifier: m.7,
            server_keep_alive: m.8,
            authentication_method: a.0,
            authentication_data: a.1,
            request_problem_information: a.2,
            will_delay_interval: a.3,
            request_response_information: a.4,
            response_information: a.5,
            server_reference: a.6,
            reason_string: a.7,
            receive_maximum: l.0,
            topic_alias_maximum: l.1,
            topic_alias: l.2,
            maximum_qos: l.3,
            retain_available: l.4,
            user_properties: l.5,
            maximum_packet_size: l.6,
            wildcard_subscription_available: l.7,
            subscription_identifier_available: l.8,
            shared_subscription_available: l.9,
        };
        restrict(&mut p, context);
        p
    })
}

/// Clears every property `context` does not allow.
fn restrict(p: &mut Properties, context: PropertyContext) {
    use PropertyId::*;
    fn keep<T>(slot: &mut Option<T>, context: PropertyContext, id: PropertyId) {
        if !context.allows(id) {
            *slot = None;
        }
    }
    keep(&mut p.payload_format_indicator, context, PayloadFormatIndicator);
    keep(&mut p.message_expiry_interval, context, MessageExpiryInterval);
    keep(&mut p.content_type, context, ContentType);
    keep(&mut p.response_topic, context, ResponseTopic);
    keep(&mut p.correlation_data, context, CorrelationData);
    match context {
        PropertyContext::Publish => {}
        PropertyContext::Subscribe => p.subscription_identifiers.truncate(1),
        _ => p.subscription_identifiers.clear(),
    }
    keep(&mut p.session_expiry_interval, context, SessionExpiryInterval);
    keep(
        &mut p.assigned_client_identifier,
        context,
        AssignedClientIdentifier,
    );
    keep(&mut p.server_keep_alive, context, ServerKeepAlive);
    keep(&mut p.authentication_method, context, AuthenticationMethod);
    keep(&mut p.authentication_data, context, AuthenticationData);
    keep(
        &mut p.request_problem_information,
        context,
        RequestProblemInformation,
    );
    keep(&mut p.will_delay_interval, context, WillDelayInterval);
    keep(
        &mut p.request_response_information,
        context,
        RequestResponseInformation,
    );
    keep(&mut p.response_information, context, ResponseInformation);
    keep(&mut p.server_reference, context, ServerReference);
    keep(&mut p.reason_string, context, ReasonString);
    keep(&mut p.receive_maximum, context, ReceiveMaximum);
    keep(&mut p.topic_alias_maximum, context, TopicAliasMaximum);
    keep(&mut p.topic_alias, context, TopicAlias);
    keep(&mut p.maximum_qos, context, MaximumQos);
    keep(&mut p.retain_available, context, RetainAvailable);
    keep(&mut p.maximum_packet_size, context, MaximumPacketSize);
    keep(
        &mut p.wildcard_subscription_available,
        context,
        WildcardSubscriptionAvailable,
    );
    keep(
        &mut p.subscription_identifier_available,
        context,
        SubscriptionIdentifierAvailable,
    );
    keep(
        &mut p.shared_subscription_available,
        context,
        SharedSubscriptionAvailable,
    );
}

/// Properties for v5, nothing for 3.1.1.
fn props_for(version: ProtocolVersion, context: PropertyContext) -> BoxedStrategy<Properties> {
    match version {
        ProtocolVersion::V5 => properties(context).boxed(),
        ProtocolVersion::V311 => Just(Properties::default()).boxed(),
    }
}

fn reason_in(version: ProtocolVersion, context: ReasonContext) -> BoxedStrategy<ReasonCode> {
    let allowed: Vec<ReasonCode> = match version {
        ProtocolVersion::V5 => ReasonCode::ALL
            .iter()
            .copied()
            .filter(|r| r.allowed_in(context))
            .collect(),
        ProtocolVersion::V311 => match context {
            ReasonContext::Connack => (0..=5).filter_map(ReasonCode::from_v311_connack).collect(),
            ReasonContext::Suback => vec![
                ReasonCode::Success,
                ReasonCode::GrantedQos1,
                ReasonCode::GrantedQos2,
                ReasonCode::UnspecifiedError,
            ],
            _ => vec![ReasonCode::Success],
        },
    };
    proptest::sample::select(allowed).boxed()
}

fn will(version: ProtocolVersion) -> impl Strategy<Value = Will> {
    (
        topic_name(),
        binary(),
        qos(),
        any::<bool>(),
        props_for(version, PropertyContext::Will),
    )
        .prop_map(|(topic, payload, qos, retain, properties)| Will {
            topic,
            payload,
            qos,
            retain,
            properties: properties.into(),
        })
}

fn connect(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        any::<bool>(),
        any::<u16>(),
        props_for(version, PropertyContext::Connect),
        text(),
        option::of(will(version)),
        option::of(text()),
        option::of(binary()),
    )
        .prop_map(
            move |(clean_start, keep_alive, properties, client_id, will, username, password)| {
                // 3.1.1 forbids a password without a user name.
                let password = if version == ProtocolVersion::V311 && username.is_none() {
                    None
                } else {
                    password
                };
                Packet::Connect(Box::new(Connect {
                    version,
                    clean_start,
                    keep_alive,
                    properties,
                    client_id,
                    will,
                    username,
                    password,
                }))
            },
        )
}

fn connack(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        any::<bool>(),
        reason_in(version, ReasonContext::Connack),
        props_for(version, PropertyContext::Connack),
    )
        .prop_map(|(present, reason, properties)| {
            let session_present = present && !reason.is_error();
            Packet::Connack(Connack {
                session_present,
                reason,
                properties,
            })
        })
}

fn publish(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        any::<bool>(),
        qos(),
        any::<bool>(),
        topic_name(),
        packet_id(),
        props_for(version, PropertyContext::Publish),
        binary(),
    )
        .prop_map(|(dup, qos, retain, topic, id, properties, payload)| {
            let packet_id = (qos != QoS::AtMostOnce).then_some(id);
            let dup = dup && packet_id.is_some();
            Packet::Publish(Publish {
                dup,
                qos,
                retain,
                topic,
                packet_id,
                properties: properties.into(),
                payload,
            })
        })
}

fn pub_response(version: ProtocolVersion, context: ReasonContext) -> impl Strategy<Value = PubResponse> {
    (
        packet_id(),
        reason_in(version, context),
        props_for(version, PropertyContext::PubResponse),
    )
        .prop_map(|(packet_id, reason, properties)| PubResponse {
            packet_id,
            reason,
            properties,
        })
}

fn subscription(version: ProtocolVersion) -> impl Strategy<Value = Subscription> {
    let retain_handling = prop_oneof![
        Just(RetainHandling::SendAtSubscribe),
        Just(RetainHandling::SendIfNew),
        Just(RetainHandling::DoNotSend)
    ];
    (
        topic_filter(),
        qos(),
        any::<bool>(),
        any::<bool>(),
        retain_handling,
    )
        .prop_map(
            move |(filter, qos, no_local, retain_as_published, retain_handling)| {
                let shared = filter.starts_with("$share/");
                let options = match version {
                    ProtocolVersion::V311 => SubscriptionOptions {
                        qos,
                        ..SubscriptionOptions::default()
                    },
                    ProtocolVersion::V5 => SubscriptionOptions {
                        qos,
                        no_local: no_local && !shared,
                        retain_as_published,
                        retain_handling,
                    },
                };
                Subscription { filter, options }
            },
        )
}

fn subscribe(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        packet_id(),
        props_for(version, PropertyContext::Subscribe),
        vec(subscription(version), 1..4),
    )
        .prop_map(|(packet_id, properties, subscriptions)| {
            Packet::Subscribe(Subscribe {
                packet_id,
                properties,
                subscriptions,
            })
        })
}

fn suback(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        packet_id(),
        props_for(version, PropertyContext::SubResponse),
        vec(reason_in(version, ReasonContext::Suback), 1..4),
    )
        .prop_map(|(packet_id, properties, reasons)| {
            Packet::Suback(Suback {
                packet_id,
                properties,
                reasons,
            })
        })
}

fn unsubscribe(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        packet_id(),
        props_for(version, PropertyContext::Unsubscribe),
        vec(topic_filter(), 1..4),
    )
        .prop_map(|(packet_id, properties, filters)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                properties,
                filters,
            })
        })
}

fn unsuback(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let reasons = match version {
        ProtocolVersion::V5 => vec(reason_in(version, ReasonContext::Unsuback), 1..4).boxed(),
        ProtocolVersion::V311 => Just(Vec::new()).boxed(),
    };
    (
        packet_id(),
        props_for(version, PropertyContext::SubResponse),
        reasons,
    )
        .prop_map(|(packet_id, properties, reasons)| {
            Packet::Unsuback(Unsuback {
                packet_id,
                properties,
                reasons,
            })
        })
}

fn disconnect(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        reason_in(version, ReasonContext::Disconnect),
        props_for(version, PropertyContext::Disconnect),
    )
        .prop_map(|(reason, properties)| Packet::Disconnect(Disconnect { reason, properties }))
}

fn auth() -> impl Strategy<Value = Packet> {
    (
        reason_in(ProtocolVersion::V5, ReasonContext::Auth),
        properties(PropertyContext::Auth),
    )
        .prop_map(|(reason, properties)| Packet::Auth(Auth { reason, properties }))
}

/// Any packet valid in `version`.
pub fn packet(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let v = version;
    let common = prop_oneof![
        connect(v),
        connack(v),
        publish(v),
        pub_response(v, ReasonContext::PubackPubrec).prop_map(Packet::Puback),
        pub_response(v, ReasonContext::PubackPubrec).prop_map(Packet::Pubrec),
        pub_response(v, ReasonContext::PubrelPubcomp).prop_map(Packet::Pubrel),
        pub_response(v, ReasonContext::PubrelPubcomp).prop_map(Packet::Pubcomp),
        subscribe(v),
        suback(v),
        unsubscribe(v),
        unsuback(v),
        Just(Packet::Pingreq),
        Just(Packet::Pingresp),
        disconnect(v),
    ];
    match version {
        ProtocolVersion::V5 => prop_oneof![14 => common, 1 => auth()].boxed(),
        ProtocolVersion::V311 => common.boxed(),
    }
}
