//! Packets take effect in the order the broker read them, across connections: a PUBLISH
//! sent on one connection after a SUBSCRIBE (or UNSUBSCRIBE) has left another is routed
//! after the subscription changed, without waiting for the SUBACK. Timing-dependent, so
//! each promise is tried many times and every miss is counted.
//!
//! The promise is about packets in the order they reached the broker's sockets. The test
//! sends from one thread pinned to one CPU, so that the order it sends in is the order they
//! arrive in (see `support::cpu`): unpinned, a busy machine sometimes delivered the second
//! socket's bytes first, 2 times in 8,000.

mod support;

use support::broker::Broker;
use support::client::{TestClient, config};
use support::cpu::pin_this_thread;
use tabmq_protocol::client::ClientEvent;
use tabmq_protocol::packet::Publish;
use tabmq_protocol::{ProtocolVersion, QoS};

const TRIALS: usize = 1_000;

/// Publishes `topic`, then a sentinel on the same connection: the broker routes a
/// connection's messages in order, so a subscriber of both that sees the sentinel has
/// seen the topic's message by then, if it was routed to it at all.
async fn publish_then_sentinel(publisher: &mut TestClient, topic: &str, trial: usize) {
    publisher
        .publish_nowait(Publish::new(topic, "m", QoS::AtMostOnce))
        .await;
    publisher
        .publish_nowait(Publish::new(format!("sentinel/{trial}"), "s", QoS::AtMostOnce))
        .await;
}

/// Reads up to the trial's sentinel; whether `topic`'s message came before it.
async fn received_before_sentinel(subscriber: &mut TestClient, topic: &str, trial: usize) -> bool {
    let sentinel = format!("sentinel/{trial}");
    let mut received = false;
    loop {
        let event = subscriber
            .wait_for(|event| matches!(event, ClientEvent::Message(_)))
            .await;
        let ClientEvent::Message(message) = event else {
            unreachable!()
        };
        if message.topic == sentinel {
            return received;
        }
        received |= message.topic == topic;
    }
}

#[tokio::test]
async fn a_publish_sent_after_a_subscribe_left_another_connection_reaches_it() {
    pin_this_thread();
    let broker = Broker::start("");
    let mut publisher = TestClient::tcp(broker.tcp, config(ProtocolVersion::V311, "order-a", true)).await;
    // The subscriber on the other listener: WebSocket frames are read by the same loop.
    let mut subscriber = TestClient::ws(broker.ws, config(ProtocolVersion::V5, "order-b", true)).await;
    subscriber.subscribe("sentinel/+", QoS::AtMostOnce).await;
    let mut misses = 0;
    for trial in 0..TRIALS {
        let topic = format!("order/{trial}");
        subscriber.subscribe_nowait(&topic, QoS::AtMostOnce).await;
        publish_then_sentinel(&mut publisher, &topic, trial).await;
        if !received_before_sentinel(&mut subscriber, &topic, trial).await {
            misses += 1;
        }
        // A session holds at most 100 subscriptions.
        subscriber.unsubscribe_nowait(&topic).await;
    }
    assert_eq!(
        misses, 0,
        "{misses} of {TRIALS} publishes missed a subscription made before them"
    );
}

#[tokio::test]
async fn nothing_is_delivered_from_a_publish_sent_after_an_unsubscribe_left() {
    pin_this_thread();
    let broker = Broker::start("");
    let mut publisher = TestClient::tcp(broker.tcp, config(ProtocolVersion::V5, "order-a", true)).await;
    let mut subscriber = TestClient::tcp(broker.tcp, config(ProtocolVersion::V311, "order-b", true)).await;
    subscriber.subscribe("sentinel/+", QoS::AtMostOnce).await;
    let mut leaks = 0;
    for trial in 0..TRIALS {
        let topic = format!("order/{trial}");
        subscriber.subscribe(&topic, QoS::AtMostOnce).await;
        subscriber.unsubscribe_nowait(&topic).await;
        publish_then_sentinel(&mut publisher, &topic, trial).await;
        if received_before_sentinel(&mut subscriber, &topic, trial).await {
            leaks += 1;
        }
    }
    assert_eq!(
        leaks, 0,
        "{leaks} of {TRIALS} publishes were delivered after an unsubscribe"
    );
}
