//! The values that cross the wire both ways: requests, outcomes, events, received
//! messages, the pending list and the tab messages. Tags and layouts are mirrored by
//! `npm/src/wire.js` (which writes requests and reads the rest for the app).

use tabmq_protocol::packet::{Publish, RetainHandling, Subscription, SubscriptionOptions};
use tabmq_protocol::{Properties, QoS};

use super::{Reader, WireError, Writer};
use crate::error::ClientError;
use crate::session::{Event, Outcome, Received, Reply, Request};
use crate::tabs::{LeaderState, PendingItem, Role, TabMessage};

/// The first byte of every tab message: messages of another format are ignored.
const TAB_FORMAT: u8 = 1;

fn qos(reader: &mut Reader) -> Result<QoS, WireError> {
    QoS::from_bits(reader.u8()?).ok_or(WireError::Invalid)
}

/// A PUBLISH's topic, payload, QoS, retain flag and the properties apps set and see:
/// message expiry, content type, response topic, correlation data, user properties.
pub fn write_publish(writer: &mut Writer, publish: &Publish) {
    let properties = &publish.properties;
    writer
        .str(&publish.topic)
        .bytes(&publish.payload)
        .u8(publish.qos.bits())
        .bool(publish.retain)
        .opt(properties.message_expiry_interval, |w, n| {
            w.n(n.into());
        })
        .opt(properties.content_type.as_deref(), |w, s| {
            w.str(s);
        })
        .opt(properties.response_topic.as_deref(), |w, s| {
            w.str(s);
        })
        .opt(properties.correlation_data.as_deref(), |w, b| {
            w.bytes(b);
        })
        .n(properties.user_properties.len() as u64);
    for (name, value) in &properties.user_properties {
        writer.str(name).str(value);
    }
}

/// The PUBLISH [`write_publish`] wrote.
pub fn read_publish(reader: &mut Reader) -> Result<Publish, WireError> {
    let topic = reader.str()?;
    let payload = reader.bytes()?.to_vec();
    let qos = qos(reader)?;
    let retain = reader.bool()?;
    let message_expiry_interval = reader.opt(Reader::int)?;
    let content_type = reader.opt(Reader::str)?;
    let response_topic = reader.opt(Reader::str)?;
    let correlation_data = reader.opt(|r| r.bytes().map(|b| b.to_vec().into()))?;
    let count: usize = reader.int()?;
    let mut user_properties = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        user_properties.push((reader.str()?, reader.str()?));
    }
    let properties = Properties {
        message_expiry_interval,
        content_type,
        response_topic,
        correlation_data,
        user_properties,
        ..Properties::default()
    };
    Ok(Publish {
        retain,
        properties: properties.into(),
        ..Publish::new(topic, payload, qos)
    })
}

fn write_filters<'a>(writer: &mut Writer, filters: impl ExactSizeIterator<Item = &'a str>) {
    writer.n(filters.len() as u64);
    for filter in filters {
        writer.str(filter);
    }
}

fn read_filters(reader: &mut Reader) -> Result<Vec<String>, WireError> {
    let count: usize = reader.int()?;
    (0..count).map(|_| reader.str()).collect()
}

/// A request: a tag, then its fields.
pub fn write_request(writer: &mut Writer, request: &Request) {
    match request {
        Request::Connect => writer.u8(0),
        Request::Disconnect => writer.u8(1),
        Request::Close => writer.u8(2),
        Request::SetDeviceId(device_id) => writer.u8(3).opt(device_id.as_deref(), |w, s| {
            w.str(s);
        }),
        Request::Publish(publish) => {
            write_publish(writer.u8(4), publish);
            writer
        }
        Request::Subscribe(subscriptions) => {
            write_filters(writer.u8(5), subscriptions.iter().map(|s| s.filter.as_str()));
            let options = subscriptions.first().map(|s| s.options).unwrap_or_default();
            writer
                .u8(options.qos.bits())
                .bool(options.no_local)
                .bool(options.retain_as_published)
                .u8(options.retain_handling as u8)
        }
        Request::Unsubscribe(filters) => {
            write_filters(writer.u8(6), filters.iter().map(String::as_str));
            writer
        }
    };
}

