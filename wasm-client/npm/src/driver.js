// The one driver: it feeds the wasm session machine one input at a time, then runs the
// actions it returns (open/send/close the WebSocket, save to IndexedDB, deliver a
// message, raise an event, settle a request, join/leave the tabs, post to them). Every
// decision is in the machine; this file only does what it is told. An input that
// arrives while actions run (a handler calling `publish`, a socket event during a
// callback) is queued and fed next.

import { Reader, Writer, readEvent, readMessage, readOutcome } from './wire.js';
import { requestTabLock } from './tablock.js';

const errorText = (error) => String(error?.message ?? error);

/** Runs one client's machine in the page. */
export class Driver {
  constructor(machine, storage, urls, tab, credentials) {
    this.machine = machine;
    this.credentials = credentials; // the app's async () => ({ username, password }), if any
    this.opening = null; // a socket waiting for the app's credentials
    this.storage = storage;
    // Each connection attempt takes the next URL: after a loss, the next node.
    this.urls = urls;
    this.tries = 0;
    this.tab = tab;
    this.queue = [];
    this.running = false;
    this.handlers = [];
    this.ops = new Map();
    this.nextOp = 0;
    this.socket = null; // [id, WebSocket]
    this.unsent = []; // bytes for the socket, sent as one frame when the run ends
    this.channel = null;
    this.lock = null;
    this.timer = null; // [deadline, timeout id]
    addEventListener('online', () => this.submit(new Writer(13).done()));
    addEventListener('offline', () => this.submit(new Writer(14).done()));
    this.run(); // the machine's first actions join the tabs of its client id
  }

