//! tabmq's browser MQTT client: the WebAssembly half.
//!
//! - [`session`]: every decision, as a sans-io machine tested natively: inputs (socket,
//!   timer, save committed, app request, tab message) in, actions (open, send, save,
//!   deliver, emit, settle, post) out;
//! - [`tabs`]: what tabs of one browser tell each other;
//! - pure parts of the session: [`backoff`], [`takeover`], and the stored
//!   session: one [`record`] per message in a [`session_log`], written when the
//!   [`mirror`] finds it changed;
//! - [`wire`]: the bytes inputs, actions and tab messages cross the JavaScript boundary in.
//!
//! [`Machine`] is all the module exports. The browser side (WebSocket, IndexedDB, Web
//! Locks or a lease, BroadcastChannel, timers, the app's API) is plain JavaScript in
//! `npm/src/`: its driver feeds inputs and runs the actions.

pub mod backoff;
pub mod error;
pub mod id_map;
pub mod mirror;
pub mod options;
pub mod record;
pub mod session;
pub mod session_log;
pub mod tabs;
pub mod takeover;
pub mod wire;

use std::collections::VecDeque;

use wasm_bindgen::prelude::*;

use crate::session::{Input, Session};
use crate::tabs::Role;
use crate::wire::Writer;
use crate::wire::bridge::{read_input, read_options, timestamp, write_action};
use crate::wire::values::write_pending;

/// One client's session machine, driven by `npm/src/driver.js`.
#[wasm_bindgen]
pub struct Machine {
    session: Session,
    /// Inputs the bridge itself produced (a save it could not encode), handled next.
    echoes: VecDeque<Input>,
    now: f64,
}

#[wasm_bindgen]
impl Machine {
    /// A machine for the options `options` (as `npm/src/options.js` wrote them) in the
    /// tab `tab_id`, with the stored device id; `seed` spreads reconnect delays. Throws
    /// on options the driver did not write.
    #[wasm_bindgen(constructor)]
    pub fn new(
        options: &[u8],
        tab_id: String,
        device_id: Option<String>,
        seed: f64,
    ) -> Result<Machine, String> {
        let (options, version) =
            read_options(options).map_err(|error| format!("unreadable options: {error}"))?;
        Ok(Machine {
            session: Session::new(options, version, tab_id, device_id, seed as u64),
            echoes: VecDeque::new(),
            now: 0.0,
        })
    }

    /// Feeds one input at `now` (milliseconds since the epoch); an input that does not
    /// decode (a tab message of another version) is ignored.
    pub fn input(&mut self, input: &[u8], now: f64) {
        self.now = now;
        if let Ok(input) = read_input(input) {
            self.session.handle(input, timestamp(now));
        }
    }

    /// The next action, or `undefined` when there is none.
    pub fn poll(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(echo) = self.echoes.pop_front() {
                self.session.handle(echo, timestamp(self.now));
            }
            let action = self.session.poll_action()?;
            match write_action(&action) {
                Ok(bytes) => return Some(bytes),
                Err((save, error)) => self.echoes.push_back(Input::Saved {
                    save,
                    result: Err(error),
                }),
            }
        }
    }

    /// When to feed the timeout input next, in milliseconds since the epoch; -1 for never.
    pub fn deadline(&self) -> f64 {
        self.session
            .poll_timeout()
            .map_or(-1.0, |at| at.as_millis() as f64)
    }

    /// The device id in use.
    #[wasm_bindgen(js_name = deviceId)]
    pub fn device_id(&self) -> Option<String> {
        self.session.device_id().map(str::to_owned)
    }

    /// The MQTT client id, `{namespace}-{deviceId}`.
    #[wasm_bindgen(js_name = clientId)]
    pub fn client_id(&self) -> Option<String> {
        self.session.client_id()
    }

    /// Whether the connection (this tab's, or the leader's) is up.
    pub fn connected(&self) -> bool {
        self.session.connected()
    }

    /// 0 before the role is known, 1 leader, 2 follower.
    pub fn role(&self) -> u8 {
        match self.session.role() {
            None => 0,
            Some(Role::Leader) => 1,
            Some(Role::Follower) => 2,
        }
    }

    /// The pending list, in the wire format.
    pub fn pending(&self) -> Vec<u8> {
        let mut writer = Writer::default();
        write_pending(&mut writer, &self.session.pending());
        writer.finish()
    }
}

/// Talc instead of Rust's default dlmalloc: smaller in the package, and faster.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
