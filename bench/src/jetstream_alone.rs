//! JetStream alone under the cluster benchmark's QoS 1 load, with no broker in between:
//! ten publishers on one NATS connection publish 64 B messages to a three-replica stream,
//! each waiting for JetStream's acknowledgement of a message once 200 of its own are
//! unacknowledged (2,000 in all, the window of the broker runs), while one pull consumer
//! reads and acknowledges each. It is the floor under tabmq's cluster-mode QoS 1 figures,
//! where each message takes the same path (published with the PUBLISH's commit, read by
//! the subscriber's node, acknowledged once routed) with MQTT on both sides.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;
use hdrhistogram::Histogram;

use crate::error::BenchError;

const PUBLISHERS: u64 = 10;

/// Unacknowledged publishes each publisher keeps.
const WINDOW: usize = 200;

/// How long a run may take.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// What a run measured.
pub struct Measured {
    /// Messages read per second.
    pub rate: f64,
    /// Publish-to-read latency, in microseconds.
    pub latency: Histogram<u64>,
}

fn failed(error: impl std::fmt::Display) -> BenchError {
    BenchError::Protocol(format!("JetStream: {error}"))
}

/// Publishes and reads `messages` through the NATS server at `url`.
pub async fn run(url: &str, messages: u64) -> Result<Measured, BenchError> {
    let client = async_nats::connect(url).await.map_err(failed)?;
    let jetstream = jetstream::new(client);
    let stream = jetstream
        .get_or_create_stream(stream::Config {
            name: "bench-alone".into(),
            subjects: vec!["alone.>".into()],
            num_replicas: 3,
            ..stream::Config::default()
        })
        .await
        .map_err(failed)?;
    let reader: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("reader".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            max_ack_pending: 20_000,
            ..consumer::pull::Config::default()
        })
        .await
        .map_err(failed)?;
    let epoch = Instant::now();
    let reading = tokio::spawn(async move {
        let mut latency = Histogram::<u64>::new(3).expect("3 significant digits is valid");
        let mut delivered = reader.messages().await.map_err(failed)?;
        for _ in 0..messages {
            let message = delivered
                .next()
                .await
                .ok_or_else(|| failed("the consumer ended"))?
                .map_err(failed)?;
            let mut sent = [0u8; 8];
            sent.copy_from_slice(&message.payload[..8]);
            let micros = (epoch.elapsed().as_nanos() as u64).saturating_sub(u64::from_be_bytes(sent)) / 1_000;
            let _ = latency.record(micros.max(1));
            message.ack().await.map_err(failed)?;
        }
        Ok::<_, BenchError>((latency, epoch.elapsed()))
    });
    let started = epoch.elapsed();
    let mut publishers = Vec::new();
    for publisher in 0..PUBLISHERS {
        let jetstream = jetstream.clone();
        let count = messages / PUBLISHERS + u64::from(publisher < messages % PUBLISHERS);
        publishers.push(tokio::spawn(async move {
            let mut unacknowledged = VecDeque::new();
            let mut payload = vec![0u8; 64];
            for _ in 0..count {
                payload[..8].copy_from_slice(&(epoch.elapsed().as_nanos() as u64).to_be_bytes());
                let ack = jetstream
                    .publish(format!("alone.{publisher}"), payload.clone().into())
                    .await
                    .map_err(failed)?;
                unacknowledged.push_back(ack);
                if unacknowledged.len() >= WINDOW
                    && let Some(oldest) = unacknowledged.pop_front()
                {
                    oldest.await.map_err(failed)?;
                }
            }
            for ack in unacknowledged {
                ack.await.map_err(failed)?;
            }
            Ok::<_, BenchError>(())
        }));
    }
    let finished = tokio::time::timeout(RUN_LIMIT, async {
        for publisher in publishers {
            publisher.await.map_err(failed)??;
        }
        reading.await.map_err(failed)?
    })
    .await
    .map_err(|_| BenchError::Timeout(format!("JetStream alone: {messages} messages in {RUN_LIMIT:?}")))?;
    let (latency, ended) = finished?;
    Ok(Measured {
        rate: messages as f64 / (ended - started).as_secs_f64(),
        latency,
    })
}
