//! tabmq's browser MQTT client.
//!
//! - [`session`]: every decision, as a sans-io machine tested natively: inputs (socket,
//!   timer, save committed, app request, tab message) in, actions (open, send, save,
//!   deliver, emit, settle, post) out;
//! - [`tabs`]: what tabs of one browser tell each other; [`lease`]: the tab lock where
//!   Web Locks are missing;
//! - pure parts of the session: [`backoff`], [`takeover`], [`device_id`], and the stored
//!   session: one [`record`] per message, written when the [`mirror`] finds it changed;
//! - [`js`]: the browser adapters (WebSocket, IndexedDB, Web Locks, BroadcastChannel,
//!   timers) and the one driver that runs the machine; `TabMqClient` is the API.

pub mod backoff;
pub mod device_id;
pub mod error;
pub mod id_map;
pub mod js;
pub mod js_object;
pub mod lease;
pub mod message;
pub mod mirror;
pub mod options;
pub mod record;
pub mod session;
pub mod session_log;
pub mod tabs;
pub mod takeover;

use std::rc::Rc;

use js_sys::{Array, Function, Promise};
use wasm_bindgen::prelude::*;

use crate::error::ClientError;
use crate::js::convert;
use crate::js::driver::Driver;
use crate::js::storage::Storage;
use crate::options::Options;
use crate::session::{Request, Session};

fn rejected(error: ClientError) -> Promise {
    Promise::reject(&convert::error(&error))
}

/// A random id for this tab (its calls and lease are told apart by it).
fn random_tab_id() -> String {
    let n = (js_sys::Math::random() * 2f64.powi(52)) as u64;
    format!("tab-{n:x}")
}

/// The browser MQTT client.
#[wasm_bindgen]
pub struct TabMqClient {
    driver: Driver,
}

#[wasm_bindgen]
impl TabMqClient {
    /// Opens the namespace's IndexedDB database, reads the device id and joins the other
    /// tabs of its client id. Does not connect.
    pub async fn create(options: JsValue) -> Result<TabMqClient, JsValue> {
        let options = Options::from_js(&options)
            .map_err(|e| convert::error(&ClientError::InvalidOptions(e.to_string())))?;
        let version = options.validate().map_err(|e| convert::error(&e))?;
        let storage = Rc::new(
            Storage::open(&options.namespace)
                .await
                .map_err(|e| convert::error(&e))?,
        );
        let device_id = storage.device_id().await.map_err(|e| convert::error(&e))?;
        let tab_id = random_tab_id();
        let seed = (js_sys::Math::random() * 2f64.powi(53)) as u64;
        let url = options.url.clone();
        let session = Session::new(options, version, tab_id.clone(), device_id, seed);
        Ok(TabMqClient {
            driver: Driver::start(session, storage, url, tab_id),
        })
    }

    /// A readable device id to offer the user, such as `sunny-otter-42`.
    #[wasm_bindgen(js_name = suggestDeviceId)]
    pub fn suggest_device_id() -> String {
        device_id::suggest([
            js_sys::Math::random(),
            js_sys::Math::random(),
            js_sys::Math::random(),
        ])
    }

    /// The stored device id, or `undefined` when the user has not chosen one yet.
    #[wasm_bindgen(js_name = deviceId)]
    pub fn device_id(&self) -> Option<String> {
        self.driver.view(|session| session.device_id().map(str::to_owned))
    }

    /// The MQTT client id: `{namespace}-{deviceId}`.
    #[wasm_bindgen(js_name = clientId)]
    pub fn client_id(&self) -> Option<String> {
        self.driver.view(Session::client_id)
    }

    /// Validates and stores the device id, then uses it: the connection of the old id
    /// ends, its tab lock is released, and `connect` connects under the new one.
    #[wasm_bindgen(js_name = setDeviceId)]
    pub fn set_device_id(&self, device_id: String) -> Promise {
        match device_id::validate(&device_id) {
            Ok(device_id) => self.driver.request(Request::SetDeviceId(Some(device_id))),
            Err(error) => rejected(error.into()),
        }
    }

    /// Forgets the device id (and disconnects); `connect` then reports `device-id-needed`.
    #[wasm_bindgen(js_name = clearDeviceId)]
    pub fn clear_device_id(&self) -> Promise {
        self.driver.request(Request::SetDeviceId(None))
    }

    /// Connects (and keeps reconnecting with backoff). Only one tab of the browser holds
    /// the connection (the leader); the others relay through it. Resolves with
    /// `{ sessionPresent }`; rejects with kind `device-id-needed`, `refused` (with
    /// `reasonCode`) or `takeover`.
    pub fn connect(&self) -> Promise {
        self.driver.request(Request::Connect)
    }

    /// Publishes `payload` (string or Uint8Array) to `topic`. Options: `qos`, `retain`,
    /// `messageExpiry`, `contentType`, `responseTopic`, `correlationData`,
    /// `userProperties`. The message is in IndexedDB before it is sent (and while
    /// offline); the promise resolves once acknowledged per its QoS.
    pub fn publish(&self, topic: String, payload: JsValue, options: JsValue) -> Promise {
        match js::requests::publish(topic, &payload, &options) {
            Ok(request) => self.driver.request(request),
            Err(error) => rejected(error),
        }
    }

    /// Subscribes to one filter or an array of them. Options: `qos`, `noLocal`,
    /// `retainAsPublished`, `retainHandling`. Resolves with the reason code per filter.
    pub fn subscribe(&self, filters: JsValue, options: JsValue) -> Promise {
        match js::requests::subscribe(&filters, &options) {
            Ok(request) => self.driver.request(request),
            Err(error) => rejected(error),
        }
    }

    /// Unsubscribes from one filter or an array of them.
    pub fn unsubscribe(&self, filters: JsValue) -> Promise {
        self.driver.request(js::requests::unsubscribe(&filters))
    }

    /// Disconnects on purpose; pending messages stay saved for the next `connect`. In a
    /// follower tab, only this tab stops wanting the shared connection.
    pub fn disconnect(&self) -> Promise {
        self.driver.request(Request::Disconnect)
    }

    /// Disconnects and gives up this tab's part for good: its tab lock is released (the
    /// next tab leads) and later calls are refused.
    pub fn close(&self) -> Promise {
        self.driver.request(Request::Close)
    }

    /// Messages accepted and not yet acknowledged: `{ topic, qos, state, bytes }`, in flight
    /// first. A follower tab reports the leader's list.
    pub fn pending(&self) -> Array {
        convert::pending(&self.driver.view(Session::pending))
    }

    /// Whether the connection (this tab's, or the leader's for a follower) is up.
    #[wasm_bindgen(getter)]
    pub fn connected(&self) -> bool {
        self.driver.view(Session::connected)
    }

    /// `"leader"` (this tab holds the connection), `"follower"`, or `undefined` before it is known.
    #[wasm_bindgen(getter)]
    pub fn role(&self) -> Option<String> {
        self.driver.view(Session::role).map(|role| role.name().to_owned())
    }

    /// Adds an event handler. Events: `connect`, `message`, `disconnect`, `reconnecting`,
    /// `offline`, `online`, `takeover`, `refused`, `pending`, `role`, `device-id-needed`,
    /// `error`. A `message` handler may return a promise: the message is acknowledged,
    /// and the next one handed over, once it settles.
    pub fn on(&self, event: String, handler: Function) {
        self.driver.on(&event, handler);
    }

    /// Removes an event handler.
    pub fn off(&self, event: String, handler: Function) {
        self.driver.off(&event, &handler);
    }
}
