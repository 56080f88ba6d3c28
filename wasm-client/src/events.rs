//! A small event emitter: `client.on(name, handler)`.

use js_sys::Function;
use wasm_bindgen::JsValue;

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

    /// The handlers of `name`, to call once no borrow of the client is held.
    pub fn handlers(&self, name: &str) -> Vec<Function> {
        self.handlers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, handler)| handler.clone())
            .collect()
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
