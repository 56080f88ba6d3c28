//! The conversation between tabs: followers relay calls to the leader, the leader
//! answers them and relays its events (see [`crate::tabs`] for the election).
//!
//! Messages on the channel, all plain objects:
//! - `hello` (a tab joined) → the leader answers `state { connected, items }`;
//! - `leader` (a tab was elected) with the same fields as `state`;
//! - `call { tab, call, op, ... }` (follower → leader) → `result { tab, call, ok, value }`;
//! - `event { name, detail }` (leader → followers): every event its app sees.

use std::rc::Rc;

use js_sys::{Array, Function, Promise};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};

use crate::core::{Notice, Settle, Shared, deliver};
use crate::driver::open;
use crate::error::{ClientError, js_message};
use crate::events::object;
use crate::ops;
use crate::tabs::{Role, Tabs, field, field_str, relayed_event};

/// A call made through [`call`] and not settled yet.
pub struct PendingCall {
    settle: Settle,
    body: JsValue,
    /// Whether it was posted to a leader (it is held while the role is unknown).
    posted: bool,
}

/// Joins the tabs of the current client id, if not yet done.
pub fn join(shared: &Shared) -> Result<(), ClientError> {
    let client_id = {
        let core = shared.borrow();
        if core.tabs.is_some() {
            return Ok(());
        }
        core.client_id().ok_or(ClientError::DeviceIdNeeded)?
    };
    let on_message = {
        let weak = Rc::downgrade(shared);
        move |message: JsValue| {
            if let Some(shared) = weak.upgrade() {
                on_message(&shared, &message);
            }
        }
    };
    let on_leader = {
        let weak = Rc::downgrade(shared);
        move || {
            if let Some(shared) = weak.upgrade() {
                wasm_bindgen_futures::spawn_local(become_leader(shared));
            }
        }
    };
    let tabs = Tabs::join(&client_id, on_message, on_leader)
        .map_err(|e| ClientError::Request(format!("cannot coordinate tabs: {}", js_message(&e))))?;
    tabs.post(&hello(shared));
    shared.borrow_mut().tabs = Some(tabs);
    Ok(())
}

/// The message a tab announces itself with.
fn hello(shared: &Shared) -> JsValue {
    let tab_id = shared.borrow().tab_id.clone();
    object(&[("type", "hello".into()), ("tab", tab_id.into())])
}

fn post(shared: &Shared, message: &JsValue) {
    if let Some(tabs) = &shared.borrow().tabs {
        tabs.post(message);
    }
}

fn state_message(shared: &Shared, kind: &str) -> JsValue {
    let core = shared.borrow();
    object(&[
        ("type", kind.into()),
        ("connected", core.is_connected().into()),
        ("items", core.pending().into()),
    ])
}

/// Records this tab's role; a new follower posts the calls it held meanwhile.
fn set_role(shared: &Shared, role: Role) -> Option<Role> {
    let previous = shared.borrow().role;
    if previous == Some(role) {
        return previous;
    }
    {
        let mut core = shared.borrow_mut();
        let core = &mut *core;
        core.role = Some(role);
        if role == Role::Follower {
            for call in core.calls.values_mut().filter(|call| !call.posted) {
                if let Some(tabs) = &core.tabs {
                    tabs.post(&call.body);
                }
                call.posted = true;
            }
        }
    }
    deliver(
        shared,
        vec![Notice::Event("role", object(&[("role", role.name().into())]))],
    );
    previous
}

/// This tab holds the lock: load the session the previous leader saved, connect, and
/// take over the calls this tab had relayed.
async fn become_leader(shared: Shared) {
    if set_role(&shared, Role::Leader) == Some(Role::Follower) {
        // The session in memory is stale: the old leader kept the real one in IndexedDB.
        shared.borrow_mut().client = None;
        if let Err(error) = crate::load_client(&shared).await {
            let detail = object(&[
                ("kind", error.kind().into()),
                ("message", error.to_string().into()),
            ]);
            deliver(&shared, vec![Notice::Event("error", detail)]);
            return;
        }
    }
    if !shared.borrow().stopped {
        let _ = open(&shared);
    }
    post(&shared, &state_message(&shared, "leader"));
    let calls: Vec<(u32, PendingCall)> = shared.borrow_mut().calls.drain().collect();
    for (_, call) in calls {
        perform(&shared, &call.body, call.settle);
    }
}

/// Runs a relayed (or replayed) call on this tab's connection.
fn perform(shared: &Shared, body: &JsValue, settle: Settle) {
    match field_str(body, "op").as_deref() {
        Some("publish") => {
            let topic = field_str(body, "topic").unwrap_or_default();
            ops::publish(
                shared,
                topic,
                &field(body, "payload"),
                &field(body, "options"),
                settle,
            );
        }
        Some("subscribe") => ops::subscribe(shared, &field(body, "filters"), &field(body, "options"), settle),
        Some("unsubscribe") => ops::unsubscribe(shared, &field(body, "filters"), settle),
        _ => {
            let _ = settle.reject.call1(
                &JsValue::NULL,
                &ClientError::Request("unknown call".into()).to_js(),
            );
        }
    }
}

