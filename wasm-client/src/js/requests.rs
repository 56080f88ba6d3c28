//! Reading the arguments of the app's calls into requests, with errors that name what is wrong.

use js_sys::Array;
use tabmq_protocol::QoS;
use tabmq_protocol::packet::{RetainHandling, Subscription, SubscriptionOptions};
use wasm_bindgen::JsValue;

use crate::error::ClientError;
use crate::js_object::JsObject;
use crate::message::{PublishOptions, build_publish, payload_bytes};
use crate::session::Request;

/// `publish(topic, payload, options)`.
pub fn publish(topic: String, payload: &JsValue, options: &JsValue) -> Result<Request, ClientError> {
    let bytes = payload_bytes(payload)?;
    let options = PublishOptions::from_js(options).map_err(|e| ClientError::Request(e.to_string()))?;
    Ok(Request::Publish(build_publish(topic, bytes, options)?))
}

/// `subscribe(filters, options)`.
pub fn subscribe(filters: &JsValue, options: &JsValue) -> Result<Request, ClientError> {
    let options = subscription_options(options)?;
    let subscriptions = filter_list(filters)
        .into_iter()
        .map(|filter| Subscription { filter, options })
        .collect();
    Ok(Request::Subscribe(subscriptions))
}

/// `unsubscribe(filters)`.
pub fn unsubscribe(filters: &JsValue) -> Request {
    Request::Unsubscribe(filter_list(filters))
}

/// The subscription options of `subscribe(filters, options)` (JavaScript names in camelCase).
fn subscription_options(value: &JsValue) -> Result<SubscriptionOptions, ClientError> {
    let read = || {
        let object = JsObject::new(value, "")?;
        let retain_handling = match object.integer("retainHandling", 2, "0, 1 or 2")? {
            Some(1) => RetainHandling::SendIfNew,
            Some(2) => RetainHandling::DoNotSend,
            _ => RetainHandling::SendAtSubscribe,
        };
        Ok(SubscriptionOptions {
            qos: object.qos("qos")?.and_then(QoS::from_bits).unwrap_or_default(),
            no_local: object.bool("noLocal")?.unwrap_or(false),
            retain_as_published: object.bool("retainAsPublished")?.unwrap_or(false),
            retain_handling,
        })
    };
    read().map_err(|error: crate::js_object::FieldError| ClientError::Request(error.to_string()))
}

/// The topic filters of a string or an array of strings.
fn filter_list(filters: &JsValue) -> Vec<String> {
    if let Some(filter) = filters.as_string() {
        return vec![filter];
    }
    Array::from(filters)
        .iter()
        .filter_map(|value| value.as_string())
        .collect()
}
