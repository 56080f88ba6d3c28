//! The client's session machine: every decision of the browser client, with no
//! JavaScript in it, tested natively.
//!
//! In the shape of the protocol crate's machines (and quinn-proto): the driver feeds an
//! [`Input`] with [`Session::handle`], then drains [`Session::poll_action`] and runs each
//! [`Action`]; [`Session::poll_timeout`] says when to feed [`Input::Timeout`]. Nothing
//! here waits: a save, a socket, a lock or an app handler is an action out and an input
//! back, so no other input can ever meet half-done state.
//!
//! - [`inbox`]: received messages, handed to the app before they are acknowledged;
//! - [`saves`]: bytes held until the state they depend on is in IndexedDB;
//! - [`requests`]: the app's requests, performed here or relayed to the leader;
//! - [`identity`]: the device id, and loading the session of a client id;
//! - [`connection`]: opening, closing, reconnecting, takeovers and refusals;
//! - [`tab_relay`]: leader and follower tabs.

pub mod connection;
pub mod identity;
pub mod inbox;
mod io;
pub mod requests;
pub mod saves;
pub mod tab_relay;

pub use io::{Action, DeliveryId, Event, Input, OpId, Outcome, Received, Reply, Request, SaveId, SocketId};

use std::collections::VecDeque;

use tabmq_protocol::client::{Client, ClientEvent, ConnectionState};
use tabmq_protocol::flow::{InflightState, MessageId};
use tabmq_protocol::{ProtocolVersion, Timestamp};

use crate::backoff::Backoff;
use crate::error::ClientError;
use crate::id_map::IdMap;
use crate::options::Options;
use crate::tabs::{PendingItem, Role, TabMessage, is_relayed};
use crate::takeover::TakeoverDetector;
use connection::Link;
use inbox::Inbox;
use saves::Saves;
use tab_relay::FollowerView;

/// Who asked for something, and so who hears how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Caller {
    /// This tab's app.
    App(OpId),
    /// A follower tab, through the channel.
    Tab {
        /// Its tab id.
        tab: String,
        /// Its handle.
        call: OpId,
    },
}

/// The browser client's state machine.
#[derive(Debug)]
pub struct Session {
    options: Options,
    version: ProtocolVersion,
    tab_id: String,
    device_id: Option<String>,
    /// A device id change waiting for its store: who asked, and the new id.
    device_change: Option<(OpId, Option<String>)>,
    /// Closed for good (`close()`).
    closed: bool,
    /// This tab's app wants a connection: it called `connect` and has not disconnected or
    /// been stopped since. A tab that becomes leader connects if its app wants it.
    app_wants: bool,
    /// Joined the tabs of the current client id.
    joined: bool,
    role: Option<Role>,
    /// The protocol client of a leader, once its session is loaded.
    client: Option<Client>,
    /// Requests that wait for the role to be known or the session to be loaded.
    waiting: Vec<(Caller, Request)>,
    link: Link,
    saves: Saves,
    inbox: Inbox,
    publishes: IdMap<MessageId, Caller>,
    requests: IdMap<u16, Caller>,
    connect_waiters: Vec<Caller>,
    follower: FollowerView,
    /// Whether a follower announced itself: only then are events relayed.
    followers_seen: bool,
    actions: VecDeque<Action>,
    now: Timestamp,
}

impl Session {
    /// A client of `options` in the tab `tab_id`, with the stored `device_id`; `seed`
    /// (random) spreads the reconnect delays of clients that dropped together.
    pub fn new(
        options: Options,
        version: ProtocolVersion,
        tab_id: String,
        device_id: Option<String>,
        seed: u64,
    ) -> Self {
        let backoff = Backoff::new(options.backoff);
        let mut session = Self {
            link: Link::new(backoff, TakeoverDetector::new(3000.0, 3), seed),
            options,
            version,
            tab_id,
            device_id: None,
            device_change: None,
            closed: false,
            app_wants: false,
            joined: false,
            role: None,
            client: None,
            waiting: Vec::new(),
            saves: Saves::default(),
            inbox: Inbox::default(),
            publishes: IdMap::default(),
            requests: IdMap::default(),
            connect_waiters: Vec::new(),
            follower: FollowerView::default(),
            followers_seen: false,
            actions: VecDeque::new(),
            now: Timestamp::default(),
        };
        session.use_device_id(device_id);
        session
    }

