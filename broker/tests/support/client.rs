//! A test MQTT client: the protocol crate's client state machine over a real socket.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tabmq_protocol::client::{Client, ClientConfig, ClientEvent, ConnectionState, DisconnectCause};
use tabmq_protocol::flow::{MessageId, SessionFlows};
use tabmq_protocol::packet::{Publish, Subscription, SubscriptionOptions};
use tabmq_protocol::{Properties, QoS, ReasonCode, Timestamp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{WebSocketStream, client_async};

/// How long a test waits for anything.
pub const WAIT: Duration = Duration::from_secs(10);

enum Socket {
    Tcp(TcpStream),
    Ws(Box<WebSocketStream<TcpStream>>),
}

/// What ended the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// Plain TCP EOF.
    Eof,
    /// A WebSocket close frame with this code and reason.
    WebSocket(u16, String),
}

/// A connected (or refused) test client.
pub struct TestClient {
    client: Client,
    socket: Socket,
    start: Instant,
    events: VecDeque<ClientEvent>,
    /// Set once the transport has closed.
    pub closed: Option<Closed>,
}

/// A TCP connection whose writes leave at once (no Nagle delay), as a test expects when it
/// sends one packet and then acts on another connection.
async fn connect_tcp(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(address).await.expect("tcp connect");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    stream
}

/// Opens a WebSocket to the broker with the `mqtt` subprotocol.
pub async fn websocket(address: SocketAddr) -> WebSocketStream<TcpStream> {
    let mut request = format!("ws://{address}/mqtt")
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "mqtt".parse().expect("header"));
    let stream = connect_tcp(address).await;
    let (ws, response) = client_async(request, stream).await.expect("websocket handshake");
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.as_bytes()),
        Some(&b"mqtt"[..])
    );
    ws
}

impl TestClient {
    /// Connects over TCP and waits for CONNACK.
    pub async fn tcp(address: SocketAddr, config: ClientConfig) -> Self {
        let socket = Socket::Tcp(connect_tcp(address).await);
        Self::start(socket, config, SessionFlows::default()).await
    }

    /// Connects over TCP as a proxy would: `header` (a PROXY protocol header) first, then
    /// CONNECT; waits for CONNACK.
    pub async fn tcp_proxied(address: SocketAddr, header: &[u8], config: ClientConfig) -> Self {
        use tokio::io::AsyncWriteExt;
        let mut stream = connect_tcp(address).await;
        stream.write_all(header).await.expect("send the PROXY header");
        Self::start(Socket::Tcp(stream), config, SessionFlows::default()).await
    }

    /// Connects over WebSocket and waits for CONNACK.
    pub async fn ws(address: SocketAddr, config: ClientConfig) -> Self {
        let socket = Socket::Ws(Box::new(websocket(address).await));
        Self::start(socket, config, SessionFlows::default()).await
    }

    /// Connects over TCP with a session restored from an earlier client.
    pub async fn tcp_resuming(address: SocketAddr, config: ClientConfig, flows: SessionFlows) -> Self {
        let socket = Socket::Tcp(connect_tcp(address).await);
        Self::start(socket, config, flows).await
    }