/// The request [`write_request`] wrote.
pub fn read_request(reader: &mut Reader) -> Result<Request, WireError> {
    Ok(match reader.u8()? {
        0 => Request::Connect,
        1 => Request::Disconnect,
        2 => Request::Close,
        3 => Request::SetDeviceId(reader.opt(Reader::str)?),
        4 => Request::Publish(read_publish(reader)?),
        5 => {
            let filters = read_filters(reader)?;
            let options = SubscriptionOptions {
                qos: qos(reader)?,
                no_local: reader.bool()?,
                retain_as_published: reader.bool()?,
                retain_handling: match reader.u8()? {
                    0 => RetainHandling::SendAtSubscribe,
                    1 => RetainHandling::SendIfNew,
                    2 => RetainHandling::DoNotSend,
                    _ => return Err(WireError::Invalid),
                },
            };
            Request::Subscribe(
                filters
                    .into_iter()
                    .map(|filter| Subscription { filter, options })
                    .collect(),
            )
        }
        6 => Request::Unsubscribe(read_filters(reader)?),
        _ => return Err(WireError::Invalid),
    })
}

/// An error as the app sees it: kind, message, and the broker's reason code.
pub fn write_error(writer: &mut Writer, error: &ClientError) {
    writer
        .str(error.kind())
        .str(&error.to_string())
        .opt(error.reason_code(), |w, code| {
            w.n(code.into());
        });
}

/// How a request ended: 0 done, 1 connected (session present), 2 reason codes, 3 an error.
pub fn write_outcome(writer: &mut Writer, outcome: &Outcome) {
    match outcome {
        Ok(Reply::Done) => {
            writer.u8(0);
        }
        Ok(Reply::Connected { session_present }) => {
            writer.u8(1).bool(*session_present);
        }
        Ok(Reply::Reasons(codes)) => {
            writer.u8(2).bytes(codes);
        }
        Err(error) => write_error(writer.u8(3), error),
    }
}

/// The outcome [`write_outcome`] wrote; an error comes back as [`ClientError::Relayed`].
pub fn read_outcome(reader: &mut Reader) -> Result<Outcome, WireError> {
    Ok(match reader.u8()? {
        0 => Ok(Reply::Done),
        1 => Ok(Reply::Connected {
            session_present: reader.bool()?,
        }),
        2 => Ok(Reply::Reasons(reader.bytes()?.to_vec())),
        3 => Err(ClientError::Relayed {
            kind: reader.str()?,
            message: reader.str()?,
            reason_code: reader.opt(Reader::int)?,
        }),
        _ => return Err(WireError::Invalid),
    })
}

/// An event: a tag (its place in [`Event`]'s declaration), then its fields.
pub fn write_event(writer: &mut Writer, event: &Event) {
    match event {
        Event::Connect { session_present } => writer.u8(0).bool(*session_present),
        Event::Disconnect {
            reason,
            reason_code,
            close_code,
            close_reason,
        } => writer
            .u8(1)
            .str(reason)
            .opt(*reason_code, |w, code| {
                w.n(code.into());
            })
            .n((*close_code).into())
            .str(close_reason),
        Event::Reconnecting { attempt, delay_ms } => writer.u8(2).n((*attempt).into()).n((*delay_ms).into()),
        Event::Offline => writer.u8(3),
        Event::Online => writer.u8(4),
        Event::Takeover { confirmed } => writer.u8(5).bool(*confirmed),
        Event::Refused { reason_code } => writer.u8(6).n((*reason_code).into()),
        Event::Pending { count } => writer.u8(7).n((*count).into()),
        Event::Role(role) => writer.u8(8).bool(*role == Role::Follower),
        Event::DeviceIdNeeded => writer.u8(9),
        Event::Error(error) => writer.u8(10).str(error.kind()).str(&error.to_string()),
    };
}

/// An event [`write_event`] wrote, of the kinds a leader relays to its followers.
pub fn read_relayed_event(reader: &mut Reader) -> Result<Event, WireError> {
    Ok(match reader.u8()? {
        0 => Event::Connect {
            session_present: reader.bool()?,
        },
        1 => Event::Disconnect {
            reason: reader.str()?,
            reason_code: reader.opt(Reader::int)?,
            close_code: reader.int()?,
            close_reason: reader.str()?,
        },
        2 => Event::Reconnecting {
            attempt: reader.int()?,
            delay_ms: reader.int()?,
        },
        3 => Event::Offline,
        4 => Event::Online,
        5 => Event::Takeover {
            confirmed: reader.bool()?,
        },
        6 => Event::Refused {
            reason_code: reader.int()?,
        },
        _ => return Err(WireError::Invalid),
    })
}

