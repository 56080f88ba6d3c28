//! A connection's inbox: what the router hands it, in order.
//!
//! A queue behind a lock and a wake-up, holding nothing while empty: its room goes back
//! to the allocator each time it is drained, so an idle connection's inbox costs a few words
//! (tokio's unbounded channel allocated room for 32 messages up front, 3 KiB, the largest
//! part of an idle connection). It keeps the connection's [`Backlog`]: the router counts
//! a message in when it routes it, the mailbox counts it out when the connection takes it
//! (or the closed mailbox gives it back).

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

use super::ToConnection;
use super::backlog::Backlog;

#[derive(Debug, Default)]
struct Queue {
    messages: VecDeque<ToConnection>,
    closed: bool,
}

/// One connection's inbox, shared by the router (sending) and the connection (receiving).
#[derive(Debug, Default)]
pub struct Mailbox {
    queue: Mutex<Queue>,
    ready: Notify,
    backlog: Backlog,
}

impl Mailbox {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What the router has routed to the connection and the connection not yet taken.
    pub fn backlog(&self) -> &Backlog {
        &self.backlog
    }

    /// Queues `message` (already counted in the backlog); gives it back, counted out, if
    /// the connection has closed its inbox.
    pub fn send(&self, message: ToConnection) -> Result<(), ToConnection> {
        let mut queue = self.queue();
        if queue.closed {
            drop(queue);
            self.backlog.take(message.backlog_bytes());
            return Err(message);
        }
        queue.messages.push_back(message);
        drop(queue);
        self.ready.notify_one();
        Ok(())
    }

    /// The next message, if one is waiting.
    pub fn try_recv(&self) -> Option<ToConnection> {
        let mut queue = self.queue();
        let message = queue.messages.pop_front();
        if queue.messages.is_empty() && queue.messages.capacity() > 0 {
            queue.messages = VecDeque::new();
        }
        drop(queue);
        if let Some(message) = &message {
            self.backlog.take(message.backlog_bytes());
        }
        message
    }

    /// The next message, waiting for one. Cancel-safe.
    pub async fn recv(&self) -> ToConnection {
        loop {
            if let Some(message) = self.try_recv() {
                return message;
            }
            // A send between the check and here leaves a permit: no wake-up is lost.
            self.ready.notified().await;
        }
    }

    /// Closes the inbox: later sends fail. Returns what was still waiting.
    pub fn close(&self) -> VecDeque<ToConnection> {
        let mut queue = self.queue();
        queue.closed = true;
        let left = std::mem::take(&mut queue.messages);
        drop(queue);
        for message in &left {
            self.backlog.take(message.backlog_bytes());
        }
        left
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tabmq_protocol::ReasonCode;

    use super::*;

    fn refused() -> ToConnection {
        ToConnection::Refused(ReasonCode::NotAuthorized)
    }

    #[tokio::test]
    async fn messages_come_out_in_order_and_a_waiting_receiver_is_woken() {
        let mailbox = std::sync::Arc::new(Mailbox::default());
        let waiting = tokio::spawn({
            let mailbox = mailbox.clone();
            async move { mailbox.recv().await }
        });
        tokio::task::yield_now().await;
        mailbox.send(ToConnection::TakenOver).expect("open");
        mailbox.send(refused()).expect("open");
        let first = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert!(matches!(first, Ok(Ok(ToConnection::TakenOver))));
        assert!(matches!(mailbox.try_recv(), Some(ToConnection::Refused(_))));
        assert!(mailbox.try_recv().is_none());
    }

    #[test]
    fn after_close_sends_come_back_and_what_waited_is_returned() {
        let mailbox = Mailbox::default();
        mailbox.send(ToConnection::Shutdown).expect("open");
        let left = mailbox.close();
        assert_eq!(left.len(), 1);
        assert!(matches!(mailbox.send(refused()), Err(ToConnection::Refused(_))));
    }

    fn delivery(bytes: usize) -> ToConnection {
        let publish =
            tabmq_protocol::packet::Publish::new("t", vec![0u8; bytes], tabmq_protocol::QoS::AtMostOnce);
        ToConnection::Deliver { seq: 1, publish }
    }

    #[test]
    fn what_is_taken_or_handed_back_leaves_the_backlog() {
        let mailbox = Mailbox::default();
        for _ in 0..3 {
            mailbox.backlog().add(delivery(999).backlog_bytes());
            mailbox.send(delivery(999)).expect("open");
        }
        assert!(mailbox.backlog().is_full(100, 3_000), "3 kB routed, not taken");
        mailbox.try_recv();
        assert!(!mailbox.backlog().is_full(100, 3_000));
        assert_eq!(mailbox.close().len(), 2);
        assert!(
            !mailbox.backlog().is_full(1, 1),
            "what the closed inbox returned is counted out"
        );
        mailbox.backlog().add(delivery(999).backlog_bytes());
        assert!(mailbox.send(delivery(999)).is_err());
        assert!(!mailbox.backlog().is_full(1, 1), "and what it refused");
    }

    #[test]
    fn a_drained_inbox_gives_its_room_back() {
        let mailbox = Mailbox::default();
        for _ in 0..1_000 {
            mailbox.send(ToConnection::Shutdown).expect("open");
        }
        while mailbox.try_recv().is_some() {}
        assert_eq!(mailbox.queue().messages.capacity(), 0);
    }
}
