//! Tabs of one browser share one connection.
//!
//! A Web Lock named after the client id elects the leader: the one tab that opens the
//! WebSocket. The other tabs are followers: they send their publishes and
//! subscriptions to the leader over a BroadcastChannel, and the leader sends them
//! every event (messages included), so each tab's app sees each message once. When
//! the leader's tab closes or crashes, the browser releases its lock, the next tab
//! takes it, loads the session the leader kept in IndexedDB and resumes it. Two tabs
//! therefore never connect with the same client id at the same time.

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use web_sys::{BroadcastChannel, MessageEvent};

#[wasm_bindgen]
extern "C" {
    /// `navigator.locks.request(name, callback)`, bound directly to avoid web-sys's
    /// unstable-API flag.
    #[wasm_bindgen(js_namespace = ["navigator", "locks"], js_name = request, catch)]
    fn request_lock(name: &str, callback: &Function) -> Result<Promise, JsValue>;
}

/// Events a leader relays to its followers.
pub const RELAYED_EVENTS: [&str; 8] = [
    "connect",
    "message",
    "disconnect",
    "reconnecting",
    "offline",
    "online",
    "takeover",
    "pending",
];

/// The static name of a relayed event, if `name` is one.
pub fn relayed_event(name: &str) -> Option<&'static str> {
    RELAYED_EVENTS.into_iter().find(|known| *known == name)
}

/// This tab's part in the shared connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Holds the lock and the WebSocket.
    Leader,
    /// Relays through the leader.
    Follower,
}

impl Role {
    /// The name apps see in the `role` event.
    pub fn name(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
        }
    }
}

/// The lock request and the channel of one client id.
pub struct Tabs {
    channel: BroadcastChannel,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_granted: Closure<dyn FnMut(JsValue) -> Promise>,
}

impl Tabs {
    /// Joins the tabs of `client_id`: `on_message` receives what other tabs post, and
    /// `on_leader` runs once this tab holds the lock (for as long as the page lives).
    pub fn join(
        client_id: &str,
        on_message: impl FnMut(JsValue) + 'static,
        on_leader: impl FnOnce() + 'static,
    ) -> Result<Self, JsValue> {
        let channel = BroadcastChannel::new(&format!("tabmq:{client_id}"))?;
        let mut on_message = on_message;
        let on_message =
            Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| on_message(event.data()));
        channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        let mut on_leader = Some(on_leader);
        let on_granted = Closure::<dyn FnMut(JsValue) -> Promise>::new(move |_lock: JsValue| {
            if let Some(on_leader) = on_leader.take() {
                on_leader();
            }
            // Never settles: the lock is held until the page goes away.
            Promise::new(&mut |_, _| {})
        });
        // The returned promise settles when the lock is released, which this page never does.
        let _held = request_lock(&format!("tabmq:{client_id}"), on_granted.as_ref().unchecked_ref())?;
        Ok(Self {
            channel,
            _on_message: on_message,
            _on_granted: on_granted,
        })
    }

    /// Sends `message` to every other tab of this client id.
    pub fn post(&self, message: &JsValue) {
        let _ = self.channel.post_message(message);
    }
}

impl Drop for Tabs {
    fn drop(&mut self) {
        self.channel.set_onmessage(None);
        self.channel.close();
    }
}

/// Reads a string field of a posted object.
pub fn field_str(message: &JsValue, name: &str) -> Option<String> {
    Reflect::get(message, &name.into()).ok()?.as_string()
}

/// Reads any field of a posted object.
pub fn field(message: &JsValue, name: &str) -> JsValue {
    Reflect::get(message, &name.into()).unwrap_or(JsValue::UNDEFINED)
}
