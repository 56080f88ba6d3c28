//! The router's inbox, bounded in bytes.
//!
//! A connection pays for each message it hands the router with room in the inbox (the
//! message's size, at least [`MIN_COST`]) and waits when there is none: a connection that
//! outpaces routing stops reading its socket, and TCP and WebSocket flow control slow its
//! client down. Waiters are served first come, first served, so a flooding connection
//! gets one turn like everyone else and the order in which connections read their
//! packets is the order in which the router applies them. Messages whose number is
//! bounded elsewhere (see [`ToRouter::cost`]) pass without waiting.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};

use super::ToRouter;

/// What the smallest message costs: about its size in the inbox with its envelope.
pub const MIN_COST: usize = 128;

/// The router has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterGone;

struct Admitted {
    message: ToRouter,
    cost: u32,
}

/// The sending side, cloned into every connection.
#[derive(Clone)]
pub struct RouterSender {
    tx: mpsc::UnboundedSender<Admitted>,
    room: Arc<Semaphore>,
    capacity: u32,
}

/// The router's side.
pub struct RouterReceiver {
    rx: mpsc::UnboundedReceiver<Admitted>,
    room: Arc<Semaphore>,
    /// Room of the messages taken since the last [`RouterReceiver::give_back_room`]: given
    /// back once per batch, not once per message (each give-back takes the semaphore's lock).
    taken: usize,
}

/// An inbox holding at most `capacity_bytes` of messages (at least one message of any size).
pub fn inbox(capacity_bytes: usize) -> (RouterSender, RouterReceiver) {
    let capacity = u32::try_from(capacity_bytes.max(MIN_COST)).unwrap_or(u32::MAX);
    let room = Arc::new(Semaphore::new(capacity as usize));
    let (tx, rx) = mpsc::unbounded_channel();
    (
        RouterSender {
            tx,
            room: room.clone(),
            capacity,
        },
        RouterReceiver { rx, room, taken: 0 },
    )
}

impl RouterSender {
    /// Hands `message` over once the inbox has room for it (at once if its size is
    /// bounded elsewhere, see [`ToRouter::cost`]).
    pub async fn send(&self, message: ToRouter) -> Result<(), RouterGone> {
        let Some(cost) = message.cost() else {
            return self
                .tx
                .send(Admitted { message, cost: 0 })
                .map_err(|_| RouterGone);
        };
        let cost = u32::try_from(cost.max(MIN_COST))
            .unwrap_or(u32::MAX)
            .min(self.capacity);
        let permit = self.room.acquire_many(cost).await.map_err(|_| RouterGone)?;
        permit.forget();
        self.tx.send(Admitted { message, cost }).map_err(|_| {
            self.room.add_permits(cost as usize);
            RouterGone
        })
    }
}

impl RouterReceiver {
    /// The next message, waiting for one (after giving back the room of those taken);
    /// `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<ToRouter> {
        self.give_back_room();
        let admitted = self.rx.recv().await?;
        Some(self.take(admitted))
    }

    /// The next message if one is waiting. Its room comes back with
    /// [`RouterReceiver::give_back_room`] or the next [`RouterReceiver::recv`].
    pub fn try_recv(&mut self) -> Option<ToRouter> {
        let admitted = self.rx.try_recv().ok()?;
        Some(self.take(admitted))
    }

    /// Makes the room of the messages taken so far available to senders.
    pub fn give_back_room(&mut self) {
        if self.taken > 0 {
            self.room.add_permits(std::mem::take(&mut self.taken));
        }
    }

    fn take(&mut self, admitted: Admitted) -> ToRouter {
        self.taken += admitted.cost as usize;
        admitted.message
    }
}

impl Drop for RouterReceiver {
    /// Senders waiting for room learn that the router is gone.
    fn drop(&mut self) {
        self.room.close();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use tabmq_protocol::QoS;
    use tabmq_protocol::packet::Publish;

    use super::*;

    fn publish(payload: usize) -> ToRouter {
        let mut publish = Publish::new("t", Bytes::new(), QoS::AtMostOnce);
        publish.payload = Bytes::from(vec![0; payload]);
        ToRouter::Publish {
            connection: 1,
            client_id: "c".into(),
            publish,
        }
    }

    async fn admitted(sender: &RouterSender, message: ToRouter) -> bool {
        tokio::time::timeout(Duration::from_millis(50), sender.send(message))
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_sender_waits_while_the_inbox_is_full_and_goes_on_once_it_is_read() {
        let (sender, mut receiver) = inbox(10_000);
        assert!(admitted(&sender, publish(6_000)).await);
        assert!(
            !admitted(&sender, publish(6_000)).await,
            "12 kB do not fit in 10 kB"
        );
        assert!(receiver.try_recv().is_some());
        assert!(
            !admitted(&sender, publish(6_000)).await,
            "room comes back once per batch"
        );
        receiver.give_back_room();
        assert!(admitted(&sender, publish(6_000)).await, "room came back");
    }

    #[tokio::test]
    async fn small_messages_count_at_least_their_envelope() {
        let (sender, _receiver) = inbox(10 * MIN_COST);
        for _ in 0..10 {
            assert!(admitted(&sender, publish(0)).await);
        }
        assert!(!admitted(&sender, publish(0)).await);
    }

    #[tokio::test]
    async fn a_message_larger_than_the_inbox_still_passes_alone() {
        let (sender, mut receiver) = inbox(1_000);
        assert!(admitted(&sender, publish(5_000)).await);
        assert!(!admitted(&sender, publish(0)).await);
        receiver.try_recv();
        receiver.give_back_room();
        assert!(admitted(&sender, publish(0)).await);
    }

    #[tokio::test]
    async fn messages_bounded_elsewhere_never_wait() {
        let (sender, mut receiver) = inbox(1_000);
        assert!(admitted(&sender, publish(5_000)).await);
        let delivered = ToRouter::Delivered {
            client_id: "c".into(),
            seq: 1,
        };
        assert!(admitted(&sender, delivered).await);
        assert!(admitted(&sender, ToRouter::Tick).await);
        receiver.try_recv();
        assert!(matches!(receiver.try_recv(), Some(ToRouter::Delivered { .. })));
        assert!(matches!(receiver.try_recv(), Some(ToRouter::Tick)));
    }

    #[tokio::test]
    async fn waiting_senders_are_served_in_the_order_they_came() {
        let (sender, mut receiver) = inbox(1_000);
        sender.send(publish(900)).await.expect("room");
        let mut waiting = Vec::new();
        for connection in 2..6u64 {
            let sender = sender.clone();
            waiting.push(tokio::spawn(async move {
                let mut message = publish(900);
                if let ToRouter::Publish { connection: c, .. } = &mut message {
                    *c = connection;
                }
                sender.send(message).await
            }));
            tokio::task::yield_now().await;
        }
        let mut order = Vec::new();
        while order.len() < 5 {
            if let Some(ToRouter::Publish { connection, .. }) = receiver.recv().await {
                order.push(connection);
            }
        }
        assert_eq!(order, [1, 2, 3, 4, 5]);
    }

    #[tokio::test]
    async fn sending_after_the_router_stopped_fails() {
        let (sender, receiver) = inbox(1_000);
        drop(receiver);
        assert_eq!(sender.send(publish(0)).await, Err(RouterGone));
    }
}
