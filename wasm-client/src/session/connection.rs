//! Opening, closing and reconnecting; takeovers and refusals.
//!
//! After a connection ends the machine decides, in this order: the app disconnected
//! (stop); another connection took the session over (stop, `takeover`); the broker refused
//! for a reason retrying cannot fix, 0x85/0x86/0x87/0x8A/0x8C and the 3.1.1 return codes
//! 2, 4, 5 (stop, `refused`, `connect()` rejects); the flap guard refused, 0x9F (wait
//! its cooldown, retry once, then stop as refused); the browser is offline (wait for
//! `online`); otherwise reconnect after an exponential, jittered backoff.

use tabmq_protocol::client::DisconnectCause;
use tabmq_protocol::{ReasonCode, Timestamp};

use super::io::{Action, Event, Reply, SocketId};
use super::{Caller, Session};
use crate::backoff::Backoff;
use crate::error::ClientError;
use crate::takeover::{CLOSE_SESSION_TAKEN_OVER, Ending, TakeoverDetector, Verdict};

/// The close code sent when session state could not be saved. A page may only send 1000
/// or 3000–4999; the broker's 4000 means takeover, so this is another private code.
pub const CLOSE_STORAGE_FAILURE: u16 = 4500;

/// The connection's life across sockets.
#[derive(Debug)]
pub struct Link {
    /// The socket open or opening.
    pub(super) socket: Option<SocketId>,
    next_socket: SocketId,
    /// The app wants a connection (it called `connect`, and no stop since).
    pub(super) wanted: bool,
    /// When to reconnect.
    pub(super) reconnect_at: Option<Timestamp>,
    /// `navigator.onLine`.
    pub(super) online: bool,
    connected_at: Option<Timestamp>,
    last_cause: Option<DisconnectCause>,
    pub(super) session_present: bool,
    /// The one retry after a flap-guard refusal is used up.
    flap_retried: bool,
    /// This tab leads by an IndexedDB lease, not a Web Lock.
    pub(super) lease: bool,
    /// A takeover waiting for the lease check: whether the broker said so.
    takeover_unchecked: Option<bool>,
    backoff: Backoff,
    detector: TakeoverDetector,
    random: u64,
}

impl Link {
    /// A link that has not connected yet.
    pub fn new(backoff: Backoff, detector: TakeoverDetector, seed: u64) -> Self {
        Self {
            socket: None,
            next_socket: 0,
            wanted: false,
            reconnect_at: None,
            online: true,
            connected_at: None,
            last_cause: None,
            session_present: false,
            flap_retried: false,
            lease: false,
            takeover_unchecked: None,
            backoff,
            detector,
            random: seed | 1,
        }
    }