    /// The client id: `{namespace}-{deviceId}`, or `{namespace}-{user}-{deviceId}` for an
    /// app with a signed-in user, once a device id is set.
    pub fn client_id(&self) -> Option<String> {
        let device_id = self.device_id.as_ref()?;
        let namespace = &self.options.namespace;
        Some(match &self.options.user {
            Some(user) => format!("{namespace}-{user}-{device_id}"),
            None => format!("{namespace}-{device_id}"),
        })
    }

    /// The device id in use.
    pub fn device_id(&self) -> Option<&str> {
        self.device_id.as_deref()
    }

    /// This tab's role, once known.
    pub fn role(&self) -> Option<Role> {
        self.role
    }

    /// Whether the connection (this tab's, or the leader's for a follower) is up.
    pub fn connected(&self) -> bool {
        match self.role {
            Some(Role::Follower) => self.follower.connected,
            _ => self.client_connected(),
        }
    }

    fn client_connected(&self) -> bool {
        self.client
            .as_ref()
            .is_some_and(|client| client.state() == ConnectionState::Connected)
    }

    /// Messages accepted and not yet acknowledged, in flight first (a follower: the leader's).
    pub fn pending(&self) -> Vec<PendingItem> {
        if self.role == Some(Role::Follower) {
            return self.follower.pending.clone();
        }
        let Some(client) = &self.client else {
            return Vec::new();
        };
        client
            .session()
            .outgoing
            .iter()
            .map(|message| PendingItem {
                topic: message.publish.topic.clone(),
                qos: message.publish.qos.bits(),
                state: match message.state {
                    None => "queued",
                    Some(InflightState::AwaitingPuback) => "awaiting-puback",
                    Some(InflightState::AwaitingPubrec) => "awaiting-pubrec",
                    Some(InflightState::AwaitingPubcomp) => "awaiting-pubcomp",
                },
                bytes: message.publish.payload.len() as u32,
            })
            .collect()
    }

