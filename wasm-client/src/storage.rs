//! IndexedDB through the `idb` crate: the device id, and each client id's pending
//! session state (queued and in-flight messages, incoming QoS 2 ids) as postcard bytes.

use idb::{Database, DatabaseEvent, Factory, ObjectStoreParams, TransactionMode};
use wasm_bindgen::JsValue;

use crate::error::ClientError;

const STORE: &str = "kv";
const DEVICE_ID_KEY: &str = "device-id";

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
            .open(&format!("tabmq-{namespace}"), Some(1))
            .map_err(storage_error)?;
        request.on_upgrade_needed(|event| {
            if let Ok(db) = event.database() {
                let _ = db.create_object_store(STORE, ObjectStoreParams::new());
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
        match value {
            Some(value) => {
                store
                    .put(value, Some(&JsValue::from_str(key)))
                    .map_err(storage_error)?;
            }
            None => {
                store.delete(JsValue::from_str(key)).map_err(storage_error)?;
            }
        }
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

    /// The stored device id, if any.
    pub async fn device_id(&self) -> Result<Option<String>, ClientError> {
        Ok(self.get(DEVICE_ID_KEY).await?.and_then(|value| value.as_string()))
    }

    /// Stores (or with `None`, forgets) the device id.
    pub async fn set_device_id(&self, device_id: Option<&str>) -> Result<(), ClientError> {
        self.set(DEVICE_ID_KEY, device_id.map(JsValue::from_str).as_ref())
            .await
    }

    /// The saved session state of `client_id`.
    pub async fn session(&self, client_id: &str) -> Result<Option<Vec<u8>>, ClientError> {
        let value = self.get(&format!("session:{client_id}")).await?;
        Ok(value
            .filter(|v| !v.is_undefined())
            .map(|v| js_sys::Uint8Array::new(&v).to_vec()))
    }

    /// Saves the session state of `client_id`; resolves once the transaction is committed.
    pub async fn save_session(&self, client_id: &str, session: &[u8]) -> Result<(), ClientError> {
        let value: JsValue = js_sys::Uint8Array::from(session).into();
        self.set(&format!("session:{client_id}"), Some(&value)).await
    }
}
