//! One simulated MQTT client: the `tabmq-protocol` client state machine over a [`Pipe`].

use std::time::{Duration, Instant};

use tabmq_protocol::client::{Client, ClientConfig, ClientEvent};
use tabmq_protocol::flow::SessionFlows;
use tabmq_protocol::packet::{Publish, Subscription, SubscriptionOptions};
use tabmq_protocol::{Properties, ProtocolVersion, QoS, ReasonCode, Timestamp};

use crate::error::BenchError;
use crate::transport::{Pipe, Transport};

/// How long a peer waits for the broker before the run is declared stalled.
pub const STALL: Duration = Duration::from_secs(20);

/// A connected client.
pub struct Peer {
    client: Client,
    pipe: Pipe,
    epoch: Instant,
    /// Events read while waiting for another one (e.g. messages arriving with CONNACK).
    stashed: Vec<ClientEvent>,
}

/// Settings of a peer's session.
pub fn config(client_id: &str, persistent: bool) -> ClientConfig {
    ClientConfig {
        version: ProtocolVersion::V5,
        keep_alive: 0,
        clean_start: !persistent,
        session_expiry_interval: if persistent { 3_600 } else { 0 },
        // The most a client may allow: brokers bound what they send by their own limit, and
        // the relay, which keeps no count, must not exceed it.
        receive_maximum: u16::MAX,
        maximum_packet_size: 1 << 20,
        ..ClientConfig::new(client_id)
    }
}

impl Peer {
    /// Connects and waits for CONNACK; returns the peer and whether a session was present.
    pub async fn connect(
        transport: Transport,
        addr: &str,
        config: ClientConfig,
        session: SessionFlows,
    ) -> Result<(Self, bool), BenchError> {
        let pipe = Pipe::open(transport, addr).await?;
        let mut peer = Self {
            client: Client::new(config, session),
            pipe,
            epoch: Instant::now(),
            stashed: Vec::new(),
        };
        let now = peer.now();
        peer.client
            .connect(now)
            .map_err(|e| BenchError::Protocol(e.to_string()))?;
        peer.flush().await?;
        let mut present = false;
        peer.until(|event| match event {
            ClientEvent::Connected { session_present, .. } => {
                present = *session_present;
                true
            }
            _ => false,
        })
        .await?;
        Ok((peer, present))
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.epoch.elapsed().as_millis() as u64)
    }

    /// Subscribes to every filter in one SUBSCRIBE (QoS 0) and waits for a SUBACK granting all.
    pub async fn subscribe_all(&mut self, filters: &[String]) -> Result<(), BenchError> {
        let list = filters
            .iter()
            .map(|filter| (filter.clone(), QoS::AtMostOnce))
            .collect();
        self.subscribe_list(list).await
    }

    /// Subscribes to one filter and waits for a successful SUBACK.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> Result<(), BenchError> {
        self.subscribe_list(vec![(filter.to_owned(), qos)]).await
    }

    async fn subscribe_list(&mut self, list: Vec<(String, QoS)>) -> Result<(), BenchError> {
        let now = self.now();
        let subscriptions = list
            .into_iter()
            .map(|(filter, qos)| Subscription {
                filter,
                options: SubscriptionOptions {
                    qos,
                    ..SubscriptionOptions::default()
                },
            })
            .collect();
        self.client
            .subscribe(subscriptions, Properties::default(), now)
            .map_err(|e| BenchError::Protocol(e.to_string()))?;
        self.flush().await?;
        let mut refused = None;
        self.until(|event| match event {
            ClientEvent::Subscribed { reasons, .. } => {
                refused = reasons.iter().find(|r| r.is_error()).copied();
                true
            }
            _ => false,
        })
        .await?;
        match refused {
            Some(reason) => Err(BenchError::Protocol(format!("subscription refused: {reason:?}"))),
            None => Ok(()),
        }
    }

    /// Queues a message (sent by the next [`Peer::flush`]).
    pub fn publish(&mut self, topic: &str, payload: Vec<u8>, qos: QoS) -> Result<(), BenchError> {
        let now = self.now();
        self.client
            .publish(Publish::new(topic, payload, qos), now)
            .map(|_| ())
            .map_err(|e| BenchError::Protocol(e.to_string()))
    }

    /// Messages given to `publish` and not yet finished (queued or in flight).
    pub fn unfinished(&self) -> usize {
        let outgoing = &self.client.session().outgoing;
        outgoing.inflight_len() + outgoing.queued_len()
    }

    /// Writes everything the client has to send, as one frame.
    pub async fn flush(&mut self) -> Result<(), BenchError> {
        let mut bytes = Vec::new();
        while let Some(chunk) = self.client.poll_transmit() {
            bytes.extend_from_slice(&chunk);
        }
        if !bytes.is_empty() {
            self.pipe.send(bytes).await?;
        }
        Ok(())
    }

    /// The next bytes from the broker. Cancel-safe: nothing is lost if the future is dropped.
    pub async fn next_bytes(&mut self) -> Result<Vec<u8>, BenchError> {
        tokio::time::timeout(STALL, self.pipe.recv())
            .await
            .map_err(|_| BenchError::Timeout(format!("nothing from the broker for {STALL:?}")))??
            .ok_or_else(|| BenchError::Closed("end of stream".into()))
    }

    /// Feeds bytes to the client, sends its answers, and hands each event to `on_event`.
    pub async fn handle(
        &mut self,
        bytes: &[u8],
        mut on_event: impl FnMut(ClientEvent),
    ) -> Result<(), BenchError> {
        let now = self.now();
        self.client.handle_bytes(bytes, now);
        self.flush().await?;
        for event in std::mem::take(&mut self.stashed) {
            on_event(event);
        }
        while let Some(event) = self.client.poll_event() {
            if let ClientEvent::Disconnected(cause) = &event {
                return Err(BenchError::Closed(format!("{cause:?}")));
            }
            on_event(event);
        }
        Ok(())
    }

    /// Hands over the events kept by [`Peer::until`], or else reads one chunk and handles it.
    pub async fn read(&mut self, on_event: impl FnMut(ClientEvent)) -> Result<(), BenchError> {
        if !self.stashed.is_empty() {
            std::mem::take(&mut self.stashed).into_iter().for_each(on_event);
            return Ok(());
        }
        let bytes = self.next_bytes().await?;
        self.handle(&bytes, on_event).await
    }

    /// Reads until an event satisfies `done`; other events are kept for the next read.
    pub async fn until(&mut self, mut done: impl FnMut(&ClientEvent) -> bool) -> Result<(), BenchError> {
        loop {
            let bytes = self.next_bytes().await?;
            let mut seen = Vec::new();
            self.handle(&bytes, |event| seen.push(event)).await?;
            let mut finished = false;
            for event in seen {
                if !finished && done(&event) {
                    finished = true;
                } else {
                    self.stashed.push(event);
                }
            }
            if finished {
                return Ok(());
            }
        }
    }

    /// Sends DISCONNECT (normal) and returns the session state, for a later reconnect.
    pub async fn disconnect(mut self) -> Result<SessionFlows, BenchError> {
        let now = self.now();
        self.client.disconnect(ReasonCode::Success, now);
        self.flush().await?;
        Ok(self.client.session().clone())
    }
}
