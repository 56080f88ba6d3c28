//! The operations a tab performs on its own connection: for the app of a leader tab,
//! and for the calls followers relay to it. Each settles a [`Settle`].

use js_sys::Array;
use tabmq_protocol::client::{ConnectionState, RequestError};
use tabmq_protocol::packet::{RetainHandling, Subscription, SubscriptionOptions};
use tabmq_protocol::{PacketId, Properties, QoS, Timestamp};
use wasm_bindgen::JsValue;

use crate::core::{Settle, Shared};
use crate::driver::after;
use crate::error::ClientError;
use crate::js_object::JsObject;
use crate::message::{PublishOptions, build_publish, payload_bytes};

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

fn now() -> Timestamp {
    Timestamp::from_millis(crate::core::now_ms() as u64)
}

fn reject(settle: Settle, error: ClientError) {
    let _ = settle.reject.call1(&JsValue::NULL, &error.to_js());
}

/// The topic filters of a string or an array of strings.
pub fn filter_list(filters: &JsValue) -> Vec<String> {
    if let Some(filter) = filters.as_string() {
        return vec![filter];
    }
    Array::from(filters)
        .iter()
        .filter_map(|value| value.as_string())
        .collect()
}

/// Publishes on this tab's connection.
pub fn publish(shared: &Shared, topic: String, payload: &JsValue, publish_options: &JsValue, settle: Settle) {
    let request = payload_bytes(payload).and_then(|bytes| {
        let publish_options =
            PublishOptions::from_js(publish_options).map_err(|e| ClientError::Request(e.to_string()))?;
        build_publish(topic, bytes, publish_options)
    });
    let publish = match request {
        Ok(publish) => publish,
        Err(error) => return reject(settle, error),
    };
    let mut notices = Vec::new();
    {
        let mut core = shared.borrow_mut();
        let Some(client) = core.client.as_mut() else {
            drop(core);
            return reject(settle, ClientError::DeviceIdNeeded);
        };
        match client.publish(publish, now()) {
            Ok(id) => {
                core.publishes.insert(id, settle);
            }
            Err(error) => {
                drop(core);
                return reject(settle, ClientError::Request(error.to_string()));
            }
        }
        core.process(&mut notices);
    }
    after(shared, notices);
}

/// Subscribes on this tab's connection.
pub fn subscribe(shared: &Shared, filters: &JsValue, subscribe_options: &JsValue, settle: Settle) {
    let subscription_options = match subscription_options(subscribe_options) {
        Ok(options) => options,
        Err(error) => return reject(settle, error),
    };
    let subscriptions = filter_list(filters)
        .into_iter()
        .map(|filter| Subscription {
            filter,
            options: subscription_options,
        })
        .collect();
    request(shared, settle, |client, time| {
        client.subscribe(subscriptions, Properties::default(), time)
    });
}

/// Unsubscribes on this tab's connection.
pub fn unsubscribe(shared: &Shared, filters: &JsValue, settle: Settle) {
    let filters = filter_list(filters);
    request(shared, settle, |client, time| client.unsubscribe(filters, time));
}

fn request(
    shared: &Shared,
    settle: Settle,
    send: impl FnOnce(&mut tabmq_protocol::client::Client, Timestamp) -> Result<PacketId, RequestError>,
) {
    let mut notices = Vec::new();
    {
        let mut core = shared.borrow_mut();
        let Some(client) = core
            .client
            .as_mut()
            .filter(|c| c.state() == ConnectionState::Connected)
        else {
            drop(core);
            return reject(settle, ClientError::Request("not connected".into()));
        };
        match send(client, now()) {
            Ok(packet_id) => {
                core.requests.insert(packet_id.get(), settle);
            }
            Err(error) => {
                drop(core);
                return reject(settle, ClientError::Request(error.to_string()));
            }
        }
        core.process(&mut notices);
    }
    after(shared, notices);
}
