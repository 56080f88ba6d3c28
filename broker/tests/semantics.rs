//! MQTT semantics end to end: retained messages, wills, expiry, shared subscriptions,
//! no-local, subscription identifiers, client ids, `$` topics, keep-alive.

mod support;

use std::time::Duration;

use bytes::Bytes;
use support::broker::Broker;
use support::client::{TestClient, config};
use tabmq_protocol::client::ClientEvent;
use tabmq_protocol::packet::{Publish, RetainHandling, Subscription, SubscriptionOptions, Will};
use tabmq_protocol::{Properties, ProtocolVersion, QoS, ReasonCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const V3: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;
const BRIEF: Duration = Duration::from_millis(300);

fn retained(topic: &str, payload: &'static str) -> Publish {
    Publish {
        retain: true,
        ..Publish::new(topic, payload, QoS::AtLeastOnce)
    }
}

#[tokio::test]
async fn retained_messages_are_set_replaced_deleted_and_delivered_on_subscribe() {
    let broker = Broker::start("");
    let mut publisher = TestClient::tcp(broker.tcp, config(V3, "p", true)).await;
    publisher.publish(retained("r/a", "one")).await;
    publisher.publish(retained("r/a", "two")).await;
    publisher.publish(retained("r/b", "bee")).await;
    publisher.publish(retained("r/b", "")).await;
    let mut subscriber = TestClient::tcp(broker.tcp, config(V3, "s", true)).await;
    subscriber.subscribe("r/#", QoS::AtLeastOnce).await;
    let message = subscriber
        .message(Duration::from_secs(5))
        .await
        .expect("retained");
    assert_eq!(
        (message.topic.as_str(), message.payload.as_ref(), message.retain),
        ("r/a", &b"two"[..], true)
    );
    assert!(
        subscriber.message(BRIEF).await.is_none(),
        "r/b was deleted, r/a sent once"
    );
    assert_eq!(broker.metric("retained_messages"), 1);
}

#[tokio::test]
async fn retain_handling_and_retain_as_published() {
    let broker = Broker::start("");
    let mut publisher = TestClient::tcp(broker.tcp, config(V5, "p", true)).await;
    publisher.publish(retained("h/x", "kept")).await;
    let mut subscriber = TestClient::tcp(broker.tcp, config(V5, "s", true)).await;
    let options = |retain_handling, retain_as_published| SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        retain_handling,
        retain_as_published,
        ..SubscriptionOptions::default()
    };
    let subscribe = |filter: &str, options| {
        vec![Subscription {
            filter: filter.into(),
            options,
        }]
    };
    // Do not send: nothing arrives at subscribe time.
    subscriber
        .subscribe_with(subscribe("h/#", options(RetainHandling::DoNotSend, true)))
        .await;
    assert!(subscriber.message(BRIEF).await.is_none());
    // Retain-as-published keeps RETAIN on live messages; without it, it is cleared.
    publisher.publish(retained("h/x", "live")).await;
    assert!(
        subscriber
            .message(Duration::from_secs(5))
            .await
            .expect("live")
            .retain
    );
    subscriber
        .subscribe_with(subscribe("h/#", options(RetainHandling::SendIfNew, false)))
        .await;
    assert!(
        subscriber.message(BRIEF).await.is_none(),
        "send-if-new: the subscription already existed"
    );
    publisher.publish(retained("h/x", "again")).await;
    assert!(
        !subscriber
            .message(Duration::from_secs(5))
            .await
            .expect("live")
            .retain
    );
}

