//! Storage format 2: dedicated storage records (not the wire types), each sealed with a
//! CRC-32 over its table, key and bytes, and the format's version in a `meta` table.
//!
//! Records are postcard, which does not describe itself: a change to any record is a
//! new format version with a migration from the previous one (see `format_v1`).

use bytes::Bytes;
use redb::TableDefinition;
use serde::{Deserialize, Serialize};
use tabmq_protocol::flow::InflightState;
use tabmq_protocol::packet::{Publish, RetainHandling, SubscriptionOptions, Will};
use tabmq_protocol::{PacketId, Properties, ProtocolVersion, QoS};

use super::{SessionRecord, StoredMessage, StoredSubscription};

/// The format this build writes.
pub const FORMAT_VERSION: u64 = 2;

/// Format metadata: `format_version`.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The key of the format version in [`META`].
pub(super) const FORMAT_KEY: &str = "format_version";
pub(super) const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions/2");
pub(super) const MESSAGES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("messages/2");
pub(super) const INFLIGHT: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("inflight/2");
pub(super) const INCOMING: TableDefinition<(&str, u16), &[u8]> = TableDefinition::new("incoming/2");
pub(super) const RETAINED: TableDefinition<&str, &[u8]> = TableDefinition::new("retained/2");

/// A record that failed its checksum or could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The table.
    pub table: &'static str,
    /// The record's key, printable.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.table, self.key, self.reason)
    }
}

/// A record's key as its checksum covers it: the parts, each followed by a separator.
pub(super) struct RecordKey<'a> {
    /// The client id or topic.
    pub name: &'a str,
    /// The sequence number or packet id, if the key has one.
    pub number: Option<u64>,
}

impl<'a> RecordKey<'a> {
    /// The key of a record named `name` alone (a session, a retained topic).
    pub(super) fn named(name: &'a str) -> Self {
        Self { name, number: None }
    }

    /// The key of record `number` under `name` (a message, a packet id).
    pub(super) fn numbered(name: &'a str, number: u64) -> Self {
        Self {
            name,
            number: Some(number),
        }
    }
}

impl RecordKey<'_> {
    fn checksum(&self, table: &str, bytes: &[u8]) -> u32 {
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(table.as_bytes());
        hasher.update(&[0]);
        hasher.update(self.name.as_bytes());
        hasher.update(&[0]);
        if let Some(number) = self.number {
            hasher.update(&number.to_be_bytes());
        }
        hasher.update(bytes);
        hasher.finalize()
    }

    /// The key as a damage report shows it.
    pub(super) fn printable(&self) -> String {
        match self.number {
            Some(number) => format!("{:?} #{number}", self.name),
            None => format!("{:?}", self.name),
        }
    }
}

/// `record` encoded and sealed for `table` under `key`.
pub(super) fn seal<T: Serialize>(table: &str, key: &RecordKey<'_>, record: &T) -> Vec<u8> {
    // Serializing plain data into a Vec cannot fail.
    let mut bytes = postcard::to_allocvec(record).unwrap_or_default();
    let checksum = key.checksum(table, &bytes);
    bytes.extend_from_slice(&checksum.to_le_bytes());
    bytes
}

/// The record sealed in `value`, if its checksum holds and it decodes.
pub(super) fn open<T: for<'de> Deserialize<'de>>(
    table: &'static str,
    key: &RecordKey<'_>,
    value: &[u8],
) -> Result<T, Damage> {
    let damage = |reason: String| Damage {
        table,
        key: key.printable(),
        reason,
    };
    let Some((bytes, stored)) = value.split_last_chunk::<4>() else {
        return Err(damage(format!("{} bytes, shorter than a checksum", value.len())));
    };
    if key.checksum(table, bytes) != u32::from_le_bytes(*stored) {
        return Err(damage("checksum mismatch".into()));
    }
    postcard::from_bytes(bytes).map_err(|error| damage(format!("undecodable: {error}")))
}

/// The v5 properties a stored message or will keeps.
#[derive(Debug, Default, Serialize, Deserialize)]
struct PropertiesRecord {
    payload_format_indicator: Option<u8>,
    message_expiry_interval: Option<u32>,
    content_type: Option<String>,
    response_topic: Option<String>,
    correlation_data: Option<Bytes>,
    subscription_identifiers: Vec<u32>,
    user_properties: Vec<(String, String)>,
    will_delay_interval: Option<u32>,
}

