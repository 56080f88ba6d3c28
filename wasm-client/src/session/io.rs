//! What goes into the session machine and what comes out of it.

use tabmq_protocol::flow::SessionFlows;
use tabmq_protocol::packet::{Publish, Subscription};

use crate::error::ClientError;
use crate::mirror::SessionWrites;
use crate::tabs::{Role, TabMessage};

/// An app request's handle, given by the driver, returned in [`Action::Settle`].
pub type OpId = u32;
/// A socket's generation: events of an older socket are told apart and ignored.
pub type SocketId = u64;
/// A save's sequence number: saves commit in the order they are issued.
pub type SaveId = u64;
/// A message handed to the app, until [`Input::Handled`] says its handlers settled.
pub type DeliveryId = u64;

/// What the app (or another tab, through the leader) asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Connect, and keep the connection up until `Disconnect`.
    Connect,
    /// Disconnect on purpose; the session stays stored.
    Disconnect,
    /// Publish a message (saved before it is sent).
    Publish(Publish),
    /// Subscribe to filters.
    Subscribe(Vec<Subscription>),
    /// Unsubscribe from filters.
    Unsubscribe(Vec<String>),
    /// Use another device id (validated), or forget it (`None`).
    SetDeviceId(Option<String>),
    /// Disconnect, release the tab lock and stop: the client is closed for good.
    Close,
}

/// The value a request resolves with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Nothing to report.
    Done,
    /// The connection is up.
    Connected {
        /// CONNACK's session present flag.
        session_present: bool,
    },
    /// A reason code per filter (SUBACK, UNSUBACK).
    Reasons(Vec<u8>),
}

/// How a request ended.
pub type Outcome = Result<Reply, ClientError>;

