//! The tab lock of a client id: a Web Lock where the browser has them, otherwise a
//! lease in IndexedDB ([`crate::lease`]). Either is given up when dropped (the client
//! closes or changes device id) and when the page goes away, so the next tab leads.

use std::cell::Cell;
use std::rc::Rc;

use gloo_events::EventListener;
use gloo_timers::callback::Interval;
use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::AbortController;

use super::convert::object;
use super::storage::Storage;
use crate::lease::RENEW_MS;

#[wasm_bindgen]
extern "C" {
    /// `navigator.locks.request(name, options, callback)`, bound directly to avoid
    /// web-sys's unstable-API flag.
    #[wasm_bindgen(js_namespace = ["navigator", "locks"], js_name = request, catch)]
    fn request_lock(name: &str, options: &JsValue, callback: &JsValue) -> Result<Promise, JsValue>;
}

/// Whether this page has Web Locks (secure contexts only).
pub fn web_locks_available() -> bool {
    let global = js_sys::global();
    Reflect::get(&global, &"navigator".into())
        .and_then(|navigator| Reflect::get(&navigator, &"locks".into()))
        .is_ok_and(|locks| !locks.is_undefined() && !locks.is_null())
}

/// What the lock tells its owner.
pub enum LockEvent {
    /// This tab holds the lock.
    Granted {
        /// It is an IndexedDB lease, not a Web Lock.
        lease: bool,
    },
    /// This tab lost the lock it held (a lease taken over after its tab was frozen).
    Lost,
}

/// A held (or requested) tab lock.
pub enum TabLock {
    /// A Web Lock request.
    WebLock {
        /// Cancels the request while it waits.
        abort: AbortController,
        /// Resolves the promise that keeps the lock, once granted.
        release: Rc<Cell<Option<Function>>>,
        /// False once dropped: a grant arriving later is given back at once.
        alive: Rc<Cell<bool>>,
    },
    /// A lease renewed by a timer.
    Lease {
        /// The renewal timer.
        _renew: Interval,
        /// Gives the lease up when the page is hidden for good.
        _pagehide: EventListener,
        /// Shared with the timer's claims.
        state: Rc<LeaseState>,
    },
}

/// The lease's owner, as the timer's claims see it.
pub struct LeaseState {
    storage: Rc<Storage>,
    client_id: String,
    tab: String,
    leader: Cell<bool>,
    alive: Cell<bool>,
}

impl LeaseState {
    fn release(self: &Rc<Self>) {
        if self.leader.replace(false) {
            let state = self.clone();
            spawn_local(async move {
                let _ = state
                    .storage
                    .release_lease(&state.client_id, &state.tab, js_sys::Date::now())
                    .await;
            });
        }
    }
}

impl TabLock {
    /// Asks for the lock of `client_id`; `on_event` hears when it is granted or lost.
    pub fn request(
        client_id: &str,
        tab: &str,
        storage: Rc<Storage>,
        on_event: impl Fn(LockEvent) + 'static,
    ) -> Self {
        let on_event = Rc::new(on_event);
        if web_locks_available() {
            let granted = on_event.clone();
            // A page may have Web Locks and still be refused them (a sandboxed frame):
            // the lease works wherever IndexedDB does.
            if let Ok(lock) = Self::web_lock(client_id, move |event| granted(event)) {
                return lock;
            }
        }
        Self::lease(client_id, tab, storage, move |event| on_event(event))
    }

    fn web_lock(client_id: &str, on_event: impl Fn(LockEvent) + 'static) -> Result<Self, JsValue> {
        let abort = AbortController::new()?;
        let release: Rc<Cell<Option<Function>>> = Rc::default();
        let alive = Rc::new(Cell::new(true));
        let callback = {
            let release = release.clone();
            let alive = alive.clone();
            Closure::once_into_js(move |_lock: JsValue| -> Promise {
                if !alive.get() {
                    return Promise::resolve(&JsValue::UNDEFINED);
                }
                let mut on_event = Some(on_event);
                Promise::new(&mut |resolve, _reject| {
                    release.set(Some(resolve));
                    if let Some(on_event) = on_event.take() {
                        on_event(LockEvent::Granted { lease: false });
                    }
                })
            })
        };
        let options = object(&[("signal", abort.signal().into())]);
        let held = request_lock(&format!("tabmq:{client_id}"), &options, &callback)?;
        // Settles when the lock is released, or rejects when the request is aborted.
        spawn_local(async move {
            let _ = JsFuture::from(held).await;
        });
        Ok(Self::WebLock {
            abort,
            release,
            alive,
        })
    }

    fn lease(
        client_id: &str,
        tab: &str,
        storage: Rc<Storage>,
        on_event: impl Fn(LockEvent) + 'static,
    ) -> Self {
        let state = Rc::new(LeaseState {
            storage,
            client_id: client_id.into(),
            tab: tab.into(),
            leader: Cell::new(false),
            alive: Cell::new(true),
        });
        let on_event = Rc::new(on_event);
        let claim = {
            let state = state.clone();
            move || {
                let state = state.clone();
                let on_event = on_event.clone();
                spawn_local(async move {
                    if !state.alive.get() {
                        return;
                    }
                    let claimed = state
                        .storage
                        .claim_lease(&state.client_id, &state.tab, js_sys::Date::now())
                        .await
                        .unwrap_or(false);
                    if !state.alive.get() {
                        state.leader.set(claimed);
                        return state.release();
                    }
                    match (state.leader.replace(claimed), claimed) {
                        (false, true) => on_event(LockEvent::Granted { lease: true }),
                        (true, false) => on_event(LockEvent::Lost),
                        _ => {}
                    }
                });
            }
        };
        claim();
        let renew = Interval::new(RENEW_MS, claim);
        let pagehide = {
            let state = state.clone();
            let window = js_sys::global();
            EventListener::new(window.unchecked_ref(), "pagehide", move |_| state.release())
        };
        Self::Lease {
            _renew: renew,
            _pagehide: pagehide,
            state,
        }
    }
}

impl TabLock {
    /// Whether this tab still holds the lock: a Web Lock is held until released; a lease
    /// is renewed now if it is still this tab's (or free), and reported lost otherwise.
    pub fn check(&self) -> impl std::future::Future<Output = bool> + 'static {
        let lease = match self {
            Self::WebLock { .. } => None,
            Self::Lease { state, .. } => Some(state.clone()),
        };
        async move {
            let Some(state) = lease else { return true };
            let held = state
                .storage
                .claim_lease(&state.client_id, &state.tab, js_sys::Date::now())
                .await
                .unwrap_or(false);
            state.leader.set(held);
            held
        }
    }
}

impl Drop for TabLock {
    fn drop(&mut self) {
        match self {
            Self::WebLock {
                abort,
                release,
                alive,
            } => {
                alive.set(false);
                abort.abort();
                if let Some(resolve) = release.take() {
                    let _ = resolve.call0(&JsValue::NULL);
                }
            }
            Self::Lease { state, .. } => {
                state.alive.set(false);
                state.release();
            }
        }
    }
}
