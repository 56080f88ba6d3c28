//! Moving a session between nodes.
//!
//! A node accepting a CONNECT claims the client id ([`Ownership`]). If another node held
//! it, that node is asked, by a NATS request to `<prefix>.handover.<node id in hex>`, to
//! let go: it closes the client's connection there (a takeover), stores the session as
//! the connection left it, drops it, and answers. Only then does the claiming node read
//! the session from the cluster's storage ([`JetStreamStore`]) and resume it. A node that
//! died answers nothing (NATS says no one listens): what it stored is what there is.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::DurableMessages;
use super::{ClaimError, Ownership, hex_key};
use crate::router::{MovedSession, RouterSender, ToRouter};
use crate::store::JetStreamStore;

/// How long a node waits for the node that held a client id to let go of its session.
const LET_GO_PATIENCE: Duration = Duration::from_secs(5);

/// The subject a node takes handover requests on.
fn handover_subject(prefix: &str, node_id: &str) -> String {
    format!("{prefix}.handover.{}", hex_key(node_id))
}

/// Claims client ids for this node and brings their sessions over from other nodes.
#[derive(Clone)]
pub struct Handover {
    client: async_nats::Client,
    ownership: Ownership,
    state: JetStreamStore,
    durable: DurableMessages,
    prefix: String,
}

impl Handover {
    /// A handover over `client`, with the ownership bucket, the session storage and the
    /// cluster's stream of messages.
    pub fn new(
        client: async_nats::Client,
        ownership: Ownership,
        state: JetStreamStore,
        durable: DurableMessages,
        prefix: &str,
    ) -> Self {
        Self {
            client,
            ownership,
            state,
            durable,
            prefix: prefix.to_owned(),
        }
    }

    /// Makes this node the holder of `client_id` (with `reject`, fails while another node
    /// holds it connected). If another node held it, returns its session as stored once
    /// that node has let go of it.
    pub async fn claim(&self, client_id: &str, reject: bool) -> Result<Option<MovedSession>, ClaimError> {
        let Some(previous) = self.ownership.claim(client_id, reject).await? else {
            return Ok(None);
        };
        let request = self.client.request(
            handover_subject(&self.prefix, &previous),
            bytes::Bytes::copy_from_slice(client_id.as_bytes()),
        );
        // Where the other node stopped routing the cluster's messages to the session: as
        // it says, or for a node that does not answer, the last message it acknowledged.
        let answered = match tokio::time::timeout(LET_GO_PATIENCE, request).await {
            Ok(Ok(reply)) => std::str::from_utf8(&reply.payload)
                .ok()
                .and_then(|p| p.parse().ok()),
            Ok(Err(error)) => {
                info!(%client_id, node = %previous, %error, "the node that held the session does not answer; resuming what it stored");
                None
            }
            Err(_) => {
                warn!(%client_id, node = %previous, "the node that held the session did not let go in time; resuming what it stored");
                None
            }
        };
        let position = match answered {
            Some(position) => Some(position),
            None => self.durable.acknowledged_by(&previous).await,
        };
        read_moved_session(&self.state, &self.durable, client_id, position)
            .await
            .map(Some)
            .map_err(ClaimError::Unavailable)
    }

    /// Marks `client_id` offline, if this node still holds it.
    pub async fn release(&self, client_id: &str) {
        self.ownership.release(client_id).await;
    }

    /// Answers other nodes' handover requests for this node's sessions until NATS or the
    /// router goes away.
    pub async fn serve(self, node_id: String, router: RouterSender) {
        let subject = handover_subject(&self.prefix, &node_id);
        let mut requests = match self.client.subscribe(subject).await {
            Ok(requests) => requests,
            Err(error) => {
                warn!(%error, "cluster: cannot take handover requests; other nodes will resume sessions without waiting");
                return;
            }
        };
        while let Some(request) = requests.next().await {
            let (Some(reply), Some(client_id)) = (
                request.reply,
                std::str::from_utf8(&request.payload).ok().map(str::to_owned),
            ) else {
                continue;
            };
            let (let_go, position) = oneshot::channel::<u64>();
            let taken = ToRouter::TakenOverElsewhere {
                client_id: client_id.into(),
                let_go: Some(let_go),
            };
            if router.send(taken).await.is_err() {
                return;
            }
            let client = self.client.clone();
            tokio::spawn(async move {
                if let Ok(position) = position.await {
                    let _ = client.publish(reply, position.to_string().into()).await;
                }
            });
        }
    }
}

/// A session another node held, as stored, with the stream's messages after `position`
/// (where that node stopped routing to it; none if unknown). Its filters are added to
/// this node's consumer first, so the consumer has every message the reading does not.
pub(super) async fn read_moved_session(
    state: &JetStreamStore,
    durable: &DurableMessages,
    client_id: &str,
    position: Option<u64>,
) -> Result<MovedSession, String> {
    let stored = state
        .load_session(client_id)
        .await
        .map_err(|error| error.to_string())?;
    if let Some(session) = &stored {
        let filters = session.record.subscriptions.iter().map(|s| s.filter.as_str());
        durable.filter().hold(filters).await?;
    }
    let (since, through) = match (&stored, position) {
        (Some(_), Some(position)) => durable.since(position).await?,
        _ => (Vec::new(), u64::MAX),
    };
    Ok(MovedSession {
        stored,
        since,
        through,
    })
}
