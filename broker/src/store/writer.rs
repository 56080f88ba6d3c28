//! Group commit: one thread owns the store and turns many callers' writes into few
//! transactions.
//!
//! Callers hand over a batch of [`StoreOp`]s. The writer takes every batch waiting,
//! applies them in one transaction, fsyncs once if any caller waits for durability
//! (`ack` durability), then answers them all. Under load, hundreds of acknowledgements
//! share one fsync; when idle, a lone write is committed at once.
//!
//! A failed commit (a full disk, an I/O error) is a state, not an end: its callers are
//! told, its changes are kept, and the writer reopens the store and tries again with
//! backoff, the kept changes first, until a commit succeeds. Meanwhile new writes are
//! answered at once with [`StoreError::Unavailable`] and kept too, and
//! [`StorageHealth`] says the storage is failing, for the router to refuse what would
//! need it. Each transition is logged once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::{error, info};

use super::{Store, StoreError, StoreOp, StoreView};
use crate::config::Durability;
use crate::metrics::Metrics;

/// Largest number of batches merged into one transaction.
const MAX_BATCHES_PER_COMMIT: usize = 1024;

/// The wait before the first retry of a failed commit; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(50);

/// The longest wait between retries while storage fails.
const MAX_RETRY: Duration = Duration::from_secs(2);

/// Whether storage is failing now, as the writer last found it.
#[derive(Debug, Default)]
pub struct StorageHealth {
    failing: AtomicBool,
}

impl StorageHealth {
    /// Whether the last commit failed (and no later one succeeded).
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }
}

struct WriteRequest {
    ops: Vec<StoreOp>,
    /// Answered once the ops are committed (and synced, in `ack` durability).
    done: Option<oneshot::Sender<Result<(), StoreError>>>,
}

/// What the writer thread is asked for.
enum Request {
    Write(WriteRequest),
    /// A consistent view of the store, taken after every write asked for before it.
    View(oneshot::Sender<Result<StoreView, StoreError>>),
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
    requests: mpsc::Sender<Request>,
    health: Arc<StorageHealth>,
}

impl StoreHandle {
    /// Starts the writer thread that owns `store`.
    pub fn start(
        store: Box<dyn Store>,
        durability: Durability,
        flush_interval: Duration,
        metrics: Arc<Metrics>,
    ) -> (Self, thread::JoinHandle<()>) {
        let (requests, inbox) = mpsc::channel();
        let health = Arc::new(StorageHealth::default());
        let writer = Writer {
            store,
            durability,
            flush_interval,
            metrics,
            health: health.clone(),
            kept: Vec::new(),
            failure: None,
        };
        let thread = thread::Builder::new()
            .name("tabmq-store".into())
            .spawn(move || writer.run(inbox))
            .unwrap_or_else(|error| panic!("cannot start the storage thread: {error}"));
        (Self { requests, health }, thread)
    }

    /// A consistent view of everything stored, including every write begun before this.
    pub async fn view(&self) -> Result<StoreView, StoreError> {
        let (done, answer) = oneshot::channel();
        self.requests
            .send(Request::View(done))
            .map_err(|_| StoreError::Stopped)?;
        answer.await.unwrap_or(Err(StoreError::Stopped))
    }

    /// Whether storage is failing now.
    pub fn health(&self) -> &StorageHealth {
        &self.health
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
        match self.requests.send(Request::Write(request)) {
            Ok(()) => PendingCommit::Waiting(answer),
            Err(_) => PendingCommit::Done(Some(Err(StoreError::Stopped))),
        }
    }

    /// Commits `ops` without waiting (a lost write costs at most a redelivery).
    pub fn submit(&self, ops: Vec<StoreOp>) {
        if !ops.is_empty()
            && self
                .requests
                .send(Request::Write(WriteRequest { ops, done: None }))
                .is_err()
        {
            error!("storage writer stopped; a write was not recorded");
        }
    }
}

/// Since when storage fails, and when to try again.
struct Failure {
    since: Instant,
    retry_at: Instant,
    delay: Duration,
    last_error: String,
}

