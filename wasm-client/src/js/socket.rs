//! The WebSocket: opened with the `mqtt` subprotocol, binary frames. Its listeners are
//! `gloo-events` listeners owned by the [`Socket`]: dropping it removes them, so no
//! callback can outlive it.

use gloo_events::EventListener;
use js_sys::{ArrayBuffer, Uint8Array};
use wasm_bindgen::JsCast;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

/// What the socket reports, as it happens.
pub enum SocketEvent {
    /// The connection is open.
    Opened,
    /// Bytes arrived.
    Received(Vec<u8>),
    /// The connection closed: code and reason.
    Closed(u16, String),
}

/// An open (or opening) WebSocket.
pub struct Socket {
    ws: WebSocket,
    _listeners: [EventListener; 3],
}

impl Socket {
    /// Opens `url`; `on_event` hears what happens until the socket is dropped.
    pub fn open(url: &str, on_event: impl Fn(SocketEvent) + Clone + 'static) -> Result<Self, String> {
        let ws = WebSocket::new_with_str(url, "mqtt").map_err(|error| super::convert::js_message(&error))?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let opened = {
            let on_event = on_event.clone();
            EventListener::new(&ws, "open", move |_| on_event(SocketEvent::Opened))
        };
        let received = {
            let on_event = on_event.clone();
            EventListener::new(&ws, "message", move |event| {
                let data = event.unchecked_ref::<MessageEvent>().data();
                if let Ok(buffer) = data.dyn_into::<ArrayBuffer>() {
                    on_event(SocketEvent::Received(Uint8Array::new(&buffer).to_vec()));
                }
            })
        };
        let closed = EventListener::new(&ws, "close", move |event| {
            let event = event.unchecked_ref::<CloseEvent>();
            on_event(SocketEvent::Closed(event.code(), event.reason()));
        });
        Ok(Self {
            ws,
            _listeners: [opened, received, closed],
        })
    }

    /// Sends one binary frame.
    pub fn send(&self, bytes: &[u8]) {
        if self.ws.ready_state() == WebSocket::OPEN {
            let _ = self.ws.send_with_u8_array(bytes);
        }
    }

    /// Starts closing; the close event follows.
    pub fn close(&self, code: u16, reason: &str) {
        let _ = self.ws.close_with_code_and_reason(code, reason);
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if self.ws.ready_state() < WebSocket::CLOSING {
            let _ = self.ws.close();
        }
    }
}
