//! The app's requests: performed on this tab's connection by a leader with its session
//! loaded, relayed by a follower, or held until the role and the session are known.

use super::io::{Event, Reply, Request};
use super::{Caller, Session};
use crate::error::ClientError;
use crate::tabs::Role;

impl Session {
    pub(super) fn request(&mut self, caller: Caller, request: Request) {
        if let Caller::App(_) = caller {
            match request {
                Request::Connect => self.app_wants = true,
                Request::Disconnect => self.app_wants = false,
                _ => {}
            }
        }
        match request {
            Request::SetDeviceId(device_id) => return self.set_device_id(caller, device_id),
            Request::Close => {
                self.closed = true;
                self.switch_device_id(None);
                return self.settle(caller, Ok(Reply::Done));
            }
            _ => {}
        }
        if self.closed {
            return self.settle(caller, Err(ClientError::Request("the client is closed".into())));
        }
        if self.device_id.is_none() {
            if matches!(request, Request::Connect) {
                self.emit(Event::DeviceIdNeeded);
            }
            return self.settle(caller, Err(ClientError::DeviceIdNeeded));
        }
        match (self.role, &self.client) {
            (Some(Role::Leader), Some(_)) => self.perform(caller, request),
            (Some(Role::Follower), _) => self.relay(caller, request),
            _ => self.waiting.push((caller, request)),
        }
    }

    /// Performs a request on this tab's connection (a leader with its session loaded).
    pub(super) fn perform(&mut self, caller: Caller, request: Request) {
        let now = self.now;
        let Some(client) = self.client.as_mut() else {
            return self.settle(caller, Err(ClientError::DeviceIdNeeded));
        };
        match request {
            Request::Connect => self.connect(caller),
            Request::Disconnect => {
                self.disconnect();
                self.settle(caller, Ok(Reply::Done));
            }
            Request::Publish(publish) => match client.publish(publish, now) {
                Ok(id) => self.publishes.insert(id, caller),
                Err(error) => self.settle(caller, Err(ClientError::Request(error.to_string()))),
            },
            Request::Subscribe(subscriptions) => {
                let result = client.subscribe(subscriptions, Default::default(), now);
                self.track_request(caller, result);
            }
            Request::Unsubscribe(filters) => {
                let result = client.unsubscribe(filters, now);
                self.track_request(caller, result);
            }
            Request::SetDeviceId(_) | Request::Close => {}
        }
    }

    pub(super) fn track_request(
        &mut self,
        caller: Caller,
        result: Result<tabmq_protocol::PacketId, tabmq_protocol::client::RequestError>,
    ) {
        match result {
            Ok(packet_id) => self.requests.insert(packet_id.get(), caller),
            Err(error) => self.settle(caller, Err(ClientError::Request(error.to_string()))),
        }
    }
}
