//! The scenarios about sessions and sockets rather than message rates: draining a backlog
//! queued for an offline session, a connection storm, and idle connections' memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tabmq_protocol::QoS;
use tabmq_protocol::client::ClientEvent;
use tabmq_protocol::flow::SessionFlows;
use tokio::sync::{Barrier, Semaphore};

use crate::error::BenchError;
use crate::peer::{Peer, config};
use crate::target::Running;
use crate::transport::Transport;

/// Result of a backlog drain.
pub struct Drained {
    /// Messages delivered after the reconnect.
    pub delivered: u64,
    /// From the reconnect until the last message.
    pub elapsed: Duration,
}

/// Queues `messages` QoS 1 messages for an offline persistent session, then times their
/// delivery once it reconnects.
pub async fn backlog(
    transport: Transport,
    addr: &str,
    messages: u64,
    payload: usize,
) -> Result<Drained, BenchError> {
    let id = "bench-backlog";
    let (mut subscriber, _) =
        Peer::connect(transport, addr, config(id, true), SessionFlows::default()).await?;
    subscriber.subscribe("bench/backlog", QoS::AtLeastOnce).await?;
    let session = subscriber.disconnect().await?;

    let (mut publisher, _) = Peer::connect(
        transport,
        addr,
        config("bench-backlog-pub", false),
        SessionFlows::default(),
    )
    .await?;
    let mut left = messages;
    while left > 0 || publisher.unfinished() > 0 {
        while left > 0 && publisher.unfinished() < 1_000 {
            publisher.publish("bench/backlog", vec![7; payload], QoS::AtLeastOnce)?;
            left -= 1;
        }
        publisher.flush().await?;
        publisher.read(|_| {}).await?;
    }

    let started = Instant::now();
    let (mut subscriber, present) = Peer::connect(transport, addr, config(id, true), session).await?;
    if !present {
        return Err(BenchError::Protocol("the broker lost the offline session".into()));
    }
    let mut delivered = 0;
    while delivered < messages {
        subscriber
            .read(|event| delivered += u64::from(matches!(event, ClientEvent::Message(_))))
            .await?;
    }
    Ok(Drained {
        delivered,
        elapsed: started.elapsed(),
    })
}

/// Result of a connection storm.
pub struct Storm {
    /// Clients connected and subscribed.
    pub clients: u64,
    /// Until the last one was subscribed.
    pub elapsed: Duration,
    /// Connect + subscribe time of each, microseconds.
    pub latency: Histogram<u64>,
}

/// Starts `clients` tasks at once, each running `work(index)`, and holds what each made (a
/// connection) until all are done, so all count at once. The time until the last finished,
/// and how long each took, in microseconds.
pub async fn all_at_once<T, F>(clients: u64, work: F) -> Result<(Duration, Histogram<u64>), BenchError>
where
    T: Send + 'static,
    F: Fn(u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, BenchError>> + Send>>,
{
    let start = Arc::new(Barrier::new(clients as usize + 1));
    let done = Arc::new(Barrier::new(clients as usize + 1));
    let mut tasks = Vec::new();
    for index in 0..clients {
        let (start, done, job) = (start.clone(), done.clone(), work(index));
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let began = Instant::now();
            let result = job.await;
            let took = began.elapsed();
            done.wait().await;
            result.map(|_held| took)
        }));
    }
    start.wait().await;
    let started = Instant::now();
    done.wait().await;
    let elapsed = started.elapsed();
    let mut latency = Histogram::<u64>::new(3).expect("3 significant digits is valid");
    for task in tasks {
        let took = task
            .await
            .map_err(|e| BenchError::Protocol(format!("a peer task failed: {e}")))??;
        let _ = latency.record((took.as_micros() as u64).max(1));
    }
    Ok((elapsed, latency))
}

