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
    let refusals = broker.metric_when_admitted("connections_refused_per_ip_total");
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
    assert!(broker.metric_when_admitted("connections_rate_limited_total") >= 3);
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

/// A PROXY protocol v2 header for a TCP/IPv4 client at `source`.
fn proxy_v2(source: [u8; 4], port: u16) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x21, 0x11, 0, 12]);
    header.extend_from_slice(&source);
    header.extend_from_slice(&[127, 0, 0, 1]);
    header.extend_from_slice(&port.to_be_bytes());
    header.extend_from_slice(&1883u16.to_be_bytes());
    header
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_limits_count_the_clients_it_carries() {
    let broker = Broker::start(
        "[listeners]\ntrusted_proxies = [\"127.0.0.0/8\"]\n[limits]\nmax_connections_per_ip = 1\n",
    );
    let v1 = |address: &str| format!("PROXY TCP4 {address} 127.0.0.1 40000 1883\r\n").into_bytes();
    let first = TestClient::tcp_proxied(
        broker.tcp,
        &v1("203.0.113.7"),
        config(ProtocolVersion::V5, "a", true),
    )
    .await;
    let other = TestClient::tcp_proxied(
        broker.tcp,
        &proxy_v2([198, 51, 100, 2], 40001),
        config(ProtocolVersion::V311, "b", true),
    )
    .await;
    assert!(
        first.is_connected() && other.is_connected(),
        "one connection each for two clients"
    );
    // A second connection of 203.0.113.7 is over its limit of one, whichever proxy version says so.
    let mut stream = TcpStream::connect(broker.tcp).await.expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut stream, &v1("203.0.113.7"))
        .await
        .expect("header");
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await;
    assert!(matches!(closed, Ok(Ok(0) | Err(_))), "refused: {closed:?}");
    // A trusted proxy that sends no PROXY header is not let through.
    let mut bare = TcpStream::connect(broker.tcp).await.expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut bare, b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x01c")
        .await
        .expect("connect");
    let closed = tokio::time::timeout(Duration::from_secs(5), bare.read(&mut byte)).await;
    assert!(
        matches!(closed, Ok(Ok(0) | Err(_))),
        "no PROXY header: {closed:?}"
    );
}

#[tokio::test]
async fn x_forwarded_for_counts_only_from_a_trusted_proxy() {
    let get_metrics = |address, forwarded: &str| {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(address).expect("connect");
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Forwarded-For: {forwarded}\r\n\r\n"
        )
        .expect("send");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        answer.lines().next().unwrap_or_default().to_owned()
    };
    let behind = Broker::start("[listeners]\ntrusted_proxies = [\"127.0.0.1\"]\n");
    assert_eq!(
        get_metrics(behind.ws, "203.0.113.7"),
        "HTTP/1.1 403 Forbidden",
        "a remote client, through the proxy"
    );
    assert_eq!(get_metrics(behind.ws, "127.0.0.1"), "HTTP/1.1 200 OK");
    let direct = Broker::start("");
    assert_eq!(
        get_metrics(direct.ws, "203.0.113.7"),
        "HTTP/1.1 200 OK",
        "an untrusted header is ignored"
    );
}
