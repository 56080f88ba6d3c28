//! A data directory written by an earlier build is resumed by this one, whole: persistent
//! sessions of both protocol versions with their subscriptions, queued QoS 1 and QoS 2
//! messages, messages in flight in every handshake state, a QoS 2 publish received and not
//! yet released, retained messages and a delayed will.
//!
//! `fixtures/store-format-1/` was written by the build before the storage format had a
//! version (commit 0ac07e1's format: postcard of the wire types). To add a fixture for a
//! later format, run `cargo test -p tabmq-broker --test storage_upgrade -- --ignored` with
//! `TABMQ_WRITE_FIXTURE=<dir>` before changing the format, and commit `<dir>`.

mod support;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use support::broker::Broker;
use support::client::{TestClient, config};
use support::raw::{RawClient, packet_id, persistent_connect};
use tabmq_protocol::packet::{Disconnect, PubResponse, Publish, Subscription, SubscriptionOptions, Will};
use tabmq_protocol::{Packet, Properties, ProtocolVersion, QoS, ReasonCode};

/// Keeps 3.1.1 sessions as long as v5 ones that never expire.
const CONFIG: &str = "[sessions]\nv311_session_expiry_secs = 4294967295\n";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The properties every fixture message carries (v5), to prove they survive.
fn message_properties() -> Properties {
    Properties {
        payload_format_indicator: Some(1),
        content_type: Some("text/plain".into()),
        response_topic: Some("fixture/reply".into()),
        correlation_data: Some(Bytes::from_static(b"corr")),
        user_properties: vec![("k".into(), "v".into())],
        ..Properties::default()
    }
}

fn publish(topic: &str, payload: &'static str, qos: QoS, retain: bool) -> Publish {
    Publish {
        retain,
        properties: message_properties().into(),
        ..Publish::new(topic, payload, qos)
    }
}

fn subscription(filter: &str, qos: QoS, no_local: bool) -> Subscription {
    Subscription {
        filter: filter.into(),
        options: SubscriptionOptions {
            qos,
            no_local,
            ..SubscriptionOptions::default()
        },
    }
}

/// The delayed will of `will-v5`: retained, so that it can be seen once published.
fn will() -> Will {
    let properties = Properties {
        will_delay_interval: Some(5),
        ..message_properties()
    };
    Will {
        topic: "fixture/will".into(),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: properties.into(),
    }
}