    /// The next action for the driver to run, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When to feed [`Input::Timeout`] next (keep-alive, CONNACK timeout, reconnect).
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let keep_alive = self
            .client
            .as_ref()
            .filter(|_| self.link.socket.is_some())
            .and_then(Client::poll_timeout);
        match (keep_alive, self.link.reconnect_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Handles one input at `now`; then drain [`Session::poll_action`].
    pub fn handle(&mut self, input: Input, now: Timestamp) {
        self.now = now;
        match input {
            Input::Request { op, request } => self.request(Caller::App(op), request),
            Input::Opened { socket } => self.opened(socket),
            Input::Received { socket, bytes } => {
                if self.link.socket == Some(socket)
                    && let Some(client) = self.client.as_mut()
                {
                    client.handle_bytes(&bytes, now);
                }
            }
            Input::Closed { socket, code, reason } => self.closed_socket(socket, code, reason),
            Input::Timeout => self.timeout(),
            Input::Saved { save, result } => self.saved(save, result),
            Input::DeviceIdStored { result } => self.device_id_stored(result),
            Input::Loaded { client_id, result } => self.loaded(client_id, result),
            Input::Handled { delivery } => {
                let connected = self.client_connected();
                self.inbox.handled(delivery, connected);
            }
            Input::LockGranted { client_id, lease } => self.lock_granted(client_id, lease),
            Input::LockChecked { held } => self.lock_checked(held),
            Input::LockLost { client_id } => self.lock_lost(client_id),
            Input::Tab(message) => self.tab_message(message),
            Input::Credentials { username, password } => {
                self.options.username = username;
                self.options.password = password;
                if let Some(client) = self.client.as_mut() {
                    client.set_credentials(self.options.login_name(), self.options.login_password());
                }
            }
            Input::Online => {
                self.link.online = true;
                self.emit(Event::Online);
                self.link.reconnect_at = None;
                self.open_if_wanted();
            }
            Input::Offline => {
                self.link.online = false;
                self.emit(Event::Offline);
            }
        }
        self.after_turn();
    }

    /// Drains the protocol client, acknowledges what was handled, holds bytes behind
    /// the saves, and hands the next received message to the app.
    fn after_turn(&mut self) {
        loop {
            self.drain_client_events();
            if !self.client_connected() {
                break;
            }
            let acks = self.inbox.take_acks();
            if acks.is_empty() {
                break;
            }
            let now = self.now;
            if let Some(client) = self.client.as_mut() {
                for (packet_id, qos) in acks {
                    client.acknowledge(packet_id, qos, now);
                }
            }
        }
        self.flush();
        if let Some((delivery, message)) = self.inbox.next_delivery() {
            if self.role == Some(Role::Leader) && self.followers_seen {
                self.actions
                    .push_back(Action::Post(TabMessage::Message(message.clone())));
            }
            self.actions.push_back(Action::Deliver { delivery, message });
        }
    }

    /// Saves what changed and sends what the saves allow.
    fn flush(&mut self) {
        let client_id = self.client_id();
        let (Some(client), Some(client_id)) = (self.client.as_mut(), client_id) else {
            return;
        };
        let bytes = client.poll_transmit();
        let socket = self.link.socket.unwrap_or(0);
        let (save, now) = self.saves.after_turn(client.session(), socket, bytes);
        if let Some(save) = save {
            self.actions.push_back(Action::Save {
                save: save.id,
                seq: save.seq,
                client_id,
                writes: save.writes,
            });
        }
        if let (Some(bytes), Some(socket)) = (now, self.link.socket) {
            self.actions.push_back(Action::Send { socket, bytes });
        }
    }

    fn saved(&mut self, save: SaveId, result: Result<(), String>) {
        match result {
            Ok(()) => {
                let committed = self.saves.committed(save, self.link.socket);
                for (socket, bytes) in committed.release {
                    self.actions.push_back(Action::Send { socket, bytes });
                }
                if committed.outgoing_changed {
                    self.pending_changed();
                }
            }
            Err(error) => {
                self.saves.failed(save);
                self.emit(Event::Error(ClientError::Storage(error)));
                // Nothing unsaved may leave: end this connection; the session is written
                // whole, and resent, after the reconnect.
                if let Some(socket) = self.link.socket {
                    self.actions.push_back(Action::Close {
                        socket,
                        code: connection::CLOSE_STORAGE_FAILURE,
                        reason: "storage failure",
                    });
                }
            }
        }
    }

    fn pending_changed(&mut self) {
        let items = self.pending();
        self.actions.push_back(Action::Emit(Event::Pending {
            count: items.len() as u32,
        }));
        if self.role == Some(Role::Leader) && self.followers_seen {
            self.actions.push_back(Action::Post(TabMessage::Pending(items)));
        }
    }

    fn drain_client_events(&mut self) {
        while let Some(event) = self.client.as_mut().and_then(Client::poll_event) {
            self.client_event(event);
        }
    }

    fn client_event(&mut self, event: ClientEvent) {
        match event {
            ClientEvent::Connected { session_present, .. } => self.connected_event(session_present),
            ClientEvent::Message(publish) => self.inbox.receive(publish),
            ClientEvent::PublishDone { id, reason } => {
                if let Some(caller) = self.publishes.remove(id) {
                    let outcome = if reason.is_error() {
                        Err(ClientError::Refused(reason.byte()))
                    } else {
                        Ok(Reply::Done)
                    };
                    self.settle(caller, outcome);
                }
            }
            ClientEvent::Subscribed { packet_id, reasons }
            | ClientEvent::Unsubscribed { packet_id, reasons } => {
                if let Some(caller) = self.requests.remove(packet_id.get()) {
                    let codes = reasons.iter().map(|reason| reason.byte()).collect();
                    self.settle(caller, Ok(Reply::Reasons(codes)));
                }
            }
            ClientEvent::Disconnected(cause) => self.disconnected_event(cause),
        }
    }

    /// Raises `event` here and, for a leader with followers, in every other tab.
    fn emit(&mut self, event: Event) {
        if self.role == Some(Role::Leader) && self.followers_seen && is_relayed(&event) {
            self.actions
                .push_back(Action::Post(TabMessage::Event(event.clone())));
        }
        self.actions.push_back(Action::Emit(event));
    }

    fn settle(&mut self, caller: Caller, outcome: Outcome) {
        self.actions.push_back(match caller {
            Caller::App(op) => Action::Settle { op, outcome },
            Caller::Tab { tab, call } => Action::Post(TabMessage::Result { tab, call, outcome }),
        });
    }
}

#[cfg(test)]
mod tests;
