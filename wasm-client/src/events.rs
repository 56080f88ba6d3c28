//! A small event emitter: `client.on(name, handler)`.

use std::collections::HashMap;

use js_sys::Function;
use wasm_bindgen::JsValue;

/// Handlers by event name.
#[derive(Default)]
pub struct Emitter {
    handlers: HashMap<String, Vec<Function>>,
}

impl Emitter {
    /// Adds a handler.
    pub fn on(&mut self, name: &str, handler: Function) {
        self.handlers.entry(name.to_owned()).or_default().push(handler);
    }

    /// Removes a handler.
    pub fn off(&mut self, name: &str, handler: &Function) {
        if let Some(list) = self.handlers.get_mut(name) {
            list.retain(|h| h != handler);
        }
    }

    /// The handlers of `name`, to call once no borrow of the client is held.
    pub fn handlers(&self, name: &str) -> Vec<Function> {
        self.handlers.get(name).cloned().unwrap_or_default()
    }
}

/// Calls each handler with `detail`; a throwing handler is logged, the others still run.
pub fn dispatch(handlers: Vec<Function>, detail: &JsValue) {
    for handler in handlers {
        if let Err(error) = handler.call1(&JsValue::NULL, detail) {
            web_sys::console::error_2(&"tabmq: event handler threw".into(), &error);
        }
    }
}

/// A plain JS object from key/value pairs.
pub fn object(pairs: &[(&str, JsValue)]) -> JsValue {
    let object = js_sys::Object::new();
    for (key, value) in pairs {
        let _ = js_sys::Reflect::set(&object, &JsValue::from_str(key), value);
    }
    object.into()
}
