//! Shared helpers of the broker's end-to-end tests.
#![allow(dead_code, unreachable_pub)] // Each test binary uses a different part.

pub mod broker;
pub mod client;
pub mod cpu;
pub mod nats;
pub mod raw;