/// Starts `clients` tasks at once, each connecting and subscribing to its own topic.
pub async fn storm(transport: Transport, addr: &str, clients: u64) -> Result<Storm, BenchError> {
    let addr = addr.to_owned();
    let (elapsed, latency) = all_at_once(clients, move |index| {
        let addr = addr.clone();
        Box::pin(async move {
            let id = format!("bench-storm-{index}");
            let (mut peer, _) =
                Peer::connect(transport, &addr, config(&id, false), SessionFlows::default()).await?;
            peer.subscribe(&format!("bench/storm/{index}"), QoS::AtLeastOnce)
                .await?;
            Ok(peer)
        })
    })
    .await?;
    Ok(Storm {
        clients,
        elapsed,
        latency,
    })
}

/// Result of holding idle connections.
pub struct Idle {
    /// Connections held.
    pub connections: u64,
    /// Broker resident memory before and with them.
    pub rss_before: u64,
    /// Broker resident memory with all connections open.
    pub rss_after: u64,
}

/// Opens `connections` MQTT connections (at most 200 handshakes at a time), holds them,
/// and reads the broker's resident memory before and after.
pub async fn idle(transport: Transport, broker: &Running, connections: u64) -> Result<Idle, BenchError> {
    let addr = match transport {
        Transport::Ws => broker.ws.clone(),
        Transport::Tcp => broker
            .tcp
            .clone()
            .ok_or_else(|| BenchError::Process("no TCP listener".into()))?,
    };
    let (rss_before, _) = broker.memory()?;
    let handshakes = Arc::new(Semaphore::new(200));
    let mut tasks = Vec::new();
    for index in 0..connections {
        let (handshakes, addr) = (handshakes.clone(), addr.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = handshakes.acquire().await.expect("never closed");
            let id = format!("bench-idle-{index}");
            Peer::connect(transport, &addr, config(&id, false), SessionFlows::default())
                .await
                .map(|(peer, _)| peer)
        }));
    }
    let mut peers = Vec::with_capacity(tasks.len());
    for task in tasks {
        peers.push(
            task.await
                .map_err(|e| BenchError::Protocol(format!("a peer task failed: {e}")))??,
        );
    }
    let (rss_after, _) = broker.memory()?;
    drop(peers);
    Ok(Idle {
        connections,
        rss_before,
        rss_after,
    })
}

/// Result of a flood towards subscribers that never read.
pub struct Stalled {
    /// Messages the publisher got through.
    pub published: u64,
    /// Until the publisher's last write.
    pub elapsed: Duration,
    /// How long a message to another subscriber took afterwards, microseconds.
    pub bystander: Histogram<u64>,
}

/// `stalled` subscribers that never read their sockets while a publisher sends them
/// `messages` QoS 0 messages of `payload` bytes; then a bystander's messages are timed.
pub async fn stalled(
    transport: Transport,
    addr: &str,
    stalled: u64,
    payload: usize,
    messages: u64,
) -> Result<Stalled, BenchError> {
    let mut held = Vec::new();
    for index in 0..stalled {
        let id = format!("bench-stalled-{index}");
        let (mut peer, _) =
            Peer::connect(transport, addr, config(&id, false), SessionFlows::default()).await?;
        peer.subscribe("bench/stalled", QoS::AtMostOnce).await?;
        held.push(peer);
    }
    let (mut bystander, _) = Peer::connect(
        transport,
        addr,
        config("bench-bystander", false),
        SessionFlows::default(),
    )
    .await?;
    bystander.subscribe("bench/bystander", QoS::AtMostOnce).await?;
    let (mut publisher, _) = Peer::connect(
        transport,
        addr,
        config("bench-flooder", false),
        SessionFlows::default(),
    )
    .await?;
    let started = Instant::now();
    for _ in 0..messages {
        publisher.publish("bench/stalled", vec![7; payload], QoS::AtMostOnce)?;
        publisher.flush().await?;
    }
    let elapsed = started.elapsed();
    let mut latency = Histogram::<u64>::new(3).expect("3 significant digits is valid");
    for _ in 0..50 {
        let sent = Instant::now();
        publisher.publish("bench/bystander", vec![1; 16], QoS::AtMostOnce)?;
        publisher.flush().await?;
        bystander
            .until(|event| matches!(event, ClientEvent::Message(_)))
            .await?;
        let _ = latency.record(sent.elapsed().as_micros() as u64);
    }
    drop(held);
    Ok(Stalled {
        published: messages,
        elapsed,
        bystander: latency,
    })
}
