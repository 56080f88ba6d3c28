//! Leader and follower tabs: who performs a request, and what each tab tells the others
//! (the messages are [`TabMessage`]s; see [`crate::tabs`]).
//!
//! - A tab that joins posts `Hello`; the leader answers with its state.
//! - The tab granted the lock leads: it loads the session the previous leader stored,
//!   announces itself (`Leader { elected }`), performs the requests it was holding, and
//!   from then on every request of its followers.
//! - A follower posts each request as a `Call` and settles it with the leader's `Result`;
//!   a newly elected leader gets every unsettled call again (it may have been lost with
//!   the old leader), and a follower that becomes leader performs its own.
//! - The leader relays events, received messages and its pending list.

use super::io::{Action, Event, OpId, Request};
use super::{Caller, Session};
use crate::id_map::IdMap;
use crate::tabs::{LeaderState, PendingItem, Role, TabMessage};

/// What a follower knows of the leader, and its own calls awaiting an answer.
#[derive(Debug, Default)]
pub struct FollowerView {
    /// The leader's connection is up.
    pub connected: bool,
    /// The leader's pending list.
    pub pending: Vec<PendingItem>,
    /// This tab's relayed requests, by handle, not yet answered.
    pub calls: IdMap<OpId, Request>,
}

impl Session {
    /// This tab's state as the leader tells followers.
    fn leader_state(&self, elected: bool) -> LeaderState {
        LeaderState {
            elected,
            connected: self.client_connected(),
            session_present: self.link.session_present,
            pending: self.pending(),
        }
    }

    fn set_role(&mut self, role: Role) {
        if self.role != Some(role) {
            self.role = Some(role);
            self.actions.push_back(Action::Emit(Event::Role(role)));
        }
    }

    pub(super) fn lock_granted(&mut self, client_id: String, lease: bool) {
        if Some(&client_id) != self.client_id().as_ref() || self.role == Some(Role::Leader) || self.closed {
            return;
        }
        self.link.lease = lease;
        self.set_role(Role::Leader);
        // The calls this tab relayed are now its own to perform, after the load.
        let calls: Vec<(OpId, Request)> = self.follower.calls.drain().collect();
        let mut waiting: Vec<(Caller, Request)> = calls
            .into_iter()
            .map(|(op, request)| (Caller::App(op), request))
            .collect();
        waiting.append(&mut self.waiting);
        self.waiting = waiting;
        self.follower = FollowerView::default();
        self.actions
            .push_back(Action::Post(TabMessage::Leader(self.leader_state(true))));
        self.actions.push_back(Action::Load { client_id });
    }

    /// Another tab holds the lock now: this one ends its connection, quietly, and follows.
    pub(super) fn lock_lost(&mut self, client_id: String) {
        if Some(&client_id) != self.client_id().as_ref() || self.role != Some(Role::Leader) {
            return;
        }
        let wants = self.app_wants;
        self.step_down();
        self.app_wants = wants;
        let tab = self.tab_id.clone();
        self.actions.push_back(Action::Post(TabMessage::Hello { tab }));
    }

    /// A request of this tab's app while another tab leads.
    pub(super) fn relay(&mut self, caller: Caller, request: Request) {
        let Caller::App(op) = caller else { return };
        if matches!(request, Request::Disconnect) {
            // The shared connection serves every tab: a follower only stops wanting it.
            return self.settle(caller, Ok(super::Reply::Done));
        }
        self.actions.push_back(Action::Post(TabMessage::Call {
            tab: self.tab_id.clone(),
            call: op,
            request: request.clone(),
        }));
        self.follower.calls.insert(op, request);
    }

    /// The leader answered one of this tab's calls.
    fn answered(&mut self, call: OpId, outcome: super::Outcome) {
        if self.follower.calls.remove(call).is_some() {
            self.actions.push_back(Action::Settle { op: call, outcome });
        }
    }

    fn become_follower(&mut self) {
        if self.role == Some(Role::Follower) {
            return;
        }
        self.set_role(Role::Follower);
        for (caller, request) in std::mem::take(&mut self.waiting) {
            self.relay(caller, request);
        }
    }

    pub(super) fn tab_message(&mut self, message: TabMessage) {
        let leader = self.role == Some(Role::Leader);
        match message {
            TabMessage::Hello { .. } => {
                self.followers_seen = true;
                if leader {
                    let state = self.leader_state(false);
                    self.actions.push_back(Action::Post(TabMessage::Leader(state)));
                }
            }
            TabMessage::Leader(state) if !leader => {
                self.become_follower();
                self.follower.connected = state.connected;
                self.follower.pending = state.pending;
                if state.elected {
                    // The new leader may not know this tab, nor its unsettled calls.
                    let tab = self.tab_id.clone();
                    self.actions
                        .push_back(Action::Post(TabMessage::Hello { tab: tab.clone() }));
                    let calls: Vec<(OpId, Request)> = self
                        .follower
                        .calls
                        .iter()
                        .map(|(op, request)| (*op, request.clone()))
                        .collect();
                    for (call, request) in calls {
                        let tab = tab.clone();
                        self.actions
                            .push_back(Action::Post(TabMessage::Call { tab, call, request }));
                    }
                }
            }
            TabMessage::Call { tab, call, request } if leader => {
                self.followers_seen = true;
                let caller = Caller::Tab { tab, call };
                match self.client {
                    Some(_) => self.perform(caller, request),
                    None => self.waiting.push((caller, request)),
                }
            }
            TabMessage::Result { tab, call, outcome } if !leader && tab == self.tab_id => {
                self.answered(call, outcome);
            }
            TabMessage::Event(event) if !leader => {
                self.become_follower();
                match &event {
                    Event::Connect { .. } => self.follower.connected = true,
                    Event::Disconnect { .. } | Event::Takeover { .. } | Event::Refused { .. } => {
                        self.follower.connected = false
                    }
                    _ => {}
                }
                self.actions.push_back(Action::Emit(event));
            }
            TabMessage::Message(message) if !leader => {
                self.become_follower();
                // Followers' handlers hold nothing: the leader acknowledges.
                self.actions.push_back(Action::Deliver { delivery: 0, message });
            }
            TabMessage::Pending(items) if !leader => {
                self.become_follower();
                let count = items.len() as u32;
                self.follower.pending = items;
                self.actions.push_back(Action::Emit(Event::Pending { count }));
            }
            _ => {}
        }
    }
}
