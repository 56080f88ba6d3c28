//! Tabs of one browser share one connection: the messages they exchange.
//!
//! A tab lock named after the client id elects the leader: the one tab that opens the
//! WebSocket (a Web Lock; a lease in IndexedDB where Web Locks are missing, see
//! [`crate::lease`]). The other tabs are followers: they send their requests to the
//! leader over a BroadcastChannel, and the leader sends them every event and message,
//! so each tab's app sees each message once. When the leader goes away (closed, crashed,
//! another device id), its lock is released, the next tab takes it, loads the session
//! the leader kept in IndexedDB and resumes it. Two tabs therefore never connect with the
//! same client id at the same time.
//!
//! This module is the conversation as data; [`crate::js::channel`] encodes it for the
//! channel, and the session machine decides what to post and what a message means.

use crate::session::{Event, OpId, Outcome, Received, Request};

/// This tab's part in the shared connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Holds the lock and the WebSocket.
    Leader,
    /// Relays through the leader.
    Follower,
}

impl Role {
    /// The name apps see in the `role` event.
    pub fn name(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
        }
    }
}

/// A message waiting in the leader's session, as `pending()` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingItem {
    /// Its topic.
    pub topic: String,
    /// Its QoS.
    pub qos: u8,
    /// `queued`, `awaiting-puback`, `awaiting-pubrec` or `awaiting-pubcomp`.
    pub state: &'static str,
    /// Payload size.
    pub bytes: u32,
}

/// What the leader tells followers about its connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderState {
    /// Sent by a newly elected leader (followers then post their unsettled calls again).
    pub elected: bool,
    /// Whether the connection is up.
    pub connected: bool,
    /// CONNACK's session present flag of the current connection.
    pub session_present: bool,
    /// What waits in the session.
    pub pending: Vec<PendingItem>,
}

/// One message on the channel of a client id.
#[derive(Debug, Clone, PartialEq)]
pub enum TabMessage {
    /// A tab joined.
    Hello {
        /// Its id.
        tab: String,
    },
    /// The leader's state: on election, and in answer to `Hello`.
    Leader(LeaderState),
    /// A follower's request, for the leader to perform.
    Call {
        /// The follower's tab id.
        tab: String,
        /// The follower's handle of it.
        call: OpId,
        /// What it asks (connect, publish, subscribe, unsubscribe).
        request: Request,
    },
    /// The leader's answer to a call.
    Result {
        /// The follower's tab id.
        tab: String,
        /// The follower's handle.
        call: OpId,
        /// How it ended.
        outcome: Outcome,
    },
    /// An event the leader's app saw.
    Event(Event),
    /// A message the leader received.
    Message(Received),
    /// The leader's pending list changed.
    Pending(Vec<PendingItem>),
}

/// Whether followers see `event` too (the rest concern only the tab that raised it).
pub fn is_relayed(event: &Event) -> bool {
    !matches!(
        event,
        Event::Role(_) | Event::DeviceIdNeeded | Event::Error(_) | Event::Pending { .. }
    )
}
