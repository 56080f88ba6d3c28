//! The one driver: it alone holds the session machine (in the only `RefCell` of the
//! client), feeds it one input at a time, drains its actions with the borrow dropped,
//! then runs them. An input that arrives while it runs (a handler calling `publish`, a
//! socket event during a callback) is queued and handled next, never a panic.
//!
//! Every adapter callback (socket, channel, lock, timer, IndexedDB completion) holds the
//! driver weakly and is owned by an adapter the driver drops when it is done with it, so
//! nothing can call into a client that is gone.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};

use gloo_events::EventListener;
use gloo_timers::callback::Timeout;
use js_sys::{Function, Promise};
use tabmq_protocol::Timestamp;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::{JsFuture, spawn_local};

use super::channel::Channel;
use super::convert;
use super::emitter::{Emitter, dispatch};
use super::lock::{LockEvent, TabLock};
use super::socket::{Socket, SocketEvent};
use super::storage::Storage;
use crate::id_map::IdMap;
use crate::session::{Action, Input, OpId, Request, Session, SocketId};

/// Milliseconds since the epoch, as the machine's clock.
fn now() -> Timestamp {
    Timestamp::from_millis(js_sys::Date::now() as u64)
}

/// The browser objects the actions act on.
#[derive(Default)]
struct Adapters {
    socket: Option<(SocketId, Socket)>,
    /// Bytes for the socket, sent as one WebSocket message when the driver runs out of
    /// inputs (or before a close): one frame for a whole burst of acknowledgements.
    unsent: Vec<u8>,
    channel: Option<Channel>,
    lock: Option<TabLock>,
    /// The one timer: its deadline, whether it has fired, and the timeout itself.
    timer: Option<(Timestamp, Rc<Cell<bool>>, Timeout)>,
    ops: IdMap<OpId, (Function, Function)>,
    next_op: OpId,
    _online: Option<[EventListener; 2]>,
}

struct Inner {
    session: RefCell<Session>,
    adapters: RefCell<Adapters>,
    emitter: RefCell<Emitter>,
    queue: RefCell<VecDeque<Input>>,
    running: Cell<bool>,
    storage: Rc<Storage>,
    url: String,
    tab_id: String,
}

/// Runs one client's session machine in the page.
#[derive(Clone)]
pub struct Driver(Rc<Inner>);

impl Driver {
    /// Starts `session` (its first actions join the tabs of its client id).
    pub fn start(session: Session, storage: Rc<Storage>, url: String, tab_id: String) -> Self {
        let driver = Self(Rc::new(Inner {
            session: RefCell::new(session),
            adapters: RefCell::default(),
            emitter: RefCell::default(),
            queue: RefCell::default(),
            running: Cell::new(false),
            storage,
            url,
            tab_id,
        }));
        driver.listen_online();
        driver.run();
        driver
    }

    fn weak(&self) -> Weak<Inner> {
        Rc::downgrade(&self.0)
    }

