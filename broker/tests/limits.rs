//! Limits against floods with real sockets: connections held per address, new
//! connections per second per address, and a connection's PUBLISH rate.

mod support;

use std::time::Duration;

use support::broker::Broker;
use support::client::{TestClient, config};
use tabmq_protocol::client::DisconnectCause;
use tabmq_protocol::packet::Publish;
use tabmq_protocol::{ProtocolVersion, QoS, ReasonCode};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Whether the broker closes a fresh TCP connection at once (refused at accept).
async fn refused_at_accept(address: std::net::SocketAddr) -> bool {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_millis(1500), stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn an_address_holds_at_most_max_connections_per_ip() {
    let broker = Broker::start("[limits]\nmax_connections_per_ip = 4\n");
    let mut held = Vec::new();
    for n in 0..4 {
        held.push(TestClient::tcp(broker.tcp, config(ProtocolVersion::V5, &format!("c{n}"), true)).await);
    }
    assert!(
        refused_at_accept(broker.tcp).await,
        "a fifth connection is refused"
    );
    assert!(refused_at_accept(broker.ws).await, "on either port");
    for client in held {
        client.disconnect().await;
    }
    // The places come back once those connections' tasks have ended.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while refused_at_accept(broker.tcp).await {
        assert!(
            std::time::Instant::now() < deadline,
            "the places were never freed"
        );
    }
    let refusals = loop {
        let body = support::broker::http_get(broker.ws, "/metrics");
        if let Some(line) = body
            .lines()
            .find_map(|l| l.strip_prefix("tabmq_connections_refused_per_ip_total "))
        {
            break line.trim().parse::<u64>().expect("a number");
        }
        assert!(std::time::Instant::now() < deadline, "metrics never answered");
    };
    assert!(refusals >= 2, "{refusals}");
}

#[tokio::test]
async fn an_address_opens_connections_at_most_at_its_rate() {
    let broker = Broker::start("[limits]\nmax_connect_rate_per_ip = 2\nconnect_burst_per_ip = 5\n");
    // Opened back to back (within a second: at most two tokens refill meanwhile).
    let mut streams = Vec::new();
    for _ in 0..10 {
        streams.push(TcpStream::connect(broker.tcp).await.expect("connect"));
    }
    let mut refused = 0;
    for stream in &mut streams {
        let mut byte = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(300), stream.read(&mut byte)).await
        {
            refused += 1;
        }
    }
    // The broker's readiness probe took one token of the burst of five.
    assert!((3..=7).contains(&refused), "{refused} of 10 refused");
    drop(streams);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(broker.metric("connections_rate_limited_total") >= 3);
}

#[tokio::test]
async fn a_connection_over_its_publish_rate_is_disconnected_with_0x96() {
    let broker = Broker::start("[limits]\nmax_publish_rate = 10\n");
    let mut client = TestClient::tcp(broker.tcp, config(ProtocolVersion::V5, "flood", true)).await;
    for n in 0..40 {
        client
            .publish_nowait(Publish::new(
                "flood/t",
                format!("m{n}").into_bytes(),
                QoS::AtMostOnce,
            ))
            .await;
    }
    let (cause, _) = client.disconnection().await;
    assert_eq!(
        cause,
        DisconnectCause::ServerDisconnect {
            reason: ReasonCode::MessageRateTooHigh,
            reason_string: Some("publish rate exceeded".into()),
        }
    );
    assert_eq!(broker.metric("publish_rate_exceeded_total"), 1);
    let mut calm = TestClient::tcp(broker.tcp, config(ProtocolVersion::V5, "calm", true)).await;
    assert_eq!(
        calm.publish(Publish::new("calm/t", "one", QoS::AtLeastOnce))
            .await,
        ReasonCode::NoMatchingSubscribers
    );
}
