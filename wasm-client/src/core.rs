//! The client's state and its reactions, behind `Rc<RefCell<Core>>`.
//!
//! Every entry point (a socket event, a timer, an API call) borrows the core, feeds
//! the protocol state machine, and collects what to tell JavaScript; the borrow ends
//! before any JavaScript runs, so event handlers may call back into the client.
//! Outgoing bytes leave only after the session state that produced them is committed
//! to IndexedDB: a reload at any moment finds every unacknowledged message.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use js_sys::{Array, Function};
use tabmq_protocol::client::{Client, ClientEvent, ConnectionState, DisconnectCause};
use tabmq_protocol::flow::{InflightState, MessageId, SessionFlows};
use tabmq_protocol::{ProtocolVersion, Timestamp};
use wasm_bindgen::JsValue;

use crate::backoff::Backoff;
use crate::error::ClientError;
use crate::events::{Emitter, object};
use crate::id_map::IdMap;
use crate::message::message_event;
use crate::mirror::{SessionMirror, SessionWrites};
use crate::options::Options;
use crate::socket::Socket;
use crate::storage::Storage;
use crate::takeover::{CLOSE_SESSION_TAKEN_OVER, Ending, TakeoverDetector, Verdict};

/// The shared handle every callback holds.
pub type Shared = Rc<RefCell<Core>>;

/// A promise's two settle functions.
pub struct Settle {
    /// `resolve`.
    pub resolve: Function,
    /// `reject`.
    pub reject: Function,
}

/// A JavaScript call to make once the core is no longer borrowed.
pub enum Notice {
    /// Call every handler of an event.
    Event(&'static str, JsValue),
    /// Call one function (a promise's resolve or reject).
    Call(Function, JsValue),
}

/// What one turn of the state machine produced that must wait for the session save:
/// the bytes to send and the messages to hand to the app.
struct Outgoing {
    bytes: Option<Vec<u8>>,
    /// `message` events: delivered only once the received QoS 2 ids are saved, so a
    /// reload can never deliver a message twice.
    messages: Vec<Notice>,
    /// The socket the bytes were produced for; they are never sent on a later one.
    generation: u64,
}

/// Everything the client knows.
pub struct Core {
    pub(crate) options: Options,
    pub(crate) version: ProtocolVersion,
    pub(crate) storage: Rc<Storage>,
    pub(crate) emitter: Emitter,
    pub(crate) device_id: Option<String>,
    pub(crate) client: Option<Client>,
    pub(crate) socket: Option<Socket>,
    /// The last closed socket, kept until the next one opens: its callbacks may still be
    /// on the stack when it closes, so it cannot be dropped then.
    pub(crate) retired: Option<Socket>,
    pub(crate) generation: u64,
    backoff: Backoff,
    detector: TakeoverDetector,
    connected_at: Option<f64>,
    last_cause: Option<DisconnectCause>,
    /// True once the app disconnected or a takeover stopped reconnecting.
    pub(crate) stopped: bool,
    pub(crate) publishes: IdMap<MessageId, Settle>,
    pub(crate) requests: IdMap<u16, Settle>,
    pub(crate) connect_waiters: Vec<Settle>,
    /// What IndexedDB holds of the session.
    stored: SessionMirror,
    outbox: VecDeque<Outgoing>,
    flushing: bool,
    pub(crate) timer: Option<i32>,
    pub(crate) reconnect_timer: Option<i32>,
    pub(crate) timers: Option<crate::driver::Timers>,
    /// This tab's role, once it joined the tabs of its client id.
    pub(crate) role: Option<crate::tabs::Role>,
    pub(crate) tabs: Option<crate::tabs::Tabs>,
    /// Identifies this tab in relayed calls.
    pub(crate) tab_id: String,
    /// Calls waiting for their result: relayed to the leader, or held while this tab
    /// does not know its role yet.
    pub(crate) calls: IdMap<u32, crate::relay::PendingCall>,
    pub(crate) next_call: u32,
    /// A follower's view of the leader's connection and pending messages.
    pub(crate) leader_connected: bool,
    pub(crate) leader_pending: Array,
    /// Whether another tab of this client id announced itself: only then does a leader
    /// relay its events (and build its pending list for each `pending` event). Relaying
    /// every message to no one cost a leader a seventh of its time receiving.
    pub(crate) followers_seen: bool,
}

/// Milliseconds from the page's time origin.
pub fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

fn timestamp() -> Timestamp {
    Timestamp::from_millis(now_ms() as u64)
}

impl Core {
    /// A core with no connection yet.
    pub fn new(
        options: Options,
        version: ProtocolVersion,
        storage: Storage,
        device_id: Option<String>,
    ) -> Self {
        let backoff = Backoff::new(options.backoff);
        Self {
            options,
            version,
            storage: Rc::new(storage),
            emitter: Emitter::default(),
            device_id,
            client: None,
            socket: None,
            retired: None,
            generation: 0,
            backoff,
            detector: TakeoverDetector::new(3_000.0, 3),
            connected_at: None,
            last_cause: None,
            stopped: true,
            publishes: IdMap::default(),
            requests: IdMap::default(),
            connect_waiters: Vec::new(),
            stored: SessionMirror::default(),
            outbox: VecDeque::new(),
            flushing: false,
            timer: None,
            reconnect_timer: None,
            timers: None,
            role: None,
            tabs: None,
            tab_id: format!("{:x}", (js_sys::Math::random() * 1e15) as u64),
            calls: IdMap::default(),
            next_call: 0,
            leader_connected: false,
            leader_pending: Array::new(),
            followers_seen: false,
        }
    }

