//! The tabmq broker: MQTT 3.1.1 and 5.0 over WebSocket and TCP, with durable
//! persistent sessions and session takeover that is reported, not fought.
//!
//! - [`connection`]: one task per socket, running `tabmq_protocol::server::Connection`;
//! - [`router`]: the single owner of sessions, subscriptions and retained messages;
//! - [`store`]: durable storage behind a trait, redb by default, with group commit;
//! - [`listener`]: accept loops, the HTTP side (WebSocket upgrade, `/metrics`, static files);
//! - [`security`]: authentication, the ACL, client-id ownership; [`limits`]: floods;
//! - [`server`]: wiring and graceful shutdown; [`config`] and [`cli`]: settings;
//!   [`passwd`]: the `tabmq passwd` subcommand.

pub mod backup;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod passwd;
pub mod router;
pub mod security;
pub mod server;
pub mod storage_tools;
pub mod store;