    /// A jitter value in [0, 1) (xorshift).
    fn jitter(&mut self) -> f64 {
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        (self.random >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Whether a CONNACK refusal is one retrying cannot fix.
pub fn refusal_is_final(reason: ReasonCode) -> bool {
    matches!(
        reason,
        ReasonCode::ClientIdentifierNotValid
            | ReasonCode::BadUserNameOrPassword
            | ReasonCode::NotAuthorized
            | ReasonCode::Banned
            | ReasonCode::BadAuthenticationMethod
    )
}

impl Session {
    pub(super) fn connect(&mut self, caller: Caller) {
        if self.client_connected() {
            let session_present = self.link.session_present;
            return self.settle(caller, Ok(Reply::Connected { session_present }));
        }
        self.connect_waiters.push(caller);
        if !self.link.wanted {
            // A connect from the app starts afresh, also after a takeover or a refusal.
            self.link.wanted = true;
            self.link.reconnect_at = None;
            self.link.flap_retried = false;
        }
        self.open_if_wanted();
    }

    pub(super) fn open_if_wanted(&mut self) {
        let link = &self.link;
        if self.closed
            || !link.wanted
            || !link.online
            || link.socket.is_some()
            || link.reconnect_at.is_some()
            || self.client.is_none()
            || self.role != Some(super::Role::Leader)
        {
            return;
        }
        self.link.next_socket += 1;
        let socket = self.link.next_socket;
        self.link.socket = Some(socket);
        self.actions.push_back(Action::Open { socket });
    }

    /// Disconnects on purpose: DISCONNECT, then the close; waiters are told.
    pub(super) fn disconnect(&mut self) {
        self.link.wanted = false;
        self.link.reconnect_at = None;
        for caller in std::mem::take(&mut self.connect_waiters) {
            self.settle(caller, Err(ClientError::Disconnected));
        }
        let Some(socket) = self.link.socket else { return };
        let now = self.now;
        if let Some(client) = self.client.as_mut() {
            client.disconnect(ReasonCode::Success, now);
            if let Some(bytes) = client.poll_transmit() {
                self.actions.push_back(Action::Send { socket, bytes });
            }
        }
        self.drain_client_events();
        self.actions.push_back(Action::Close {
            socket,
            code: 1000,
            reason: "",
        });
    }

    pub(super) fn opened(&mut self, socket: SocketId) {
        if self.link.socket != Some(socket) {
            return;
        }
        let now = self.now;
        self.saves.retry();
        if let Some(client) = self.client.as_mut() {
            let _ = client.connect(now);
        }
    }

    pub(super) fn timeout(&mut self) {
        let now = self.now;
        if self.link.socket.is_some()
            && let Some(client) = self.client.as_mut()
        {
            client.handle_timeout(now);
        }
        if self.link.reconnect_at.is_some_and(|at| at <= now) {
            self.link.reconnect_at = None;
            self.open_if_wanted();
        }
    }

    pub(super) fn connected_event(&mut self, session_present: bool) {
        self.link.connected_at = Some(self.now);
        self.link.last_cause = None;
        self.link.session_present = session_present;
        self.link.flap_retried = false;
        self.inbox.connected(session_present);
        for caller in std::mem::take(&mut self.connect_waiters) {
            self.settle(caller, Ok(Reply::Connected { session_present }));
        }
        self.emit(Event::Connect { session_present });
    }

    pub(super) fn disconnected_event(&mut self, cause: DisconnectCause) {
        let requests: Vec<Caller> = self.requests.drain().map(|(_, caller)| caller).collect();
        for caller in requests {
            self.settle(caller, Err(ClientError::Disconnected));
        }
        self.inbox.disconnected();
        if self.link.last_cause.is_none() {
            self.link.last_cause = Some(cause);
        }
        // The transport is closed next; `closed_socket` decides what follows.
        if let Some(socket) = self.link.socket {
            self.actions.push_back(Action::Close {
                socket,
                code: 1000,
                reason: "",
            });
        }
    }

    pub(super) fn closed_socket(&mut self, socket: SocketId, code: u16, reason: String) {
        if self.link.socket != Some(socket) {
            return;
        }
        self.link.socket = None;
        if let Some(client) = self.client.as_mut() {
            client.connection_lost();
        }
        self.drain_client_events();
        let cause = self.link.last_cause.take();
        let lasted_ms = self
            .link
            .connected_at
            .take()
            .map(|at| self.now.saturating_since(at).as_millis() as f64);
        self.emit(disconnect_event(cause.as_ref(), code, reason));
        if !self.link.wanted {
            return;
        }
        if let Some(lasted_ms) = lasted_ms {
            self.link.backoff.connection_ended(lasted_ms);
        }
        let taken_over =
            code == CLOSE_SESSION_TAKEN_OVER || cause.as_ref().is_some_and(DisconnectCause::is_takeover);
        let ending = match (taken_over, lasted_ms) {
            (true, _) => Ending::TakenOver,
            (false, Some(lasted_ms)) if !matches!(cause, Some(DisconnectCause::Local)) => {
                Ending::Dropped { lasted_ms }
            }
            _ => Ending::Other,
        };
        if let Verdict::Takeover { confirmed } = self.link.detector.judge(ending) {
            if self.link.lease {
                // The taker may be another tab of this browser that took the lease while
                // this one was frozen: ask before telling the app.
                self.link.takeover_unchecked = Some(confirmed);
                self.actions.push_back(Action::CheckLock);
                return;
            }
            return self.stop(ClientError::TakenOver, Event::Takeover { confirmed });
        }
        if let Some(DisconnectCause::Refused(reason)) = cause {
            let flap_guard = reason == ReasonCode::ConnectionRateExceeded;
            if refusal_is_final(reason) || (flap_guard && self.link.flap_retried) {
                let code = reason.byte();
                return self.stop(ClientError::Refused(code), Event::Refused { reason_code: code });
            }
            if flap_guard {
                self.link.flap_retried = true;
                let delay_ms = self.options.flap_cooldown_ms;
                return self.schedule_reconnect(delay_ms);
            }
        }
        if !self.link.online {
            return self.emit(Event::Offline);
        }
        let jitter = self.link.jitter();
        let delay_ms = self.link.backoff.next_delay(jitter);
        self.schedule_reconnect(delay_ms);
    }

    /// The lease check after a takeover: still held means another device took the session;
    /// lost means another tab of this browser leads now, and this one follows it quietly.
    pub(super) fn lock_checked(&mut self, held: bool) {
        let Some(confirmed) = self.link.takeover_unchecked.take() else {
            return;
        };
        if held {
            return self.stop(ClientError::TakenOver, Event::Takeover { confirmed });
        }
        if let Some(client_id) = self.client_id() {
            self.lock_lost(client_id);
        }
    }

    fn schedule_reconnect(&mut self, delay_ms: u32) {
        self.link.reconnect_at = Some(self.now + std::time::Duration::from_millis(u64::from(delay_ms)));
        let attempt = self.link.backoff.attempt();
        self.emit(Event::Reconnecting { attempt, delay_ms });
    }

    /// Stops reconnecting until the app calls `connect` again.
    fn stop(&mut self, error: ClientError, event: Event) {
        self.link.wanted = false;
        self.app_wants = false;
        self.link.reconnect_at = None;
        for caller in std::mem::take(&mut self.connect_waiters) {
            self.settle(caller, Err(error.clone()));
        }
        self.emit(event);
    }
}

fn disconnect_event(cause: Option<&DisconnectCause>, code: u16, close_reason: String) -> Event {
    let reason_code = match cause {
        Some(DisconnectCause::ServerDisconnect { reason, .. } | DisconnectCause::Refused(reason)) => {
            Some(reason.byte())
        }
        _ => None,
    };
    let reason = match cause {
        Some(DisconnectCause::ServerDisconnect { reason, .. }) => {
            format!("disconnected by the server (reason code {:#04x})", reason.byte())
        }
        Some(DisconnectCause::Refused(reason)) => format!("refused (reason code {:#04x})", reason.byte()),
        Some(DisconnectCause::Error(error)) => error.to_string(),
        Some(DisconnectCause::Local) => "disconnected".into(),
        Some(DisconnectCause::TransportClosed) | None => format!("connection closed ({code})"),
    };
    Event::Disconnect {
        reason,
        reason_code,
        close_code: code,
        close_reason,
    }
}