/// Writes the fixture's state into a running broker, as clients would have.
async fn write_fixture_state(broker: &Broker) {
    let v5 = ProtocolVersion::V5;
    let (mut queued, _) = RawClient::connect(broker.tcp, persistent_connect(v5, "queued-v5", None)).await;
    let identifier = Properties {
        subscription_identifiers: vec![7],
        ..Properties::default()
    };
    queued
        .subscribe(
            vec![
                subscription("fixture/queued/#", QoS::ExactlyOnce, false),
                subscription("fixture/legacy", QoS::AtLeastOnce, true),
            ],
            identifier,
        )
        .await;
    queued
        .send(Packet::Disconnect(Disconnect::with_reason(ReasonCode::Success)))
        .await;

    let v311 = ProtocolVersion::V311;
    let (mut legacy, _) = RawClient::connect(broker.tcp, persistent_connect(v311, "legacy-311", None)).await;
    legacy
        .subscribe(
            vec![subscription("fixture/legacy", QoS::AtLeastOnce, false)],
            Properties::default(),
        )
        .await;
    legacy
        .send(Packet::Disconnect(Disconnect::with_reason(ReasonCode::Success)))
        .await;

    let (mut inflight, _) = RawClient::connect(broker.tcp, persistent_connect(v5, "inflight-v5", None)).await;
    inflight
        .subscribe(
            vec![subscription("fixture/inflight/#", QoS::ExactlyOnce, false)],
            Properties::default(),
        )
        .await;

    let mut publisher = TestClient::tcp(broker.tcp, config(v5, "fixture-publisher", true)).await;
    for message in [
        publish("fixture/queued/1", "q1", QoS::AtLeastOnce, false),
        publish("fixture/queued/2", "q2", QoS::ExactlyOnce, false),
        publish("fixture/legacy", "l1", QoS::AtLeastOnce, false),
        publish("fixture/inflight/puback", "i1", QoS::AtLeastOnce, false),
        publish("fixture/inflight/pubrec", "i2", QoS::ExactlyOnce, false),
        publish("fixture/inflight/pubcomp", "i3", QoS::ExactlyOnce, false),
        publish("fixture/retained/b", "rb", QoS::AtMostOnce, true),
        publish("fixture/retained/a", "ra", QoS::AtLeastOnce, true),
    ] {
        let reason = publisher.publish(message).await;
        assert!(!reason.is_error(), "{reason:?}");
    }

    // In flight: i1 never acknowledged, i2 never received, i3 received but not completed.
    for _ in 0..3 {
        let Packet::Publish(message) = inflight.next().await else {
            panic!("expected a PUBLISH")
        };
        if message.topic == "fixture/inflight/pubcomp" {
            let id = message.packet_id.expect("QoS 2");
            inflight.send(Packet::Pubrec(PubResponse::success(id))).await;
            assert!(matches!(inflight.next().await, Packet::Pubrel(_)));
        }
    }
    // Received from the client and not yet released.
    let mut incoming = publish("fixture/incoming", "in", QoS::ExactlyOnce, false);
    incoming.packet_id = Some(packet_id(42));
    inflight.send(Packet::Publish(incoming)).await;
    assert!(matches!(inflight.next().await, Packet::Pubrec(_)));
    inflight
        .send(Packet::Disconnect(Disconnect::with_reason(ReasonCode::Success)))
        .await;

    // Gone without DISCONNECT: its will waits for its delay.
    let (will_client, _) =
        RawClient::connect(broker.tcp, persistent_connect(v5, "will-v5", Some(will()))).await;
    drop(will_client);
    let deadline = std::time::Instant::now() + support::client::WAIT;
    while broker.metric("connections") > 1 {
        assert!(std::time::Instant::now() < deadline, "connections never closed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    publisher.disconnect().await;
}

#[tokio::test]
#[ignore = "writes a fixture; run by hand before a storage format change"]
async fn write_storage_fixture() {
    let out = PathBuf::from(std::env::var("TABMQ_WRITE_FIXTURE").expect("TABMQ_WRITE_FIXTURE=<dir>"));
    let mut broker = Broker::start(CONFIG);
    write_fixture_state(&broker).await;
    assert_eq!(broker.terminate().code(), Some(0), "{}", broker.log());
    std::fs::create_dir_all(&out).expect("fixture directory");
    for entry in std::fs::read_dir(broker.data_dir()).expect("data directory") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, out.join(path.file_name().expect("name"))).expect("copy");
    }
}

/// Asserts that `message` is the fixture message `payload` on `topic`, properties intact.
fn assert_fixture_message(message: &Publish, topic: &str, payload: &str) {
    assert_eq!(message.topic, topic);
    assert_eq!(message.payload.as_ref(), payload.as_bytes(), "{topic}");
    let properties = message_properties();
    assert_eq!(
        message.properties.content_type, properties.content_type,
        "{topic}"
    );
    assert_eq!(message.properties.response_topic, properties.response_topic);
    assert_eq!(message.properties.correlation_data, properties.correlation_data);
    assert_eq!(message.properties.user_properties, properties.user_properties);
    assert_eq!(message.properties.payload_format_indicator, Some(1));
}

fn publish_packet(packet: Packet) -> Publish {
    match packet {
        Packet::Publish(message) => message,
        other => panic!("expected a PUBLISH, got {other:?}"),
    }
}