    /// The client id in force, once a device id is known.
    pub fn client_id(&self) -> Option<String> {
        self.device_id
            .as_deref()
            .map(|id| crate::device_id::client_id(&self.options.namespace, id))
    }

    /// The protocol client, created (from the saved session) on first use.
    pub fn ensure_client(&mut self, saved: Option<SessionFlows>) -> Result<&mut Client, ClientError> {
        if self.client.is_none() {
            let client_id = self.client_id().ok_or(ClientError::DeviceIdNeeded)?;
            let config = self.options.client_config(self.version, client_id);
            let session = saved.unwrap_or_default();
            self.stored = SessionMirror::of(&session);
            self.client = Some(Client::new(config, session));
        }
        self.client.as_mut().ok_or(ClientError::DeviceIdNeeded)
    }

    /// Whether CONNACK has accepted the current connection.
    pub fn is_connected(&self) -> bool {
        self.client
            .as_ref()
            .is_some_and(|c| c.state() == ConnectionState::Connected)
    }

    /// The socket opened: send CONNECT.
    pub fn socket_opened(&mut self, notices: &mut Vec<Notice>) {
        if let Some(client) = self.client.as_mut() {
            let _ = client.connect(timestamp());
        }
        self.process(notices);
    }

    /// Bytes arrived.
    pub fn bytes_received(&mut self, bytes: &[u8], notices: &mut Vec<Notice>) {
        if let Some(client) = self.client.as_mut() {
            client.handle_bytes(bytes, timestamp());
        }
        self.process(notices);
    }

    /// The keep-alive timer fired.
    pub fn timer_fired(&mut self, notices: &mut Vec<Notice>) {
        self.timer = None;
        if let Some(client) = self.client.as_mut() {
            client.handle_timeout(timestamp());
        }
        self.process(notices);
    }

    /// Drains the state machine: events become notices, bytes and messages go to the outbox.
    pub fn process(&mut self, notices: &mut Vec<Notice>) {
        let Some(client) = self.client.as_mut() else {
            return;
        };
        let mut events = Vec::new();
        while let Some(event) = client.poll_event() {
            events.push(event);
        }
        let bytes = client.poll_transmit();
        let mut messages = Vec::new();
        for event in events {
            match event {
                ClientEvent::Message(publish) => {
                    messages.push(Notice::Event("message", message_event(&publish)))
                }
                other => self.on_event(other, notices),
            }
        }
        // Even a turn with nothing to send may have changed the session: the flush
        // compares it with what is stored and writes the difference, if any.
        let generation = self.socket.as_ref().map_or(0, Socket::generation);
        self.outbox.push_back(Outgoing {
            bytes,
            messages,
            generation,
        });
    }

    fn pending_count(&self) -> usize {
        self.client.as_ref().map_or(0, |c| {
            c.session().outgoing.inflight_len() + c.session().outgoing.queued_len()
        })
    }

    fn on_event(&mut self, event: ClientEvent, notices: &mut Vec<Notice>) {
        match event {
            ClientEvent::Connected { session_present, .. } => {
                self.connected_at = Some(now_ms());
                self.last_cause = None;
                let detail = object(&[("sessionPresent", session_present.into())]);
                for waiter in self.connect_waiters.drain(..) {
                    notices.push(Notice::Call(waiter.resolve, detail.clone()));
                }
                notices.push(Notice::Event("connect", detail));
            }
            // Messages are held in the outbox by `process` until their state is saved.
            ClientEvent::Message(_) => {}
            ClientEvent::PublishDone { id, reason } => {
                if let Some(settle) = self.publishes.remove(id) {
                    if reason.is_error() {
                        notices.push(Notice::Call(
                            settle.reject,
                            ClientError::Refused(reason.byte()).to_js(),
                        ));
                    } else {
                        notices.push(Notice::Call(settle.resolve, JsValue::UNDEFINED));
                    }
                }
            }
            ClientEvent::Subscribed { packet_id, reasons }
            | ClientEvent::Unsubscribed { packet_id, reasons } => {
                if let Some(settle) = self.requests.remove(packet_id.get()) {
                    let codes: Array = reasons.iter().map(|r| JsValue::from(r.byte())).collect();
                    notices.push(Notice::Call(settle.resolve, codes.into()));
                }
            }
            ClientEvent::Disconnected(cause) => {
                for (_, settle) in self.requests.drain() {
                    notices.push(Notice::Call(settle.reject, ClientError::Disconnected.to_js()));
                }
                if let DisconnectCause::Refused(reason) = &cause {
                    let error = ClientError::Refused(reason.byte()).to_js();
                    for waiter in self.connect_waiters.drain(..) {
                        notices.push(Notice::Call(waiter.reject, error.clone()));
                    }
                }
                self.last_cause = Some(cause);
                // The transport is closed next; `socket_closed` decides what follows.
                if let Some(socket) = &self.socket {
                    socket.close(1000, "");
                }
            }
        }
    }