/// Something the session machine is told.
#[derive(Debug, Clone)]
pub enum Input {
    /// An app request.
    Request {
        /// Its handle.
        op: OpId,
        /// What it asks.
        request: Request,
    },
    /// The socket opened.
    Opened {
        /// Which socket.
        socket: SocketId,
    },
    /// Bytes arrived on the socket.
    Received {
        /// Which socket.
        socket: SocketId,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// The socket closed (or failed to open).
    Closed {
        /// Which socket.
        socket: SocketId,
        /// The WebSocket close code.
        code: u16,
        /// The WebSocket close reason.
        reason: String,
    },
    /// The deadline of [`poll_timeout`](super::Session::poll_timeout) passed.
    Timeout,
    /// A save finished: committed, or failed with the storage error's text.
    Saved {
        /// Which save.
        save: SaveId,
        /// Committed, or why not.
        result: Result<(), String>,
    },
    /// The device id asked for by [`Action::StoreDeviceId`] was stored, or why not.
    DeviceIdStored {
        /// Stored, or the storage error's text.
        result: Result<(), String>,
    },
    /// The stored session of the current client id was read.
    Loaded {
        /// The client id it belongs to.
        client_id: String,
        /// The session and the key of its last log entry, or why it could not be read.
        result: Result<(SessionFlows, u64), String>,
    },
    /// The app's handlers of a delivered message have settled.
    Handled {
        /// Which delivery.
        delivery: DeliveryId,
    },
    /// This tab holds the tab lock of the current client id: it leads.
    LockGranted {
        /// The client id whose lock it is.
        client_id: String,
        /// Whether the lock is an IndexedDB lease (no Web Locks in this context): another
        /// tab of this browser may take it from a tab that was frozen too long.
        lease: bool,
    },
    /// The answer to [`Action::CheckLock`].
    LockChecked {
        /// Whether this tab still holds its lease.
        held: bool,
    },
    /// This tab lost the tab lock it held (a lease another tab took after this one was
    /// frozen): it ends its connection and follows.
    LockLost {
        /// The client id whose lock it was.
        client_id: String,
    },
    /// Another tab of the same client id posted a message.
    Tab(TabMessage),
    /// The app's `credentials` function gave the user name and password for the next
    /// CONNECT (before each connect and reconnect).
    Credentials {
        /// The user name (`None`: the `user` option, if any).
        username: Option<String>,
        /// The password, such as a fresh token.
        password: Option<String>,
    },
    /// `navigator.onLine` became true.
    Online,
    /// `navigator.onLine` became false.
    Offline,
}

/// Something the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Open a WebSocket to the broker.
    Open {
        /// Its generation.
        socket: SocketId,
    },
    /// Send bytes on the socket (only ever after the save they depend on is committed).
    Send {
        /// Which socket.
        socket: SocketId,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Close the socket.
    Close {
        /// Which socket.
        socket: SocketId,
        /// WebSocket close code.
        code: u16,
        /// WebSocket close reason.
        reason: &'static str,
    },
    /// Write session changes to IndexedDB in one transaction, then report [`Input::Saved`].
    Save {
        /// Its sequence number.
        save: SaveId,
        /// The key of its entry in the session's log.
        seq: u64,
        /// The client id whose session it is.
        client_id: String,
        /// What to write.
        writes: SessionWrites,
    },
    /// Store (or forget) the device id, then report [`Input::DeviceIdStored`].
    StoreDeviceId {
        /// The device id.
        device_id: Option<String>,
    },
    /// Read the stored session of `client_id`, then report [`Input::Loaded`].
    Load {
        /// Whose session.
        client_id: String,
    },
    /// Hand a received message to the app's handlers, then report [`Input::Handled`].
    Deliver {
        /// Its handle.
        delivery: DeliveryId,
        /// The message.
        message: Received,
    },
    /// Raise an event.
    Emit(Event),
    /// Settle a request of this tab's app.
    Settle {
        /// Its handle.
        op: OpId,
        /// How it ended.
        outcome: Outcome,
    },
    /// Join the tabs of `client_id`: open its channel and ask for its lock.
    JoinTabs {
        /// Whose tabs.
        client_id: String,
    },
    /// Leave the tabs joined last: release the lock, close the channel.
    LeaveTabs,
    /// Check (and renew) this tab's lease, then report [`Input::LockChecked`].
    CheckLock,
    /// Post to the other tabs of the client id.
    Post(TabMessage),
}

/// A received message as the app sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// The PUBLISH.
    pub publish: Publish,
    /// An id stable across redeliveries of this message (see [`crate::session::inbox`]).
    pub id: String,
}

/// An event for the app's `on(name, handler)` handlers.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// CONNACK accepted the connection.
    Connect {
        /// Whether the broker resumed the stored session.
        session_present: bool,
    },
    /// The connection ended.
    Disconnect {
        /// Why, in words.
        reason: String,
        /// The broker's reason code, if it gave one.
        reason_code: Option<u8>,
        /// WebSocket close code.
        close_code: u16,
        /// WebSocket close reason.
        close_reason: String,
    },
    /// A reconnect is scheduled.
    Reconnecting {
        /// Attempts since the last stable connection.
        attempt: u32,
        /// Delay before it.
        delay_ms: u32,
    },
    /// The browser went offline.
    Offline,
    /// The browser came back online.
    Online,
    /// Another connection took the session over; reconnecting stopped.
    Takeover {
        /// Whether the broker said so (rather than inferred from repeated drops).
        confirmed: bool,
    },
    /// The broker refused the connection for a reason retrying cannot fix; reconnecting stopped.
    Refused {
        /// The CONNACK reason code (3.1.1 return codes mapped to MQTT 5 codes).
        reason_code: u8,
    },
    /// What waits in the session changed (and is saved).
    Pending {
        /// Messages accepted and not yet acknowledged.
        count: u32,
    },
    /// This tab's part in the shared connection changed.
    Role(Role),
    /// `connect` needs a device id first.
    DeviceIdNeeded,
    /// Something failed that no request reports (a save, a session read).
    Error(ClientError),
}
