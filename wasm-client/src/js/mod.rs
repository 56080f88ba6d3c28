//! The browser side: adapters around the session machine, and the one driver that runs it.
//!
//! [`driver`] holds the machine and runs its actions on [`socket`] (WebSocket),
//! [`storage`] (IndexedDB), [`lock`] (Web Locks, or a lease) and [`channel`]
//! (BroadcastChannel); [`convert`] and [`requests`] translate values for the app.

pub mod channel;
pub mod convert;
pub mod driver;
pub mod emitter;
pub mod lock;
pub mod requests;
pub mod socket;
pub mod storage;