    /// The socket closed with `code`: report it and decide between reconnecting,
    /// waiting for the network, and stopping for a takeover. Returns the reconnect delay.
    pub fn socket_closed(&mut self, code: u16, reason: String, notices: &mut Vec<Notice>) -> Option<u32> {
        self.retired = self.socket.take();
        if let Some(client) = self.client.as_mut() {
            client.connection_lost();
        }
        self.process(notices);
        let cause = self.last_cause.take();
        let lasted = self.connected_at.take().map(|at| now_ms() - at);
        let reason_code = match &cause {
            Some(DisconnectCause::ServerDisconnect { reason, .. })
            | Some(DisconnectCause::Refused(reason)) => JsValue::from(reason.byte()),
            _ => JsValue::UNDEFINED,
        };
        let description = match &cause {
            Some(DisconnectCause::ServerDisconnect { reason, .. }) => {
                format!("disconnected by the server (reason code {:#04x})", reason.byte())
            }
            Some(DisconnectCause::Refused(reason)) => format!("refused (reason code {:#04x})", reason.byte()),
            Some(DisconnectCause::Error(error)) => error.to_string(),
            Some(DisconnectCause::Local) => "disconnected".into(),
            Some(DisconnectCause::TransportClosed) | None => format!("connection closed ({code})"),
        };
        notices.push(Notice::Event(
            "disconnect",
            object(&[
                ("reason", description.into()),
                ("reasonCode", reason_code),
                ("closeCode", code.into()),
                ("closeReason", reason.into()),
            ]),
        ));
        if self.stopped {
            return None;
        }
        let taken_over =
            code == CLOSE_SESSION_TAKEN_OVER || cause.as_ref().is_some_and(DisconnectCause::is_takeover);
        let ending = match (taken_over, lasted) {
            (true, _) => Ending::TakenOver,
            (false, Some(lasted_ms)) if !matches!(cause, Some(DisconnectCause::Local)) => {
                Ending::Dropped { lasted_ms }
            }
            _ => Ending::Other,
        };
        if let Some(lasted_ms) = lasted {
            self.backoff.connection_ended(lasted_ms);
        }
        if let Verdict::Takeover { confirmed } = self.detector.judge(ending) {
            self.stopped = true;
            for waiter in self.connect_waiters.drain(..) {
                notices.push(Notice::Call(waiter.reject, ClientError::TakenOver.to_js()));
            }
            notices.push(Notice::Event(
                "takeover",
                object(&[("confirmed", confirmed.into())]),
            ));
            return None;
        }
        if !navigator_online() {
            notices.push(Notice::Event("offline", JsValue::UNDEFINED));
            return None;
        }
        let attempt = self.backoff.attempt() + 1;
        let delay = self.backoff.next_delay(js_sys::Math::random());
        notices.push(Notice::Event(
            "reconnecting",
            object(&[("attempt", attempt.into()), ("delayMs", delay.into())]),
        ));
        Some(delay)
    }

    /// When the keep-alive timer should next fire, in milliseconds from now.
    pub fn timer_delay(&self) -> Option<f64> {
        let deadline = self.client.as_ref()?.poll_timeout()?;
        Some((deadline.as_millis() as f64 - now_ms()).max(0.0))
    }

