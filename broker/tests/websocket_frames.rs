//! MQTT over WebSocket where frame boundaries and packet boundaries differ: the broker
//! joins the frames that arrive together into one round, so these pin down that a
//! packet split over frames, hundreds of frames at once, and data followed at once by a
//! close frame are all handled, in order.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use support::broker::Broker;
use support::client::{TestClient, WAIT, config, websocket};
use tabmq_protocol::codec::{PROTOCOL_MAX_PACKET_SIZE, decode_from_server};
use tabmq_protocol::{Packet, ProtocolVersion, QoS};
use tokio_tungstenite::tungstenite::Message;

const V3: ProtocolVersion = ProtocolVersion::V311;
/// Messages sent at once: every third at QoS 1 (90 in all, within the broker's Receive
/// Maximum of 100), the others at QoS 0.
const MESSAGES: u16 = 270;

/// `bytes` as one MQTT string field.
fn field(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// A packet with a one-byte remaining length.
fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first, u8::try_from(body.len()).expect("short body")];
    out.extend_from_slice(body);
    out
}

/// MQTT 3.1.1 CONNECT, clean session, keep-alive 60 s.
fn connect(client_id: &str) -> Vec<u8> {
    packet(
        0x10,
        &[
            &field(b"MQTT")[..],
            &[4, 0x02, 0, 60],
            &field(client_id.as_bytes()),
        ]
        .concat(),
    )
}

/// The packet id of message `n`, if it is sent at QoS 1.
fn packet_id(n: u16) -> Option<u16> {
    n.is_multiple_of(3).then_some(n / 3 + 1)
}

/// PUBLISH of `m{n}` to `frames/t`, at QoS 1 when it has a packet id.
fn publish(n: u16) -> Vec<u8> {
    let payload = format!("m{n}");
    let (first, id) = match packet_id(n) {
        Some(id) => (0x32, id.to_be_bytes().to_vec()),
        None => (0x30, vec![]),
    };
    packet(
        first,
        &[&field(b"frames/t")[..], &id, payload.as_bytes()].concat(),
    )
}

#[tokio::test]
async fn frames_sent_together_are_all_handled_in_order_and_data_before_a_close_is_kept() {
    let broker = Broker::start("");
    let mut subscriber = TestClient::tcp(broker.tcp, config(V3, "frames-sub", true)).await;
    subscriber.subscribe("frames/t", QoS::AtLeastOnce).await;

    let mut ws = websocket(broker.ws).await;
    // CONNECT split over three frames, then every PUBLISH in a frame of its own, one of
    // them split over two; all queued and flushed at once, so they arrive together.
    let connect = connect("frames-pub");
    for piece in [&connect[..3], &connect[3..9], &connect[9..]] {
        ws.feed(Message::Binary(piece.to_vec().into()))
            .await
            .expect("feed");
    }
    for n in 0..MESSAGES {
        let bytes = publish(n);
        if n == MESSAGES / 2 {
            ws.feed(Message::Binary(bytes[..5].to_vec().into()))
                .await
                .expect("feed");
            ws.feed(Message::Binary(bytes[5..].to_vec().into()))
                .await
                .expect("feed");
        } else {
            ws.feed(Message::Binary(bytes.into())).await.expect("feed");
        }
    }
    ws.flush().await.expect("flush");

    // CONNACK, then a PUBACK for every QoS 1 message, in order (however the broker frames them).
    let expected_acks: Vec<u16> = (0..MESSAGES).filter_map(packet_id).collect();
    let mut received = Vec::new();
    let mut acknowledged = Vec::new();
    while acknowledged.len() < expected_acks.len() {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("acknowledged in time");
        let Some(Ok(Message::Binary(bytes))) = frame else {
            panic!("the broker ended the connection: {frame:?}\n{}", broker.log());
        };
        received.extend_from_slice(&bytes);
        while let Some((packet, used)) =
            decode_from_server(&received, V3, PROTOCOL_MAX_PACKET_SIZE).expect("valid packets")
        {
            received.drain(..used);
            match packet {
                Packet::Connack(connack) => assert!(acknowledged.is_empty(), "CONNACK first: {connack:?}"),
                Packet::Puback(ack) => acknowledged.push(ack.packet_id.get()),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(acknowledged, expected_acks);

    // A QoS 0 message and the close frame right behind it: the message still goes out.
    ws.feed(Message::Binary(publish(MESSAGES + 1).into()))
        .await
        .expect("feed");
    ws.feed(Message::Close(None)).await.expect("feed");
    ws.flush().await.expect("flush");

    let mut payloads = Vec::new();
    while let Some(message) = subscriber.message(WAIT).await {
        payloads.push(String::from_utf8(message.payload.to_vec()).expect("utf-8"));
        if payloads.len() == usize::from(MESSAGES) + 1 {
            break;
        }
    }
    let expected: Vec<String> = (0..MESSAGES)
        .chain([MESSAGES + 1])
        .map(|n| format!("m{n}"))
        .collect();
    assert_eq!(payloads, expected);
    assert!(
        subscriber.message(Duration::from_millis(300)).await.is_none(),
        "each once"
    );
}
