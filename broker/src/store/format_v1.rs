//! Reading storage format 1, to migrate it: the format of the builds before the format
//! had a version, which stored the protocol crate's wire types serialized with postcard.
//!
//! The types here are frozen copies of those wire types' serialized shape as of that
//! format, so that the wire types can change without breaking the migration. Nothing here
//! is ever written.

use bytes::Bytes;
use serde::Deserialize;
use tabmq_protocol::packet::{Publish, RetainHandling, SubscriptionOptions, Will};
use tabmq_protocol::{Properties, ProtocolVersion, QoS};

use super::{SessionRecord, StoredMessage, StoredSubscription};

/// `QoS`, by variant index.
#[derive(Deserialize)]
#[allow(clippy::enum_variant_names)] // The names of the type it mirrors.
enum QoSV1 {
    AtMostOnce,
    AtLeastOnce,
    ExactlyOnce,
}

/// `ProtocolVersion`, by variant index.
#[derive(Deserialize)]
enum VersionV1 {
    V311,
    V5,
}

/// `RetainHandling`, by variant index.
#[derive(Deserialize)]
enum RetainHandlingV1 {
    SendAtSubscribe,
    SendIfNew,
    DoNotSend,
}

/// `Properties`: every v5 property, in declaration order.
#[derive(Deserialize)]
struct PropertiesV1 {
    payload_format_indicator: Option<u8>,
    message_expiry_interval: Option<u32>,
    content_type: Option<String>,
    response_topic: Option<String>,
    correlation_data: Option<Bytes>,
    subscription_identifiers: Vec<u32>,
    _session_expiry_interval: Option<u32>,
    _assigned_client_identifier: Option<String>,
    _server_keep_alive: Option<u16>,
    _authentication_method: Option<String>,
    _authentication_data: Option<Bytes>,
    _request_problem_information: Option<u8>,
    will_delay_interval: Option<u32>,
    _request_response_information: Option<u8>,
    _response_information: Option<String>,
    _server_reference: Option<String>,
    _reason_string: Option<String>,
    _receive_maximum: Option<u16>,
    _topic_alias_maximum: Option<u16>,
    _topic_alias: Option<u16>,
    _maximum_qos: Option<u8>,
    _retain_available: Option<u8>,
    user_properties: Vec<(String, String)>,
    _maximum_packet_size: Option<u32>,
    _wildcard_subscription_available: Option<u8>,
    _subscription_identifier_available: Option<u8>,
    _shared_subscription_available: Option<u8>,
}

/// `Publish`.
#[derive(Deserialize)]
struct PublishV1 {
    _dup: bool,
    qos: QoSV1,
    retain: bool,
    topic: String,
    _packet_id: Option<u16>,
    properties: PropertiesV1,
    payload: Bytes,
}

/// `Will`.
#[derive(Deserialize)]
struct WillV1 {
    topic: String,
    payload: Bytes,
    qos: QoSV1,
    retain: bool,
    properties: PropertiesV1,
}

/// `SubscriptionOptions`.
#[derive(Deserialize)]
struct OptionsV1 {
    qos: QoSV1,
    no_local: bool,
    retain_as_published: bool,
    retain_handling: RetainHandlingV1,
}

/// `StoredSubscription`.
#[derive(Deserialize)]
struct SubscriptionV1 {
    filter: String,
    options: OptionsV1,
    identifier: Option<u32>,
}

/// `SessionRecord`.
#[derive(Deserialize)]
struct SessionV1 {
    version: VersionV1,
    expiry_interval: u32,
    expires_at_ms: Option<u64>,
    subscriptions: Vec<SubscriptionV1>,
    pending_will: Option<(WillV1, u64)>,
}

/// `StoredMessage`.
#[derive(Deserialize)]
struct MessageV1 {
    publish: PublishV1,
    expires_at_ms: Option<u64>,
}

impl From<QoSV1> for QoS {
    fn from(qos: QoSV1) -> Self {
        match qos {
            QoSV1::AtMostOnce => QoS::AtMostOnce,
            QoSV1::AtLeastOnce => QoS::AtLeastOnce,
            QoSV1::ExactlyOnce => QoS::ExactlyOnce,
        }
    }
}

impl From<PropertiesV1> for Properties {
    /// Only the properties a stored message or will carries.
    fn from(p: PropertiesV1) -> Self {
        Properties {
            payload_format_indicator: p.payload_format_indicator,
            message_expiry_interval: p.message_expiry_interval,
            content_type: p.content_type,
            response_topic: p.response_topic,
            correlation_data: p.correlation_data,
            subscription_identifiers: p.subscription_identifiers,
            will_delay_interval: p.will_delay_interval,
            user_properties: p.user_properties,
            ..Properties::default()
        }
    }
}

impl From<PublishV1> for Publish {
    fn from(p: PublishV1) -> Self {
        Publish {
            dup: false,
            qos: p.qos.into(),
            retain: p.retain,
            topic: p.topic,
            packet_id: None,
            properties: Properties::from(p.properties).into(),
            payload: p.payload,
        }
    }
}

impl From<WillV1> for Will {
    fn from(w: WillV1) -> Self {
        Will {
            topic: w.topic,
            payload: w.payload,
            qos: w.qos.into(),
            retain: w.retain,
            properties: Properties::from(w.properties).into(),
        }
    }
}

impl From<SubscriptionV1> for StoredSubscription {
    fn from(s: SubscriptionV1) -> Self {
        StoredSubscription {
            filter: s.filter,
            options: SubscriptionOptions {
                qos: s.options.qos.into(),
                no_local: s.options.no_local,
                retain_as_published: s.options.retain_as_published,
                retain_handling: match s.options.retain_handling {
                    RetainHandlingV1::SendAtSubscribe => RetainHandling::SendAtSubscribe,
                    RetainHandlingV1::SendIfNew => RetainHandling::SendIfNew,
                    RetainHandlingV1::DoNotSend => RetainHandling::DoNotSend,
                },
            },
            identifier: s.identifier,
        }
    }
}

/// A session record of format 1.
pub(super) fn session(bytes: &[u8]) -> Result<SessionRecord, postcard::Error> {
    let s: SessionV1 = postcard::from_bytes(bytes)?;
    Ok(SessionRecord {
        version: match s.version {
            VersionV1::V311 => ProtocolVersion::V311,
            VersionV1::V5 => ProtocolVersion::V5,
        },
        expiry_interval: s.expiry_interval,
        expires_at_ms: s.expires_at_ms,
        subscriptions: s.subscriptions.into_iter().map(Into::into).collect(),
        pending_will: s.pending_will.map(|(will, at)| (will.into(), at)),
    })
}

/// A queued or retained message of format 1.
pub(super) fn message(bytes: &[u8]) -> Result<StoredMessage, postcard::Error> {
    let m: MessageV1 = postcard::from_bytes(bytes)?;
    Ok(StoredMessage {
        publish: m.publish.into(),
        expires_at_ms: m.expires_at_ms,
    })
}
