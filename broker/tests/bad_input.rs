//! Malformed packets, wrong protocol order and every limit: the offender is
//! disconnected with the right reason, and everyone else carries on.

mod support;

use std::time::Duration;

use support::broker::Broker;
use support::client::{TestClient, config, websocket};
use tabmq_protocol::client::DisconnectCause;
use tabmq_protocol::packet::Publish;
use tabmq_protocol::{ProtocolVersion, QoS, ReasonCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const V5: ProtocolVersion = ProtocolVersion::V5;

/// A bystander can still publish and receive on the same broker.
async fn bystander_still_works(broker: &Broker) {
    let mut bystander = TestClient::tcp(broker.tcp, config(V5, "bystander", true)).await;
    bystander.subscribe("ok", QoS::AtLeastOnce).await;
    assert_eq!(
        bystander
            .publish(Publish::new("ok", "fine", QoS::AtLeastOnce))
            .await,
        ReasonCode::Success
    );
    assert!(bystander.message(Duration::from_secs(5)).await.is_some());
}

async fn disconnected_with(broker: &Broker, raw: &[u8]) -> DisconnectCause {
    let mut offender = TestClient::tcp(broker.tcp, config(V5, "offender", true)).await;
    assert!(offender.connack().await.is_ok());
    offender.send_raw(raw).await;
    offender.disconnection().await.0
}

fn server_said(reason: ReasonCode) -> DisconnectCause {
    DisconnectCause::ServerDisconnect {
        reason,
        reason_string: None,
    }
}

#[tokio::test]
async fn malformed_packets_get_the_right_reason_and_the_broker_carries_on() {
    let broker = Broker::start("[limits]\nmax_packet_size = 1024\n");
    let cases: [(&[u8], ReasonCode); 5] = [
        (&[0x82, 0x04, 0x00, 0x01, 0x00, 0x00], ReasonCode::MalformedPacket), // SUBSCRIBE without its flags
        (
            &[0x30, 0x05, 0x00, 0x02, 0xC3, 0x28, 0x00],
            ReasonCode::MalformedPacket,
        ), // bad UTF-8 topic
        (&[0x30, 0x80, 0x10], ReasonCode::PacketTooLarge),                    // announces 2048 bytes
        (&[0x36, 0x04, 0x00, 0x01, b't', 0x00], ReasonCode::MalformedPacket), // QoS 3
        (
            &[
                0x10, 0x0D, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3C, 0x00, 0x00, 0x00,
            ],
            ReasonCode::ProtocolError,
        ), // CONNECT twice
    ];
    for (raw, reason) in cases {
        assert_eq!(
            disconnected_with(&broker, raw).await,
            server_said(reason),
            "for {raw:02x?}"
        );
    }
    assert_eq!(broker.metric("protocol_errors_total"), cases.len() as u64);
    bystander_still_works(&broker).await;
}

#[tokio::test]
async fn publish_before_connect_is_closed_without_an_answer() {
    let broker = Broker::start("");
    let mut stream = TcpStream::connect(broker.tcp).await.expect("connect");
    stream
        .write_all(&[0x30, 0x03, 0x00, 0x01, b't'])
        .await
        .expect("write");
    let mut buffer = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
        .await
        .expect("closed in time");
    assert_eq!(read.expect("read"), 0, "closed without a reply");
    bystander_still_works(&broker).await;
}

#[tokio::test]
async fn truncated_packet_then_eof_is_harmless() {
    let broker = Broker::start("");
    let mut offender = TestClient::tcp(broker.tcp, config(V5, "offender", true)).await;
    offender.send_raw(&[0x30, 0x0A, 0x00, 0x01]).await;
    offender.abort();
    bystander_still_works(&broker).await;
}

#[tokio::test]
async fn sockets_that_never_connect_are_closed_after_the_connect_timeout() {
    let broker = Broker::start("[limits]\nconnect_timeout_secs = 1\n");
    let mut stream = TcpStream::connect(broker.tcp).await.expect("connect");
    let mut buffer = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await;
    assert_eq!(read.expect("closed by the broker").expect("read"), 0);
}

#[tokio::test]
async fn max_connections_refuses_the_extra_connection() {
    let broker = Broker::start("[limits]\nmax_connections = 2\n");
    let _a = TestClient::tcp(broker.tcp, config(V5, "a", true)).await;
    let _b = TestClient::tcp(broker.tcp, config(V5, "b", true)).await;
    let mut stream = TcpStream::connect(broker.tcp).await.expect("connect");
    let mut buffer = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
        .await
        .expect("closed");
    assert_eq!(read.expect("read"), 0);
    assert_eq!(broker.metric("connections_rejected_total"), 1);
}

#[tokio::test]
async fn topic_limits_close_the_connection() {
    let broker = Broker::start("[limits]\nmax_topic_length = 16\nmax_topic_levels = 3\n");
    let mut long = TestClient::tcp(broker.tcp, config(V5, "long", true)).await;
    long.publish_nowait(Publish::new("a".repeat(17), "x", QoS::AtMostOnce))
        .await;
    assert_eq!(
        long.disconnection().await.0,
        server_said(ReasonCode::TopicNameInvalid)
    );
    let mut deep = TestClient::tcp(broker.tcp, config(V5, "deep", true)).await;
    let subscription = tabmq_protocol::packet::Subscription {
        filter: "a/b/c/d".into(),
        options: Default::default(),
    };
    deep.send_raw(
        &tabmq_protocol::codec::encode_to_vec(
            &tabmq_protocol::Packet::Subscribe(tabmq_protocol::packet::Subscribe {
                packet_id: tabmq_protocol::PacketId::new(1).expect("non-zero"),
                properties: Default::default(),
                subscriptions: vec![subscription],
            }),
            V5,
        )
        .expect("encodes"),
    )
    .await;
    assert_eq!(
        deep.disconnection().await.0,
        server_said(ReasonCode::TopicFilterInvalid)
    );
    bystander_still_works(&broker).await;
}

#[tokio::test]
async fn subscription_limit_answers_quota_exceeded() {
    let broker = Broker::start("[limits]\nmax_subscriptions_per_session = 2\n");
    let mut client = TestClient::tcp(broker.tcp, config(V5, "subs", true)).await;
    assert_eq!(client.subscribe("a", QoS::AtMostOnce).await, ReasonCode::Success);
    assert_eq!(
        client.subscribe("b", QoS::AtLeastOnce).await,
        ReasonCode::GrantedQos1
    );
    assert_eq!(
        client.subscribe("c", QoS::AtMostOnce).await,
        ReasonCode::QuotaExceeded
    );
    assert_eq!(
        client.subscribe("a", QoS::ExactlyOnce).await,
        ReasonCode::GrantedQos2,
        "replacing is not adding"
    );
}

#[tokio::test]
async fn offline_queue_is_bounded_and_drops_are_counted() {
    let broker = Broker::start("[limits]\nmax_queued_messages = 3\nmax_inflight = 2\n");
    let mut subscriber = TestClient::tcp(broker.tcp, config(V5, "slow", false)).await;
    subscriber.subscribe("q", QoS::AtLeastOnce).await;
    subscriber.disconnect().await;
    let mut publisher = TestClient::tcp(broker.tcp, config(V5, "p", true)).await;
    for n in 0..8 {
        publisher
            .publish(Publish::new("q", format!("{n}"), QoS::AtLeastOnce))
            .await;
    }
    assert_eq!(broker.metric("messages_dropped_total"), 3);
    assert_eq!(broker.metric("messages_queued"), 5);
    let mut subscriber = TestClient::tcp(broker.tcp, config(V5, "slow", false)).await;
    let event = subscriber
        .wait_for(|e| matches!(e, tabmq_protocol::client::ClientEvent::Connected { .. }))
        .await;
    let tabmq_protocol::client::ClientEvent::Connected { properties, .. } = event else {
        unreachable!()
    };
    let dropped = (tabmq_broker::router::DROPPED_PROPERTY.to_owned(), "3".to_owned());
    assert_eq!(
        properties.user_properties,
        vec![dropped],
        "the session's own drop counter, in CONNACK"
    );
    let mut received = Vec::new();
    while let Some(message) = subscriber.message(Duration::from_millis(500)).await {
        received.push(String::from_utf8(message.payload.to_vec()).expect("utf-8"));
    }
    assert_eq!(
        received,
        ["0", "1", "2", "3", "4"],
        "drop-new keeps the oldest five"
    );
}

#[tokio::test]
async fn receive_maximum_and_packet_size_are_announced_in_connack() {
    let broker = Broker::start("[limits]\nmax_inflight = 7\nmax_packet_size = 4096\n");
    let mut client = TestClient::tcp(broker.tcp, config(V5, "c", true)).await;
    let event = client
        .wait_for(|e| matches!(e, tabmq_protocol::client::ClientEvent::Connected { .. }))
        .await;
    let tabmq_protocol::client::ClientEvent::Connected { properties, .. } = event else {
        unreachable!()
    };
    assert_eq!(properties.receive_maximum, Some(7));
    assert_eq!(properties.maximum_packet_size, Some(4096));
}

#[tokio::test]
async fn oversized_websocket_messages_close_the_connection() {
    let broker = Broker::start("[limits]\nmax_packet_size = 1024\n");
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let mut ws = websocket(broker.ws).await;
    ws.send(Message::Binary(vec![0u8; 4096].into()))
        .await
        .expect("send");
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return Some(frame.map(|f| u16::from(f.code))),
                None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await
    .expect("closed in time");
    assert_ne!(closed, Some(Some(1000)), "not a normal close");
    bystander_still_works(&broker).await;
}

#[tokio::test]
async fn only_accepted_connects_count_as_connections_and_refusals_are_counted() {
    let broker = Broker::start("");
    // A socket that never sends CONNECT, and one whose CONNECT is refused (an empty client
    // id without a clean start).
    let _silent = TcpStream::connect(broker.tcp).await.expect("connect");
    let mut refused = TestClient::tcp(broker.tcp, config(ProtocolVersion::V311, "", false)).await;
    assert_eq!(refused.connack().await, Err(ReasonCode::ClientIdentifierNotValid));
    let accepted = TestClient::tcp(broker.tcp, config(ProtocolVersion::V311, "counted", true)).await;
    assert!(accepted.is_connected());
    assert_eq!(broker.metric("connections_total"), 1, "the accepted one only");
    assert_eq!(broker.metric("connects_refused_total"), 1);
}
