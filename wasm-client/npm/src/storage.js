// IndexedDB: in the `kv` store the device id and the tab leases; in the `log` store each
// client id's session as a log of save entries under `[clientId, seq]`, written and read
// whole by the wasm module (see `session_log.rs`).

const KV = 'kv';
const LOG = 'log';
const DEVICE_ID = 'device-id';
/** Version 2 added the `messages` store; version 3 replaced it by the `log` store. */
const SCHEMA_VERSION = 3;

/** A request's result, or its error. */
const result = (request) =>
  new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });

/** Resolves once `tx` commits; rejects with why it aborted (e.g. `QuotaExceededError`). */
const committed = (tx) =>
  new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = () => {
      const error = tx.error;
      reject(new Error(!error ? 'transaction aborted' : error.message ? `${error.name}: ${error.message}` : error.name));
    };
  });

/** The log entries of `clientId` up to `last`, included. */
const entries = (clientId, last) => IDBKeyRange.bound([clientId, 0], [clientId, last]);

/** One app namespace's database, `tabmq-{namespace}`. */
export class Storage {
  /** Opens (creating or upgrading) the database of `namespace`. */
  static async open(namespace) {
    const request = indexedDB.open(`tabmq-${namespace}`, SCHEMA_VERSION);
    request.onupgradeneeded = () => {
      const db = request.result;
      for (const store of [KV, LOG]) if (!db.objectStoreNames.contains(store)) db.createObjectStore(store);
      if (db.objectStoreNames.contains('messages')) db.deleteObjectStore('messages');
    };
    return new Storage(await result(request));
  }

  constructor(db) {
    this.db = db;
  }

  /** The stored device id, if any. */
  async deviceId() {
    const value = await result(this.db.transaction(KV).objectStore(KV).get(DEVICE_ID));
    return typeof value === 'string' ? value : undefined;
  }

  /** Stores (or with `undefined`, forgets) the device id. */
  setDeviceId(deviceId) {
    const tx = this.db.transaction(KV, 'readwrite');
    const kv = tx.objectStore(KV);
    if (deviceId === undefined) kv.delete(DEVICE_ID);
    else kv.put(deviceId, DEVICE_ID);
    return committed(tx);
  }

  /**
   * Sets the lease of `clientId` to `[tab, expiresMs]` if `tab` may take it at `nowMs`
   * (free, expired, or already its own), in one read-write transaction: IndexedDB runs
   * them one at a time, so two tabs cannot both take it. Whether `tab` holds it now.
   */
  async writeLease(clientId, tab, nowMs, expiresMs) {
    const tx = this.db.transaction(KV, 'readwrite');
    const kv = tx.objectStore(KV);
    const key = `lease:${clientId}`;
    const lease = await result(kv.get(key));
    const claimed = !Array.isArray(lease) || lease[0] === tab || lease[1] <= nowMs;
    if (claimed) kv.put([tab, expiresMs], key);
    await committed(tx);
    return claimed;
  }

  /** The log entries of `clientId` in order, and the key of the last one. */
  async session(clientId) {
    const log = this.db.transaction(LOG).objectStore(LOG);
    const [keys, values] = await Promise.all([
      result(log.getAllKeys(entries(clientId, Infinity))),
      result(log.getAll(entries(clientId, Infinity))),
    ]);
    return [values.map((value) => new Uint8Array(value)), keys.length ? keys[keys.length - 1][1] : 0];
  }

  /**
   * Stores the entry of one save under `seq` in one transaction (an entry that replaces
   * everything also deletes the entries before it); resolves once it is committed, so
   * all of it or none of it is stored.
   */
  writeSession(clientId, seq, replaces, entry) {
    const tx = this.db.transaction(LOG, 'readwrite');
    const log = tx.objectStore(LOG);
    if (replaces && seq > 0) log.delete(entries(clientId, seq - 1));
    // An ArrayBuffer of its own: Chromium stores it faster than a view of a larger one.
    log.put(entry.slice().buffer, [clientId, seq]);
    return committed(tx);
  }
}
