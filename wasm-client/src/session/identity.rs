//! The device id, and the session of the client id it names: switching ids leaves the old
//! id's connection and tabs; a leader loads the stored session before it connects.

use tabmq_protocol::client::Client;

use super::inbox::Inbox;
use super::io::{Action, Event, OpId, Reply};
use super::saves::Saves;
use super::tab_relay::FollowerView;
use super::{Caller, Session};
use crate::error::ClientError;
use crate::tabs::{Role, TabMessage};

impl Session {
    pub(super) fn set_device_id(&mut self, caller: Caller, device_id: Option<String>) {
        let Caller::App(op) = caller else { return };
        if self.device_change.is_some() {
            return self.settle(
                caller,
                Err(ClientError::Request(
                    "a device id change is already in progress".into(),
                )),
            );
        }
        self.device_change = Some((op, device_id.clone()));
        self.actions.push_back(Action::StoreDeviceId { device_id });
    }

    /// The device id was stored (or not): switch to it.
    pub(super) fn device_id_stored(&mut self, result: Result<(), String>) {
        if let Some((op, device_id)) = self.device_change.take() {
            match result {
                Ok(()) => {
                    if device_id != self.device_id {
                        self.switch_device_id(device_id);
                    }
                    self.settle(Caller::App(op), Ok(Reply::Done));
                }
                Err(error) => self.settle(Caller::App(op), Err(ClientError::Storage(error))),
            }
        }
    }

    /// Leaves everything of the current client id (connection, lock, channel, requests)
    /// and joins the tabs of the new one. The app calls `connect` again to connect.
    pub(super) fn switch_device_id(&mut self, device_id: Option<String>) {
        self.step_down();
        if self.joined {
            self.actions.push_back(Action::LeaveTabs);
            self.joined = false;
        }
        // No connection until the app asks for one under the new id.
        self.app_wants = false;
        self.use_device_id(device_id);
    }

    /// Ends this tab's part in the current client id's connection: disconnects, and
    /// tells every request still open that it will not complete here.
    pub(super) fn step_down(&mut self) {
        self.disconnect();
        for (caller, _) in std::mem::take(&mut self.waiting) {
            self.settle(caller, Err(ClientError::Disconnected));
        }
        let publishes: Vec<Caller> = self.publishes.drain().map(|(_, caller)| caller).collect();
        let requests: Vec<Caller> = self.requests.drain().map(|(_, caller)| caller).collect();
        let calls: Vec<OpId> = self.follower.calls.drain().map(|(op, _)| op).collect();
        for caller in publishes
            .into_iter()
            .chain(requests)
            .chain(calls.into_iter().map(Caller::App))
        {
            self.settle(caller, Err(ClientError::Disconnected));
        }
        self.client = None;
        self.saves = Saves::default();
        self.inbox = Inbox::default();
        self.follower = FollowerView::default();
        self.followers_seen = false;
        // The old socket stays until its close is reported: a new one opens only after.
        // No role until the tabs have decided again.
        self.role = None;
    }

    pub(super) fn use_device_id(&mut self, device_id: Option<String>) {
        self.device_id = device_id;
        if self.closed {
            return;
        }
        if let Some(client_id) = self.client_id() {
            self.joined = true;
            self.actions.push_back(Action::JoinTabs { client_id });
            self.actions.push_back(Action::Post(TabMessage::Hello {
                tab: self.tab_id.clone(),
            }));
        }
    }

    pub(super) fn loaded(
        &mut self,
        client_id: String,
        result: Result<(tabmq_protocol::flow::SessionFlows, u64), String>,
    ) {
        if Some(&client_id) != self.client_id().as_ref()
            || self.role != Some(Role::Leader)
            || self.client.is_some()
        {
            return;
        }
        match result {
            Ok((flows, last_seq)) => {
                let mut config = self.options.client_config(self.version, client_id);
                config.manual_acks = true;
                self.saves = Saves::of(&flows, last_seq);
                self.client = Some(Client::new(config, flows));
                self.link.wanted |= self.app_wants;
                for (caller, request) in std::mem::take(&mut self.waiting) {
                    self.perform(caller, request);
                }
                self.open_if_wanted();
            }
            Err(error) => {
                let error = ClientError::Storage(error);
                self.emit(Event::Error(error.clone()));
                for (caller, _) in std::mem::take(&mut self.waiting) {
                    self.settle(caller, Err(error.clone()));
                }
            }
        }
    }
}
