//! A sans-io implementation of MQTT 3.1.1 and 5.0, shared by the tabmq broker and
//! the tabmq browser client.
//!
//! This crate does no I/O and reads no clock. Bytes go in, packets, events and bytes
//! come out, and time is passed in as a [`Timestamp`]. It therefore builds unchanged
//! for `wasm32-unknown-unknown` and for native targets, and both the client and server
//! state machines are tested in memory, fast, with a fake clock.
//!
//! - [`codec`]: framing, [`codec::decode`] and [`codec::encode`] of every [`Packet`].
//! - [`packet`]: the packet types, one struct per packet for both protocol versions.
//! - [`topic`]: topic name and filter rules, matching, shared subscriptions.
//! - [`client`]: the client session state machine used by the browser client.
//! - [`server`]: the per-connection server state machine used by the broker.
//! - [`flow`]: QoS 1/2 bookkeeping shared by both ends.

pub mod client;
pub mod codec;
pub mod error;
pub mod flow;
pub mod fuzzing;

pub mod packet;
pub mod properties;
pub mod qos;
pub mod reason;
pub mod server;

pub mod time;
pub mod topic;
pub mod version;

pub use error::{ConnectionError, DecodeError, EncodeError, ProtocolViolation};
pub use packet::Packet;
pub use properties::Properties;
pub use qos::{PacketId, QoS};
pub use reason::ReasonCode;
pub use time::Timestamp;
pub use version::ProtocolVersion;
