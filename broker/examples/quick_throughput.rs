//! A quick throughput check over WebSocket: one publisher, one subscriber, N messages.
//!
//! `cargo run --release -p tabmq-broker --example quick_throughput -- ws://127.0.0.1:8080/mqtt 0 100000`
//! prints messages per second for the given QoS. Run it against tabmq and against any
//! other broker's WebSocket listener to compare. The full benchmark suite is separate.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tabmq_protocol::client::{Client, ClientConfig, ClientEvent};
use tabmq_protocol::flow::SessionFlows;
use tabmq_protocol::packet::{Publish, Subscription, SubscriptionOptions};
use tabmq_protocol::{Properties, ProtocolVersion, QoS, Timestamp};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Peer {
    client: Client,
    ws: Ws,
    start: Instant,
}

impl Peer {
    async fn connect(url: &str, client_id: &str) -> Peer {
        let mut request = url.into_client_request().expect("a ws:// URL");
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "mqtt".parse().expect("header"));
        let (ws, _) = connect_async(request).await.expect("websocket connect");
        let config = ClientConfig {
            version: ProtocolVersion::V5,
            clean_start: true,
            session_expiry_interval: 0,
            receive_maximum: 1000,
            ..ClientConfig::new(client_id)
        };
        let mut peer = Peer {
            client: Client::new(config, SessionFlows::default()),
            ws,
            start: Instant::now(),
        };
        peer.client.connect(peer.now()).expect("fresh client");
        peer.flush().await;
        peer.until(|e| matches!(e, ClientEvent::Connected { .. })).await;
        peer
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.start.elapsed().as_millis() as u64)
    }

    async fn flush(&mut self) {
        while let Some(bytes) = self.client.poll_transmit() {
            self.ws.send(Message::Binary(bytes.into())).await.expect("send");
        }
    }

    /// Reads until an event matching `done` arrives; returns how many messages came meanwhile.
    async fn until(&mut self, done: impl Fn(&ClientEvent) -> bool) -> usize {
        let mut messages = 0;
        loop {
            while let Some(event) = self.client.poll_event() {
                if matches!(event, ClientEvent::Message(_)) {
                    messages += 1;
                }
                if done(&event) {
                    return messages;
                }
            }
            match self.ws.next().await {
                Some(Ok(Message::Binary(bytes))) => {
                    let now = self.now();
                    self.client.handle_bytes(&bytes, now);
                    self.flush().await;
                }
                Some(Ok(_)) => {}
                _ => panic!("connection closed"),
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .map_or("ws://127.0.0.1:8080/mqtt", String::as_str)
        .to_owned();
    let qos = match args.get(2).map(String::as_str) {
        Some("1") => QoS::AtLeastOnce,
        Some("2") => QoS::ExactlyOnce,
        _ => QoS::AtMostOnce,
    };
    let count: usize = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(50_000);

    let mut subscriber = Peer::connect(&url, "quick-sub").await;
    let options = SubscriptionOptions {
        qos,
        ..SubscriptionOptions::default()
    };
    let now = subscriber.now();
    subscriber
        .client
        .subscribe(
            vec![Subscription {
                filter: "quick/t".into(),
                options,
            }],
            Properties::default(),
            now,
        )
        .expect("connected");
    subscriber.flush().await;
    subscriber
        .until(|e| matches!(e, ClientEvent::Subscribed { .. }))
        .await;

    let mut publisher = Peer::connect(&url, "quick-pub").await;
    let started = Instant::now();
    let receiving = tokio::spawn(async move {
        let mut received = 0;
        let mut last = Instant::now();
        while received < count {
            let next = subscriber.until(|e| matches!(e, ClientEvent::Message(_)));
            match tokio::time::timeout(Duration::from_secs(3), next).await {
                Ok(got) => {
                    received += got;
                    last = Instant::now();
                }
                Err(_) => break, // the broker dropped the rest (QoS 0 to a slow consumer)
            }
        }
        (received, last)
    });
    for n in 0..count {
        let now = publisher.now();
        publisher
            .client
            .publish(Publish::new("quick/t", format!("{n:016}"), qos), now)
            .expect("valid");
        if n % 64 == 0 {
            publisher.flush().await;
        }
        // Keep the window moving for QoS 1/2 by reading acknowledgements as they come.
        if qos != QoS::AtMostOnce && publisher.client.session().outgoing.queued_len() > 1000 {
            publisher
                .until(|e| matches!(e, ClientEvent::PublishDone { .. }))
                .await;
        }
    }
    publisher.flush().await;
    while publisher.client.session().outgoing.inflight_len()
        + publisher.client.session().outgoing.queued_len()
        > 0
    {
        publisher
            .until(|e| matches!(e, ClientEvent::PublishDone { .. }))
            .await;
    }
    let (received, last) = receiving.await.expect("subscriber task");
    let elapsed = last.duration_since(started);
    println!(
        "{url} qos{}: {received} of {count} messages received in {:.2}s: {:.0} msg/s",
        qos.bits(),
        elapsed.as_secs_f64(),
        received as f64 / elapsed.as_secs_f64()
    );
}
