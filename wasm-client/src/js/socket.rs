//! The WebSocket: opened with the `mqtt` subprotocol, binary frames, and its callbacks
//! kept alive (and detached) with it.

use js_sys::{ArrayBuffer, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use crate::error::ClientError;

/// What the socket reports.
pub trait SocketEvents: 'static {
    /// The connection is open.
    fn opened(&self, generation: u64);
    /// Bytes arrived.
    fn received(&self, generation: u64, bytes: Vec<u8>);
    /// The connection closed.
    fn closed(&self, generation: u64, code: u16, reason: String);
}

/// The close code sent when a session state could not be saved. A page may only send
/// 1000 or 3000–4999; the broker's 4000 means takeover, so this is another private code.
pub const CLOSE_STORAGE_FAILURE: u16 = 4500;

/// An open (or opening) WebSocket.
pub struct Socket {
    ws: WebSocket,
    generation: u64,
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Socket {
    /// Opens `url`; `generation` tells this socket's events from an older one's.
    pub fn open(
        url: &str,
        generation: u64,
        events: std::rc::Rc<dyn SocketEvents>,
    ) -> Result<Self, ClientError> {
        let ws = WebSocket::new_with_str(url, "mqtt")
            .map_err(|e| ClientError::Request(crate::error::js_message(&e)))?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let on_open = {
            let events = events.clone();
            Closure::<dyn FnMut()>::new(move || events.opened(generation))
        };
        let on_message = {
            let events = events.clone();
            Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                if let Ok(buffer) = event.data().dyn_into::<ArrayBuffer>() {
                    events.received(generation, Uint8Array::new(&buffer).to_vec());
                }
            })
        };
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
            events.closed(generation, event.code(), event.reason());
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Ok(Self {
            ws,
            generation,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
        })
    }

    /// This socket's generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Sends one binary frame.
    pub fn send(&self, bytes: &[u8]) {
        if self.ws.ready_state() == WebSocket::OPEN {
            let _ = self.ws.send_with_u8_array(bytes);
        }
    }

    /// Starts closing; `closed` follows.
    pub fn close(&self, code: u16, reason: &str) {
        let _ = self.ws.close_with_code_and_reason(code, reason);
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        if self.ws.ready_state() < WebSocket::CLOSING {
            let _ = self.ws.close();
        }
    }
}
