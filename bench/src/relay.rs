//! The ceiling: a bare WebSocket relay with no MQTT logic. It answers the handshake
//! packets with fixed bytes (CONNACK, SUBACK, PUBACK/PUBREC/PUBCOMP, PINGRESP) so that the
//! same load generator can drive it, and copies each PUBLISH to the connections that
//! subscribed to exactly that topic. No sessions, no storage, no wildcards, no queues:
//! what is left is the cost of WebSocket framing and the sockets on this machine.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::error::BenchError;

/// Packet ids of forwarded QoS 1/2 copies: one sequence for all, so each receiving
/// connection sees distinct ids among the few it has in flight.
static NEXT_PACKET_ID: AtomicU16 = AtomicU16::new(1);

type Subscribers = Arc<Mutex<HashMap<Vec<u8>, Vec<UnboundedSender<Vec<u8>>>>>>;

/// Serves the relay on `addr` until the process ends.
pub async fn serve(addr: &str) -> Result<(), BenchError> {
    // The same listen backlog as tabmq's, so that a connection storm compares accept paths.
    let address: std::net::SocketAddr = addr
        .parse()
        .map_err(|_| BenchError::Process(format!("not an ip:port address: {addr}")))?;
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    let listener = socket.listen(4_096)?;
    let subscribers: Subscribers = Arc::default();
    loop {
        let (tcp, _) = listener.accept().await?;
        let subscribers = subscribers.clone();
        tokio::spawn(async move {
            let _ = connection(tcp, subscribers).await;
        });
    }
}

/// Accepts the `mqtt` subprotocol. The error type is fixed by tungstenite's callback.
#[allow(clippy::result_large_err)]
fn accept_mqtt(_: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    response.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "mqtt".parse().expect("a valid header value"),
    );
    Ok(response)
}

async fn connection(tcp: TcpStream, subscribers: Subscribers) -> Result<(), BenchError> {
    tcp.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0);
    let ws = tokio_tungstenite::accept_hdr_async_with_config(tcp, accept_mqtt, Some(config)).await?;
    let (mut sink, mut stream) = ws.split();
    let (outbox, mut inbox) = unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(async move {
        while let Some(first) = inbox.recv().await {
            let mut frame = first;
            while let Ok(more) = inbox.try_recv() {
                frame.extend_from_slice(&more);
            }
            if sink.send(Message::Binary(frame.into())).await.is_err() {
                break;
            }
        }
    });
    while let Some(Ok(message)) = stream.next().await {
        let Message::Binary(frame) = message else { continue };
        for packet in crate::framing::split_packets(&frame) {
            if !answer(packet, &outbox, &subscribers) {
                writer.abort();
                return Ok(());
            }
        }
    }
    writer.abort();
    Ok(())
}

/// Start of the variable header: after the type byte and the remaining length.
fn body(packet: &[u8]) -> &[u8] {
    let length_bytes = packet[1..].iter().take_while(|b| *b & 0x80 != 0).count() + 1;
    &packet[1 + length_bytes..]
}

fn ack(kind: u8, id: &[u8]) -> Vec<u8> {
    vec![kind, 2, id[0], id[1]]
}

/// Answers one packet; `false` ends the connection.
fn answer(packet: &[u8], outbox: &UnboundedSender<Vec<u8>>, subscribers: &Subscribers) -> bool {
    let send = |bytes: Vec<u8>| {
        let _ = outbox.send(bytes);
    };
    let body = body(packet);
    match packet[0] >> 4 {
        1 => send(vec![0x20, 3, 0, 0, 0]), // CONNACK (v5): no session, success, no properties
        3 => {
            let qos = (packet[0] >> 1) & 3;
            let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
            let topic = body[2..2 + topic_len].to_vec();
            let id_at = packet.len() - body.len() + 2 + topic_len;
            if qos > 0 {
                send(ack(if qos == 1 { 0x40 } else { 0x50 }, &packet[id_at..id_at + 2]));
            }
            let targets = subscribers.lock().expect("relay lock").get(&topic).cloned();
            for target in targets.unwrap_or_default() {
                let mut copy = packet.to_vec();
                if qos > 0 {
                    let id = NEXT_PACKET_ID.fetch_add(1, Ordering::Relaxed).max(1);
                    copy[id_at..id_at + 2].copy_from_slice(&id.to_be_bytes());
                }
                let _ = target.send(copy);
            }
        }
        5 => send(ack(0x62, &body[..2])), // PUBREC from a receiver: PUBREL
        6 => send(ack(0x70, &body[..2])), // PUBREL from a sender: PUBCOMP
        8 => {
            // SUBSCRIBE (v5): id, properties (assumed empty), one filter and its options.
            let filter_len = usize::from(u16::from_be_bytes([body[3], body[4]]));
            let filter = body[5..5 + filter_len].to_vec();
            let granted = body[5 + filter_len] & 3;
            subscribers
                .lock()
                .expect("relay lock")
                .entry(filter)
                .or_default()
                .push(outbox.clone());
            send(vec![0x90, 4, body[0], body[1], 0, granted]);
        }
        12 => send(vec![0xd0, 0]), // PINGRESP
        14 => return false,        // DISCONNECT
        _ => {}                    // PUBACK/PUBCOMP from receivers: nothing to do
    }
    true
}
