//! The BroadcastChannel of a client id, and [`TabMessage`]s as the plain objects it
//! carries (structured clone keeps plain objects, arrays and `Uint8Array`s). Messages are
//! encoded and decoded here only; a message that does not decode is ignored.

use gloo_events::EventListener;
use js_sys::{Array, Uint8Array};
use tabmq_protocol::codec::{PROTOCOL_MAX_PACKET_SIZE, decode_from_server, encode};
use tabmq_protocol::packet::{Publish, RetainHandling, Subscription, SubscriptionOptions};
use tabmq_protocol::{Packet, PacketId, ProtocolVersion, QoS};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{BroadcastChannel, MessageEvent};

use super::convert::{field, object};
use crate::error::ClientError;
use crate::session::{Event, Outcome, Received, Reply, Request};
use crate::tabs::{LeaderState, PendingItem, TabMessage};

/// The channel `tabmq:{clientId}`, listened to until dropped.
pub struct Channel {
    channel: BroadcastChannel,
    _listener: EventListener,
}

impl Channel {
    /// Opens the channel of `client_id`; `on_message` hears what other tabs post.
    pub fn open(client_id: &str, on_message: impl Fn(TabMessage) + 'static) -> Result<Self, JsValue> {
        let channel = BroadcastChannel::new(&format!("tabmq:{client_id}"))?;
        let listener = EventListener::new(&channel, "message", move |event| {
            if let Some(message) = decode(&event.unchecked_ref::<MessageEvent>().data()) {
                on_message(message);
            }
        });
        Ok(Self {
            channel,
            _listener: listener,
        })
    }

    /// Posts `message` to every other tab of the client id.
    pub fn post(&self, message: &TabMessage) {
        let _ = self.channel.post_message(&encode_message(message));
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.channel.close();
    }
}

fn bytes(value: &JsValue) -> Option<Vec<u8>> {
    value.dyn_ref::<Uint8Array>().map(Uint8Array::to_vec)
}

fn text(value: &JsValue, name: &str) -> Option<String> {
    field(value, name).as_string()
}

fn number(value: &JsValue, name: &str) -> Option<u32> {
    field(value, name).as_f64().map(|n| n as u32)
}

fn flag(value: &JsValue, name: &str) -> bool {
    field(value, name).as_bool() == Some(true)
}

/// A PUBLISH as MQTT 5 bytes (the codec carries every property), its QoS, packet id
/// and DUP beside them.
fn encode_publish(publish: &Publish) -> JsValue {
    let mut bare = publish.clone();
    bare.qos = QoS::AtMostOnce;
    bare.packet_id = None;
    bare.dup = false;
    let mut packet = Vec::new();
    let _ = encode(&Packet::Publish(bare), ProtocolVersion::V5, &mut packet);
    object(&[
        ("packet", Uint8Array::from(packet.as_slice()).into()),
        ("qos", publish.qos.bits().into()),
        ("packetId", publish.packet_id.map_or(0, PacketId::get).into()),
        ("dup", publish.dup.into()),
    ])
}

fn decode_publish(value: &JsValue) -> Option<Publish> {
    let packet = bytes(&field(value, "packet"))?;
    let Ok(Some((Packet::Publish(mut publish), _))) =
        decode_from_server(&packet, ProtocolVersion::V5, PROTOCOL_MAX_PACKET_SIZE)
    else {
        return None;
    };
    publish.qos = QoS::from_bits(number(value, "qos")? as u8)?;
    publish.packet_id = PacketId::new(number(value, "packetId")? as u16);
    publish.dup = flag(value, "dup");
    Some(publish)
}

