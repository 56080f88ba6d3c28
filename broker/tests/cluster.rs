//! Cluster mode, with a real three-server NATS cluster and two or three tabmq nodes:
//! messages published on one node reach subscribers on another, once each, at every QoS,
//! on topics NATS subjects cannot carry as they are; a subscription is effective on another
//! node within a bound measured here; a stored session resumes on another node with its
//! queue in order, and its expiry and its messages' expiry hold there; takeovers, the reject
//! policy and the flap guard work across nodes; share groups and retained messages span the
//! cluster; a node stops cleanly on SIGTERM and resumes its sessions when restarted; a node
//! without NATS or without JetStream refuses to start with a clear error.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::broker::{Broker, run_binary};
use support::client::{Closed, TestClient, config};
use support::nats::NatsCluster;
use tabmq_protocol::client::{ClientConfig, ClientEvent};
use tabmq_protocol::packet::Publish;
use tabmq_protocol::{Properties, ProtocolVersion, QoS, ReasonCode};

const V5: ProtocolVersion = ProtocolVersion::V5;

/// Publishes QoS 0 probes on `topic` until `subscriber`, on another node, gets one (its
/// node's interest has reached the publisher's NATS server), then drains the rest.
async fn probe_until_interest_propagated(
    publisher: &mut TestClient,
    subscriber: &mut TestClient,
    topic: &str,
) {
    let started = Instant::now();
    loop {
        publisher
            .publish(Publish::new(topic, "probe", QoS::AtMostOnce))
            .await;
        if subscriber.message(Duration::from_millis(100)).await.is_some() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "interest never propagated"
        );
    }
    while subscriber.message(Duration::from_millis(200)).await.is_some() {}
}

#[tokio::test]
async fn a_message_published_on_one_node_reaches_subscribers_on_another_once() {
    let nats = NatsCluster::start("routing");
    let node1 = Broker::start(&nats.node_config("node-1", 0));
    let node2 = Broker::start(&nats.node_config("node-2", 1));

    let mut subscriber = TestClient::tcp(node1.tcp, config(V5, "sub", true)).await;
    // Overlapping filters: NATS delivers to the node once per subscription; the session
    // still gets each message once.
    for filter in ["room/+/msg", "room/#", "odd/#"] {
        subscriber.subscribe(filter, QoS::ExactlyOnce).await;
    }
    let mut publisher = TestClient::tcp(node2.tcp, config(V5, "pub", true)).await;
    // Wait until node 1's interest has reached node 2's NATS server.
    probe_until_interest_propagated(&mut publisher, &mut subscriber, "room/0/msg").await;

    let topics = [
        "room/1/msg",
        "odd/a.b/c d",
        "odd/*/>",
        "odd/$x/%41",
        "odd//empty",
        "odd/ünï",
    ];
    let mut sent = Vec::new();
    for (n, topic) in topics.iter().enumerate() {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let payload = format!("{n}-{qos:?}");
            publisher
                .publish(Publish::new(*topic, payload.clone(), qos))
                .await;
            sent.push(((*topic).to_owned(), payload));
        }
    }
    let mut received: HashMap<(String, String), usize> = HashMap::new();
    while let Some(message) = subscriber.message(Duration::from_secs(1)).await {
        let key = (
            message.topic.clone(),
            String::from_utf8_lossy(&message.payload).into_owned(),
        );
        *received.entry(key).or_default() += 1;
    }
    for key in &sent {
        assert_eq!(received.get(key), Some(&1), "{key:?} once; received {received:?}");
    }
    assert_eq!(received.len(), sent.len(), "nothing else: {received:?}");
}

#[tokio::test]
async fn a_subscription_is_effective_on_another_node_soon_after_its_suback() {
    let nats = NatsCluster::start("interest");
    let node1 = Broker::start(&nats.node_config("node-1", 0));
    let node2 = Broker::start(&nats.node_config("node-2", 2));
    let mut publisher = TestClient::tcp(node2.tcp, config(V5, "pub", true)).await;
    let mut worst = Duration::ZERO;
    for trial in 0..10 {
        let mut subscriber = TestClient::tcp(node1.tcp, config(V5, &format!("sub-{trial}"), true)).await;
        let topic = format!("fresh/{trial}");
        subscriber.subscribe(&topic, QoS::AtMostOnce).await;
        let suback = Instant::now();
        loop {
            publisher
                .publish(Publish::new(topic.clone(), "x", QoS::AtMostOnce))
                .await;
            if subscriber.message(Duration::from_millis(5)).await.is_some() {
                break;
            }
            assert!(
                suback.elapsed() < Duration::from_secs(1),
                "trial {trial}: not effective within 1 s"
            );
        }
        worst = worst.max(suback.elapsed());
        subscriber.disconnect().await;
    }
    println!("a subscription was effective on the other node at most {worst:?} after its SUBACK (10 trials)");
}