fn will(topic: &str, delay: Option<u32>) -> Will {
    Will {
        topic: topic.into(),
        payload: Bytes::from_static(b"bye"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Properties {
            will_delay_interval: delay,
            ..Properties::default()
        }
        .into(),
    }
}

#[tokio::test]
async fn will_fires_on_abrupt_close_but_not_after_disconnect() {
    for version in [V3, V5] {
        let broker = Broker::start("");
        let mut watcher = TestClient::tcp(broker.tcp, config(version, "w", true)).await;
        watcher.subscribe("will/#", QoS::AtLeastOnce).await;
        let mut polite = config(version, "polite", true);
        polite.will = Some(will("will/polite", None));
        TestClient::tcp(broker.tcp, polite).await.disconnect().await;
        let mut abrupt = config(version, "abrupt", true);
        abrupt.will = Some(will("will/abrupt", None));
        TestClient::tcp(broker.tcp, abrupt).await.abort();
        let message = watcher.message(Duration::from_secs(5)).await.expect("a will");
        assert_eq!(message.topic, "will/abrupt", "{version:?}");
        assert!(watcher.message(BRIEF).await.is_none());
    }
}

#[tokio::test]
async fn will_delay_is_cancelled_by_a_reconnect_and_fires_after_it_otherwise() {
    let broker = Broker::start("");
    let mut watcher = TestClient::tcp(broker.tcp, config(V5, "w", true)).await;
    watcher.subscribe("will/#", QoS::AtLeastOnce).await;
    let mut delayed = config(V5, "delayed", false);
    delayed.will = Some(will("will/delayed", Some(2)));
    TestClient::tcp(broker.tcp, delayed.clone()).await.abort();
    let back = TestClient::tcp(broker.tcp, config(V5, "delayed", false)).await;
    assert!(
        watcher.message(Duration::from_secs(3)).await.is_none(),
        "reconnecting cancelled the will"
    );
    back.disconnect().await;
    TestClient::tcp(broker.tcp, delayed).await.abort();
    let message = watcher
        .message(Duration::from_secs(5))
        .await
        .expect("the delayed will");
    assert_eq!(message.topic, "will/delayed");
}

#[tokio::test]
async fn expired_messages_are_not_delivered_from_the_queue() {
    let broker = Broker::start("");
    let mut subscriber = TestClient::tcp(broker.tcp, config(V5, "s", false)).await;
    subscriber.subscribe("e", QoS::AtLeastOnce).await;
    subscriber.disconnect().await;
    let mut publisher = TestClient::tcp(broker.tcp, config(V5, "p", true)).await;
    let short = Publish {
        properties: Properties {
            message_expiry_interval: Some(1),
            ..Properties::default()
        }
        .into(),
        ..Publish::new("e", "short", QoS::AtLeastOnce)
    };
    let long = Publish {
        properties: Properties {
            message_expiry_interval: Some(100),
            ..Properties::default()
        }
        .into(),
        ..Publish::new("e", "long", QoS::AtLeastOnce)
    };
    publisher.publish(short).await;
    publisher.publish(long).await;
    // The property under test is the passage of time itself.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut subscriber = TestClient::tcp(broker.tcp, config(V5, "s", false)).await;
    let message = subscriber
        .message(Duration::from_secs(5))
        .await
        .expect("the long-lived one");
    assert_eq!(message.payload.as_ref(), b"long");
    let remaining = message
        .properties
        .message_expiry_interval
        .expect("remaining lifetime sent");
    assert!((97..=100).contains(&remaining), "remaining {remaining}");
    assert!(subscriber.message(BRIEF).await.is_none());
}

#[tokio::test]
async fn shared_subscriptions_split_messages_between_members() {
    let broker = Broker::start("");
    let mut a = TestClient::tcp(broker.tcp, config(V5, "a", true)).await;
    let mut b = TestClient::tcp(broker.tcp, config(V5, "b", true)).await;
    a.subscribe("$share/workers/jobs/+", QoS::AtLeastOnce).await;
    b.subscribe("$share/workers/jobs/+", QoS::AtLeastOnce).await;
    let mut publisher = TestClient::tcp(broker.tcp, config(V5, "p", true)).await;
    for n in 0..10 {
        publisher
            .publish(Publish::new("jobs/x", format!("{n}"), QoS::AtLeastOnce))
            .await;
    }
    let mut got = Vec::new();
    for client in [&mut a, &mut b] {
        let mut mine = 0;
        while let Some(message) = client.message(BRIEF).await {
            got.push(message.payload.to_vec());
            mine += 1;
        }
        assert_eq!(mine, 5, "round-robin between two members");
    }
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 10, "each message to exactly one member");
}

#[tokio::test]
async fn no_local_and_subscription_identifiers() {
    let broker = Broker::start("");
    let mut client = TestClient::tcp(broker.tcp, config(V5, "self", true)).await;
    let no_local = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        no_local: true,
        ..SubscriptionOptions::default()
    };
    client
        .subscribe_with(vec![Subscription {
            filter: "mine".into(),
            options: no_local,
        }])
        .await;
    client
        .publish(Publish::new("mine", "echo?", QoS::AtLeastOnce))
        .await;
    assert!(
        client.message(BRIEF).await.is_none(),
        "no-local: own messages are not sent back"
    );

    let mut other = TestClient::tcp(broker.tcp, config(V5, "other", true)).await;
    let properties = Properties {
        subscription_identifiers: vec![42],
        ..Properties::default()
    };
    other
        .subscribe_with_properties(
            vec![Subscription {
                filter: "ids/#".into(),
                options: no_local,
            }],
            properties,
        )
        .await;
    client.publish(Publish::new("ids/1", "x", QoS::AtMostOnce)).await;
    let message = other.message(Duration::from_secs(5)).await.expect("message");
    assert_eq!(message.properties.subscription_identifiers, vec![42]);
}

