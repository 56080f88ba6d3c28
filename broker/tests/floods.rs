//! Floods: a publisher faster than routing, subscribers that never read, payloads from
//! 1 KiB to 1 MB. The broker's memory stays under a bound derived from its limits, and
//! meanwhile other clients get their messages within 100 ms (p99) and connect within 1 s.

mod support;

use std::time::{Duration, Instant};

use support::broker::Broker;
use support::client::{TestClient, config};
use tabmq_protocol::codec::encode_to_vec;
use tabmq_protocol::packet::{Packet, Publish};
use tabmq_protocol::{ProtocolVersion, QoS};

/// The limits the bounds below derive from (the defaults, spelled out).
const MAX_BACKLOG_BYTES: u64 = 1024 * 1024;
const ROUTER_QUEUE_BYTES: u64 = 1024 * 1024;
const CONFIG: &str = "[limits]\nmax_backlog_bytes = 1048576\nrouter_queue_bytes = 1048576\n";

/// What a connection applies from its inbox before writing (`MAX_INBOX_BATCH_BYTES`).
const INBOX_BATCH_BYTES: u64 = 256 * 1024;

/// Room for the allocator, buffers the kernel hands back in bursts and the probe's clients.
const SLACK: u64 = 16 * 1024 * 1024;

/// Each test measures latency under load on 2 cores: one flood at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What a subscriber that never reads may cost: its backlog (one message over the bound),
/// the batch it applied before its socket stopped taking bytes, that batch encoded, and the
/// encoded copy the WebSocket or TCP writer holds.
fn stalled_subscriber_bound(payload: u64) -> u64 {
    MAX_BACKLOG_BYTES + payload + 3 * (INBOX_BATCH_BYTES + payload)
}

/// The broker's memory growth allowed while `stalled` subscribers never read `payload`-byte
/// messages: theirs, the router's inbox (one message over), the publisher's packet being read.
fn bound(stalled: u64, payload: u64) -> u64 {
    stalled * stalled_subscriber_bound(payload) + ROUTER_QUEUE_BYTES + 2 * payload + SLACK
}

/// Latencies and connect times seen by clients that are not part of the flood.
#[derive(Default)]
struct Bystander {
    round_trips: Vec<Duration>,
    connects: Vec<Duration>,
}

impl Bystander {
    /// Publishes to itself every 10 ms and times each message's way back, and opens a new
    /// connection every tenth time, until `done` says the flood is over.
    async fn watch(broker: &Broker, done: impl Fn() -> bool) -> Self {
        let mut seen = Self::default();
        let mut prober = TestClient::tcp(broker.tcp, config(ProtocolVersion::V5, "prober", true)).await;
        prober.subscribe("probe/#", QoS::AtMostOnce).await;
        let mut pace = tokio::time::interval(Duration::from_millis(10));
        let mut round = 0u64;
        while !done() || seen.round_trips.len() < 20 {
            pace.tick().await;
            let sent = Instant::now();
            prober
                .publish_nowait(Publish::new(format!("probe/{round}"), "p", QoS::AtMostOnce))
                .await;
            let message = prober
                .message(Duration::from_secs(10))
                .await
                .expect("probe message");
            assert_eq!(message.topic, format!("probe/{round}"));
            seen.round_trips.push(sent.elapsed());
            if round.is_multiple_of(10) {
                let started = Instant::now();
                let client = TestClient::tcp(
                    broker.tcp,
                    config(ProtocolVersion::V311, &format!("late-{round}"), true),
                )
                .await;
                assert!(client.is_connected());
                seen.connects.push(started.elapsed());
                client.disconnect().await;
            }
            round += 1;
        }
        seen
    }

    fn p99(&self) -> Duration {
        let mut sorted = self.round_trips.clone();
        sorted.sort();
        sorted[(sorted.len() * 99).div_ceil(100) - 1]
    }

    fn assert_served(&self, case: &str) {
        let p99 = self.p99();
        let slowest = self.connects.iter().max().copied().unwrap_or_default();
        eprintln!("{case}: bystander p99 {p99:?}, slowest connect {slowest:?}");
        assert!(
            p99 < Duration::from_millis(100),
            "{case}: p99 publish-to-delivery {p99:?} over {} messages",
            self.round_trips.len()
        );
        let slowest = self.connects.iter().max().copied().unwrap_or_default();
        assert!(
            slowest < Duration::from_secs(1),
            "{case}: a connection took {slowest:?}"
        );
    }
}