#[tokio::test]
async fn a_client_id_connecting_on_another_node_takes_the_connection_over() {
    let nats = NatsCluster::start("takeover");
    let node1 = Broker::start(&nats.node_config("node-1", 0));
    let node2 = Broker::start(&nats.node_config("node-2", 1));
    for version in [ProtocolVersion::V311, V5] {
        let id = format!("device-{version:?}");
        let mut first = TestClient::ws(node1.ws, config(version, &id, true)).await;
        assert!(first.connack().await.is_ok());
        let mut second = TestClient::ws(node2.ws, config(version, &id, true)).await;
        assert!(second.connack().await.is_ok());
        let (cause, closed) = first.disconnection().await;
        if version == V5 {
            assert!(cause.is_takeover(), "{version:?}: got {cause:?}");
        }
        assert_eq!(
            closed,
            Some(Closed::WebSocket(4000, "session taken over".into())),
            "{version:?}"
        );
        assert!(second.is_connected(), "{version:?}: the newcomer stays");
        // And back: node 1 takes it from node 2.
        let mut third = TestClient::ws(node1.ws, config(version, &id, true)).await;
        assert!(third.connack().await.is_ok());
        let (_, closed) = second.disconnection().await;
        assert_eq!(closed, Some(Closed::WebSocket(4000, "session taken over".into())));
        assert!(third.is_connected());
    }
    // Each counted where the old connection was; one still closing (its close lingers for
    // the client's last bytes) when the next claim came is counted by the local path too.
    assert!(node1.metric("takeovers_total") + node2.metric("takeovers_total") >= 4);
}

/// Connects `client_id` with a stored session on `node`, subscribed to `queue/#` at QoS 2.
async fn persistent_subscriber(node: &Broker, client_id: &str) -> TestClient {
    let mut subscriber = TestClient::tcp(node.tcp, config(V5, client_id, false)).await;
    subscriber.subscribe("queue/#", QoS::ExactlyOnce).await;
    subscriber
}