/// The writer thread's state.
struct Writer {
    store: Box<dyn Store>,
    durability: Durability,
    flush_interval: Duration,
    metrics: Arc<Metrics>,
    health: Arc<StorageHealth>,
    /// Changes of failed commits, oldest first, written before anything newer.
    kept: Vec<StoreOp>,
    failure: Option<Failure>,
}

impl Writer {
    fn run(mut self, inbox: mpsc::Receiver<Request>) {
        let mut unsynced_since: Option<Instant> = None;
        loop {
            let wake_at = match (&self.failure, unsynced_since) {
                (Some(failure), _) => Some(failure.retry_at),
                (None, Some(since)) => Some(since + self.flush_interval),
                (None, None) => None,
            };
            let request = match wake_at {
                Some(at) => match inbox.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(request) => request,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        // A retry (of the kept changes, or just of the store), or the
                        // periodic sync of `interval` durability.
                        let _ = self.attempt(&[], true);
                        unsynced_since = None;
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                },
                None => match inbox.recv() {
                    Ok(request) => request,
                    Err(_) => break,
                },
            };
            let first = match request {
                Request::Write(write) => write,
                Request::View(done) => {
                    let _ = done.send(self.store.view());
                    continue;
                }
            };
            let mut batch = vec![first];
            let mut view_after = None;
            while batch.len() < MAX_BATCHES_PER_COMMIT {
                match inbox.try_recv() {
                    Ok(Request::Write(request)) => batch.push(request),
                    Ok(Request::View(done)) => {
                        view_after = Some(done);
                        break;
                    }
                    Err(_) => break,
                }
            }
            let waiting = batch.iter().any(|request| request.done.is_some());
            let sync = self.durability == Durability::Ack && waiting;
            let ops: Vec<StoreOp> = batch
                .iter_mut()
                .flat_map(|request| std::mem::take(&mut request.ops))
                .collect();
            let result = match &self.failure {
                Some(failure) if Instant::now() < failure.retry_at => {
                    let answer = Err(StoreError::Unavailable(failure.last_error.clone()));
                    self.keep(ops);
                    answer
                }
                _ => self.attempt(&ops, sync),
            };
            if result.is_ok() {
                if !sync && unsynced_since.is_none() {
                    unsynced_since = Some(Instant::now());
                } else if sync {
                    unsynced_since = None;
                }
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
            if let Some(done) = view_after {
                let _ = done.send(self.store.view());
            }
        }
        if !self.kept.is_empty() || self.failure.is_some() {
            let _ = self.attempt(&[], true);
        } else if let Err(error) = self.store.sync() {
            error!(%error, "final storage sync failed");
        }
        if !self.kept.is_empty() {
            error!(
                changes = self.kept.len(),
                "storage still failing at shutdown; changes not written"
            );
        }
    }

    /// Commits the kept changes and then `ops` in one transaction (after reopening the
    /// store if it failed before); on failure, keeps them all for the next attempt.
    fn attempt(&mut self, ops: &[StoreOp], sync: bool) -> Result<(), StoreError> {
        if let Err(error) = self.reopen_if_failing() {
            self.keep(ops.to_vec());
            self.failed(&error);
            return Err(error);
        }
        let result = if self.kept.is_empty() {
            let result = match ops.is_empty() {
                true => self.store.sync(),
                false => self.store.commit(ops, sync),
            };
            if result.is_err() {
                self.keep(ops.to_vec());
            }
            result
        } else {
            self.keep(ops.to_vec());
            let result = self.store.commit(&self.kept, true);
            if result.is_ok() {
                self.kept.clear();
            }
            result
        };
        match &result {
            Ok(()) => self.recovered(),
            Err(error) => self.failed(error),
        }
        result
    }

    fn reopen_if_failing(&mut self) -> Result<(), StoreError> {
        match self.failure {
            Some(_) => self.store.reopen(),
            None => Ok(()),
        }
    }

    fn keep(&mut self, ops: Vec<StoreOp>) {
        self.kept.extend(ops);
        Metrics::set(&self.metrics.storage_kept_changes, self.kept.len() as u64);
    }

