//! Session takeover: the old connection is told why, its will fires, and the flap
//! guard stops two clients with one id from fighting forever.

mod support;

use std::time::Duration;

use bytes::Bytes;
use support::broker::Broker;
use support::client::{Closed, TestClient, config};
use tabmq_protocol::client::DisconnectCause;
use tabmq_protocol::packet::Will;
use tabmq_protocol::{ProtocolVersion, QoS, ReasonCode};

#[tokio::test]
async fn v5_old_connection_gets_disconnect_0x8e() {
    let broker = Broker::start("");
    let mut first = TestClient::ws(broker.ws, config(ProtocolVersion::V5, "dev", false)).await;
    assert_eq!(first.connack().await, Ok(false));
    let mut second = TestClient::ws(broker.ws, config(ProtocolVersion::V5, "dev", false)).await;
    assert_eq!(
        second.connack().await,
        Ok(true),
        "the newcomer resumes the session"
    );
    let (cause, closed) = first.disconnection().await;
    assert!(cause.is_takeover(), "got {cause:?}");
    assert_eq!(closed, Some(Closed::WebSocket(4000, "session taken over".into())));
    assert_eq!(broker.metric("takeovers_total"), 1);
    assert!(second.is_connected());
}

#[tokio::test]
async fn v311_old_websocket_gets_close_code_4000() {
    let broker = Broker::start("");
    let mut first = TestClient::ws(broker.ws, config(ProtocolVersion::V311, "dev", false)).await;
    assert_eq!(first.connack().await, Ok(false));
    let mut second = TestClient::ws(broker.ws, config(ProtocolVersion::V311, "dev", false)).await;
    assert_eq!(second.connack().await, Ok(true));
    let (cause, closed) = first.disconnection().await;
    assert_eq!(
        cause,
        DisconnectCause::TransportClosed,
        "3.1.1 has no server DISCONNECT"
    );
    assert_eq!(closed, Some(Closed::WebSocket(4000, "session taken over".into())));
}

#[tokio::test]
async fn the_will_of_a_taken_over_connection_is_published() {
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let broker = Broker::start("");
        let mut watcher = TestClient::tcp(broker.tcp, config(version, "watcher", true)).await;
        watcher.subscribe("wills/#", QoS::AtLeastOnce).await;
        let mut with_will = config(version, "dev", false);
        with_will.will = Some(Will {
            topic: "wills/dev".into(),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Default::default(),
        });
        let mut first = TestClient::tcp(broker.tcp, with_will).await;
        assert!(first.connack().await.is_ok());
        let _second = TestClient::tcp(broker.tcp, config(version, "dev", false)).await;
        let will = watcher
            .message(Duration::from_secs(5))
            .await
            .expect("the will is published on takeover");
        assert_eq!(will.payload.as_ref(), b"gone", "{version:?}");
    }
}

#[tokio::test]
async fn reject_policy_refuses_the_newcomer() {
    let broker = Broker::start("[sessions]\ntakeover = \"reject\"\n");
    let mut first = TestClient::tcp(broker.tcp, config(ProtocolVersion::V5, "dev", false)).await;
    assert!(first.connack().await.is_ok());
    let mut v5 = TestClient::tcp(broker.tcp, config(ProtocolVersion::V5, "dev", false)).await;
    assert_eq!(v5.connack().await, Err(ReasonCode::ClientIdentifierNotValid));
    let mut v3 = TestClient::tcp(broker.tcp, config(ProtocolVersion::V311, "dev", false)).await;
    assert_eq!(
        v3.connack().await,
        Err(ReasonCode::ClientIdentifierNotValid),
        "3.1.1 return code 2"
    );
    assert!(first.message(Duration::from_millis(300)).await.is_none());
    assert!(first.is_connected(), "the holder keeps its session");
}

#[tokio::test]
async fn flap_guard_stops_a_takeover_loop() {
    let broker =
        Broker::start("[sessions]\nflap_max_takeovers = 3\nflap_window_secs = 30\nflap_cooldown_secs = 30\n");
    let mut holders = Vec::new();
    for _ in 0..3 {
        let mut client = TestClient::tcp(broker.tcp, config(ProtocolVersion::V5, "shared-id", false)).await;
        assert!(client.connack().await.is_ok());
        holders.push(client);
    }
    // The fourth takeover inside the window is refused, and so is every later attempt.
    let mut fifth = TestClient::tcp(broker.tcp, config(ProtocolVersion::V5, "shared-id", false)).await;
    let _ = fifth.connack().await;
    let mut refused = TestClient::tcp(broker.tcp, config(ProtocolVersion::V5, "shared-id", false)).await;
    assert_eq!(refused.connack().await, Err(ReasonCode::ConnectionRateExceeded));
    let holder = holders.last_mut().expect("a holder");
    assert!(holder.message(Duration::from_millis(200)).await.is_none());
    assert!(
        holder.is_connected() || fifth.is_connected(),
        "one connection keeps the session"
    );
    assert!(broker.metric("flap_guard_refusals_total") >= 1);
    let log = broker.log();
    let warnings = log.matches("being taken over repeatedly").count();
    assert_eq!(warnings, 1, "logged once per episode:\n{log}");
}
