//! IndexedDB through the `idb` crate: in the `kv` store the device id and the tab leases;
//! in the `log` store each client id's session as a log of save entries under
//! `[clientId, seq]` (see [`crate::session_log`]).

use idb::{Database, DatabaseEvent, Factory, KeyRange, ObjectStoreParams, Query, TransactionMode};
use js_sys::{Array, Uint8Array};
use tabmq_protocol::flow::SessionFlows;
use wasm_bindgen::JsValue;

use crate::error::ClientError;
use crate::lease::{Lease, TTL_MS, may_claim};
use crate::mirror::SessionWrites;
use crate::session_log::{StoredSession, decode_entry, encode_entry};

const STORE: &str = "kv";
const LOG: &str = "log";
/// The per-message store of version 2, replaced by the log.
const MESSAGES: &str = "messages";
const DEVICE_ID_KEY: &str = "device-id";
/// Version 2 added the `messages` store; version 3 replaced it by the `log` store.
const SCHEMA_VERSION: u32 = 3;

/// One app namespace's database, `tabmq-{namespace}`.
pub struct Storage {
    db: Database,
}

fn storage_error(error: impl std::fmt::Display) -> ClientError {
    ClientError::Storage(error.to_string())
}

impl Storage {
    /// Opens (creating if needed) the database of `namespace`.
    pub async fn open(namespace: &str) -> Result<Self, ClientError> {
        let factory = Factory::new().map_err(storage_error)?;
        let mut request = factory
            .open(&format!("tabmq-{namespace}"), Some(SCHEMA_VERSION))
            .map_err(storage_error)?;
        request.on_upgrade_needed(|event| {
            if let Ok(db) = event.database() {
                let existing = db.store_names();
                for store in [STORE, LOG] {
                    if !existing.iter().any(|name| name == store) {
                        let _ = db.create_object_store(store, ObjectStoreParams::new());
                    }
                }
                if existing.iter().any(|name| name == MESSAGES) {
                    let _ = db.delete_object_store(MESSAGES);
                }
            }
        });
        let db = request.await.map_err(storage_error)?;
        Ok(Self { db })
    }

    async fn get(&self, key: &str) -> Result<Option<JsValue>, ClientError> {
        let transaction = self
            .db
            .transaction(&[STORE], TransactionMode::ReadOnly)
            .map_err(storage_error)?;
        let store = transaction.object_store(STORE).map_err(storage_error)?;
        store
            .get(JsValue::from_str(key))
            .map_err(storage_error)?
            .await
            .map_err(storage_error)
    }

    async fn set(&self, key: &str, value: Option<&JsValue>) -> Result<(), ClientError> {
        let transaction = self
            .db
            .transaction(&[STORE], TransactionMode::ReadWrite)
            .map_err(storage_error)?;
        let store = transaction.object_store(STORE).map_err(storage_error)?;
        put_or_delete(&store, &JsValue::from_str(key), value)?;
        commit(transaction).await
    }

    /// The stored device id, if any.
    pub async fn device_id(&self) -> Result<Option<String>, ClientError> {
        Ok(self.get(DEVICE_ID_KEY).await?.and_then(|value| value.as_string()))
    }

    /// Stores (or with `None`, forgets) the device id.
    pub async fn set_device_id(&self, device_id: Option<&str>) -> Result<(), ClientError> {
        self.set(DEVICE_ID_KEY, device_id.map(JsValue::from_str).as_ref())
            .await
    }

    /// Takes or renews the lease of `client_id` for `tab` (see [`crate::lease`]) in one
    /// read-write transaction; whether this tab holds it now.
    pub async fn claim_lease(&self, client_id: &str, tab: &str, now_ms: f64) -> Result<bool, ClientError> {
        self.write_lease(client_id, tab, now_ms, now_ms + TTL_MS).await
    }

    /// Gives up the lease of `client_id` if `tab` holds it (it expires at once), so
    /// another tab may take it without waiting.
    pub async fn release_lease(&self, client_id: &str, tab: &str, now_ms: f64) -> Result<(), ClientError> {
        self.write_lease(client_id, tab, now_ms, 0.0).await.map(drop)
    }

    /// Sets the lease to `[tab, expires_ms]` if `tab` may take it at `now_ms`.
    async fn write_lease(
        &self,
        client_id: &str,
        tab: &str,
        now_ms: f64,
        expires_ms: f64,
    ) -> Result<bool, ClientError> {
        let transaction = self
            .db
            .transaction(&[STORE], TransactionMode::ReadWrite)
            .map_err(storage_error)?;
        let store = transaction.object_store(STORE).map_err(storage_error)?;
        let key = JsValue::from_str(&lease_key(client_id));
        let stored = store
            .get(key.clone())
            .map_err(storage_error)?
            .await
            .map_err(storage_error)?
            .and_then(|value| {
                let pair = Array::from(&value);
                Some(Lease {
                    owner: pair.get(0).as_string()?,
                    expires_ms: pair.get(1).as_f64()?,
                })
            });
        let claimed = may_claim(stored.as_ref(), tab, now_ms);
        if claimed {
            let value = Array::of2(&tab.into(), &JsValue::from_f64(expires_ms));
            put_or_delete(&store, &key, Some(&value.into()))?;
        }
        commit(transaction).await?;
        Ok(claimed)
    }

