//! QoS 1/2 bookkeeping shared by the client and server state machines.
//!
//! A [`SessionFlows`] is the part of an MQTT session that lives in the protocol
//! layer: messages on their way out and QoS 2 packet ids on their way in. It is
//! serde-serializable so a client can keep it in IndexedDB and a broker on disk.

mod aliases;
mod incoming;
mod outgoing;
mod transmit;

pub(crate) use aliases::OutgoingAliases;
pub use incoming::IncomingQos2;
pub use outgoing::{AckOutcome, InflightState, MessageId, OutgoingFlows, OutgoingMessage};
pub(crate) use transmit::{PeerLimits, transmit_queued};

use serde::{Deserialize, Serialize};

/// The protocol-level state of one session, in both directions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionFlows {
    /// Messages this end sends: queued and in flight.
    pub outgoing: OutgoingFlows,
    /// QoS 2 packet ids this end received and has not seen released.
    pub incoming: IncomingQos2,
}
