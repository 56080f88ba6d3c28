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
pub mod js_object;
pub mod message;
pub mod mirror;
pub mod options;
pub mod record;
pub mod session;
pub mod tabs;
pub mod takeover;
