//! The app's event handlers: `client.on(name, handler)`.

use js_sys::{Function, Promise};
use wasm_bindgen::{JsCast, JsValue};

/// Handlers with their event names, in the order they were added.
#[derive(Default)]
pub struct Emitter {
    handlers: Vec<(String, Function)>,
}

impl Emitter {
    /// Adds a handler.
    pub fn on(&mut self, name: &str, handler: Function) {
        self.handlers.push((name.to_owned(), handler));
    }

    /// Removes a handler.
    pub fn off(&mut self, name: &str, handler: &Function) {
        self.handlers.retain(|(n, h)| n != name || h != handler);
    }

    /// The handlers of `name`, to call once no borrow is held.
    pub fn handlers(&self, name: &str) -> Vec<Function> {
        self.handlers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, handler)| handler.clone())
            .collect()
    }
}

/// Calls each handler with `detail`; a throwing handler is logged and the others still
/// run. Returns the promises handlers returned (a handler may hold a message that way).
pub fn dispatch(handlers: &[Function], detail: &JsValue) -> Vec<Promise> {
    let mut promises = Vec::new();
    for handler in handlers {
        match handler.call1(&JsValue::NULL, detail) {
            Ok(value) => promises.extend(value.dyn_into::<Promise>().ok()),
            Err(error) => web_sys::console::error_2(&"tabmq: event handler threw".into(), &error),
        }
    }
    promises
}
