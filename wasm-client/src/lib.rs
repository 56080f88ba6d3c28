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
use crate::wire::bridge::{read_input, read_options, timestamp, write_action};
use crate::wire::values::write_pending;
use crate::wire::{Reader, Writer};

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
    /// A machine for `setup`: the options as `npm/src/options.js` wrote them, then this
    /// tab's id, the stored device id (optional) and a random seed that spreads
    /// reconnect delays. `undefined` for bytes the driver did not write.
    pub fn create(setup: &[u8]) -> Option<Machine> {
        let (options, version, mut reader) = read_options(setup).ok()?;
        let tab_id = reader.str().ok()?;
        let device_id = reader.opt(Reader::str).ok()?;
        let seed = reader.n().ok()?;
        reader.end().ok()?;
        Some(Machine {
            session: Session::new(options, version, tab_id, device_id, seed),
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

    /// What the app may read at any time: the device id (optional), the client id
    /// (optional), whether the connection is up, the role (0 unknown, 1 leader, 2
    /// follower) and the pending list.
    pub fn view(&self) -> Vec<u8> {
        let session = &self.session;
        let mut writer = Writer::default();
        writer
            .opt(session.device_id(), |w, id| {
                w.str(id);
            })
            .opt(session.client_id(), |w, id| {
                w.str(&id);
            })
            .bool(session.connected())
            .u8(match session.role() {
                None => 0,
                Some(Role::Leader) => 1,
                Some(Role::Follower) => 2,
            });
        write_pending(&mut writer, &session.pending());
        writer.finish()
    }
}

/// Talc instead of Rust's default dlmalloc: smaller in the package, and faster.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