/// Resumes everything the fixture holds with this build.
async fn assert_fixture_resumed(broker: &Broker) {
    let v5 = ProtocolVersion::V5;
    let (mut queued, present) =
        RawClient::connect(broker.tcp, persistent_connect(v5, "queued-v5", None)).await;
    assert!(present, "queued-v5 resumed");
    let mut pubrec_sent = None;
    for (topic, payload, qos) in [
        ("fixture/queued/1", "q1", QoS::AtLeastOnce),
        ("fixture/queued/2", "q2", QoS::ExactlyOnce),
        ("fixture/legacy", "l1", QoS::AtLeastOnce),
    ] {
        let message = publish_packet(queued.next().await);
        assert_fixture_message(&message, topic, payload);
        assert_eq!(message.qos, qos, "{topic}");
        assert_eq!(message.properties.subscription_identifiers, [7], "{topic}");
        let id = message.packet_id.expect("QoS 1 or 2");
        if qos == QoS::AtLeastOnce {
            queued.send(Packet::Puback(PubResponse::success(id))).await;
        } else {
            queued.send(Packet::Pubrec(PubResponse::success(id))).await;
            pubrec_sent = Some(id);
        }
    }
    match queued.next().await {
        Packet::Pubrel(release) => assert_eq!(Some(release.packet_id), pubrec_sent),
        other => panic!("expected the PUBREL of q2, got {other:?}"),
    }

    let v311 = ProtocolVersion::V311;
    let (mut legacy, present) =
        RawClient::connect(broker.tcp, persistent_connect(v311, "legacy-311", None)).await;
    assert!(present, "legacy-311 resumed");
    let message = publish_packet(legacy.next().await);
    assert_eq!(
        (message.topic.as_str(), message.payload.as_ref()),
        ("fixture/legacy", &b"l1"[..])
    );

    let (mut inflight, present) =
        RawClient::connect(broker.tcp, persistent_connect(v5, "inflight-v5", None)).await;
    assert!(present, "inflight-v5 resumed");
    // Resent in order: i1 and i2 as PUBLISH with DUP, i3 as PUBREL.
    let i1 = publish_packet(inflight.next().await);
    assert_fixture_message(&i1, "fixture/inflight/puback", "i1");
    assert!(i1.dup, "a resend");
    let i2 = publish_packet(inflight.next().await);
    assert_fixture_message(&i2, "fixture/inflight/pubrec", "i2");
    assert!(i2.dup && i2.qos == QoS::ExactlyOnce);
    assert!(
        matches!(inflight.next().await, Packet::Pubrel(_)),
        "i3 awaits PUBCOMP"
    );
    // The unreleased incoming QoS 2 id is known: a resent PUBLISH 42 is acknowledged, not
    // routed again, and PUBREL 42 completes.
    inflight
        .send(Packet::Pubrel(PubResponse::success(packet_id(42))))
        .await;
    match inflight.next().await {
        Packet::Pubcomp(done) => assert_eq!(done.reason, ReasonCode::Success, "id 42 was stored"),
        other => panic!("expected PUBCOMP, got {other:?}"),
    }

    let mut observer = TestClient::tcp(broker.tcp, config(v5, "fixture-observer", true)).await;
    observer.subscribe("fixture/retained/#", QoS::AtLeastOnce).await;
    let mut retained = Vec::new();
    for _ in 0..2 {
        let message = observer
            .message(support::client::WAIT)
            .await
            .expect("a retained message");
        assert!(message.retain);
        retained.push((message.topic.clone(), message.payload.clone()));
    }
    retained.sort();
    assert_eq!(
        retained,
        [
            ("fixture/retained/a".to_owned(), Bytes::from_static(b"ra")),
            ("fixture/retained/b".to_owned(), Bytes::from_static(b"rb"))
        ]
    );
    // The will's delay passed long ago: it is published (retained) once the broker runs.
    observer.subscribe("fixture/will", QoS::AtLeastOnce).await;
    let will = observer
        .message(support::client::WAIT)
        .await
        .expect("the delayed will");
    assert_fixture_message(&will, "fixture/will", "gone");
}

#[tokio::test]
async fn a_data_directory_of_storage_format_1_is_resumed_whole() {
    let broker = Broker::start_on_copy_of(CONFIG, &fixture("store-format-1"));
    assert_fixture_resumed(&broker).await;
}

#[tokio::test]
async fn the_fixture_state_written_by_this_build_is_resumed_whole() {
    let mut broker = Broker::start(CONFIG);
    write_fixture_state(&broker).await;
    assert_eq!(broker.terminate().code(), Some(0), "{}", broker.log());
    broker.restart();
    assert_fixture_resumed(&broker).await;
}
