//! IndexedDB through the `idb` crate: the device id, and each client id's pending
//! session state: one record per queued or in-flight message (see [`crate::record`])
//! in the `messages` store under `[clientId, messageId]`, and the incoming QoS 2 ids
//! awaiting PUBREL under `incoming:{clientId}` in the `kv` store.

use idb::{Database, DatabaseEvent, Factory, KeyRange, ObjectStoreParams, Query, TransactionMode};
use js_sys::{Array, Uint8Array};
use tabmq_protocol::flow::{MessageId, SessionFlows};
use wasm_bindgen::JsValue;

use crate::error::ClientError;
use crate::lease::{Lease, TTL_MS, may_claim};
use crate::mirror::{SessionWrites, restore_session};
use crate::record::{RecordError, decode_packet_ids, decode_record, encode_packet_ids, encode_record};

const STORE: &str = "kv";
const MESSAGES: &str = "messages";
const DEVICE_ID_KEY: &str = "device-id";
/// Version 2 added the `messages` store.
const SCHEMA_VERSION: u32 = 2;

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
                for store in [STORE, MESSAGES] {
                    if !existing.iter().any(|name| name == store) {
                        let _ = db.create_object_store(store, ObjectStoreParams::new());
                    }
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

    /// The stored session of `client_id`: in-flight messages restored in send order
    /// (to be resent with DUP), then the queue, then the incoming QoS 2 ids.
    pub async fn session(&self, client_id: &str) -> Result<SessionFlows, ClientError> {
        let transaction = self
            .db
            .transaction(&[MESSAGES, STORE], TransactionMode::ReadOnly)
            .map_err(storage_error)?;
        let messages = transaction.object_store(MESSAGES).map_err(storage_error)?;
        let client = JsValue::from_str(client_id);
        let records = messages
            .get_all(Some(message_range(&client, 0.0, f64::INFINITY)?), None)
            .map_err(storage_error)?
            .await
            .map_err(storage_error)?;
        let kv = transaction.object_store(STORE).map_err(storage_error)?;
        let incoming = kv
            .get(JsValue::from_str(&incoming_key(client_id)))
            .map_err(storage_error)?
            .await
            .map_err(storage_error)?;

        let messages = records
            .into_iter()
            .map(|record| decode_record(&Uint8Array::new(&record).to_vec()))
            .collect::<Result<Vec<_>, RecordError>>()
            .map_err(|error| ClientError::Storage(format!("a saved message is unreadable: {error}")))?;
        let incoming = incoming
            .filter(|value| !value.is_undefined())
            .map(|ids| decode_packet_ids(&Uint8Array::new(&ids).to_vec()).collect::<Vec<_>>())
            .unwrap_or_default();
        let flows = restore_session(messages, incoming);
        Ok(flows)
    }

    /// Applies `writes` to the stored session of `client_id` in one transaction;
    /// resolves once it is committed, so all of it or none of it is stored.
    pub async fn write_session(&self, client_id: &str, writes: &SessionWrites) -> Result<(), ClientError> {
        // Encoded before the transaction opens: a failure then leaves nothing half written.
        let records = writes
            .put
            .iter()
            .map(|message| Ok((message.id, encode_record(message)?)))
            .collect::<Result<Vec<_>, RecordError>>()
            .map_err(|error| ClientError::Storage(format!("a message cannot be saved: {error}")))?;
        let transaction = self
            .db
            .transaction(&[MESSAGES, STORE], TransactionMode::ReadWrite)
            .map_err(storage_error)?;
        let queued = queue_writes(&transaction, client_id, &records, writes);
        if let Err(error) = queued {
            // A transaction commits by itself once its requests are done: abort what was queued.
            let _ = web_sys::IdbTransaction::from(transaction).abort();
            return Err(error);
        }
        commit(transaction).await
    }
}

/// Queues the requests of one save on `transaction`: the records to put (already encoded,
/// by message id), the runs to delete and the incoming QoS 2 ids.
fn queue_writes(
    transaction: &idb::Transaction,
    client_id: &str,
    records: &[(MessageId, Vec<u8>)],
    writes: &SessionWrites,
) -> Result<(), ClientError> {
    let messages = transaction.object_store(MESSAGES).map_err(storage_error)?;
    let client = JsValue::from_str(client_id);
    if writes.replace_all {
        messages
            .delete(message_range(&client, 0.0, f64::INFINITY)?)
            .map_err(storage_error)?;
    }
    for (id, record) in records {
        // An ArrayBuffer: Chromium stores it faster than a Uint8Array view of one.
        let value: JsValue = Uint8Array::from(record.as_slice()).buffer().into();
        put_or_delete(&messages, &message_key(&client, *id as f64), Some(&value))?;
    }
    for run in &writes.delete {
        let range = message_range(&client, *run.start() as f64, *run.end() as f64)?;
        messages.delete(range).map_err(storage_error)?;
    }
    if let Some(ids) = &writes.incoming {
        let kv = transaction.object_store(STORE).map_err(storage_error)?;
        let value: JsValue = Uint8Array::from(encode_packet_ids(ids).as_slice()).into();
        let key = JsValue::from_str(&incoming_key(client_id));
        put_or_delete(&kv, &key, (!ids.is_empty()).then_some(&value))?;
    }
    Ok(())
}

/// The key of one message record: `[clientId, messageId]`, so that one key range
/// reads a client id's messages in id (send) order.
fn message_key(client_id: &JsValue, id: f64) -> JsValue {
    Array::of2(client_id, &JsValue::from_f64(id)).into()
}

/// The message records of `client_id` with ids from `first` to `last`, both included.
fn message_range(client_id: &JsValue, first: f64, last: f64) -> Result<Query, ClientError> {
    KeyRange::bound(
        &message_key(client_id, first),
        &message_key(client_id, last),
        None,
        None,
    )
    .map(Query::KeyRange)
    .map_err(storage_error)
}

fn lease_key(client_id: &str) -> String {
    format!("lease:{client_id}")
}

fn incoming_key(client_id: &str) -> String {
    format!("incoming:{client_id}")
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