#[tokio::test]
async fn a_persistent_session_resumes_on_another_node_with_its_queue_in_order() {
    let nats = NatsCluster::start("sessions");
    let node1 = Broker::start(&nats.node_config("node-1", 0));
    let node2 = Broker::start(&nats.node_config("node-2", 1));
    let node3 = Broker::start(&nats.node_config("node-3", 2));

    let mut subscriber = persistent_subscriber(&node1, "keeper").await;
    let mut publisher = TestClient::tcp(node2.tcp, config(V5, "pub", true)).await;
    probe_until_interest_propagated(&mut publisher, &mut subscriber, "queue/probe").await;
    subscriber.disconnect().await;

    let mut sent = Vec::new();
    for n in 0..200 {
        for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let payload = format!("{qos:?}-{n}");
            let reason = publisher
                .publish(Publish::new("queue/work", payload.clone(), qos))
                .await;
            assert_eq!(reason, ReasonCode::Success, "{payload} acknowledged");
            sent.push((payload, qos));
        }
    }

    let mut resumed = TestClient::tcp(node3.tcp, config(V5, "keeper", false)).await;
    assert_eq!(resumed.connack().await, Ok(true), "session present on node 3");
    let mut received = Vec::new();
    while let Some(message) = resumed.message(Duration::from_secs(2)).await {
        received.push((
            String::from_utf8_lossy(&message.payload).into_owned(),
            message.qos,
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let twice: Vec<_> = received.iter().filter(|m| !seen.insert(*m)).collect();
    assert!(twice.is_empty(), "each once; {} twice: {twice:?}", twice.len());
    assert_eq!(received.len(), sent.len(), "every message once");
    assert_eq!(received, sent, "in the order published, at the QoS granted");

    // Subscriptions came along: a new message reaches the session on node 3, and node 1
    // let go of the session (no copy is queued there any more).
    publisher
        .publish(Publish::new("queue/after", "after", QoS::AtLeastOnce))
        .await;
    let after = resumed
        .message(Duration::from_secs(2))
        .await
        .expect("delivered on node 3");
    assert_eq!(after.payload, "after".as_bytes());
    assert_eq!(node1.metric("sessions"), 0, "node 1 let go of the session");
    assert_eq!(node1.metric("messages_queued"), 0, "and of its queue");
}

#[tokio::test]
async fn the_flap_guard_stops_a_takeover_loop_between_nodes() {
    let nats = NatsCluster::start("flap");
    let flap = "[sessions]\nflap_max_takeovers = 3\nflap_window_secs = 30\nflap_cooldown_secs = 30\n";
    let nodes = [
        Broker::start(&format!("{}{flap}", nats.node_config("node-1", 0))),
        Broker::start(&format!("{}{flap}", nats.node_config("node-2", 1))),
    ];
    // Two clients sharing one id on two nodes, taking it from each other.
    let mut outcomes = Vec::new();
    let mut holders = Vec::new();
    for attempt in 0..12 {
        let node = &nodes[attempt % 2];
        let mut client = TestClient::tcp(node.tcp, config(V5, "shared-id", false)).await;
        outcomes.push(client.connack().await);
        holders.push(client);
    }
    let refused = outcomes
        .iter()
        .filter(|outcome| **outcome == Err(ReasonCode::ConnectionRateExceeded))
        .count();
    println!("12 alternating connections on two nodes: {outcomes:?}");
    assert!(
        outcomes[..4].iter().all(Result::is_ok),
        "the first takeovers are let through: {outcomes:?}"
    );
    assert!(refused >= 2, "the loop is stopped: {outcomes:?}");
    let refusals: u64 = nodes
        .iter()
        .map(|node| node.metric("flap_guard_refusals_total"))
        .sum();
    assert_eq!(refusals, refused as u64);
    // As on one node, the refusals leave the last client let in connected: a refused
    // newcomer takes nothing over first.
    let last = outcomes
        .iter()
        .rposition(Result::is_ok)
        .expect("some were let in");
    let mut holder = holders.swap_remove(last);
    let id = holder
        .publish_nowait(Publish::new("still/here", "1", QoS::AtLeastOnce))
        .await;
    let answer = holder
        .try_wait_for(
            |event| {
                matches!(
                    event,
                    ClientEvent::PublishDone { .. } | ClientEvent::Disconnected(_)
                )
            },
            Duration::from_secs(10),
        )
        .await;
    assert!(
        matches!(answer, Some(ClientEvent::PublishDone { id: done, .. }) if done == id),
        "the holder was taken over: {answer:?}"
    );
    // Leaving, it marks the id offline and keeps the block: the cooldown is not cut
    // short, and no node sees the id connected any more.
    holder.disconnect().await;
    let sessions = nats
        .jetstream()
        .await
        .get_key_value("tabmq-sessions")
        .await
        .expect("the ownership bucket");
    let key = tabmq_broker::cluster::hex_key("shared-id");
    let deadline = Instant::now() + Duration::from_secs(10);
    let entry = loop {
        let value = sessions.get(&key).await.expect("read").expect("an entry");
        let entry = String::from_utf8_lossy(&value).into_owned();
        if entry.contains(" offline") || Instant::now() > deadline {
            break entry;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        entry.contains(" offline") && entry.contains(" blocked="),
        "released, still blocked: {entry}"
    );
}

#[tokio::test]
async fn session_and_message_expiry_work_across_nodes_as_on_one() {
    let nats = NatsCluster::start("expiry");
    let node1 = Broker::start(&nats.node_config("node-1", 0));
    let node2 = Broker::start(&nats.node_config("node-2", 1));
    // A session that expires 1 s after its client leaves, and one that stays.
    let brief = ClientConfig {
        session_expiry_interval: 1,
        ..config(V5, "brief", false)
    };
    let mut short_lived = TestClient::tcp(node1.tcp, brief.clone()).await;
    short_lived.subscribe("e", QoS::AtLeastOnce).await;
    short_lived.disconnect().await;
    let mut keeper = persistent_subscriber(&node1, "keeper").await;
    keeper.subscribe("e", QoS::AtLeastOnce).await;
    keeper.disconnect().await;

    let mut publisher = TestClient::tcp(node2.tcp, config(V5, "pub", true)).await;
    for (payload, expiry) in [("short", 1), ("long", 100)] {
        let publish = Publish {
            properties: Properties {
                message_expiry_interval: Some(expiry),
                ..Properties::default()
            }
            .into(),
            ..Publish::new("e", payload, QoS::AtLeastOnce)
        };
        assert_eq!(publisher.publish(publish).await, ReasonCode::Success);
    }
    // The property under test is the passage of time itself.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let mut back = TestClient::tcp(node2.tcp, config(V5, "keeper", false)).await;
    assert_eq!(back.connack().await, Ok(true));
    let message = back
        .message(Duration::from_secs(5))
        .await
        .expect("the long-lived one");
    assert_eq!(message.payload, "long".as_bytes());
    let remaining = message
        .properties
        .message_expiry_interval
        .expect("remaining lifetime sent");
    assert!((96..=100).contains(&remaining), "remaining {remaining}");
    assert!(
        back.message(Duration::from_millis(500)).await.is_none(),
        "the expired one is not sent"
    );

    let mut expired = TestClient::tcp(node2.tcp, brief).await;
    assert_eq!(
        expired.connack().await,
        Ok(false),
        "the expired session is gone on every node"
    );
}

#[tokio::test]
async fn a_node_stops_on_sigterm_and_its_stored_session_resumes_on_restart() {
    let nats = NatsCluster::start("restart");
    let mut node = Broker::start(&nats.node_config("node-1", 0));
    let keeper = persistent_subscriber(&node, "keeper").await;
    keeper.disconnect().await;
    let mut publisher = TestClient::tcp(node.tcp, config(V5, "pub", true)).await;
    assert_eq!(
        publisher
            .publish(Publish::new("queue/1", "kept", QoS::AtLeastOnce))
            .await,
        ReasonCode::Success
    );
    // The cluster's tasks hold ways to the router: shutdown must stop them, not wait.
    assert!(node.terminate().success(), "a clean exit on SIGTERM");
    node.restart();
    let mut back = TestClient::tcp(node.tcp, config(V5, "keeper", false)).await;
    assert_eq!(
        back.connack().await,
        Ok(true),
        "the node resumed the session it held"
    );
    let message = back
        .message(Duration::from_secs(5))
        .await
        .expect("the queued message");
    assert_eq!(message.payload, "kept".as_bytes());
}

#[tokio::test]
async fn reject_policy_refuses_a_newcomer_on_another_node() {
    let nats = NatsCluster::start("reject");
    let reject = "[sessions]\ntakeover = \"reject\"\n";
    let node1 = Broker::start(&format!("{reject}{}", nats.node_config("node-1", 0)));
    let node2 = Broker::start(&format!("{reject}{}", nats.node_config("node-2", 2)));
    let mut holder = TestClient::tcp(node1.tcp, config(V5, "dev", true)).await;
    assert!(holder.connack().await.is_ok());
    for version in [V5, ProtocolVersion::V311] {
        let mut newcomer = TestClient::tcp(node2.tcp, config(version, "dev", true)).await;
        assert_eq!(
            newcomer.connack().await,
            Err(ReasonCode::ClientIdentifierNotValid),
            "{version:?}"
        );
    }
    assert!(holder.message(Duration::from_millis(300)).await.is_none());
    assert!(holder.is_connected(), "the holder keeps its connection");
    // Once it is gone, another node may have the client id.
    holder.disconnect().await;
    let started = Instant::now();
    loop {
        let mut newcomer = TestClient::tcp(node2.tcp, config(V5, "dev", true)).await;
        if newcomer.connack().await.is_ok() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the client id was never released"
        );
    }
}

#[tokio::test]
async fn a_share_group_with_members_on_two_nodes_gets_each_message_once() {
    let nats = NatsCluster::start("shared");
    let node1 = Broker::start(&nats.node_config("node-1", 0));
    let node2 = Broker::start(&nats.node_config("node-2", 1));
    let mut workers = Vec::new();
    for (node, id) in [(&node1, "w1"), (&node1, "w2"), (&node2, "w3")] {
        let mut worker = TestClient::tcp(node.tcp, config(V5, id, true)).await;
        worker.subscribe("$share/workers/jobs/+", QoS::AtLeastOnce).await;
        workers.push(worker);
    }
    let mut audit = TestClient::tcp(node2.tcp, config(V5, "audit", true)).await;
    audit.subscribe("jobs/#", QoS::AtLeastOnce).await;
    let mut publisher = TestClient::tcp(node1.tcp, config(V5, "boss", true)).await;
    // Probe until every node's interest is known to the others' NATS servers: the audit
    // subscription and the group's members on both nodes have been reached.
    let started = Instant::now();
    let mut reached = [false; 4];
    while reached.iter().any(|seen| !seen) {
        publisher
            .publish(Publish::new("jobs/probe", "p", QoS::AtMostOnce))
            .await;
        for (index, client) in workers.iter_mut().chain([&mut audit]).enumerate() {
            while client.message(Duration::from_millis(20)).await.is_some() {
                reached[index] = true;
            }
        }
        // One of node 1's two members is enough there.
        reached[0] |= reached[1];
        reached[1] = reached[0];
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "interest never propagated: {reached:?}"
        );
    }
    for client in workers.iter_mut().chain([&mut audit]) {
        while client.message(Duration::from_millis(100)).await.is_some() {}
    }

    const JOBS: usize = 40;
    for n in 0..JOBS {
        publisher
            .publish(Publish::new("jobs/x", n.to_string(), QoS::AtLeastOnce))
            .await;
    }
    // Until every job has arrived (or a deadline), then one more quiet look for copies.
    let mut done: HashMap<String, usize> = HashMap::new();
    let mut per_worker = vec![0; workers.len()];
    let mut audited = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    for wait in [Duration::from_millis(50), Duration::from_millis(300)] {
        loop {
            for (index, worker) in workers.iter_mut().enumerate() {
                while let Some(message) = worker.message(wait).await {
                    *done
                        .entry(String::from_utf8_lossy(&message.payload).into_owned())
                        .or_default() += 1;
                    per_worker[index] += 1;
                }
            }
            while audit.message(wait).await.is_some() {
                audited += 1;
            }
            let complete = per_worker.iter().sum::<usize>() >= JOBS && audited >= JOBS;
            if complete || Instant::now() > deadline || wait > Duration::from_millis(50) {
                break;
            }
        }
    }
    println!("{JOBS} jobs shared by w1, w2 (node 1) and w3 (node 2): {per_worker:?}");
    assert_eq!(done.len(), JOBS, "every job done: {done:?}");
    assert!(done.values().all(|count| *count == 1), "each once: {done:?}");
    assert!(
        per_worker[2] > 0 && per_worker[0] + per_worker[1] > 0,
        "both nodes' members work: {per_worker:?}"
    );
    assert_eq!(audited, JOBS, "the ordinary subscription gets every job");
}

/// The retained messages a new subscription to `state/#` on `node` gets, by topic.
async fn retained_state(node: &Broker, client_id: &str) -> Vec<(String, String)> {
    let mut subscriber = TestClient::tcp(node.tcp, config(V5, client_id, true)).await;
    subscriber.subscribe("state/#", QoS::AtLeastOnce).await;
    let mut state = Vec::new();
    while let Some(message) = subscriber.message(Duration::from_millis(300)).await {
        assert!(message.retain);
        state.push((
            message.topic.clone(),
            String::from_utf8_lossy(&message.payload).into_owned(),
        ));
    }
    state.sort();
    state
}

#[tokio::test]
async fn retained_messages_are_seen_from_every_node_also_one_started_later() {
    let nats = NatsCluster::start("retained");
    let node1 = Broker::start(&nats.node_config("node-1", 0));
    let node2 = Broker::start(&nats.node_config("node-2", 1));
    let mut publisher = TestClient::tcp(node1.tcp, config(V5, "pub", true)).await;
    for (topic, payload) in [("state/a", "on"), ("state/b", "x"), ("state/b", "")] {
        let retained = Publish {
            retain: true,
            ..Publish::new(topic, payload, QoS::AtLeastOnce)
        };
        publisher.publish(retained).await;
    }
    let expected = vec![("state/a".to_owned(), "on".to_owned())];
    // Node 2 had no subscriber to these topics: it follows the cluster's bucket.
    let started = Instant::now();
    let mut trial = 0;
    while retained_state(&node2, &format!("late-{trial}")).await != expected {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "node 2 never learned the retained state"
        );
        trial += 1;
    }
    let node3 = Broker::start(&nats.node_config("node-3", 2));
    assert_eq!(
        retained_state(&node3, "newcomer").await,
        expected,
        "loaded at startup"
    );
}

#[test]
fn a_node_without_nats_or_jetstream_refuses_to_start_with_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("tabmq-cluster-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("directory");
    let unused = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let address = unused.local_addr().expect("address");
    drop(unused);
    std::fs::write(
        dir.join("nowhere.toml"),
        format!("[cluster]\nnats = [\"nats://{address}\"]\nnode_id = \"n1\"\n"),
    )
    .expect("config");
    let args = [
        "--config",
        "nowhere.toml",
        "--ws",
        "",
        "--tcp",
        "127.0.0.1:0",
        "--data-dir",
        "data",
    ];
    let (code, stderr) = run_binary(&args, &dir);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot connect to NATS"), "{stderr}");

    std::fs::write(
        dir.join("nameless.toml"),
        format!("[cluster]\nnats = [\"nats://{address}\"]\n"),
    )
    .expect("config");
    let args = ["--config", "nameless.toml", "--ws", "", "--tcp", "127.0.0.1:0"];
    let (code, stderr) = run_binary(&args, &dir);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cluster.node_id"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
