//! The operations a tab performs on its own connection: for the app of a leader tab,
//! and for the calls followers relay to it. Each settles a [`Settle`].

use js_sys::Array;
use serde::Deserialize;
use tabmq_protocol::client::{ConnectionState, RequestError};
use tabmq_protocol::packet::{RetainHandling, Subscription, SubscriptionOptions};
use tabmq_protocol::{PacketId, Properties, QoS, Timestamp};
use wasm_bindgen::JsValue;

use crate::core::{Settle, Shared};
use crate::driver::after;
use crate::error::ClientError;
use crate::message::{PublishOptions, build_publish, payload_bytes};

/// `subscribe` options (JavaScript names in camelCase).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct SubscribeOptions {
    qos: u8,
    no_local: bool,
    retain_as_published: bool,
    /// 0: send retained at subscribe, 1: only if new, 2: never.
    retain_handling: u8,
}

fn now() -> Timestamp {
    Timestamp::from_millis(crate::core::now_ms() as u64)
}

fn reject(settle: Settle, error: ClientError) {
    let _ = settle.reject.call1(&JsValue::NULL, &error.to_js());
}

fn options<T: for<'de> Deserialize<'de> + Default>(value: &JsValue) -> Result<T, ClientError> {
    if value.is_undefined() || value.is_null() {
        return Ok(T::default());
    }
    serde_wasm_bindgen::from_value(value.clone()).map_err(|e| ClientError::Request(e.to_string()))
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
        let publish_options: PublishOptions = options(publish_options)?;
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
    let parsed: SubscribeOptions = match options(subscribe_options) {
        Ok(parsed) => parsed,
        Err(error) => return reject(settle, error),
    };
    let Some(qos) = QoS::from_bits(parsed.qos) else {
        return reject(settle, ClientError::Request("qos must be 0, 1 or 2".into()));
    };
    let retain_handling = match parsed.retain_handling {
        1 => RetainHandling::SendIfNew,
        2 => RetainHandling::DoNotSend,
        _ => RetainHandling::SendAtSubscribe,
    };
    let subscription_options = SubscriptionOptions {
        qos,
        no_local: parsed.no_local,
        retain_as_published: parsed.retain_as_published,
        retain_handling,
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
