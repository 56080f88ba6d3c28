//! Group commit: one thread owns the store and turns many callers' writes into few
//! transactions.
//!
//! Callers hand over a batch of [`StoreOp`]s. The writer takes every batch waiting,
//! applies them in one transaction, fsyncs once if any caller waits for durability
//! (`ack` durability), then answers them all. Under load, hundreds of acknowledgements
//! share one fsync; when idle, a lone write is committed at once.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::error;

use super::{Store, StoreError, StoreOp};
use crate::config::Durability;

/// Largest number of batches merged into one transaction.
const MAX_BATCHES_PER_COMMIT: usize = 1024;

struct WriteRequest {
    ops: Vec<StoreOp>,
    /// Answered once the ops are committed (and synced, in `ack` durability).
    done: Option<oneshot::Sender<Result<(), StoreError>>>,
}

/// A commit under way: resolves once it is durable (or failed).
pub enum PendingCommit {
    /// Already decided (nothing to write, or the writer is gone); taken once.
    Done(Option<Result<(), StoreError>>),
    /// Waiting for the writer's answer.
    Waiting(oneshot::Receiver<Result<(), StoreError>>),
}

impl Future for PendingCommit {
    type Output = Result<(), StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            PendingCommit::Done(result) => Poll::Ready(result.take().unwrap_or(Err(StoreError::Stopped))),
            PendingCommit::Waiting(answer) => Pin::new(answer)
                .poll(cx)
                .map(|answer| answer.unwrap_or(Err(StoreError::Stopped))),
        }
    }
}

/// A cloneable handle to the writer thread.
#[derive(Clone)]
pub struct StoreHandle {
    requests: mpsc::Sender<WriteRequest>,
}

impl StoreHandle {
    /// Starts the writer thread that owns `store`.
    pub fn start(
        store: Box<dyn Store>,
        durability: Durability,
        flush_interval: Duration,
    ) -> (Self, thread::JoinHandle<()>) {
        let (requests, inbox) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("tabmq-store".into())
            .spawn(move || write_loop(store, inbox, durability, flush_interval))
            .unwrap_or_else(|error| panic!("cannot start the storage thread: {error}"));
        (Self { requests }, thread)
    }

    /// Commits `ops` and waits until they are as durable as the configuration promises.
    pub async fn commit(&self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        self.begin_commit(ops).await
    }

    /// Starts committing `ops`; the answer comes once they are as durable as the
    /// configuration promises. Commits finish in the order they were begun.
    pub fn begin_commit(&self, ops: Vec<StoreOp>) -> PendingCommit {
        if ops.is_empty() {
            return PendingCommit::Done(Some(Ok(())));
        }
        let (done, answer) = oneshot::channel();
        let request = WriteRequest {
            ops,
            done: Some(done),
        };
        match self.requests.send(request) {
            Ok(()) => PendingCommit::Waiting(answer),
            Err(_) => PendingCommit::Done(Some(Err(StoreError::Stopped))),
        }
    }

    /// Commits `ops` without waiting (a lost write costs at most a redelivery).
    pub fn submit(&self, ops: Vec<StoreOp>) {
        if !ops.is_empty() && self.requests.send(WriteRequest { ops, done: None }).is_err() {
            error!("storage writer stopped; a write was not recorded");
        }
    }
}

fn write_loop(
    mut store: Box<dyn Store>,
    inbox: mpsc::Receiver<WriteRequest>,
    durability: Durability,
    flush_interval: Duration,
) {
    let mut unsynced_since: Option<Instant> = None;
    loop {
        let first = match unsynced_since {
            Some(since) => {
                let wait = flush_interval.saturating_sub(since.elapsed());
                match inbox.recv_timeout(wait) {
                    Ok(request) => request,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if let Err(error) = store.sync() {
                            error!(%error, "periodic storage sync failed");
                        }
                        unsynced_since = None;
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            None => match inbox.recv() {
                Ok(request) => request,
                Err(_) => break,
            },
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCHES_PER_COMMIT {
            match inbox.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let waiting = batch.iter().any(|request| request.done.is_some());
        let sync = durability == Durability::Ack && waiting;
        let ops: Vec<StoreOp> = batch
            .iter_mut()
            .flat_map(|request| std::mem::take(&mut request.ops))
            .collect();
        let result = store.commit(&ops, sync);
        if let Err(error) = &result {
            error!(%error, operations = ops.len(), "storage commit failed");
        }
        if !sync && unsynced_since.is_none() {
            unsynced_since = Some(Instant::now());
        } else if sync {
            unsynced_since = None;
        }
        for request in batch {
            if let Some(done) = request.done {
                let answer = match &result {
                    Ok(()) => Ok(()),
                    Err(error) => Err(StoreError::Io(error.to_string())),
                };
                let _ = done.send(answer);
            }
        }
    }
    if let Err(error) = store.sync() {
        error!(%error, "final storage sync failed");
    }
}
