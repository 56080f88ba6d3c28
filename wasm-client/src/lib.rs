//! tabmq's browser MQTT client: the `tabmq-protocol` client state machine, driven by a
//! WebSocket, with its device id and pending QoS state in IndexedDB, exposed to
//! JavaScript through wasm-bindgen as `TabMqClient`.
//!
//! - [`core`]: the state and reactions; [`driver`]: sockets and timers into the core;
//! - [`tabs`] and [`relay`]: one connection per browser, shared by its tabs;
//! - [`options`], [`message`] and [`js_object`]: the app's option objects, read field by field;
//! - [`storage`]: IndexedDB; [`socket`]: the WebSocket; [`events`]: `on(name, handler)`;
//! - pure logic, tested natively: [`backoff`], [`takeover`], [`device_id`], and the stored
//!   session: one [`record`] per message, written when the [`mirror`] finds it changed.

pub mod backoff;
pub mod core;
pub mod device_id;
pub mod driver;
pub mod error;
pub mod events;
pub mod id_map;
pub mod js_object;
pub mod message;
pub mod mirror;
pub mod ops;
pub mod options;
pub mod record;
pub mod relay;
pub mod socket;
pub mod storage;
pub mod tabs;
pub mod takeover;

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Function, Promise};
use tabmq_protocol::Timestamp;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, future_to_promise};

use crate::core::{Core, Notice, Settle, Shared, deliver};
use crate::driver::{Timers, after, open, stop_timers};
use crate::error::ClientError;
use crate::events::object;
use crate::options::Options;
use crate::storage::Storage;

fn js_error(error: ClientError) -> JsValue {
    error.to_js()
}

fn now() -> Timestamp {
    Timestamp::from_millis(crate::core::now_ms() as u64)
}

/// Restores the saved session of the current client id and creates the protocol client.
pub(crate) async fn load_client(shared: &Shared) -> Result<(), ClientError> {
    let (storage, client_id) = {
        let core = shared.borrow();
        (core.storage.clone(), core.client_id())
    };
    let Some(client_id) = client_id else { return Ok(()) };
    let saved = storage.session(&client_id).await?;
    shared.borrow_mut().ensure_client(Some(saved))?;
    Ok(())
}

/// Runs `f` on the core, then delivers its notices and flushes.
fn with_core<T>(shared: &Shared, f: impl FnOnce(&mut Core, &mut Vec<Notice>) -> T) -> T {
    let mut notices = Vec::new();
    let value = f(&mut shared.borrow_mut(), &mut notices);
    after(shared, notices);
    value
}

/// A promise settled later through a [`Settle`] stored in the core.
fn settle_later(register: impl FnOnce(Settle)) -> Promise {
    let mut register = Some(register);
    Promise::new(&mut |resolve, reject| {
        if let Some(register) = register.take() {
            register(Settle { resolve, reject });
        }
    })
}

/// The browser MQTT client.
#[wasm_bindgen]
pub struct TabMqClient {
    shared: Shared,
    _online: Closure<dyn FnMut()>,
    _offline: Closure<dyn FnMut()>,
}