    /// A callback that submits what `input` makes of its argument, while the client lives.
    fn submitter<T>(&self, input: impl Fn(T) -> Option<Input> + 'static) -> impl Fn(T) + Clone + 'static {
        let weak = self.weak();
        let input = Rc::new(input);
        move |value| {
            if let (Some(inner), Some(input)) = (weak.upgrade(), input(value)) {
                Driver(inner).submit(input);
            }
        }
    }

    fn listen_online(&self) {
        let Some(window) = web_sys::window() else { return };
        let online = self.submitter(|()| Some(Input::Online));
        let offline = self.submitter(|()| Some(Input::Offline));
        let listeners = [
            EventListener::new(&window, "online", move |_| online(())),
            EventListener::new(&window, "offline", move |_| offline(())),
        ];
        self.0.adapters.borrow_mut()._online = Some(listeners);
    }

    /// Reads the machine's state (never while it handles an input: that never calls out).
    pub fn view<T>(&self, read: impl FnOnce(&Session) -> T) -> T {
        read(&self.0.session.borrow())
    }

    /// Adds an event handler.
    pub fn on(&self, name: &str, handler: Function) {
        self.0.emitter.borrow_mut().on(name, handler);
    }

    /// Removes an event handler.
    pub fn off(&self, name: &str, handler: &Function) {
        self.0.emitter.borrow_mut().off(name, handler);
    }

    /// Submits an app request; the promise settles with its outcome.
    pub fn request(&self, request: Request) -> Promise {
        let mut settle = None;
        let promise = Promise::new(&mut |resolve, reject| settle = Some((resolve, reject)));
        let op = {
            let mut adapters = self.0.adapters.borrow_mut();
            adapters.next_op += 1;
            let op = adapters.next_op;
            if let Some(settle) = settle {
                adapters.ops.insert(op, settle);
            }
            op
        };
        self.submit(Input::Request { op, request });
        promise
    }

    /// Feeds `input` to the machine, now or right after the input being handled.
    pub fn submit(&self, input: Input) {
        self.0.queue.borrow_mut().push_back(input);
        self.run();
    }

    fn run(&self) {
        if self.0.running.replace(true) {
            return;
        }
        loop {
            let actions: Vec<Action> = {
                let mut session = self.0.session.borrow_mut();
                if let Some(input) = self.0.queue.borrow_mut().pop_front() {
                    session.handle(input, now());
                }
                std::iter::from_fn(|| session.poll_action()).collect()
            };
            for action in actions {
                self.act(action);
            }
            if self.0.queue.borrow().is_empty() {
                break;
            }
        }
        self.send_unsent();
        self.arm_timer();
        self.0.running.set(false);
    }

    fn send_unsent(&self) {
        let mut adapters = self.0.adapters.borrow_mut();
        if adapters.unsent.is_empty() {
            return;
        }
        let bytes = std::mem::take(&mut adapters.unsent);
        if let Some((_, ws)) = &adapters.socket {
            ws.send(&bytes);
        }
    }

    fn arm_timer(&self) {
        let deadline = self.view(Session::poll_timeout);
        let mut adapters = self.0.adapters.borrow_mut();
        if let Some((at, fired, _)) = &adapters.timer
            && Some(*at) == deadline
            && !fired.get()
        {
            return;
        }
        adapters.timer = deadline.map(|at| {
            let delay = at.as_millis().saturating_sub(now().as_millis());
            let fired = Rc::new(Cell::new(false));
            let fire = {
                let fired = fired.clone();
                let submit = self.submitter(|()| Some(Input::Timeout));
                move || {
                    fired.set(true);
                    submit(());
                }
            };
            // Background tabs run timers late, and a timer may fire a millisecond early:
            // the machine re-checks, and a deadline not yet reached is armed again.
            (
                at,
                fired,
                Timeout::new(delay.min(u64::from(u32::MAX)) as u32, fire),
            )
        });
    }

    /// Runs an IndexedDB operation and submits what its result means.
    fn spawn<T: 'static>(
        &self,
        work: impl std::future::Future<Output = T> + 'static,
        input: impl FnOnce(T) -> Input + 'static,
    ) {
        let weak = self.weak();
        spawn_local(async move {
            let result = work.await;
            if let Some(inner) = weak.upgrade() {
                Driver(inner).submit(input(result));
            }
        });
    }

