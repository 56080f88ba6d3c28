//! Retained messages shared by all nodes, in the JetStream key-value bucket
//! `<prefix>-retained` (key: the topic in hex; value: the message's record).
//!
//! The node a retained message is published on writes it (an empty payload deletes it);
//! every node reads the whole bucket at startup and then follows its changes, so a node
//! knows every retained message, also those of topics none of its clients subscribed to
//! when they were published.

use async_nats::jetstream::kv::{Operation, Store, Watch};
use futures_util::StreamExt;
use tabmq_protocol::packet::Publish;
use tracing::warn;

use super::{ClusterError, hex_key, open_bucket, text_of_hex_key};
use crate::router::{RouterSender, ToRouter};
use crate::store::{StoredMessage, message_bytes, message_from_bytes};

/// The bucket of retained messages.
#[derive(Clone)]
pub struct RetainedBucket {
    kv: Store,
}

impl RetainedBucket {
    /// Opens (or creates) the bucket with `replicas` copies.
    pub async fn open(
        jetstream: &async_nats::jetstream::Context,
        prefix: &str,
        replicas: usize,
    ) -> Result<Self, ClusterError> {
        let kv = open_bucket(
            jetstream,
            format!("{prefix}-retained"),
            "tabmq: retained messages",
            replicas,
        )
        .await?;
        Ok(Self { kv })
    }

    /// Every retained message held now, and a watch of the changes from before they were
    /// read (some may be seen twice; applying one twice changes nothing).
    pub async fn load(&self) -> Result<(Vec<StoredMessage>, Watch), ClusterError> {
        let failed = |error: &dyn std::fmt::Display| ClusterError::Bucket {
            bucket: "retained".into(),
            reason: error.to_string(),
        };
        let watch = self.kv.watch_all().await.map_err(|e| failed(&e))?;
        let mut messages = Vec::new();
        let mut keys = self.kv.keys().await.map_err(|e| failed(&e))?;
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| failed(&e))?;
            if let Some(bytes) = self.kv.get(key.as_str()).await.map_err(|e| failed(&e))?
                && let Some(message) = message_from_bytes(&bytes)
            {
                messages.push(message);
            }
        }
        Ok((messages, watch))
    }

    /// Records a retained publish (an empty payload deletes the topic's message).
    pub async fn set(&self, publish: &Publish) {
        let key = hex_key(&publish.topic);
        let written = if publish.payload.is_empty() {
            self.kv.delete(&key).await.map_err(|e| e.to_string())
        } else {
            let message = StoredMessage {
                publish: publish.clone(),
                expires_at_ms: None,
            };
            self.kv
                .put(&key, message_bytes(&message).into())
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        };
        if let Err(error) = written {
            warn!(%error, topic = %publish.topic, "cluster: a retained message could not be shared");
        }
    }

    /// Hands every change of the bucket to the router, until either goes away.
    pub async fn follow(mut watch: Watch, router: RouterSender) {
        while let Some(entry) = watch.next().await {
            let Ok(entry) = entry else { continue };
            let publish = match entry.operation {
                Operation::Put => match message_from_bytes(&entry.value) {
                    Some(message) => message.publish,
                    None => continue,
                },
                Operation::Delete | Operation::Purge => {
                    let Some(topic) = text_of_hex_key(&entry.key) else {
                        continue;
                    };
                    Publish {
                        retain: true,
                        ..Publish::new(topic, bytes::Bytes::new(), tabmq_protocol::QoS::AtMostOnce)
                    }
                }
            };
            if router
                .send(ToRouter::RetainedFromCluster(Box::new(publish)))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}