#[wasm_bindgen]
impl TabMqClient {
    /// Opens the namespace's IndexedDB database, reads the device id and restores the
    /// pending session. Does not connect.
    pub async fn create(options: JsValue) -> Result<TabMqClient, JsValue> {
        let options =
            Options::from_js(&options).map_err(|e| js_error(ClientError::InvalidOptions(e.to_string())))?;
        let version = options.validate().map_err(js_error)?;
        let storage = Storage::open(&options.namespace).await.map_err(js_error)?;
        let device_id = storage.device_id().await.map_err(js_error)?;
        let shared: Shared = Rc::new(RefCell::new(Core::new(options, version, storage, device_id)));
        let timers = Timers::new(&shared);
        shared.borrow_mut().timers = Some(timers);
        load_client(&shared).await.map_err(js_error)?;
        if shared.borrow().device_id.is_some() {
            relay::join(&shared).map_err(js_error)?;
        }
        let on_online = {
            let weak = Rc::downgrade(&shared);
            Closure::<dyn FnMut()>::new(move || {
                if let Some(shared) = weak.upgrade() {
                    deliver(&shared, vec![Notice::Event("online", JsValue::UNDEFINED)]);
                    if !shared.borrow().stopped {
                        let _ = open(&shared);
                    }
                }
            })
        };
        let on_offline = {
            let weak = Rc::downgrade(&shared);
            Closure::<dyn FnMut()>::new(move || {
                if let Some(shared) = weak.upgrade() {
                    deliver(&shared, vec![Notice::Event("offline", JsValue::UNDEFINED)]);
                }
            })
        };
        if let Some(window) = web_sys::window() {
            let _ = window.add_event_listener_with_callback("online", on_online.as_ref().unchecked_ref());
            let _ = window.add_event_listener_with_callback("offline", on_offline.as_ref().unchecked_ref());
        }
        Ok(TabMqClient {
            shared,
            _online: on_online,
            _offline: on_offline,
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
        self.shared.borrow().device_id.clone()
    }

    /// The MQTT client id: `{namespace}-{deviceId}`.
    #[wasm_bindgen(js_name = clientId)]
    pub fn client_id(&self) -> Option<String> {
        self.shared.borrow().client_id()
    }

    /// Validates and stores the device id; the next `connect` uses it (and its own
    /// saved session). Disconnects first if connected under another id.
    #[wasm_bindgen(js_name = setDeviceId)]
    pub fn set_device_id(&self, device_id: String) -> Promise {
        let shared = self.shared.clone();
        future_to_promise(async move {
            let device_id = device_id::validate(&device_id).map_err(|e| js_error(e.into()))?;
            let storage = shared.borrow().storage.clone();
            storage.set_device_id(Some(&device_id)).await.map_err(js_error)?;
            if shared.borrow().device_id.as_deref() != Some(device_id.as_str()) {
                Self::drop_connection(&shared);
                shared.borrow_mut().device_id = Some(device_id);
                load_client(&shared).await.map_err(js_error)?;
                relay::join(&shared).map_err(js_error)?;
            }
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Forgets the device id (and disconnects); `connect` then reports `device-id-needed`.
    #[wasm_bindgen(js_name = clearDeviceId)]
    pub fn clear_device_id(&self) -> Promise {
        let shared = self.shared.clone();
        future_to_promise(async move {
            let storage = shared.borrow().storage.clone();
            storage.set_device_id(None).await.map_err(js_error)?;
            Self::drop_connection(&shared);
            shared.borrow_mut().device_id = None;
            Ok(JsValue::UNDEFINED)
        })
    }

    fn drop_connection(shared: &Shared) {
        stop_timers(shared);
        let mut core = shared.borrow_mut();
        core.stopped = true;
        if let Some(client) = core.client.as_mut() {
            client.disconnect(tabmq_protocol::ReasonCode::Success, now());
        }
        core.retired = core.socket.take();
        core.client = None;
        // A new device id is a new client id: its own lock and channel.
        core.tabs = None;
        core.role = None;
    }

    /// Connects (and keeps reconnecting with backoff). Only one tab of the browser
    /// holds the connection (the leader, raised by the `role` event); the others relay
    /// through it. Resolves with `{ sessionPresent }` once connected; rejects with kind
    /// `device-id-needed`, `refused` or `takeover`.
    pub fn connect(&self) -> Promise {
        let shared = self.shared.clone();
        future_to_promise(async move {
            if shared.borrow().client.is_none() {
                load_client(&shared).await.map_err(js_error)?;
            }
            if shared.borrow().client.is_none() {
                let detail = object(&[("kind", "device-id-needed".into())]);
                deliver(&shared, vec![Notice::Event("device-id-needed", detail)]);
                return Err(js_error(ClientError::DeviceIdNeeded));
            }
            // The app wants a connection: this tab opens it whenever it is (or becomes) the leader.
            shared.borrow_mut().stopped = false;
            let connected = {
                let core = shared.borrow();
                match core.role {
                    Some(tabs::Role::Leader) => core.is_connected(),
                    Some(tabs::Role::Follower) => core.leader_connected,
                    None => false,
                }
            };
            if connected {
                return Ok(object(&[("sessionPresent", true.into())]));
            }
            let promise = settle_later(|settle| shared.borrow_mut().connect_waiters.push(settle));
            relay::join(&shared).map_err(js_error)?;
            if shared.borrow().role == Some(tabs::Role::Leader) {
                open(&shared).map_err(js_error)?;
            }
            JsFuture::from(promise).await
        })
    }

    /// Publishes `payload` (string or Uint8Array) to `topic`. Options: `qos`, `retain`,
    /// `messageExpiry`, `contentType`, `responseTopic`, `correlationData`,
    /// `userProperties`. The message is saved in IndexedDB before it is sent (and while
    /// offline); the promise resolves once acknowledged per its QoS.
    pub fn publish(&self, topic: String, payload: JsValue, options: JsValue) -> Promise {
        let payload = match message::payload_bytes(&payload) {
            Ok(bytes) => js_sys::Uint8Array::from(bytes.as_slice()).into(),
            Err(error) => return Promise::reject(&js_error(error)),
        };
        let fields = [
            ("topic", topic.into()),
            ("payload", payload),
            ("options", options),
        ];
        relay::call(&self.shared, "publish", &fields)
    }

    /// Subscribes to one filter or an array of them. Options: `qos`, `noLocal`,
    /// `retainAsPublished`, `retainHandling`. Resolves with the reason code per filter.
    pub fn subscribe(&self, filters: JsValue, options: JsValue) -> Promise {
        relay::call(
            &self.shared,
            "subscribe",
            &[("filters", filters), ("options", options)],
        )
    }

    /// Unsubscribes from one filter or an array of them.
    pub fn unsubscribe(&self, filters: JsValue) -> Promise {
        relay::call(&self.shared, "unsubscribe", &[("filters", filters)])
    }

    /// Disconnects on purpose; pending messages stay saved for the next `connect`.
    pub fn disconnect(&self) {
        with_core(&self.shared, |core, notices| {
            core.stopped = true;
            if let Some(client) = core.client.as_mut() {
                client.disconnect(tabmq_protocol::ReasonCode::Success, now());
            }
            core.process(notices);
        });
        stop_timers(&self.shared);
    }

    /// Messages accepted and not yet acknowledged: `{ topic, qos, state, bytes }`, in flight
    /// first. Each is saved in IndexedDB unless a `storage` error said the save failed (then
    /// it is kept in memory, not sent, and saved again on reconnect). A follower tab reports
    /// the leader's list.
    pub fn pending(&self) -> Array {
        let core = self.shared.borrow();
        match core.role {
            Some(tabs::Role::Follower) => core.leader_pending.clone(),
            _ => core.pending(),
        }
    }

    /// Whether the connection (this tab's, or the leader's for a follower) is up.
    #[wasm_bindgen(getter)]
    pub fn connected(&self) -> bool {
        let core = self.shared.borrow();
        match core.role {
            Some(tabs::Role::Follower) => core.leader_connected,
            _ => core.is_connected(),
        }
    }

    /// `"leader"` (this tab holds the connection), `"follower"`, or `undefined` before `connect`.
    #[wasm_bindgen(getter)]
    pub fn role(&self) -> Option<String> {
        self.shared.borrow().role.map(|role| role.name().to_owned())
    }

    /// Adds an event handler. Events: `connect`, `message`, `disconnect`, `reconnecting`,
    /// `offline`, `online`, `takeover`, `pending`, `role`, `device-id-needed`, `error`.
    pub fn on(&self, event: String, handler: Function) {
        self.shared.borrow_mut().emitter.on(&event, handler);
    }

    /// Removes an event handler.
    pub fn off(&self, event: String, handler: Function) {
        self.shared.borrow_mut().emitter.off(&event, &handler);
    }
}