    fn act(&self, action: Action) {
        let storage = self.0.storage.clone();
        match action {
            Action::Open { socket } => self.open(socket),
            Action::Send { socket, bytes } => {
                let mut adapters = self.0.adapters.borrow_mut();
                if adapters.socket.as_ref().is_some_and(|(open, _)| *open == socket) {
                    adapters.unsent.extend_from_slice(&bytes);
                }
            }
            Action::Close { socket, code, reason } => {
                self.send_unsent();
                if let Some((open, ws)) = &self.0.adapters.borrow().socket
                    && *open == socket
                {
                    ws.close(code, reason);
                }
            }
            Action::Save {
                save,
                seq,
                client_id,
                writes,
            } => self.spawn(
                async move { storage.write_session(&client_id, seq, &writes).await },
                move |result| Input::Saved {
                    save,
                    result: result.map_err(|error| error.to_string()),
                },
            ),
            Action::StoreDeviceId { device_id } => self.spawn(
                async move { storage.set_device_id(device_id.as_deref()).await },
                |result| Input::DeviceIdStored {
                    result: result.map_err(|error| error.to_string()),
                },
            ),
            Action::Load { client_id } => self.spawn(
                async move { (storage.session(&client_id).await, client_id) },
                |(result, client_id)| Input::Loaded {
                    client_id,
                    result: result.map_err(|error| error.to_string()),
                },
            ),
            Action::Deliver { delivery, message } => {
                let handlers = self.0.emitter.borrow().handlers("message");
                let promises = dispatch(&handlers, &convert::message(&message));
                if delivery == 0 {
                    return;
                }
                if promises.is_empty() {
                    return self.0.queue.borrow_mut().push_back(Input::Handled { delivery });
                }
                // The acknowledgement waits for the app's promises (rejected ones too).
                let all = Promise::all_settled(&promises.into_iter().collect::<js_sys::Array>());
                self.spawn(JsFuture::from(all), move |_| Input::Handled { delivery });
            }
            Action::Emit(event) => {
                let (name, detail) = convert::event(&event);
                let handlers = self.0.emitter.borrow().handlers(name);
                dispatch(&handlers, &detail);
            }
            Action::Settle { op, outcome } => {
                let settle = self.0.adapters.borrow_mut().ops.remove(op);
                if let Some((resolve, reject)) = settle {
                    let _ = match &outcome {
                        Ok(reply) => resolve.call1(&JsValue::NULL, &convert::reply(reply)),
                        Err(error) => reject.call1(&JsValue::NULL, &convert::error(error)),
                    };
                }
            }
            Action::JoinTabs { client_id } => self.join_tabs(client_id),
            Action::LeaveTabs => {
                let mut adapters = self.0.adapters.borrow_mut();
                adapters.lock = None;
                adapters.channel = None;
            }
            Action::CheckLock => {
                let held = self.0.adapters.borrow().lock.as_ref().map(TabLock::check);
                match held {
                    Some(check) => self.spawn(check, |held| Input::LockChecked { held }),
                    None => self
                        .0
                        .queue
                        .borrow_mut()
                        .push_back(Input::LockChecked { held: false }),
                }
            }
            Action::Post(message) => {
                if let Some(channel) = &self.0.adapters.borrow().channel {
                    channel.post(&message);
                }
            }
        }
    }

    fn open(&self, socket: SocketId) {
        let on_event = self.submitter(move |event| {
            Some(match event {
                SocketEvent::Opened => Input::Opened { socket },
                SocketEvent::Received(bytes) => Input::Received { socket, bytes },
                SocketEvent::Closed(code, reason) => Input::Closed { socket, code, reason },
            })
        });
        self.send_unsent();
        match Socket::open(&self.0.url, on_event) {
            Ok(ws) => self.0.adapters.borrow_mut().socket = Some((socket, ws)),
            Err(reason) => self.0.queue.borrow_mut().push_back(Input::Closed {
                socket,
                code: 1006,
                reason,
            }),
        }
    }

    fn join_tabs(&self, client_id: String) {
        let on_message = self.submitter(|message| Some(Input::Tab(message)));
        let channel = Channel::open(&client_id, on_message);
        let on_lock = {
            let client_id = client_id.clone();
            self.submitter(move |event| {
                let client_id = client_id.clone();
                Some(match event {
                    LockEvent::Granted { lease } => Input::LockGranted { client_id, lease },
                    LockEvent::Lost => Input::LockLost { client_id },
                })
            })
        };
        let lock = TabLock::request(&client_id, &self.0.tab_id, self.0.storage.clone(), on_lock);
        let mut adapters = self.0.adapters.borrow_mut();
        adapters.lock = Some(lock);
        match channel {
            Ok(channel) => adapters.channel = Some(channel),
            Err(error) => {
                let message = format!("cannot coordinate tabs: {}", convert::js_message(&error));
                drop(adapters);
                let error = crate::error::ClientError::Request(message);
                let (name, detail) = convert::event(&crate::session::Event::Error(error));
                dispatch(&self.0.emitter.borrow().handlers(name), &detail);
            }
        }
    }
}