impl From<&Properties> for PropertiesRecord {
    fn from(p: &Properties) -> Self {
        Self {
            payload_format_indicator: p.payload_format_indicator,
            message_expiry_interval: p.message_expiry_interval,
            content_type: p.content_type.clone(),
            response_topic: p.response_topic.clone(),
            correlation_data: p.correlation_data.clone(),
            subscription_identifiers: p.subscription_identifiers.clone(),
            user_properties: p.user_properties.clone(),
            will_delay_interval: p.will_delay_interval,
        }
    }
}

impl From<PropertiesRecord> for Properties {
    fn from(p: PropertiesRecord) -> Self {
        Properties {
            payload_format_indicator: p.payload_format_indicator,
            message_expiry_interval: p.message_expiry_interval,
            content_type: p.content_type,
            response_topic: p.response_topic,
            correlation_data: p.correlation_data,
            subscription_identifiers: p.subscription_identifiers,
            user_properties: p.user_properties,
            will_delay_interval: p.will_delay_interval,
            ..Properties::default()
        }
    }
}

fn qos_from(byte: u8) -> Result<QoS, postcard::Error> {
    QoS::from_bits(byte).ok_or(postcard::Error::DeserializeBadEnum)
}

/// A queued or retained message.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct MessageRecord {
    topic: String,
    payload: Bytes,
    qos: u8,
    retain: bool,
    expires_at_ms: Option<u64>,
    properties: PropertiesRecord,
}

impl From<&StoredMessage> for MessageRecord {
    fn from(m: &StoredMessage) -> Self {
        Self {
            topic: m.publish.topic.clone(),
            payload: m.publish.payload.clone(),
            qos: m.publish.qos as u8,
            retain: m.publish.retain,
            expires_at_ms: m.expires_at_ms,
            properties: (&*m.publish.properties).into(),
        }
    }
}

impl TryFrom<MessageRecord> for StoredMessage {
    type Error = postcard::Error;

    fn try_from(m: MessageRecord) -> Result<Self, Self::Error> {
        let publish = Publish {
            retain: m.retain,
            properties: Properties::from(m.properties).into(),
            ..Publish::new(m.topic, m.payload, qos_from(m.qos)?)
        };
        Ok(StoredMessage {
            publish,
            expires_at_ms: m.expires_at_ms,
        })
    }
}

/// `message` as bytes for another cluster node: its storage record, without a seal.
pub fn message_bytes(message: &StoredMessage) -> Vec<u8> {
    // Serializing plain data into a Vec cannot fail.
    postcard::to_allocvec(&MessageRecord::from(message)).unwrap_or_default()
}

/// The message in bytes from [`message_bytes`], if they decode.
pub fn message_from_bytes(bytes: &[u8]) -> Option<StoredMessage> {
    let record: MessageRecord = postcard::from_bytes(bytes).ok()?;
    record.try_into().ok()
}

/// A subscription of a session.
#[derive(Debug, Serialize, Deserialize)]
struct SubscriptionRecord {
    filter: String,
    qos: u8,
    no_local: bool,
    retain_as_published: bool,
    retain_handling: u8,
    identifier: Option<u32>,
}

/// A will waiting for its delay.
#[derive(Debug, Serialize, Deserialize)]
struct WillRecord {
    topic: String,
    payload: Bytes,
    qos: u8,
    retain: bool,
    properties: PropertiesRecord,
    publish_at_ms: u64,
}

/// A session's lasting attributes.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SessionRecordV2 {
    protocol_level: u8,
    expiry_interval: u32,
    expires_at_ms: Option<u64>,
    subscriptions: Vec<SubscriptionRecord>,
    pending_will: Option<WillRecord>,
}

