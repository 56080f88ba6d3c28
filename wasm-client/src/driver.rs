//! Wiring: socket events and timers into the core, and what follows each of them.

use std::rc::Rc;

use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;

use crate::core::{Notice, Shared, deliver, flush};
use crate::error::ClientError;
use crate::socket::{Socket, SocketEvents};

/// Routes one client's socket events to its core.
struct Events(Shared);

impl SocketEvents for Events {
    fn opened(&self, generation: u64) {
        if current(&self.0, generation) {
            let mut notices = Vec::new();
            self.0.borrow_mut().socket_opened(&mut notices);
            after(&self.0, notices);
        }
    }

    fn received(&self, generation: u64, bytes: Vec<u8>) {
        if current(&self.0, generation) {
            let mut notices = Vec::new();
            self.0.borrow_mut().bytes_received(&bytes, &mut notices);
            after(&self.0, notices);
        }
    }

    fn closed(&self, generation: u64, code: u16, reason: String) {
        if !current(&self.0, generation) {
            return;
        }
        let mut notices = Vec::new();
        let delay = self.0.borrow_mut().socket_closed(code, reason, &mut notices);
        after(&self.0, notices);
        if let Some(delay) = delay {
            schedule_reconnect(&self.0, delay);
        }
    }
}

fn current(shared: &Shared, generation: u64) -> bool {
    shared
        .borrow()
        .socket
        .as_ref()
        .is_some_and(|socket| socket.generation() == generation)
}

/// After any entry point: tell JavaScript, send what is saved, re-arm the keep-alive timer.
pub fn after(shared: &Shared, notices: Vec<Notice>) {
    flush(shared);
    rearm_timer(shared);
    deliver(shared, notices);
}

fn set_timeout(callback: &Closure<dyn FnMut()>, delay_ms: f64) -> Option<i32> {
    let window = web_sys::window()?;
    window
        .set_timeout_with_callback_and_timeout_and_arguments_0(
            callback.as_ref().unchecked_ref(),
            delay_ms as i32,
        )
        .ok()
}

fn clear_timeout(handle: Option<i32>) {
    if let (Some(window), Some(handle)) = (web_sys::window(), handle) {
        window.clear_timeout_with_handle(handle);
    }
}

/// The two timer callbacks of one client, made once and reused.
pub struct Timers {
    keep_alive: Closure<dyn FnMut()>,
    reconnect: Closure<dyn FnMut()>,
}

impl Timers {
    /// Callbacks that reach `shared` (weakly: they do not keep the client alive).
    pub fn new(shared: &Shared) -> Self {
        let weak = Rc::downgrade(shared);
        let keep_alive = Closure::<dyn FnMut()>::new(move || {
            if let Some(shared) = weak.upgrade() {
                let mut notices = Vec::new();
                shared.borrow_mut().timer_fired(&mut notices);
                after(&shared, notices);
            }
        });
        let weak = Rc::downgrade(shared);
        let reconnect = Closure::<dyn FnMut()>::new(move || {
            if let Some(shared) = weak.upgrade() {
                shared.borrow_mut().reconnect_timer = None;
                if !shared.borrow().stopped {
                    let _ = open(&shared);
                }
            }
        });
        Self {
            keep_alive,
            reconnect,
        }
    }
}

fn rearm_timer(shared: &Shared) {
    let mut core = shared.borrow_mut();
    let delay = core.timer_delay();
    clear_timeout(core.timer.take());
    let handle = match (&core.timers, delay) {
        // Background tabs throttle timers; firing early is harmless, the machine re-checks.
        (Some(timers), Some(delay)) => set_timeout(&timers.keep_alive, delay),
        _ => None,
    };
    core.timer = handle;
}

/// Reconnects after `delay_ms`, unless stopped meanwhile.
pub fn schedule_reconnect(shared: &Shared, delay_ms: u32) {
    let mut core = shared.borrow_mut();
    clear_timeout(core.reconnect_timer.take());
    let handle = core
        .timers
        .as_ref()
        .and_then(|timers| set_timeout(&timers.reconnect, f64::from(delay_ms)));
    core.reconnect_timer = handle;
}

/// Opens a new socket for the current client id.
pub fn open(shared: &Shared) -> Result<(), ClientError> {
    let mut core = shared.borrow_mut();
    if core.socket.is_some() {
        return Ok(());
    }
    core.ensure_client(None)?;
    core.generation += 1;
    let generation = core.generation;
    let url = core.options.url.clone();
    core.retired = None;
    core.socket = Some(Socket::open(&url, generation, Rc::new(Events(shared.clone())))?);
    Ok(())
}

/// Cancels both timers.
pub fn stop_timers(shared: &Shared) {
    let mut core = shared.borrow_mut();
    clear_timeout(core.timer.take());
    clear_timeout(core.reconnect_timer.take());
}