#[tokio::test]
async fn client_ids_empty_or_assigned() {
    let broker = Broker::start("");
    let mut v5 = TestClient::tcp(broker.tcp, config(V5, "", true)).await;
    let event = v5.wait_for(|e| matches!(e, ClientEvent::Connected { .. })).await;
    let ClientEvent::Connected { properties, .. } = event else {
        unreachable!()
    };
    assert!(
        properties
            .assigned_client_identifier
            .is_some_and(|id| !id.is_empty())
    );
    let mut v3_persistent = TestClient::tcp(broker.tcp, config(V3, "", false)).await;
    assert_eq!(
        v3_persistent.connack().await,
        Err(ReasonCode::ClientIdentifierNotValid),
        "return code 2"
    );
    let mut v3_clean = TestClient::tcp(broker.tcp, config(V3, "", true)).await;
    assert_eq!(v3_clean.connack().await, Ok(false));
}

#[tokio::test]
async fn dollar_topics_are_not_matched_by_leading_wildcards_and_not_publishable() {
    let broker = Broker::start("");
    let mut everything = TestClient::tcp(broker.tcp, config(V5, "all", true)).await;
    everything.subscribe("#", QoS::AtLeastOnce).await;
    let mut publisher = TestClient::tcp(broker.tcp, config(V5, "p", true)).await;
    assert_eq!(
        publisher
            .publish(Publish::new("$SYS/fake", "x", QoS::AtLeastOnce))
            .await,
        ReasonCode::NotAuthorized
    );
    publisher
        .publish(Publish::new("plain", "y", QoS::AtLeastOnce))
        .await;
    let message = everything.message(Duration::from_secs(5)).await.expect("plain");
    assert_eq!(message.topic, "plain");
    let mut sys = TestClient::tcp(broker.tcp, config(V5, "sys", true)).await;
    sys.subscribe("$SYS/#", QoS::AtMostOnce).await;
    let counters = sys
        .message(Duration::from_secs(15))
        .await
        .expect("$SYS counters are published");
    assert!(counters.topic.starts_with("$SYS/broker/"));
    assert!(everything.message(BRIEF).await.is_none(), "# does not match $SYS");
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_one_and_a_half_keep_alives() {
    let broker = Broker::start("");
    let mut stream = tokio::net::TcpStream::connect(broker.tcp).await.expect("connect");
    // CONNECT, 3.1.1, clean session, keep-alive 1 s, client id "k".
    stream
        .write_all(&[0x10, 0x0D, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 1, 0, 1, b'k'])
        .await
        .expect("send");
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).await.expect("CONNACK");
    let started = std::time::Instant::now();
    let mut rest = [0u8; 8];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut rest))
        .await
        .expect("closed in time");
    assert_eq!(read.expect("read"), 0);
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "not before 1.5 x keep-alive"
    );
}

#[tokio::test]
async fn metrics_and_static_files_are_served_over_http() {
    let broker = Broker::start("");
    let body = support::broker::http_get(broker.ws, "/metrics");
    assert!(body.contains("# TYPE tabmq_connections gauge"));
    assert!(body.contains("tabmq_messages_in_qos1_total 0"));
    let missing = support::broker::http_get(broker.ws, "/../etc/passwd");
    assert!(missing.contains("not found"));
}

#[tokio::test]
async fn user_and_request_response_properties_pass_through_and_topic_aliases_resolve() {
    let broker = Broker::start("");
    let mut subscriber = TestClient::ws(broker.ws, config(V5, "s", true)).await;
    subscriber.subscribe("req/#", QoS::AtLeastOnce).await;
    let mut publisher = TestClient::ws(broker.ws, config(V5, "p", true)).await;
    let properties = Properties {
        user_properties: vec![("trace".into(), "abc".into()), ("trace".into(), "def".into())],
        response_topic: Some("resp/p".into()),
        correlation_data: Some(Bytes::from_static(b"\x01\x02")),
        content_type: Some("application/json".into()),
        payload_format_indicator: Some(1),
        ..Properties::default()
    };
    publisher
        .publish(Publish {
            properties: properties.clone().into(),
            ..Publish::new("req/1", "{}", QoS::AtLeastOnce)
        })
        .await;
    let message = subscriber.message(Duration::from_secs(5)).await.expect("message");
    assert_eq!(*message.properties, properties);

    // A raw PUBLISH that sets topic alias 1, then one that uses it with an empty topic.
    let alias = |topic: &[u8], payload: &[u8]| {
        let mut body = vec![0, topic.len() as u8];
        body.extend_from_slice(topic);
        body.extend_from_slice(&[3, 0x23, 0, 1]);
        body.extend_from_slice(payload);
        let mut packet = vec![0x30, body.len() as u8];
        packet.extend_from_slice(&body);
        packet
    };
    publisher.send_raw(&alias(b"req/aliased", b"first")).await;
    publisher.send_raw(&alias(b"", b"second")).await;
    for payload in [&b"first"[..], b"second"] {
        let message = subscriber
            .message(Duration::from_secs(5))
            .await
            .expect("aliased message");
        assert_eq!(
            (message.topic.as_str(), message.payload.as_ref()),
            ("req/aliased", payload)
        );
        assert_eq!(message.properties.topic_alias, None, "aliases are not forwarded");
    }
}
