//! A persistent session whose connection drops in the middle of a stream of QoS 1
//! messages loses none of them: what was in flight is resent, what arrived meanwhile is
//! queued, and deliveries routed in the same router batch as the drop go back into the
//! session. Repeated, because the drop races the routing.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use support::broker::Broker;
use support::client::{TestClient, config};
use tabmq_protocol::client::{ClientConfig, ClientEvent};
use tabmq_protocol::packet::Publish;
use tabmq_protocol::{ProtocolVersion, QoS};

const TRIALS: usize = 10;
const COUNT: usize = 300;

fn reader_config() -> ClientConfig {
    ClientConfig {
        receive_maximum: 20,
        ..config(ProtocolVersion::V5, "reader", false)
    }
}

/// Reads messages of trial `prefix` into `seen` until it holds `until` of them or none
/// comes within `patience`.
async fn read(
    reader: &mut TestClient,
    prefix: &str,
    seen: &mut HashSet<String>,
    until: usize,
    patience: Duration,
) {
    while seen.len() < until {
        let Some(publish) = reader.message(patience).await else {
            return;
        };
        let text = String::from_utf8_lossy(&publish.payload).into_owned();
        if text.starts_with(prefix) {
            seen.insert(text);
        }
    }
}

#[tokio::test]
async fn a_connection_dropped_mid_stream_loses_no_queued_or_in_flight_message() {
    // Each drop and reconnect may count as a takeover: keep the flap guard out of the way.
    let broker = Broker::start("[sessions]\nflap_max_takeovers = 1000\n");
    let mut reader = TestClient::tcp(broker.tcp, reader_config()).await;
    reader.subscribe("stream/#", QoS::AtLeastOnce).await;
    let mut missing_per_trial = Vec::new();
    for trial in 0..TRIALS {
        let prefix = format!("t{trial}-");
        let publisher = {
            let prefix = prefix.clone();
            let address = broker.tcp;
            tokio::spawn(async move {
                let mut publisher =
                    TestClient::tcp(address, config(ProtocolVersion::V5, "writer", true)).await;
                let mut last = 0;
                for n in 0..COUNT {
                    let publish =
                        Publish::new("stream/x", format!("{prefix}{n}").into_bytes(), QoS::AtLeastOnce);
                    last = publisher.publish_nowait(publish).await;
                }
                publisher
                    .wait_for(|e| matches!(e, ClientEvent::PublishDone { id, .. } if *id == last))
                    .await;
                publisher.disconnect().await;
            })
        };
        let mut seen = HashSet::new();
        read(&mut reader, &prefix, &mut seen, 40, Duration::from_secs(2)).await;
        // The client acknowledges what it decodes: take every message it has, then drop.
        read(&mut reader, &prefix, &mut seen, COUNT, Duration::ZERO).await;
        reader.abort();
        reader = TestClient::tcp(broker.tcp, reader_config()).await;
        assert_eq!(reader.connack().await, Ok(true), "the session is resumed");
        publisher.await.expect("the publisher finished");
        read(&mut reader, &prefix, &mut seen, COUNT, Duration::from_secs(2)).await;
        missing_per_trial.push(COUNT - seen.len());
    }
    assert!(
        missing_per_trial.iter().all(|missing| *missing == 0),
        "messages missing per trial: {missing_per_trial:?}"
    );
    // The last acknowledgements are on their way: the session must empty out.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while broker.metric("messages_queued") > 0 && std::time::Instant::now() < deadline {
        reader.message(Duration::from_millis(50)).await;
    }
    assert_eq!(
        broker.metric("messages_queued"),
        0,
        "nothing left behind in the session"
    );
}