fn encode_request(request: &Request) -> Vec<(&'static str, JsValue)> {
    match request {
        Request::Connect => vec![("op", "connect".into())],
        Request::Publish(publish) => vec![("op", "publish".into()), ("publish", encode_publish(publish))],
        Request::Subscribe(subscriptions) => {
            let filters: Array = subscriptions
                .iter()
                .map(|s| JsValue::from_str(&s.filter))
                .collect();
            let options = subscriptions.first().map_or(JsValue::UNDEFINED, |s| {
                let o = s.options;
                object(&[
                    ("qos", o.qos.bits().into()),
                    ("noLocal", o.no_local.into()),
                    ("retainAsPublished", o.retain_as_published.into()),
                    ("retainHandling", (o.retain_handling as u8).into()),
                ])
            });
            vec![
                ("op", "subscribe".into()),
                ("filters", filters.into()),
                ("options", options),
            ]
        }
        Request::Unsubscribe(filters) => {
            let filters: Array = filters.iter().map(|f| JsValue::from_str(f)).collect();
            vec![("op", "unsubscribe".into()), ("filters", filters.into())]
        }
        // Only the requests above are relayed.
        Request::Disconnect | Request::SetDeviceId(_) | Request::Close => vec![("op", "none".into())],
    }
}

fn filters(value: &JsValue) -> Vec<String> {
    Array::from(&field(value, "filters"))
        .iter()
        .filter_map(|filter| filter.as_string())
        .collect()
}

fn decode_request(value: &JsValue) -> Option<Request> {
    Some(match text(value, "op")?.as_str() {
        "connect" => Request::Connect,
        "publish" => Request::Publish(decode_publish(&field(value, "publish"))?),
        "subscribe" => {
            let o = field(value, "options");
            let options = SubscriptionOptions {
                qos: QoS::from_bits(number(&o, "qos")? as u8)?,
                no_local: flag(&o, "noLocal"),
                retain_as_published: flag(&o, "retainAsPublished"),
                retain_handling: match number(&o, "retainHandling")? {
                    1 => RetainHandling::SendIfNew,
                    2 => RetainHandling::DoNotSend,
                    _ => RetainHandling::SendAtSubscribe,
                },
            };
            let list = filters(value)
                .into_iter()
                .map(|filter| Subscription { filter, options })
                .collect();
            Request::Subscribe(list)
        }
        "unsubscribe" => Request::Unsubscribe(filters(value)),
        _ => return None,
    })
}

fn encode_outcome(outcome: &Outcome) -> Vec<(&'static str, JsValue)> {
    match outcome {
        Ok(Reply::Done) => vec![("ok", true.into())],
        Ok(Reply::Connected { session_present }) => {
            vec![("ok", true.into()), ("sessionPresent", (*session_present).into())]
        }
        Ok(Reply::Reasons(codes)) => {
            let codes: Array = codes.iter().map(|code| JsValue::from(*code)).collect();
            vec![("ok", true.into()), ("reasons", codes.into())]
        }
        Err(error) => vec![
            ("ok", false.into()),
            ("kind", error.kind().into()),
            ("message", error.to_string().into()),
            (
                "reasonCode",
                error.reason_code().map_or(JsValue::UNDEFINED, JsValue::from),
            ),
        ],
    }
}

fn decode_outcome(value: &JsValue) -> Outcome {
    if !flag(value, "ok") {
        return Err(ClientError::Relayed {
            kind: text(value, "kind").unwrap_or_else(|| "request".into()),
            message: text(value, "message").unwrap_or_default(),
            reason_code: number(value, "reasonCode").map(|code| code as u8),
        });
    }
    let reasons = field(value, "reasons");
    Ok(if Array::is_array(&reasons) {
        Reply::Reasons(
            Array::from(&reasons)
                .iter()
                .filter_map(|c| c.as_f64())
                .map(|c| c as u8)
                .collect(),
        )
    } else if let Some(session_present) = field(value, "sessionPresent").as_bool() {
        Reply::Connected { session_present }
    } else {
        Reply::Done
    })
}

fn encode_pending(items: &[PendingItem]) -> JsValue {
    super::convert::pending(items).into()
}

fn decode_pending(value: &JsValue) -> Vec<PendingItem> {
    Array::from(value)
        .iter()
        .filter_map(|item| {
            Some(PendingItem {
                topic: text(&item, "topic")?,
                qos: number(&item, "qos")? as u8,
                state: match text(&item, "state")?.as_str() {
                    "awaiting-puback" => "awaiting-puback",
                    "awaiting-pubrec" => "awaiting-pubrec",
                    "awaiting-pubcomp" => "awaiting-pubcomp",
                    _ => "queued",
                },
                bytes: number(&item, "bytes")?,
            })
        })
        .collect()
}