impl From<&SessionRecord> for SessionRecordV2 {
    fn from(s: &SessionRecord) -> Self {
        Self {
            protocol_level: match s.version {
                ProtocolVersion::V311 => 4,
                ProtocolVersion::V5 => 5,
            },
            expiry_interval: s.expiry_interval,
            expires_at_ms: s.expires_at_ms,
            subscriptions: s
                .subscriptions
                .iter()
                .map(|sub| SubscriptionRecord {
                    filter: sub.filter.clone(),
                    qos: sub.options.qos as u8,
                    no_local: sub.options.no_local,
                    retain_as_published: sub.options.retain_as_published,
                    retain_handling: sub.options.retain_handling as u8,
                    identifier: sub.identifier,
                })
                .collect(),
            pending_will: s.pending_will.as_ref().map(|(will, at)| WillRecord {
                topic: will.topic.clone(),
                payload: will.payload.clone(),
                qos: will.qos as u8,
                retain: will.retain,
                properties: (&*will.properties).into(),
                publish_at_ms: *at,
            }),
        }
    }
}

impl TryFrom<SessionRecordV2> for SessionRecord {
    type Error = postcard::Error;

    fn try_from(s: SessionRecordV2) -> Result<Self, Self::Error> {
        let version = match s.protocol_level {
            4 => ProtocolVersion::V311,
            5 => ProtocolVersion::V5,
            _ => return Err(postcard::Error::DeserializeBadEnum),
        };
        let subscriptions = s
            .subscriptions
            .into_iter()
            .map(|sub| {
                let retain_handling = match sub.retain_handling {
                    0 => RetainHandling::SendAtSubscribe,
                    1 => RetainHandling::SendIfNew,
                    2 => RetainHandling::DoNotSend,
                    _ => return Err(postcard::Error::DeserializeBadEnum),
                };
                Ok(StoredSubscription {
                    filter: sub.filter,
                    options: SubscriptionOptions {
                        qos: qos_from(sub.qos)?,
                        no_local: sub.no_local,
                        retain_as_published: sub.retain_as_published,
                        retain_handling,
                    },
                    identifier: sub.identifier,
                })
            })
            .collect::<Result<_, _>>()?;
        let pending_will = match s.pending_will {
            Some(w) => Some((
                Will {
                    topic: w.topic,
                    payload: w.payload,
                    qos: qos_from(w.qos)?,
                    retain: w.retain,
                    properties: Properties::from(w.properties).into(),
                },
                w.publish_at_ms,
            )),
            None => None,
        };
        Ok(SessionRecord {
            version,
            expiry_interval: s.expiry_interval,
            expires_at_ms: s.expires_at_ms,
            subscriptions,
            pending_will,
        })
    }
}

/// The packet id and handshake state of a message in flight.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct InflightRecord {
    packet_id: u16,
    state: u8,
}

impl InflightRecord {
    /// The record of a message sent with `packet_id`, now in `state`.
    pub(super) fn new(packet_id: PacketId, state: InflightState) -> Self {
        let state = match state {
            InflightState::AwaitingPuback => 0,
            InflightState::AwaitingPubrec => 1,
            InflightState::AwaitingPubcomp => 2,
        };
        Self {
            packet_id: packet_id.get(),
            state,
        }
    }

    /// A record of format 1, which stored the same two numbers as a tuple.
    pub(super) fn from_v1(packet_id: u16, state: u8) -> Self {
        Self { packet_id, state }
    }

    /// The packet id and state, if both are valid.
    pub(super) fn parts(&self) -> Option<(PacketId, InflightState)> {
        let state = match self.state {
            0 => InflightState::AwaitingPuback,
            1 => InflightState::AwaitingPubrec,
            2 => InflightState::AwaitingPubcomp,
            _ => return None,
        };
        Some((PacketId::new(self.packet_id)?, state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_record_opens_only_under_its_own_table_and_key() {
        let key = RecordKey {
            name: "client",
            number: Some(7),
        };
        let sealed = seal("t", &key, &(1u8, "x".to_owned()));
        assert_eq!(open::<(u8, String)>("t", &key, &sealed), Ok((1, "x".into())));
        let other = RecordKey {
            name: "client",
            number: Some(8),
        };
        assert!(open::<(u8, String)>("t", &other, &sealed).is_err(), "another key");
        assert!(open::<(u8, String)>("u", &key, &sealed).is_err(), "another table");
        for at in 0..sealed.len() {
            let mut flipped = sealed.clone();
            flipped[at] ^= 0x10;
            let damage = open::<(u8, String)>("t", &key, &flipped).expect_err("a flipped byte");
            assert_eq!(damage.reason, "checksum mismatch");
        }
        assert!(
            open::<(u8, String)>("t", &key, &sealed[..3]).is_err(),
            "truncated"
        );
    }
}