/// QoS 0 PUBLISH packets to `topic`, encoded back to back.
fn encoded_publishes(topic: &str, payload: usize, count: usize) -> Vec<u8> {
    let packet = Packet::Publish(Publish::new(topic, vec![7u8; payload], QoS::AtMostOnce));
    encode_to_vec(&packet, ProtocolVersion::V311)
        .expect("encodable")
        .repeat(count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_faster_than_routing_is_slowed_down_not_buffered() {
    let _one = ONE_AT_A_TIME.lock().await;
    let broker = Broker::start(CONFIG);
    // 100 wildcard filters that do not match the flood's topic: routing has work to do.
    let mut decoy = TestClient::tcp(broker.tcp, config(ProtocolVersion::V311, "decoy", true)).await;
    for n in 0..100 {
        decoy.subscribe(&format!("decoy/{n}/+/#"), QoS::AtMostOnce).await;
    }
    let (base, _) = broker.memory();
    let mut flooder = TestClient::tcp(broker.tcp, config(ProtocolVersion::V311, "flooder", true)).await;
    let burst = encoded_publishes("flood/a/b", 64, 1_000);
    let flood_ends = Instant::now() + Duration::from_secs(3);
    let flood = tokio::spawn(async move {
        let mut sent = 0u64;
        while Instant::now() < flood_ends {
            flooder.send_raw(&burst).await;
            sent += 1_000;
        }
        (flooder, sent)
    });
    let seen = Bystander::watch(&broker, || Instant::now() >= flood_ends).await;
    let (_flooder, sent) = flood.await.expect("flood task");
    let (_, peak) = broker.memory();
    let grown = peak.saturating_sub(base);
    let allowed = ROUTER_QUEUE_BYTES + SLACK;
    eprintln!(
        "flood: {sent} messages in 3 s; memory grew {} KiB (allowed {} KiB)",
        grown / 1024,
        allowed / 1024
    );
    assert!(grown <= allowed, "memory grew {grown} bytes, bound {allowed}");
    seen.assert_served("a publisher faster than routing");
    // Nothing is left queued: the next connection is answered at once.
    let started = Instant::now();
    TestClient::tcp(broker.tcp, config(ProtocolVersion::V5, "after", true)).await;
    assert!(started.elapsed() < Duration::from_secs(1));
}

/// `stalled` subscribers never read while a publisher sends `payload`-byte QoS 0 messages
/// they subscribed to: twice the bound's worth, so that a broker without it exceeds it.
async fn subscribers_that_never_read(stalled: u64, payload: usize) {
    let case = format!("{stalled} subscribers that never read, {payload} B messages");
    let broker = Broker::start(CONFIG);
    let mut held = Vec::new();
    for n in 0..stalled {
        let mut subscriber = TestClient::tcp(
            broker.tcp,
            config(ProtocolVersion::V311, &format!("stalled-{n}"), true),
        )
        .await;
        subscriber.subscribe("flood/#", QoS::AtMostOnce).await;
        held.push(subscriber);
    }
    let (base, _) = broker.memory();
    let mut publisher = TestClient::tcp(broker.tcp, config(ProtocolVersion::V311, "publisher", true)).await;
    let messages = 2 * bound(stalled, payload as u64) / payload as u64;
    let burst = encoded_publishes("flood/x", payload, 1);
    let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publishing = {
        let finished = finished.clone();
        tokio::spawn(async move {
            for _ in 0..messages {
                publisher.send_raw(&burst).await;
            }
            finished.store(true, std::sync::atomic::Ordering::Relaxed);
            publisher
        })
    };
    let seen = Bystander::watch(&broker, || finished.load(std::sync::atomic::Ordering::Relaxed)).await;
    publishing.await.expect("publisher task");
    let (_, peak) = broker.memory();
    let grown = peak.saturating_sub(base);
    let allowed = bound(stalled, payload as u64);
    eprintln!(
        "{case}: memory grew {} KiB (allowed {} KiB)",
        grown / 1024,
        allowed / 1024
    );
    assert!(
        grown <= allowed,
        "{case}: memory grew {grown} bytes, bound {allowed}"
    );
    seen.assert_served(&case);
    let dropped = broker.metric("messages_dropped_total");
    assert!(
        dropped > 0,
        "{case}: QoS 0 messages beyond the backlog are dropped and counted"
    );
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_that_never_read_cost_a_bounded_amount_and_slow_no_one() {
    let _one = ONE_AT_A_TIME.lock().await;
    for stalled in [1, 10] {
        for payload in [1024, 64 * 1024, 1_000_000] {
            subscribers_that_never_read(stalled, payload).await;
        }
    }
}
