//! What the broker acknowledged survives SIGKILL: sessions, subscriptions, retained
//! messages, queued and in-flight QoS 1/2 messages; QoS 2 is never delivered twice.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use support::broker::Broker;
use support::client::{TestClient, config};
use tabmq_protocol::client::ClientEvent;
use tabmq_protocol::packet::Publish;
use tabmq_protocol::{ProtocolVersion, QoS, ReasonCode};

const MESSAGES: usize = 300;

/// Receives until every payload in `expected` has arrived; returns arrival counts.
async fn receive_all(client: &mut TestClient, expected: usize, counts: &mut HashMap<Vec<u8>, usize>) {
    while counts.len() < expected {
        let Some(message) = client.message(Duration::from_secs(10)).await else {
            panic!("only {} of {expected} distinct messages arrived", counts.len());
        };
        *counts.entry(message.payload.to_vec()).or_default() += 1;
    }
}

async fn sigkill_during_load(qos: QoS) {
    let version = ProtocolVersion::V5;
    let mut broker = Broker::start("");
    let mut offline = TestClient::tcp(broker.tcp, config(version, "offline-sub", false)).await;
    offline.subscribe("load/#", qos).await;
    offline.disconnect().await;
    let mut online = TestClient::tcp(broker.tcp, config(version, "online-sub", false)).await;
    online.subscribe("load/#", qos).await;

    let mut publisher = TestClient::tcp(broker.tcp, config(version, "publisher", false)).await;
    for n in 0..MESSAGES {
        publisher
            .publish_nowait(Publish::new("load/x", Bytes::from(format!("m{n}")), qos))
            .await;
    }
    // Kill the broker once part of the load is acknowledged.
    let mut acknowledged = 0;
    while acknowledged < MESSAGES / 3 {
        let done = publisher
            .wait_for(|e| matches!(e, ClientEvent::PublishDone { .. }))
            .await;
        assert!(matches!(
            done,
            ClientEvent::PublishDone {
                reason: ReasonCode::Success,
                ..
            }
        ));
        acknowledged += 1;
    }
    let mut online_counts: HashMap<Vec<u8>, usize> = HashMap::new();
    while let Some(message) = online.message(Duration::from_millis(1)).await {
        *online_counts.entry(message.payload.to_vec()).or_default() += 1;
    }
    broker.kill();
    broker.restart();

    // Every client comes back with its own session state, as a real client would. What
    // it still has to see acknowledged is what its session holds: more acknowledgements
    // than the ones counted above may have arrived before the kill.
    let session = publisher.session();
    let remaining = session.outgoing.inflight_len() + session.outgoing.queued_len();
    let mut publisher =
        TestClient::tcp_resuming(broker.tcp, config(version, "publisher", false), session).await;
    assert_eq!(
        publisher.connack().await,
        Ok(true),
        "the publisher's session survived"
    );
    let mut online =
        TestClient::tcp_resuming(broker.tcp, config(version, "online-sub", false), online.session()).await;
    assert_eq!(online.connack().await, Ok(true));
    let mut offline = TestClient::tcp(broker.tcp, config(version, "offline-sub", false)).await;
    assert_eq!(offline.connack().await, Ok(true));

    // The publisher resends what was not acknowledged; in the end all of it is.
    for _ in 0..remaining {
        publisher
            .wait_for(|e| {
                matches!(
                    e,
                    ClientEvent::PublishDone {
                        reason: ReasonCode::Success,
                        ..
                    }
                )
            })
            .await;
    }
    let mut offline_counts = HashMap::new();
    receive_all(&mut online, MESSAGES, &mut online_counts).await;
    receive_all(&mut offline, MESSAGES, &mut offline_counts).await;
    // A short grace period to catch duplicates still on their way.
    while let Some(message) = online.message(Duration::from_millis(300)).await {
        *online_counts.entry(message.payload.to_vec()).or_default() += 1;
    }
    while let Some(message) = offline.message(Duration::from_millis(300)).await {
        *offline_counts.entry(message.payload.to_vec()).or_default() += 1;
    }
    for n in 0..MESSAGES {
        let payload = format!("m{n}").into_bytes();
        assert!(
            online_counts.contains_key(&payload),
            "online subscriber lost m{n}"
        );
        assert!(
            offline_counts.contains_key(&payload),
            "offline subscriber lost m{n}"
        );
    }
    if qos == QoS::ExactlyOnce {
        let duplicates: Vec<_> = online_counts
            .iter()
            .chain(&offline_counts)
            .filter(|(_, count)| **count > 1)
            .collect();
        assert!(duplicates.is_empty(), "QoS 2 delivered twice: {duplicates:?}");
    }
}

#[tokio::test]
async fn qos1_load_survives_sigkill() {
    sigkill_during_load(QoS::AtLeastOnce).await;
}

#[tokio::test]
async fn qos2_load_survives_sigkill_without_duplicates() {
    sigkill_during_load(QoS::ExactlyOnce).await;
}

#[tokio::test]
async fn sessions_subscriptions_and_retained_survive_sigkill() {
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let mut broker = Broker::start("");
        let mut subscriber = TestClient::ws(broker.ws, config(version, "sub", false)).await;
        subscriber.subscribe("news/+", QoS::AtLeastOnce).await;
        subscriber.disconnect().await;
        let mut publisher = TestClient::ws(broker.ws, config(version, "pub", true)).await;
        let retained = Publish {
            retain: true,
            ..Publish::new("news/today", "headline", QoS::AtLeastOnce)
        };
        assert_eq!(publisher.publish(retained).await, ReasonCode::Success);
        broker.kill();
        broker.restart();

        let mut subscriber = TestClient::ws(broker.ws, config(version, "sub", false)).await;
        assert_eq!(
            subscriber.connack().await,
            Ok(true),
            "{version:?}: session present after SIGKILL"
        );
        let queued = subscriber
            .message(Duration::from_secs(5))
            .await
            .expect("queued message survived");
        assert_eq!(queued.payload.as_ref(), b"headline");
        let mut late = TestClient::ws(broker.ws, config(version, "late", true)).await;
        late.subscribe("news/#", QoS::AtMostOnce).await;
        let retained = late
            .message(Duration::from_secs(5))
            .await
            .expect("retained message survived");
        assert!(retained.retain);
        assert_eq!(retained.payload.as_ref(), b"headline");
    }
}

#[tokio::test]
async fn sigterm_exits_cleanly_and_keeps_sessions() {
    let mut broker = Broker::start("");
    let mut client = TestClient::tcp(broker.tcp, config(ProtocolVersion::V5, "keeper", false)).await;
    client.subscribe("t", QoS::AtLeastOnce).await;
    let status = broker.terminate();
    assert_eq!(status.code(), Some(0), "log:\n{}", broker.log());
    let (cause, _) = client.disconnection().await;
    assert_eq!(
        cause,
        tabmq_protocol::client::DisconnectCause::ServerDisconnect {
            reason: ReasonCode::ServerShuttingDown,
            reason_string: Some("server shutting down".into())
        }
    );
    broker.restart();
    let mut client = TestClient::tcp(broker.tcp, config(ProtocolVersion::V5, "keeper", false)).await;
    assert_eq!(client.connack().await, Ok(true));
    let mut publisher = TestClient::tcp(broker.tcp, config(ProtocolVersion::V5, "p", true)).await;
    publisher
        .publish(Publish::new("t", "after restart", QoS::AtLeastOnce))
        .await;
    assert!(
        client.message(Duration::from_secs(5)).await.is_some(),
        "the subscription survived"
    );
}