    /// What waits in the session: in-flight messages first, then queued ones.
    pub fn pending(&self) -> Array {
        let Some(client) = &self.client else {
            return Array::new();
        };
        client
            .session()
            .outgoing
            .iter()
            .map(|message| {
                let state = match message.state {
                    None => "queued",
                    Some(InflightState::AwaitingPuback) => "awaiting-puback",
                    Some(InflightState::AwaitingPubrec) => "awaiting-pubrec",
                    Some(InflightState::AwaitingPubcomp) => "awaiting-pubcomp",
                };
                object(&[
                    ("topic", message.publish.topic.as_str().into()),
                    ("qos", message.publish.qos.bits().into()),
                    ("state", state.into()),
                    ("bytes", (message.publish.payload.len() as u32).into()),
                ])
            })
            .collect()
    }
}

/// `navigator.onLine`, true where unknown.
pub fn navigator_online() -> bool {
    web_sys::window().is_none_or(|w| w.navigator().on_line())
}

/// Calls the JavaScript collected while the core was borrowed. A leader tab also
/// relays every event to the follower tabs.
pub fn deliver(shared: &Shared, notices: Vec<Notice>) {
    for notice in notices {
        match notice {
            Notice::Event(name, detail) => {
                let handlers = {
                    let core = shared.borrow();
                    if let (Some(crate::tabs::Role::Leader), Some(tabs)) = (core.role, &core.tabs)
                        && core.followers_seen
                        && crate::tabs::RELAYED_EVENTS.contains(&name)
                    {
                        // Followers answer `pending()` from the list the leader relays.
                        if name == "pending" {
                            let _ = js_sys::Reflect::set(&detail, &"items".into(), &core.pending());
                        }
                        tabs.post(&object(&[
                            ("type", "event".into()),
                            ("name", name.into()),
                            ("detail", detail.clone()),
                        ]));
                    }
                    core.emitter.handlers(name)
                };
                crate::events::dispatch(handlers, &detail);
            }
            Notice::Call(function, value) => {
                let _ = function.call1(&JsValue::NULL, &value);
            }
        }
    }
}

/// Sends what the outbox holds, in order, after the session state it depends on is
/// committed. One save covers every waiting turn: it writes the difference between the
/// stored session and the newest one, which includes them all.
pub fn flush(shared: &Shared) {
    {
        let mut core = shared.borrow_mut();
        if core.flushing || core.outbox.is_empty() {
            return;
        }
        core.flushing = true;
    }
    let shared = shared.clone();
    wasm_bindgen_futures::spawn_local(async move {
        loop {
            let (batch, save) = {
                let mut core = shared.borrow_mut();
                let batch: Vec<Outgoing> = core.outbox.drain(..).collect();
                if batch.is_empty() {
                    core.flushing = false;
                    return;
                }
                (batch, core.session_writes())
            };
            let saved = match save {
                Some(save) => commit_session(&shared, save).await,
                None => true,
            };
            // One WebSocket message for the whole batch: MQTT packets may share frames.
            let mut bytes = Vec::new();
            let generation = shared.borrow().socket.as_ref().map(Socket::generation);
            for outgoing in batch {
                deliver(&shared, outgoing.messages);
                if saved && Some(outgoing.generation) == generation {
                    bytes.extend(outgoing.bytes.unwrap_or_default());
                }
            }
            if let Some(socket) = &shared.borrow().socket
                && Some(socket.generation()) == generation
                && !bytes.is_empty()
            {
                socket.send(&bytes);
            }
        }
    });
}

/// A save to make: the writes, and what the store holds once they are committed.
struct SessionSave {
    storage: Rc<Storage>,
    client_id: String,
    writes: SessionWrites,
    stored: SessionMirror,
}

impl Core {
    /// What must be written to bring the stored session up to date; `None` if nothing.
    fn session_writes(&self) -> Option<SessionSave> {
        let client_id = self.client_id()?;
        let (writes, stored) = self.stored.diff(self.client.as_ref()?.session());
        (!writes.is_empty()).then(|| SessionSave {
            storage: self.storage.clone(),
            client_id,
            writes,
            stored,
        })
    }
}

/// Writes `save`; on success reports the new `pending` count when the outgoing messages
/// changed (a save of received QoS 2 ids only is no news to the app), on failure an
/// `error` and drops the connection, since nothing unsaved may leave. Returns whether it saved.
async fn commit_session(shared: &Shared, save: SessionSave) -> bool {
    match save.storage.write_session(&save.client_id, &save.writes).await {
        Ok(()) => {
            let count = {
                let mut core = shared.borrow_mut();
                core.stored = save.stored;
                core.pending_count() as u32
            };
            if !save.writes.put.is_empty() || !save.writes.delete.is_empty() {
                deliver(
                    shared,
                    vec![Notice::Event("pending", object(&[("count", count.into())]))],
                );
            }
            true
        }
        Err(error) => {
            // The store, and so `stored`, is as it was: the next turn writes the difference again.
            let detail = object(&[
                ("kind", error.kind().into()),
                ("message", error.to_string().into()),
            ]);
            deliver(shared, vec![Notice::Event("error", detail)]);
            // The session is written again, and sent, after the reconnect.
            if let Some(socket) = &shared.borrow().socket {
                socket.close(crate::socket::CLOSE_STORAGE_FAILURE, "storage failure");
            }
            false
        }
    }
}