    fn failed(&mut self, error: &StoreError) {
        Metrics::inc(&self.metrics.storage_errors_total);
        let now = Instant::now();
        match &mut self.failure {
            Some(failure) => {
                failure.delay = (failure.delay * 2).min(MAX_RETRY);
                failure.retry_at = now + failure.delay;
                failure.last_error = error.to_string();
            }
            None => {
                error!(%error, "storage failing: writes are refused and kept, retrying until they succeed");
                self.failure = Some(Failure {
                    since: now,
                    retry_at: now + FIRST_RETRY,
                    delay: FIRST_RETRY,
                    last_error: error.to_string(),
                });
                self.health.failing.store(true, Ordering::Relaxed);
                Metrics::set(&self.metrics.storage_failing, 1);
            }
        }
    }

    fn recovered(&mut self) {
        Metrics::set(&self.metrics.storage_kept_changes, 0);
        if let Some(failure) = self.failure.take() {
            info!(
                after_ms = failure.since.elapsed().as_millis() as u64,
                "storage recovered: the kept changes are written"
            );
            self.health.failing.store(false, Ordering::Relaxed);
            Metrics::set(&self.metrics.storage_failing, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A store whose writes fail while `full` is set, as on a full disk, and which
    /// records the topics of the `DeleteRetained` changes it applied, in order.
    #[derive(Clone, Default)]
    struct FullDisk {
        full: Arc<AtomicBool>,
        applied: Arc<Mutex<Vec<String>>>,
        reopens: Arc<AtomicUsize>,
    }

    impl Store for FullDisk {
        fn commit(&mut self, ops: &[StoreOp], _sync: bool) -> Result<(), StoreError> {
            if self.full.load(Ordering::SeqCst) {
                return Err(StoreError::Io("No space left on device".into()));
            }
            let mut applied = self.applied.lock().expect("lock");
            for op in ops {
                if let StoreOp::DeleteRetained { topic } = op {
                    applied.push(topic.clone());
                }
            }
            Ok(())
        }

        fn sync(&mut self) -> Result<(), StoreError> {
            self.commit(&[], true)
        }

        fn view(&self) -> Result<StoreView, StoreError> {
            Err(StoreError::Io("no views in this test".into()))
        }

        fn reopen(&mut self) -> Result<(), StoreError> {
            self.reopens.fetch_add(1, Ordering::SeqCst);
            match self.full.load(Ordering::SeqCst) {
                true => Err(StoreError::Io("No space left on device".into())),
                false => Ok(()),
            }
        }
    }

    fn change(topic: &str) -> Vec<StoreOp> {
        vec![StoreOp::DeleteRetained { topic: topic.into() }]
    }

    #[tokio::test]
    async fn a_failed_write_is_reported_kept_and_written_first_once_the_store_recovers() {
        let store = FullDisk::default();
        let metrics = Arc::new(Metrics::default());
        let (handle, _thread) = StoreHandle::start(
            Box::new(store.clone()),
            Durability::Ack,
            Duration::from_secs(1),
            metrics.clone(),
        );
        handle.commit(change("before")).await.expect("written");
        assert!(!handle.health().is_failing());

        store.full.store(true, Ordering::SeqCst);
        assert!(
            handle.commit(change("during-1")).await.is_err(),
            "not acknowledged"
        );
        assert!(handle.health().is_failing());
        assert_eq!(metrics.storage_failing.load(Ordering::Relaxed), 1);
        assert!(handle.commit(change("during-2")).await.is_err());
        assert_eq!(metrics.storage_kept_changes.load(Ordering::Relaxed), 2);

        store.full.store(false, Ordering::SeqCst);
        // Recovery needs no new write: the writer retries on its own.
        let deadline = Instant::now() + Duration::from_secs(10);
        while handle.health().is_failing() {
            assert!(Instant::now() < deadline, "never recovered");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        handle.commit(change("after")).await.expect("written");
        assert_eq!(
            *store.applied.lock().expect("lock"),
            ["before", "during-1", "during-2", "after"],
            "kept changes written once, in order, before newer ones"
        );
        assert!(
            store.reopens.load(Ordering::SeqCst) >= 1,
            "reopened after the failure"
        );
        assert_eq!(metrics.storage_failing.load(Ordering::Relaxed), 0);
        assert_eq!(metrics.storage_kept_changes.load(Ordering::Relaxed), 0);
    }
}