/// A [`Settle`] whose outcome is posted back to the calling tab.
fn answering(shared: &Shared, tab: String, call: JsValue) -> Settle {
    let reply = |ok: bool| {
        let weak = Rc::downgrade(shared);
        let tab = tab.clone();
        let call = call.clone();
        Closure::once_into_js(move |value: JsValue| {
            if let Some(shared) = weak.upgrade() {
                let message = object(&[
                    ("type", "result".into()),
                    ("tab", tab.into()),
                    ("call", call),
                    ("ok", ok.into()),
                    ("value", value),
                ]);
                post(&shared, &message);
            }
        })
    };
    Settle {
        resolve: reply(true).into(),
        reject: reply(false).into(),
    }
}

fn on_message(shared: &Shared, message: &JsValue) {
    let is_leader = shared.borrow().role == Some(Role::Leader);
    match field_str(message, "type").as_deref() {
        Some("hello") => {
            shared.borrow_mut().followers_seen = true;
            if is_leader {
                post(shared, &state_message(shared, "state"));
            }
        }
        Some(kind @ ("state" | "leader")) if !is_leader => {
            set_role(shared, Role::Follower);
            if kind == "leader" {
                // A new leader may not know of this tab: announce it, so that it relays its pending list.
                post(shared, &hello(shared));
            }
            let connected = field(message, "connected").as_bool().unwrap_or(false);
            let mut core = shared.borrow_mut();
            core.leader_connected = connected;
            core.leader_pending = pending_items(message);
            drop(core);
            if connected {
                resolve_waiters(shared);
            }
        }
        Some("call") if is_leader => {
            shared.borrow_mut().followers_seen = true;
            let tab = field_str(message, "tab").unwrap_or_default();
            let settle = answering(shared, tab, field(message, "call"));
            perform(shared, message, settle);
        }
        Some("result") if !is_leader => {
            if field_str(message, "tab").as_deref() != Some(shared.borrow().tab_id.as_str()) {
                return;
            }
            let call = field(message, "call").as_f64().unwrap_or(-1.0) as u32;
            let Some(PendingCall { settle, .. }) = shared.borrow_mut().calls.remove(call) else {
                return;
            };
            let function = if field(message, "ok").as_bool() == Some(true) {
                settle.resolve
            } else {
                settle.reject
            };
            let _ = function.call1(&JsValue::NULL, &field(message, "value"));
        }
        Some("event") if !is_leader => {
            let Some(name) = field_str(message, "name").as_deref().and_then(relayed_event) else {
                return;
            };
            let detail = field(message, "detail");
            set_role(shared, Role::Follower);
            {
                let mut core = shared.borrow_mut();
                match name {
                    "connect" => core.leader_connected = true,
                    "disconnect" | "takeover" => core.leader_connected = false,
                    "pending" => core.leader_pending = pending_items(&detail),
                    _ => {}
                }
            }
            if name == "connect" {
                resolve_waiters(shared);
            }
            deliver(shared, vec![Notice::Event(name, detail)]);
        }
        _ => {}
    }
}

/// The `items` list the leader relayed (an empty list if it is missing or malformed).
fn pending_items(message: &JsValue) -> Array {
    field(message, "items").dyn_into().unwrap_or_default()
}

fn resolve_waiters(shared: &Shared) {
    let waiters: Vec<Settle> = shared.borrow_mut().connect_waiters.drain(..).collect();
    let detail = object(&[("sessionPresent", true.into())]);
    for waiter in waiters {
        let _ = waiter.resolve.call1(&JsValue::NULL, &detail);
    }
}

/// Every API call goes through here: a leader performs it, a follower posts it to the
/// leader, and a tab that does not know its role yet holds it until it does.
pub fn call(shared: &Shared, op: &str, fields: &[(&str, JsValue)]) -> Promise {
    let mut pairs: Vec<(&str, JsValue)> = vec![("type", "call".into()), ("op", op.into())];
    pairs.extend(fields.iter().cloned());
    let body = object(&pairs);
    let shared = shared.clone();
    let mut body = Some(body);
    Promise::new(&mut |resolve: Function, reject: Function| {
        let Some(body) = body.take() else { return };
        let settle = Settle { resolve, reject };
        let role = shared.borrow().role;
        if role == Some(Role::Leader) || shared.borrow().tabs.is_none() {
            return perform(&shared, &body, settle);
        }
        let mut core = shared.borrow_mut();
        core.next_call += 1;
        let id = core.next_call;
        let _ = js_sys::Reflect::set(&body, &"tab".into(), &core.tab_id.clone().into());
        let _ = js_sys::Reflect::set(&body, &"call".into(), &id.into());
        let posted = role == Some(Role::Follower);
        if let (true, Some(tabs)) = (posted, &core.tabs) {
            tabs.post(&body);
        }
        core.calls.insert(id, PendingCall { settle, body, posted });
    })
}