    async fn start(socket: Socket, config: ClientConfig, flows: SessionFlows) -> Self {
        let mut this = Self {
            client: Client::new(config, flows),
            socket,
            start: Instant::now(),
            events: VecDeque::new(),
            closed: None,
        };
        this.client.connect(this.now()).expect("not connected yet");
        this.flush().await;
        let connack = this
            .wait_for(|event| {
                matches!(
                    event,
                    ClientEvent::Connected { .. } | ClientEvent::Disconnected(_)
                )
            })
            .await;
        // Left for `connack()` to inspect.
        this.events.push_front(connack);
        this
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.start.elapsed().as_millis() as u64)
    }

    /// The client's session, to resume it in another client.
    pub fn session(&self) -> SessionFlows {
        self.client.session().clone()
    }

    /// Whether CONNACK accepted us and we are still connected.
    pub fn is_connected(&self) -> bool {
        self.client.state() == ConnectionState::Connected
    }

    async fn flush(&mut self) {
        while let Some(bytes) = self.client.poll_transmit() {
            let result = match &mut self.socket {
                Socket::Tcp(stream) => stream.write_all(&bytes).await.map_err(|e| e.to_string()),
                Socket::Ws(ws) => ws
                    .send(Message::Binary(bytes.into()))
                    .await
                    .map_err(|e| e.to_string()),
            };
            if result.is_err() {
                self.client.connection_lost();
            }
        }
        while let Some(event) = self.client.poll_event() {
            self.events.push_back(event);
        }
    }

    /// Writes raw bytes, bypassing the state machine (for malformed-input tests).
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        match &mut self.socket {
            Socket::Tcp(stream) => {
                let _ = stream.write_all(bytes).await;
            }
            Socket::Ws(ws) => {
                let _ = ws.send(Message::Binary(bytes.to_vec().into())).await;
            }
        }
    }

    /// Reads from the socket once (or times out); feeds the state machine.
    async fn pump(&mut self, until: Instant) -> bool {
        if self.closed.is_some() {
            return false;
        }
        let timeout = until.saturating_duration_since(Instant::now());
        let received = match &mut self.socket {
            Socket::Tcp(stream) => {
                let mut buffer = vec![0u8; 64 * 1024];
                match tokio::time::timeout(timeout, stream.read(&mut buffer)).await {
                    Err(_) => return false,
                    Ok(Ok(0)) | Ok(Err(_)) => Err(Closed::Eof),
                    Ok(Ok(read)) => Ok(buffer[..read].to_vec()),
                }
            }
            Socket::Ws(ws) => match tokio::time::timeout(timeout, ws.next()).await {
                Err(_) => return false,
                Ok(Some(Ok(Message::Binary(data)))) => Ok(data.to_vec()),
                Ok(Some(Ok(Message::Close(frame)))) => Err(frame.map_or(Closed::Eof, |f| {
                    Closed::WebSocket(u16::from(f.code), f.reason.to_string())
                })),
                Ok(Some(Ok(_))) => Ok(Vec::new()),
                Ok(None) | Ok(Some(Err(_))) => Err(Closed::Eof),
            },
        };
        match received {
            Ok(bytes) => self.client.handle_bytes(&bytes, self.now()),
            Err(closed) => {
                self.closed = Some(closed);
                self.client.connection_lost();
            }
        }
        let now = self.now();
        self.client.handle_timeout(now);
        self.flush().await;
        true
    }

    /// Waits for an event matching `wanted`, keeping the others queued.
    pub async fn wait_for(&mut self, wanted: impl Fn(&ClientEvent) -> bool) -> ClientEvent {
        self.try_wait_for(wanted, WAIT)
            .await
            .expect("expected event did not arrive")
    }

    /// Like `wait_for`, but `None` after `timeout`.
    pub async fn try_wait_for(
        &mut self,
        wanted: impl Fn(&ClientEvent) -> bool,
        timeout: Duration,
    ) -> Option<ClientEvent> {
        let until = Instant::now() + timeout;
        loop {
            if let Some(index) = self.events.iter().position(&wanted) {
                return self.events.remove(index);
            }
            if Instant::now() >= until || (!self.pump(until).await && self.closed.is_some()) {
                return self
                    .events
                    .iter()
                    .position(&wanted)
                    .and_then(|index| self.events.remove(index));
            }
        }
    }

    /// The CONNACK outcome: `Ok(session_present)` or the refusal reason.
    pub async fn connack(&mut self) -> Result<bool, ReasonCode> {
        match self
            .wait_for(|e| matches!(e, ClientEvent::Connected { .. } | ClientEvent::Disconnected(_)))
            .await
        {
            ClientEvent::Connected { session_present, .. } => Ok(session_present),
            ClientEvent::Disconnected(DisconnectCause::Refused(reason)) => Err(reason),
            other => panic!("no CONNACK: {other:?}"),
        }
    }

    /// Subscribes to `filter` at `qos`; returns the granted reason.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> ReasonCode {
        let options = SubscriptionOptions {
            qos,
            ..SubscriptionOptions::default()
        };
        self.subscribe_with(vec![Subscription {
            filter: filter.into(),
            options,
        }])
        .await[0]
    }

    /// Subscribes with full options; returns the reasons.
    pub async fn subscribe_with(&mut self, subscriptions: Vec<Subscription>) -> Vec<ReasonCode> {
        self.subscribe_with_properties(subscriptions, Properties::default())
            .await
    }

    /// Subscribes with full options and SUBSCRIBE properties; returns the reasons.
    pub async fn subscribe_with_properties(
        &mut self,
        subscriptions: Vec<Subscription>,
        properties: Properties,
    ) -> Vec<ReasonCode> {
        let packet_id = self
            .client
            .subscribe(subscriptions, properties, self.now())
            .expect("connected");
        self.flush().await;
        match self
            .wait_for(|e| matches!(e, ClientEvent::Subscribed { packet_id: id, .. } if *id == packet_id))
            .await
        {
            ClientEvent::Subscribed { reasons, .. } => reasons,
            _ => unreachable!(),
        }
    }

    /// Sends SUBSCRIBE for `filter` without waiting for the SUBACK.
    pub async fn subscribe_nowait(&mut self, filter: &str, qos: QoS) {
        let options = SubscriptionOptions {
            qos,
            ..SubscriptionOptions::default()
        };
        let subscription = Subscription {
            filter: filter.into(),
            options,
        };
        self.client
            .subscribe(vec![subscription], Properties::default(), self.now())
            .expect("connected");
        self.flush().await;
    }

    /// Sends UNSUBSCRIBE for `filter` without waiting for the UNSUBACK.
    pub async fn unsubscribe_nowait(&mut self, filter: &str) {
        self.client
            .unsubscribe(vec![filter.into()], self.now())
            .expect("connected");
        self.flush().await;
    }

    /// Publishes without waiting for the acknowledgement.
    pub async fn publish_nowait(&mut self, publish: Publish) -> MessageId {
        let id = self.client.publish(publish, self.now()).expect("valid publish");
        self.flush().await;
        id
    }

    /// Publishes and waits until it is acknowledged per its QoS; returns the reason.
    pub async fn publish(&mut self, publish: Publish) -> ReasonCode {
        let id = self.publish_nowait(publish).await;
        match self
            .wait_for(|e| matches!(e, ClientEvent::PublishDone { id: done, .. } if *done == id))
            .await
        {
            ClientEvent::PublishDone { reason, .. } => reason,
            _ => unreachable!(),
        }
    }

    /// The next application message, or `None` after `timeout`.
    pub async fn message(&mut self, timeout: Duration) -> Option<Publish> {
        match self
            .try_wait_for(|e| matches!(e, ClientEvent::Message(_)), timeout)
            .await
        {
            Some(ClientEvent::Message(publish)) => Some(publish),
            _ => None,
        }
    }

    /// Waits for the connection to end; returns how (DISCONNECT reason and transport close).
    pub async fn disconnection(&mut self) -> (DisconnectCause, Option<Closed>) {
        let event = self.wait_for(|e| matches!(e, ClientEvent::Disconnected(_))).await;
        let ClientEvent::Disconnected(cause) = event else {
            unreachable!()
        };
        let until = Instant::now() + WAIT;
        while self.closed.is_none() && Instant::now() < until {
            self.pump(until).await;
        }
        (cause, self.closed.clone())
    }

    /// Sends DISCONNECT and closes.
    pub async fn disconnect(mut self) {
        self.client.disconnect(ReasonCode::Success, self.now());
        self.flush().await;
        if let Socket::Ws(ws) = &mut self.socket {
            let _ = (**ws).close(None).await;
        }
    }

    /// Drops the connection without DISCONNECT (the will fires).
    pub fn abort(self) {}
}

/// Client settings: `version`, client id, clean start, long session expiry.
pub fn config(version: tabmq_protocol::ProtocolVersion, client_id: &str, clean_start: bool) -> ClientConfig {
    ClientConfig {
        version,
        clean_start,
        session_expiry_interval: if clean_start { 0 } else { 3600 },
        ..ClientConfig::new(client_id)
    }
}
