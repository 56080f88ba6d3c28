//! Cluster mode when something dies, with a real three-server NATS cluster: a tabmq node
//! killed with SIGKILL in the middle of QoS 1 and QoS 2 loads, with subscribers online and
//! offline on it, and a NATS server killed under load (one no node uses, and the
//! subscriber's node's own). Every message acknowledged to its publisher arrives once the
//! subscribers have moved to another node; no QoS 2 message arrives twice; the will of a
//! session on a killed node, persistent or clean, is published once and seen from every
//! node; a share group with a member on the killed node loses no acknowledged message. Each kill under load is repeated at several points of the load and every outcome
//! counted.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::broker::Broker;
use support::client::{TestClient, config};
use support::nats::NatsCluster;
use tabmq_protocol::client::ClientConfig;
use tabmq_protocol::client::ClientEvent;
use tabmq_protocol::packet::{Publish, Will};
use tabmq_protocol::{ProtocolVersion, QoS, ReasonCode};

const V5: ProtocolVersion = ProtocolVersion::V5;

/// Publishes and waits for the acknowledgement: the reason, or `None` if the connection
/// ended first (nothing was promised).
async fn publish_acknowledged(client: &mut TestClient, publish: Publish) -> Option<ReasonCode> {
    if !client.is_connected() {
        return None;
    }
    let id = client.publish_nowait(publish).await;
    let event = client
        .try_wait_for(
            |event| match event {
                ClientEvent::PublishDone { id: done, .. } => *done == id,
                ClientEvent::Disconnected(_) => true,
                _ => false,
            },
            Duration::from_secs(15),
        )
        .await;
    match event {
        Some(ClientEvent::PublishDone { reason, .. }) => Some(reason),
        _ => None,
    }
}

/// Publishes `publishes` without waiting between them, calls `meanwhile`, then waits for
/// their acknowledgements: the payloads acknowledged with success.
async fn publish_window(
    client: &mut TestClient,
    publishes: Vec<Publish>,
    meanwhile: impl FnOnce(),
) -> Vec<(String, QoS)> {
    let mut pending = HashMap::new();
    for publish in publishes {
        if !client.is_connected() {
            break;
        }
        let acknowledged = (
            String::from_utf8_lossy(&publish.payload).into_owned(),
            publish.qos,
        );
        pending.insert(client.publish_nowait(publish).await, acknowledged);
    }
    meanwhile();
    let mut acknowledged = Vec::new();
    while !pending.is_empty() {
        let event = client
            .try_wait_for(
                |event| {
                    matches!(
                        event,
                        ClientEvent::PublishDone { .. } | ClientEvent::Disconnected(_)
                    )
                },
                Duration::from_secs(15),
            )
            .await;
        match event {
            Some(ClientEvent::PublishDone { id, reason }) => {
                if let Some(message) = pending.remove(&id)
                    && reason == ReasonCode::Success
                {
                    acknowledged.push(message);
                }
            }
            _ => break,
        }
    }
    acknowledged
}

/// The QoS of the `n`th message of a load: QoS 1 and QoS 2 in turn.
fn qos_of(n: usize) -> QoS {
    if n.is_multiple_of(2) {
        QoS::AtLeastOnce
    } else {
        QoS::ExactlyOnce
    }
}

/// What a subscriber received, by payload.
#[derive(Default)]
struct Received(HashMap<String, usize>);

impl Received {
    /// Takes every message `client` has, waiting up to `wait` for each.
    async fn take_from(&mut self, client: &mut TestClient, wait: Duration) {
        while let Some(message) = client.message(wait).await {
            *self
                .0
                .entry(String::from_utf8_lossy(&message.payload).into_owned())
                .or_default() += 1;
        }
    }

    /// The acknowledged messages missing, and the QoS 2 ones received more than once.
    fn check(&self, acknowledged: &[(String, QoS)]) -> (Vec<String>, Vec<String>) {
        let missing = acknowledged
            .iter()
            .filter(|(payload, _)| !self.0.contains_key(payload))
            .map(|(payload, _)| payload.clone())
            .collect();
        let doubled = acknowledged
            .iter()
            .filter(|(payload, qos)| *qos == QoS::ExactlyOnce && self.0.get(payload).is_some_and(|n| *n > 1))
            .map(|(payload, _)| payload.clone())
            .collect();
        (missing, doubled)
    }

    fn has_all(&self, acknowledged: &[(String, QoS)]) -> bool {
        acknowledged
            .iter()
            .all(|(payload, _)| self.0.contains_key(payload))
    }
}

