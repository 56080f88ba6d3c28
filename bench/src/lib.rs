//! `tabmq-bench`: a load generator for MQTT brokers over WebSocket and TCP, and the
//! side-by-side suite that compares tabmq with Mosquitto and with a bare WebSocket relay.
//!
//! - `suite`: every scenario against every broker, repeated, medians as a Markdown table;
//! - `run`: one scenario with its parameters, against one broker;
//! - `security`: the cost of authentication and of an ACL, side by side (tabmq only);
//! - `cluster`: the cost of cluster mode (one node embedded, one and three on NATS, and
//!   JetStream alone);
//! - `relay`: serve the bare relay (started by the other two as a child process).

pub mod case;
pub mod cluster;
pub mod connections;
pub mod error;
pub mod framing;
pub mod jetstream_alone;
pub mod messaging;
pub mod peer;
pub mod relay;
pub mod security;
pub mod suite;
pub mod target;
pub mod transport;
