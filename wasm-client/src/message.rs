//! Converting between MQTT messages and the JavaScript objects the app sees.

use js_sys::Uint8Array;
use tabmq_protocol::packet::Publish;
use tabmq_protocol::{Properties, QoS};
use wasm_bindgen::{JsCast, JsValue};

use crate::error::ClientError;
use crate::js_object::{FieldError, JsObject};

/// `publish` options (JavaScript names in camelCase).
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    /// QoS 0, 1 or 2.
    pub qos: u8,
    /// Retained?
    pub retain: bool,
    /// v5 message expiry in seconds.
    pub message_expiry: Option<u32>,
    /// v5 content type.
    pub content_type: Option<String>,
    /// v5 response topic.
    pub response_topic: Option<String>,
    /// v5 correlation data, as text.
    pub correlation_data: Option<String>,
    /// v5 user properties, as `[name, value]` pairs.
    pub user_properties: Vec<(String, String)>,
}

impl PublishOptions {
    /// Reads the options object of `publish` (`undefined` gives the defaults: QoS 0).
    pub fn from_js(value: &JsValue) -> Result<Self, FieldError> {
        let object = JsObject::new(value, "")?;
        Ok(Self {
            qos: object.qos("qos")?.unwrap_or(0),
            retain: object.bool("retain")?.unwrap_or(false),
            message_expiry: object.integer("messageExpiry", u32::MAX, "a whole number of seconds")?,
            content_type: object.string("contentType")?,
            response_topic: object.string("responseTopic")?,
            correlation_data: object.string("correlationData")?,
            user_properties: object.string_pairs("userProperties")?,
        })
    }
}

/// The payload: a string (sent as UTF-8) or a `Uint8Array`.
pub fn payload_bytes(payload: &JsValue) -> Result<Vec<u8>, ClientError> {
    if let Some(text) = payload.as_string() {
        return Ok(text.into_bytes());
    }
    match payload.dyn_ref::<Uint8Array>() {
        Some(bytes) => Ok(bytes.to_vec()),
        None => Err(ClientError::Request(
            "payload must be a string or a Uint8Array".into(),
        )),
    }
}

/// Builds the PUBLISH for `publish(topic, payload, options)`.
pub fn build_publish(
    topic: String,
    payload: Vec<u8>,
    options: PublishOptions,
) -> Result<Publish, ClientError> {
    let qos =
        QoS::from_bits(options.qos).ok_or_else(|| ClientError::Request("qos must be 0, 1 or 2".into()))?;
    let properties = Properties {
        message_expiry_interval: options.message_expiry,
        content_type: options.content_type,
        response_topic: options.response_topic,
        correlation_data: options.correlation_data.map(|data| data.into_bytes().into()),
        user_properties: options.user_properties,
        ..Properties::default()
    };
    Ok(Publish {
        retain: options.retain,
        properties: properties.into(),
        ..Publish::new(topic, payload, qos)
    })
}
