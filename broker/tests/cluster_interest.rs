//! Which of the cluster's QoS 1/2 messages a node receives, with a real three-server NATS
//! cluster and three tabmq nodes: only those its sessions subscribe to (counted by its
//! JetStream consumer); every one published after a SUBACK, on any node, reaches the
//! subscription (many trials, each publishing right after the SUBACK); none published
//! before the subscription reaches it, though JetStream gives a consumer whose filter
//! changed the messages after its acknowledgement floor again; a share group on a leading
//! wildcard gets no `$` topic from another node, at any QoS (NATS wildcards reach them);
//! and a stored session's mark of the messages it is done with, which keeps any node from
//! giving them again, is stored in JetStream with it and removed with it.

mod support;

use std::time::Duration;

use support::broker::Broker;
use support::client::{TestClient, config};
use support::nats::NatsCluster;
use tabmq_broker::cluster::{DurableMessages, hex_key};
use tabmq_broker::store::{JetStreamStore, SessionRecord, Store, StoreOp};
use tabmq_protocol::packet::Publish;
use tabmq_protocol::{ProtocolVersion, QoS};

const V5: ProtocolVersion = ProtocolVersion::V5;

/// How many messages the stream gave node `node_id`'s consumer so far.
async fn delivered_to(nats: &NatsCluster, node_id: &str) -> u64 {
    let stream = nats
        .jetstream()
        .await
        .get_stream("tabmq-messages")
        .await
        .expect("the stream of QoS 1/2 messages");
    let info = stream
        .consumer_info(format!("node-{}", hex_key(node_id)))
        .await
        .expect("the node's consumer");
    info.delivered.consumer_sequence
}

async fn payloads(client: &mut TestClient, count: usize) -> Vec<String> {
    let mut received = Vec::new();
    while received.len() < count {
        let message = client
            .message(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("{} of {count} messages arrived: {received:?}", received.len()));
        received.push(String::from_utf8_lossy(&message.payload).into_owned());
    }
    received
}

#[tokio::test]
async fn a_node_receives_only_the_qos_1_and_2_messages_its_sessions_subscribe_to() {
    let nats = NatsCluster::start("only-wanted");
    let node1 = Broker::start(&nats.node_config("node-1", 0));
    let node2 = Broker::start(&nats.node_config("node-2", 1));
    let node3 = Broker::start(&nats.node_config("node-3", 2));
    let mut on_a = TestClient::tcp(node1.tcp, config(V5, "on-a", true)).await;
    on_a.subscribe("a/#", QoS::ExactlyOnce).await;
    on_a.subscribe("a/+/deep", QoS::ExactlyOnce).await;
    let mut on_b = TestClient::tcp(node2.tcp, config(V5, "on-b", true)).await;
    on_b.subscribe("b/+", QoS::ExactlyOnce).await;
    let mut publisher = TestClient::tcp(node3.tcp, config(V5, "pub", true)).await;
    for n in 0..5 {
        for (topic, qos) in [
            ("a/x", QoS::AtLeastOnce),
            ("b/y", QoS::ExactlyOnce),
            ("c/z", QoS::AtLeastOnce),
            ("b/y/z", QoS::ExactlyOnce),
        ] {
            publisher
                .publish(Publish::new(topic, format!("{topic} {n}"), qos))
                .await;
        }
    }
    let expected = |topic: &str| (0..5).map(|n| format!("{topic} {n}")).collect::<Vec<_>>();
    assert_eq!(payloads(&mut on_a, 5).await, expected("a/x"));
    assert_eq!(payloads(&mut on_b, 5).await, expected("b/y"));
    assert_eq!(delivered_to(&nats, "node-1").await, 5, "node 1: a/x only");
    assert_eq!(delivered_to(&nats, "node-2").await, 5, "node 2: b/y only");
    assert_eq!(delivered_to(&nats, "node-3").await, 0, "node 3: no subscriber");
}

#[tokio::test]
async fn a_qos_1_or_2_message_published_right_after_a_suback_reaches_the_subscription() {
    let nats = NatsCluster::start("at-suback");
    let node1 = Broker::start(&nats.node_config("node-1", 0));
    let node2 = Broker::start(&nats.node_config("node-2", 1));
    let mut subscriber = TestClient::tcp(node1.tcp, config(V5, "sub", true)).await;
    let mut publisher = TestClient::tcp(node2.tcp, config(V5, "pub", true)).await;
    const TRIALS: usize = 30;
    let mut arrived = 0;
    for trial in 0..TRIALS {
        let topic = format!("fresh/{trial}");
        let qos = if trial % 2 == 0 {
            QoS::AtLeastOnce
        } else {
            QoS::ExactlyOnce
        };
        subscriber.subscribe(&topic, qos).await;
        publisher
            .publish(Publish::new(topic.clone(), format!("{trial}"), qos))
            .await;
        if let Some(message) = subscriber.message(Duration::from_secs(5)).await {
            assert_eq!(message.topic, topic);
            arrived += 1;
        }
    }
    println!("{arrived} of {TRIALS} messages published right after the SUBACK arrived");
    assert_eq!(arrived, TRIALS);
}

