// The tab lock of a client id, which elects the leader tab: a Web Lock where the
// browser has them, otherwise a lease in IndexedDB. `navigator.locks` exists only in
// secure contexts (https, localhost): a page at `http://192.168.1.20:8080/` has IndexedDB
// and BroadcastChannel but no Web Locks, so there the leader holds a lease, a record
// `[tabId, expiresAtMs]` claimed and renewed in one read-write transaction each. The
// leader renews it every RENEW_MS; another tab may take it once it expired, TTL_MS after
// the last renewal, or at once when the leader gave it up (page closed, device id
// changed). A leader that finds its lease taken (its tab was frozen longer than the
// lease) is told it lost the lock.
//
// Either lock is given up by `release()` (the client closes or changes device id) and
// when the page goes away, so the next tab leads.

const TTL_MS = 8000;
const RENEW_MS = 1000;

/**
 * Asks for the lock of `clientId`. `onGranted(lease)` hears that this tab holds it,
 * `onLost()` that a lease was taken from it. Returns `{ release(), check() }`; `check()`
 * resolves whether this tab still holds the lock (a lease is renewed on the way).
 */
export function requestTabLock(clientId, tab, storage, onGranted, onLost) {
  if (globalThis.navigator?.locks) {
    try {
      return webLock(clientId, onGranted);
    } catch {
      // A page may have Web Locks and still be refused them (a sandboxed frame): the
      // lease works wherever IndexedDB does.
    }
  }
  return lease(clientId, tab, storage, onGranted, onLost);
}

function webLock(clientId, onGranted) {
  const abort = new AbortController();
  let release;
  let alive = true;
  navigator.locks
    .request(`tabmq:${clientId}`, { signal: abort.signal }, () => {
      // A grant arriving after `release()` is given back at once.
      if (!alive) return undefined;
      return new Promise((resolve) => {
        release = resolve;
        onGranted(false);
      });
    })
    .catch(() => {}); // rejects when the request is aborted
  return {
    release() {
      alive = false;
      abort.abort();
      release?.();
    },
    check: async () => true,
  };
}

function lease(clientId, tab, storage, onGranted, onLost) {
  let leader = false;
  let alive = true;
  const claim = () => storage.writeLease(clientId, tab, Date.now(), Date.now() + TTL_MS).catch(() => false);
  const giveUp = () => {
    if (!leader) return;
    leader = false;
    storage.writeLease(clientId, tab, Date.now(), 0).catch(() => {});
  };
  const renew = async () => {
    if (!alive) return;
    const held = await claim();
    if (!alive) {
      leader = held;
      return giveUp();
    }
    if (held !== leader) {
      leader = held;
      if (held) onGranted(true);
      else onLost();
    }
  };
  renew();
  const timer = setInterval(renew, RENEW_MS);
  addEventListener('pagehide', giveUp);
  return {
    release() {
      alive = false;
      clearInterval(timer);
      removeEventListener('pagehide', giveUp);
      giveUp();
    },
    async check() {
      leader = await claim();
      return leader;
    },
  };
}