/// A received message: its id, DUP flag, then the PUBLISH.
pub fn write_received(writer: &mut Writer, received: &Received) {
    writer.str(&received.id).bool(received.publish.dup);
    write_publish(writer, &received.publish);
}

fn read_received(reader: &mut Reader) -> Result<Received, WireError> {
    let id = reader.str()?;
    let dup = reader.bool()?;
    let mut publish = read_publish(reader)?;
    publish.dup = dup;
    Ok(Received { publish, id })
}

const STATES: [&str; 4] = ["queued", "awaiting-puback", "awaiting-pubrec", "awaiting-pubcomp"];

/// The pending list: its length, then topic, QoS, state (index in the names
/// `queued`, `awaiting-puback`, `awaiting-pubrec`, `awaiting-pubcomp`) and size of each.
pub fn write_pending(writer: &mut Writer, items: &[PendingItem]) {
    writer.n(items.len() as u64);
    for item in items {
        let state = STATES.iter().position(|s| *s == item.state).unwrap_or(0);
        writer
            .str(&item.topic)
            .u8(item.qos)
            .u8(state as u8)
            .n(item.bytes.into());
    }
}

fn read_pending(reader: &mut Reader) -> Result<Vec<PendingItem>, WireError> {
    let count: usize = reader.int()?;
    (0..count)
        .map(|_| {
            Ok(PendingItem {
                topic: reader.str()?,
                qos: reader.u8()?,
                state: STATES.get(usize::from(reader.u8()?)).ok_or(WireError::Invalid)?,
                bytes: reader.int()?,
            })
        })
        .collect()
}

/// A tab message as posted on the channel.
pub fn encode_tab_message(message: &TabMessage) -> Vec<u8> {
    let mut writer = Writer::tagged(TAB_FORMAT);
    match message {
        TabMessage::Hello { tab } => {
            writer.u8(0).str(tab);
        }
        TabMessage::Leader(state) => {
            writer
                .u8(1)
                .bool(state.elected)
                .bool(state.connected)
                .bool(state.session_present);
            write_pending(&mut writer, &state.pending);
        }
        TabMessage::Call { tab, call, request } => {
            write_request(writer.u8(2).str(tab).n((*call).into()), request)
        }
        TabMessage::Result { tab, call, outcome } => {
            write_outcome(writer.u8(3).str(tab).n((*call).into()), outcome)
        }
        TabMessage::Event(event) => write_event(writer.u8(4), event),
        TabMessage::Message(received) => write_received(writer.u8(5), received),
        TabMessage::Pending(items) => write_pending(writer.u8(6), items),
    }
    writer.finish()
}

/// The tab message a tab posted; requests other tabs do not relay are refused.
pub fn decode_tab_message(bytes: &[u8]) -> Result<TabMessage, WireError> {
    let mut reader = Reader::new(bytes);
    if reader.u8()? != TAB_FORMAT {
        return Err(WireError::Invalid);
    }
    let message = match reader.u8()? {
        0 => TabMessage::Hello { tab: reader.str()? },
        1 => TabMessage::Leader(LeaderState {
            elected: reader.bool()?,
            connected: reader.bool()?,
            session_present: reader.bool()?,
            pending: read_pending(&mut reader)?,
        }),
        2 => TabMessage::Call {
            tab: reader.str()?,
            call: reader.int()?,
            request: match read_request(&mut reader)? {
                Request::Disconnect | Request::Close | Request::SetDeviceId(_) => {
                    return Err(WireError::Invalid);
                }
                request => request,
            },
        },
        3 => TabMessage::Result {
            tab: reader.str()?,
            call: reader.int()?,
            outcome: read_outcome(&mut reader)?,
        },
        4 => TabMessage::Event(read_relayed_event(&mut reader)?),
        5 => TabMessage::Message(read_received(&mut reader)?),
        6 => TabMessage::Pending(read_pending(&mut reader)?),
        _ => return Err(WireError::Invalid),
    };
    reader.end()?;
    Ok(message)
}