    /// The stored session of `client_id` (its log entries applied in order), and the
    /// key of its last entry.
    pub async fn session(&self, client_id: &str) -> Result<(SessionFlows, u64), ClientError> {
        let transaction = self
            .db
            .transaction(&[LOG], TransactionMode::ReadOnly)
            .map_err(storage_error)?;
        let log = transaction.object_store(LOG).map_err(storage_error)?;
        let client = JsValue::from_str(client_id);
        let range = entry_range(&client, f64::INFINITY)?;
        let keys = log
            .get_all_keys(Some(range), None)
            .map_err(storage_error)?
            .await
            .map_err(storage_error)?;
        let entries = log
            .get_all(Some(entry_range(&client, f64::INFINITY)?), None)
            .map_err(storage_error)?
            .await
            .map_err(storage_error)?;
        let mut stored = StoredSession::default();
        for entry in entries {
            let writes = decode_entry(&Uint8Array::new(&entry).to_vec()).map_err(|error| {
                ClientError::Storage(format!("a saved session entry is unreadable: {error}"))
            })?;
            stored.apply(&writes);
        }
        let last_seq = keys
            .last()
            .and_then(|key| Array::from(key).get(1).as_f64())
            .map_or(0, |seq| seq as u64);
        Ok((stored.flows(), last_seq))
    }

    /// Stores the entry of one save under `seq` in one transaction (an entry that replaces
    /// everything also deletes the entries before it); resolves once it is committed, so
    /// all of it or none of it is stored.
    pub async fn write_session(
        &self,
        client_id: &str,
        seq: u64,
        writes: &SessionWrites,
    ) -> Result<(), ClientError> {
        // Encoded before the transaction opens: a failure then leaves nothing half written.
        let entry = encode_entry(writes)
            .map_err(|error| ClientError::Storage(format!("a message cannot be saved: {error}")))?;
        let transaction = self
            .db
            .transaction(&[LOG], TransactionMode::ReadWrite)
            .map_err(storage_error)?;
        let queued = queue_entry(&transaction, client_id, seq, &entry, writes.replace_all);
        if let Err(error) = queued {
            // A transaction commits by itself once its requests are done: abort what was queued.
            let _ = web_sys::IdbTransaction::from(transaction).abort();
            return Err(error);
        }
        commit(transaction).await
    }
}

/// Queues one save's requests on `transaction`.
fn queue_entry(
    transaction: &idb::Transaction,
    client_id: &str,
    seq: u64,
    entry: &[u8],
    replaces: bool,
) -> Result<(), ClientError> {
    let log = transaction.object_store(LOG).map_err(storage_error)?;
    let client = JsValue::from_str(client_id);
    if replaces && seq > 0 {
        log.delete(entry_range(&client, (seq - 1) as f64)?)
            .map_err(storage_error)?;
    }
    // An ArrayBuffer: Chromium stores it faster than a Uint8Array view of one.
    let value: JsValue = Uint8Array::from(entry).buffer().into();
    put_or_delete(&log, &entry_key(&client, seq as f64), Some(&value))
}

/// The key of one log entry: `[clientId, seq]`, so one key range reads a client id's
/// entries in order.
fn entry_key(client_id: &JsValue, seq: f64) -> JsValue {
    Array::of2(client_id, &JsValue::from_f64(seq)).into()
}

/// The log entries of `client_id` up to `last`, included.
fn entry_range(client_id: &JsValue, last: f64) -> Result<Query, ClientError> {
    KeyRange::bound(
        &entry_key(client_id, 0.0),
        &entry_key(client_id, last),
        None,
        None,
    )
    .map(Query::KeyRange)
    .map_err(storage_error)
}

fn lease_key(client_id: &str) -> String {
    format!("lease:{client_id}")
}

fn put_or_delete(
    store: &idb::ObjectStore,
    key: &JsValue,
    value: Option<&JsValue>,
) -> Result<(), ClientError> {
    match value {
        Some(value) => store.put(value, Some(key)).map(drop),
        None => store.delete(key.clone()).map(drop),
    }
    .map_err(storage_error)
}

/// Commits `transaction`; an abort (a full disk, a quota) is reported by its DOM exception's name.
async fn commit(transaction: idb::Transaction) -> Result<(), ClientError> {
    // A handle kept to read why the transaction aborted (e.g. `QuotaExceededError`).
    let handle = web_sys::IdbTransaction::from(transaction);
    let result = idb::Transaction::from(handle.clone())
        .commit()
        .map_err(storage_error)?
        .await
        .map_err(storage_error)?;
    if result.is_committed() {
        return Ok(());
    }
    Err(ClientError::Storage(match handle.error() {
        Some(error) if error.message().is_empty() => error.name(),
        Some(error) => [error.name(), error.message()].join(": "),
        None => "transaction aborted".into(),
    }))
}