  /** Submits an app request written by `write(writer)`; the promise settles with its outcome. */
  request(write) {
    const op = ++this.nextOp;
    const writer = new Writer(0).n(op);
    try {
      write(writer);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      this.ops.set(op, [resolve, reject]);
      this.submit(writer.done());
    });
  }

  /** Feeds `input` now, or right after the input being handled. */
  submit(input) {
    this.queue.push(input);
    this.run();
  }

  run() {
    if (this.running) return;
    this.running = true;
    try {
      do {
        const input = this.queue.shift();
        if (input) this.machine.input(input, Date.now());
        for (let action; (action = this.machine.poll()); ) this.act(new Reader(action));
      } while (this.queue.length);
      this.sendUnsent();
      this.armTimer();
    } finally {
      this.running = false;
    }
  }

  sendUnsent() {
    if (!this.unsent.length) return;
    const parts = this.unsent;
    this.unsent = [];
    const ws = this.socket?.[1];
    if (ws?.readyState !== WebSocket.OPEN) return;
    if (parts.length === 1) return ws.send(parts[0]);
    const frame = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
    let at = 0;
    for (const part of parts) {
      frame.set(part, at);
      at += part.length;
    }
    ws.send(frame);
  }

  armTimer() {
    const deadline = this.machine.deadline();
    if (this.timer?.[0] === deadline) return;
    clearTimeout(this.timer?.[1]);
    this.timer = null;
    if (deadline < 0) return;
    // Background tabs run timers late, and a timer may fire a millisecond early: the
    // machine re-checks, and a deadline not yet reached is armed again.
    const id = setTimeout(() => {
      this.timer = null;
      this.submit(new Writer(4).done());
    }, Math.min(Math.max(deadline - Date.now(), 0), 2 ** 31 - 1));
    this.timer = [deadline, id];
  }

  /** Runs an IndexedDB operation, then submits the input `report(result, error)` writes. */
  later(work, report) {
    work().then(
      (value) => this.submit(report(value)),
      (error) => this.submit(report(undefined, errorText(error))),
    );
  }

  /** Calls the handlers of `name`; returns the promises they returned. */
  emit(name, detail) {
    const promises = [];
    for (const [event, handler] of this.handlers) {
      if (event !== name) continue;
      try {
        const value = handler(detail);
        if (typeof value?.then === 'function') promises.push(value);
      } catch (error) {
        console.error('tabmq: event handler threw', error);
      }
    }
    return promises;
  }

  act(r) {
    switch (r.u8()) {
      case 0: return this.credentials ? this.fetchCredentials(r.n()) : this.open(r.n());
      case 1: {
        const socket = r.n();
        if (this.socket?.[0] === socket) this.unsent.push(r.rest());
        return;
      }
      case 2: {
        const socket = r.n();
        const code = r.n();
        const reason = r.str();
        this.sendUnsent();
        if (this.socket?.[0] === socket) this.socket[1].close(code, reason);
        if (this.opening === socket) {
          // Closed before it opened: it never will.
          this.opening = null;
          this.queue.push(new Writer(3).n(socket).n(code).str(reason).done());
        }
        return;
      }
      case 3: {
        const save = r.n();
        const seq = r.n();
        const clientId = r.str();
        const replaces = r.bool();
        const entry = r.rest();
        return this.later(
          () => this.storage.writeSession(clientId, seq, replaces, entry),
          (_, error) => new Writer(5).n(save).opt(error, (w, e) => w.str(e)).done(),
        );
      }
      case 4: {
        const deviceId = r.opt((x) => x.str());
        return this.later(
          () => this.storage.setDeviceId(deviceId),
          (_, error) => new Writer(6).opt(error, (w, e) => w.str(e)).done(),
        );
      }
      case 5: {
        const clientId = r.str();
        return this.later(
          () => this.storage.session(clientId),
          (loaded, error) => {
            const w = new Writer(7).str(clientId).opt(error, (x, e) => x.str(e));
            if (loaded) {
              w.n(loaded[1]).n(loaded[0].length);
              for (const entry of loaded[0]) w.bytes(entry);
            }
            return w.done();
          },
        );
      }
      case 6: {
        const delivery = r.n();
        const promises = this.emit('message', readMessage(r));
        if (delivery === 0) return; // relayed by the leader, which acknowledges it
        const handled = () => this.submit(new Writer(8).n(delivery).done());
        // The acknowledgement waits for the app's promises (rejected ones too).
        if (!promises.length) return this.queue.push(new Writer(8).n(delivery).done());
        Promise.allSettled(promises).then(handled);
        return;
      }
      case 7: {
        const [name, detail] = readEvent(r);
        this.emit(name, detail);
        return;
      }
      case 8: {
        const op = r.n();
        const [ok, value] = readOutcome(r);
        const settle = this.ops.get(op);
        this.ops.delete(op);
        settle?.[ok ? 0 : 1](value);
        return;
      }
      case 9: return this.joinTabs(r.str());
      case 10: return this.leaveTabs();
      case 11: {
        const lock = this.lock;
        if (!lock) return this.queue.push(new Writer(10).bool(false).done());
        lock.check().then((held) => this.submit(new Writer(10).bool(held).done()));
        return;
      }
      case 12: {
        this.channel?.postMessage(r.rest().slice());
        return;
      }
    }
  }

  /** Asks the app for fresh credentials (a new token, say), hands them to the machine for
   * the CONNECT, then opens socket `id`; a failure closes it, and the machine retries. */
  fetchCredentials(id) {
    this.opening = id;
    Promise.resolve()
      .then(() => this.credentials())
      .then(
        (given) => {
          if (this.opening !== id) return;
          this.opening = null;
          const text = (value) => (value == null ? undefined : String(value));
          const input = new Writer(15)
            .opt(text(given?.username), (w, v) => w.str(v))
            .opt(text(given?.password), (w, v) => w.str(v));
          this.submit(input.done());
          this.open(id);
          this.run();
        },
        (error) => {
          if (this.opening !== id) return;
          this.opening = null;
          this.submit(new Writer(3).n(id).n(1006).str(`credentials failed: ${errorText(error)}`).done());
        },
      );
  }

  open(id) {
    this.sendUnsent();
    this.dropSocket();
    let ws;
    try {
      ws = new WebSocket(this.urls[this.tries++ % this.urls.length], 'mqtt');
    } catch (error) {
      this.queue.push(new Writer(3).n(id).n(1006).str(errorText(error)).done());
      return;
    }
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => this.submit(new Writer(1).n(id).done());
    ws.onmessage = (event) => {
      if (event.data instanceof ArrayBuffer) this.submit(new Writer(2).n(id).rest(new Uint8Array(event.data)).done());
    };
    ws.onclose = (event) => this.submit(new Writer(3).n(id).n(event.code).str(event.reason).done());
    this.socket = [id, ws];
  }

  /** Forgets the current socket: its events are no longer heard, and it is closed. */
  dropSocket() {
    const ws = this.socket?.[1];
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = null;
    if (ws.readyState < WebSocket.CLOSING) ws.close();
    this.socket = null;
  }

  joinTabs(clientId) {
    this.leaveTabs();
    try {
      this.channel = new BroadcastChannel(`tabmq:${clientId}`);
      this.channel.onmessage = (event) => {
        if (event.data instanceof Uint8Array) this.submit(new Writer(12).rest(event.data).done());
      };
    } catch (error) {
      this.emit('error', { kind: 'request', message: `request refused: cannot coordinate tabs: ${errorText(error)}` });
    }
    this.lock = requestTabLock(
      clientId,
      this.tab,
      this.storage,
      (lease) => this.submit(new Writer(9).str(clientId).bool(lease).done()),
      () => this.submit(new Writer(11).str(clientId).done()),
    );
  }

  leaveTabs() {
    this.lock?.release();
    this.lock = null;
    this.channel?.close();
    this.channel = null;
  }
}