fn encode_event(event: &Event) -> Vec<(&'static str, JsValue)> {
    let (name, detail) = super::convert::event(event);
    vec![("name", name.into()), ("detail", detail)]
}

fn decode_event(value: &JsValue) -> Option<Event> {
    let detail = field(value, "detail");
    Some(match text(value, "name")?.as_str() {
        "connect" => Event::Connect {
            session_present: flag(&detail, "sessionPresent"),
        },
        "disconnect" => Event::Disconnect {
            reason: text(&detail, "reason").unwrap_or_default(),
            reason_code: number(&detail, "reasonCode").map(|code| code as u8),
            close_code: number(&detail, "closeCode").unwrap_or(1006) as u16,
            close_reason: text(&detail, "closeReason").unwrap_or_default(),
        },
        "reconnecting" => Event::Reconnecting {
            attempt: number(&detail, "attempt")?,
            delay_ms: number(&detail, "delayMs")?,
        },
        "offline" => Event::Offline,
        "online" => Event::Online,
        "takeover" => Event::Takeover {
            confirmed: flag(&detail, "confirmed"),
        },
        "refused" => Event::Refused {
            reason_code: number(&detail, "reasonCode")? as u8,
        },
        _ => return None,
    })
}

/// `message` as the plain object posted on the channel.
pub fn encode_message(message: &TabMessage) -> JsValue {
    let mut pairs: Vec<(&str, JsValue)> = Vec::new();
    match message {
        TabMessage::Hello { tab } => pairs.extend([("t", "hello".into()), ("tab", tab.as_str().into())]),
        TabMessage::Leader(state) => pairs.extend([
            ("t", "leader".into()),
            ("elected", state.elected.into()),
            ("connected", state.connected.into()),
            ("sessionPresent", state.session_present.into()),
            ("pending", encode_pending(&state.pending)),
        ]),
        TabMessage::Call { tab, call, request } => {
            pairs.extend([
                ("t", "call".into()),
                ("tab", tab.as_str().into()),
                ("call", (*call).into()),
            ]);
            pairs.extend(encode_request(request));
        }
        TabMessage::Result { tab, call, outcome } => {
            pairs.extend([
                ("t", "result".into()),
                ("tab", tab.as_str().into()),
                ("call", (*call).into()),
            ]);
            pairs.extend(encode_outcome(outcome));
        }
        TabMessage::Event(event) => {
            pairs.push(("t", "event".into()));
            pairs.extend(encode_event(event));
        }
        TabMessage::Message(received) => pairs.extend([
            ("t", "message".into()),
            ("id", received.id.as_str().into()),
            ("publish", encode_publish(&received.publish)),
        ]),
        TabMessage::Pending(items) => {
            pairs.extend([("t", "pending".into()), ("pending", encode_pending(items))])
        }
    }
    object(&pairs)
}

/// The message a posted object holds, if it is one.
pub fn decode(value: &JsValue) -> Option<TabMessage> {
    Some(match text(value, "t")?.as_str() {
        "hello" => TabMessage::Hello {
            tab: text(value, "tab")?,
        },
        "leader" => TabMessage::Leader(LeaderState {
            elected: flag(value, "elected"),
            connected: flag(value, "connected"),
            session_present: flag(value, "sessionPresent"),
            pending: decode_pending(&field(value, "pending")),
        }),
        "call" => TabMessage::Call {
            tab: text(value, "tab")?,
            call: number(value, "call")?,
            request: decode_request(value)?,
        },
        "result" => TabMessage::Result {
            tab: text(value, "tab")?,
            call: number(value, "call")?,
            outcome: decode_outcome(value),
        },
        "event" => TabMessage::Event(decode_event(value)?),
        "message" => TabMessage::Message(Received {
            id: text(value, "id")?,
            publish: decode_publish(&field(value, "publish"))?,
        }),
        "pending" => TabMessage::Pending(decode_pending(&field(value, "pending"))),
        _ => return None,
    })
}