/// Takes messages from each subscriber until each has every acknowledged message (or a
/// deadline passes), then looks once more, quietly, for copies.
async fn collect(subscribers: &mut [(TestClient, Received)], acknowledged: &[(String, QoS)]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    for (client, received) in subscribers.iter_mut() {
        while !received.has_all(acknowledged) && Instant::now() < deadline {
            received.take_from(client, Duration::from_millis(200)).await;
        }
        received.take_from(client, Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn a_node_killed_under_load_loses_no_acknowledged_message() {
    const MESSAGES: usize = 160;
    let mut outcomes = Vec::new();
    for (trial, kill_at) in [20, 80, 140].into_iter().enumerate() {
        let nats = NatsCluster::start(&format!("nodekill{trial}"));
        let mut node1 = Broker::start(&nats.node_config("node-1", 0));
        let node2 = Broker::start(&nats.node_config("node-2", 1));
        let node3 = Broker::start(&nats.node_config("node-3", 2));

        // Two stored sessions on node 1: one stays online, one goes offline.
        let mut online = TestClient::tcp(node1.tcp, config(V5, "online", false)).await;
        online.subscribe("load/#", QoS::ExactlyOnce).await;
        let mut offline = TestClient::tcp(node1.tcp, config(V5, "offline", false)).await;
        offline.subscribe("load/#", QoS::ExactlyOnce).await;
        let offline_session = offline.session();
        offline.disconnect().await;
        // Publishers on node 2 and on node 1 itself.
        let mut remote_publisher = TestClient::tcp(node2.tcp, config(V5, "pub-2", true)).await;
        let mut local_publisher = TestClient::tcp(node1.tcp, config(V5, "pub-1", true)).await;

        let mut acknowledged = Vec::new();
        let mut online_received = Received::default();
        for n in 0..MESSAGES {
            if n == kill_at {
                node1.kill();
            }
            for (name, publisher) in [("2", &mut remote_publisher), ("1", &mut local_publisher)] {
                let payload = format!("{name}-{n}");
                let publish = Publish::new("load/x", payload.clone(), qos_of(n));
                if publish_acknowledged(publisher, publish).await == Some(ReasonCode::Success) {
                    acknowledged.push((payload, qos_of(n)));
                }
            }
            online_received.take_from(&mut online, Duration::ZERO).await;
        }
        // The subscribers move to node 3; the online one's client resumes its own state.
        online_received
            .take_from(&mut online, Duration::from_millis(100))
            .await;
        let online_session = online.session();
        let resumed = TestClient::tcp_resuming(node3.tcp, config(V5, "online", false), online_session).await;
        let moved = TestClient::tcp_resuming(node3.tcp, config(V5, "offline", false), offline_session).await;
        let mut subscribers = [(resumed, online_received), (moved, Received::default())];
        for (client, _) in &mut subscribers {
            assert_eq!(
                client.connack().await,
                Ok(true),
                "trial {trial}: session present on node 3"
            );
        }
        collect(&mut subscribers, &acknowledged).await;
        for ((_, received), name) in subscribers.iter().zip(["online", "offline"]) {
            let (missing, doubled) = received.check(&acknowledged);
            let qos1_copies: usize = received.0.values().map(|n| n - 1).sum();
            outcomes.push(format!(
                "trial {trial} (kill after {kill_at}): {name} subscriber: {} acknowledged, {} missing, {} QoS 2 doubled, {qos1_copies} extra copies in all",
                acknowledged.len(),
                missing.len(),
                doubled.len()
            ));
            assert!(missing.is_empty(), "trial {trial}, {name}: missing {missing:?}");
            assert!(
                doubled.is_empty(),
                "trial {trial}, {name}: QoS 2 twice {doubled:?}"
            );
        }
        assert!(
            acknowledged.len() > MESSAGES,
            "trial {trial}: the load went on after the kill ({} acknowledged)",
            acknowledged.len()
        );
    }
    for outcome in outcomes {
        println!("{outcome}");
    }
}

#[tokio::test]
async fn a_share_group_loses_no_acknowledged_message_when_a_members_node_is_killed() {
    const MESSAGES: usize = 120;
    let mut outcomes = Vec::new();
    for (trial, kill_at) in [40, 80].into_iter().enumerate() {
        let nats = NatsCluster::start(&format!("sharekill{trial}"));
        let mut node1 = Broker::start(&nats.node_config("node-1", 0));
        let node2 = Broker::start(&nats.node_config("node-2", 1));
        let node3 = Broker::start(&nats.node_config("node-3", 2));
        // One member of the group on node 1, one on node 2, both with stored sessions.
        let mut members = Vec::new();
        for (node, id) in [(&node1, "m1"), (&node2, "m2")] {
            let mut member = TestClient::tcp(node.tcp, config(V5, id, false)).await;
            member.subscribe("$share/g/work/#", QoS::ExactlyOnce).await;
            members.push((member, Received::default()));
        }
        let mut publisher = TestClient::tcp(node3.tcp, config(V5, "boss", true)).await;
        // In windows of 20, node 1 killed while one is on its way.
        let mut acknowledged = Vec::new();
        for window in (0..MESSAGES).collect::<Vec<_>>().chunks(20) {
            let publishes = window
                .iter()
                .map(|n| Publish::new("work/x", format!("job-{n}"), qos_of(*n)))
                .collect();
            let kill = || {
                if window[0] == kill_at {
                    node1.kill();
                }
            };
            acknowledged.extend(publish_window(&mut publisher, publishes, kill).await);
            for (member, received) in &mut members {
                received.take_from(member, Duration::ZERO).await;
            }
        }
        // Node 1's member moves to node 2, with its own state.
        let (mut first, mut first_received) = members.remove(0);
        first_received.take_from(&mut first, Duration::ZERO).await;
        let moved = TestClient::tcp_resuming(node2.tcp, config(V5, "m1", false), first.session()).await;
        members.insert(0, (moved, first_received));
        assert_eq!(
            members[0].0.connack().await,
            Ok(true),
            "trial {trial}: m1's session present"
        );
        // The group, as one subscriber: every acknowledged message in one of its members.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut group = Received::default();
        loop {
            for (member, received) in &mut members {
                received.take_from(member, Duration::from_millis(100)).await;
            }
            group.0.clear();
            for (_, received) in &members {
                for (payload, count) in &received.0 {
                    *group.0.entry(payload.clone()).or_default() += count;
                }
            }
            if group.has_all(&acknowledged) || Instant::now() > deadline {
                break;
            }
        }
        let (missing, doubled) = group.check(&acknowledged);
        outcomes.push(format!(
            "trial {trial} (kill after {kill_at}): {} acknowledged, {} missing, {} QoS 2 in two members, m1 {} / m2 {}",
            acknowledged.len(),
            missing.len(),
            doubled.len(),
            members[0].1.0.len(),
            members[1].1.0.len()
        ));
        assert!(missing.is_empty(), "trial {trial}: missing {missing:?}");
    }
    for outcome in outcomes {
        println!("{outcome}");
    }
}

/// Connects `client_id`'s client again, resuming its session, if its connection ended
/// (counted in `reconnections`); a refusal while storage fails is tried again.
async fn stay_connected(client: &mut TestClient, node: &Broker, client_id: &str, reconnections: &mut usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client.is_connected() {
        assert!(Instant::now() < deadline, "{client_id} could not connect again");
        let session = client.session();
        *client = TestClient::tcp_resuming(node.tcp, config(V5, client_id, false), session).await;
        if client.connack().await.is_ok() {
            *reconnections += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn a_nats_server_killed_under_load_loses_no_acknowledged_message() {
    const MESSAGES: usize = 200;
    let mut outcomes = Vec::new();
    // Server 0 is used by no node (it may lead streams); server 1 is the subscriber's
    // node's own, which then reconnects to another one.
    for (trial, (kill_at, server)) in [(30, 0), (120, 1), (30, 1), (120, 0)].into_iter().enumerate() {
        let mut nats = NatsCluster::start(&format!("natskill{trial}"));
        let node1 = Broker::start(&nats.node_config("node-1", 1));
        let node2 = Broker::start(&nats.node_config("node-2", 2));
        let mut subscriber = TestClient::tcp(node1.tcp, config(V5, "sub", false)).await;
        subscriber.subscribe("load/#", QoS::ExactlyOnce).await;
        let mut publisher = TestClient::tcp(node2.tcp, config(V5, "pub", true)).await;
        let mut reconnections = 0;

        let mut acknowledged = Vec::new();
        let mut refused = 0;
        let mut received = Received::default();
        let started = Instant::now();
        let mut n = 0;
        // Until MESSAGES are acknowledged: refusals while JetStream elects new leaders are
        // counted, and the load goes on. A stored session's connection is closed while its
        // storage fails; the subscriber comes back as a client would.
        while acknowledged.len() < MESSAGES {
            if n == kill_at {
                nats.kill(server);
            }
            let payload = format!("m-{n}");
            match publish_acknowledged(&mut publisher, Publish::new("load/x", payload.clone(), qos_of(n)))
                .await
            {
                Some(ReasonCode::Success) => acknowledged.push((payload, qos_of(n))),
                Some(_) => {
                    refused += 1;
                    // Refused at once while storage fails: no need to hammer.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                None => panic!("trial {trial}: the publisher's node dropped it"),
            }
            received.take_from(&mut subscriber, Duration::ZERO).await;
            stay_connected(&mut subscriber, &node1, "sub", &mut reconnections).await;
            n += 1;
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "trial {trial}: service did not go on ({} acknowledged, {refused} refused)",
                acknowledged.len()
            );
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while !received.has_all(&acknowledged) && Instant::now() < deadline {
            received
                .take_from(&mut subscriber, Duration::from_millis(200))
                .await;
            stay_connected(&mut subscriber, &node1, "sub", &mut reconnections).await;
        }
        received
            .take_from(&mut subscriber, Duration::from_millis(300))
            .await;
        let subscribers = [(subscriber, received)];
        let (missing, doubled) = subscribers[0].1.check(&acknowledged);
        outcomes.push(format!(
            "trial {trial} (NATS server {server} killed after {kill_at}): {} acknowledged, {refused} refused meanwhile, subscriber reconnected {reconnections} times, {} missing, {} QoS 2 doubled, in {:?}",
            acknowledged.len(),
            missing.len(),
            doubled.len(),
            started.elapsed()
        ));
        assert!(missing.is_empty(), "trial {trial}: missing {missing:?}");
        assert!(doubled.is_empty(), "trial {trial}: QoS 2 twice {doubled:?}");
    }
    for outcome in outcomes {
        println!("{outcome}");
    }
}

#[tokio::test]
async fn the_will_of_a_session_on_a_killed_node_is_published_once_and_seen_from_every_node() {
    let nats = NatsCluster::start("wills");
    let mut node1 = Broker::start(&nats.node_config("node-1", 0));
    let node2 = Broker::start(&nats.node_config("node-2", 1));
    let node3 = Broker::start(&nats.node_config("node-3", 2));
    let mut watchers = Vec::new();
    for (index, node) in [&node2, &node3].into_iter().enumerate() {
        let mut watcher = TestClient::tcp(node.tcp, config(V5, &format!("watcher-{index}"), true)).await;
        watcher.subscribe("status/#", QoS::AtLeastOnce).await;
        watchers.push(watcher);
    }
    let device_config = ClientConfig {
        will: Some(Will {
            topic: "status/device".into(),
            payload: "gone".into(),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Default::default(),
        }),
        ..config(V5, "device", false)
    };
    let mut device = TestClient::tcp(node1.tcp, device_config).await;
    assert!(device.connack().await.is_ok());
    // A clean 3.1.1 session: nothing of it outlives its connection but its will.
    let clean_config = ClientConfig {
        will: Some(Will {
            topic: "status/clean".into(),
            payload: "clean gone".into(),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Default::default(),
        }),
        ..config(ProtocolVersion::V311, "clean-device", true)
    };
    let mut clean_device = TestClient::tcp(node1.tcp, clean_config).await;
    assert!(clean_device.connack().await.is_ok());

    let killed = Instant::now();
    node1.kill();
    for (index, watcher) in watchers.iter_mut().enumerate() {
        let mut wills = Vec::new();
        for _ in 0..2 {
            let will = watcher
                .message(Duration::from_secs(20))
                .await
                .unwrap_or_else(|| panic!("watcher {index}: wills {wills:?} only"));
            wills.push(String::from_utf8_lossy(&will.payload).into_owned());
        }
        wills.sort();
        assert_eq!(wills, ["clean gone", "gone"], "watcher {index}");
        println!(
            "watcher {index} got both wills {:?} after the kill",
            killed.elapsed()
        );
    }
    // Once: the surviving nodes both saw node 1 die; one adopted each session.
    for (index, watcher) in watchers.iter_mut().enumerate() {
        assert!(
            watcher.message(Duration::from_secs(3)).await.is_none(),
            "watcher {index}: the will came twice"
        );
    }
    assert_eq!(
        node2.metric("sessions") + node3.metric("sessions"),
        3,
        "the watchers' two sessions and the adopted persistent one (the clean one ended)"
    );
    let mut back = TestClient::tcp(node3.tcp, config(V5, "device", false)).await;
    assert_eq!(back.connack().await, Ok(true), "the adopted session resumes");
}
