//! Between the machine's values and the JavaScript objects the app sees.

use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::JsValue;

use crate::error::ClientError;
use crate::session::{Event, Received, Reply};
use crate::tabs::PendingItem;

/// A plain JS object from key/value pairs.
pub fn object(pairs: &[(&str, JsValue)]) -> JsValue {
    let object = Object::new();
    for (key, value) in pairs {
        let _ = Reflect::set(&object, &JsValue::from_str(key), value);
    }
    object.into()
}

/// Reads a field of an object (`undefined` if missing).
pub fn field(value: &JsValue, name: &str) -> JsValue {
    Reflect::get(value, &name.into()).unwrap_or(JsValue::UNDEFINED)
}

/// The message of a JavaScript exception, or a fixed text if it has none.
pub fn js_message(error: &JsValue) -> String {
    field(error, "message")
        .as_string()
        .unwrap_or_else(|| "unknown JavaScript error".into())
}

/// A JavaScript `Error` with `kind` (and `reasonCode` for refusals) set.
pub fn error(error: &ClientError) -> JsValue {
    let js = js_sys::Error::new(&error.to_string());
    let _ = Reflect::set(&js, &"kind".into(), &error.kind().into());
    if let Some(code) = error.reason_code() {
        let _ = Reflect::set(&js, &"reasonCode".into(), &code.into());
    }
    js.into()
}

/// What a request resolves with.
pub fn reply(reply: &Reply) -> JsValue {
    match reply {
        Reply::Done => JsValue::UNDEFINED,
        Reply::Connected { session_present } => object(&[("sessionPresent", (*session_present).into())]),
        Reply::Reasons(codes) => codes
            .iter()
            .map(|code| JsValue::from(*code))
            .collect::<Array>()
            .into(),
    }
}

fn optional<T: Into<JsValue>>(value: Option<T>) -> JsValue {
    value.map_or(JsValue::UNDEFINED, Into::into)
}

/// An event's name and the object its handlers receive.
pub fn event(event: &Event) -> (&'static str, JsValue) {
    match event {
        Event::Connect { session_present } => (
            "connect",
            object(&[("sessionPresent", (*session_present).into())]),
        ),
        Event::Disconnect {
            reason,
            reason_code,
            close_code,
            close_reason,
        } => (
            "disconnect",
            object(&[
                ("reason", reason.as_str().into()),
                ("reasonCode", optional(*reason_code)),
                ("closeCode", (*close_code).into()),
                ("closeReason", close_reason.as_str().into()),
            ]),
        ),
        Event::Reconnecting { attempt, delay_ms } => (
            "reconnecting",
            object(&[("attempt", (*attempt).into()), ("delayMs", (*delay_ms).into())]),
        ),
        Event::Offline => ("offline", JsValue::UNDEFINED),
        Event::Online => ("online", JsValue::UNDEFINED),
        Event::Takeover { confirmed } => ("takeover", object(&[("confirmed", (*confirmed).into())])),
        Event::Refused { reason_code } => ("refused", object(&[("reasonCode", (*reason_code).into())])),
        Event::Pending { count } => ("pending", object(&[("count", (*count).into())])),
        Event::Role(role) => ("role", object(&[("role", role.name().into())])),
        Event::DeviceIdNeeded => ("device-id-needed", object(&[("kind", "device-id-needed".into())])),
        Event::Error(failure) => (
            "error",
            object(&[
                ("kind", failure.kind().into()),
                ("message", failure.to_string().into()),
            ]),
        ),
    }
}

/// The object a `message` handler receives.
pub fn message(received: &Received) -> JsValue {
    let publish = &received.publish;
    let properties = &publish.properties;
    let user_properties: Array = properties
        .user_properties
        .iter()
        .map(|(name, value)| JsValue::from(Array::of2(&name.into(), &value.into())))
        .collect();
    object(&[
        ("id", received.id.as_str().into()),
        ("duplicate", publish.dup.into()),
        ("topic", publish.topic.as_str().into()),
        ("payload", Uint8Array::from(publish.payload.as_ref()).into()),
        ("text", String::from_utf8_lossy(&publish.payload).as_ref().into()),
        ("qos", publish.qos.bits().into()),
        ("retain", publish.retain.into()),
        ("contentType", optional(properties.content_type.as_deref())),
        ("responseTopic", optional(properties.response_topic.as_deref())),
        (
            "correlationData",
            optional(
                properties
                    .correlation_data
                    .as_ref()
                    .map(|data| Uint8Array::from(data.as_ref())),
            ),
        ),
        ("userProperties", user_properties.into()),
    ])
}

/// The list `pending()` returns.
pub fn pending(items: &[PendingItem]) -> Array {
    items
        .iter()
        .map(|item| {
            object(&[
                ("topic", item.topic.as_str().into()),
                ("qos", item.qos.into()),
                ("state", item.state.into()),
                ("bytes", item.bytes.into()),
            ])
        })
        .collect()
}