#[tokio::test]
async fn a_message_published_before_a_subscription_does_not_reach_it() {
    let nats = NatsCluster::start("before");
    let node1 = Broker::start(&nats.node_config("node-1", 0));
    let node2 = Broker::start(&nats.node_config("node-2", 1));
    let mut subscriber = TestClient::tcp(node1.tcp, config(V5, "sub", true)).await;
    let mut publisher = TestClient::tcp(node2.tcp, config(V5, "pub", true)).await;
    // The node's consumer has taken and acknowledged a message: its acknowledgement floor
    // is behind the messages below.
    subscriber.subscribe("warm", QoS::AtLeastOnce).await;
    publisher
        .publish(Publish::new("warm", "w", QoS::AtLeastOnce))
        .await;
    assert_eq!(payloads(&mut subscriber, 1).await, ["w"]);
    const TRIALS: usize = 5;
    for trial in 0..TRIALS {
        let topic = format!("late/{trial}");
        for early in 0..3 {
            publisher
                .publish(Publish::new(
                    topic.clone(),
                    format!("early {early}"),
                    QoS::AtLeastOnce,
                ))
                .await;
        }
        subscriber.subscribe(&topic, QoS::AtLeastOnce).await;
        publisher
            .publish(Publish::new(topic.clone(), "after", QoS::AtLeastOnce))
            .await;
        assert_eq!(
            payloads(&mut subscriber, 1).await,
            ["after"],
            "trial {trial}: the first message is the one published after the SUBACK"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sessions_mark_of_messages_done_with_is_stored_and_removed_with_it() {
    let nats = NatsCluster::start("done");
    let jetstream = nats.jetstream().await;
    let (durable, _consumer) = DurableMessages::open(&jetstream, "tabmq", 3, "node-x")
        .await
        .expect("the stream of QoS 1/2 messages");
    let store = JetStreamStore::open(jetstream, "tabmq", 3, durable)
        .await
        .expect("the state stream");
    let commit = |ops: Vec<StoreOp>| {
        let mut store = store.clone();
        tokio::task::spawn_blocking(move || store.commit(&ops, true))
    };
    let client_id = "device".to_owned();
    let put = vec![
        StoreOp::PutSession {
            client_id: client_id.clone(),
            record: Box::new(SessionRecord::new(V5)),
        },
        StoreOp::PutStreamDone {
            client_id: client_id.clone(),
            through: 41,
        },
        StoreOp::PutStreamDone {
            client_id: client_id.clone(),
            through: 42,
        },
    ];
    commit(put).await.expect("joined").expect("committed");
    let loaded = store
        .load_session(&client_id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(loaded.stream_done, 42, "the latest mark");
    commit(vec![StoreOp::DeleteSession {
        client_id: client_id.clone(),
    }])
    .await
    .expect("joined")
    .expect("committed");
    assert_eq!(store.load_session(&client_id).await.expect("read"), None);
}

#[tokio::test]
async fn a_share_group_on_a_leading_wildcard_gets_no_dollar_topic_from_another_node() {
    let nats = NatsCluster::start("dollar");
    let node1 = Broker::start(&nats.node_config("node-1", 0));
    let node2 = Broker::start(&nats.node_config("node-2", 1));
    let mut member = TestClient::tcp(node1.tcp, config(V5, "member", true)).await;
    member.subscribe("$share/g/#", QoS::AtLeastOnce).await;
    let mut publisher = TestClient::tcp(node2.tcp, config(V5, "pub", true)).await;
    // NATS's `>` reaches `$app/…`; MQTT's `#` does not. A marker after each kind of
    // message must be the next thing the member gets.
    for (n, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        let marker = format!("marker {n}");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            publisher
                .publish(Publish::new("$app/status", "dollar", qos))
                .await;
            publisher
                .publish(Publish::new("app/status", marker.clone(), qos))
                .await;
            // QoS 0 between nodes is lost until the member's interest reaches node 2.
            if let Some(message) = member.message(Duration::from_millis(300)).await {
                assert_eq!(
                    message.topic, "app/status",
                    "{qos:?}: a $ topic reached the group"
                );
                assert_eq!(message.payload, marker.as_bytes());
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{qos:?}: nothing reached the group"
            );
        }
        while let Some(message) = member.message(Duration::from_millis(200)).await {
            assert_eq!(
                message.topic, "app/status",
                "{qos:?}: a $ topic reached the group"
            );
        }
    }
}
